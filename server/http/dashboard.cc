#include "server/http/dashboard.h"

#include <cstddef>

#include "engine/routing.h"
#include "nlohmann/json.hpp"

namespace adak::server {

// Defined in the source CMake generates from dashboard.html (server/CMakeLists.txt).
extern const char kDashboardHtml[];

std::string_view DashboardPage() { return kDashboardHtml; }

std::string DashboardData(const MetricsSnapshot& snapshot, const engine::ModelConfig& config,
                          std::string_view model_name, double unix_seconds) {
  nlohmann::ordered_json policies = nlohmann::ordered_json::array();
  for (engine::RoutingPolicy p : engine::kRoutingPolicies)
    policies.push_back(std::string(engine::RoutingPolicyName(p)));
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (size_t l = 0; l < snapshot.layers.size(); ++l) {
    const LayerRoutingTotals& t = snapshot.layers[l];
    if (!t.moe) continue;
    nlohmann::ordered_json by_policy = nlohmann::ordered_json::object();
    for (size_t p = 0; p < t.policy_tokens.size() && p < std::size(engine::kRoutingPolicies); ++p) {
      if (t.policy_tokens[p] == 0) continue;
      by_policy[std::string(engine::RoutingPolicyName(engine::kRoutingPolicies[p]))] =
          static_cast<double>(t.policy_sum_k[p]) / static_cast<double>(t.policy_tokens[p]);
    }
    layers.push_back({{"layer", l},
                      {"tokens", t.tokens},
                      {"sum_k", t.sum_k},
                      {"mean_k", t.tokens > 0 ? static_cast<double>(t.sum_k) / static_cast<double>(t.tokens) : 0.0},
                      {"k_counts", t.k_counts},
                      {"expert_tokens", t.expert_tokens},
                      {"mean_k_by_policy", std::move(by_policy)}});
  }
  nlohmann::ordered_json routing_tokens = nlohmann::ordered_json::object();
  for (size_t p = 0; p < snapshot.routing_tokens.size() && p < std::size(engine::kRoutingPolicies); ++p) {
    routing_tokens[std::string(engine::RoutingPolicyName(engine::kRoutingPolicies[p]))] = snapshot.routing_tokens[p];
  }
  const nlohmann::ordered_json doc = {
      {"model", std::string(model_name)},
      {"num_experts", config.num_experts},
      {"native_k", config.num_experts_per_tok},
      {"policies", std::move(policies)},
      {"time", unix_seconds},
      {"layers", std::move(layers)},
      {"flops",
       {{"executed", snapshot.expert_flops},
        {"saved", snapshot.expert_flops_saved},
        {"savings_ratio", snapshot.flop_savings_ratio}}},
      {"tokens", {{"prompt", snapshot.prompt_tokens}, {"generation", snapshot.generation_tokens}}},
      {"requests",
       {{"finished", snapshot.requests_finished}, {"running", snapshot.running}, {"waiting", snapshot.waiting}}},
      {"kv_cache_usage", snapshot.kv_cache_usage},
      {"rates",
       {{"forwarded_tokens_per_second", snapshot.forwarded_tokens_per_second},
        {"decode_tokens_per_second", snapshot.decode_tokens_per_second},
        {"flops_saved_per_second", snapshot.flops_saved_per_second}}},
      {"routing_tokens", std::move(routing_tokens)}};
  return doc.dump();
}

}  // namespace adak::server
