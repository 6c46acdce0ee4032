// AVX-512 (F + BW + VL + DQ) kernels for MatMul. Only reached after a runtime CPU check; every function that
// uses AVX-512 carries a target attribute (no per-file -m flags), so no AVX-512 code can leak into inline
// functions shared with the rest of the binary.
//
// The GEMV kernel reads weights in blocks of 32 elements per row. BF16 blocks are widened exactly with one
// bit operation per half of one 64-byte load: the low halves of the 32-bit lanes (even elements) shifted left
// by 16, the high halves (odd elements) masked; the activations were de-interleaved to match when packed.
// A register block is kR weight rows x up to 4 tokens (kR * 4 accumulators): with 4 tokens a block of rows
// has 24 accumulators and 1 activation load per 6 FMAs, which measured ~1.6x faster than 8-token blocks
// (whose activations spill out of L1) and ~1.3x faster than widened tiles through OpenBLAS sgemm, even at
// T = 256 and 1024. More tokens run in groups of 4 over blocks of rows that stay in L2.

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
#include "kernels/cpu/avx512_bf16.h"
#include "kernels/cpu/avx512_weights.h"
#include "kernels/cpu/matmul.h"

namespace adak::kernels::internal {
namespace {

constexpr int kBlock = 32;     // weight elements per row per step
constexpr int kMaxTokens = 4;  // tokens per register block

using avx512::Bf16Weights;
using avx512::F16Weights;
using avx512::F32Weights;
using avx512::RowSource;
using avx512::SourceFor;

// Horizontal sums of 16 vectors at once: lane i of the result is the sum of the lanes of v[i].
ADAK_AVX512 inline __m512 Reduce16(const __m512 (&v)[16]) {
  // Three halving steps; the 4x4 transpose of the inputs makes the lanes come out in natural order.
  __m512 u[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    const int a = 2 * i;
    const int b = 2 * i + 1;
    const __m512 va = v[(a % 4) * 4 + a / 4];
    const __m512 vb = v[(b % 4) * 4 + b / 4];
    u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(va, vb, 0x44), _mm512_shuffle_f32x4(va, vb, 0xee));
  }
  __m512 w[4];
#pragma GCC unroll 4
  for (int64_t j = 0; j < 4; ++j) {
    w[j] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * j], u[2 * j + 1], 0x88),
                         _mm512_shuffle_f32x4(u[2 * j], u[2 * j + 1], 0xdd));
  }
  const __m512 p0 = _mm512_add_ps(_mm512_unpacklo_ps(w[0], w[1]), _mm512_unpackhi_ps(w[0], w[1]));
  const __m512 p1 = _mm512_add_ps(_mm512_unpacklo_ps(w[2], w[3]), _mm512_unpackhi_ps(w[2], w[3]));
  const __m512d q0 = _mm512_unpacklo_pd(_mm512_castps_pd(p0), _mm512_castps_pd(p1));
  const __m512d q1 = _mm512_unpackhi_pd(_mm512_castps_pd(p0), _mm512_castps_pd(p1));
  return _mm512_add_ps(_mm512_castpd_ps(q0), _mm512_castpd_ps(q1));
}

inline float BiasAt(const MatMulParams& p, int64_t n) {
  if (p.bias == nullptr) return 0.0f;
  switch (p.bias_dtype) {
    case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(p.bias)[n]);
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(p.bias)[n]);
    default: return static_cast<const float*>(p.bias)[n];
  }
}

// Rows per register block for kT tokens: kR * kT accumulators + kT activations + a weight temporary fit in
// the 32 vector registers, and every entry divides kChunkRows. One token is memory-bound and streams best from
// few rows at once (4 beat 8, 12 and 16 by 10-25%); more tokens want more rows per activation load.
template <int kT>
constexpr int RowsPerBlock() {
  constexpr int kTable[kMaxTokens + 1] = {0, 4, 12, 8, 6};
  return kTable[kT];
}

