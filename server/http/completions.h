// The OpenAI /v1/completions request of the HTTP gateway: the body -> CompletionCall mapping. The chat
// endpoint (server/http/chat_completions.h) produces the same CompletionCall; the response objects are
// built by server/http/completion_builder.h.
//
// Request fields (OpenAI legacy completions): model, prompt (a string, a token-id array, or a batch: an
// array of strings or of token-id arrays, as lm-evaluation-harness sends it), max_tokens, temperature,
// top_p, n, best_of, stream, stream_options, stop (string or array), seed, logprobs, echo,
// presence_penalty, frequency_penalty, logit_bias, suffix (empty only), user; vLLM's extensions top_k
// (-1 = off), min_p, repetition_penalty, ignore_eos, stop_token_ids; and ours: "adak": {"routing":
// {"policy", "top_k", "top_p", "top_p_weighting", "threshold", "min_k", "max_k"}, "return_routing_stats",
// "timeout_seconds"}. Unknown top-level fields are ignored (OpenAI clients send their own); unknown fields
// inside "adak" are refused.
//
// Choices: every prompt gets `best_of` candidates (default n), and the n with the highest cumulative
// logprob come back, numbered prompt_index * n + j as OpenAI does; best_of > n cannot stream. Candidates
// of one prompt after the first start once the first has computed the prompt, so they take its KV blocks
// from the prefix cache. With a seed, candidate j samples with seed + j (otherwise they would all be
// alike).
//
// echo + logprobs scores the prompt (prompt logprobs, the first one null, as OpenAI and vLLM report it;
// streamed in the first chunk) and allows max_tokens 0, which is how lm-evaluation-harness computes
// log-likelihoods.
//
// Stateless functions; safe from any thread.
#ifndef ADAK_SERVER_HTTP_COMPLETIONS_H_
#define ADAK_SERVER_HTTP_COMPLETIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/admission.h"
#include "server/http/request_fields.h"
#include "server/service_context.h"

namespace adak::server {

// One prompt of a request: text or token ids (exactly one is set).
struct ApiPrompt {
  std::optional<std::string> text;
  std::optional<std::vector<int32_t>> token_ids;
};

struct CompletionCall {
  enum class Endpoint { kCompletions, kChat };
  Endpoint endpoint = Endpoint::kCompletions;
  ApiRequest api;                  // the fields every candidate shares (its text/token_ids are unset)
  std::vector<ApiPrompt> prompts;  // at least one
  int64_t n = 1;                   // choices returned per prompt
  int64_t best_of = 1;             // candidates generated per prompt (>= n)
  bool stream = false;
  bool echo = false;
  bool logprobs = false;  // the response carries logprobs
  int64_t candidates() const { return static_cast<int64_t>(prompts.size()) * best_of; }
};

// The most candidates (prompts x best_of) one request may run.
inline constexpr int64_t kMaxCandidates = 64;

// The request of candidate `c` in [0, call.candidates()): prompt c / best_of, seed + c % best_of.
[[nodiscard]] ApiRequest CandidateRequest(const CompletionCall& call, int64_t c);

// Parses the body of POST /v1/completions (server/admission.h validates the values; this checks the JSON
// types and the OpenAI-only fields). Errors: InvalidArgument naming the field as the JSON body spells it
// and carrying it (base/error_field.h; ErrorParam in server/status_mapping.h reads it), e.g. "n must be in
// [1, 64], got 0" (n) or "prompt: 70 prompts x best_of 1 = 70 candidates, over the limit of 64" (prompt);
// NotFound carrying `model` when it names a model this server does not serve; InvalidArgument without a
// field when the body is not a JSON object or nests deeper than kMaxJsonDepth (the message names the
// limit).
[[nodiscard]] absl::StatusOr<CompletionCall> ParseCompletionRequest(std::string_view body,
                                                                    const ServiceContext& context);

// n and best_of (shared with chat): n in [1, kMaxCandidates], best_of in [n, kMaxCandidates] (default n),
// best_of > n only without stream, and prompts x best_of <= kMaxCandidates.
[[nodiscard]] absl::Status ParseChoiceCounts(const request_fields::Json& body, CompletionCall* call);

}  // namespace adak::server

#endif  // ADAK_SERVER_HTTP_COMPLETIONS_H_
