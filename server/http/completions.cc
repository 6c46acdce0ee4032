#include "server/http/completions.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "base/error_field.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::server {
namespace {

using request_fields::Describe;
using request_fields::Find;
using request_fields::GetBool;
using request_fields::GetInt;
using request_fields::GetTokenIds;
using request_fields::IsTokenIdArray;
using request_fields::Json;

// `prompt`: a string, a token-id array, or a batch (an array of strings or of token-id arrays).
absl::Status ParsePrompts(const Json& body, CompletionCall* call) {
  const Json* prompt = Find(body, "prompt");
  if (prompt == nullptr) {
    return InvalidFieldError("prompt", "prompt is required (a string, an array of token ids, or a batch of either)");
  }
  const auto one = [&](const Json& value, std::string_view where) -> absl::Status {
    ApiPrompt p;
    if (value.is_string()) {
      p.text = value.get<std::string>();
    } else if (IsTokenIdArray(value)) {
      std::vector<int32_t> ids;
      RETURN_IF_ERROR(GetTokenIds(value, "prompt", &ids));
      p.token_ids = std::move(ids);
    } else if (value.is_array() && value.empty()) {
      return InvalidFieldError("prompt", StrCatStd("prompt: empty array", where, " (give at least one token id)"));
    } else {
      return InvalidFieldError("prompt", StrCatStd("prompt must be a string or a non-empty array of token ids, got ",
                                                   Describe(value), where));
    }
    call->prompts.push_back(std::move(p));
    return absl::OkStatus();
  };
  if (prompt->is_array() && !prompt->empty() && !IsTokenIdArray(*prompt)) {
    if (static_cast<int64_t>(prompt->size()) > kMaxCandidates) {
      return InvalidFieldError(
          "prompt", StrCatStd("prompt: a batch of ", prompt->size(), " prompts is over the limit of ", kMaxCandidates));
    }
    for (size_t i = 0; i < prompt->size(); ++i) {
      RETURN_IF_ERROR(one((*prompt)[i], StrCatStd(" at index ", i, " of the batch")));
    }
    return absl::OkStatus();
  }
  return one(*prompt, "");
}

// OpenAI fields accepted only at their neutral value: suffix.
absl::Status CheckUnsupported(const Json& body) {
  const Json* suffix = Find(body, "suffix");
  if (suffix != nullptr && !(suffix->is_string() && suffix->get<std::string>().empty())) {
    return InvalidFieldError("suffix", "suffix is not supported");
  }
  return absl::OkStatus();
}

// What the response carries: stream, stream_options (an object), echo, logprobs (an integer).
absl::Status ParseOutput(const Json& body, CompletionCall* call) {
  RETURN_IF_ERROR(request_fields::ParseStream(body, &call->stream));
  RETURN_IF_ERROR(GetBool(body, "echo", "echo", &call->echo));
  const Json* logprobs = Find(body, "logprobs");
  if (logprobs != nullptr && logprobs->is_boolean()) {
    return InvalidFieldError("logprobs",
                             StrCatStd("logprobs must be an integer in [0, 20] (the number of top alternatives), got ",
                                       Describe(*logprobs)));
  }
  RETURN_IF_ERROR(GetInt(body, "logprobs", "logprobs", &call->api.logprobs));
  call->logprobs = call->api.logprobs.has_value();
  return absl::OkStatus();
}

// Prompt scoring: echo + logprobs or echo with max_tokens 0 scores the prompt, and then max_tokens 0 is
// allowed (OpenAI's default 16 otherwise, not Score's 0).
void ApplyEcho(CompletionCall* call) {
  ApiRequest& api = call->api;
  if (call->echo && call->logprobs) api.prompt_logprobs = true;
  if (call->echo && api.max_tokens.has_value() && *api.max_tokens == 0) {
    // Echo of the prompt alone: the scheduler scores the prompt and generates nothing.
    api.prompt_logprobs = true;
  }
  if (api.prompt_logprobs) {
    api.allow_zero_max_tokens = true;
    if (!api.max_tokens.has_value()) api.max_tokens = 16;
  }
}

}  // namespace

absl::Status ParseChoiceCounts(const Json& body, CompletionCall* call) {
  std::optional<int64_t> n;
  RETURN_IF_ERROR(GetInt(body, "n", "n", &n));
  call->n = n.value_or(1);
  if (call->n < 1 || call->n > kMaxCandidates) {
    return InvalidFieldError("n", StrCatStd("n must be in [1, ", kMaxCandidates, "], got ", call->n));
  }
  std::optional<int64_t> best_of;
  RETURN_IF_ERROR(GetInt(body, "best_of", "best_of", &best_of));
  call->best_of = best_of.value_or(call->n);
  if (call->best_of < call->n || call->best_of > kMaxCandidates) {
    return InvalidFieldError("best_of", StrCatStd("best_of must be in [n, ", kMaxCandidates, "] = [", call->n, ", ",
                                                  kMaxCandidates, "], got ", call->best_of));
  }
  if (call->best_of > call->n && call->stream) {
    return InvalidFieldError("best_of", "best_of > n cannot stream (the best candidates are known only at the end)");
  }
  if (call->candidates() > kMaxCandidates) {
    return InvalidFieldError(call->prompts.size() > 1 ? "prompt" : "best_of",
                             StrCatStd("prompt: ", call->prompts.size(), " prompts x best_of ", call->best_of, " = ",
                                       call->candidates(), " candidates, over the limit of ", kMaxCandidates));
  }
  // Ranking candidates needs each one's cumulative logprob.
  if (call->best_of > call->n && !call->api.logprobs.has_value()) call->api.logprobs = 0;
  return absl::OkStatus();
}

ApiRequest CandidateRequest(const CompletionCall& call, int64_t c) {
  ApiRequest api = call.api;
  const ApiPrompt& prompt = call.prompts[static_cast<size_t>(c / call.best_of)];
  api.text = prompt.text;
  api.token_ids = prompt.token_ids;
  if (api.seed.has_value()) api.seed = *api.seed + static_cast<uint64_t>(c % call.best_of);
  return api;
}

absl::StatusOr<CompletionCall> ParseCompletionRequest(std::string_view body, const ServiceContext& context) {
  ASSIGN_OR_RETURN(Json json, request_fields::ParseObject(body));
  CompletionCall call;
  RETURN_IF_ERROR(request_fields::ParseModel(json, context, &call.api));
  RETURN_IF_ERROR(ParsePrompts(json, &call));
  RETURN_IF_ERROR(CheckUnsupported(json));
  RETURN_IF_ERROR(request_fields::ParseSampling(json, &call.api));
  RETURN_IF_ERROR(request_fields::ParseStopping(json, &call.api));
  RETURN_IF_ERROR(ParseOutput(json, &call));
  RETURN_IF_ERROR(ParseChoiceCounts(json, &call));
  RETURN_IF_ERROR(request_fields::ParseAdak(json, &call.api));
  ApplyEcho(&call);
  return call;
}

}  // namespace adak::server
