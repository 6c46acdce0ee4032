// The expert-compute budget: native K before any data, a moving average of the routed k per policy after.
#include "scheduler/expert_budget.h"

#include <vector>

#include "tests/scheduler/fake_engine.h"
#include "tests/test_util.h"

namespace adak::scheduler {
namespace {

using testing::MakeTestConfig;

TEST(ExpertBudget, DefaultLimitIsTheNativeTokenBudget) {
  const engine::ModelConfig config = MakeTestConfig();
  ExpertBudget budget(config, 0.0, /*max_batch_tokens=*/100);
  EXPECT_DOUBLE_EQ(budget.limit(), 100.0 * 2 * 2);  // tokens x K x MoE layers
  ExpertBudget explicit_limit(config, 50.0, 100);
  EXPECT_DOUBLE_EQ(explicit_limit.limit(), 50.0);
}

TEST(ExpertBudget, NativeKUntilObservedThenMovingAverage) {
  engine::ModelConfig config = MakeTestConfig();
  config.moe_layers = {true, false};  // one dense layer
  ExpertBudget budget(config, 0.0, 16, /*alpha=*/0.5);
  engine::RoutingParams adak;
  adak.policy = engine::RoutingPolicy::kAdaK;
  engine::RoutingParams topk;
  engine::RoutingParams top3;
  top3.top_k = 3;
  EXPECT_DOUBLE_EQ(budget.PerToken(adak), 2.0);
  EXPECT_DOUBLE_EQ(budget.PerToken(topk), 2.0);
  EXPECT_DOUBLE_EQ(budget.PerToken(top3), 3.0);
  // Two Ada-K tokens with k = 1 and k = 0 (mean 0.5) and one top-K token, in layer 0; layer 1 is dense.
  const std::vector<std::vector<int32_t>> routed_k = {{1, 0, 2}, {0, 0, 0}};
  const std::vector<const engine::RoutingParams*> routing = {&adak, &adak, &topk};
  budget.Observe(routed_k, routing);
  EXPECT_DOUBLE_EQ(budget.mean_k(engine::RoutingPolicy::kAdaK, 0), 0.5 * 2.0 + 0.5 * 0.5);
  EXPECT_DOUBLE_EQ(budget.mean_k(engine::RoutingPolicy::kAdaK, 1), 0.0);
  EXPECT_DOUBLE_EQ(budget.PerToken(adak), 1.25);
  EXPECT_DOUBLE_EQ(budget.PerToken(topk), 2.0);  // exact for top-K
  budget.Observe(routed_k, routing);
  EXPECT_DOUBLE_EQ(budget.PerToken(adak), 0.5 * 1.25 + 0.5 * 0.5);
  // A step without Ada-K tokens leaves its average alone.
  const std::vector<const engine::RoutingParams*> only_topk = {&topk, &topk, &topk};
  budget.Observe(routed_k, only_topk);
  EXPECT_DOUBLE_EQ(budget.PerToken(adak), 0.875);
}

// Every policy has its own average, the last one of the enum included.
TEST(ExpertBudget, EveryPolicyKeepsItsOwnAverage) {
  engine::ModelConfig config = MakeTestConfig();
  config.moe_layers = {true, false};
  ExpertBudget budget(config, 0.0, 16, /*alpha=*/1.0);
  std::vector<engine::RoutingParams> params;
  for (engine::RoutingPolicy policy : engine::kRoutingPolicies) params.push_back({.policy = policy});
  std::vector<const engine::RoutingParams*> routing;
  std::vector<std::vector<int32_t>> routed_k(2);
  for (size_t p = 0; p < params.size(); ++p) {
    routing.push_back(&params[p]);
    routed_k[0].push_back(static_cast<int32_t>(p % 3));
    routed_k[1].push_back(0);
  }
  budget.Observe(routed_k, routing);
  for (size_t p = 1; p < params.size(); ++p) {  // top-K's estimate is exact, not observed
    EXPECT_DOUBLE_EQ(budget.PerToken(params[p]), static_cast<double>(p % 3))
        << engine::RoutingPolicyName(params[p].policy);
  }
}

}  // namespace
}  // namespace adak::scheduler
