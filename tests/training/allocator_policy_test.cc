// The allocator policy's math against finite differences and hand-computed cases.
#include "training/allocator_policy.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace adak::training {
namespace {

constexpr int64_t kA = 5, kH = 7;

struct Fixture {
  std::vector<float> w;
  std::vector<std::vector<float>> xs;
};

Fixture Make(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.7f);
  Fixture f;
  f.w.resize(kA * kH);
  for (float& v : f.w) v = d(rng);
  for (int i = 0; i < n; ++i) {
    f.xs.emplace_back(kH);
    for (float& v : f.xs.back()) v = d(rng);
  }
  return f;
}

// Central differences of `loss` around every entry of w, against the analytic `grad`.
template <typename LossFn>
void ExpectGradientMatchesFiniteDifferences(std::vector<float> w, const std::vector<float>& grad, LossFn loss) {
  const double h = 1e-3;
  for (size_t i = 0; i < w.size(); ++i) {
    const float saved = w[i];
    w[i] = static_cast<float>(saved + h);
    const double up = loss(w);
    w[i] = static_cast<float>(saved - h);
    const double down = loss(w);
    w[i] = saved;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(grad[i], numeric, 2e-3 * (1.0 + std::fabs(numeric))) << "entry " << i;
  }
}

TEST(AllocatorPolicy, PpoGradientMatchesFiniteDifferences) {
  const uint32_t seed = 11;
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Fixture f = Make(seed, 6);
  std::vector<PolicySample> samples;
  std::vector<double> logp(kA);
  const double advantages[] = {0.8, -0.5, 1.3, -1.1, 0.2, 0.05};
  for (size_t i = 0; i < f.xs.size(); ++i) {
    PolicyLogProbs(f.w, kA, f.xs[i], logp);
    PolicySample s;
    s.x = f.xs[i];
    s.action = static_cast<int32_t>(i % kA);
    // Old policy slightly different so ratios are near 1 but not exactly (inside the clip range).
    s.old_log_prob = logp[static_cast<size_t>(s.action)] + 0.05 * (i % 2 ? 1 : -1);
    s.advantage = advantages[i];
    samples.push_back(s);
  }
  PpoParams params;
  params.lambda = 0.3;  // large enough that the penalty's gradient matters in the check
  std::vector<float> grad(kA * kH, 0.0f);
  const PpoLoss loss = PpoLossAndGradient(f.w, kA, samples, params, grad);
  EXPECT_EQ(loss.clipped_fraction, 0.0);
  ExpectGradientMatchesFiniteDifferences(f.w, grad, [&](const std::vector<float>& w) {
    return PpoLossAndGradient(w, kA, samples, params, {}).total(params.lambda);
  });
}

TEST(AllocatorPolicy, ClippedSamplesContributeNoSurrogateGradient) {
  Fixture f = Make(12, 1);
  std::vector<double> logp(kA);
  PolicyLogProbs(f.w, kA, f.xs[0], logp);
  PpoParams params;
  params.lambda = 0.0;
  PolicySample s;
  s.x = f.xs[0];
  s.action = 2;
  std::vector<float> grad(kA * kH, 0.0f);
  // Ratio 1.5 > 1 + eps with a positive advantage: the clipped term is the minimum, gradient zero.
  s.old_log_prob = logp[2] - std::log(1.5);
  s.advantage = 1.0;
  PpoLoss loss = PpoLossAndGradient(f.w, kA, {&s, 1}, params, grad);
  EXPECT_NEAR(loss.surrogate, -1.2, 1e-9);
  EXPECT_EQ(loss.clipped_fraction, 1.0);
  for (float g : grad) EXPECT_EQ(g, 0.0f);
  // Ratio 1.5 with a negative advantage: the unclipped term (-1.5) is the minimum, gradient flows.
  s.advantage = -1.0;
  loss = PpoLossAndGradient(f.w, kA, {&s, 1}, params, grad);
  EXPECT_NEAR(loss.surrogate, 1.5, 1e-9);
  EXPECT_EQ(loss.clipped_fraction, 0.0);
  double norm = 0;
  for (float g : grad) norm += std::fabs(g);
  EXPECT_GT(norm, 1e-3);
  // Ratio 0.5 < 1 - eps with a negative advantage: min(0.5 * -1, 0.8 * -1) = -0.8 is the clipped term,
  // so the surrogate is 0.8 and no gradient flows.
  std::fill(grad.begin(), grad.end(), 0.0f);
  s.old_log_prob = logp[2] - std::log(0.5);
  loss = PpoLossAndGradient(f.w, kA, {&s, 1}, params, grad);
  EXPECT_NEAR(loss.surrogate, 0.8, 1e-9);
  for (float g : grad) EXPECT_EQ(g, 0.0f);
  // Exactly at the boundary (ratio 1 + eps) the gradient still flows.
  s.old_log_prob = logp[2] - std::log(1.2);
  s.advantage = 1.0;
  loss = PpoLossAndGradient(f.w, kA, {&s, 1}, params, grad);
  EXPECT_EQ(loss.clipped_fraction, 0.0);
}

