// The fused expert kernels of MoeExperts on the bf16 dot-product path (DotPrecision::kBf16, BF16 weights, a CPU
// with AVX512_BF16): the tile loops of moe_experts_tiles.h instantiated with the AVX-512 traits, whose BF16
// weights are read as raw pairs and dotted with activations rounded to bf16 by vdpbf16ps (avx512_bf16.h). The
// activation rows are packed in natural order (not de-interleaved). Only reached after Bf16DotSupported();
// every function carries the AVX-512 + AVX512_BF16 target attribute, in a translation unit of its own so the
// exact path's kernels never carry it.

// GCC 12's AVX-512 headers self-initialise `_mm512_undefined_*` (GCC PR 105593); see matmul_avx512.cc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/avx512_bf16.h"
#include "kernels/cpu/moe_experts.h"
#include "kernels/cpu/moe_experts_avx512_isa.h"

namespace adak::kernels::internal {
namespace {

// Avx512Isa with BF16 weights on the pair path (F16/F32 weights never come here: moe_experts.cc sends them to
// the exact path).
struct Avx512Bf16Isa : Avx512Isa {
  using Bf16 = avx512::Bf16PairWeights;
  using XPairs = __m512bh;
  ADAK_AVX512_BF16 static inline XPairs LoadXPairs(const float* x) { return avx512::LoadXPairs(x); }
  ADAK_AVX512_BF16 static inline Vec DotPairs(__m512i w, XPairs x, Vec acc) { return avx512::DotPairs(w, x, acc); }
};

}  // namespace
}  // namespace adak::kernels::internal

#define ADAK_MOE_TARGET ADAK_AVX512_BF16
#include "kernels/cpu/moe_experts_tiles.h"
#undef ADAK_MOE_TARGET

namespace adak::kernels::internal {

ADAK_AVX512_BF16 void MoeGateUpAvx512Bf16(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  GateUpFor<Avx512Bf16Isa>(a, n_begin, n_end);
}

ADAK_AVX512_BF16 void MoeDownAvx512Bf16(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  DownFor<Avx512Bf16Isa>(a, n_begin, n_end);
}

}  // namespace adak::kernels::internal
