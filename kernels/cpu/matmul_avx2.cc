// AVX2 + FMA + F16C kernels for MatMul, the path for x86-64 CPUs without AVX-512. Same structure as
// matmul_avx512.cc with 256-bit vectors and blocks of 16 weight elements per row; only reached after a runtime
// CPU check, and every function carries a target attribute (no per-file -m flags).

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

#include "base/dtype.h"
#include "kernels/cpu/avx2_weights.h"
#include "kernels/cpu/matmul.h"

namespace adak::kernels::internal {
namespace {

constexpr int kBlock = 16;     // weight elements per row per step
constexpr int kMaxTokens = 4;  // tokens per register block

using avx2::Bf16Weights;
using avx2::F16Weights;
using avx2::F32Weights;

// Horizontal sums of 8 vectors: lane i of the result is the sum of the lanes of v[i].
ADAK_AVX2 inline __m256 Reduce8(const __m256 (&v)[8]) {
  const __m256 s01 = _mm256_hadd_ps(v[0], v[1]);
  const __m256 s23 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 s45 = _mm256_hadd_ps(v[4], v[5]);
  const __m256 s67 = _mm256_hadd_ps(v[6], v[7]);
  const __m256 s0123 = _mm256_hadd_ps(s01, s23);
  const __m256 s4567 = _mm256_hadd_ps(s45, s67);
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

inline float BiasAt(const MatMulParams& p, int64_t n) {
  if (p.bias == nullptr) return 0.0f;
  switch (p.bias_dtype) {
    case DType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(p.bias)[n]);
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(p.bias)[n]);
    default: return static_cast<const float*>(p.bias)[n];
  }
}

// Software prefetch, as in matmul_avx512.cc: each row 1 KiB ahead into L1 and the same offset of the next
// register block's rows into L2 (the hardware prefetchers restart at every 4 KiB page). One prefetch per
// 16-element step: every line is covered (twice for 16-bit weights, which is cheap).
constexpr uintptr_t kPrefetchAheadBytes = 1024;

template <class W>
ADAK_AVX2 inline void PrefetchBlock(const typename W::Elem* block, int64_t rows_ahead_bytes) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(block);  // may run past the matrix: never faults
  _mm_prefetch(reinterpret_cast<const char*>(address + kPrefetchAheadBytes), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(address + static_cast<uintptr_t>(rows_ahead_bytes)), _MM_HINT_T1);
}

// Rows per register block for kT tokens: kR * kT <= 8 accumulators + kT activations + a weight temporary fit
// in the 16 vector registers.
template <int kT>
constexpr int RowsPerBlock() {
  constexpr int kTable[kMaxTokens + 1] = {0, 8, 4, 2, 2};
  return kTable[kT];
}

// out[t, n0 + r] (= or +=) dot(weight row r, activation row t) + bias for kR consecutive rows and kT tokens.
template <class W, int kT, int kR>
ADAK_AVX2 inline void DotRows(const MatMulParams& p, const typename W::Elem* w, const float* xp, int64_t xp_stride,
                              float* out, int64_t n0) {
  static_assert(kT * kR <= 8);
  const int64_t k = p.k;
  __m256 acc[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
  const int64_t k_full = k - k % kBlock;
  const int64_t block_bytes = kR * k * static_cast<int64_t>(sizeof(typename W::Elem));
  auto step = [&](const typename W::Elem*(&rows)[kR], int64_t kb, int64_t offset, bool prefetch) ADAK_AVX2 {
    __m256 x[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) x[t] = _mm256_load_ps(xp + t * xp_stride + kb);
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) {
      if (prefetch) PrefetchBlock<W>(rows[r] + offset, block_bytes);
      const __m256 lo = W::Lo(rows[r] + offset);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) acc[t * kR + r] = _mm256_fmadd_ps(lo, x[t], acc[t * kR + r]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) x[t] = _mm256_load_ps(xp + t * xp_stride + kb + 8);
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) {
      const __m256 hi = W::Hi(rows[r] + offset);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) acc[t * kR + r] = _mm256_fmadd_ps(hi, x[t], acc[t * kR + r]);
    }
  };
  const typename W::Elem* rows[kR];
  for (int r = 0; r < kR; ++r) rows[r] = w + r * k;
  for (int64_t kb = 0; kb < k_full; kb += kBlock) step(rows, kb, kb, true);
  if (k_full < k) {
    // The last partial block of each row, zero-filled to kBlock elements (AVX2 has no masked 16-bit loads);
    // the activations are zero-padded to the block.
    typename W::Elem tail[kR][kBlock] = {};
    const typename W::Elem* tails[kR];
    for (int r = 0; r < kR; ++r) {
      std::memcpy(tail[r], rows[r] + k_full, static_cast<size_t>(k - k_full) * sizeof(tail[r][0]));
      tails[r] = tail[r];
    }
    step(tails, k_full, 0, false);
  }
  alignas(32) float sums[8];
  _mm256_store_ps(sums, Reduce8(acc));
  for (int r = 0; r < kR; ++r) {
    const float bias = BiasAt(p, n0 + r);
    for (int t = 0; t < kT; ++t) {
      float* o = out + t * p.out_stride + n0 + r;
      const float v = sums[t * kR + r] + bias;
      *o = p.accumulate ? *o + v : v;
    }
  }
}

