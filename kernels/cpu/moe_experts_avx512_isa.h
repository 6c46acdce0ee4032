// The AVX-512 traits of the fused expert tile loops (moe_experts_tiles.h): shared by moe_experts_avx512.cc
// (the exact path) and moe_experts_avx512bf16.cc (the bf16 dot-product path, which derives from it). Include
// only from translation units whose code here runs after a runtime CPU check; every function carries the
// AVX-512 target attribute and has internal linkage. Stateless.
#ifndef ADAK_KERNELS_CPU_MOE_EXPERTS_AVX512_ISA_H_
#define ADAK_KERNELS_CPU_MOE_EXPERTS_AVX512_ISA_H_

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/avx512_math.h"
#include "kernels/cpu/avx512_weights.h"

namespace adak::kernels::internal {
namespace {

// The AVX-512 traits of the tile loops (the contract is in moe_experts_tiles.h).
struct Avx512Isa {
  using Vec = __m512;
  using Bf16 = avx512::Bf16Weights;
  using F16 = avx512::F16Weights;
  using F32 = avx512::F32Weights;
  using RowSource = avx512::RowSource;
  static constexpr int kBlock = 32;
  static constexpr bool kSplitSteps = false;
  static constexpr bool kMaskedTail = true;
  static constexpr bool kShiftedRows = true;

  // kT * kN accumulators, both halves of kT activations and three temporaries fit in 32 registers.
  static constexpr bool TileFits(int kt, int kn) { return kt * kn + 2 * kt + 3 <= 32; }
  // Weight rows per tile for kT activation rows (divides kRowBlock). Measured on Zen 5 (one core, weights in
  // memory and in L2) against 2, 3, 4, 6, 8 and 12 rows: 2 rows is ~5% faster than 4 for kT = 1 (the pass-1
  // streams stay within L1 with the prefetched tile), 4 rows the best for kT >= 2 at decode and for kT = 4 from
  // L2 (prefill: ~235 GFLOP/s per core, vs ~190 with 6 rows and ~145 with 3).
  template <int kT>
  static constexpr int TileRows() {
    return kT == 1 ? 2 : 4;
  }

  ADAK_AVX512 static inline Vec Zero() { return _mm512_setzero_ps(); }
  ADAK_AVX512 static inline Vec Fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  ADAK_AVX512 static inline Vec LoadX(const float* p) { return _mm512_load_ps(p); }
  ADAK_AVX512 static inline RowSource SourceFor(const void* w, int64_t row_bytes) {
    return avx512::SourceFor(w, row_bytes);
  }

  // Horizontal sum of one accumulator (the same instruction sequence for every accumulator).
  ADAK_AVX512 static inline float HorizontalSum(__m512 v) {
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
  }

  // g[i] = g[i] / (1 + exp(-g[i])) * u[i] for i < count <= 16 (MoeSwiGlu with a vector exp).
  ADAK_AVX512 static inline void SwiGluInPlace(float* g, const float* u, int count) {
    const auto m = static_cast<__mmask16>((1u << count) - 1u);
    const __m512 gv = _mm512_maskz_loadu_ps(m, g);
    const __m512 e = avx512::Exp(_mm512_sub_ps(_mm512_setzero_ps(), gv));
    const __m512 silu = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    _mm512_mask_storeu_ps(g, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, u)));
  }
};

}  // namespace
}  // namespace adak::kernels::internal

#endif  // ADAK_KERNELS_CPU_MOE_EXPERTS_AVX512_ISA_H_
