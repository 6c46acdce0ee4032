// The OpenAI /v1/completions JSON of the HTTP gateway: the request body -> ApiRequest mapping, and the
// response objects (one JSON object, or server-sent-event chunks when streaming) built from what the
// scheduler reports.
//
// Request fields (OpenAI legacy completions): model, prompt (a string or a token-id array; an array
// holding exactly one of those is accepted as lm-evaluation-harness sends it; more prompts are refused),
// max_tokens, temperature, top_p, n (1 only), best_of (1 only), stream, stream_options, stop (string or
// array), seed, logprobs, echo, presence_penalty, frequency_penalty, logit_bias (empty only),
// suffix (empty only), user; vLLM's extensions top_k (-1 = off), min_p, repetition_penalty, ignore_eos,
// stop_token_ids; and ours: "adak": {"routing": {"policy", "top_k", "top_p", "top_p_weighting",
// "threshold", "min_k", "max_k"}, "return_routing_stats"}. Unknown top-level fields are ignored (OpenAI
// clients send their own); unknown fields inside "adak" are refused.
//
// echo + logprobs scores the prompt (prompt logprobs, the first one null, as OpenAI and vLLM report it)
// and allows max_tokens 0, which is how lm-evaluation-harness computes log-likelihoods.
//
// Pure functions and a value type; CompletionBuilder is not thread-safe (one per request, used on the
// connection's strand).
#ifndef ADAK_SERVER_HTTP_COMPLETIONS_H_
#define ADAK_SERVER_HTTP_COMPLETIONS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "scheduler/request.h"
#include "server/admission.h"
#include "server/service_context.h"
#include "server/status_mapping.h"
#include "tokenizer/tokenizer.h"

namespace adak::server {

struct CompletionCall {
  ApiRequest api;
  bool stream = false;
  bool echo = false;
  bool logprobs = false;  // the response carries a logprobs object (logprobs was set, >= 0)
};

// The deepest nesting of JSON arrays and objects a request body may have (the deepest valid request nests
// 3: "adak" -> "routing" -> values; a prompt as a batch of token-id arrays nests 2). Deeper bodies are
// refused before they are parsed: a deeply nested value would otherwise exhaust the stack of whatever walks
// it recursively.
inline constexpr int kMaxJsonDepth = 32;

// OK when no array or object in `body` nests deeper than `max_depth` levels; InvalidArgument naming the
// limit otherwise. Runs in one pass over the bytes (strings skipped) without parsing; malformed JSON is not
// detected here.
[[nodiscard]] absl::Status CheckJsonDepth(std::string_view body, int max_depth);

// Parses the body of POST /v1/completions into the front-end-neutral ApiRequest (server/admission.h
// validates the values; this checks the JSON types and the OpenAI-only fields). Errors: InvalidArgument
// naming the field as the JSON body spells it and carrying it (base/error_field.h; ErrorParam in
// server/status_mapping.h reads it), e.g. "prompt: one prompt per request, got 3" (prompt) or "n must be
// 1 (one choice per request), got 2" (n); NotFound carrying `model` when it names a model this server
// does not serve; InvalidArgument without a field when the body is not a JSON object or nests deeper than
// kMaxJsonDepth (the message names the limit).
[[nodiscard]] absl::StatusOr<CompletionCall> ParseCompletionRequest(std::string_view body,
                                                                    const ServiceContext& context);

// Builds the response of one completion. `prompt_ids` are the tokenized prompt, `prompt_text` the prompt
// as echo returns it. REQUIRES: the context (and its tokenizer) outlives the builder.
class CompletionBuilder {
 public:
  CompletionBuilder(const ServiceContext& context, const CompletionCall& call, std::vector<int32_t> prompt_ids,
                    std::string prompt_text, std::string id, int64_t created);

  // Records tokens as the scheduler reports them (both modes).
  void AddTokens(const std::vector<scheduler::TokenOutput>& tokens);

  // Streaming: "data: {chunk}\n\n" for the tokens added since the last chunk (their text, and logprobs
  // when asked for), or "" when there is nothing to send (held-back text, no logprobs).
  [[nodiscard]] std::string StreamChunk();
  // Streaming with echo: the first chunk, carrying the prompt text.
  [[nodiscard]] std::string EchoChunk() const;
  // Streaming: the final chunk (finish_reason, usage) followed by "data: [DONE]\n\n"; for a failed
  // request (final.status not OK) an error event {"error": {...}} then [DONE].
  [[nodiscard]] std::string FinalChunks(const scheduler::FinalOutput& final) const;

  // Not streaming: the whole response object. REQUIRES: final.status is OK.
  [[nodiscard]] std::string Response(const scheduler::FinalOutput& final) const;

  // The usage object: prompt/completion/total tokens, prompt_tokens_details.cached_tokens (prefix cache
  // hits), and the "adak" extension (expert_activations,
  // expert_flops, expert_flops_saved, mean_k, and mean_k_per_layer with return_routing_stats).
  [[nodiscard]] std::string UsageJson(const scheduler::Usage& usage) const;

 private:
  struct TokenEntry {
    int32_t id = 0;
    std::string piece;  // the token's text in context (may be empty while UTF-8 is incomplete)
    float logprob = 0.0f;
    std::vector<scheduler::TopLogprob> top;
  };

  [[nodiscard]] nlohmann::ordered_json UsageObject(const scheduler::Usage& usage) const;
  // The text of `id` after `prev` (-1: at the start), for top-logprob keys.
  [[nodiscard]] std::string PieceAfter(int32_t prev, int32_t id) const;
  // Generated token i's top-logprob entries: the token itself, then its alternatives (text after the
  // previous token).
  [[nodiscard]] std::vector<std::pair<std::string, float>> GeneratedTop(size_t i) const;

  const ServiceContext& context_;
  const tokenizer::Tokenizer& tokenizer_;
  CompletionCall call_;
  std::vector<int32_t> prompt_ids_;
  std::string prompt_text_;
  std::string id_;
  int64_t created_;
  tokenizer::IncrementalDetokenizer detokenizer_;  // generated tokens, with the prompt as context
  std::string text_;                               // the scheduler's text so far
  std::vector<TokenEntry> tokens_;                 // generated tokens
  size_t streamed_tokens_ = 0;                     // tokens_ already sent in chunks
  size_t streamed_text_ = 0;                       // bytes of text_ already sent
  size_t streamed_offset_ = 0;                     // text_offset of the next streamed token
};

}  // namespace adak::server

#endif  // ADAK_SERVER_HTTP_COMPLETIONS_H_
