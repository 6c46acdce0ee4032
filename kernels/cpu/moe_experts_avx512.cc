// AVX-512 (F + BW + VL + DQ) fused expert kernels for MoeExperts. Only reached after a runtime CPU check; every
// function that uses AVX-512 carries a target attribute (no per-file -m flags), so no AVX-512 code can leak
// into inline functions shared with the rest of the binary.
//
// Weights are read in blocks of 32 elements per row. A BF16 block is widened exactly with one bit operation
// per half of one 64-byte load (low halves of the 32-bit lanes shifted left by 16 = even elements, high halves
// masked = odd elements); the activations were de-interleaved to match when packed. A register tile is kN (2
// or 4) consecutive rows of one matrix x kT <= 4 activation rows: each weight vector is loaded once per tile and
// used for all kT rows, each activation vector once per tile for all kN weight rows. Each accumulator is
// reduced on its own, so a dot product does not depend on the tile it was computed in.
//
// Memory access: the tiles read kN rows side by side (kN streams 1 row apart), which this CPU's hardware
// prefetchers follow poorly (~25% below a streaming read, measured); so while a tile runs, it prefetches the
// next tile's rows in address order, one cache line per line it consumes. Memory then sees one sequential
// stream per thread and the tiles hit cache. Pass 1 also runs gate and up one after the other over a block of
// rows (h holds g in between), never side by side, for the same reason. Rows that start off a cache line are
// assembled from aligned loads (RowSource); SwiGLU uses a vector exp (Exp).

// GCC 12's AVX-512 headers self-initialise `_mm512_undefined_*` (`__m512 __Y = __Y;`), which trips
// -W(maybe-)uninitialized once inlined (GCC PR 105593); harmless, so silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "base/dtype.h"
#include "kernels/cpu/avx512_weights.h"
#include "kernels/cpu/moe_experts.h"


namespace adak::kernels::internal {
namespace {

constexpr int kBlock = 32;     // weight elements per row per step
constexpr int kMaxTokens = 4;  // activation rows per register tile
// Rows per block of pass 1 (gate rows, then up rows), and the row multiple of the L2 blocks used when an
// expert has more than kMaxTokens rows: a multiple of every tile's row count.
constexpr int64_t kRowBlock = 48;
// Weight bytes per L2 block when an expert has more than kMaxTokens rows: the token groups after the first
// re-read the block from L2, so memory still delivers each weight once.
constexpr int64_t kL2BlockBytes = 256 << 10;

using avx512::Bf16Weights;
using avx512::F16Weights;
using avx512::F32Weights;
using avx512::RowSource;
using avx512::ShiftedLoad;
using avx512::SourceFor;
using avx512::TailMask;

// Horizontal sum of one accumulator (the same instruction sequence for every accumulator).
ADAK_AVX512 inline float HorizontalSum(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
  return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
}

// exp(x) to ~1 ulp (Cephes expf: Cody-Waite reduction by ln 2, degree-6 polynomial, scalef); exact 0 and inf
// at the ends of the range, NaN stays NaN.
ADAK_AVX512 inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), x));  // NaN passes
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

// g[i] = g[i] / (1 + exp(-g[i])) * u[i] for i < count <= 16 (MoeSwiGlu with a vector exp).
ADAK_AVX512 inline void SwiGluInPlace(float* g, const float* u, int count) {
  const auto m = static_cast<__mmask16>((1u << count) - 1u);
  const __m512 gv = _mm512_maskz_loadu_ps(m, g);
  const __m512 e = Exp(_mm512_sub_ps(_mm512_setzero_ps(), gv));
  const __m512 silu = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  _mm512_mask_storeu_ps(g, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, u)));
}

