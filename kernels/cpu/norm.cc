#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace adak::kernels {
namespace {

void NormRow(const RmsNormParams& p, const float* w32, int64_t r) {
  const float* x = p.x + r * p.x_stride;
  float* out = p.out + r * p.out_stride;
  float sum = 0.0f;
  for (int64_t i = 0; i < p.dim; ++i) sum += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sum / static_cast<float>(p.dim) + p.eps);
  for (int64_t i = 0; i < p.dim; ++i) out[i] = (x[i] * inv) * w32[i];
}

std::vector<float> WidenWeight(const RmsNormParams& p) {
  std::vector<float> w(static_cast<size_t>(p.dim));
  for (int64_t i = 0; i < p.dim; ++i) w[static_cast<size_t>(i)] = LoadAsF32(p.w, p.w_dtype, i);
  return w;
}

}  // namespace

void RmsNorm(const RmsNormParams& p, ThreadPool* pool) {
  const std::vector<float> w = WidenWeight(p);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, p.dim));
  pool->ParallelFor(p.rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) NormRow(p, w.data(), r);
  });
}

void RmsNormReference(const RmsNormParams& p) {
  for (int64_t r = 0; r < p.rows; ++r) {
    double sum = 0.0;
    for (int64_t i = 0; i < p.dim; ++i) sum += static_cast<double>(p.x[r * p.x_stride + i]) * p.x[r * p.x_stride + i];
    const double inv = 1.0 / std::sqrt(sum / static_cast<double>(p.dim) + p.eps);
    for (int64_t i = 0; i < p.dim; ++i) {
      p.out[r * p.out_stride + i] = static_cast<float>(p.x[r * p.x_stride + i] * inv) * LoadAsF32(p.w, p.w_dtype, i);
    }
  }
}

}  // namespace adak::kernels
