// GCC 12's AVX-512 headers self-initialise `_mm512_undefined_*` (GCC PR 105593); see matmul_avx512.cc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "kernels/cpu/paged_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/avx512_math.h"
#include "kernels/cpu/avx512_weights.h"
#include "kernels/cpu/matmul.h"

namespace adak::kernels {
namespace {

// Element i of a cache row, widened to fp32.
inline float Load(const float* row, int64_t i) { return row[i]; }
inline float Load(const uint16_t* row, int64_t i) { return Bf16ToF32(row[i]); }

template <typename T>
const T* CacheRow(const void* cache, const KvCacheLayout& l, int64_t block, int64_t offset, int64_t kv_head) {
  return static_cast<const T*>(cache) + ((block * l.block_size + offset) * l.kv_heads + kv_head) * l.head_dim;
}

template <typename T>
float Dot(const float* a, const T* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * Load(b, i + j);
  }
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += a[i] * Load(b, i);
  return sum;
}

// What one (token t, query head h) pair reads and writes; `scores` grown to hold positions 0..pos.
struct HeadTask {
  int64_t kvh;           // the kv head h reads (GQA)
  int64_t pos;           // t's position: it attends to keys 0..pos
  const int32_t* table;  // its sequence's block table
  const float* q;        // its query row, head_dim floats
  float* out;            // its output row, head_dim floats
};

HeadTask HeadOf(const PagedAttentionParams& p, int64_t t, int64_t h, std::vector<float>& scores) {
  const KvCacheLayout& l = p.layout;
  const int64_t pos = p.positions[t];
  if (static_cast<int64_t>(scores.size()) < pos + 1) scores.resize(static_cast<size_t>(pos + 1));
  return HeadTask{h / (p.heads / l.kv_heads), pos,
                  p.block_tables + static_cast<int64_t>(p.token_seq[t]) * p.max_blocks_per_seq,
                  p.q + t * p.q_stride + h * l.head_dim, p.out + t * p.out_stride + h * l.head_dim};
}

// One (token, head) pair: scores into `scores` (grown to position + 1), output row. T: the cache element.
template <typename T>
void AttendOne(const PagedAttentionParams& p, int64_t t, int64_t h, std::vector<float>& scores) {
  const KvCacheLayout& l = p.layout;
  const auto [kvh, pos, table, q, out] = HeadOf(p, t, h, scores);

  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j <= pos; ++j) {
    const T* k = CacheRow<T>(p.k_cache, l, table[j / l.block_size], j % l.block_size, kvh);
    const float s = Dot(q, k, l.head_dim) * p.scale;
    scores[static_cast<size_t>(j)] = s;
    max_score = std::max(max_score, s);
  }
  float denom = 0.0f;
  for (int64_t j = 0; j <= pos; ++j) {
    const float e = std::exp(scores[static_cast<size_t>(j)] - max_score);
    scores[static_cast<size_t>(j)] = e;
    denom += e;
  }
  const float inv = 1.0f / denom;
  std::memset(out, 0, sizeof(float) * static_cast<size_t>(l.head_dim));
  for (int64_t j = 0; j <= pos; ++j) {
    const T* v = CacheRow<T>(p.v_cache, l, table[j / l.block_size], j % l.block_size, kvh);
    const float w = scores[static_cast<size_t>(j)] * inv;
    for (int64_t d = 0; d < l.head_dim; ++d) out[d] += w * Load(v, d);
  }
}

// The AVX-512 twin of AttendOne for head_dim % 16 == 0: the same two passes, 16 lanes at a time, and the
// softmax's exp vectorised (the sums are reassociated and exp is ~1 ulp, so results differ from AttendOne in
// the last bits). Only reached after the runtime CPU check; every function here carries the target attribute
// and has internal linkage, so no AVX-512 code leaks into inline functions shared with the rest of the binary.
ADAK_AVX512 inline __m512 Load16(const float* row) { return _mm512_loadu_ps(row); }
ADAK_AVX512 inline __m512 Load16(const uint16_t* row) {
  const __m256i half = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}