// sums[t * kN + n] = dot(row n, activation row t) over all k elements, for rows starting at w + n * k and packed
// activation rows x[t] (64-byte aligned, zero-padded to a multiple of 32); rows read as `src` says (kShifted).
// If `pf` is not null, prefetches the bytes from pf on in address order, kN * kLines cache lines per step (the
// next tile's rows).
template <class W, int kT, int kN, bool kShifted>
ADAK_AVX512 inline void DotTile(const typename W::Elem* w, int64_t k, const float* const (&x)[kT],
                                const RowSource& src, const char* pf, float* sums) {
  constexpr int kAcc = kT * kN;
  static_assert(kAcc + 2 * kT + 3 <= 32, "tile does not fit in the register file");
  constexpr int kLines = kBlock * static_cast<int>(sizeof(typename W::Elem)) / 64;  // per row per step
  __m512 acc[kAcc];
#pragma GCC unroll 32
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t k_full = k - k % kBlock;
  const __m512i idx = src.idx;
  const char* wa = reinterpret_cast<const char*>(w) - src.shift_bytes;
  const int64_t row_bytes = k * static_cast<int64_t>(sizeof(typename W::Elem));
  for (int64_t kb = 0; kb < k_full; kb += kBlock) {
    if (pf != nullptr) {
#pragma GCC unroll 32
      for (int j = 0; j < kN * kLines; ++j) _mm_prefetch(pf + 64 * j, _MM_HINT_T0);
      pf += 64 * kN * kLines;
    }
    __m512 xl[kT], xh[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) {
      xl[t] = _mm512_load_ps(x[t] + kb);
      xh[t] = _mm512_load_ps(x[t] + kb + 16);
    }
#pragma GCC unroll 16
    for (int n = 0; n < kN; ++n) {
      __m512 lo, hi;
      if constexpr (kShifted) {
        W::LoadShifted(wa + n * row_bytes + kb * static_cast<int64_t>(sizeof(typename W::Elem)), idx, lo, hi);
      } else {
        W::Load(w + n * k + kb, lo, hi);
      }
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        acc[t * kN + n] = _mm512_fmadd_ps(lo, xl[t], acc[t * kN + n]);
        acc[t * kN + n] = _mm512_fmadd_ps(hi, xh[t], acc[t * kN + n]);
      }
    }
  }
  if (k_full < k) {
    const int64_t rem = k - k_full;
#pragma GCC unroll 16
    for (int n = 0; n < kN; ++n) {
      const __m512 lo = W::LoTail(w + n * k + k_full, rem);
      const __m512 hi = W::HiTail(w + n * k + k_full, rem);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        acc[t * kN + n] = _mm512_fmadd_ps(lo, _mm512_load_ps(x[t] + k_full), acc[t * kN + n]);
        acc[t * kN + n] = _mm512_fmadd_ps(hi, _mm512_load_ps(x[t] + k_full + 16), acc[t * kN + n]);
      }
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < kAcc; ++i) sums[i] = HorizontalSum(acc[i]);
}

// Weight rows per tile for kT activation rows (divides kRowBlock). Measured on Zen 5 (one core, weights in
// memory and in L2) against 2, 3, 4, 6, 8 and 12 rows: 2 rows is ~5% faster than 4 for kT = 1 (the pass-1
// streams stay within L1 with the prefetched tile), 4 rows the best for kT >= 2 at decode and for kT = 4 from
// L2 (prefill: ~235 GFLOP/s per core, vs ~190 with 6 rows and ~145 with 3).
template <int kT>
constexpr int TileRows() {
  return kT == 1 ? 2 : 4;
}

// Runs the tiles over rows [n_begin, n_end) of matrix w (row length k) for activation rows x[0, kT), calling
// emit(n, kN-constant, sums) per tile. With `prefetch`, each tile prefetches the next one's rows, and the last
// tile prefetches `after` (may be null).
template <class W, int kT, bool kShifted, class Emit>
ADAK_AVX512 inline void RowTilesOf(const typename W::Elem* w, int64_t k, int64_t n_begin, int64_t n_end,
                                   const float* const (&x)[kT], const RowSource& src, bool prefetch,
                                   const void* after, const Emit& emit) {
  constexpr int kN = TileRows<kT>();
  alignas(64) float sums[kT * kN];
  const int64_t row_bytes = k * static_cast<int64_t>(sizeof(typename W::Elem));
  // The rows of the tile that starts at `next` (one tile ahead), or `after` past the end.
  auto pf_for = [&](int64_t next) ADAK_AVX512 -> const char* {
    if (!prefetch) return nullptr;
    return next < n_end ? reinterpret_cast<const char*>(w) + next * row_bytes : static_cast<const char*>(after);
  };
  int64_t n = n_begin;
  for (; n + kN <= n_end; n += kN) {
    DotTile<W, kT, kN, kShifted>(w + n * k, k, x, src, pf_for(n + kN), sums);
    emit(n, std::integral_constant<int, kN>{}, sums);
  }
  for (; n < n_end; ++n) {
    DotTile<W, kT, 1, kShifted>(w + n * k, k, x, src, pf_for(n + 1), sums);
    emit(n, std::integral_constant<int, 1>{}, sums);
  }
}