// Horizontal sums of the first kM (<= 32) vectors of acc into sums[0, kM).
template <int kM>
ADAK_AVX512 inline void ReduceStore(const __m512 (&acc)[32], float* sums) {
#pragma GCC unroll 2
  for (int base = 0; base < kM; base += 16) {
    __m512 v[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) v[i] = base + i < kM ? acc[base + i] : _mm512_setzero_ps();
    _mm512_storeu_ps(sums + base, Reduce16(v));
  }
}

// Software prefetch: the hardware prefetchers restart at every 4 KiB page, i.e. at every row of a 2048-wide
// bf16 matrix, and the kernel streams several rows at once. Prefetching each row 1 KiB ahead into L1, and the
// next register block's rows at the same offset into L2, measured +20% (one thread) to +45% (two threads,
// 4 tokens) weight bandwidth on Zen 5.
constexpr int64_t kPrefetchAheadBytes = 1024;

// Prefetches for the 32-element block at `block` of one row: 1 KiB further on into L1, and rows_ahead_bytes
// further on (the same block of the corresponding row of the next register block) into L2. The addresses are formed as
// integers because they may lie past the end of the matrix; prefetches never fault.
template <class W>
ADAK_AVX512 inline void PrefetchBlock(const typename W::Elem* block, int64_t rows_ahead_bytes) {
  constexpr int64_t kLines = kBlock * static_cast<int64_t>(sizeof(typename W::Elem)) / 64;
  const uintptr_t address = reinterpret_cast<uintptr_t>(block);
#pragma GCC unroll 2
  for (int64_t l = 0; l < kLines; ++l) {
    _mm_prefetch(reinterpret_cast<const char*>(address + kPrefetchAheadBytes + 64 * l), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(address + static_cast<uintptr_t>(rows_ahead_bytes) + 64 * l),
                 _MM_HINT_T1);
  }
}

// sums[t * kR + r] = dot(weight row r, activation row t) over elements [k_begin, k_end) for kR consecutive
// weight rows (row stride `k` elements) and kT tokens. k_begin is a multiple of 32; so is k_end unless it is
// the end of the row. Each weight block is loaded once for all kT tokens; per half-block the kT activation
// vectors are loaded once for all kR rows. The next kR rows (which callers process next) are prefetched.
// The last partial block of kR rows (`rem` < 32 elements from k_full) into acc, for both tile kinds; the
// activations are zero-padded to the block.
template <class W, int kT, int kR>
ADAK_AVX512 inline void AccumulateTail(const typename W::Elem* w, int64_t k, int64_t k_full, int64_t rem,
                                       const float* xp, int64_t xp_stride, __m512 (&acc)[32]) {
#pragma GCC unroll 12
  for (int r = 0; r < kR; ++r) {
    const __m512 lo = W::LoTail(w + r * k + k_full, rem);
    const __m512 hi = W::HiTail(w + r * k + k_full, rem);
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) {
      const float* xt = xp + t * xp_stride + k_full;
      acc[t * kR + r] = _mm512_fmadd_ps(lo, _mm512_load_ps(xt), acc[t * kR + r]);
      acc[t * kR + r] = _mm512_fmadd_ps(hi, _mm512_load_ps(xt + 16), acc[t * kR + r]);
    }
  }
}

