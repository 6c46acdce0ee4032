// Linear layers: out[T, N] (=|+=) x[T, K] · W[N, K]^T (+ bias), W in its checkpoint dtype, fp32 accumulation.
//
// Optimised path: runtime CPU dispatch (AVX-512F/BW/VL/DQ, AVX2+FMA+F16C otherwise, scalar fallback). Every
// weight row is read from memory exactly once and dotted with up to 4 activation rows at a time from
// registers (memory-bound GEMV regime at decode); BF16/F16 weights are widened to fp32 exactly in registers
// and the activations stay fp32, unless MatMulOptions::precision asks for bf16 dot products (DotPrecision).
// More rows run in groups of 4 over blocks of W that stay in L2. Where it measured faster (AVX2 at T >= 32,
// scalar at T >= 2; never on AVX-512, whose kernel beat sgemm up to T = 1024), tiles of W are instead widened
// to fp32 and multiplied with OpenBLAS sgemm, which MatMul switches to single-threaded OpenBLAS once per
// process (the parallelism comes from our pool). Work is split over N on the thread pool. Stateless;
// thread-safe (calls from several threads serialise on the pool).
#ifndef ADAK_KERNELS_CPU_MATMUL_H_
#define ADAK_KERNELS_CPU_MATMUL_H_

#include <cstdint>

#include "base/dtype.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

struct MatMulParams {
  const float* x = nullptr;      // [T, K], row stride x_stride (elements)
  int64_t rows = 0;              // T
  int64_t k = 0;                 // K
  int64_t x_stride = 0;          // >= K; 0 means K
  const void* w = nullptr;       // [N, K] row-major, contiguous
  DType w_dtype = DType::kBF16;  // kBF16, kF16 or kF32
  int64_t n = 0;                 // N
  const void* bias = nullptr;    // [N] in bias_dtype, or nullptr
  DType bias_dtype = DType::kF32;
  float* out = nullptr;     // [T, N], row stride out_stride (elements)
  int64_t out_stride = 0;   // >= N; 0 means N
  bool accumulate = false;  // out += result instead of out = result
};

// REQUIRES: pointers valid for the sizes above; x and out do not overlap; w_dtype in {kBF16, kF16, kF32}
// and bias_dtype in {kF32, kBF16, kF16} (anything else is a programmer error and aborts). `pool` may be
// nullptr (single-threaded). T == 0 or N == 0 is a no-op; K == 0 yields bias (or adds it).
void MatMul(const MatMulParams& p, ThreadPool* pool);

// The plain triple loop, fp32 (double-free) accumulation in K order. The test oracle for MatMul.
void MatMulReference(const MatMulParams& p);

// Which SIMD path MatMul dispatched to on this CPU: "avx512", "avx2", or "scalar" (the kBf16 precision runs
// on the "avx512" path; Bf16DotSupported() says whether it can).
[[nodiscard]] const char* MatMulIsa();

// ---- Pinning an implementation (tests and benchmarks). ----

enum class MatMulIsaKind : uint8_t { kScalar, kAvx2, kAvx512 };

// The best path this CPU supports (what MatMul uses), whether `isa` runs here, and its MatMulIsa() name.
[[nodiscard]] MatMulIsaKind DetectedMatMulIsa();
[[nodiscard]] bool MatMulIsaSupported(MatMulIsaKind isa);
[[nodiscard]] const char* MatMulIsaName(MatMulIsaKind isa);

// T at or above which MatMul on `isa` widens W tiles and calls sgemm instead of the register-blocked kernel
// (measured crossovers; INT64_MAX = never).
[[nodiscard]] int64_t DefaultSgemmMinRows(MatMulIsaKind isa);

// How dot products with BF16 weights treat the activations.
//   kFp32 (the default here): the activations stay fp32 and the weights are widened exactly, so results match
//     the fp32 reference up to summation order.
//   kBf16: where Bf16DotSupported(), the activations are rounded to bf16 (to nearest even) and each pair of
//     products is summed in fp32 by vdpbf16ps, as llama.cpp does for BF16 weights: about half the vector
//     instructions per weight. Every activation then carries a relative error of up to 2^-9.
// Weights in F16/F32, and CPUs without AVX512_BF16, always take the kFp32 path.
enum class DotPrecision : uint8_t { kFp32, kBf16 };

// Whether this CPU has the kBf16 path (AVX-512 F/BW/VL/DQ and AVX512_BF16).
[[nodiscard]] bool Bf16DotSupported();

struct MatMulOptions {
  MatMulIsaKind isa = DetectedMatMulIsa();
  // kBf16 applies to BF16 weights on the AVX-512 path of a CPU with Bf16DotSupported(); otherwise ignored.
  DotPrecision precision = DotPrecision::kFp32;
  int64_t sgemm_min_rows = 0;  // T >= this (and K > 0): the widen + sgemm path; 0 = DefaultSgemmMinRows(isa)
  // AVX-512, T <= 4: tiles that prefetch the next tile's rows in address order and read rows that start off a
  // cache line with aligned loads (false: the earlier kernel, kept for A/B benchmarks; same results bit for bit).
  bool stream_decode = true;
};

// MatMul on a pinned path. REQUIRES: as MatMul, and MatMulIsaSupported(options.isa).
void MatMulWithOptions(const MatMulParams& p, ThreadPool* pool, const MatMulOptions& options);

// Widens `count` elements of `src` (kBF16, kF16 or kF32) to fp32 on the given path; bit-identical to the
// scalar conversions in base/dtype.h for every non-NaN input (NaNs stay NaNs). REQUIRES: as above.
void WidenToF32(const void* src, DType dtype, int64_t count, float* dst, MatMulIsaKind isa);

namespace internal {
// Per-ISA kernels behind MatMul (matmul_avx512.cc, matmul_avx2.cc); not for direct use.
// Rows [n_begin, n_end) of out for all T, from activations packed by matmul.cc: row t at xp + t * xp_stride,
// zero-padded to a multiple of 32 (AVX-512) / 16 (AVX2) elements and, for BF16 weights, each block
// de-interleaved as [even elements, odd elements].
void MatMulRowsAvx512(const MatMulParams& p, const float* xp, int64_t xp_stride, int64_t n_begin, int64_t n_end,
                      bool stream_decode);
// The DotPrecision::kBf16 path for BF16 weights: as MatMulRowsAvx512, but the activations packed in natural
// order (not de-interleaved). REQUIRES: Bf16DotSupported().
void MatMulRowsAvx512Bf16(const MatMulParams& p, const float* xp, int64_t xp_stride, int64_t n_begin, int64_t n_end);
void MatMulRowsAvx2(const MatMulParams& p, const float* xp, int64_t xp_stride, int64_t n_begin, int64_t n_end);
void WidenToF32Avx512(const void* src, DType dtype, int64_t count, float* dst);
void WidenToF32Avx2(const void* src, DType dtype, int64_t count, float* dst);
}  // namespace internal

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MATMUL_H_