TEST(AllocatorPolicy, ExpectedKPenaltyPullsTowardsFewerExperts) {
  Fixture f = Make(13, 4);
  std::vector<PolicySample> samples;
  std::vector<double> logp(kA);
  for (const auto& x : f.xs) {
    PolicyLogProbs(f.w, kA, x, logp);
    samples.push_back({x, 0, logp[0], 0.0});  // zero advantage: only the penalty acts
  }
  PpoParams params;
  params.lambda = 1.0;
  std::vector<float> w = f.w;
  const double before = PpoLossAndGradient(w, kA, samples, params, {}).expected_k;
  AdamW::Options o;
  o.lr = 0.05;
  o.weight_decay = 0.0;
  AdamW opt(w.size(), o);
  for (int step = 0; step < 50; ++step) {
    std::vector<float> grad(w.size(), 0.0f);
    (void)PpoLossAndGradient(w, kA, samples, params, grad);
    opt.Step(w, grad);
  }
  const double after = PpoLossAndGradient(w, kA, samples, params, {}).expected_k;
  EXPECT_LT(after, before - 0.5) << "before " << before << " after " << after;
}

TEST(AllocatorPolicy, CrossEntropyGradientMatchesFiniteDifferences) {
  Fixture f = Make(14, 5);
  std::vector<LabeledState> samples;
  for (size_t i = 0; i < f.xs.size(); ++i) samples.push_back({f.xs[i], static_cast<int32_t>((i * 3) % kA)});
  std::vector<float> grad(kA * kH, 0.0f);
  (void)CrossEntropyLossAndGradient(f.w, kA, samples, grad);
  ExpectGradientMatchesFiniteDifferences(
      f.w, grad, [&](const std::vector<float>& w) { return CrossEntropyLossAndGradient(w, kA, samples, {}); });
}

TEST(AllocatorPolicy, TopPLabelAndWarmStartSearch) {
  const std::vector<float> probs = {0.1f, 0.5f, 0.3f, 0.1f};
  EXPECT_EQ(TopPLabel(probs, 0.3), 1);
  EXPECT_EQ(TopPLabel(probs, 0.5), 1);
  EXPECT_EQ(TopPLabel(probs, 0.51), 2);
  EXPECT_EQ(TopPLabel(probs, 0.8), 2);
  EXPECT_EQ(TopPLabel(probs, 0.85), 3);
  EXPECT_EQ(TopPLabel(probs, 1.0), 4);
  // Two rows: labels (1, 1) for p <= 0.5, (2, 1) for p in (0.5, 0.6], (2, 2) for p in (0.6, 0.8].
  const std::vector<float> rows = {0.1f, 0.5f, 0.3f, 0.1f, 0.6f, 0.2f, 0.1f, 0.1f};
  const double p = FindWarmStartP(rows, 4, 2.0);
  EXPECT_GT(p, 0.6);
  EXPECT_LE(p, 0.8);
  const double p15 = FindWarmStartP(rows, 4, 1.5);
  EXPECT_GT(p15, 0.5);
  EXPECT_LE(p15, 0.6);
}