template <class W, int kT, int kR>
ADAK_AVX512 inline void DotBlock(const typename W::Elem* w, int64_t k, int64_t k_begin, int64_t k_end, const float* xp,
                                 int64_t xp_stride, float* sums) {
  static_assert(kT * kR <= 32);
  __m512 acc[32];
#pragma GCC unroll 32
  for (int i = 0; i < 32; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t k_full = k_end - (k_end - k_begin) % kBlock;
  const int64_t block_bytes = kR * k * static_cast<int64_t>(sizeof(typename W::Elem));
  for (int64_t kb = k_begin; kb < k_full; kb += kBlock) {
    __m512 x[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) x[t] = _mm512_load_ps(xp + t * xp_stride + kb);
#pragma GCC unroll 12
    for (int r = 0; r < kR; ++r) {
      PrefetchBlock<W>(w + r * k + kb, block_bytes);
      const __m512 lo = W::Lo(w + r * k + kb);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) acc[t * kR + r] = _mm512_fmadd_ps(lo, x[t], acc[t * kR + r]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) x[t] = _mm512_load_ps(xp + t * xp_stride + kb + 16);
#pragma GCC unroll 12
    for (int r = 0; r < kR; ++r) {
      const __m512 hi = W::Hi(w + r * k + kb);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) acc[t * kR + r] = _mm512_fmadd_ps(hi, x[t], acc[t * kR + r]);
    }
  }
  if (k_full < k_end) AccumulateTail<W, kT, kR>(w, k, k_full, k_end - k_full, xp, xp_stride, acc);
  ReduceStore<kT * kR>(acc, sums);
}

// ---- Decode tiles (T <= 4, whole rows): one sequential stream per thread, aligned loads. ----
//
// The hardware prefetchers follow several rows read side by side poorly (the tiles above read kR streams one
// row apart); so each tile instead prefetches the next tile's rows in address order, one cache line per line
// it consumes, and memory sees one sequential stream per thread. Rows that start off a 64-byte boundary
// (mmapped checkpoint tensors are only 8-byte aligned) make every 64-byte load straddle two cache lines; when
// every row has the same offset (a whole number of lines per row) that is a multiple of 4 bytes, blocks are
// instead assembled from aligned loads with one two-source permute. The arithmetic per accumulator (FMA
// order, Reduce16) is the same as DotBlock's, so both give bit-identical results.

// The fp32 lo/hi halves of the 32-element block at p (kShifted: p - shift is read aligned).
template <class W, bool kShifted>
ADAK_AVX512 inline void LoadBlock(const typename W::Elem* p, const RowSource& src, __m512& lo, __m512& hi) {
  if constexpr (kShifted) {
    W::LoadShifted(reinterpret_cast<const char*>(p) - src.shift_bytes, src.idx, lo, hi);
  } else {
    W::Load(p, lo, hi);
  }
}

// Rows per decode tile for kT tokens: kT * kR accumulators + 2 * kT activations + temporaries fit in the 32
// registers, and kR divides the work item (kRowBlock in matmul.cc, 24).
template <int kT>
constexpr int StreamRowsPerTile() {
  constexpr int kTable[kMaxTokens + 1] = {0, 4, 8, 6, 4};
  return kTable[kT];
}

// sums[t * kR + r] = dot(weight row r, activation row t) over whole rows (k elements, row stride k) for kR
// consecutive rows and kT tokens. If `pf` is not null, prefetches from pf on in address order, kR cache lines
// per cache line per row consumed (the next tile's rows).
template <class W, int kT, int kR, bool kShifted>
ADAK_AVX512 inline void DotTileStream(const typename W::Elem* w, int64_t k, const float* xp, int64_t xp_stride,
                                      const RowSource& src, const char* pf, float* sums) {
  static_assert(kT * kR + 2 * kT + 3 <= 32, "tile does not fit in the register file");
  constexpr int64_t kLines = kBlock * static_cast<int64_t>(sizeof(typename W::Elem)) / 64;  // per row per step
  __m512 acc[32];
#pragma GCC unroll 32
  for (int i = 0; i < 32; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t k_full = k - k % kBlock;
  for (int64_t kb = 0; kb < k_full; kb += kBlock) {
    if (pf != nullptr) {
#pragma GCC unroll 32
      for (int64_t j = 0; j < kR * kLines; ++j) _mm_prefetch(pf + 64 * j, _MM_HINT_T0);
      pf += int64_t{64} * kR * kLines;
    }
    __m512 xl[kT], xh[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) {
      xl[t] = _mm512_load_ps(xp + t * xp_stride + kb);
      xh[t] = _mm512_load_ps(xp + t * xp_stride + kb + 16);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) {
      __m512 lo, hi;
      LoadBlock<W, kShifted>(w + r * k + kb, src, lo, hi);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) acc[t * kR + r] = _mm512_fmadd_ps(lo, xl[t], acc[t * kR + r]);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) acc[t * kR + r] = _mm512_fmadd_ps(hi, xh[t], acc[t * kR + r]);
    }
  }
  if (k_full < k) AccumulateTail<W, kT, kR>(w, k, k_full, k - k_full, xp, xp_stride, acc);
  ReduceStore<kT * kR>(acc, sums);
}

