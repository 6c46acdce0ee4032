// AVX2 + FMA + F16C fused expert kernels for MoeExperts, the path for x86-64 CPUs without AVX-512: the tile loops
// of moe_experts_tiles.h instantiated with this file's ISA traits -- 256-bit vectors, blocks of 16 weight elements
// per row, smaller tiles (16 vector registers: the low halves of a block first, then the high halves), the last
// partial block copied into a zero-padded one, misaligned rows read with unaligned loads. Only reached after a
// runtime CPU check, and every function carries the AVX2 target attribute (no per-file -m flags, which would let
// AVX2 code into inline functions shared with the rest of the binary).

// GCC 12's AVX-512 headers self-initialise `_mm512_undefined_*` (`__m512 __Y = __Y;`), which trips
// -W(maybe-)uninitialized once inlined (GCC PR 105593); harmless, so silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/avx2_weights.h"
#include "kernels/cpu/moe_experts.h"

namespace adak::kernels::internal {
namespace {

// The AVX2 traits of the tile loops (the contract is in moe_experts_tiles.h).
struct Avx2Isa {
  using Vec = __m256;
  using Bf16 = avx2::Bf16Weights;
  using F16 = avx2::F16Weights;
  using F32 = avx2::F32Weights;
  struct RowSource {};
  static constexpr int kBlock = 16;
  static constexpr bool kSplitSteps = true;
  static constexpr bool kMaskedTail = false;
  static constexpr bool kShiftedRows = false;

  // kT * kN accumulators, kT activations and two temporaries fit in 16 registers.
  static constexpr bool TileFits(int kt, int kn) { return kt * kn + kt + 2 <= 16; }
  // Weight rows per tile for kT activation rows (divides kRowBlock).
  template <int kT>
  static constexpr int TileRows() {
    constexpr int kTable[5] = {0, 4, 4, 3, 2};
    return kTable[kT];
  }

  ADAK_AVX2 static inline Vec Zero() { return _mm256_setzero_ps(); }
  ADAK_AVX2 static inline Vec Fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  ADAK_AVX2 static inline Vec LoadX(const float* p) { return _mm256_load_ps(p); }

  // Horizontal sum of one accumulator (the same instruction sequence for every accumulator).
  ADAK_AVX2 static inline float HorizontalSum(__m256 v) {
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
  }

  // exp(x) to ~1 ulp (Cephes expf: Cody-Waite reduction by ln 2, degree-6 polynomial, 2^n built in the exponent
  // bits); x is clamped to [-87, 88], so the result stays a normal float; NaN stays NaN.
  ADAK_AVX2 static inline __m256 Exp(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), _mm256_min_ps(_mm256_set1_ps(88.0f), x));  // NaN passes
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(scale));
  }

  // g[i] = g[i] / (1 + exp(-g[i])) * u[i] for i < count <= 16 (MoeSwiGlu with a vector exp).
  ADAK_AVX2 static inline void SwiGluInPlace(float* g, const float* u, int count) {
    alignas(32) float gb[16] = {};
    alignas(32) float ub[16] = {};
    std::copy_n(g, count, gb);
    std::copy_n(u, count, ub);
    for (int i = 0; i < count; i += 8) {
      const __m256 gv = _mm256_load_ps(gb + i);
      const __m256 e = Exp(_mm256_sub_ps(_mm256_setzero_ps(), gv));
      const __m256 silu = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
      _mm256_store_ps(gb + i, _mm256_mul_ps(silu, _mm256_load_ps(ub + i)));
    }
    std::copy_n(gb, count, g);
  }
};

}  // namespace
}  // namespace adak::kernels::internal

#define ADAK_MOE_TARGET ADAK_AVX2
#include "kernels/cpu/moe_experts_tiles.h"
#undef ADAK_MOE_TARGET

namespace adak::kernels::internal {

ADAK_AVX2 void MoeGateUpAvx2(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  GateUpFor<Avx2Isa>(a, n_begin, n_end);
}

ADAK_AVX2 void MoeDownAvx2(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  DownFor<Avx2Isa>(a, n_begin, n_end);
}

}  // namespace adak::kernels::internal
