// The MoE layer's device pipeline around the grouped GEMM: routing, the dispatch plan, and the combine.
//
//  - LaunchRouteTokens: every token by its own policy (kernels/cuda/route_rule.h, the rules of
//    kernels/cpu/moe_routing.h), one thread per token, over a workspace of RouteWorkspaceWords(E, M) words
//    per token in device memory.
//  - LaunchBuildPlan: the padding-free plan (kernels/cuda/dispatch_plan.h) with no host sync. Up to
//    kSingleCtaPlanTokens tokens, one thread block does all three steps with shared-memory barriers between
//    them (decode batches: one launch); above, four launches (zero, count, scan, place).
//  - LaunchCombine: out[t] += sum_j w_j y[row_j] over the token's slots in order (descending router
//    probability), reading the plan's inverse map: deterministic whatever order the rows were placed in.
// Launchers enqueue on `stream`; pointers are device memory (RouteParams' too).
#ifndef ADAK_KERNELS_CUDA_MOE_H_
#define ADAK_KERNELS_CUDA_MOE_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/moe_routing.h"
#include "kernels/cuda/dispatch_plan.h"

namespace adak::kernels::cuda {

inline constexpr int64_t kSingleCtaPlanTokens = 1024;

// p.rows tokens; workspace: RouteWorkspaceWords(p.num_experts, p.null_cols) words per token.
void LaunchRouteTokens(const RouteParams& p, float* workspace, cudaStream_t stream);

// plan: carved from PlanWords(T, E, KM) device words (CarvePlan); k [T] and ids/weights [T, KM] from routing.
void LaunchBuildPlan(const PlanArrays& plan, const int32_t* k, const int32_t* ids, const float* weights,
                     cudaStream_t stream);

// out [T, h] (row stride ldo) += the combine of y [R, h] (dense) over each token's k[t] rows.
void LaunchCombine(const PlanArrays& plan, const int32_t* k, const float* y, int64_t h, float* out, int64_t ldo,
                   cudaStream_t stream);

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_MOE_H_