// out[t, n] (= or +=) sums[t][n - n0] + bias[n] for n in [n0, n0 + rows).
inline void Epilogue(const MatMulParams& p, const float* sums, int64_t sums_stride, int64_t tokens, float* out,
                     int64_t n0, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    const float bias = BiasAt(p, n0 + r);
    for (int64_t t = 0; t < tokens; ++t) {
      float* o = out + t * p.out_stride + n0 + r;
      const float v = sums[t * sums_stride + r] + bias;
      *o = p.accumulate ? *o + v : v;
    }
  }
}

// Activation bytes above which the kernel walks K in chunks so the activations it streams stay in L1.
constexpr int64_t kL1ActivationBytes = 40 << 10;
constexpr int64_t kChunkRows = 48;  // rows per K-chunked block (a multiple of every RowsPerBlock)

// Rows [n_begin, n_end) for kT tokens with decode tiles (DotTileStream), whole rows at a time.
template <class W, int kT>
ADAK_AVX512 void DotRowRangeStream(const MatMulParams& p, const float* xp, int64_t xp_stride, float* out,
                                   int64_t n_begin, int64_t n_end) {
  constexpr int kR = StreamRowsPerTile<kT>();
  const auto* w = static_cast<const typename W::Elem*>(p.w);
  const int64_t k = p.k;
  const RowSource src = SourceFor(w, k * static_cast<int64_t>(sizeof(typename W::Elem)));
  // The next tile's rows, or nothing after the last tile (the rows past n_end are another work item's).
  auto pf_for = [&](int64_t next) -> const char* {
    return next < n_end ? reinterpret_cast<const char*>(w + next * k) : nullptr;
  };
  alignas(64) float sums[32];
  int64_t n = n_begin;
  for (; n + kR <= n_end; n += kR) {
    // Aligned loads touch up to 63 bytes before a tile's first row and after its last one (in the same cache
    // lines, so they cannot fault); only inside the matrix are those bytes ours to read.
    if (src.shifted && n > 0 && n + kR < p.n) {
      DotTileStream<W, kT, kR, true>(w + n * k, k, xp, xp_stride, src, pf_for(n + kR), sums);
    } else {
      DotTileStream<W, kT, kR, false>(w + n * k, k, xp, xp_stride, src, pf_for(n + kR), sums);
    }
    Epilogue(p, sums, kR, kT, out, n, kR);
  }
  for (; n < n_end; ++n) {
    DotTileStream<W, kT, 1, false>(w + n * k, k, xp, xp_stride, src, pf_for(n + 1), sums);
    Epilogue(p, sums, 1, kT, out, n, 1);
  }
}

