// The routing rules of kernels/cpu/moe_routing.h on hand-computed cases: the chosen k, the experts in
// order, and the combine weights (renormalised or raw, per policy and model rule).
#include "kernels/cpu/moe_routing.h"

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace adak::kernels {
namespace {

struct Routed {
  std::vector<int32_t> k, ids;
  std::vector<float> w;
};

// Routes T tokens over E experts with fused logits rows of E + ea + m columns.
Routed Route(const std::vector<float>& logits, int64_t e, int64_t ea, int64_t m, bool renormalize,
             const std::vector<TokenRoute>& routes, uint32_t allocator_present = ~0u,
             const AllocatorExtras* extras = nullptr) {
  const int64_t cols = e + ea + m, t = static_cast<int64_t>(routes.size());
  Routed r;
  r.k.assign(static_cast<size_t>(t), -7);
  r.ids.assign(static_cast<size_t>(t * e), -7);
  r.w.assign(static_cast<size_t>(t * e), -7.0f);
  RouteParams p;
  p.logits = logits.data();
  p.stride = cols;
  p.rows = t;
  p.num_experts = e;
  p.allocator_cols = ea;
  p.allocator_present = allocator_present;
  p.allocator_extras = extras;
  p.null_cols = m;
  p.renormalize = renormalize;
  p.routes = routes.data();
  p.k = r.k.data();
  p.expert_ids = r.ids.data();
  p.weights = r.w.data();
  ThreadPool pool(2);
  RouteTokens(p, &pool);
  return r;
}

std::vector<double> Softmax(const std::vector<double>& x) {
  double mx = x[0];
  for (double v : x) mx = std::max(mx, v);
  std::vector<double> p(x.size());
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += p[i] = std::exp(x[i] - mx);
  for (double& v : p) v /= s;
  return p;
}

constexpr double kTol = 1e-6;

// Router logits for E = 4: probabilities descend 2 > 1 > 3 > 0.
const std::vector<double> kRouter = {0.1, 1.5, 2.0, 0.7};

TEST(RouteTokens, TopKFollowsTheModelsRenormalisationRule) {
  const auto p = Softmax(kRouter);
  TokenRoute r;
  r.policy = RoutePolicy::kTopK;
  r.k = 2;
  const std::vector<float> logits(kRouter.begin(), kRouter.end());
  Routed raw = Route(logits, 4, 0, 0, false, {r});
  EXPECT_EQ(raw.k[0], 2);
  EXPECT_EQ((std::vector<int32_t>(raw.ids.begin(), raw.ids.end())), (std::vector<int32_t>{2, 1, -1, -1}));
  EXPECT_NEAR(raw.w[0], p[2], kTol);
  EXPECT_NEAR(raw.w[1], p[1], kTol);
  EXPECT_EQ(raw.w[2], 0.0f);
  Routed norm = Route(logits, 4, 0, 0, true, {r});
  EXPECT_NEAR(norm.w[0], p[2] / (p[2] + p[1]), kTol);
  EXPECT_NEAR(norm.w[1], p[1] / (p[2] + p[1]), kTol);
}

// Ada-K: k = argmax(allocator) + 1, then the model's native weighting on top-k.
TEST(RouteTokens, AdaKTakesKFromTheAllocatorAndWeightsNatively) {
  const auto p = Softmax(kRouter);
  // Allocator logits: action 2 wins -> k = 3.
  std::vector<float> logits(kRouter.begin(), kRouter.end());
  for (float a : {0.0f, -1.0f, 3.0f, 2.5f}) logits.push_back(a);
  TokenRoute r;
  r.policy = RoutePolicy::kAdaK;
  r.min_k = 1;
  r.max_k = 4;
  Routed renorm = Route(logits, 4, 4, 0, true, {r});
  ASSERT_EQ(renorm.k[0], 3);
  EXPECT_EQ((std::vector<int32_t>(renorm.ids.begin(), renorm.ids.begin() + 4)), (std::vector<int32_t>{2, 1, 3, -1}));
  const double s = p[2] + p[1] + p[3];
  EXPECT_NEAR(renorm.w[0], p[2] / s, kTol);
  EXPECT_NEAR(renorm.w[2], p[3] / s, kTol);
  Routed raw = Route(logits, 4, 4, 0, false, {r});  // OLMoE / Qwen2-MoE / DeepSeek rule: raw probabilities
  EXPECT_NEAR(raw.w[0], p[2], kTol);
  EXPECT_NEAR(raw.w[2], p[3], kTol);
  // Clamp to [1, 2].
  r.max_k = 2;
  EXPECT_EQ(Route(logits, 4, 4, 0, true, {r}).k[0], 2);
  // A tie between actions goes to the lower index (smaller k).
  logits[4 + 1] = 3.0f;
  r.max_k = 4;
  EXPECT_EQ(Route(logits, 4, 4, 0, true, {r}).k[0], 2);
}

// Allocator profiles: each token reads its own profile's E columns; a profile absent from the layer (its
// bit clear) falls back to the token's k, as a layer without an allocator does.
TEST(RouteTokens, AdaKReadsTheTokensOwnAllocatorProfile) {
  std::vector<float> logits(kRouter.begin(), kRouter.end());
  for (float a : {0.0f, -1.0f, 3.0f, 2.5f}) logits.push_back(a);  // profile 0: action 2 -> k = 3
  for (float a : {5.0f, -1.0f, 0.0f, 0.0f}) logits.push_back(a);  // profile 1: action 0 -> k = 1
  for (float a : {0.0f, 0.0f, 0.0f, 9.0f}) logits.push_back(a);   // profile 2: action 3 -> k = 4
  TokenRoute r;
  r.policy = RoutePolicy::kAdaK;
  r.k = 2;
  r.min_k = 1;
  r.max_k = 4;
  std::vector<TokenRoute> routes(3, r);
  routes[1].profile = 1;
  routes[2].profile = 2;
  std::vector<float> rows;
  for (int t = 0; t < 3; ++t) rows.insert(rows.end(), logits.begin(), logits.end());
  EXPECT_EQ(Route(rows, 4, 12, 0, true, routes).k, (std::vector<int32_t>{3, 1, 4}));
  // Profile 1 has no allocator in this layer: its token takes k = 2.
  EXPECT_EQ(Route(rows, 4, 12, 0, true, routes, 0b101u).k, (std::vector<int32_t>{3, 2, 4}));
  // A profile beyond the gate's columns also falls back (never reads past the row).
  routes[2].profile = 3;
  EXPECT_EQ(Route(rows, 4, 12, 0, true, routes).k, (std::vector<int32_t>{3, 1, 2}));
}

// Null experts: softmax over E + m, top-k' over all, keep true experts, renormalise over them.
TEST(RouteTokens, NullExpertsKeepTrueExpertsRenormalised) {
  // Null logits: 1.8 (between expert 2 at 2.0 and expert 1 at 1.5), -3.
  std::vector<float> logits(kRouter.begin(), kRouter.end());
  logits.push_back(1.8f);
  logits.push_back(-3.0f);
  const auto p = Softmax({0.1, 1.5, 2.0, 0.7, 1.8, -3.0});
  TokenRoute r;
  r.policy = RoutePolicy::kNull;
  r.k = 3;  // picks 2, null 0, 1: two true experts
  for (bool model_renormalizes : {false, true}) {
    Routed out = Route(logits, 4, 0, 2, model_renormalizes, {r});
    ASSERT_EQ(out.k[0], 2);
    EXPECT_EQ(out.ids[0], 2);
    EXPECT_EQ(out.ids[1], 1);
    EXPECT_NEAR(out.w[0], p[2] / (p[2] + p[1]), kTol);
    EXPECT_NEAR(out.w[1], p[1] / (p[2] + p[1]), kTol);
  }
  // k' = 1 with a dominant null expert: the token skips the layer (k = 0).
  logits[4] = 10.0f;
  r.k = 1;
  Routed skip = Route(logits, 4, 0, 2, false, {r});
  EXPECT_EQ(skip.k[0], 0);
  EXPECT_EQ(skip.ids[0], -1);
}

// Raw top-p: the smallest prefix of all E with mass >= p, raw probabilities even when the model
// renormalises.
TEST(RouteTokens, RawTopPUsesRawProbabilities) {
  const auto p = Softmax(kRouter);  // p2 ~ 0.45, p1 ~ 0.27, p3 ~ 0.12, p0 ~ 0.07 (normalised)
  const std::vector<float> logits(kRouter.begin(), kRouter.end());
  TokenRoute r;
  r.policy = RoutePolicy::kTopP;
  r.topp_raw = 1;
  r.k = 2;                                          // the native K does not bound raw top-p
  r.top_p = static_cast<float>(p[2] + p[1] * 0.5);  // needs two experts
  Routed out = Route(logits, 4, 0, 0, true, {r});
  ASSERT_EQ(out.k[0], 2);
  EXPECT_NEAR(out.w[0], p[2], kTol);
  EXPECT_NEAR(out.w[1], p[1], kTol);
  r.top_p = 1.0f;
  EXPECT_EQ(Route(logits, 4, 0, 0, true, {r}).k[0], 4);
  r.top_p = 0.01f;
  EXPECT_EQ(Route(logits, 4, 0, 0, true, {r}).k[0], 1);
}

// Top-p with the model's weighting: among the native top-K (here 3: experts 2, 1, 3), the shortest prefix
// holding >= p of their mass, weighted as native top-K is (renormalised over the kept experts, or raw).
TEST(RouteTokens, ModelWeightedTopPMeasuresTheNativeTopKShare) {
  const auto p = Softmax(kRouter);
  const double top3 = p[2] + p[1] + p[3];
  const std::vector<float> logits(kRouter.begin(), kRouter.end());
  TokenRoute r;
  r.policy = RoutePolicy::kTopP;
  r.k = 3;
  r.top_p = static_cast<float>((p[2] + 0.5 * p[1]) / top3);  // needs two of the three
  Routed norm = Route(logits, 4, 0, 0, true, {r});
  ASSERT_EQ(norm.k[0], 2);
  EXPECT_EQ((std::vector<int32_t>(norm.ids.begin(), norm.ids.end())), (std::vector<int32_t>{2, 1, -1, -1}));
  EXPECT_NEAR(norm.w[0], p[2] / (p[2] + p[1]), kTol);
  EXPECT_NEAR(norm.w[1], p[1] / (p[2] + p[1]), kTol);
  Routed raw = Route(logits, 4, 0, 0, false, {r});
  ASSERT_EQ(raw.k[0], 2);
  EXPECT_NEAR(raw.w[0], p[2], kTol);
  EXPECT_NEAR(raw.w[1], p[1], kTol);
  // p = 1 keeps the whole native top-K and never more; a small p keeps one expert at weight 1.
  r.top_p = 1.0f;
  EXPECT_EQ(Route(logits, 4, 0, 0, true, {r}).k[0], 3);
  r.top_p = static_cast<float>(p[2] / top3 * 0.99);
  Routed one = Route(logits, 4, 0, 0, true, {r});
  ASSERT_EQ(one.k[0], 1);
  EXPECT_FLOAT_EQ(one.w[0], 1.0f);
  // The share is of the candidates' mass, not of all E: p[2] / top3 > p[2].
  r.top_p = static_cast<float>(p[2] / top3 * 0.999);
  EXPECT_EQ(Route(logits, 4, 0, 0, true, {r}).k[0], 1);
  r.topp_raw = 1;
  EXPECT_EQ(Route(logits, 4, 0, 0, true, {r}).k[0], 2);
}

// Threshold (SER): of the native top-K keep expert i while p_i >= t * p_1, at least min_k, then the model's
// weighting over the kept experts.
TEST(RouteTokens, ThresholdKeepsExpertsWithinAFactorOfTheTopOne) {
  const auto p = Softmax(kRouter);  // ratios to the top one: p1/p2 ~ 0.61, p3/p2 ~ 0.27, p0/p2 ~ 0.15
  const std::vector<float> logits(kRouter.begin(), kRouter.end());
  TokenRoute r;
  r.policy = RoutePolicy::kThreshold;
  r.k = 3;
  r.min_k = 1;
  struct Case {
    double t;
    int32_t k;
  };
  const double r1 = p[1] / p[2], r3 = p[3] / p[2];
  for (const Case& c :
       {Case{1.0, 1}, Case{r1 * 1.01, 1}, Case{r1 * 0.99, 2}, Case{r3 * 1.01, 2}, Case{r3 * 0.99, 3}, Case{0.0, 3}}) {
    r.threshold = static_cast<float>(c.t);
    Routed out = Route(logits, 4, 0, 0, true, {r});
    EXPECT_EQ(out.k[0], c.k) << "t = " << c.t;
  }
  // Never beyond the native K, even at t = 0 (expert 0 is fourth).
  r.threshold = 0.0f;
  EXPECT_EQ(Route(logits, 4, 0, 0, true, {r}).ids[3], -1);
  // Weights: renormalised over the kept experts (the model's rule), or raw.
  r.threshold = static_cast<float>(r1 * 0.99);
  Routed norm = Route(logits, 4, 0, 0, true, {r});
  EXPECT_NEAR(norm.w[0], p[2] / (p[2] + p[1]), kTol);
  EXPECT_NEAR(norm.w[1], p[1] / (p[2] + p[1]), kTol);
  Routed raw = Route(logits, 4, 0, 0, false, {r});
  EXPECT_NEAR(raw.w[0], p[2], kTol);
  EXPECT_NEAR(raw.w[1], p[1], kTol);
  // min_k lifts k, up to the native K.
  r.threshold = 1.0f;
  r.min_k = 2;
  EXPECT_EQ(Route(logits, 4, 0, 0, true, {r}).k[0], 2);
  r.min_k = 4;
  EXPECT_EQ(Route(logits, 4, 0, 0, true, {r}).k[0], 3);
}

// Tokens of one batch each follow their own policy.
TEST(RouteTokens, MixesPoliciesPerToken) {
  std::vector<float> logits;
  for (int t = 0; t < 3; ++t) {
    logits.insert(logits.end(), kRouter.begin(), kRouter.end());
    for (float a : {0.0f, 0.0f, 0.0f, 5.0f}) logits.push_back(a);  // allocator: k = 4
  }
  TokenRoute top1, adak, topp;
  top1.policy = RoutePolicy::kTopK;
  top1.k = 1;
  adak.policy = RoutePolicy::kAdaK;
  adak.min_k = 1;
  adak.max_k = 4;
  topp.policy = RoutePolicy::kTopP;
  topp.topp_raw = 1;
  topp.top_p = 0.999999f;
  Routed out = Route(logits, 4, 4, 0, true, {top1, adak, topp});
  EXPECT_EQ(out.k, (std::vector<int32_t>{1, 4, 4}));
  EXPECT_FLOAT_EQ(out.w[0], 1.0f);  // renormalised single expert
}

// Sampled Ada-K (training rollouts): k - 1 follows softmax(allocator logits); draws are reproducible per
// seed and differ between layers.
TEST(RouteTokens, SampledAdaKFollowsTheAllocatorSoftmax) {
  const int64_t n = 6000;
  // Allocator probabilities 1/8, 2/8, 4/8, 1/8 for k = 1..4.
  const std::vector<float> alloc = {0.0f, std::log(2.0f), std::log(4.0f), 0.0f};
  std::vector<float> logits;
  std::vector<TokenRoute> routes(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    logits.insert(logits.end(), kRouter.begin(), kRouter.end());
    logits.insert(logits.end(), alloc.begin(), alloc.end());
    routes[static_cast<size_t>(t)].policy = RoutePolicy::kAdaK;
    routes[static_cast<size_t>(t)].sample = 1;
    routes[static_cast<size_t>(t)].seed = static_cast<uint64_t>(t) * 7919u + 1;
    routes[static_cast<size_t>(t)].min_k = 1;
    routes[static_cast<size_t>(t)].max_k = 4;
  }
  Routed out = Route(logits, 4, 4, 0, true, routes);
  std::vector<double> freq(5, 0.0);
  for (int32_t k : out.k) freq[static_cast<size_t>(k)] += 1.0 / static_cast<double>(n);
  EXPECT_NEAR(freq[1], 0.125, 0.02);
  EXPECT_NEAR(freq[2], 0.25, 0.025);
  EXPECT_NEAR(freq[3], 0.5, 0.03);
  EXPECT_NEAR(freq[4], 0.125, 0.02);
  EXPECT_EQ(Route(logits, 4, 4, 0, true, routes).k, out.k) << "same seeds, same draws";
  // Argmax when not sampling: action 2, k = 3, for every token.
  for (TokenRoute& r : routes) r.sample = 0;
  for (int32_t k : Route(logits, 4, 4, 0, true, routes).k) ASSERT_EQ(k, 3);
  // Layers draw independently.
  EXPECT_NE(RouteUniform(5, 0), RouteUniform(5, 1));
  EXPECT_GE(RouteUniform(5, 0), 0.0);
  EXPECT_LT(RouteUniform(5, 0), 1.0);
}

// A version-2 allocator (W x + U f + b) with W = 0 and ThresholdRuleExtras' U, b (the trainer's rule
// initialisation) routes exactly as the threshold rule at t, token by token; f is the sorted log probabilities.
TEST(RouteTokens, VersionTwoAllocatorCanBeTheThresholdRule) {
  constexpr int64_t kE = 8, kNative = 3, kTokens = 200;
  std::vector<float> probs = {0.1f, 0.4f, 0.0f, 0.5f};
  std::vector<float> f(4);
  RouterFeatures(probs.data(), 4, f.data());
  EXPECT_FLOAT_EQ(f[0], std::log(0.5f));
  EXPECT_FLOAT_EQ(f[1], std::log(0.4f));
  EXPECT_FLOAT_EQ(f[2], std::log(0.1f));
  EXPECT_EQ(f[3], kRouterFeatureFloor);  // log 0, floored

  for (double t : {0.2, 0.5, 0.8}) {
    SCOPED_TRACE(t);
    std::vector<float> u(kE * kE, 1.0f), b(kE, 1.0f);
    ThresholdRuleExtras(kE, kNative, t, u.data(), b.data());
    std::mt19937 rng(7);
    std::normal_distribution<float> d(0.0f, 1.5f);
    std::vector<float> rows;
    for (int64_t i = 0; i < kTokens; ++i) {
      for (int64_t e = 0; e < kE; ++e) rows.push_back(d(rng));  // router
      for (int64_t e = 0; e < kE; ++e) rows.push_back(0.0f);    // W x = 0
    }
    TokenRoute adak;
    adak.policy = RoutePolicy::kAdaK;
    adak.k = kNative;
    adak.min_k = 1;
    adak.max_k = kE;
    TokenRoute rule;
    rule.policy = RoutePolicy::kThreshold;
    rule.k = kNative;
    rule.threshold = static_cast<float>(t);
    rule.min_k = 1;
    const AllocatorExtras extras{u.data(), b.data()};
    const Routed v2 = Route(rows, kE, kE, 0, true, std::vector<TokenRoute>(kTokens, adak), ~0u, &extras);
    const Routed threshold = Route(rows, kE, kE, 0, true, std::vector<TokenRoute>(kTokens, rule));
    EXPECT_EQ(v2.k, threshold.k);
    EXPECT_EQ(v2.ids, threshold.ids);
    int64_t sum = 0;
    for (int32_t k : v2.k) sum += k;
    EXPECT_GT(sum, kTokens);            // not all k = 1
    EXPECT_LT(sum, kTokens * kNative);  // not all k = K
    // Without the extras the same rows are a version-1 allocator of zeros: k = 1 everywhere (ties: lowest).
    const Routed v1 = Route(rows, kE, kE, 0, true, std::vector<TokenRoute>(kTokens, adak));
    for (int32_t k : v1.k) ASSERT_EQ(k, 1);
  }
}

}  // namespace
}  // namespace adak::kernels