template <class W, int kT, class Emit>
ADAK_AVX512 inline void RowTiles(const typename W::Elem* w, int64_t k, int64_t n_begin, int64_t n_end,
                                 const float* const (&x)[kT], bool prefetch, const void* after, const Emit& emit) {
  const RowSource src = SourceFor(w, k * static_cast<int64_t>(sizeof(typename W::Elem)));
  if (src.shifted) {
    RowTilesOf<W, kT, true>(w, k, n_begin, n_end, x, src, prefetch, after, emit);
  } else {
    RowTilesOf<W, kT, false>(w, k, n_begin, n_end, x, src, prefetch, after, emit);
  }
}

// Pass 1 for activation rows [t0, t0 + kT) over weight rows [n0, n1): gate rows, then up rows, of each block
// of kRowBlock rows; h holds g in between.
template <class W, int kT>
ADAK_AVX512 void GateUpTokens(const MoeGateUpArgs& a, int64_t t0, int64_t n0, int64_t n1, bool prefetch) {
  using Elem = typename W::Elem;
  const auto* gate = static_cast<const Elem*>(a.gate);
  const auto* up = static_cast<const Elem*>(a.up);
  const int64_t k = a.hidden;
  const float* x[kT];
  float* h[kT];
#pragma GCC unroll 4
  for (int t = 0; t < kT; ++t) {
    x[t] = a.x[t0 + t];
    h[t] = a.h[t0 + t];
  }
  for (int64_t b0 = n0; b0 < n1; b0 += kRowBlock) {
    const int64_t b1 = std::min(n1, b0 + kRowBlock);
    RowTiles<W, kT>(gate, k, b0, b1, x, prefetch, up + b0 * k, [&](int64_t n, auto kn, const float* sums) {
      constexpr int kN = decltype(kn)::value;
      for (int t = 0; t < kT; ++t) {
        for (int j = 0; j < kN; ++j) h[t][MoePackedIndex(n + j, kBlock, W::kDeinterleave)] = sums[t * kN + j];
      }
    });
    const void* after = b1 < n1 ? gate + b1 * k : nullptr;
    RowTiles<W, kT>(up, k, b0, b1, x, prefetch, after, [&](int64_t n, auto kn, const float* sums) {
      constexpr int kN = decltype(kn)::value;
      static_assert(kT * kN <= 16);
      alignas(64) float g[kT * kN];
      for (int t = 0; t < kT; ++t) {
        for (int j = 0; j < kN; ++j) g[t * kN + j] = h[t][MoePackedIndex(n + j, kBlock, W::kDeinterleave)];
      }
      SwiGluInPlace(g, sums, kT * kN);
      for (int t = 0; t < kT; ++t) {
        for (int j = 0; j < kN; ++j) h[t][MoePackedIndex(n + j, kBlock, W::kDeinterleave)] = g[t * kN + j];
      }
    });
  }
}

