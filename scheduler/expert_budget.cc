#include "scheduler/expert_budget.h"

#include <algorithm>

namespace adak::scheduler {
namespace {

size_t Index(engine::RoutingPolicy policy) { return static_cast<size_t>(policy); }

}  // namespace

ExpertBudget::ExpertBudget(const engine::ModelConfig& config, double limit, int64_t max_batch_tokens, double alpha)
    : config_(config), alpha_(std::clamp(alpha, 1e-6, 1.0)) {
  const int64_t moe_layers = config.num_moe_layers();
  const int64_t k = config.num_experts_per_tok;
  limit_ = limit > 0.0 ? limit : static_cast<double>(max_batch_tokens * k * moe_layers);
  const size_t layers = static_cast<size_t>(config.num_layers);
  for (size_t p = 0; p < kPolicies; ++p) {
    mean_k_[p].assign(layers, 0.0);
    sum_[p].assign(layers, 0);
    for (size_t l = 0; l < layers; ++l) {
      if (l < config.moe_layers.size() && config.moe_layers[l]) mean_k_[p][l] = static_cast<double>(k);
    }
    per_token_[p] = static_cast<double>(k * moe_layers);
  }
}

double ExpertBudget::PerToken(const engine::RoutingParams& routing) const {
  if (routing.policy == engine::RoutingPolicy::kTopK) {
    const int64_t k = routing.top_k > 0 ? routing.top_k : config_.num_experts_per_tok;
    return static_cast<double>(k * config_.num_moe_layers());
  }
  return per_token_[Index(routing.policy)];
}

double ExpertBudget::mean_k(engine::RoutingPolicy policy, int64_t layer) const {
  return mean_k_[Index(policy)][static_cast<size_t>(layer)];
}

void ExpertBudget::Observe(const std::vector<std::vector<int32_t>>& routed_k,
                           std::span<const engine::RoutingParams* const> token_routing) {
  const size_t layers = std::min(routed_k.size(), mean_k_[0].size());
  for (size_t p = 0; p < kPolicies; ++p) {
    std::fill(sum_[p].begin(), sum_[p].end(), 0);
    count_[p] = 0;
  }
  for (size_t t = 0; t < token_routing.size(); ++t) {
    const size_t p = Index(token_routing[t]->policy);
    ++count_[p];
    for (size_t l = 0; l < layers; ++l) {
      if (t < routed_k[l].size()) sum_[p][l] += routed_k[l][t];
    }
  }
  for (size_t p = 0; p < kPolicies; ++p) {
    if (count_[p] == 0) continue;
    double total = 0.0;
    for (size_t l = 0; l < mean_k_[p].size(); ++l) {
      if (l < layers && config_.moe_layers[l]) {
        const double step_mean = static_cast<double>(sum_[p][l]) / static_cast<double>(count_[p]);
        mean_k_[p][l] = (1.0 - alpha_) * mean_k_[p][l] + alpha_ * step_mean;
      }
      total += mean_k_[p][l];
    }
    per_token_[p] = total;
  }
}

}  // namespace adak::scheduler
