// The CUDA backend's dispatch-plan steps (kernels/cuda/dispatch_plan.h) on the host: in token order they
// build exactly kernels::BuildDispatchPlan's plan; in any other order (the device's atomics) they build a plan
// that differs only in the order of tokens within a k bucket and rows within an expert, and is still a valid
// plan: bijective slot/row maps, each token's slots holding its experts and weights in routing order.
#include "kernels/cuda/dispatch_plan.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/moe_dispatch.h"

namespace adak::kernels::cuda {
namespace {

struct Routing {
  int64_t t = 0, e = 0, km = 0;
  std::vector<int32_t> k, ids;
  std::vector<float> w;
};

// Random k in [0, km] (some zero) and distinct experts per token.
Routing RandomRouting(int64_t t, int64_t e, int64_t km, uint32_t seed) {
  std::mt19937 rng(seed);
  Routing r{t,
            e,
            km,
            std::vector<int32_t>(static_cast<size_t>(t)),
            std::vector<int32_t>(static_cast<size_t>(t * km), -1),
            std::vector<float>(static_cast<size_t>(t * km), 0.0f)};
  std::vector<int32_t> perm(static_cast<size_t>(e));
  for (int64_t i = 0; i < t; ++i) {
    r.k[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % static_cast<uint32_t>(km + 1));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int32_t j = 0; j < r.k[static_cast<size_t>(i)]; ++j) {
      r.ids[static_cast<size_t>(i * km + j)] = perm[static_cast<size_t>(j)];
      r.w[static_cast<size_t>(i * km + j)] = static_cast<float>(rng() % 1000) / 1000.0f;
    }
  }
  return r;
}

struct Built {
  std::vector<int32_t> words;
  PlanArrays plan;
};

Built Build(const Routing& r, int64_t tile_m, const std::vector<int64_t>* place_order = nullptr) {
  Built b;
  b.words.assign(static_cast<size_t>(PlanWords(r.t, r.e, r.km)), -99);
  b.plan = CarvePlan(b.words.data(), r.t, r.e, r.km, tile_m);
  std::fill(b.words.begin(), b.words.begin() + PlanZeroWords(r.e, r.km), 0);
  if (place_order == nullptr) {
    BuildPlanSequential(b.plan, r.k.data(), r.ids.data(), r.w.data());
    return b;
  }
  auto add = [](int32_t* where, int32_t v) { *where += v; };
  auto fetch_add = [](int32_t* where, int32_t v) {
    const int32_t old = *where;
    *where += v;
    return old;
  };
  for (int64_t t : *place_order) PlanCount(b.plan, t, r.k.data(), r.ids.data(), add);
  PlanScan(b.plan);
  for (int64_t t : *place_order) PlanPlace(b.plan, t, r.k.data(), r.ids.data(), r.w.data(), fetch_add);
  return b;
}

template <class T>
std::vector<T> Span(const T* p, int64_t n) {
  return std::vector<T>(p, p + n);
}

TEST(CudaDispatchPlan, InTokenOrderEqualsTheCpuPlan) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    const Routing r = RandomRouting(37 + seed * 11, 16 + seed * 8, 8, seed);
    DispatchPlan cpu;
    BuildDispatchPlan(r.k.data(), r.ids.data(), r.w.data(), r.t, r.km, r.e, &cpu);
    const Built b = Build(r, 4);
    const PlanArrays& p = b.plan;
    const int64_t rows = PlanRows(p);
    ASSERT_EQ(rows, cpu.num_rows()) << seed;
    EXPECT_EQ(Span(p.token_order, r.t), cpu.token_order) << seed;
    EXPECT_EQ(Span(p.k_offsets, r.km + 2), cpu.k_offsets) << seed;
    EXPECT_EQ(Span(p.expert_offsets, r.e + 1), cpu.expert_offsets) << seed;
    EXPECT_EQ(Span(p.slot_row, rows), cpu.slot_row) << seed;
    EXPECT_EQ(Span(p.row_slot, rows), cpu.row_slot) << seed;
    EXPECT_EQ(Span(p.row_token, rows), cpu.row_token) << seed;
    EXPECT_EQ(Span(p.row_weight, rows), cpu.row_weight) << seed;
    // token_slot is the inverse of the CPU's slot_offsets over token_order.
    for (int64_t i = 0; i < r.t; ++i) {
      EXPECT_EQ(p.token_slot[cpu.token_order[static_cast<size_t>(i)]], cpu.slot_offsets[static_cast<size_t>(i)]);
    }
  }
}

TEST(CudaDispatchPlan, TileOffsetsCountRowTilesPerExpert) {
  const Routing r = RandomRouting(200, 24, 6, 9);
  const Built b = Build(r, 8);
  int32_t tiles = 0;
  for (int64_t e = 0; e < r.e; ++e) {
    EXPECT_EQ(b.plan.tile_offsets[e], tiles);
    const int32_t rows = b.plan.expert_offsets[e + 1] - b.plan.expert_offsets[e];
    tiles += (rows + 7) / 8;
  }
  EXPECT_EQ(b.plan.tile_offsets[r.e], tiles);
}

TEST(CudaDispatchPlan, InAnyPlacementOrderThePlanIsValid) {
  for (uint32_t seed = 20; seed < 26; ++seed) {
    const Routing r = RandomRouting(90, 40, 8, seed);
    std::vector<int64_t> order(static_cast<size_t>(r.t));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937 rng(seed);
    std::shuffle(order.begin(), order.end(), rng);
    const Built b = Build(r, 16, &order);
    const Built sequential = Build(r, 16);
    const PlanArrays& p = b.plan;
    const int64_t rows = PlanRows(p);
    // The histogram-derived parts are order-free.
    EXPECT_EQ(Span(p.expert_offsets, r.e + 1), Span(sequential.plan.expert_offsets, r.e + 1));
    EXPECT_EQ(Span(p.k_offsets, r.km + 2), Span(sequential.plan.k_offsets, r.km + 2));
    EXPECT_NE(Span(p.token_order, r.t), Span(sequential.plan.token_order, r.t)) << "the shuffle changed nothing";
    // Bijective maps; each token's slots hold its experts and weights, in routing order.
    std::vector<int> seen(static_cast<size_t>(rows), 0);
    for (int64_t s = 0; s < rows; ++s) {
      ASSERT_GE(p.slot_row[s], 0);
      ASSERT_LT(p.slot_row[s], rows);
      ++seen[static_cast<size_t>(p.slot_row[s])];
      EXPECT_EQ(p.row_slot[p.slot_row[s]], s);
    }
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
    for (int64_t t = 0; t < r.t; ++t) {
      for (int32_t j = 0; j < r.k[static_cast<size_t>(t)]; ++j) {
        const int32_t row = p.slot_row[p.token_slot[t] + j];
        const int32_t expert = r.ids[static_cast<size_t>(t * r.km + j)];
        EXPECT_EQ(p.row_token[row], t);
        EXPECT_EQ(p.row_weight[row], r.w[static_cast<size_t>(t * r.km + j)]);
        EXPECT_GE(row, p.expert_offsets[expert]);
        EXPECT_LT(row, p.expert_offsets[expert + 1]);
      }
    }
    // token_order lists each token once, bucketed by k.
    for (int64_t j = 0; j <= r.km; ++j) {
      for (int32_t i = p.k_offsets[j]; i < p.k_offsets[j + 1]; ++i)
        EXPECT_EQ(r.k[static_cast<size_t>(p.token_order[i])], j);
    }
  }
}

}  // namespace
}  // namespace adak::kernels::cuda
