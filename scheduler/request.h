// A generation request as the scheduler sees it, what it streams back, and the checks it must pass.
//
// The server turns a gRPC or HTTP call into a GenerationRequest (tokenized prompt, sampling, routing,
// stop conditions) and hands it to Scheduler::Submit with a RequestSink. The scheduler thread reports
// through the sink: OnTokens for every step that produced output, then OnFinish exactly once. Scoring
// (gRPC Score, HTTP echo + logprobs) is a request with prompt_logprobs and max_tokens = 0.
//
// Value types; thread-compatible. RequestSink implementations must be thread-safe against the thread
// that created them (the sink is called on the scheduler thread) and must never block.
#ifndef ADAK_SCHEDULER_REQUEST_H_
#define ADAK_SCHEDULER_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/model_config.h"
#include "engine/routing.h"
#include "engine/routing_weights.h"
#include "engine/sampler.h"

namespace adak::scheduler {

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;  // >= 1 token
  int64_t max_tokens = 16;          // >= 1; 0 only with prompt_logprobs (score the prompt, generate nothing)
  engine::SamplingParams sampling;
  engine::RoutingParams routing;        // sample/seed are training-only and refused here
  std::vector<std::string> stop;        // stop strings: generation ends before the first match; not in the text
  std::vector<int32_t> stop_token_ids;  // generation ends at one of these (the token is not in the text)
  bool ignore_eos = false;              // otherwise the model's eos ids stop generation
  int32_t logprobs = -1;                // -1: none; 0: the chosen token's logprob; n > 0: also the top n
  bool prompt_logprobs = false;         // logprob of every prompt token after the first (echo / Score)
  bool return_routing_stats = false;    // fill Usage::mean_k_per_layer
  absl::Time deadline = absl::InfiniteFuture();
};

// Limits a request is checked against (from the model and the server flags).
struct RequestLimits {
  int64_t max_context = 0;    // prompt + max_tokens must fit
  int64_t vocab_size = 0;     // token ids in [0, vocab_size)
  int64_t max_tokens = 0;     // max_tokens upper bound (0 = max_context)
  int32_t max_logprobs = 20;  // logprobs upper bound
  int64_t max_stop_strings = 16;
};

// InvalidArgument naming the field (as the API spells it: prompt, max_tokens, temperature, top_p, top_k,
// min_p, repetition_penalty, presence_penalty, frequency_penalty, logprobs, stop, stop_token_ids,
// routing.policy, routing.top_p, routing.min_k, routing.max_k) and its allowed range; "prompt + max_tokens" over
// max_context names both numbers and the limit. Routing params are checked against the model and the loaded allocator /
// null experts.
[[nodiscard]] absl::Status ValidateRequest(const GenerationRequest& request, const RequestLimits& limits,
                                           const engine::ModelConfig& config,
                                           const engine::RoutingWeights& routing_weights);

struct TopLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

// One token as it reaches the client. `text` is the newly releasable detokenized text (complete UTF-8,
// held back while it could still be the start of a stop string, so it may be empty); the concatenation of
// every `text` of a request is its final output text. A stop token (eos or stop_token_ids) that ends the
// request is reported too, as its last TokenOutput (id and logprob; counted in completion_tokens): its own
// text is never added, but its `text` carries whatever the stop-string check still held back.
struct TokenOutput {
  int32_t id = 0;
  std::string text;
  float logprob = 0.0f;         // with logprobs >= 0
  std::vector<TopLogprob> top;  // with logprobs > 0: the top n, descending
};

// Expert counts and FLOPs cover every prompt and generated token that entered the KV cache, also those
// served from the prefix cache (their routing is recorded with the cached block), so they do not depend on
// cache hits.
struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;      // prompt tokens whose KV came from the prefix cache (did not run)
  int64_t expert_activations = 0;        // sum of routed k over this request's tokens and MoE layers
  double expert_flops = 0.0;             // routed-expert FLOPs of this request's tokens
  double expert_flops_saved = 0.0;       // against the model's native top-K on the same tokens
  std::vector<double> mean_k_per_layer;  // with return_routing_stats: [L] (0 for dense layers)
};

enum class FinishReason { kLength, kStop, kCancelled, kDeadline, kError };
// "length", "stop", "cancelled", "deadline", "error".
[[nodiscard]] const char* FinishReasonName(FinishReason reason);

struct FinalOutput {
  // OK for length/stop; Cancelled, DeadlineExceeded, Unavailable (drain timeout / shutdown) or Internal
  // (engine failure) otherwise. Tokens already streamed stay valid.
  absl::Status status;
  FinishReason reason = FinishReason::kLength;
  std::string matched_stop;           // the stop string that ended it, if any
  std::optional<int32_t> stop_token;  // the stop/eos token that ended it, if any
  Usage usage;
  // With prompt_logprobs: [prompt_tokens - 1] logprob of prompt token i + 1 given tokens 0..i, and their
  // top-n alternatives when logprobs > 0.
  std::vector<float> prompt_logprobs;
  std::vector<std::vector<TopLogprob>> prompt_top_logprobs;
};

class RequestSink {
 public:
  virtual ~RequestSink() = default;
  // Called on the scheduler thread, in order, never after OnFinish. Must not block.
  virtual void OnTokens(std::vector<TokenOutput> tokens) = 0;
  // With prompt_logprobs: called once, before the first OnTokens, when the whole prompt has been scored
  // (the same values FinalOutput carries), so a stream can send them first. Not called for a one-token
  // prompt (nothing to score). Must not block.
  virtual void OnPromptLogprobs(const std::vector<float>& /*logprobs*/,
                                const std::vector<std::vector<TopLogprob>>& /*top*/) {}
  // Called exactly once per accepted request, last. Must not block.
  virtual void OnFinish(FinalOutput final) = 0;
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_REQUEST_H_
