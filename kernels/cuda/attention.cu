#include "kernels/cuda/attention.h"

#include <math.h>

#include "kernels/cuda/device_math.cuh"

namespace adak::kernels::cuda {
namespace {

constexpr int kThreads = 128;  // positions per chunk, and threads sharing the output dims
constexpr int kMaxDimsPerThread = static_cast<int>(kMaxAttentionHeadDim / kThreads);

template <class T>
__device__ inline const T* CacheRow(const void* cache, const KvCacheLayout& l, int64_t block, int64_t offset,
                                    int64_t kv_head) {
  return static_cast<const T*>(cache) + ((block * l.block_size + offset) * l.kv_heads + kv_head) * l.head_dim;
}

template <class W>
__global__ void WriteKvKernel(WriteKvParams p) {
  using S = typename W::Storage;
  const int64_t row_elems = p.layout.kv_heads * p.layout.head_dim;
  auto* k_cache = static_cast<S*>(p.k_cache);
  auto* v_cache = static_cast<S*>(p.v_cache);
  const int64_t n = p.rows * row_elems;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / row_elems;
    const int64_t i = idx % row_elems;
    const int64_t dst = static_cast<int64_t>(p.slots[t]) * row_elems + i;
    if constexpr (sizeof(S) == 2) {
      k_cache[dst] = F32ToBf16Bits(p.k[t * p.stride + i]);
      v_cache[dst] = F32ToBf16Bits(p.v[t * p.stride + i]);
    } else {
      k_cache[dst] = p.k[t * p.stride + i];
      v_cache[dst] = p.v[t * p.stride + i];
    }
  }
}

template <class W>
__global__ void __launch_bounds__(kThreads) PagedAttentionKernel(PagedAttentionParams p) {
  using S = typename W::Storage;
  __shared__ float q[kMaxAttentionHeadDim];
  __shared__ float weights[kThreads];
  __shared__ float reduce[32];
  const KvCacheLayout& l = p.layout;
  const int64_t t = blockIdx.x / p.heads;
  const int64_t h = blockIdx.x % p.heads;
  const int64_t kvh = h / (p.heads / l.kv_heads);
  const int64_t d = l.head_dim;
  const int64_t pos = p.positions[t];
  const int32_t* table = p.block_tables + static_cast<int64_t>(p.token_seq[t]) * p.max_blocks_per_seq;
  for (int64_t i = threadIdx.x; i < d; i += kThreads) q[i] = p.q[t * p.q_stride + h * d + i];
  __syncthreads();

  float acc[kMaxDimsPerThread];
  for (float& a : acc) a = 0.0f;
  float running_max = -INFINITY;
  float running_sum = 0.0f;
  for (int64_t chunk = 0; chunk <= pos; chunk += kThreads) {
    const int64_t j = chunk + threadIdx.x;
    float score = -INFINITY;
    if (j <= pos) {
      const S* key = CacheRow<S>(p.k_cache, l, table[j / l.block_size], j % l.block_size, kvh);
      float dot = 0.0f;
      for (int64_t i = 0; i < d; ++i) dot += q[i] * W::Load(key, i);
      score = dot * p.scale;
    }
    const float chunk_max = BlockReduce<true>(score, reduce);
    const float new_max = fmaxf(running_max, chunk_max);
    const float e = j <= pos ? expf(score - new_max) : 0.0f;
    const float correction = expf(running_max - new_max);  // 0 on the first chunk (running_max = -inf)
    running_sum = running_sum * correction + BlockReduce<false>(e, reduce);
    running_max = new_max;
    weights[threadIdx.x] = e;
    __syncthreads();
    const int64_t count = pos - chunk + 1 < kThreads ? pos - chunk + 1 : kThreads;
    for (int r = 0; r < kMaxDimsPerThread; ++r) {
      const int64_t i = threadIdx.x + static_cast<int64_t>(r) * kThreads;
      if (i >= d) break;
      float a = acc[r] * correction;
      for (int64_t c = 0; c < count; ++c) {
        const int64_t jj = chunk + c;
        const S* value = CacheRow<S>(p.v_cache, l, table[jj / l.block_size], jj % l.block_size, kvh);
        a += weights[c] * W::Load(value, i);
      }
      acc[r] = a;
    }
    __syncthreads();
  }
  float* out = p.out + t * p.out_stride + h * d;
  for (int r = 0; r < kMaxDimsPerThread; ++r) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(r) * kThreads;
    if (i < d) out[i] = acc[r] / running_sum;
  }
}

}  // namespace

void LaunchWriteKv(const WriteKvParams& p, cudaStream_t stream) {
  const int64_t elems = p.rows * p.layout.kv_heads * p.layout.head_dim;
  if (elems <= 0) return;
  const unsigned grid = GridFor(elems, 256);
  if (p.cache_dtype == DType::kBF16) {
    WriteKvKernel<Bf16W><<<grid, 256, 0, stream>>>(p);
  } else {
    WriteKvKernel<F32W><<<grid, 256, 0, stream>>>(p);
  }
}

void LaunchPagedAttention(const PagedAttentionParams& p, cudaStream_t stream) {
  if (p.rows * p.heads <= 0) return;
  const auto grid = static_cast<unsigned>(p.rows * p.heads);
  if (p.cache_dtype == DType::kBF16) {
    PagedAttentionKernel<Bf16W><<<grid, kThreads, 0, stream>>>(p);
  } else {
    PagedAttentionKernel<F32W><<<grid, kThreads, 0, stream>>>(p);
  }
}

}  // namespace adak::kernels::cuda