// Pass 2 for activation rows [t0, t0 + kT) over weight rows [n0, n1).
template <class W, int kT>
ADAK_AVX512 void DownTokens(const MoeDownArgs& a, int64_t t0, int64_t n0, int64_t n1, bool prefetch) {
  using Elem = typename W::Elem;
  const float* h[kT];
  float* out[kT];
  float scale[kT];
#pragma GCC unroll 4
  for (int t = 0; t < kT; ++t) {
    h[t] = a.h[t0 + t];
    out[t] = a.out[t0 + t];
    scale[t] = a.scale[t0 + t];
  }
  RowTiles<W, kT>(static_cast<const Elem*>(a.down), a.inter, n0, n1, h, prefetch, nullptr,
                  [&](int64_t n, auto kn, const float* sums) {
                    constexpr int kN = decltype(kn)::value;
                    for (int t = 0; t < kT; ++t) {
                      for (int j = 0; j < kN; ++j) out[t][n + j] += scale[t] * sums[t * kN + j];
                    }
                  });
}

// Runs `tokens(kT-constant, t0, n0, n1, prefetch)` over the expert's rows in groups of up to kMaxTokens, for
// weight rows [n_begin, n_end) cut into blocks that stay in L2 when there is more than one group (only the
// first group of a block reads memory, so only it prefetches).
template <class Tokens>
ADAK_AVX512 inline void OverRowGroups(int64_t rows, int64_t row_bytes, int64_t n_begin, int64_t n_end,
                                      const Tokens& tokens) {
  auto group = [&](int64_t t0, int64_t n0, int64_t n1) ADAK_AVX512 {
    const bool prefetch = t0 == 0;
    switch (std::min<int64_t>(kMaxTokens, rows - t0)) {
      case 1: return tokens(std::integral_constant<int, 1>{}, t0, n0, n1, prefetch);
      case 2: return tokens(std::integral_constant<int, 2>{}, t0, n0, n1, prefetch);
      case 3: return tokens(std::integral_constant<int, 3>{}, t0, n0, n1, prefetch);
      default: return tokens(std::integral_constant<int, 4>{}, t0, n0, n1, prefetch);
    }
  };
  if (rows <= kMaxTokens) {
    group(0, n_begin, n_end);
    return;
  }
  const int64_t block = std::max<int64_t>(
      kRowBlock, kL2BlockBytes / std::max<int64_t>(row_bytes, 1) / kRowBlock * kRowBlock);
  for (int64_t n0 = n_begin; n0 < n_end; n0 += block) {
    const int64_t n1 = std::min(n_end, n0 + block);
    for (int64_t t0 = 0; t0 < rows; t0 += kMaxTokens) group(t0, n0, n1);
  }
}

template <class W>
ADAK_AVX512 void GateUp(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  const auto row_bytes = static_cast<int64_t>(2 * sizeof(typename W::Elem)) * a.hidden;
  OverRowGroups(a.rows, row_bytes, n_begin, n_end,
                [&](auto kt, int64_t t0, int64_t n0, int64_t n1, bool prefetch) ADAK_AVX512 {
                  GateUpTokens<W, decltype(kt)::value>(a, t0, n0, n1, prefetch);
                });
}

template <class W>
ADAK_AVX512 void Down(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  const auto row_bytes = static_cast<int64_t>(sizeof(typename W::Elem)) * a.inter;
  OverRowGroups(a.rows, row_bytes, n_begin, n_end,
                [&](auto kt, int64_t t0, int64_t n0, int64_t n1, bool prefetch) ADAK_AVX512 {
                  DownTokens<W, decltype(kt)::value>(a, t0, n0, n1, prefetch);
                });
}

}  // namespace

ADAK_AVX512 void MoeGateUpAvx512(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  switch (a.dtype) {
    case DType::kBF16: return GateUp<Bf16Weights>(a, n_begin, n_end);
    case DType::kF16: return GateUp<F16Weights>(a, n_begin, n_end);
    default: return GateUp<F32Weights>(a, n_begin, n_end);
  }
}

ADAK_AVX512 void MoeDownAvx512(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  switch (a.dtype) {
    case DType::kBF16: return Down<Bf16Weights>(a, n_begin, n_end);
    case DType::kF16: return Down<F16Weights>(a, n_begin, n_end);
    default: return Down<F32Weights>(a, n_begin, n_end);
  }
}

}  // namespace adak::kernels::internal
