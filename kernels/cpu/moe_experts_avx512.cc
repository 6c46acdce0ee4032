// AVX-512 (F + BW + VL + DQ) fused expert kernels for MoeExperts: the tile loops of moe_experts_tiles.h
// instantiated with the AVX-512 traits (moe_experts_avx512_isa.h). Only reached after a runtime CPU check;
// every function that uses AVX-512 carries a target attribute (no per-file -m flags), so no AVX-512 code can
// leak into inline functions shared with the rest of the binary.
//
// Weights are read in blocks of 32 elements per row. A BF16 block is widened exactly with one bit operation
// per half of one 64-byte load (low halves of the 32-bit lanes shifted left by 16 = even elements, high halves
// masked = odd elements); the activations were de-interleaved to match when packed. With 32 vector registers a
// step holds both halves of the activations and loads each weight block whole; the last partial block is read
// with masked loads. Rows that start off a cache line are assembled from aligned loads (RowSource): mmapped
// checkpoint tensors are only 8-byte aligned, and unaligned 64-byte loads straddle two lines. SwiGLU uses a
// vector exp (avx512_math.h).

// GCC 12's AVX-512 headers self-initialise `_mm512_undefined_*` (`__m512 __Y = __Y;`), which trips
// -W(maybe-)uninitialized once inlined (GCC PR 105593); harmless, so silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/moe_experts.h"
#include "kernels/cpu/moe_experts_avx512_isa.h"

#define ADAK_MOE_TARGET ADAK_AVX512
#include "kernels/cpu/moe_experts_tiles.h"
#undef ADAK_MOE_TARGET

namespace adak::kernels::internal {

ADAK_AVX512 void MoeGateUpAvx512(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  GateUpFor<Avx512Isa>(a, n_begin, n_end);
}

ADAK_AVX512 void MoeDownAvx512(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  DownFor<Avx512Isa>(a, n_begin, n_end);
}

}  // namespace adak::kernels::internal