template <typename T>
ADAK_AVX512 void AttendOneAvx512(const PagedAttentionParams& p, int64_t t, int64_t h, std::vector<float>& scores) {
  const KvCacheLayout& l = p.layout;
  const auto [kvh, pos, table, q, out] = HeadOf(p, t, h, scores);

  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j <= pos; ++j) {
    const T* k = CacheRow<T>(p.k_cache, l, table[j / l.block_size], j % l.block_size, kvh);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t d = 0; d < l.head_dim; d += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), Load16(k + d), acc);
    const float s = _mm512_reduce_add_ps(acc) * p.scale;
    scores[static_cast<size_t>(j)] = s;
    max_score = std::max(max_score, s);
  }
  // exp(s - max) 16 scores at a time (the vector exp, ~1 ulp), the last ones masked.
  const __m512 max_v = _mm512_set1_ps(max_score);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j <= pos; j += 16) {
    const auto m = static_cast<__mmask16>(pos + 1 - j >= 16 ? 0xffff : (1u << (pos + 1 - j)) - 1u);
    float* s = scores.data() + j;
    const __m512 e = internal::avx512::Exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s), max_v));
    _mm512_mask_storeu_ps(s, m, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(m, e));
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t d = 0; d < l.head_dim; d += 16) _mm512_storeu_ps(out + d, _mm512_setzero_ps());
  for (int64_t j = 0; j <= pos; ++j) {
    const T* v = CacheRow<T>(p.v_cache, l, table[j / l.block_size], j % l.block_size, kvh);
    const __m512 w = _mm512_mul_ps(_mm512_set1_ps(scores[static_cast<size_t>(j)]), inv);
    for (int64_t d = 0; d < l.head_dim; d += 16) {
      _mm512_storeu_ps(out + d, _mm512_fmadd_ps(w, Load16(v + d), _mm512_loadu_ps(out + d)));
    }
  }
}

template <typename T>
void Attend(const PagedAttentionParams& p, ThreadPool* pool) {
  const bool avx512 = p.layout.head_dim % 16 == 0 && DetectedMatMulIsa() == MatMulIsaKind::kAvx512;
  pool->ParallelFor(p.rows * p.heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t i = begin; i < end; ++i) {
      if (avx512) {
        AttendOneAvx512<T>(p, i / p.heads, i % p.heads, scores);
      } else {
        AttendOne<T>(p, i / p.heads, i % p.heads, scores);
      }
    }
  });
}

template <typename T>
void AttendReference(const PagedAttentionParams& p) {
  const KvCacheLayout& l = p.layout;
  const int64_t group = p.heads / l.kv_heads;
  for (int64_t t = 0; t < p.rows; ++t) {
    const int32_t* table = p.block_tables + static_cast<int64_t>(p.token_seq[t]) * p.max_blocks_per_seq;
    const int64_t pos = p.positions[t];
    for (int64_t h = 0; h < p.heads; ++h) {
      const float* q = p.q + t * p.q_stride + h * l.head_dim;
      std::vector<double> s(static_cast<size_t>(pos + 1));
      double mx = -1e300;
      for (int64_t j = 0; j <= pos; ++j) {
        const T* k = CacheRow<T>(p.k_cache, l, table[j / l.block_size], j % l.block_size, h / group);
        double dot = 0;
        for (int64_t d = 0; d < l.head_dim; ++d) dot += static_cast<double>(q[d]) * Load(k, d);
        s[static_cast<size_t>(j)] = dot * p.scale;
        mx = std::max(mx, s[static_cast<size_t>(j)]);
      }
      double denom = 0;
      for (double& x : s) denom += (x = std::exp(x - mx));
      for (int64_t d = 0; d < l.head_dim; ++d) {
        double acc = 0;
        for (int64_t j = 0; j <= pos; ++j) {
          acc += s[static_cast<size_t>(j)] *
                 Load(CacheRow<T>(p.v_cache, l, table[j / l.block_size], j % l.block_size, h / group), d);
        }
        p.out[t * p.out_stride + h * l.head_dim + d] = static_cast<float>(acc / denom);
      }
    }
  }
}

}  // namespace

void WriteKvCache(const WriteKvParams& p, ThreadPool* pool) {
  const int64_t row = p.layout.kv_heads * p.layout.head_dim;
  const bool bf16 = p.cache_dtype == DType::kBF16;
  pool->ParallelFor(p.rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t slot = p.slots[t];
      const float* k = p.k + t * p.stride;
      const float* v = p.v + t * p.stride;
      if (bf16) {
        uint16_t* kc = static_cast<uint16_t*>(p.k_cache) + slot * row;
        uint16_t* vc = static_cast<uint16_t*>(p.v_cache) + slot * row;
        for (int64_t i = 0; i < row; ++i) {
          kc[i] = F32ToBf16(k[i]);
          vc[i] = F32ToBf16(v[i]);
        }
      } else {
        std::memcpy(static_cast<float*>(p.k_cache) + slot * row, k, sizeof(float) * static_cast<size_t>(row));
        std::memcpy(static_cast<float*>(p.v_cache) + slot * row, v, sizeof(float) * static_cast<size_t>(row));
      }
    }
  });
}

void PagedAttention(const PagedAttentionParams& p, ThreadPool* pool) {
  if (p.cache_dtype == DType::kBF16) {
    Attend<uint16_t>(p, pool);
  } else {
    Attend<float>(p, pool);
  }
}

void PagedAttentionReference(const PagedAttentionParams& p) {
  if (p.cache_dtype == DType::kBF16) {
    AttendReference<uint16_t>(p);
  } else {
    AttendReference<float>(p);
  }
}

}  // namespace adak::kernels
