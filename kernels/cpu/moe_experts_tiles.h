// The fused expert tile loops of MoeExperts, written once for every SIMD ISA: a template over an ISA traits type,
// instantiated by the per-ISA translation units (moe_experts_avx512.cc, moe_experts_avx2.cc). Not a public header.
//
// A register tile is kN consecutive rows of one weight matrix x kT <= 4 activation rows: each weight vector is
// loaded once per tile and used for all kT rows, each activation vector once per tile for all kN weight rows,
// and each accumulator is reduced on its own, so a dot product does not depend on the tile it was computed in.
// While a tile runs it prefetches the next tile's rows in address order, one cache line per line it consumes
// (this CPU's prefetchers follow kN rows side by side poorly). Pass 1 runs gate then up over blocks of kRowBlock
// rows (h holds g in between); pass 2 accumulates scale * dot(down row, h) into the output rows. Experts with more
// than kMaxTokens rows run in groups of kMaxTokens over blocks of weight rows that stay in L2.
//
// The ISA traits type `Isa` provides:
//   Vec; kBlock (weight elements per row per step; Vec holds kBlock / 2 floats); TileRows<kT>() and
//   TileFits(kT, kN) (the register budget); Zero, Fma(a, b, c) = a * b + c, LoadX (aligned activation load),
//   HorizontalSum, SwiGluInPlace(g, u, count <= 16); Bf16/F16/F32 weight loaders (Elem, kDeinterleave, and
//   Lo/Hi(p) or Load(p, lo, hi)); kSplitSteps (false: both activation halves are held and each weight block is
//   loaded whole with Load; true: first the low halves of every row, then the high halves, for small register
//   files); kMaskedTail (the last partial block read with masked LoTail/HiTail, else copied into a zero-padded
//   block); kShiftedRows (rows off a cache line read from aligned loads: RowSource, SourceFor, W::LoadShifted).
// Every accumulator receives the same sequence of FMAs on every path (low half, then high half, block by block),
// so the choices above change speed only, never a bit of a result.
// A weights type with `kPairDot = true` (the bf16 dot-product path, avx512_bf16.h) instead provides Load(p),
// LoadShifted(a, idx) and LoadTail(p, rem) of a whole raw block, and the Isa LoadXPairs(x) (a block of
// activations rounded to bf16 pairs) and DotPairs(w, x, acc): one pairwise dot product per block and row.
//
// Usage: a per-ISA .cc defines ADAK_MOE_TARGET (its target attribute) and its traits type, includes this header,
// and instantiates GateUpFor<Isa> / DownFor<Isa>. Everything here has internal linkage (an unnamed namespace), so
// each translation unit's copy is compiled for its own ISA only. Stateless.
#ifndef ADAK_KERNELS_CPU_MOE_EXPERTS_TILES_H_
#define ADAK_KERNELS_CPU_MOE_EXPERTS_TILES_H_

#ifndef ADAK_MOE_TARGET
#error "define ADAK_MOE_TARGET (the ISA's target attribute) before including moe_experts_tiles.h"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "base/dtype.h"
#include "kernels/cpu/moe_experts.h"

namespace adak::kernels::internal {
namespace {

constexpr int kMaxTokens = 4;  // activation rows per register tile

// Whether weights type W takes the pair path (bf16 dot products) rather than widening and FMAs.
template <class W>
constexpr bool kPairDotOf = requires {
  requires W::kPairDot;
};

// Rows per block of pass 1 (gate rows, then up rows), and the row multiple of the L2 blocks used when an
// expert has more than kMaxTokens rows: a multiple of every tile's row count.
constexpr int64_t kRowBlock = 48;
// Weight bytes per L2 block when an expert has more than kMaxTokens rows: the token groups after the first
// re-read the block from L2, so memory still delivers each weight once.
constexpr int64_t kL2BlockBytes = 256 << 10;

// kSplitSteps: acc[t * kN + n] += the block at wb[n] times the activations at x[t] + kb, low halves first.
template <class Isa, class W, int kT, int kN>
ADAK_MOE_TARGET inline void SplitStep(const typename W::Elem* const (&wb)[kN], const float* const (&x)[kT], int64_t kb,
                                      typename Isa::Vec (&acc)[kT * kN]) {
  constexpr int kLanes = Isa::kBlock / 2;
  typename Isa::Vec xv[kT];
#pragma GCC unroll 4
  for (int t = 0; t < kT; ++t) xv[t] = Isa::LoadX(x[t] + kb);
#pragma GCC unroll 8
  for (int n = 0; n < kN; ++n) {
    const typename Isa::Vec lo = W::Lo(wb[n]);
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) acc[t * kN + n] = Isa::Fma(lo, xv[t], acc[t * kN + n]);
  }
#pragma GCC unroll 4
  for (int t = 0; t < kT; ++t) xv[t] = Isa::LoadX(x[t] + kb + kLanes);
#pragma GCC unroll 8
  for (int n = 0; n < kN; ++n) {
    const typename Isa::Vec hi = W::Hi(wb[n]);
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) acc[t * kN + n] = Isa::Fma(hi, xv[t], acc[t * kN + n]);
  }
}