// Rows [n_begin, n_end) for kT tokens whose packed activations start at xp and outputs at out; `stream`: with
// decode tiles where the activations fit in L1.
template <class W, int kT>
ADAK_AVX512 void DotRowRange(const MatMulParams& p, const float* xp, int64_t xp_stride, float* out, int64_t n_begin,
                             int64_t n_end, bool stream) {
  constexpr int kR = RowsPerBlock<kT>();
  const auto* w = static_cast<const typename W::Elem*>(p.w);
  const int64_t k = p.k;
  const int64_t k_chunk =
      std::max<int64_t>(kBlock, kL1ActivationBytes / (kT * static_cast<int64_t>(sizeof(float))) / kBlock * kBlock);
  alignas(64) float sums[32];
  if (k <= k_chunk && stream) {
    DotRowRangeStream<W, kT>(p, xp, xp_stride, out, n_begin, n_end);
    return;
  }
  if (k <= k_chunk) {
    int64_t n = n_begin;
    for (; n + kR <= n_end; n += kR) {
      DotBlock<W, kT, kR>(w + n * k, k, 0, k, xp, xp_stride, sums);
      Epilogue(p, sums, kR, kT, out, n, kR);
    }
    for (; n < n_end; ++n) {
      DotBlock<W, kT, 1>(w + n * k, k, 0, k, xp, xp_stride, sums);
      Epilogue(p, sums, 1, kT, out, n, 1);
    }
    return;
  }
  // The activations do not fit in L1: for a block of rows, walk K in chunks, all rows per chunk, summing the
  // chunks' dot products in `partial` (so each weight is still read once).
  alignas(64) float partial[kT * kChunkRows];
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, n_end - n0);
    std::fill(partial, partial + kT * rows, 0.0f);
    for (int64_t k0 = 0; k0 < k; k0 += k_chunk) {
      const int64_t k1 = std::min(k, k0 + k_chunk);
      int64_t r = 0;
      for (; r + kR <= rows; r += kR) {
        DotBlock<W, kT, kR>(w + (n0 + r) * k, k, k0, k1, xp, xp_stride, sums);
        for (int t = 0; t < kT; ++t) {
          for (int i = 0; i < kR; ++i) partial[t * rows + r + i] += sums[t * kR + i];
        }
      }
      for (; r < rows; ++r) {
        DotBlock<W, kT, 1>(w + (n0 + r) * k, k, k0, k1, xp, xp_stride, sums);
        for (int t = 0; t < kT; ++t) partial[t * rows + r] += sums[t];
      }
    }
    Epilogue(p, partial, rows, kT, out, n0, rows);
  }
}

template <class W>
ADAK_AVX512 void DotRowRangeAnyT(const MatMulParams& p, int64_t tokens, const float* xp, int64_t xp_stride, float* out,
                                 int64_t n_begin, int64_t n_end, bool stream) {
  switch (tokens) {
    case 1: return DotRowRange<W, 1>(p, xp, xp_stride, out, n_begin, n_end, stream);
    case 2: return DotRowRange<W, 2>(p, xp, xp_stride, out, n_begin, n_end, stream);
    case 3: return DotRowRange<W, 3>(p, xp, xp_stride, out, n_begin, n_end, stream);
    default: return DotRowRange<W, 4>(p, xp, xp_stride, out, n_begin, n_end, stream);
  }
}

template <class W>
ADAK_AVX512 void Rows(const MatMulParams& p, const float* xp, int64_t xp_stride, int64_t n_begin, int64_t n_end,
                      bool stream) {
  if (p.rows <= kMaxTokens) {
    DotRowRangeAnyT<W>(p, p.rows, xp, xp_stride, p.out, n_begin, n_end, stream);
    return;
  }
  // More tokens than one register block takes: groups of 4 tokens over a block of rows small enough to stay
  // in L2, so each weight is still read from memory once.
  const int64_t row_bytes = std::max<int64_t>(1, p.k * static_cast<int64_t>(sizeof(typename W::Elem)));
  const int64_t block_rows = std::max<int64_t>(8, (256 << 10) / row_bytes);
  for (int64_t n0 = n_begin; n0 < n_end; n0 += block_rows) {
    const int64_t n1 = std::min(n_end, n0 + block_rows);
    for (int64_t t0 = 0; t0 < p.rows; t0 += kMaxTokens) {
      const int64_t tokens = std::min<int64_t>(kMaxTokens, p.rows - t0);
      DotRowRangeAnyT<W>(p, tokens, xp + t0 * xp_stride, xp_stride, p.out + t0 * p.out_stride, n0, n1,
                         /*stream=*/false);
    }
  }
}

