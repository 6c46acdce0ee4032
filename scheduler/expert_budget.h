// The expert-compute budget of a step: how many routed expert activations a token is expected to cost,
// learned from what the engine actually routed.
//
// For each routing policy the budget keeps an exponential moving average of the mean k per MoE layer
// (from ForwardResult::routed_k of the tokens that ran that policy). A token's expected activations are
// the sum over MoE layers of that mean k: exactly top_k x MoE layers for native top-K, and the native K
// per layer for the adaptive policies until the first step of theirs has run. The planner lets a step
// add tokens only while the expected sum stays within limit(), so a batch of Ada-K tokens that pick
// fewer experts packs more tokens than native top-K under the same budget. Not thread-safe (scheduler
// thread).
#ifndef ADAK_SCHEDULER_EXPERT_BUDGET_H_
#define ADAK_SCHEDULER_EXPERT_BUDGET_H_

#include <array>
#include <cstdint>
#include <iterator>
#include <span>
#include <vector>

#include "engine/model_config.h"
#include "engine/routing.h"

namespace adak::scheduler {

class ExpertBudget {
 public:
  // `limit` = max expert activations per step; 0 = max_batch_tokens x native K x MoE layers.
  // `alpha` is the weight of the newest step in the moving average, in (0, 1].
  ExpertBudget(const engine::ModelConfig& config, double limit, int64_t max_batch_tokens, double alpha = 0.2);

  // Expected routed-expert activations of one token under `routing`, summed over MoE layers.
  [[nodiscard]] double PerToken(const engine::RoutingParams& routing) const;

  // Updates the averages from one forward: routed_k [L][T] and each token's routing [T].
  void Observe(const std::vector<std::vector<int32_t>>& routed_k,
               std::span<const engine::RoutingParams* const> token_routing);

  [[nodiscard]] double limit() const { return limit_; }
  // The current mean k of `policy` in layer `layer` (0 for dense layers).
  [[nodiscard]] double mean_k(engine::RoutingPolicy policy, int64_t layer) const;

 private:
  static constexpr size_t kPolicies = std::size(engine::kRoutingPolicies);
  const engine::ModelConfig& config_;
  double limit_;
  double alpha_;
  std::array<std::vector<double>, kPolicies> mean_k_;  // [policy][L]
  std::array<double, kPolicies> per_token_{};          // sum over layers of mean_k_
  // Scratch for Observe: [policy][L] sums and [policy] token counts.
  std::array<std::vector<int64_t>, kPolicies> sum_;
  std::array<int64_t, kPolicies> count_{};
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_EXPERT_BUDGET_H_
