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

#include "kernels/cpu/paged_attention.h"

namespace adak::kernels::cuda {

// k, v into the cache slots (rounded to nearest even for a bf16 cache), as kernels::WriteKvCache.
void LaunchWriteKv(const WriteKvParams& p, cudaStream_t stream);

// The largest head_dim the kernel takes (its accumulator lives in registers: head_dim / blockDim per thread).
inline constexpr int64_t kMaxAttentionHeadDim = 512;

// Causal paged attention, as kernels::PagedAttention (device pointers in `p`).
void LaunchPagedAttention(const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_ATTENTION_H_