TEST(AllocatorPolicy, AdamWFirstStepMovesByLearningRate) {
  std::vector<float> w = {1.0f, -2.0f};
  const std::vector<float> g = {0.5f, -4.0f};
  AdamW::Options o;
  o.lr = 0.1;
  o.weight_decay = 0.1;
  AdamW opt(2, o);
  opt.Step(w, g);
  // First step: m_hat / sqrt(v_hat) = sign(g); decoupled decay adds lr * wd * w.
  EXPECT_NEAR(w[0], 1.0 - 0.1 * (1.0 + 0.1 * 1.0), 1e-6);
  EXPECT_NEAR(w[1], -2.0 - 0.1 * (-1.0 + 0.1 * -2.0), 1e-6);
  EXPECT_EQ(opt.steps(), 1);
}

TEST(AllocatorPolicy, AdamWUsesTheLearningRateSetBeforeTheStep) {
  std::vector<float> w = {1.0f};
  AdamW::Options o;
  o.lr = 0.1;
  o.weight_decay = 0.0;
  AdamW opt(1, o);
  opt.set_lr(0.01);
  EXPECT_EQ(opt.lr(), 0.01);
  opt.Step(w, std::vector<float>{2.0f});
  EXPECT_NEAR(w[0], 1.0 - 0.01, 1e-7);
}

TEST(AllocatorPolicy, NormalizeAdvantages) {
  // Mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5.
  const std::vector<double> raw = {1.0, 2.0, 3.0, 6.0};
  std::vector<double> a = raw;
  AdvantageMoments m = NormalizeAdvantages(a, AdvantageNorm::kNone);
  EXPECT_DOUBLE_EQ(m.mean, 3.0);
  EXPECT_NEAR(m.stddev, std::sqrt(3.5), 1e-12);
  EXPECT_EQ(a, raw) << "kNone leaves the advantages alone";
  a = raw;
  m = NormalizeAdvantages(a, AdvantageNorm::kCenter);
  EXPECT_NEAR(m.stddev, std::sqrt(3.5), 1e-12);
  const std::vector<double> centered = {-2.0, -1.0, 0.0, 3.0};
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], centered[i], 1e-12) << i;
  a = raw;
  (void)NormalizeAdvantages(a, AdvantageNorm::kStandardize);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], centered[i] / std::sqrt(3.5), 1e-12) << i;
  const AdvantageMoments after = NormalizeAdvantages(a, AdvantageNorm::kNone);
  EXPECT_NEAR(after.mean, 0.0, 1e-12);
  EXPECT_NEAR(after.stddev, 1.0, 1e-12);
  // A constant batch carries no signal: standardised to zeros, not NaN.
  std::vector<double> flat(5, -0.25);
  m = NormalizeAdvantages(flat, AdvantageNorm::kStandardize);
  EXPECT_DOUBLE_EQ(m.mean, -0.25);
  EXPECT_DOUBLE_EQ(m.stddev, 0.0);
  for (double v : flat) EXPECT_EQ(v, 0.0);
  std::vector<double> empty;
  m = NormalizeAdvantages(empty, AdvantageNorm::kStandardize);
  EXPECT_EQ(m.mean, 0.0);
  EXPECT_EQ(m.stddev, 0.0);
}

TEST(AllocatorPolicy, StandardizedAdvantagesScaleThePolicyGradient) {
  // Standardising is centring plus a division by the standard deviation: with lambda = 0 the surrogate's
  // gradient under standardised advantages is the centred gradient divided by the standard deviation.
  Fixture f = Make(15, 4);
  std::vector<double> logp(kA);
  std::vector<double> centered = {0.9, -0.3, 0.4, -1.2}, standardized = centered;
  (void)NormalizeAdvantages(centered, AdvantageNorm::kCenter);
  const double sd = NormalizeAdvantages(standardized, AdvantageNorm::kStandardize).stddev;
  PpoParams params;
  params.lambda = 0.0;
  std::vector<float> g_center(kA * kH, 0.0f), g_std(kA * kH, 0.0f);
  for (int which = 0; which < 2; ++which) {
    std::vector<PolicySample> samples;
    for (size_t i = 0; i < f.xs.size(); ++i) {
      PolicyLogProbs(f.w, kA, f.xs[i], logp);
      const int32_t action = static_cast<int32_t>(i % kA);
      samples.push_back(
          {f.xs[i], action, logp[static_cast<size_t>(action)], which == 0 ? centered[i] : standardized[i]});
    }
    (void)PpoLossAndGradient(f.w, kA, samples, params, which == 0 ? g_center : g_std);
  }
  for (size_t i = 0; i < g_center.size(); ++i) EXPECT_NEAR(g_std[i], g_center[i] / sd, 1e-5) << i;
}

