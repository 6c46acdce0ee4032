// RMSNorm: out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w, in fp32 (the HF LlamaRMSNorm semantics:
// normalise in fp32, then multiply by the weight widened to fp32).
//
// Also used for per-head q/k norms (rows = T * heads, dim = head_dim). Stateless.
#ifndef ADAK_KERNELS_CPU_NORM_H_
#define ADAK_KERNELS_CPU_NORM_H_

#include <cstdint>

#include "base/dtype.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

struct RmsNormParams {
  const float* x = nullptr;  // [rows, dim], row stride x_stride
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t x_stride = 0;
  const void* w = nullptr;  // [dim] in w_dtype
  DType w_dtype = DType::kBF16;
  float eps = 1e-6f;
  float* out = nullptr;  // [rows, dim], row stride out_stride; may equal x (in place)
  int64_t out_stride = 0;
};

void RmsNorm(const RmsNormParams& p, ThreadPool* pool);
void RmsNormReference(const RmsNormParams& p);

// Reads element i of a weight vector in any float dtype.
[[nodiscard]] inline float LoadAsF32(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(base)[i]);
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_NORM_H_
