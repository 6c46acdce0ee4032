// Causal attention over a paged KV cache (vLLM layout), for a batch of query tokens from many sequences.
//
// The cache of one layer is [num_blocks, block_size, kv_heads, head_dim] for K and for V, in fp32 or bf16
// (`cache_dtype`: WriteKvCache rounds to nearest even into a bf16 cache; reads widen to fp32, so every
// product and sum is fp32 either way). A sequence's
// block table maps its logical block j (positions [j*block_size, (j+1)*block_size)) to a physical block.
// Query token t of sequence s = token_seq[t] at position p = positions[t] attends to keys 0..p of s (its
// own key included: write the batch's K/V with WriteKvCache first). GQA: query head h reads kv head
// h / (heads / kv_heads). Softmax in fp32. On a CPU with AVX-512 and head_dim % 16 == 0 the dot products and the
// weighted sum of V run 16 lanes at a time (sums reassociated: equal to the portable loop within rounding).
// Stateless.
#ifndef ADAK_KERNELS_CPU_PAGED_ATTENTION_H_
#define ADAK_KERNELS_CPU_PAGED_ATTENTION_H_

#include <cstdint>

#include "base/dtype.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

struct KvCacheLayout {
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
};

struct WriteKvParams {
  const float* k = nullptr;  // [T, kv_heads * head_dim], row stride `stride`
  const float* v = nullptr;  // [T, kv_heads * head_dim], row stride `stride`
  int64_t stride = 0;
  int64_t rows = 0;                // T
  const int32_t* slots = nullptr;  // [T] physical slot = block * block_size + offset
  KvCacheLayout layout;
  void* k_cache = nullptr;  // elements of cache_dtype
  void* v_cache = nullptr;
  DType cache_dtype = DType::kF32;  // kF32 or kBF16
};

// REQUIRES: every slot < num_blocks * block_size; cache_dtype kF32 or kBF16.
void WriteKvCache(const WriteKvParams& p, ThreadPool* pool);

struct PagedAttentionParams {
  const float* q = nullptr;  // [T, heads * head_dim], row stride q_stride
  int64_t q_stride = 0;
  int64_t rows = 0;  // T
  int64_t heads = 0;
  KvCacheLayout layout;
  const void* k_cache = nullptr;  // elements of cache_dtype
  const void* v_cache = nullptr;
  DType cache_dtype = DType::kF32;        // kF32 or kBF16
  const int32_t* token_seq = nullptr;     // [T] sequence index of each query token
  const int32_t* positions = nullptr;     // [T]
  const int32_t* block_tables = nullptr;  // [S, max_blocks_per_seq]
  int64_t max_blocks_per_seq = 0;
  float scale = 1.0f;    // usually 1/sqrt(head_dim)
  float* out = nullptr;  // [T, heads * head_dim], row stride out_stride
  int64_t out_stride = 0;
};

// REQUIRES: positions[t] / block_size < max_blocks_per_seq, the table entries are valid blocks, cache_dtype
// kF32 or kBF16.
void PagedAttention(const PagedAttentionParams& p, ThreadPool* pool);
// Two-pass softmax in double; the test oracle.
void PagedAttentionReference(const PagedAttentionParams& p);

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_PAGED_ATTENTION_H_
