#include "engine/flops.h"

#include <algorithm>

namespace adak::engine {

namespace {
// Multiply and add: two floating-point operations per weight a token meets.
constexpr int64_t kFlopsPerMac = 2;
}  // namespace

int64_t ExpertActivationFlops(const ModelConfig& c) {
  return 3 * kFlopsPerMac * c.hidden_size * c.moe_intermediate_size;
}

int64_t LmHeadFlops(const ModelConfig& c) { return kFlopsPerMac * c.hidden_size * c.vocab_size; }

LayerFlops TokenLayerFlops(const ModelConfig& c, int64_t layer, int64_t k, int64_t position, bool allocator) {
  LayerFlops f;
  const int64_t h = c.hidden_size;
  f.attention = kFlopsPerMac * h * (c.q_dim() + 2 * c.kv_dim()) + kFlopsPerMac * c.q_dim() * h  // projections
                + 2 * kFlopsPerMac * c.q_dim() * (position + 1);  // q·k and p·v over the context
  if (!c.moe_layers[static_cast<size_t>(layer)]) {
    f.dense_mlp = 3 * kFlopsPerMac * h * c.intermediate_size;
    return f;
  }
  f.router = kFlopsPerMac * c.num_experts * h;
  f.allocator = allocator ? kFlopsPerMac * c.num_experts * h : 0;
  f.routed_experts = k * ExpertActivationFlops(c);
  f.shared_experts =
      3 * kFlopsPerMac * h * c.shared_expert_intermediate_size + (c.shared_expert_gate ? kFlopsPerMac * h : 0);
  return f;
}

FlopCounter::FlopCounter(const ModelConfig& config)
    : config_(&config), sum_k_(static_cast<size_t>(config.num_layers), 0) {}

void FlopCounter::Add(const std::vector<std::vector<int32_t>>& routed_k) {
  int64_t n = 0;
  for (size_t l = 0; l < routed_k.size() && l < sum_k_.size(); ++l) {
    n = std::max<int64_t>(n, static_cast<int64_t>(routed_k[l].size()));
    if (!config_->moe_layers[l]) continue;
    for (int32_t k : routed_k[l]) sum_k_[l] += k;
  }
  tokens_ += n;
}

double FlopCounter::mean_k(int64_t layer) const {
  return tokens_ == 0 ? 0.0 : static_cast<double>(sum_k_[static_cast<size_t>(layer)]) / static_cast<double>(tokens_);
}

double FlopCounter::mean_k() const {
  const int64_t layers = config_->num_moe_layers();
  return tokens_ == 0 || layers == 0
             ? 0.0
             : static_cast<double>(expert_activations()) / static_cast<double>(tokens_ * layers);
}

int64_t FlopCounter::expert_activations() const {
  int64_t sum = 0;
  for (int64_t k : sum_k_) sum += k;
  return sum;
}

int64_t FlopCounter::native_expert_activations() const {
  return tokens_ * config_->num_moe_layers() * config_->num_experts_per_tok;
}

int64_t FlopCounter::expert_flops() const { return expert_activations() * ExpertActivationFlops(*config_); }

int64_t FlopCounter::native_expert_flops() const {
  return native_expert_activations() * ExpertActivationFlops(*config_);
}

double FlopCounter::savings_ratio() const {
  const int64_t native = native_expert_flops();
  return native == 0 ? 0.0 : static_cast<double>(expert_flops_saved()) / static_cast<double>(native);
}

}  // namespace adak::engine
