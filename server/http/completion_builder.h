// The response objects of the OpenAI endpoints, built from what the scheduler reports: per candidate a
// CompletionBuilder (its choice in a response, or its server-sent-event chunks when streaming), and
// CombineResponse for the whole response of a request with several prompts or choices.
//
// /v1/completions: object "text_completion", choices {index, text, logprobs {tokens, token_logprobs,
// top_logprobs, text_offset}, finish_reason, stop_reason}. /v1/chat/completions: object "chat.completion"
// (chunks "chat.completion.chunk"), choices {index, message {role, content} (chunks: delta), logprobs
// {content: [{token, logprob, bytes, top_logprobs}]}, finish_reason, stop_reason}. Both carry usage
// {prompt_tokens (once per prompt), completion_tokens (every candidate), total_tokens,
// prompt_tokens_details.cached_tokens, adak {expert_activations, expert_flops, expert_flops_saved, mean_k,
// shared_prompt_tokens (prompt tokens later candidates took from the prefix cache), mean_k_per_layer}}.
//
// Not thread-safe: one builder per candidate, used on the connection's strand.
#ifndef ADAK_SERVER_HTTP_COMPLETION_BUILDER_H_
#define ADAK_SERVER_HTTP_COMPLETION_BUILDER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"
#include "scheduler/request.h"
#include "server/http/completions.h"
#include "server/service_context.h"
#include "tokenizer/tokenizer.h"

namespace adak::server {

class CompletionBuilder {
 public:
  // `prompt_ids` are the tokenized prompt, `prompt_text` the prompt as echo returns it, `index` the choice
  // index this candidate streams under. REQUIRES: the context (and its tokenizer) outlives the builder.
  CompletionBuilder(const ServiceContext& context, const CompletionCall& call, std::vector<int32_t> prompt_ids,
                    std::string prompt_text, std::string id, int64_t created, int64_t index = 0);

  // Records tokens as the scheduler reports them (both modes).
  void AddTokens(const std::vector<scheduler::TokenOutput>& tokens);
  // Records the prompt's logprobs (RequestSink::OnPromptLogprobs) for a streamed echo.
  void SetPromptLogprobs(std::vector<float> logprobs, std::vector<std::vector<scheduler::TopLogprob>> top);

  // Streaming: "data: {chunk}\n\n" for the tokens added since the last chunk (their text, and logprobs
  // when asked for), or "" when no token was added. A step whose text is held back (a UTF-8 character or a
  // possible stop string not yet complete) still gets a chunk, with empty text, as vLLM sends one: the
  // client sees every decode step. A chat stream's first chunk carries the role.
  [[nodiscard]] std::string StreamChunk();
  // Streaming with echo (completions): the first chunk, carrying the prompt text and, with logprobs, the
  // prompt's logprobs (when SetPromptLogprobs came first).
  [[nodiscard]] std::string EchoChunk() const;
  // Streaming: this candidate's final chunk (finish_reason; `usage` when not null).
  [[nodiscard]] std::string FinalChunk(const scheduler::FinalOutput& final, const nlohmann::ordered_json* usage) const;
  // Streaming, one candidate: FinalChunk with its usage then "data: [DONE]\n\n"; for a failed request
  // (final.status not OK) an error event {"error": {...}} then [DONE].
  [[nodiscard]] std::string FinalChunks(const scheduler::FinalOutput& final) const;

  // Not streaming: this candidate's choice object with `index`. REQUIRES: final.status is OK.
  [[nodiscard]] nlohmann::ordered_json Choice(const scheduler::FinalOutput& final, int64_t index) const;
  // Not streaming, one candidate: the whole response object. REQUIRES: final.status is OK.
  [[nodiscard]] std::string Response(const scheduler::FinalOutput& final) const;

  // The usage object of `finals` (one per candidate, in candidate order; candidates of one prompt are
  // `best_of` consecutive entries).
  [[nodiscard]] nlohmann::ordered_json UsageObject(const std::vector<const scheduler::FinalOutput*>& finals) const;
  // The response/chunk envelope: id, object, created, model.
  [[nodiscard]] nlohmann::ordered_json Envelope(bool chunk) const;

  // Sum of the generated tokens' logprobs (best_of ranks candidates by it).
  [[nodiscard]] double cumulative_logprob() const { return cumulative_logprob_; }

 private:
  struct TokenEntry {
    int32_t id = 0;
    std::string piece;  // the token's text in context (may be empty while UTF-8 is incomplete)
    float logprob = 0.0f;
    std::vector<scheduler::TopLogprob> top;
  };

  // What the builder needs of the call (not the call itself: that holds every prompt of the request, and a
  // request has up to kMaxCandidates builders).
  struct Options {
    bool chat = false;
    bool echo = false;
    bool logprobs = false;
    int64_t best_of = 1;
    int64_t candidates = 1;
    std::vector<int32_t> stop_token_ids;
    bool return_routing_stats = false;
  };

  [[nodiscard]] bool chat() const { return options_.chat; }
  // The text of `id` after `prev` (-1: at the start), for top-logprob keys.
  [[nodiscard]] std::string PieceAfter(int32_t prev, int32_t id) const;
  // Generated token i's top-logprob entries: the token itself, then its alternatives (text after the
  // previous token).
  [[nodiscard]] std::vector<std::pair<std::string, float>> GeneratedTop(size_t i) const;
  // "data: {chunk}\n\n" of one choice in the chunk envelope.
  [[nodiscard]] std::string ChunkEvent(nlohmann::ordered_json choice) const;
  // Chat logprobs entries of generated tokens [begin, end).
  [[nodiscard]] nlohmann::ordered_json ChatLogprobs(size_t begin, size_t end) const;
  // Completions logprobs of the prompt (echo): appended to the legacy object's arrays.
  void AddPromptLogprobs(nlohmann::ordered_json& lp, const std::vector<float>& logprobs,
                         const std::vector<std::vector<scheduler::TopLogprob>>& top) const;

  const ServiceContext& context_;
  const tokenizer::Tokenizer& tokenizer_;
  Options options_;
  std::vector<int32_t> prompt_ids_;
  std::string prompt_text_;
  std::string id_;
  int64_t created_;
  int64_t index_;
  tokenizer::IncrementalDetokenizer detokenizer_;  // generated tokens, with the prompt as context
  std::string text_;                               // the scheduler's text so far
  std::vector<TokenEntry> tokens_;                 // generated tokens
  double cumulative_logprob_ = 0.0;
  std::vector<float> prompt_logprobs_;  // from SetPromptLogprobs
  std::vector<std::vector<scheduler::TopLogprob>> prompt_top_logprobs_;
  size_t streamed_tokens_ = 0;     // tokens_ already sent in chunks
  size_t generated_ = 0;           // tokens added (AddTokens), logprobs or not
  size_t streamed_generated_ = 0;  // of those, already covered by a chunk
  size_t streamed_text_ = 0;       // bytes of text_ already sent
  size_t streamed_offset_ = 0;     // text_offset of the next streamed token
  bool role_sent_ = false;         // chat: the first chunk (with the role) went out
};

// The response of a request with several candidates (not streaming): the choices (for best_of > n, the n
// candidates of each prompt with the highest cumulative logprob, renumbered), and the usage of all.
// REQUIRES: builders.size() == finals.size() == call.candidates(), every final OK.
[[nodiscard]] std::string CombineResponse(const CompletionCall& call,
                                          const std::vector<const CompletionBuilder*>& builders,
                                          const std::vector<const scheduler::FinalOutput*>& finals);

}  // namespace adak::server

#endif  // ADAK_SERVER_HTTP_COMPLETION_BUILDER_H_
