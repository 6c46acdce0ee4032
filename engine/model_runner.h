// The forward pass of a MoE decoder over a batch of sequences at different positions.
//
// One Forward call runs every new token of every sequence in the batch (prefill chunks and decodes
// alike, through the same code) against the paged KV cache, writing each token's K/V into its slot, and
// returns fp32 logits for the requested positions. The runner prepares the weights on the backend once
// (Create) and owns per-batch workspace; the caller (scheduler or CLI) owns the KV cache and its block
// tables. Not thread-safe: one thread drives a runner.
//
// Shape legend (engine/README.md): T tokens in the batch, H hidden, V vocab, R logit rows.
#ifndef ADAK_ENGINE_MODEL_RUNNER_H_
#define ADAK_ENGINE_MODEL_RUNNER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/kv_cache.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "engine/routing.h"
#include "engine/routing_weights.h"

namespace adak::engine {

// One sequence's part of a batch.
struct SequenceInput {
  std::span<const int32_t> tokens;       // the new tokens of this step (>= 1)
  int64_t start_position = 0;            // positions already in the KV cache (tokens[0]'s position)
  std::span<const int32_t> block_table;  // physical blocks covering [0, start_position + tokens.size())
  bool all_logits = false;               // logits for every new token; otherwise only for the last one
  RoutingParams routing;                 // this sequence's routing policy (native top-K by default)
};

struct ForwardResult {
  int64_t vocab_size = 0;
  // [R, V]: the requested rows in batch order (per sequence: all new tokens, or only the last).
  std::vector<float> logits;
  // logits_offset[s] = first row of sequence s; rows of s are [logits_offset[s], logits_offset[s+1]).
  std::vector<int64_t> logits_offset;
  // Per layer, [T]: the experts each token ran (0 for dense layers). Always filled.
  std::vector<std::vector<int32_t>> routed_k;
  // With ForwardOptions::record_routing: per layer, [T, E] expert ids in descending router probability
  // (-1 past k; all -1 for dense layers) and their combine weights.
  std::vector<std::vector<int32_t>> routed_ids;
  std::vector<std::vector<float>> routed_weights;
  // With ForwardOptions::record_router_inputs: per layer, [T, H] the router's input x (the
  // post-attention norm output) for MoE layers; empty for dense layers.
  std::vector<std::vector<float>> router_inputs;
};

struct ForwardOptions {
  bool record_routing = false;
  // Fill ForwardResult::router_inputs (the states an allocator sees), for allocator training.
  bool record_router_inputs = false;
};

class ModelRunner {
 public:
  // Prepares every weight on the backend; `routing` (allocators, null experts) may be empty. REQUIRES:
  // weights bound for `config`; routing, backend and cache outlive the runner. Errors: from the backend.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(const ModelConfig& config,
                                                                           const ModelWeights& weights,
                                                                           const RoutingWeights& routing,
                                                                           Backend* backend, KvCache* cache);

  // Runs the batch. Errors (InvalidArgument, nothing is written to the cache): an empty batch or
  // sequence, routing params ValidateRoutingParams refuses, a token id outside [0, vocab), a position at or beyond
  // max_position_embeddings, a block table too short for the positions or naming a block outside the cache. Backend
  // errors: Internal.
  [[nodiscard]] absl::Status Forward(std::span<const SequenceInput> batch, const ForwardOptions& options,
                                     ForwardResult* result);

