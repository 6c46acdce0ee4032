// A single-sequence driver over ModelRunner, for the `adak` CLI, evaluation and benchmarks.
//
// A Session owns a CPU backend, a KV cache sized for one sequence of up to `max_context` tokens, and
// the sequence's block table. Append runs new tokens (in prefill chunks of `prefill_chunk`) and returns
// their logits; Generate adds sampling and incremental detokenization. The server does not use this: its
// scheduler batches many sequences over one ModelRunner. Not thread-safe.
#ifndef ADAK_ENGINE_SESSION_H_
#define ADAK_ENGINE_SESSION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/flops.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/model_runner.h"
#include "engine/routing.h"
#include "engine/routing_weights.h"
#include "engine/sampler.h"

namespace adak::engine {

struct SessionOptions {
  int num_threads = 0;           // 0 = all hardware threads
  int64_t max_context = 0;       // 0 = the model's max_position_embeddings
  int64_t block_size = 16;
  int64_t prefill_chunk = 512;   // tokens per forward during prefill
};

struct AppendOptions {
  bool all_logits = false;       // logits for every new token, else only for the last
  bool record_routing = false;   // fill AppendResult::routed_ids / routed_weights
  RoutingParams routing;
};

// ForwardResult fields, concatenated over the chunks of one Append (rows: the new tokens).
struct AppendResult {
  std::vector<float> logits;                         // [n or 1, V]
  std::vector<std::vector<int32_t>> routed_k;        // [L][n]
  std::vector<std::vector<int32_t>> routed_ids;      // [L][n * E] with record_routing
  std::vector<std::vector<float>> routed_weights;    // [L][n * E] with record_routing
};

class Session {
 public:
  // REQUIRES: `model` outlives the session. `routing` holds the allocators / null experts policies may
  // use. Errors: InvalidArgument for bad options; allocation errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Session>> Create(const Model& model,
                                                                       const SessionOptions& options,
                                                                       RoutingWeights routing = {});

  // Runs `tokens` after those already in the sequence. Errors: InvalidArgument when the sequence would
  // exceed max_context (names both numbers), for a bad token id or bad routing params; nothing is
  // appended then.
  [[nodiscard]] absl::Status Append(std::span<const int32_t> tokens, const AppendOptions& options,
                                    AppendResult* result);
  // Shorthand: native routing, logits only.
  [[nodiscard]] absl::Status Append(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits);
  // Forgets the sequence (its KV blocks return to the pool).
  void Reset();

  [[nodiscard]] int64_t length() const { return length_; }
  [[nodiscard]] int64_t max_context() const { return max_context_; }
  [[nodiscard]] const Model& model() const { return model_; }
  [[nodiscard]] const RoutingWeights& routing_weights() const { return routing_; }

 private:
  Session(const Model& model, const SessionOptions& options, RoutingWeights routing)
      : model_(model), options_(options), routing_(std::move(routing)) {}

  const Model& model_;
  SessionOptions options_;
  RoutingWeights routing_;
  int64_t max_context_ = 0;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<BlockAllocator> blocks_;
  std::vector<int32_t> block_table_;
  int64_t length_ = 0;
  ForwardResult forward_;
};

struct GenerateOptions {
  int64_t max_tokens = 64;
  SamplingParams sampling;
  RoutingParams routing;
  bool stop_at_eos = true;
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;
  std::string text;              // detokenized output
  std::string finish_reason;     // "length" or "stop"
  double prefill_seconds = 0.0;  // prompt forward
  double decode_seconds = 0.0;   // every later token
  // Routed k of every prompt and generated token, per layer (mean k, expert FLOPs, savings).
  std::optional<FlopCounter> flops;
};

// Generates after `prompt_ids` on a fresh sequence (the session is Reset first). `on_text` (optional)
// receives each detokenized piece as soon as it is complete UTF-8.
// Errors: InvalidArgument for empty prompts, max_tokens < 1, bad sampling params, or prompt + max_tokens
// beyond the session's max_context (names both numbers).
[[nodiscard]] absl::StatusOr<GenerateResult> Generate(Session& session, std::span<const int32_t> prompt_ids,
                                                      const GenerateOptions& options,
                                                      const std::function<void(std::string_view)>& on_text = {});

}  // namespace adak::engine

#endif  // ADAK_ENGINE_SESSION_H_
