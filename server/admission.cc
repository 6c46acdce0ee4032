#include "server/admission.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>
#include <utility>

#include "base/error_field.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/sampler.h"
#include "server/metrics.h"

namespace adak::server {
namespace {

// A double field that must fit a float: non-finite or out-of-float-range values are refused by the
// range checks, so only the conversion is done here.
float ToFloat(double value) {
  if (std::isnan(value)) return std::numeric_limits<float>::quiet_NaN();
  if (value > std::numeric_limits<float>::max()) return std::numeric_limits<float>::infinity();
  if (value < -std::numeric_limits<float>::max()) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(value);
}

// `status` (InvalidArgument from a validator that names the field in its message) with `field` attached.
absl::Status Field(std::string_view field, const absl::Status& status) { return WithErrorField(status, field); }

// The prompt as token ids: exactly one of text and token_ids, at least one token, ids in the vocabulary.
absl::StatusOr<std::vector<int32_t>> ResolvePrompt(const ApiRequest& api, const ServiceContext& context,
                                                   const scheduler::RequestLimits& limits) {
  const bool has_text = api.text.has_value() && !api.text->empty();
  const bool has_ids = api.token_ids.has_value() && !api.token_ids->empty();
  if (has_text && has_ids) {
    return InvalidFieldError("prompt", "prompt: set exactly one of text and token_ids, not both");
  }
  if (!has_text && !has_ids) {
    return InvalidFieldError("prompt", "prompt: empty (set text or token_ids to at least one token)");
  }
  if (has_ids) {
    const std::vector<int32_t>& ids = *api.token_ids;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
        return InvalidFieldError("prompt", StrCatStd("prompt token id ", ids[i], " at index ", i, " is outside [0, ",
                                                     limits.vocab_size, ")"));
      }
    }
    return ids;
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                   TokenizeBounded(context, *api.text, "prompt", limits.max_context, api.add_special_tokens));
  if (ids.empty()) return InvalidFieldError("prompt", "prompt: the text encodes to no tokens");
  return ids;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> TokenizeBounded(const ServiceContext& context, std::string_view text,
                                                     std::string_view field, int64_t max_tokens,
                                                     bool add_special_tokens) {
  const tokenizer::Tokenizer& tokenizer = *context.model->tokenizer;
  const auto limit = static_cast<size_t>(std::max<int64_t>(max_tokens, 0));
  if (const std::optional<size_t> per_token = tokenizer.max_input_bytes_per_token();
      per_token.has_value() && text.size() / *per_token >= limit + 1) {
    return InvalidFieldError(field, StrCatStd(field, ": ", text.size(), " bytes of text cannot fit in ", limit,
                                              " tokens (the model's context length; one token covers at most ",
                                              *per_token, " bytes here, so at most ", limit * *per_token, " bytes)"));
  }
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text, add_special_tokens, limit);
  if (ids.status().code() == absl::StatusCode::kOutOfRange) {
    return InvalidFieldError(
        field, StrCatStd(field, ": the text encodes to more than ", limit, " tokens (the model's context length)"));
  }
  if (!ids.ok()) return InvalidFieldError(field, StrCatStd(field, ": ", ToStd(ids.status().message())));
  return ids;
}

int64_t MaxRequestBytes(const ServiceContext& context, int64_t requests_per_call) {
  const scheduler::RequestLimits limits = LimitsFor(context);
  const int64_t per_token =
      static_cast<int64_t>(context.model->tokenizer->max_input_bytes_per_token().value_or(size_t{1} << 16));
  // Text, or token ids at 5 bytes each (a varint of a 32-bit id), whichever is longer, plus 1 MiB for the
  // other fields (stop strings, routing, framing).
  const int64_t bytes = requests_per_call * limits.max_context * std::max<int64_t>(per_token, 5) + (int64_t{1} << 20);
  return std::min<int64_t>(bytes, (int64_t{1} << 31) - 1);
}

