#include "kernels/cuda/moe.h"

#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/route_rule.h"

namespace adak::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void RouteKernel(RouteParams p, float* workspace) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= p.rows) return;
  RouteToken(p, t, TokenWorkspace(workspace, p.num_experts, p.null_cols, t));
}

struct AtomicAdd {
  __device__ void operator()(int32_t* where, int32_t v) const { atomicAdd(where, v); }
};
struct AtomicFetchAdd {
  __device__ int32_t operator()(int32_t* where, int32_t v) const { return atomicAdd(where, v); }
};

__device__ void ZeroHistograms(const PlanArrays& p, int64_t begin, int64_t step) {
  for (int64_t i = begin; i <= p.max_k; i += step) p.k_counts[i] = 0;
  for (int64_t i = begin; i <= p.num_experts; i += step) p.expert_offsets[i] = 0;
}

// Decode batches: the three steps in one block.
__global__ void __launch_bounds__(1024)
    PlanSingleCtaKernel(PlanArrays p, const int32_t* k, const int32_t* ids, const float* weights) {
  ZeroHistograms(p, threadIdx.x, blockDim.x);
  __syncthreads();
  for (int64_t t = threadIdx.x; t < p.num_tokens; t += blockDim.x) PlanCount(p, t, k, ids, AtomicAdd{});
  __syncthreads();
  if (threadIdx.x == 0) PlanScan(p);
  __syncthreads();
  for (int64_t t = threadIdx.x; t < p.num_tokens; t += blockDim.x) PlanPlace(p, t, k, ids, weights, AtomicFetchAdd{});
}

__global__ void PlanZeroKernel(PlanArrays p) { ZeroHistograms(p, threadIdx.x, blockDim.x); }

__global__ void PlanCountKernel(PlanArrays p, const int32_t* k, const int32_t* ids) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < p.num_tokens) PlanCount(p, t, k, ids, AtomicAdd{});
}

__global__ void PlanScanKernel(PlanArrays p) { PlanScan(p); }

__global__ void PlanPlaceKernel(PlanArrays p, const int32_t* k, const int32_t* ids, const float* weights) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < p.num_tokens) PlanPlace(p, t, k, ids, weights, AtomicFetchAdd{});
}

__global__ void CombineKernel(PlanArrays p, const int32_t* k, const float* y, int64_t h, float* out, int64_t ldo) {
  const int64_t t = blockIdx.x;
  const int32_t kt = k[t];
  const int32_t first = p.token_slot[t];
  float* o = out + t * ldo;
  for (int64_t c = threadIdx.x; c < h; c += blockDim.x) {
    float sum = 0.0f;
    for (int32_t j = 0; j < kt; ++j) {
      const int32_t row = p.slot_row[first + j];
      sum += p.row_weight[row] * y[static_cast<int64_t>(row) * h + c];
    }
    o[c] += sum;
  }
}

}  // namespace

void LaunchRouteTokens(const RouteParams& p, float* workspace, cudaStream_t stream) {
  if (p.rows <= 0) return;
  RouteKernel<<<GridFor(p.rows, 64, 1 << 20), 64, 0, stream>>>(p, workspace);
}

void LaunchBuildPlan(const PlanArrays& plan, const int32_t* k, const int32_t* ids, const float* weights,
                     cudaStream_t stream) {
  if (plan.num_tokens <= kSingleCtaPlanTokens) {
    PlanSingleCtaKernel<<<1, 1024, 0, stream>>>(plan, k, ids, weights);
    return;
  }
  const unsigned grid = GridFor(plan.num_tokens, kThreads, 1 << 20);
  PlanZeroKernel<<<1, kThreads, 0, stream>>>(plan);
  PlanCountKernel<<<grid, kThreads, 0, stream>>>(plan, k, ids);
  PlanScanKernel<<<1, 1, 0, stream>>>(plan);
  PlanPlaceKernel<<<grid, kThreads, 0, stream>>>(plan, k, ids, weights);
}

void LaunchCombine(const PlanArrays& plan, const int32_t* k, const float* y, int64_t h, float* out, int64_t ldo,
                   cudaStream_t stream) {
  if (plan.num_tokens <= 0) return;
  CombineKernel<<<static_cast<unsigned>(plan.num_tokens), kThreads, 0, stream>>>(plan, k, y, h, out, ldo);
}

}  // namespace adak::kernels::cuda
