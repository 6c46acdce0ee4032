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
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/model_runner.h"
#include "engine/sampler.h"

namespace adak::engine {

struct SessionOptions {
  int num_threads = 0;           // 0 = all hardware threads
  int64_t max_context = 0;       // 0 = the model's max_position_embeddings
  int64_t block_size = 16;
  int64_t prefill_chunk = 512;   // tokens per forward during prefill
};

class Session {
 public:
  // REQUIRES: `model` outlives the session. Errors: InvalidArgument for bad options; allocation errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Session>> Create(const Model& model,
                                                                       const SessionOptions& options);

  // Runs `tokens` after those already in the sequence. `logits` receives [n, V] for every new token when
  // all_logits, else [1, V] for the last. `routing` (optional) receives per-layer [n, top_k] expert ids.
  // Errors: InvalidArgument when the sequence would exceed max_context (names both numbers) or for a bad
  // token id; nothing is appended then.
  [[nodiscard]] absl::Status Append(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits,
                                    std::vector<std::vector<int32_t>>* routing = nullptr,
                                    std::vector<std::vector<float>>* routing_weights = nullptr);
  // Forgets the sequence (its KV blocks return to the pool).
  void Reset();

  [[nodiscard]] int64_t length() const { return length_; }
  [[nodiscard]] int64_t max_context() const { return max_context_; }
  [[nodiscard]] const Model& model() const { return model_; }

 private:
  Session(const Model& model, const SessionOptions& options) : model_(model), options_(options) {}

  const Model& model_;
  SessionOptions options_;
  int64_t max_context_ = 0;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<BlockAllocator> blocks_;
  std::vector<int32_t> block_table_;
  int64_t length_ = 0;
};

struct GenerateOptions {
  int64_t max_tokens = 64;
  SamplingParams sampling;
  bool stop_at_eos = true;
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;
  std::string text;              // detokenized output
  std::string finish_reason;     // "length" or "stop"
  double prefill_seconds = 0.0;  // prompt forward
  double decode_seconds = 0.0;   // every later token
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