template <class W, int kT>
ADAK_AVX2 void DotRowRange(const MatMulParams& p, const float* xp, int64_t xp_stride, float* out, int64_t n_begin,
                           int64_t n_end) {
  constexpr int kR = RowsPerBlock<kT>();
  const auto* w = static_cast<const typename W::Elem*>(p.w);
  int64_t n = n_begin;
  for (; n + kR <= n_end; n += kR) DotRows<W, kT, kR>(p, w + n * p.k, xp, xp_stride, out, n);
  for (; n < n_end; ++n) DotRows<W, kT, 1>(p, w + n * p.k, xp, xp_stride, out, n);
}

template <class W>
ADAK_AVX2 void DotRowRangeAnyT(const MatMulParams& p, int64_t tokens, const float* xp, int64_t xp_stride, float* out,
                               int64_t n_begin, int64_t n_end) {
  switch (tokens) {
    case 1: return DotRowRange<W, 1>(p, xp, xp_stride, out, n_begin, n_end);
    case 2: return DotRowRange<W, 2>(p, xp, xp_stride, out, n_begin, n_end);
    case 3: return DotRowRange<W, 3>(p, xp, xp_stride, out, n_begin, n_end);
    default: return DotRowRange<W, 4>(p, xp, xp_stride, out, n_begin, n_end);
  }
}

template <class W>
ADAK_AVX2 void Rows(const MatMulParams& p, const float* xp, int64_t xp_stride, int64_t n_begin, int64_t n_end) {
  if (p.rows <= kMaxTokens) {
    DotRowRangeAnyT<W>(p, p.rows, xp, xp_stride, p.out, n_begin, n_end);
    return;
  }
  // Groups of 4 tokens over a block of rows small enough to stay in L2: each weight is read from memory once.
  const int64_t row_bytes = std::max<int64_t>(1, p.k * static_cast<int64_t>(sizeof(typename W::Elem)));
  const int64_t block_rows = std::max<int64_t>(8, (256 << 10) / row_bytes);
  for (int64_t n0 = n_begin; n0 < n_end; n0 += block_rows) {
    const int64_t n1 = std::min(n_end, n0 + block_rows);
    for (int64_t t0 = 0; t0 < p.rows; t0 += kMaxTokens) {
      const int64_t tokens = std::min<int64_t>(kMaxTokens, p.rows - t0);
      DotRowRangeAnyT<W>(p, tokens, xp + t0 * xp_stride, xp_stride, p.out + t0 * p.out_stride, n0, n1);
    }
  }
}

}  // namespace

ADAK_AVX2 void MatMulRowsAvx2(const MatMulParams& p, const float* xp, int64_t xp_stride, int64_t n_begin,
                              int64_t n_end) {
  switch (p.w_dtype) {
    case DType::kBF16: return Rows<Bf16Weights>(p, xp, xp_stride, n_begin, n_end);
    case DType::kF16: return Rows<F16Weights>(p, xp, xp_stride, n_begin, n_end);
    default: return Rows<F32Weights>(p, xp, xp_stride, n_begin, n_end);
  }
}

ADAK_AVX2 void WidenToF32Avx2(const void* src, DType dtype, int64_t count, float* dst) {
  const int64_t full = count - count % 8;
  if (dtype == DType::kBF16) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < full; i += 8) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
    }
    for (int64_t i = full; i < count; ++i) dst[i] = Bf16ToF32(s[i]);
  } else if (dtype == DType::kF16) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < full; i += 8) {
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
    }
    for (int64_t i = full; i < count; ++i) dst[i] = F16ToF32(s[i]);
  } else {
    std::copy_n(static_cast<const float*>(src), count, dst);
  }
}

}  // namespace adak::kernels::internal
