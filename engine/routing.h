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
  kTopK,       // native top-K (or top_k when set)
  kAdaK,       // k = argmax(W_alloc x) + 1 per token and layer, clamped to [min_k, max_k]
  kNull,       // AdaMoE null experts: top-k' over E + m, null picks cost nothing
  kTopP,       // smallest prefix of experts whose probability reaches top_p (weighting: TopPWeighting)
  kThreshold,  // SER: of the native top-K keep expert i while p_i >= threshold * p_1, at least min_k
};

// Every policy, in enum order (metrics labels, listings).
inline constexpr RoutingPolicy kRoutingPolicies[] = {RoutingPolicy::kTopK, RoutingPolicy::kAdaK, RoutingPolicy::kNull,
                                                     RoutingPolicy::kTopP, RoutingPolicy::kThreshold};

// "topk", "adak", "null", "topp", "threshold".
[[nodiscard]] std::string_view RoutingPolicyName(RoutingPolicy policy);
// InvalidArgument listing the accepted names.
[[nodiscard]] absl::StatusOr<RoutingPolicy> ParseRoutingPolicy(std::string_view name);

// How kTopP measures mass and weights the chosen experts.
enum class TopPWeighting {
  // The model's own: the candidates are the native top-K, mass is each one's share of their total, and the
  // chosen experts are weighted as native top-K weights them (renormalised for norm_topk_prob models).
  kModel,
  // Softmax over all E experts, any number of them, raw probabilities as weights (never renormalised).
  kRaw,
};
// "model", "raw".
[[nodiscard]] std::string_view TopPWeightingName(TopPWeighting weighting);
// InvalidArgument listing the accepted names.
[[nodiscard]] absl::StatusOr<TopPWeighting> ParseTopPWeighting(std::string_view name);

// Which layers of a sampled rollout draw their k: bit l = layer l (layers < kernels::kMaxSampleMaskLayers).
using SampleLayers = std::bitset<kernels::kMaxSampleMaskLayers>;

struct RoutingParams {
  RoutingPolicy policy = RoutingPolicy::kTopK;
  int64_t top_k = 0;                                      // kTopK: experts per token, 0 = the model's native K
  float top_p = 0.0f;                                     // kTopP: threshold in (0, 1]
  TopPWeighting top_p_weighting = TopPWeighting::kModel;  // kTopP
  float threshold = 0.0f;                                 // kThreshold: t in [0, 1]
  int64_t min_k = 0;  // kAdaK: clamp of the allocator's k; kThreshold: at least this many, <= K; 0 = 1
  int64_t max_k = 0;  // kAdaK: 0 = E
  // kAdaK: the allocator profile, an index into RoutingWeights::allocators (0 = the default one). Front ends
  // resolve a request's profile name to it.
  int32_t profile = 0;
  // kAdaK training rollouts: draw k - 1 from softmax(W_alloc x) instead of taking the argmax. The draw of
  // the token at position p in layer l is keyed by (seed, p, l), so a rollout is reproducible.
  bool sample = false;
  uint64_t seed = 0;
  // With `sample`: the MoE layers that draw their k; the others take their allocator's argmax, as at
  // inference (e.g. per-layer rollouts: only layer j). Every layer by default.
  SampleLayers sample_layers = SampleLayers().set();
};

// Checks `params` against the model and the loaded routing weights. InvalidArgument naming the field
// and its allowed range, or the missing file (adak without --allocator, null without --null-experts); a
// profile that is not loaded, or a profile other than 0 with a policy other than adak;
// `sample` on a model of more than kernels::kMaxSampleMaskLayers layers.
[[nodiscard]] absl::Status ValidateRoutingParams(const RoutingParams& params, const ModelConfig& config,
                                                 const RoutingWeights& weights);

// The kernel's per-token record. REQUIRES: ValidateRoutingParams(params, ...) is OK.
[[nodiscard]] kernels::TokenRoute ToTokenRoute(const RoutingParams& params, const ModelConfig& config,
                                               const RoutingWeights& weights);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_ROUTING_H_
