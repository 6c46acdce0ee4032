// AVX2 + FMA + F16C fused expert kernels for MoeExperts, the path for x86-64 CPUs without AVX-512. Same
// structure as moe_experts_avx512.cc (tiles of rows x up to 4 activation rows, the next tile prefetched in
// address order, gate then up per block of rows) with 256-bit vectors, blocks of 16 weight elements per row and
// smaller tiles (16 vector registers); misaligned rows are read with unaligned loads. Only reached after a
// runtime CPU check, and every function carries a target attribute (no per-file -m flags).

// GCC 12's AVX-512 headers self-initialise `_mm512_undefined_*` (`__m512 __Y = __Y;`), which trips
// -W(maybe-)uninitialized once inlined (GCC PR 105593); harmless, so silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "base/dtype.h"
#include "kernels/cpu/avx2_weights.h"
#include "kernels/cpu/moe_experts.h"


namespace adak::kernels::internal {
namespace {

constexpr int kBlock = 16;     // weight elements per row per step
constexpr int kMaxTokens = 4;  // activation rows per register tile
// Rows per block of pass 1 (gate rows, then up rows), and the row multiple of the L2 blocks used when an
// expert has more than kMaxTokens rows: a multiple of every tile's row count.
constexpr int64_t kRowBlock = 48;
// Weight bytes per L2 block when an expert has more than kMaxTokens rows.
constexpr int64_t kL2BlockBytes = 256 << 10;

using avx2::Bf16Weights;
using avx2::F16Weights;
using avx2::F32Weights;

// Horizontal sum of one accumulator (the same instruction sequence for every accumulator).
ADAK_AVX2 inline float HorizontalSum(__m256 v) {
  const __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
  return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
}

// exp(x) to ~1 ulp (Cephes expf: Cody-Waite reduction by ln 2, degree-6 polynomial, 2^n built in the exponent
// bits); x is clamped to [-87, 88], so the result stays a normal float; NaN stays NaN.
ADAK_AVX2 inline __m256 Exp(__m256 x) {
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
ADAK_AVX2 inline void SwiGluInPlace(float* g, const float* u, int count) {
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

// One step of a tile: acc[t * kN + n] += the block at wb[n] times the activations at x[t] + kb.
template <class W, int kT, int kN>
ADAK_AVX2 inline void Step(const typename W::Elem* const (&wb)[kN], const float* const (&x)[kT], int64_t kb,
                           __m256 (&acc)[kT * kN]) {
  __m256 xv[kT];
#pragma GCC unroll 4
  for (int t = 0; t < kT; ++t) xv[t] = _mm256_load_ps(x[t] + kb);
#pragma GCC unroll 8
  for (int n = 0; n < kN; ++n) {
    const __m256 lo = W::Lo(wb[n]);
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) acc[t * kN + n] = _mm256_fmadd_ps(lo, xv[t], acc[t * kN + n]);
  }
#pragma GCC unroll 4
  for (int t = 0; t < kT; ++t) xv[t] = _mm256_load_ps(x[t] + kb + 8);
#pragma GCC unroll 8
  for (int n = 0; n < kN; ++n) {
    const __m256 hi = W::Hi(wb[n]);
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) acc[t * kN + n] = _mm256_fmadd_ps(hi, xv[t], acc[t * kN + n]);
  }
}

// sums[t * kN + n] = dot(row n, activation row t) over all k elements, for rows starting at w + n * k and packed
// activation rows x[t] (32-byte aligned, zero-padded to a multiple of 16). The last partial block of a row is
// copied into a zero-padded buffer. If `pf` is not null, prefetches the bytes from pf on in address order,
// as many cache lines as the tile consumes (the next tile's rows).
template <class W, int kT, int kN>
ADAK_AVX2 inline void DotTile(const typename W::Elem* w, int64_t k, const float* const (&x)[kT], const char* pf,
                              float* sums) {
  using Elem = typename W::Elem;
  constexpr int kAcc = kT * kN;
  static_assert(kAcc + kT + 2 <= 16, "tile does not fit in the register file");
  __m256 acc[kAcc];
#pragma GCC unroll 16
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_setzero_ps();
  const int64_t k_full = k - k % kBlock;
  for (int64_t kb = 0; kb < k_full; kb += kBlock) {
    // A step reads 32 (16-bit weights) or 64 bytes of each row: kN lines per 64 bytes of a row.
    if (pf != nullptr && (kb * static_cast<int64_t>(sizeof(Elem))) % 64 == 0) {
#pragma GCC unroll 8
      for (int j = 0; j < kN; ++j) _mm_prefetch(pf + 64 * j, _MM_HINT_T0);
      pf += 64 * kN;
    }
    const Elem* wb[kN];
#pragma GCC unroll 8
    for (int n = 0; n < kN; ++n) wb[n] = w + n * k + kb;
    Step<W, kT, kN>(wb, x, kb, acc);
  }
  if (k_full < k) {
    Elem tail[kN][kBlock] = {};
    const Elem* wb[kN];
    for (int n = 0; n < kN; ++n) {
      std::memcpy(tail[n], w + n * k + k_full, sizeof(Elem) * static_cast<size_t>(k - k_full));
      wb[n] = tail[n];
    }
    Step<W, kT, kN>(wb, x, k_full, acc);
  }
#pragma GCC unroll 16
  for (int i = 0; i < kAcc; ++i) sums[i] = HorizontalSum(acc[i]);
}

// Weight rows per tile for kT activation rows (divides kRowBlock): kT * kN accumulators, kT activations and
// two temporaries fit in 16 registers.
template <int kT>
constexpr int TileRows() {
  constexpr int kTable[kMaxTokens + 1] = {0, 4, 4, 3, 2};
  return kTable[kT];
}

// Runs the tiles over rows [n_begin, n_end) of matrix w (row length k) for activation rows x[0, kT), calling
// emit(n, kN-constant, sums) per tile. With `prefetch`, each tile prefetches the next one's rows, and the last
// tile prefetches `after` (may be null).
template <class W, int kT, class Emit>
ADAK_AVX2 inline void RowTiles(const typename W::Elem* w, int64_t k, int64_t n_begin, int64_t n_end,
                               const float* const (&x)[kT], bool prefetch, const void* after, const Emit& emit) {
  constexpr int kN = TileRows<kT>();
  alignas(64) float sums[kT * kN];
  const int64_t row_bytes = k * static_cast<int64_t>(sizeof(typename W::Elem));
  // The rows of the tile that starts at `next` (one tile ahead), or `after` past the end.
  auto pf_for = [&](int64_t next) ADAK_AVX2 -> const char* {
    if (!prefetch) return nullptr;
    return next < n_end ? reinterpret_cast<const char*>(w) + next * row_bytes : static_cast<const char*>(after);
  };
  int64_t n = n_begin;
  for (; n + kN <= n_end; n += kN) {
    DotTile<W, kT, kN>(w + n * k, k, x, pf_for(n + kN), sums);
    emit(n, std::integral_constant<int, kN>{}, sums);
  }
  for (; n < n_end; ++n) {
    DotTile<W, kT, 1>(w + n * k, k, x, pf_for(n + 1), sums);
    emit(n, std::integral_constant<int, 1>{}, sums);
  }
}

// Pass 1 for activation rows [t0, t0 + kT) over weight rows [n0, n1): gate rows, then up rows, of each block
// of kRowBlock rows; h holds g in between.
template <class W, int kT>
ADAK_AVX2 void GateUpTokens(const MoeGateUpArgs& a, int64_t t0, int64_t n0, int64_t n1, bool prefetch) {
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
      alignas(32) float g[kT * kN];
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
ADAK_AVX2 void DownTokens(const MoeDownArgs& a, int64_t t0, int64_t n0, int64_t n1, bool prefetch) {
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
ADAK_AVX2 inline void OverRowGroups(int64_t rows, int64_t row_bytes, int64_t n_begin, int64_t n_end,
                                      const Tokens& tokens) {
  auto group = [&](int64_t t0, int64_t n0, int64_t n1) ADAK_AVX2 {
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
ADAK_AVX2 void GateUp(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  const auto row_bytes = static_cast<int64_t>(2 * sizeof(typename W::Elem)) * a.hidden;
  OverRowGroups(a.rows, row_bytes, n_begin, n_end,
                [&](auto kt, int64_t t0, int64_t n0, int64_t n1, bool prefetch) ADAK_AVX2 {
                  GateUpTokens<W, decltype(kt)::value>(a, t0, n0, n1, prefetch);
                });
}

template <class W>
ADAK_AVX2 void Down(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  const auto row_bytes = static_cast<int64_t>(sizeof(typename W::Elem)) * a.inter;
  OverRowGroups(a.rows, row_bytes, n_begin, n_end,
                [&](auto kt, int64_t t0, int64_t n0, int64_t n1, bool prefetch) ADAK_AVX2 {
                  DownTokens<W, decltype(kt)::value>(a, t0, n0, n1, prefetch);
                });
}

}  // namespace

ADAK_AVX2 void MoeGateUpAvx2(const MoeGateUpArgs& a, int64_t n_begin, int64_t n_end) {
  switch (a.dtype) {
    case DType::kBF16: return GateUp<Bf16Weights>(a, n_begin, n_end);
    case DType::kF16: return GateUp<F16Weights>(a, n_begin, n_end);
    default: return GateUp<F32Weights>(a, n_begin, n_end);
  }
}

ADAK_AVX2 void MoeDownAvx2(const MoeDownArgs& a, int64_t n_begin, int64_t n_end) {
  switch (a.dtype) {
    case DType::kBF16: return Down<Bf16Weights>(a, n_begin, n_end);
    case DType::kF16: return Down<F16Weights>(a, n_begin, n_end);
    default: return Down<F32Weights>(a, n_begin, n_end);
  }
}

}  // namespace adak::kernels::internal
