// One API request, whatever the front end (gRPC or OpenAI HTTP), turned into a scheduler request.
//
// ApiRequest mirrors adak.v1.GenerateRequest with every optional field explicit; the gRPC service fills
// it from the proto, the HTTP gateway from the JSON body. BuildRequest applies the OpenAI / vLLM defaults
// (max_tokens 16, temperature 1, top_p 1), the server's default routing, tokenizes text, and validates
// everything (scheduler::ValidateRequest), so both front ends refuse the same requests with the same
// messages. Thread-safe (reads the context only).
#ifndef ADAK_SERVER_REQUEST_BUILDER_H_
#define ADAK_SERVER_REQUEST_BUILDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/routing.h"
#include "scheduler/request.h"
#include "server/service_context.h"

namespace adak::server {

struct ApiRouting {
  std::string policy;                 // "" = the server default
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<int64_t> min_k;
  std::optional<int64_t> max_k;
};

struct ApiRequest {
  std::optional<std::string> text;            // exactly one of text and token_ids
  std::optional<std::vector<int32_t>> token_ids;
  std::optional<int64_t> max_tokens;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<uint64_t> seed;
  ApiRouting routing;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  std::optional<int64_t> logprobs;
  bool prompt_logprobs = false;               // echo + logprobs, Score
  bool allow_zero_max_tokens = false;         // scoring: max_tokens 0 is allowed
  bool return_routing_stats = false;
  absl::Time deadline = absl::InfiniteFuture();
};

// Routing fields -> engine params over the server default. InvalidArgument naming routing.policy (with
// the accepted names) or the bad field and its range.
[[nodiscard]] absl::StatusOr<engine::RoutingParams> BuildRouting(const ApiRouting& routing,
                                                                 const ServiceContext& context);

// Errors: InvalidArgument naming the field: "prompt" (both or neither of text and token_ids, empty
// prompt, text that does not tokenize), every sampling/routing/stop field with its range, and
// "prompt + max_tokens" over the context (both numbers and the limit).
[[nodiscard]] absl::StatusOr<scheduler::GenerationRequest> BuildRequest(const ApiRequest& request,
                                                                        const ServiceContext& context);

// The limits BuildRequest validates against (the model's context and vocabulary).
[[nodiscard]] scheduler::RequestLimits LimitsFor(const ServiceContext& context);

}  // namespace adak::server

#endif  // ADAK_SERVER_REQUEST_BUILDER_H_