// sums[t * kN + n] = dot(row n, activation row t) over all k elements, for rows starting at w + n * k and packed
// activation rows x[t] (aligned, zero-padded to a multiple of kBlock); with kShifted, rows are read as `src`
// says. If `pf` is not null, prefetches the bytes from pf on in address order, as many cache lines as the tile
// consumes (the next tile's rows).
template <class Isa, class W, int kT, int kN, bool kShifted>
ADAK_MOE_TARGET inline void DotTile(const typename W::Elem* w, int64_t k, const float* const (&x)[kT],
                                    const typename Isa::RowSource& src, const char* pf, float* sums) {
  using Elem = typename W::Elem;
  using Vec = typename Isa::Vec;
  constexpr int kBlock = Isa::kBlock;
  constexpr int kLanes = kBlock / 2;
  constexpr int kAcc = kT * kN;
  static_assert(Isa::TileFits(kT, kN), "tile does not fit in the register file");
  constexpr int64_t kStepBytes = kBlock * static_cast<int64_t>(sizeof(Elem));               // per row per step
  constexpr int64_t kLines = kStepBytes >= 64 ? static_cast<int64_t>(kStepBytes / 64) : 1;  // per row per prefetch
  Vec acc[kAcc];
#pragma GCC unroll 32
  for (int i = 0; i < kAcc; ++i) acc[i] = Isa::Zero();
  const int64_t k_full = k - k % kBlock;
  [[maybe_unused]] const char* wa = reinterpret_cast<const char*>(w);
  [[maybe_unused]] const int64_t row_bytes = k * static_cast<int64_t>(sizeof(Elem));
  if constexpr (kShifted) wa -= src.shift_bytes;
  for (int64_t kb = 0; kb < k_full; kb += kBlock) {
    // A step reads kStepBytes of each row: kN * kLines lines per 64 bytes of a row.
    if (pf != nullptr && (kStepBytes >= 64 || (kb * static_cast<int64_t>(sizeof(Elem))) % 64 == 0)) {
#pragma GCC unroll 32
      for (int64_t j = 0; j < kN * kLines; ++j) _mm_prefetch(pf + 64 * j, _MM_HINT_T0);
      pf += int64_t{64} * kN * kLines;
    }
    if constexpr (kPairDotOf<W>) {
      typename Isa::XPairs xv[kT];
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) xv[t] = Isa::LoadXPairs(x[t] + kb);
#pragma GCC unroll 16
      for (int n = 0; n < kN; ++n) {
        const auto wv = kShifted ? W::LoadShifted(wa + n * row_bytes + kb * static_cast<int64_t>(sizeof(Elem)), src.idx)
                                 : W::Load(w + n * k + kb);
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) acc[t * kN + n] = Isa::DotPairs(wv, xv[t], acc[t * kN + n]);
      }
    } else if constexpr (Isa::kSplitSteps) {
      const Elem* wb[kN];
#pragma GCC unroll 8
      for (int n = 0; n < kN; ++n) wb[n] = w + n * k + kb;
      SplitStep<Isa, W, kT, kN>(wb, x, kb, acc);
    } else {
      Vec xl[kT], xh[kT];
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        xl[t] = Isa::LoadX(x[t] + kb);
        xh[t] = Isa::LoadX(x[t] + kb + kLanes);
      }
