// Admission: the one validation and submission path of both front ends.
//
// The gRPC service fills an ApiRequest from its proto (server/grpc/convert.h), the HTTP gateway from the
// JSON body (server/http/completions.h); everything after that is shared. BuildRequest applies the OpenAI
// / vLLM defaults (max_tokens 16, temperature 1, top_p 1), the server's default routing, tokenizes text,
// and validates every field against the model and the scheduler's limits, so both front ends refuse the
// same requests with the same messages. Each refusal is InvalidArgument naming the field and its limit in
// the message and carrying the field (base/error_field.h) in the spelling below; the front ends turn that
// into the gRPC error details and the OpenAI `param` (server/status_mapping.h), never by reading the text.
//
// Field names (the API's shared spelling, as adak.v1 and the messages use it): prompt, max_tokens,
// temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty, frequency_penalty, logit_bias,
// logprobs, stop,
// stop_token_ids, routing (the
// routing as a whole, e.g. a policy whose file is not loaded), routing.policy, routing.top_k,
// routing.top_p, routing.top_p_weighting, routing.threshold, routing.min_k, routing.max_k. "prompt +
// max_tokens" over the context names max_tokens.
//
// Admit runs the whole path (serving check, BuildRequest, Scheduler::Submit) and counts every refusal in
// adak_request_errors_total{code} (Metrics::RecordRejected). Thread-safe: reads the context only.
#ifndef ADAK_SERVER_ADMISSION_H_
#define ADAK_SERVER_ADMISSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/routing.h"
#include "scheduler/request.h"
#include "server/service_context.h"

namespace adak::server {

struct ApiRouting {
  std::string policy;  // "" = the server default
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<int64_t> min_k;
  std::optional<int64_t> max_k;
  std::optional<double> threshold;
  std::optional<std::string> top_p_weighting;
  std::optional<std::string> profile;  // adak: the allocator profile by name
  // The profile the HTTP `model` field named ("<model>:<profile>"); must agree with `profile` when both are set.
  std::optional<std::string> model_profile;
};

// One API request, whatever the front end, every optional field explicit.
struct ApiRequest {
  std::optional<std::string> text;  // exactly one of text and token_ids
  std::optional<std::vector<int32_t>> token_ids;
  // Whether tokenizing `text` adds the tokenizer's special tokens (BOS); false for a rendered chat
  // template, which writes them itself.
  bool add_special_tokens = true;
  std::optional<int64_t> max_tokens;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<double> presence_penalty;
  std::optional<double> frequency_penalty;
  std::optional<uint64_t> seed;
  std::vector<std::pair<int64_t, double>> logit_bias;  // token id -> bias, in the order given
  ApiRouting routing;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  std::optional<int64_t> logprobs;
  bool prompt_logprobs = false;        // echo + logprobs, Score
  bool allow_zero_max_tokens = false;  // scoring: max_tokens 0 is allowed
  bool return_routing_stats = false;
  absl::Time deadline = absl::InfiniteFuture();
};

// OK while the server is SERVING with a healthy engine and a scheduler; otherwise Unavailable saying why
// (loading, draining, the engine failed, no scheduler). Does not count the refusal (see Reject).
[[nodiscard]] absl::Status CheckServing(const ServiceContext& context);

// Counts a call refused before it reached the scheduler (adak_request_errors_total{code}) and returns
// `status` unchanged. REQUIRES: !status.ok().
absl::Status Reject(const ServiceContext& context, absl::Status status);

// The limits BuildRequest validates against (the scheduler's, completed from the model's context and
// vocabulary).
[[nodiscard]] scheduler::RequestLimits LimitsFor(const ServiceContext& context);

// Routing fields -> engine params over the server default. InvalidArgument carrying routing.policy (the
// message lists the accepted names), routing.<field> with its range, or routing when the model or the
// loaded files cannot run the result.
[[nodiscard]] absl::StatusOr<engine::RoutingParams> BuildRouting(const ApiRouting& routing,
                                                                 const ServiceContext& context);

// The validated scheduler request. Errors: InvalidArgument carrying the field (see the top of this file);
// "prompt" covers both or neither of text and token_ids, an empty prompt, text that does not tokenize and
// token ids outside the vocabulary. Does not count the refusal.
[[nodiscard]] absl::StatusOr<scheduler::GenerationRequest> BuildRequest(const ApiRequest& request,
                                                                        const ServiceContext& context);

// `text` tokenized for `field` (the name the refusals carry), refused when it cannot fit in `max_tokens`
// tokens: first by its size in bytes (Tokenizer::max_input_bytes_per_token), without tokenizing, then by
// stopping the tokenizer once it passes max_tokens. Errors: InvalidArgument carrying `field`, naming the byte
// or token limit; the tokenizer's errors (invalid UTF-8) carrying `field`.
[[nodiscard]] absl::StatusOr<std::vector<int32_t>> TokenizeBounded(const ServiceContext& context, std::string_view text,
                                                                   std::string_view field, int64_t max_tokens,
                                                                   bool add_special_tokens);

// The largest request message worth receiving for a call of `requests_per_call` prompts of at most the
// context each (Generate 1, Score its parts): the text such prompts can take, plus 1 MiB for the other
// fields. The gRPC server caps its receive size at this.
[[nodiscard]] int64_t MaxRequestBytes(const ServiceContext& context, int64_t requests_per_call);

// What Admit hands back: the scheduler's request id and the tokenized prompt (HTTP echo needs it).
struct Admitted {
  uint64_t id = 0;
  std::vector<int32_t> prompt_ids;
};

// CheckServing, BuildRequest, then Scheduler::Submit with `sink`; every refusal is counted through
// Reject and `sink` is never called then. Errors: those of CheckServing and BuildRequest, and Submit's
// (ResourceExhausted when the waiting queue is full, Unavailable while draining).
[[nodiscard]] absl::StatusOr<Admitted> Admit(const ServiceContext& context, const ApiRequest& request,
                                             std::shared_ptr<scheduler::RequestSink> sink);

// CheckServing, then Scheduler::Submit of a request BuildRequest already built (Score submits one per
// continuation); every refusal is counted. Returns the request id.
[[nodiscard]] absl::StatusOr<uint64_t> Submit(const ServiceContext& context, scheduler::GenerationRequest request,
                                              std::shared_ptr<scheduler::RequestSink> sink);

}  // namespace adak::server

#endif  // ADAK_SERVER_ADMISSION_H_