  // Replaces allocator profile `profile`'s rows of layer `layer` ([E * H] fp32) in the fused gate, e.g. after
  // a training step. Errors: FailedPrecondition when the runner was created without that profile's allocator
  // for that layer; InvalidArgument for a wrong size.
  [[nodiscard]] absl::Status SetAllocator(int64_t profile, int64_t layer, std::span<const float> rows);
  // The same for a version-2 profile's router weight U ([E * E]) and bias b ([E]). Errors: FailedPrecondition
  // when that profile's allocator is not version 2 in that layer; InvalidArgument for wrong sizes.
  [[nodiscard]] absl::Status SetAllocatorExtras(int64_t profile, int64_t layer, std::span<const float> router_weight,
                                                std::span<const float> bias);

  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] Backend* backend() const { return backend_; }
  [[nodiscard]] KvCache* cache() const { return cache_; }
  [[nodiscard]] const RoutingWeights& routing_weights() const { return routing_; }

 private:
  struct Layer {
    Tensor input_norm, post_attention_norm, q_proj, k_proj, v_proj, o_proj, q_bias, k_bias, v_bias, q_norm, k_norm;
    bool is_moe = false;
    Tensor gate, shared_gate;  // gate: fused [E + Ea + M, H] routing rows (see MoeArgs)
    int64_t allocator_rows = 0, null_rows = 0;
    uint32_t allocator_present = 0;  // bit p: profile p's rows in the gate are its allocator (else zeros)
    // [P] when some profile is version 2 (else empty): its U and b in extras_storage, nullptr for version 1.
    std::vector<kernels::AllocatorExtras> allocator_extras;
    std::vector<std::unique_ptr<DeviceBuffer>> extras_storage;  // [P]: U [E * E] then b [E], or null
    std::unique_ptr<DeviceBuffer> gate_storage;                 // owns `gate` when it is a fused fp32 copy
    std::vector<MlpTensors> experts;
    MlpTensors shared, mlp;
  };

  ModelRunner(const ModelConfig& config, const RoutingWeights& routing, Backend* backend, KvCache* cache)
      : config_(config), routing_(routing), backend_(backend), cache_(cache) {}
  [[nodiscard]] absl::Status PrepareGate(const LayerWeights& lw, size_t layer, Layer* l);
  [[nodiscard]] absl::Status EnsureWorkspace(int64_t tokens, int64_t logit_rows, int64_t int_words);

  // The steps of Forward, in order (each layer: RunLayer = RunAttention, post-attention norm, RunMoe or Mlp).
  struct BatchShape;
  struct HostBatch;
  [[nodiscard]] absl::Status ValidateSequence(const SequenceInput& in, size_t s) const;
  [[nodiscard]] absl::StatusOr<BatchShape> ValidateBatch(std::span<const SequenceInput> batch) const;
  // Token ids, positions, KV slots, logit rows, block tables and routes; fills result->logits_offset.
  [[nodiscard]] HostBatch LayOutBatch(std::span<const SequenceInput> batch, const BatchShape& shape,
                                      ForwardResult* result) const;
  [[nodiscard]] absl::StatusOr<AttentionBatch> UploadBatch(const HostBatch& host, const BatchShape& shape);
  void ResetRoutingRecords(int64_t num_tokens, const ForwardOptions& options, ForwardResult* result) const;
  [[nodiscard]] absl::Status RunLayer(size_t li, const AttentionBatch& ab, const ForwardOptions& options,
                                      ForwardResult* result);
  // residual += o_proj(attention(input_norm(residual))), writing this layer's K/V into the cache.
  void RunAttention(size_t li, const Layer& l, const AttentionBatch& ab);
  // q, k, v from `normed_`: projections, the model's q/k norm and clipping, RoPE.
  void ProjectQkv(const Layer& l, const AttentionBatch& ab);
  // residual += Moe(normed_), recording what `options` asks for.
  [[nodiscard]] absl::Status RunMoe(size_t li, const Layer& l, int64_t num_tokens, const ForwardOptions& options,
                                    ForwardResult* result);
  [[nodiscard]] absl::Status DownloadRouting(size_t li, const MoeArgs& m, const ForwardOptions& options,
                                             ForwardResult* result);
  // Final norm and LM head over the requested rows, downloaded into result->logits.
  [[nodiscard]] absl::Status ComputeLogits(const BatchShape& shape, ForwardResult* result);

  ModelConfig config_;
  const RoutingWeights& routing_;
  Backend* backend_;
  KvCache* cache_;
  Tensor embed_tokens_, final_norm_, lm_head_;
  std::vector<Layer> layers_;

  // Workspace, grown on demand.
  int64_t ws_tokens_ = 0, ws_logit_rows_ = 0, ws_int_words_ = 0;
  std::unique_ptr<DeviceBuffer> residual_, normed_, q_, k_, v_, attn_, final_, logits_, ints_, routes_, routed_k_,
      routed_ids_, routed_weights_;
};

}  // namespace adak::engine

#endif  // ADAK_ENGINE_MODEL_RUNNER_H_