#pragma GCC unroll 16
      for (int n = 0; n < kN; ++n) {
        Vec lo, hi;
        if constexpr (kShifted) {
          W::LoadShifted(wa + n * row_bytes + kb * static_cast<int64_t>(sizeof(Elem)), src.idx, lo, hi);
        } else {
          W::Load(w + n * k + kb, lo, hi);
        }
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          acc[t * kN + n] = Isa::Fma(lo, xl[t], acc[t * kN + n]);
          acc[t * kN + n] = Isa::Fma(hi, xh[t], acc[t * kN + n]);
        }
      }
    }
  }
  if (k_full < k) {
    if constexpr (kPairDotOf<W>) {  // the packed activations are zero-padded to the block
#pragma GCC unroll 16
      for (int n = 0; n < kN; ++n) {
        const auto wv = W::LoadTail(w + n * k + k_full, k - k_full);
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          acc[t * kN + n] = Isa::DotPairs(wv, Isa::LoadXPairs(x[t] + k_full), acc[t * kN + n]);
        }
      }
    } else if constexpr (Isa::kMaskedTail) {
      const int64_t rem = k - k_full;
#pragma GCC unroll 16
      for (int n = 0; n < kN; ++n) {
        const Vec lo = W::LoTail(w + n * k + k_full, rem);
        const Vec hi = W::HiTail(w + n * k + k_full, rem);
#pragma GCC unroll 4
        for (int t = 0; t < kT; ++t) {
          acc[t * kN + n] = Isa::Fma(lo, Isa::LoadX(x[t] + k_full), acc[t * kN + n]);
          acc[t * kN + n] = Isa::Fma(hi, Isa::LoadX(x[t] + k_full + kLanes), acc[t * kN + n]);
        }
      }
    } else {
      Elem tail[kN][kBlock] = {};
      const Elem* wb[kN];
      for (int n = 0; n < kN; ++n) {
        std::memcpy(tail[n], w + n * k + k_full, sizeof(Elem) * static_cast<size_t>(k - k_full));
        wb[n] = tail[n];
      }
      SplitStep<Isa, W, kT, kN>(wb, x, k_full, acc);
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < kAcc; ++i) sums[i] = Isa::HorizontalSum(acc[i]);
}

// Runs the tiles over rows [n_begin, n_end) of matrix w (row length k) for activation rows x[0, kT), calling
// emit(n, kN-constant, sums) per tile. With `prefetch`, each tile prefetches the next one's rows, and the last
// tile prefetches `after` (may be null).
template <class Isa, class W, int kT, bool kShifted, class Emit>
ADAK_MOE_TARGET inline void RowTilesOf(const typename W::Elem* w, int64_t k, int64_t n_begin, int64_t n_end,
                                       const float* const (&x)[kT], const typename Isa::RowSource& src, bool prefetch,
                                       const void* after, const Emit& emit) {
  constexpr int kN = Isa::template TileRows<kT>();
  alignas(64) float sums[kT * kN];
  const int64_t row_bytes = k * static_cast<int64_t>(sizeof(typename W::Elem));
  // The rows of the tile that starts at `next` (one tile ahead), or `after` past the end.
  auto pf_for = [&](int64_t next) ADAK_MOE_TARGET -> const char* {
    if (!prefetch) return nullptr;
    return next < n_end ? reinterpret_cast<const char*>(w) + next * row_bytes : static_cast<const char*>(after);
  };
  int64_t n = n_begin;
  for (; n + kN <= n_end; n += kN) {
    DotTile<Isa, W, kT, kN, kShifted>(w + n * k, k, x, src, pf_for(n + kN), sums);
    emit(n, std::integral_constant<int, kN>{}, sums);
  }
  for (; n < n_end; ++n) {
    DotTile<Isa, W, kT, 1, kShifted>(w + n * k, k, x, src, pf_for(n + 1), sums);
    emit(n, std::integral_constant<int, 1>{}, sums);
  }
}

template <class Isa, class W, int kT, class Emit>
ADAK_MOE_TARGET inline void RowTiles(const typename W::Elem* w, int64_t k, int64_t n_begin, int64_t n_end,
                                     const float* const (&x)[kT], bool prefetch, const void* after, const Emit& emit) {
  if constexpr (Isa::kShiftedRows) {
    const typename Isa::RowSource src = Isa::SourceFor(w, k * static_cast<int64_t>(sizeof(typename W::Elem)));
    if (src.shifted) {
      RowTilesOf<Isa, W, kT, true>(w, k, n_begin, n_end, x, src, prefetch, after, emit);
    } else {
      RowTilesOf<Isa, W, kT, false>(w, k, n_begin, n_end, x, src, prefetch, after, emit);
    }
  } else {
    RowTilesOf<Isa, W, kT, false>(w, k, n_begin, n_end, x, typename Isa::RowSource{}, prefetch, after, emit);
  }
}

