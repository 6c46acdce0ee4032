#include "kernels/cpu/moe_dispatch.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace adak::kernels {
namespace {

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
      for (int32_t r = plan.expert_offsets[static_cast<size_t>(ex)];
           r < plan.expert_offsets[static_cast<size_t>(ex) + 1]; ++r) {
        const int32_t tok = plan.row_token[static_cast<size_t>(r)];
        EXPECT_GT(tok, last_token) << "rows of an expert are in token order";
        last_token = tok;
        EXPECT_EQ(plan.row_weight[static_cast<size_t>(r)], static_cast<float>(int64_t{tok} * 100 + ex));
        EXPECT_TRUE(seen.insert({tok, static_cast<int32_t>(ex)}).second);
      }
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), sum_k);

    // Bucketing by k: token_order is a permutation sorted by k (stable), k_offsets delimit the buckets.
    std::vector<int32_t> sorted = plan.token_order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int32_t> iota(static_cast<size_t>(t));
    std::iota(iota.begin(), iota.end(), 0);
    ASSERT_EQ(sorted, iota);
    ASSERT_EQ(plan.k_offsets.size(), static_cast<size_t>(e + 2));
    for (int64_t kk = 0; kk <= e; ++kk) {
      for (int32_t i = plan.k_offsets[static_cast<size_t>(kk)]; i < plan.k_offsets[static_cast<size_t>(kk) + 1]; ++i) {
        EXPECT_EQ(k[static_cast<size_t>(plan.token_order[static_cast<size_t>(i)])], kk);
        if (i > plan.k_offsets[static_cast<size_t>(kk)]) {
          EXPECT_LT(plan.token_order[static_cast<size_t>(i) - 1], plan.token_order[static_cast<size_t>(i)]) << "stable";
        }
      }
    }
    // Each token's slots are contiguous and exactly k long; slot_row and row_slot are inverse bijections
    // that map a token's slots to rows of that token.
    ASSERT_EQ(plan.slot_offsets.back(), sum_k);
    for (int64_t i = 0; i < t; ++i) {
      const int32_t tok = plan.token_order[static_cast<size_t>(i)];
      ASSERT_EQ(plan.slot_offsets[static_cast<size_t>(i) + 1] - plan.slot_offsets[static_cast<size_t>(i)],
                k[static_cast<size_t>(tok)]);
      for (int32_t slot = plan.slot_offsets[static_cast<size_t>(i)];
           slot < plan.slot_offsets[static_cast<size_t>(i) + 1]; ++slot) {
        EXPECT_EQ(plan.row_token[static_cast<size_t>(plan.slot_row[static_cast<size_t>(slot)])], tok);
      }
    }
    for (int64_t r = 0; r < sum_k; ++r) {
      EXPECT_EQ(plan.slot_row[static_cast<size_t>(plan.row_slot[static_cast<size_t>(r)])], r);
    }
  }
}

TEST(DispatchPlan, OneTokenAndEmptyBatch) {
  const std::vector<int32_t> k = {3}, ids = {4, 0, 2};
  const std::vector<float> w = {0.5f, 0.3f, 0.2f};
  DispatchPlan plan;
  BuildDispatchPlan(k.data(), ids.data(), w.data(), 1, 3, 5, &plan);
  EXPECT_EQ(plan.expert_offsets, (std::vector<int32_t>{0, 1, 1, 2, 2, 3}));
  EXPECT_EQ(plan.row_weight, (std::vector<float>{0.3f, 0.2f, 0.5f}));
  EXPECT_EQ(plan.slot_row, (std::vector<int32_t>{2, 0, 1}));
  BuildDispatchPlan(nullptr, nullptr, nullptr, 0, 2, 5, &plan);
  EXPECT_EQ(plan.num_rows(), 0);
  EXPECT_EQ(plan.expert_offsets, (std::vector<int32_t>(6, 0)));
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
