#include "scheduler/request.h"

#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::scheduler {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kDeadline: return "deadline";
    case FinishReason::kError: return "error";
  }
  return "error";
}

absl::Status ValidateRequest(const GenerationRequest& request, const RequestLimits& limits,
                             const engine::ModelConfig& config, const engine::RoutingWeights& routing_weights) {
  const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
  if (prompt < 1) return absl::InvalidArgumentError("prompt must have at least 1 token, got 0");
  for (size_t i = 0; i < request.prompt_ids.size(); ++i) {
    const int32_t id = request.prompt_ids[i];
    if (id < 0 || id >= limits.vocab_size) {
      return absl::InvalidArgumentError(
          StrCatStd("prompt token id ", id, " at index ", i, " is outside [0, ", limits.vocab_size, ")"));
    }
  }
  const int64_t max_tokens_limit = limits.max_tokens > 0 ? limits.max_tokens : limits.max_context;
  const int64_t min_tokens = request.prompt_logprobs ? 0 : 1;
  if (request.max_tokens < min_tokens || request.max_tokens > max_tokens_limit) {
    return absl::InvalidArgumentError(
        StrCatStd("max_tokens must be in [", min_tokens, ", ", max_tokens_limit, "], got ", request.max_tokens));
  }
  if (prompt + request.max_tokens > limits.max_context) {
    return absl::InvalidArgumentError(StrCatStd("prompt + max_tokens = ", prompt, " + ", request.max_tokens, " = ",
                                                prompt + request.max_tokens, " exceeds the model's context length of ",
                                                limits.max_context));
  }
  RETURN_IF_ERROR(engine::ValidateSamplingParams(request.sampling));
  if (request.logprobs < -1 || request.logprobs > limits.max_logprobs) {
    return absl::InvalidArgumentError(
        StrCatStd("logprobs must be in [0, ", limits.max_logprobs, "], got ", request.logprobs));
  }
  if (static_cast<int64_t>(request.stop.size()) > limits.max_stop_strings) {
    return absl::InvalidArgumentError(
        StrCatStd("stop: at most ", limits.max_stop_strings, " strings, got ", request.stop.size()));
  }
  for (const std::string& stop : request.stop) {
    if (stop.empty()) return absl::InvalidArgumentError("stop: strings must not be empty");
  }
  for (int32_t id : request.stop_token_ids) {
    if (id < 0 || id >= limits.vocab_size) {
      return absl::InvalidArgumentError(
          StrCatStd("stop_token_ids: id ", id, " is outside [0, ", limits.vocab_size, ")"));
    }
  }
  if (request.routing.sample) {
    return absl::InvalidArgumentError("routing.sample is for allocator training only");
  }
  absl::Status routing = engine::ValidateRoutingParams(request.routing, config, routing_weights);
  if (!routing.ok()) return absl::InvalidArgumentError(StrCatStd("routing: ", ToStd(routing.message())));
  return absl::OkStatus();
}

}  // namespace adak::scheduler