TEST(AllocatorPolicy, AdvantageNormNames) {
  for (AdvantageNorm n : {AdvantageNorm::kNone, AdvantageNorm::kCenter, AdvantageNorm::kStandardize}) {
    auto parsed = ParseAdvantageNorm(AdvantageNormName(n));
    ASSERT_THAT(parsed.status(), ::adak::testing::IsOk());
    EXPECT_EQ(*parsed, n);
  }
  EXPECT_THAT(ParseAdvantageNorm("whiten").status(),
              ::adak::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                        ::testing::HasSubstr("none, center or standardize, got 'whiten'")));
}

TEST(AllocatorPolicy, CosineScheduleDecaysFromTheBaseRate) {
  EXPECT_EQ(ScheduledLr(1e-3, LrSchedule::kConstant, 1, 100), 1e-3);
  EXPECT_EQ(ScheduledLr(1e-3, LrSchedule::kConstant, 100, 100), 1e-3);
  EXPECT_DOUBLE_EQ(ScheduledLr(1e-3, LrSchedule::kCosine, 1, 100), 1e-3);
  EXPECT_NEAR(ScheduledLr(1e-3, LrSchedule::kCosine, 51, 100), 0.5e-3, 1e-15);
  const double last = 1e-3 * 0.5 * (1.0 + std::cos(std::acos(-1.0) * 99.0 / 100.0));
  EXPECT_NEAR(ScheduledLr(1e-3, LrSchedule::kCosine, 100, 100), last, 1e-15);
  EXPECT_GT(last, 0.0);
  EXPECT_NEAR(ScheduledLr(1e-3, LrSchedule::kCosine, 250, 100), last, 1e-15) << "past the end: the last rate";
  double previous = 2.0;
  for (int64_t s = 1; s <= 100; ++s) {
    const double lr = ScheduledLr(1.0, LrSchedule::kCosine, s, 100);
    EXPECT_LT(lr, previous) << "step " << s;
    previous = lr;
  }
  auto parsed = ParseLrSchedule("cosine");
  ASSERT_THAT(parsed.status(), ::adak::testing::IsOk());
  EXPECT_EQ(*parsed, LrSchedule::kCosine);
  EXPECT_THAT(ParseLrSchedule("linear").status(),
              ::adak::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                        ::testing::HasSubstr("constant or cosine, got 'linear'")));
}

TEST(AllocatorPolicy, LambdaWarmupIsLinear) {
  EXPECT_EQ(ScheduledLambda(0.02, 1, 0), 0.02);
  EXPECT_DOUBLE_EQ(ScheduledLambda(0.02, 1, 4), 0.005);
  EXPECT_DOUBLE_EQ(ScheduledLambda(0.02, 2, 4), 0.01);
  EXPECT_EQ(ScheduledLambda(0.02, 4, 4), 0.02);
  EXPECT_EQ(ScheduledLambda(0.02, 9, 4), 0.02);
}

TEST(AllocatorPolicy, DiscountWithinSegmentsStaysInsideEachWindow) {
  std::vector<double> v = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0};
  DiscountWithinSegments(v, 3, 0.0);
  EXPECT_EQ(v, (std::vector<double>{1.0, 2.0, 3.0, 4.0, 5.0, 6.0})) << "gamma 0: the paper's advantages";
  DiscountWithinSegments(v, 3, 0.5);
  // Back to front per window of 3: 3, 2 + 0.5 * 3, 1 + 0.5 * 3.5 | 6, 5 + 0.5 * 6, 4 + 0.5 * 8.
  const std::vector<double> want = {2.75, 3.5, 3.0, 8.0, 8.0, 6.0};
  for (size_t i = 0; i < v.size(); ++i) EXPECT_DOUBLE_EQ(v[i], want[i]) << i;
  std::vector<double> w = {1.0, 1.0, 1.0};
  DiscountWithinSegments(w, 1, 1.0);
  EXPECT_EQ(w, (std::vector<double>{1.0, 1.0, 1.0})) << "windows of one token have no later tokens";
  DiscountWithinSegments(w, 3, 1.0);
  EXPECT_EQ(w, (std::vector<double>{3.0, 2.0, 1.0}));
}

}  // namespace
}  // namespace adak::training
