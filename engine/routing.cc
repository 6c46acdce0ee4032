#include "engine/routing.h"

#include <cmath>

#include "base/strings.h"

namespace adak::engine {

std::string_view RoutingPolicyName(RoutingPolicy policy) {
  switch (policy) {
    case RoutingPolicy::kTopK: return "topk";
    case RoutingPolicy::kAdaK: return "adak";
    case RoutingPolicy::kNull: return "null";
    case RoutingPolicy::kTopP: return "topp";
    case RoutingPolicy::kThreshold: return "threshold";
  }
  return "?";
}

absl::StatusOr<RoutingPolicy> ParseRoutingPolicy(std::string_view name) {
  for (RoutingPolicy p : kRoutingPolicies) {
    if (name == RoutingPolicyName(p)) return p;
  }
  return absl::InvalidArgumentError(
      StrCatStd("unknown routing policy '", name, "' (accepted: topk, adak, null, topp, threshold)"));
}

std::string_view TopPWeightingName(TopPWeighting weighting) {
  return weighting == TopPWeighting::kRaw ? "raw" : "model";
}

absl::StatusOr<TopPWeighting> ParseTopPWeighting(std::string_view name) {
  for (TopPWeighting w : {TopPWeighting::kModel, TopPWeighting::kRaw}) {
    if (name == TopPWeightingName(w)) return w;
  }
  return absl::InvalidArgumentError(StrCatStd("unknown top-p weighting '", name, "' (accepted: model, raw)"));
}

absl::Status ValidateRoutingParams(const RoutingParams& p, const ModelConfig& config, const RoutingWeights& weights) {
  const int64_t e = config.num_experts;
  if (p.top_k < 0 || p.top_k > e) {
    return absl::InvalidArgumentError(StrCatStd("routing top_k must be in [0, ", e, "] (0 = native ",
                                                config.num_experts_per_tok, "), got ", p.top_k));
  }
  if (p.min_k < 0 || p.min_k > e || p.max_k < 0 || p.max_k > e) {
    return absl::InvalidArgumentError(
        StrCatStd("routing min_k and max_k must be in [0, ", e, "] (0 = no bound), got ", p.min_k, " and ", p.max_k));
  }
  if (p.max_k > 0 && p.min_k > p.max_k) {
    return absl::InvalidArgumentError(StrCatStd("routing min_k (", p.min_k, ") must not exceed max_k (", p.max_k, ")"));
  }
  if (p.sample && config.num_layers > kernels::kMaxSampleMaskLayers) {
    return absl::InvalidArgumentError(StrCatStd("routing sample_layers covers at most ", kernels::kMaxSampleMaskLayers,
                                                " layers, the model has ", config.num_layers));
  }
  if (p.profile != 0 && p.policy != RoutingPolicy::kAdaK) {
    return absl::InvalidArgumentError(
        StrCatStd("routing profile applies to policy 'adak' only, not '", RoutingPolicyName(p.policy), "'"));
  }
  switch (p.policy) {
    case RoutingPolicy::kTopK: break;
    case RoutingPolicy::kAdaK:
      if (!weights.has_allocator()) {
        return absl::InvalidArgumentError("routing policy 'adak' needs an allocator file (--allocator)");
      }
      if (p.profile < 0 || p.profile >= static_cast<int64_t>(weights.allocators.size())) {
        return absl::InvalidArgumentError(StrCatStd("routing profile index ", p.profile, " is not loaded (",
                                                    weights.allocators.size(), " profiles: ", weights.ProfileNames(),
                                                    ")"));
      }
      break;
    case RoutingPolicy::kNull:
      if (!weights.has_null_experts()) {
        return absl::InvalidArgumentError("routing policy 'null' needs a null-experts file (--null-experts)");
      }
      break;
    case RoutingPolicy::kTopP:
      if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
        return absl::InvalidArgumentError(StrCatStd("routing top_p must be in (0, 1], got ", p.top_p));
      }
      break;
    case RoutingPolicy::kThreshold:
      if (!(p.threshold >= 0.0f && p.threshold <= 1.0f)) {
        return absl::InvalidArgumentError(StrCatStd("routing threshold must be in [0, 1], got ", p.threshold));
      }
      if (p.min_k > config.num_experts_per_tok) {
        return absl::InvalidArgumentError(StrCatStd("routing min_k for policy 'threshold' must be in [0, ",
                                                    config.num_experts_per_tok, "] (the native K), got ", p.min_k));
      }
      break;
  }
  return absl::OkStatus();
}

kernels::TokenRoute ToTokenRoute(const RoutingParams& p, const ModelConfig& config, const RoutingWeights& weights) {
  kernels::TokenRoute r;
  const int64_t native = config.num_experts_per_tok;
  r.k = static_cast<int32_t>(p.top_k > 0 ? p.top_k : native);
  r.min_k = static_cast<int32_t>(p.min_k > 0 ? p.min_k : 1);
  r.max_k = static_cast<int32_t>(p.max_k > 0 ? p.max_k : config.num_experts);
  r.top_p = p.top_p;
  r.topp_raw = p.top_p_weighting == TopPWeighting::kRaw ? 1 : 0;
  r.threshold = p.threshold;
  r.sample = p.sample ? 1 : 0;
  r.seed = p.seed;
  r.profile = p.profile;
  for (int64_t w = 0; w < kernels::kSampleMaskWords; ++w) {
    uint64_t word = 0;
    for (int64_t b = 0; b < 64; ++b) {
      word |= static_cast<uint64_t>(p.sample_layers[static_cast<size_t>(w * 64 + b)]) << b;
    }
    r.sample_layers[w] = word;
  }
  switch (p.policy) {
    case RoutingPolicy::kTopK: r.policy = kernels::RoutePolicy::kTopK; break;
    case RoutingPolicy::kAdaK: r.policy = kernels::RoutePolicy::kAdaK; break;
    case RoutingPolicy::kNull:
      r.policy = kernels::RoutePolicy::kNull;
      r.k = static_cast<int32_t>(weights.null_top_k > 0 ? weights.null_top_k : native);
      break;
    case RoutingPolicy::kTopP:
      r.policy = kernels::RoutePolicy::kTopP;
      r.k = static_cast<int32_t>(native);  // the candidates of the model weighting
      break;
    case RoutingPolicy::kThreshold:
      r.policy = kernels::RoutePolicy::kThreshold;
      r.k = static_cast<int32_t>(native);
      break;
  }
  return r;
}

}  // namespace adak::engine
