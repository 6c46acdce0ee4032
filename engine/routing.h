// Routing policies of an MoE layer, chosen per request: native top-K, Ada-K, null experts, top-p.
//
// A RoutingParams travels with each sequence of a batch, so requests with different policies share one
// forward pass; ToTokenRoute turns it into the plain per-token record the routing kernel reads. The
// rules themselves are in kernels/cpu/moe_routing.h and docs/architecture.md. Value types;
// thread-compatible.
#ifndef ADAK_ENGINE_ROUTING_H_
#define ADAK_ENGINE_ROUTING_H_

#include <bitset>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_config.h"
#include "engine/routing_weights.h"
#include "kernels/cpu/moe_routing.h"

namespace adak::engine {

enum class RoutingPolicy {
  kTopK,  // native top-K (or top_k when set)
  kAdaK,  // k = argmax(W_alloc x) + 1 per token and layer, clamped to [min_k, max_k]
  kNull,  // AdaMoE null experts: top-k' over E + m, null picks cost nothing
  kTopP,  // smallest set of experts whose probabilities sum to >= top_p
};

// "topk", "adak", "null", "topp".
[[nodiscard]] std::string_view RoutingPolicyName(RoutingPolicy policy);
// InvalidArgument listing the accepted names.
[[nodiscard]] absl::StatusOr<RoutingPolicy> ParseRoutingPolicy(std::string_view name);

// Which layers of a sampled rollout draw their k: bit l = layer l (layers < kernels::kMaxSampleMaskLayers).
using SampleLayers = std::bitset<kernels::kMaxSampleMaskLayers>;

struct RoutingParams {
  RoutingPolicy policy = RoutingPolicy::kTopK;
  int64_t top_k = 0;   // kTopK: experts per token, 0 = the model's native K
  float top_p = 0.0f;  // kTopP: threshold in (0, 1]
  int64_t min_k = 0;   // kAdaK: clamp of the allocator's k; 0 = 1
  int64_t max_k = 0;   // kAdaK: 0 = E
  // kAdaK training rollouts: draw k - 1 from softmax(W_alloc x) instead of taking the argmax. The draw of
  // the token at position p in layer l is keyed by (seed, p, l), so a rollout is reproducible.
  bool sample = false;
  uint64_t seed = 0;
  // With `sample`: the MoE layers that draw their k; the others take their allocator's argmax, as at
  // inference (e.g. per-layer rollouts: only layer j). Every layer by default.
  SampleLayers sample_layers = SampleLayers().set();
};

// Checks `params` against the model and the loaded routing weights. InvalidArgument naming the field
// and its allowed range, or the missing file (adak without --allocator, null without --null-experts);
// `sample` on a model of more than kernels::kMaxSampleMaskLayers layers.
[[nodiscard]] absl::Status ValidateRoutingParams(const RoutingParams& params, const ModelConfig& config,
                                                 const RoutingWeights& weights);

// The kernel's per-token record. REQUIRES: ValidateRoutingParams(params, ...) is OK.
[[nodiscard]] kernels::TokenRoute ToTokenRoute(const RoutingParams& params, const ModelConfig& config,
                                               const RoutingWeights& weights);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_ROUTING_H_