namespace {

// max_tokens against the limits and, with the prompt, against the context.
absl::Status CheckMaxTokens(int64_t max_tokens, bool prompt_logprobs, int64_t prompt_tokens,
                            const scheduler::RequestLimits& limits) {
  const int64_t limit = limits.max_tokens > 0 ? limits.max_tokens : limits.max_context;
  const int64_t min_tokens = prompt_logprobs ? 0 : 1;
  if (max_tokens < min_tokens || max_tokens > limit) {
    return InvalidFieldError("max_tokens",
                             StrCatStd("max_tokens must be in [", min_tokens, ", ", limit, "], got ", max_tokens));
  }
  if (prompt_tokens + max_tokens > limits.max_context) {
    return InvalidFieldError("max_tokens", StrCatStd("prompt + max_tokens = ", prompt_tokens, " + ", max_tokens, " = ",
                                                     prompt_tokens + max_tokens,
                                                     " exceeds the model's context length of ", limits.max_context));
  }
  return absl::OkStatus();
}

// Each sampling field alone through the engine's own range check (engine::ValidateSamplingParams), so the
// ranges and messages stay the engine's and the error carries the field that failed.
absl::Status CheckSampling(const engine::SamplingParams& sampling) {
  const engine::SamplingParams defaults;
  engine::SamplingParams one = defaults;
  one.temperature = sampling.temperature;
  if (absl::Status s = engine::ValidateSamplingParams(one); !s.ok()) return Field("temperature", s);
  one = defaults;
  one.top_k = sampling.top_k;
  if (absl::Status s = engine::ValidateSamplingParams(one); !s.ok()) return Field("top_k", s);
  one = defaults;
  one.top_p = sampling.top_p;
  if (absl::Status s = engine::ValidateSamplingParams(one); !s.ok()) return Field("top_p", s);
  one = defaults;
  one.min_p = sampling.min_p;
  if (absl::Status s = engine::ValidateSamplingParams(one); !s.ok()) return Field("min_p", s);
  one = defaults;
  one.repetition_penalty = sampling.repetition_penalty;
  if (absl::Status s = engine::ValidateSamplingParams(one); !s.ok()) return Field("repetition_penalty", s);
  one = defaults;
  one.presence_penalty = sampling.presence_penalty;
  if (absl::Status s = engine::ValidateSamplingParams(one); !s.ok()) return Field("presence_penalty", s);
  one = defaults;
  one.frequency_penalty = sampling.frequency_penalty;
  if (absl::Status s = engine::ValidateSamplingParams(one); !s.ok()) return Field("frequency_penalty", s);
  return absl::OkStatus();
}

// logit_bias: ids inside the vocabulary, each bias in the engine's range, at most engine::kMaxLogitBias.
absl::Status ResolveLogitBias(const ApiRequest& api, const scheduler::RequestLimits& limits,
                              engine::SamplingParams* sampling) {
  if (api.logit_bias.size() > engine::kMaxLogitBias) {
    return InvalidFieldError("logit_bias", StrCatStd("logit_bias: at most ", engine::kMaxLogitBias, " entries, got ",
                                                     api.logit_bias.size()));
  }
  for (const auto& [id, bias] : api.logit_bias) {
    if (id < 0 || id >= limits.vocab_size) {
      return InvalidFieldError("logit_bias", StrCatStd("logit_bias: token id ", id, " is outside the vocabulary [0, ",
                                                       limits.vocab_size, ")"));
    }
    sampling->logit_bias.emplace_back(static_cast<int32_t>(id), ToFloat(bias));
  }
  engine::SamplingParams only_bias;
  only_bias.logit_bias = sampling->logit_bias;
  if (absl::Status s = engine::ValidateSamplingParams(only_bias); !s.ok()) return Field("logit_bias", s);
  return absl::OkStatus();
}

absl::Status CheckStops(const scheduler::GenerationRequest& request, const scheduler::RequestLimits& limits) {
  if (static_cast<int64_t>(request.stop.size()) > limits.max_stop_strings) {
    return InvalidFieldError(
        "stop", StrCatStd("stop: at most ", limits.max_stop_strings, " strings, got ", request.stop.size()));
  }
  for (const std::string& stop : request.stop) {
    if (stop.empty()) return InvalidFieldError("stop", "stop: strings must not be empty");
  }
  for (int32_t id : request.stop_token_ids) {
    if (id < 0 || id >= limits.vocab_size) {
      return InvalidFieldError("stop_token_ids",
                               StrCatStd("stop_token_ids: id ", id, " is outside [0, ", limits.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

// An optional routing bound in [1, experts].
absl::Status CheckExperts(const char* field, const std::optional<int64_t>& value, int64_t experts) {
  if (value.has_value() && (*value < 1 || *value > experts)) {
    return InvalidFieldError(field, StrCatStd(field, " must be in [1, ", experts, "], got ", *value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckServing(const ServiceContext& context) {
  const ServingState* state = context.state;
  switch (state != nullptr ? state->phase() : ServingPhase::kServing) {
    case ServingPhase::kServing: break;
    case ServingPhase::kNotReady: return absl::UnavailableError("the server is not ready yet (loading)");
    case ServingPhase::kDraining: return absl::UnavailableError("the server is draining (shutting down)");
  }
  if (state != nullptr && state->engine_failed()) {
    return absl::UnavailableError("the engine failed (a device error): the server is not serving");
  }
  if (context.scheduler == nullptr) return absl::UnavailableError("no scheduler is running");
  return absl::OkStatus();
}

absl::Status Reject(const ServiceContext& context, absl::Status status) {
  if (context.metrics != nullptr) context.metrics->RecordRejected(status.code());
  return status;
}

scheduler::RequestLimits LimitsFor(const ServiceContext& context) {
  scheduler::RequestLimits limits =
      context.scheduler != nullptr ? context.scheduler->options().limits : scheduler::RequestLimits{};
  if (limits.max_context <= 0) limits.max_context = context.model->config.max_position_embeddings;
  if (limits.vocab_size <= 0) limits.vocab_size = context.model->config.vocab_size;
  return limits;
}

namespace {

// The allocator profile a request names (routing.profile, or the HTTP model "<model>:<profile>"), or nullopt.
absl::StatusOr<std::optional<std::string>> RequestedProfile(const ApiRouting& routing) {
  if (routing.profile.has_value() && routing.model_profile.has_value() && *routing.profile != *routing.model_profile) {
    return InvalidFieldError("routing.profile",
                             StrCatStd("routing.profile '", routing.profile->substr(0, 64),
                                       "' contradicts the model's profile '", *routing.model_profile, "'"));
  }
  return routing.profile.has_value() ? routing.profile : routing.model_profile;
}

}  // namespace

absl::StatusOr<engine::RoutingParams> BuildRouting(const ApiRouting& routing, const ServiceContext& context) {
  engine::RoutingParams params = context.default_routing;
  ASSIGN_OR_RETURN(const std::optional<std::string> profile, RequestedProfile(routing));
  // Naming a profile without a policy asks for Ada-K.
  const std::string policy_name = routing.policy.empty() && profile.has_value() ? "adak" : routing.policy;
  if (!policy_name.empty()) {
    absl::StatusOr<engine::RoutingPolicy> policy = engine::ParseRoutingPolicy(policy_name);
    if (!policy.ok()) {
      return InvalidFieldError("routing.policy", StrCatStd("routing.policy: ", ToStd(policy.status().message())));
    }
    if (*policy != params.policy) {
      params = engine::RoutingParams{.policy = *policy};
      // The server default's own parameters do not carry over to another policy.
      if (*policy == engine::RoutingPolicy::kThreshold && !routing.threshold.has_value()) {
        return InvalidFieldError("routing.threshold",
                                 "routing.threshold is required for routing.policy 'threshold' (in [0, 1])");
      }
    }
  }
  const int64_t experts = context.model->config.num_experts;
  RETURN_IF_ERROR(CheckExperts("routing.top_k", routing.top_k, experts));
  if (routing.top_k.has_value()) params.top_k = *routing.top_k;
  if (routing.top_p.has_value()) {
    if (!(*routing.top_p > 0.0 && *routing.top_p <= 1.0)) {
      return InvalidFieldError("routing.top_p", StrCatStd("routing.top_p must be in (0, 1], got ", *routing.top_p));
    }
    params.top_p = ToFloat(*routing.top_p);
  }
  RETURN_IF_ERROR(CheckExperts("routing.min_k", routing.min_k, experts));
  if (routing.min_k.has_value()) params.min_k = *routing.min_k;
  RETURN_IF_ERROR(CheckExperts("routing.max_k", routing.max_k, experts));
  if (routing.max_k.has_value()) params.max_k = *routing.max_k;
  if (params.policy == engine::RoutingPolicy::kTopP && params.top_p == 0.0f) {
    return InvalidFieldError("routing.top_p", "routing.top_p is required for routing.policy 'topp' (in (0, 1])");
  }
  if (routing.top_p_weighting.has_value()) {
    absl::StatusOr<engine::TopPWeighting> weighting = engine::ParseTopPWeighting(*routing.top_p_weighting);
    if (!weighting.ok()) {
      return InvalidFieldError("routing.top_p_weighting",
                               StrCatStd("routing.top_p_weighting: ", ToStd(weighting.status().message())));
    }
    params.top_p_weighting = *weighting;
  }
  if (routing.threshold.has_value()) {
    if (!(*routing.threshold >= 0.0 && *routing.threshold <= 1.0)) {
      return InvalidFieldError("routing.threshold",
                               StrCatStd("routing.threshold must be in [0, 1], got ", *routing.threshold));
    }
    params.threshold = ToFloat(*routing.threshold);
  }
  if (profile.has_value()) {
    if (params.policy != engine::RoutingPolicy::kAdaK) {
      return InvalidFieldError("routing.profile",
                               StrCatStd("routing.profile applies to routing.policy 'adak' only, not '",
                                         engine::RoutingPolicyName(params.policy), "'"));
    }
    const engine::RoutingWeights& weights = *context.routing_weights;
    const int64_t index = weights.FindProfile(*profile);
    if (index < 0) {
      return InvalidFieldError(
          "routing.profile",
          StrCatStd("routing.profile '", profile->substr(0, 64), "' is not loaded (profiles: ",
                    weights.allocators.empty() ? "none; the server has no --allocator" : weights.ProfileNames(), ")"));
    }
    params.profile = static_cast<int32_t>(index);
  }
  params.sample = false;  // training-only
  absl::Status valid = engine::ValidateRoutingParams(params, context.model->config, *context.routing_weights);
  if (!valid.ok()) return InvalidFieldError("routing", StrCatStd("routing: ", ToStd(valid.message())));
  return params;
}

absl::StatusOr<scheduler::GenerationRequest> BuildRequest(const ApiRequest& api, const ServiceContext& context) {
  const scheduler::RequestLimits limits = LimitsFor(context);
  scheduler::GenerationRequest request;
  ASSIGN_OR_RETURN(request.prompt_ids, ResolvePrompt(api, context, limits));

  request.max_tokens = api.max_tokens.value_or(16);
  if (api.allow_zero_max_tokens && !api.max_tokens.has_value()) request.max_tokens = 0;
  if (request.max_tokens == 0 && !(api.allow_zero_max_tokens && api.prompt_logprobs)) {
    return InvalidFieldError("max_tokens", "max_tokens must be >= 1, got 0");
  }
  request.sampling.temperature = ToFloat(api.temperature.value_or(1.0));
  request.sampling.top_p = ToFloat(api.top_p.value_or(1.0));
  request.sampling.top_k = api.top_k.value_or(0);
  request.sampling.min_p = ToFloat(api.min_p.value_or(0.0));
  request.sampling.repetition_penalty = ToFloat(api.repetition_penalty.value_or(1.0));
  request.sampling.presence_penalty = ToFloat(api.presence_penalty.value_or(0.0));
  request.sampling.frequency_penalty = ToFloat(api.frequency_penalty.value_or(0.0));
  if (api.seed.has_value()) request.sampling.seed = *api.seed;
  RETURN_IF_ERROR(ResolveLogitBias(api, limits, &request.sampling));
  ASSIGN_OR_RETURN(request.routing, BuildRouting(api.routing, context));
  request.stop = api.stop;
  request.stop_token_ids = api.stop_token_ids;
  request.ignore_eos = api.ignore_eos;
  if (api.logprobs.has_value()) {
    if (*api.logprobs < 0 || *api.logprobs > limits.max_logprobs) {
      return InvalidFieldError("logprobs",
                               StrCatStd("logprobs must be in [0, ", limits.max_logprobs, "], got ", *api.logprobs));
    }
    request.logprobs = static_cast<int32_t>(*api.logprobs);
  }
  request.prompt_logprobs = api.prompt_logprobs;
  request.return_routing_stats = api.return_routing_stats;
  request.deadline = api.deadline;

  RETURN_IF_ERROR(CheckMaxTokens(request.max_tokens, request.prompt_logprobs,
                                 static_cast<int64_t>(request.prompt_ids.size()), limits));
  RETURN_IF_ERROR(CheckSampling(request.sampling));
  RETURN_IF_ERROR(CheckStops(request, limits));
  // The scheduler's own check of the whole request (Submit runs it again): every field it covers was
  // checked above with its field attached, so this only catches a rule added there and not here.
  RETURN_IF_ERROR(scheduler::ValidateRequest(request, limits, context.model->config, *context.routing_weights));
  return request;
}

absl::StatusOr<Admitted> Admit(const ServiceContext& context, const ApiRequest& api,
                               std::shared_ptr<scheduler::RequestSink> sink) {
  if (absl::Status serving = CheckServing(context); !serving.ok()) return Reject(context, std::move(serving));
  absl::StatusOr<scheduler::GenerationRequest> request = BuildRequest(api, context);
  if (!request.ok()) return Reject(context, request.status());
  Admitted admitted;
  admitted.prompt_ids = request->prompt_ids;
  absl::StatusOr<uint64_t> id = context.scheduler->Submit(*std::move(request), std::move(sink));
  if (!id.ok()) return Reject(context, id.status());
  admitted.id = *id;
  return admitted;
}

absl::StatusOr<uint64_t> Submit(const ServiceContext& context, scheduler::GenerationRequest request,
                                std::shared_ptr<scheduler::RequestSink> sink) {
  if (absl::Status serving = CheckServing(context); !serving.ok()) return Reject(context, std::move(serving));
  absl::StatusOr<uint64_t> id = context.scheduler->Submit(std::move(request), std::move(sink));
  if (!id.ok()) return Reject(context, id.status());
  return id;
}

}  // namespace adak::server
