#include "kernels/cpu/elementwise.h"

#include <cmath>

#include "kernels/cpu/norm.h"

namespace adak::kernels {

void EmbeddingLookup(const void* table, DType dtype, int64_t dim, const int32_t* ids, int64_t rows, float* out,
                     ThreadPool* pool) {
  pool->ParallelFor(rows, 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t base = static_cast<int64_t>(ids[t]) * dim;
      float* o = out + t * dim;
      for (int64_t i = 0; i < dim; ++i) o[i] = LoadAsF32(table, dtype, base + i);
    }
  });
}

void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

float Sigmoid(float x) {
  if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

void SiluMul(const float* gate, const float* up, float* out, int64_t rows, int64_t width, int64_t stride) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate + r * stride;
    const float* u = up + r * stride;
    float* o = out + r * stride;
    for (int64_t i = 0; i < width; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

}  // namespace adak::kernels
