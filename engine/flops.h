// FLOP accounting of the forward pass, per token and layer, and the savings of adaptive routing.
//
// A multiply-add counts as 2 FLOPs. Per token and layer: attention (q/k/v/o projections plus the
// score and value products over the token's context), router (2·E·H), allocator (2·E·H when Ada-K runs),
// routed experts (k·3·2·H·I), shared experts (3·2·H·I_s, plus 2·H for a sigmoid gate), dense MLP layers;
// per token: the LM head (2·H·V). Savings compare the routed-expert FLOPs against the model's native
// top-K on the same tokens (negative when a policy runs more experts). FlopCounter is a value type;
// thread-compatible.
#ifndef ADAK_ENGINE_FLOPS_H_
#define ADAK_ENGINE_FLOPS_H_

#include <cstdint>
#include <span>
#include <vector>

#include "engine/model_config.h"

namespace adak::engine {

// FLOPs of one token in one layer, by part.
struct LayerFlops {
  int64_t attention = 0;
  int64_t router = 0;
  int64_t allocator = 0;
  int64_t routed_experts = 0;
  int64_t shared_experts = 0;
  int64_t dense_mlp = 0;
  [[nodiscard]] int64_t total() const {
    return attention + router + allocator + routed_experts + shared_experts + dense_mlp;
  }
};

// One token at position `position` (it attends to position + 1 keys) that ran `k` routed experts in
// `layer`; `allocator` when an Ada-K allocator was evaluated there.
[[nodiscard]] LayerFlops TokenLayerFlops(const ModelConfig& config, int64_t layer, int64_t k, int64_t position,
                                         bool allocator);
// FLOPs of one routed expert activation: 3 · 2 · H · I.
[[nodiscard]] int64_t ExpertActivationFlops(const ModelConfig& config);
[[nodiscard]] int64_t LmHeadFlops(const ModelConfig& config);

// Accumulates routed k over tokens (prompt and generated alike).
class FlopCounter {
 public:
  explicit FlopCounter(const ModelConfig& config);

  // routed_k: [L][n] experts per token and layer for n tokens (ForwardResult::routed_k).
  void Add(const std::vector<std::vector<int32_t>>& routed_k);

  [[nodiscard]] int64_t tokens() const { return tokens_; }
  // Mean k of MoE layer `layer` (0 for dense layers), and over every MoE layer.
  [[nodiscard]] double mean_k(int64_t layer) const;
  [[nodiscard]] double mean_k() const;
  [[nodiscard]] int64_t expert_activations() const;         // sum of k over tokens and MoE layers
  [[nodiscard]] int64_t native_expert_activations() const;  // tokens x MoE layers x native K
  [[nodiscard]] int64_t expert_flops() const;
  [[nodiscard]] int64_t native_expert_flops() const;
  [[nodiscard]] int64_t expert_flops_saved() const { return native_expert_flops() - expert_flops(); }
  // expert_flops_saved / native_expert_flops (0 when nothing ran).
  [[nodiscard]] double savings_ratio() const;
  [[nodiscard]] const std::vector<int64_t>& layer_sum_k() const { return sum_k_; }

 private:
  const ModelConfig* config_;
  int64_t tokens_ = 0;
  std::vector<int64_t> sum_k_;  // [L]
};

}  // namespace adak::engine

#endif  // ADAK_ENGINE_FLOPS_H_
