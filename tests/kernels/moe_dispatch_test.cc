#include "kernels/cpu/moe_dispatch.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace adak::kernels {
namespace {

TEST(SoftmaxTopK, PicksDescendingWithLowerIndexOnTiesAndRenormalises) {
  // Experts 1 and 2 tie; 1 must come first.
  const std::vector<float> logits = {0.0f, 2.0f, 2.0f, 1.0f};
  std::vector<int32_t> ids(3);
  std::vector<float> w(3), probs(4);
  SoftmaxTopKParams p;
  p.logits = logits.data();
  p.rows = 1;
  p.num_experts = 4;
  p.max_k = 3;
  p.expert_ids = ids.data();
  p.weights = w.data();
  p.probs = probs.data();
  p.renormalize = false;
  SoftmaxTopK(p);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 3}));
  const double z = 1 + 2 * std::exp(2.0) + std::exp(1.0);
  EXPECT_NEAR(w[0], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(w[2], std::exp(1.0) / z, 1e-6);
  EXPECT_NEAR(std::accumulate(probs.begin(), probs.end(), 0.0f), 1.0f, 1e-6);

  p.renormalize = true;
  SoftmaxTopK(p);
  EXPECT_NEAR(w[0] + w[1] + w[2], 1.0f, 1e-6);
  EXPECT_NEAR(w[2], std::exp(1.0) / (2 * std::exp(2.0) + std::exp(1.0)), 1e-6);
}

TEST(SoftmaxTopK, PerTokenKLeavesUnusedSlotsEmpty) {
  const std::vector<float> logits = {3, 2, 1, 0, 0, 1, 2, 3};
  const std::vector<int32_t> k = {1, 0};
  std::vector<int32_t> ids(4);
  std::vector<float> w(4);
  SoftmaxTopKParams p;
  p.logits = logits.data();
  p.rows = 2;
  p.num_experts = 4;
  p.max_k = 2;
  p.k = k.data();
  p.renormalize = true;
  p.expert_ids = ids.data();
  p.weights = w.data();
  SoftmaxTopK(p);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, -1, -1, -1}));
  EXPECT_FLOAT_EQ(w[0], 1.0f);
  EXPECT_EQ(w[1], 0.0f);
  EXPECT_EQ(w[2], 0.0f);
}

// Invariants of the plan on random routings with mixed k (0..E), exact integer checks.
TEST(DispatchPlan, InvariantsOnRandomMixedK) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    std::mt19937 rng(seed);
    const int64_t e = 1 + static_cast<int64_t>(rng() % 9), t = 1 + static_cast<int64_t>(rng() % 17);
    std::vector<int32_t> k(static_cast<size_t>(t)), ids(static_cast<size_t>(t * e), -1);
    std::vector<float> w(static_cast<size_t>(t * e), 0.0f);
    int64_t sum_k = 0;
    for (int64_t i = 0; i < t; ++i) {
      k[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % (e + 1));
      std::vector<int32_t> perm(static_cast<size_t>(e));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int64_t j = 0; j < k[static_cast<size_t>(i)]; ++j) {
        ids[static_cast<size_t>(i * e + j)] = perm[static_cast<size_t>(j)];
        w[static_cast<size_t>(i * e + j)] = static_cast<float>(i * 100 + perm[static_cast<size_t>(j)]);
      }
      sum_k += k[static_cast<size_t>(i)];
    }
    DispatchPlan plan;
    BuildDispatchPlan(k.data(), ids.data(), w.data(), t, e, e, &plan);
    ASSERT_EQ(plan.num_rows(), sum_k);
    ASSERT_EQ(plan.expert_offsets.size(), static_cast<size_t>(e + 1));
    EXPECT_EQ(plan.expert_offsets.front(), 0);
    EXPECT_EQ(plan.expert_offsets.back(), sum_k);
    std::set<std::pair<int32_t, int32_t>> seen;  // (token, expert): each pair exactly once
    for (int64_t ex = 0; ex < e; ++ex) {
      ASSERT_LE(plan.expert_offsets[static_cast<size_t>(ex)], plan.expert_offsets[static_cast<size_t>(ex) + 1]);
      int32_t last_token = -1;
      for (int32_t r = plan.expert_offsets[static_cast<size_t>(ex)]; r < plan.expert_offsets[static_cast<size_t>(ex) + 1];
           ++r) {
        const int32_t tok = plan.row_token[static_cast<size_t>(r)];
        EXPECT_GT(tok, last_token) << "rows of an expert are in token order";
        last_token = tok;
        EXPECT_EQ(plan.row_weight[static_cast<size_t>(r)], static_cast<float>(tok * 100 + ex));
        EXPECT_TRUE(seen.insert({tok, static_cast<int32_t>(ex)}).second);
      }
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), sum_k);
  }
}

TEST(DispatchPlan, AllTokensOnOneExpertAndEmptyExperts) {
  const std::vector<int32_t> ids = {2, 2, 2};
  const std::vector<float> w = {1, 1, 1};
  DispatchPlan plan;
  BuildDispatchPlan(nullptr, ids.data(), w.data(), 3, 1, 4, &plan);
  EXPECT_EQ(plan.expert_offsets, (std::vector<int32_t>{0, 0, 0, 3, 3}));
  EXPECT_EQ(plan.row_token, (std::vector<int32_t>{0, 1, 2}));
}

}  // namespace
}  // namespace adak::kernels