// Pass 1 for activation rows [t0, t0 + kT) over weight rows [n0, n1): gate rows, then up rows, of each block
// of kRowBlock rows; h holds g in between.
template <class Isa, class W, int kT>
ADAK_MOE_TARGET void GateUpTokens(const MoeGateUpArgs& a, int64_t t0, int64_t n0, int64_t n1, bool prefetch) {
  using Elem = typename W::Elem;
  constexpr int kBlock = Isa::kBlock;
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
    RowTiles<Isa, W, kT>(gate, k, b0, b1, x, prefetch, up + b0 * k, [&](int64_t n, auto kn, const float* sums) {
      constexpr int kN = decltype(kn)::value;
      for (int t = 0; t < kT; ++t) {
        for (int j = 0; j < kN; ++j) h[t][MoePackedIndex(n + j, kBlock, W::kDeinterleave)] = sums[t * kN + j];
      }
    });
    const void* after = b1 < n1 ? gate + b1 * k : nullptr;
    RowTiles<Isa, W, kT>(up, k, b0, b1, x, prefetch, after, [&](int64_t n, auto kn, const float* sums) {
      constexpr int kN = decltype(kn)::value;
      static_assert(kT * kN <= 16);
      alignas(64) float g[kT * kN];
      for (int t = 0; t < kT; ++t) {
        for (int j = 0; j < kN; ++j) g[t * kN + j] = h[t][MoePackedIndex(n + j, kBlock, W::kDeinterleave)];
      }
      Isa::SwiGluInPlace(g, sums, kT * kN);
      for (int t = 0; t < kT; ++t) {
        for (int j = 0; j < kN; ++j) h[t][MoePackedIndex(n + j, kBlock, W::kDeinterleave)] = g[t * kN + j];
      }
    });
  }
}

// Pass 2 for activation rows [t0, t0 + kT) over weight rows [n0, n1).
template <class Isa, class W, int kT>
ADAK_MOE_TARGET void DownTokens(const MoeDownArgs& a, int64_t t0, int64_t n0, int64_t n1, bool prefetch) {
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
  RowTiles<Isa, W, kT>(static_cast<const Elem*>(a.down), a.inter, n0, n1, h, prefetch, nullptr,
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
ADAK_MOE_TARGET inline void OverRowGroups(int64_t rows, int64_t row_bytes, int64_t n_begin, int64_t n_end,
                                          const Tokens& tokens) {
  auto group = [&](int64_t t0, int64_t n0, int64_t n1) ADAK_MOE_TARGET {
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
  const int64_t block =
      std::max<int64_t>(kRowBlock, kL2BlockBytes / std::max<int64_t>(row_bytes, 1) / kRowBlock * kRowBlock);
  for (int64_t n0 = n_begin; n0 < n_end; n0 += block) {
    const int64_t n1 = std::min(n_end, n0 + block);
    for (int64_t t0 = 0; t0 < rows; t0 += kMaxTokens) group(t0, n0, n1);
  }
}

template <class Isa, class W>
ADAK_MOE_TARGET void GateUp(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  const auto row_bytes = static_cast<int64_t>(2 * sizeof(typename W::Elem)) * a.hidden;
  OverRowGroups(a.rows, row_bytes, n_begin, n_end,
                [&](auto kt, int64_t t0, int64_t n0, int64_t n1, bool prefetch)
                    ADAK_MOE_TARGET { GateUpTokens<Isa, W, decltype(kt)::value>(a, t0, n0, n1, prefetch); });
}

template <class Isa, class W>
ADAK_MOE_TARGET void Down(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  const auto row_bytes = static_cast<int64_t>(sizeof(typename W::Elem)) * a.inter;
  OverRowGroups(a.rows, row_bytes, n_begin, n_end,
                [&](auto kt, int64_t t0, int64_t n0, int64_t n1, bool prefetch)
                    ADAK_MOE_TARGET { DownTokens<Isa, W, decltype(kt)::value>(a, t0, n0, n1, prefetch); });
}

// Pass 1 / pass 2 of one expert on ISA `Isa`, by weight dtype (kBF16, kF16, else kF32).
template <class Isa>
ADAK_MOE_TARGET void GateUpFor(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  switch (a.dtype) {
    case DType::kBF16: return GateUp<Isa, typename Isa::Bf16>(a, n_begin, n_end);
    case DType::kF16: return GateUp<Isa, typename Isa::F16>(a, n_begin, n_end);
    default: return GateUp<Isa, typename Isa::F32>(a, n_begin, n_end);
  }
}

template <class Isa>
ADAK_MOE_TARGET void DownFor(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  switch (a.dtype) {
    case DType::kBF16: return Down<Isa, typename Isa::Bf16>(a, n_begin, n_end);
    case DType::kF16: return Down<Isa, typename Isa::F16>(a, n_begin, n_end);
    default: return Down<Isa, typename Isa::F32>(a, n_begin, n_end);
  }
}

}  // namespace
}  // namespace adak::kernels::internal

#endif  // ADAK_KERNELS_CPU_MOE_EXPERTS_TILES_H_