// ---- The bf16 dot-product path (DotPrecision::kBf16, BF16 weights; avx512_bf16.h). ----
//
// One kind of tile for every T <= 4: kR whole rows x kT tokens, the activations rounded to bf16 as they are
// loaded (once per 32 elements per tile), prefetching the next tile's rows in address order as DotTileStream.
// More tokens run in groups of 4 over blocks of rows that stay in L2, as Rows does.

// Rows per tile for kT tokens: kT * kR accumulators + kT activation vectors + temporaries fit in 32 registers,
// and kR divides kRowBlock (24, matmul.cc).
template <int kT>
constexpr int PairRowsPerTile() {
  constexpr int kTable[kMaxTokens + 1] = {0, 4, 8, 6, 6};
  return kTable[kT];
}

// sums[t * kR + r] = dot(row r, activation row t), the activations rounded to bf16, over whole rows.
template <int kT, int kR, bool kShifted>
ADAK_AVX512_BF16 inline void PairDotTile(const uint16_t* w, int64_t k, const float* xp, int64_t xp_stride,
                                         const RowSource& src, const char* pf, float* sums) {
  using W = avx512::Bf16PairWeights;
  static_assert(kT * kR + kT + 2 <= 32, "tile does not fit in the register file");
  __m512 acc[32];
#pragma GCC unroll 32
  for (int i = 0; i < 32; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t k_full = k - k % kBlock;
  const int64_t row_bytes = k * static_cast<int64_t>(sizeof(uint16_t));
  const char* wa = reinterpret_cast<const char*>(w) - src.shift_bytes;
  for (int64_t kb = 0; kb < k_full; kb += kBlock) {
    if (pf != nullptr) {  // one line per row per step
#pragma GCC unroll 8
      for (int64_t j = 0; j < kR; ++j) _mm_prefetch(pf + 64 * j, _MM_HINT_T0);
      pf += int64_t{64} * kR;
    }
    __m512bh x[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) x[t] = avx512::LoadXPairs(xp + t * xp_stride + kb);
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) {
      const __m512i wv = kShifted ? W::LoadShifted(wa + r * row_bytes + kb * 2, src.idx) : W::Load(w + r * k + kb);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) acc[t * kR + r] = avx512::DotPairs(wv, x[t], acc[t * kR + r]);
    }
  }
  if (k_full < k) {  // the packed activations are zero-padded to the block
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) {
      const __m512i wv = W::LoadTail(w + r * k + k_full, k - k_full);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        acc[t * kR + r] = avx512::DotPairs(wv, avx512::LoadXPairs(xp + t * xp_stride + k_full), acc[t * kR + r]);
      }
    }
  }
  ReduceStore<kT * kR>(acc, sums);
}

// Rows [n_begin, n_end) for kT tokens; `prefetch`: each tile prefetches the next one's rows (false when the rows
// come from L2, read there by an earlier group of tokens).
template <int kT>
ADAK_AVX512_BF16 void PairRowRange(const MatMulParams& p, const float* xp, int64_t xp_stride, float* out,
                                   int64_t n_begin, int64_t n_end, bool prefetch) {
  constexpr int kR = PairRowsPerTile<kT>();
  const auto* w = static_cast<const uint16_t*>(p.w);
  const int64_t k = p.k;
  const RowSource src = SourceFor(w, k * static_cast<int64_t>(sizeof(uint16_t)));
  auto pf_for = [&](int64_t next) -> const char* {
    return prefetch && next < n_end ? reinterpret_cast<const char*>(w + next * k) : nullptr;
  };
  alignas(64) float sums[32];
  int64_t n = n_begin;
  for (; n + kR <= n_end; n += kR) {
    // As in DotRowRangeStream: aligned loads may touch bytes just outside the matrix, so not at its ends.
    if (src.shifted && n > 0 && n + kR < p.n) {
      PairDotTile<kT, kR, true>(w + n * k, k, xp, xp_stride, src, pf_for(n + kR), sums);
    } else {
      PairDotTile<kT, kR, false>(w + n * k, k, xp, xp_stride, RowSource{}, pf_for(n + kR), sums);
    }
    Epilogue(p, sums, kR, kT, out, n, kR);
  }
  for (; n < n_end; ++n) {
    PairDotTile<kT, 1, false>(w + n * k, k, xp, xp_stride, RowSource{}, pf_for(n + 1), sums);
    Epilogue(p, sums, 1, kT, out, n, 1);
  }
}

}  // namespace

