// A single-sequence driver over ModelRunner that returns logits and routing, for scoring (`adak logits`,
// `perplexity`, `eval`, training/evaluation.h), golden tests and benchmarks.
//
// A Session owns a backend (SessionOptions::device through CreateBackend; the CPU by default), a KV cache
// sized for one sequence of up to `max_context` tokens, and the sequence's block table (block j of the
// sequence is cache block j). Append runs new tokens (in prefill chunks of `prefill_chunk`) and returns their
// logits. Generation (sampling, stop conditions, detokenization) is not here: `adak generate` and the server
// both run it through scheduler::Scheduler.
// Not thread-safe.
#ifndef ADAK_ENGINE_SESSION_H_
#define ADAK_ENGINE_SESSION_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/model_runner.h"
#include "engine/routing.h"
#include "engine/routing_weights.h"

namespace adak::engine {

struct SessionOptions {
  int num_threads = 0;      // 0 = all hardware threads
  int64_t max_context = 0;  // 0 = the model's max_position_embeddings
  int64_t block_size = 16;
  int64_t prefill_chunk = 512;         // tokens per forward during prefill
  DType kv_cache_dtype = DType::kF32;  // kF32 or kBF16 (KvCache)
  // Dot products with BF16 weights (BackendOptions::dot_precision); kFp32 = exact.
  kernels::DotPrecision dot_precision = kernels::DotPrecision::kFp32;
  // The backend and device ordinal the session computes on (engine/device.h); CPU by default.
  DeviceSpec device;
};

struct AppendOptions {
  bool all_logits = false;      // logits for every new token, else only for the last
  bool record_routing = false;  // fill AppendResult::routed_ids / routed_weights
  RoutingParams routing;
};

// ForwardResult fields, concatenated over the chunks of one Append (rows: the new tokens).
struct AppendResult {
  std::vector<float> logits;                       // [n or 1, V]
  std::vector<std::vector<int32_t>> routed_k;      // [L][n]
  std::vector<std::vector<int32_t>> routed_ids;    // [L][n * E] with record_routing
  std::vector<std::vector<float>> routed_weights;  // [L][n * E] with record_routing
};

class Session {
 public:
  // REQUIRES: `model` outlives the session. `routing` holds the allocators / null experts policies may
  // use. Errors: InvalidArgument for bad options; CreateBackend's for options.device (InvalidArgument for a
  // backend not compiled in, FailedPrecondition when it has no device here); allocation errors.
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
  std::vector<int32_t> block_table_;
  int64_t length_ = 0;
  ForwardResult forward_;
};

}  // namespace adak::engine

#endif  // ADAK_ENGINE_SESSION_H_
