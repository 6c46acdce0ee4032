// Linear layers: out[T, N] (=|+=) x[T, K] · W[N, K]^T (+ bias), W in its checkpoint dtype, fp32 accumulation.
//
// Optimised path: runtime CPU dispatch (AVX-512 with avx512_bf16 where present, AVX2+FMA+F16C otherwise,
// scalar fallback). Few rows (decode, T <= 8): every weight row is read exactly once and dotted with all
// T activation rows from registers (memory-bound GEMV regime). Many rows (prefill): tiles of W are widened
// to fp32 and multiplied with OpenBLAS sgemm. Work is split over N on the thread pool. Stateless.
#ifndef ADAK_KERNELS_CPU_MATMUL_H_
#define ADAK_KERNELS_CPU_MATMUL_H_

#include <cstdint>

#include "base/dtype.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

struct MatMulParams {
  const float* x = nullptr;    // [T, K], row stride x_stride (elements)
  int64_t rows = 0;            // T
  int64_t k = 0;               // K
  int64_t x_stride = 0;        // >= K
  const void* w = nullptr;     // [N, K] row-major, contiguous
  DType w_dtype = DType::kBF16;  // kBF16, kF16 or kF32
  int64_t n = 0;               // N
  const void* bias = nullptr;  // [N] in bias_dtype, or nullptr
  DType bias_dtype = DType::kF32;
  float* out = nullptr;        // [T, N], row stride out_stride (elements)
  int64_t out_stride = 0;      // >= N
  bool accumulate = false;     // out += result instead of out = result
};

// REQUIRES: pointers valid for the sizes above; x and out do not overlap.
void MatMul(const MatMulParams& p, ThreadPool* pool);

// The plain triple loop, fp32 (double-free) accumulation in K order. The test oracle for MatMul.
void MatMulReference(const MatMulParams& p);

// Which SIMD path MatMul dispatched to on this CPU: "avx512bf16", "avx512", "avx2", or "scalar".
[[nodiscard]] const char* MatMulIsa();

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MATMUL_H_
