// The kernel parameters of the backend ops, built from the ops' arguments (engine/backend.h) in one place for
// every backend. The kernels of both backends take the same plain-data structs (kernels/cpu/paged_attention.h,
// kernels/cpu/moe_routing.h): the CPU kernels on host pointers, their CUDA twins (kernels/cuda/) on device
// pointers. Stateless.
#ifndef ADAK_ENGINE_OP_PARAMS_H_
#define ADAK_ENGINE_OP_PARAMS_H_

#include <cstdint>

#include "engine/backend.h"
#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/paged_attention.h"

namespace adak::engine {

// The KV write of an Attention op: the batch's k and v into their cache slots.
[[nodiscard]] kernels::WriteKvParams KvWriteParams(const AttentionArgs& a);

// The causal paged attention of an Attention op, into a.out.
[[nodiscard]] kernels::PagedAttentionParams PagedAttentionParamsOf(const AttentionArgs& a);

// The routing of a Moe op over the fused gate's `logits` [T, stride], into `ids` / `weights` [T, E] and a.k_out.
// `allocator_extras`: a.allocator_extras where the kernel can read it ([P], or nullptr for none).
[[nodiscard]] kernels::RouteParams RouteParamsOf(const MoeArgs& a, const float* logits, int64_t stride,
                                                 const kernels::AllocatorExtras* allocator_extras, int32_t* ids,
                                                 float* weights);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_OP_PARAMS_H_
