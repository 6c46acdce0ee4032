// The CUDA backend's routing rule (kernels/cuda/route_rule.h), run on the host, against the CPU routing
// (kernels::RouteTokens): every policy, both allocator versions, sampled draws, null experts and tied logits
// must give the same k, the same experts in the same order and bit-identical combine weights. The device
// runs this same code (kernels/cuda/moe.cu), so this is the test of its logic that needs no GPU.
#include "kernels/cuda/route_rule.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels::cuda {
namespace {

struct Layer {
  int64_t e = 8;
  int64_t profiles = 0;  // allocator profiles (Ea = profiles * e)
  int64_t m = 0;         // null experts
  bool renormalize = false;
  bool version2 = false;
  bool ties = false;  // logits on a coarse grid, so probabilities tie exactly
  uint32_t allocator_present = ~0u;
};

struct Routed {
  std::vector<int32_t> k, ids;
  std::vector<float> w;
};

// A token of every policy in turn, with random parameters.
std::vector<TokenRoute> MixedRoutes(int64_t t, const Layer& layer, std::mt19937& rng) {
  std::vector<TokenRoute> routes(static_cast<size_t>(t));
  std::uniform_int_distribution<int32_t> k_dist(0, static_cast<int32_t>(layer.e));
  std::uniform_real_distribution<float> unit(0.05f, 1.0f);
  for (int64_t i = 0; i < t; ++i) {
    TokenRoute& r = routes[static_cast<size_t>(i)];
    r.policy = static_cast<RoutePolicy>(i % 5);
    r.k = k_dist(rng);
    r.top_p = unit(rng);
    r.topp_raw = static_cast<int32_t>((i / 5) % 2);
    r.threshold = i % 3 == 0 ? 1.0f : unit(rng);  // 1: the bar is p_1 itself, so tied experts sit on it
    r.min_k = 1 + static_cast<int32_t>(i % 2);
    r.max_k = static_cast<int32_t>(layer.e) - static_cast<int32_t>(i % 3);
    r.sample = static_cast<int32_t>((i / 7) % 2);
    r.seed = 1000 + static_cast<uint64_t>(i);
    r.profile = layer.profiles > 0 ? static_cast<int32_t>(i % layer.profiles) : 0;
    if (i % 4 == 0) r.sample_layers[0] = 0x5555555555555555ull;
  }
  return routes;
}

struct Fixture {
  std::vector<float> logits;
  std::vector<std::vector<float>> extras_storage;
  std::vector<AllocatorExtras> extras;
  std::vector<TokenRoute> routes;
  RouteParams params;
};

Fixture Make(int64_t t, const Layer& layer, uint32_t seed) {
  std::mt19937 rng(seed);
  Fixture f;
  const int64_t ea = layer.profiles * layer.e;
  const int64_t cols = layer.e + ea + layer.m;
  std::normal_distribution<float> normal(0.0f, 2.0f);
  f.logits.resize(static_cast<size_t>(t * cols));
  for (float& v : f.logits) v = layer.ties ? std::round(normal(rng)) * 0.5f : normal(rng);
  if (layer.version2) {
    for (int64_t p = 0; p < layer.profiles; ++p) {
      std::vector<float> s(static_cast<size_t>(layer.e * layer.e + layer.e));
      for (float& v : s) v = normal(rng) * 0.1f;
      f.extras_storage.push_back(std::move(s));
    }
    for (auto& s : f.extras_storage) f.extras.push_back({s.data(), s.data() + layer.e * layer.e});
  }
  f.routes = MixedRoutes(t, layer, rng);
  RouteParams& p = f.params;
  p.logits = f.logits.data();
  p.stride = cols;
  p.rows = t;
  p.num_experts = layer.e;
  p.allocator_cols = ea;
  p.allocator_present = layer.allocator_present;
  p.allocator_extras = f.extras.empty() ? nullptr : f.extras.data();
  p.null_cols = layer.m;
  p.renormalize = layer.renormalize;
  p.layer = 3;
  p.routes = f.routes.data();
  return f;
}

Routed Run(RouteParams p, bool device_rule) {
  const auto t = static_cast<size_t>(p.rows);
  const auto e = static_cast<size_t>(p.num_experts);
  Routed r{std::vector<int32_t>(t, -7), std::vector<int32_t>(t * e, -7), std::vector<float>(t * e, -7.0f)};
  p.k = r.k.data();
  p.expert_ids = r.ids.data();
  p.weights = r.w.data();
  if (device_rule) {
    std::vector<float> work(static_cast<size_t>(p.rows * RouteWorkspaceWords(p.num_experts, p.null_cols)), -3.0f);
    for (int64_t i = 0; i < p.rows; ++i) RouteToken(p, i, TokenWorkspace(work.data(), p.num_experts, p.null_cols, i));
  } else {
    ThreadPool pool(2);
    RouteTokens(p, &pool);
  }
  return r;
}

void ExpectSameRouting(const Layer& layer, int64_t t, uint32_t seed) {
  const Fixture f = Make(t, layer, seed);
  const Routed cpu = Run(f.params, false);
  const Routed dev = Run(f.params, true);
  ASSERT_EQ(cpu.k, dev.k) << "seed " << seed;
  ASSERT_EQ(cpu.ids, dev.ids) << "seed " << seed;
  for (size_t i = 0; i < cpu.w.size(); ++i) ASSERT_EQ(cpu.w[i], dev.w[i]) << "weight " << i << " seed " << seed;
  // Not vacuous: the batch chose different k's.
  int32_t lo = cpu.k[0], hi = cpu.k[0];
  for (int32_t k : cpu.k) {
    lo = std::min(lo, k);
    hi = std::max(hi, k);
  }
  EXPECT_LT(lo, hi) << "seed " << seed;
}

TEST(CudaRouteRule, MatchesCpuRoutingOnEveryPolicyWithoutAllocators) {
  for (uint32_t seed = 1; seed <= 4; ++seed) ExpectSameRouting({.e = 8}, 40, seed);
  for (uint32_t seed = 5; seed <= 7; ++seed) ExpectSameRouting({.e = 60, .renormalize = true}, 40, seed);
}

TEST(CudaRouteRule, MatchesCpuRoutingWithVersion1Allocators) {
  for (uint32_t seed = 11; seed <= 14; ++seed)
    ExpectSameRouting({.e = 64, .profiles = 2, .renormalize = true}, 60, seed);
  ExpectSameRouting({.e = 16, .profiles = 3, .allocator_present = 0b101u}, 60, 15);
}

TEST(CudaRouteRule, MatchesCpuRoutingWithVersion2Allocators) {
  for (uint32_t seed = 21; seed <= 24; ++seed) {
    ExpectSameRouting({.e = 32, .profiles = 2, .renormalize = true, .version2 = true}, 60, seed);
  }
}

TEST(CudaRouteRule, MatchesCpuRoutingWithNullExperts) {
  for (uint32_t seed = 31; seed <= 34; ++seed) ExpectSameRouting({.e = 60, .profiles = 1, .m = 4}, 60, seed);
}

TEST(CudaRouteRule, MatchesCpuRoutingOnTiedLogits) {
  for (uint32_t seed = 41; seed <= 44; ++seed) {
    ExpectSameRouting({.e = 64, .profiles = 1, .m = 2, .renormalize = true, .ties = true}, 60, seed);
  }
}

TEST(CudaRouteRule, WorkspacesOfNeighbouringTokensDoNotOverlap) {
  const int64_t e = 10, m = 3;
  std::vector<float> base(static_cast<size_t>(3 * RouteWorkspaceWords(e, m)));
  const RouteWorkspace a = TokenWorkspace(base.data(), e, m, 1);
  const RouteWorkspace b = TokenWorkspace(base.data(), e, m, 2);
  EXPECT_EQ(a.work, a.probs + (e + m));
  EXPECT_EQ(a.scores, a.work + e);
  EXPECT_EQ(reinterpret_cast<float*>(a.order), a.scores + e);
  EXPECT_EQ(reinterpret_cast<float*>(a.order + (e + m)), b.probs);
}

}  // namespace
}  // namespace adak::kernels::cuda