ADAK_AVX512_BF16 void MatMulRowsAvx512Bf16(const MatMulParams& p, const float* xp, int64_t xp_stride, int64_t n_begin,
                                           int64_t n_end) {
  auto group = [&](int64_t t0, int64_t n0, int64_t n1) ADAK_AVX512_BF16 {
    const float* x = xp + t0 * xp_stride;
    float* out = p.out + t0 * p.out_stride;
    const bool prefetch = t0 == 0;
    switch (std::min<int64_t>(kMaxTokens, p.rows - t0)) {
      case 1: return PairRowRange<1>(p, x, xp_stride, out, n0, n1, prefetch);
      case 2: return PairRowRange<2>(p, x, xp_stride, out, n0, n1, prefetch);
      case 3: return PairRowRange<3>(p, x, xp_stride, out, n0, n1, prefetch);
      default: return PairRowRange<4>(p, x, xp_stride, out, n0, n1, prefetch);
    }
  };
  if (p.rows <= kMaxTokens) {
    group(0, n_begin, n_end);
    return;
  }
  // Groups of 4 tokens over blocks of rows small enough to stay in L2 (as Rows).
  const int64_t row_bytes = std::max<int64_t>(1, p.k * static_cast<int64_t>(sizeof(uint16_t)));
  const int64_t block_rows = std::max<int64_t>(24, (256 << 10) / row_bytes / 24 * 24);
  for (int64_t n0 = n_begin; n0 < n_end; n0 += block_rows) {
    const int64_t n1 = std::min(n_end, n0 + block_rows);
    for (int64_t t0 = 0; t0 < p.rows; t0 += kMaxTokens) group(t0, n0, n1);
  }
}

ADAK_AVX512 void MatMulRowsAvx512(const MatMulParams& p, const float* xp, int64_t xp_stride, int64_t n_begin,
                                  int64_t n_end, bool stream_decode) {
  switch (p.w_dtype) {
    case DType::kBF16: return Rows<Bf16Weights>(p, xp, xp_stride, n_begin, n_end, stream_decode);
    case DType::kF16: return Rows<F16Weights>(p, xp, xp_stride, n_begin, n_end, stream_decode);
    default: return Rows<F32Weights>(p, xp, xp_stride, n_begin, n_end, stream_decode);
  }
}

ADAK_AVX512 void WidenToF32Avx512(const void* src, DType dtype, int64_t count, float* dst) {
  const int64_t full = count - count % 16;
  const auto tail = static_cast<__mmask16>((1u << (count - full)) - 1u);
  if (dtype == DType::kBF16) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < full; i += 16) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
      _mm512_storeu_si512(dst + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
    }
    if (full < count) {
      const __m256i v = _mm256_maskz_loadu_epi16(tail, s + full);
      _mm512_mask_storeu_epi32(dst + full, tail, _mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
    }
  } else if (dtype == DType::kF16) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < full; i += 16) {
      _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
    }
    if (full < count) {
      _mm512_mask_storeu_ps(dst + full, tail, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail, s + full)));
    }
  } else {
    std::copy_n(static_cast<const float*>(src), count, dst);
  }
}

}  // namespace adak::kernels::internal
