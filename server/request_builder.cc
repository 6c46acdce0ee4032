#include "server/request_builder.h"

#include <cmath>
#include <limits>
#include <utility>

#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::server {
namespace {

// A double field that must fit a float: non-finite or out-of-float-range values are refused by the
// range checks downstream, so only the conversion is done here.
float ToFloat(double value) {
  if (std::isnan(value)) return std::numeric_limits<float>::quiet_NaN();
  if (value > std::numeric_limits<float>::max()) return std::numeric_limits<float>::infinity();
  if (value < -std::numeric_limits<float>::max()) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(value);
}

}  // namespace

scheduler::RequestLimits LimitsFor(const ServiceContext& context) {
  scheduler::RequestLimits limits = context.scheduler != nullptr ? context.scheduler->options().limits
                                                                 : scheduler::RequestLimits{};
  if (limits.max_context <= 0) limits.max_context = context.model->config.max_position_embeddings;
  if (limits.vocab_size <= 0) limits.vocab_size = context.model->config.vocab_size;
  return limits;
}

absl::StatusOr<engine::RoutingParams> BuildRouting(const ApiRouting& routing, const ServiceContext& context) {
  engine::RoutingParams params = context.default_routing;
  if (!routing.policy.empty()) {
    absl::StatusOr<engine::RoutingPolicy> policy = engine::ParseRoutingPolicy(routing.policy);
    if (!policy.ok()) {
      return absl::InvalidArgumentError(StrCatStd("routing.policy: ", ToStd(policy.status().message())));
    }
    if (*policy != params.policy) params = engine::RoutingParams{.policy = *policy};
  }
  const int64_t experts = context.model->config.num_experts;
  if (routing.top_k.has_value()) {
    if (*routing.top_k < 1 || *routing.top_k > experts) {
      return absl::InvalidArgumentError(
          StrCatStd("routing.top_k must be in [1, ", experts, "], got ", *routing.top_k));
    }
    params.top_k = *routing.top_k;
  }
  if (routing.top_p.has_value()) {
    if (!(*routing.top_p > 0.0 && *routing.top_p <= 1.0)) {
      return absl::InvalidArgumentError(StrCatStd("routing.top_p must be in (0, 1], got ", *routing.top_p));
    }
    params.top_p = ToFloat(*routing.top_p);
  }
  if (routing.min_k.has_value()) {
    if (*routing.min_k < 1 || *routing.min_k > experts) {
      return absl::InvalidArgumentError(
          StrCatStd("routing.min_k must be in [1, ", experts, "], got ", *routing.min_k));
    }
    params.min_k = *routing.min_k;
  }
  if (routing.max_k.has_value()) {
    if (*routing.max_k < 1 || *routing.max_k > experts) {
      return absl::InvalidArgumentError(
          StrCatStd("routing.max_k must be in [1, ", experts, "], got ", *routing.max_k));
    }
    params.max_k = *routing.max_k;
  }
  if (params.policy == engine::RoutingPolicy::kTopP && params.top_p == 0.0f) {
    return absl::InvalidArgumentError("routing.top_p is required for routing.policy 'topp' (in (0, 1])");
  }
  params.sample = false;  // training-only
  absl::Status valid = engine::ValidateRoutingParams(params, context.model->config, *context.routing_weights);
  if (!valid.ok()) return absl::InvalidArgumentError(StrCatStd("routing: ", ToStd(valid.message())));
  return params;
}

absl::StatusOr<scheduler::GenerationRequest> BuildRequest(const ApiRequest& api, const ServiceContext& context) {
  scheduler::GenerationRequest request;
  const bool has_text = api.text.has_value() && !api.text->empty();
  const bool has_ids = api.token_ids.has_value() && !api.token_ids->empty();
  if (has_text && has_ids) {
    return absl::InvalidArgumentError("prompt: set exactly one of text and token_ids, not both");
  }
  if (!has_text && !has_ids) {
    return absl::InvalidArgumentError("prompt: empty (set text or token_ids to at least one token)");
  }
  if (has_text) {
    absl::StatusOr<std::vector<int32_t>> ids = context.model->tokenizer->Encode(*api.text);
    if (!ids.ok()) return absl::InvalidArgumentError(StrCatStd("prompt: ", ToStd(ids.status().message())));
    if (ids->empty()) return absl::InvalidArgumentError("prompt: the text encodes to no tokens");
    request.prompt_ids = *std::move(ids);
  } else {
    request.prompt_ids = *api.token_ids;
  }

  request.max_tokens = api.max_tokens.value_or(16);
  if (api.allow_zero_max_tokens && !api.max_tokens.has_value()) request.max_tokens = 0;
  if (request.max_tokens == 0 && !(api.allow_zero_max_tokens && api.prompt_logprobs)) {
    return absl::InvalidArgumentError("max_tokens must be >= 1, got 0");
  }
  request.sampling.temperature = ToFloat(api.temperature.value_or(1.0));
  request.sampling.top_p = ToFloat(api.top_p.value_or(1.0));
  request.sampling.top_k = api.top_k.value_or(0);
  request.sampling.min_p = ToFloat(api.min_p.value_or(0.0));
  request.sampling.repetition_penalty = ToFloat(api.repetition_penalty.value_or(1.0));
  if (api.seed.has_value()) request.sampling.seed = *api.seed;
  ASSIGN_OR_RETURN(request.routing, BuildRouting(api.routing, context));
  request.stop = api.stop;
  request.stop_token_ids = api.stop_token_ids;
  request.ignore_eos = api.ignore_eos;
  if (api.logprobs.has_value()) {
    if (*api.logprobs < 0 || *api.logprobs > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(StrCatStd("logprobs must be >= 0, got ", *api.logprobs));
    }
    request.logprobs = static_cast<int32_t>(*api.logprobs);
  }
  request.prompt_logprobs = api.prompt_logprobs;
  request.return_routing_stats = api.return_routing_stats;
  request.deadline = api.deadline;
  RETURN_IF_ERROR(scheduler::ValidateRequest(request, LimitsFor(context), context.model->config,
                                             *context.routing_weights));
  return request;
}

}  // namespace adak::server
