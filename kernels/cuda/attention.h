// Paged attention on the device: the KV-cache write and causal attention over the paged cache (vLLM layout),
// the twins of kernels/cpu/paged_attention.h (read it for the layout, GQA and causality contract).
//
// The attention kernel runs one thread block per (query token, head) and streams the token's keys 0..p in
// chunks of the block size with an online softmax in fp32 (running max and sum, the accumulator rescaled per
// chunk), so it serves decode and chunked prefill alike with no scratch. K and V rows are read from the cache in
// its dtype (fp32 or bf16) and widened to fp32. Launchers enqueue on `stream`; pointers are device memory.
#ifndef ADAK_KERNELS_CUDA_ATTENTION_H_
#define ADAK_KERNELS_CUDA_ATTENTION_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "base/dtype.h"

namespace adak::kernels::cuda {

struct CacheLayout {
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
};

// k, v [rows, kv_heads * head_dim] (row stride `stride`) into the cache slots (rounded to nearest even for bf16).
void LaunchWriteKv(const float* k, const float* v, int64_t stride, int64_t rows, const int32_t* slots,
                   const CacheLayout& layout, void* k_cache, void* v_cache, DType cache_dtype, cudaStream_t stream);

struct DeviceAttentionParams {
  const float* q = nullptr;  // [rows, heads * head_dim], row stride q_stride
  int64_t q_stride = 0;
  int64_t rows = 0;
  int64_t heads = 0;
  CacheLayout layout;
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  DType cache_dtype = DType::kF32;
  const int32_t* token_seq = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* block_tables = nullptr;
  int64_t max_blocks_per_seq = 0;
  float scale = 1.0f;
  float* out = nullptr;  // [rows, heads * head_dim], row stride out_stride
  int64_t out_stride = 0;
};

// The largest head_dim the kernel takes (its accumulator lives in registers: head_dim / blockDim per thread).
inline constexpr int64_t kMaxAttentionHeadDim = 512;

void LaunchPagedAttention(const DeviceAttentionParams& p, cudaStream_t stream);

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_ATTENTION_H_
