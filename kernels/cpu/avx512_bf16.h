// AVX512_BF16 pieces shared by the bf16 dot-product kernels (DotPrecision::kBf16: matmul_avx512.cc's pair path
// and moe_experts_avx512bf16.cc). A weight block of 32 bf16 is loaded raw, in its natural order; 32 fp32
// activations are rounded to bf16 (to nearest even) into one vector in the same order; vdpbf16ps then adds, in
// each fp32 lane i, w[2i] * x[2i] + w[2i + 1] * x[2i + 1] to the accumulator. One instruction per 32 weights
// and activation row, against two FMAs and two widening operations on the exact fp32 path.
//
// Include only from translation units whose code here runs after Bf16DotSupported(): every function carries
// the AVX-512 + AVX512_BF16 target attribute. Stateless.
#ifndef ADAK_KERNELS_CPU_AVX512_BF16_H_
#define ADAK_KERNELS_CPU_AVX512_BF16_H_

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/avx512_weights.h"

#define ADAK_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))

namespace adak::kernels::internal::avx512 {

// The 32 fp32 activations at x (64-byte aligned) as 32 bf16, rounded to nearest even, in natural order.
ADAK_AVX512_BF16 inline __m512bh LoadXPairs(const float* x) {
  return _mm512_cvtne2ps_pbh(_mm512_load_ps(x + 16), _mm512_load_ps(x));
}

// acc[i] += w[2i] * x[2i] + w[2i + 1] * x[2i + 1] for the 16 fp32 lanes i (w: 32 raw bf16).
ADAK_AVX512_BF16 inline __m512 DotPairs(__m512i w, __m512bh x, __m512 acc) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(w), x);
}

// BF16 weights for the pair path: blocks of 32 raw bf16 (no widening; the activations are not de-interleaved).
struct Bf16PairWeights {
  using Elem = uint16_t;
  static constexpr bool kDeinterleave = false;
  static constexpr bool kPairDot = true;
  ADAK_AVX512_BF16 static inline __m512i Load(const Elem* p) { return _mm512_loadu_si512(p); }
  // `a` = the block's address minus the row source's shift (64-byte aligned).
  ADAK_AVX512_BF16 static inline __m512i LoadShifted(const char* a, __m512i idx) { return ShiftedLoad(a, idx); }
  // The first `rem` (0 < rem < 32) elements, zeros after.
  ADAK_AVX512_BF16 static inline __m512i LoadTail(const Elem* p, int64_t rem) {
    return _mm512_maskz_loadu_epi16(TailMask(rem), p);
  }
};

}  // namespace adak::kernels::internal::avx512

#endif  // ADAK_KERNELS_CPU_AVX512_BF16_H_
