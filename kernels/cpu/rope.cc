#include "kernels/cpu/rope.h"

#include <cmath>
#include <vector>

namespace adak::kernels {
namespace {

std::vector<float> InvFreq(const RopeParams& p) {
  const int64_t half = p.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // HF: 1.0 / (base ** (arange(0, dim, 2).float() / dim)) in fp32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(p.head_dim);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(static_cast<float>(p.theta), exponent);
  }
  return inv;
}

void RotateRow(const RopeParams& p, const float* inv_freq, float* cos_buf, float* sin_buf, int64_t t) {
  const int64_t half = p.head_dim / 2;
  const float pos = static_cast<float>(p.positions[t]);
  for (int64_t i = 0; i < half; ++i) {
    const float angle = pos * inv_freq[i];
    cos_buf[i] = std::cos(angle);
    sin_buf[i] = std::sin(angle);
  }
  for (int64_t h = 0; h < p.heads; ++h) {
    float* x = p.x + t * p.stride + h * p.head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = x[i];
      const float x2 = x[i + half];
      x[i] = x1 * cos_buf[i] - x2 * sin_buf[i];
      x[i + half] = x2 * cos_buf[i] + x1 * sin_buf[i];
    }
  }
}

}  // namespace

void ApplyRope(const RopeParams& p, ThreadPool* pool) {
  const std::vector<float> inv = InvFreq(p);
  pool->ParallelFor(p.rows, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> cos_buf(inv.size()), sin_buf(inv.size());
    for (int64_t t = begin; t < end; ++t) RotateRow(p, inv.data(), cos_buf.data(), sin_buf.data(), t);
  });
}

void ApplyRopeReference(const RopeParams& p) {
  const std::vector<float> inv = InvFreq(p);
  std::vector<float> cos_buf(inv.size()), sin_buf(inv.size());
  for (int64_t t = 0; t < p.rows; ++t) RotateRow(p, inv.data(), cos_buf.data(), sin_buf.data(), t);
}

}  // namespace adak::kernels
