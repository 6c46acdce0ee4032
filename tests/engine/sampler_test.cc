#include "engine/sampler.h"

#include <map>
#include <vector>

#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::StatusIs;
using ::testing::HasSubstr;

TEST(Sampler, GreedyIsArgmaxWithLowerIdOnTies) {
  Sampler s(SamplingParams{});
  EXPECT_EQ(s.Sample(std::vector<float>{1, 3, 3, 2}, {}), 1);
}

TEST(Sampler, SeedMakesDrawsReproducible) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  const std::vector<float> logits = {0, 0.5f, 1, 1.5f, 2};
  Sampler a(p), b(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.Sample(logits, {}), b.Sample(logits, {}));
}

std::map<int32_t, int> Histogram(const SamplingParams& p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) ++h[s.Sample(logits, {})];
  return h;
}

TEST(Sampler, TopKTopPMinPRestrictTheSupport) {
  const std::vector<float> logits = {2.0f, 1.9f, 1.0f, 0.0f, -1.0f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 1;
  p.top_k = 2;
  auto h = Histogram(p, logits, 2000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_GT(h[0], 0);
  EXPECT_GT(h[1], 0);

  p.top_k = 0;
  p.top_p = 0.5f;  // p0 ~= 0.41, p0 + p1 ~= 0.78 >= 0.5: two candidates
  h = Histogram(p, logits, 2000);
  EXPECT_EQ(h.size(), 2u);

  p.top_p = 1.0f;
  p.min_p = 0.5f;  // keeps ids with prob >= 0.5 * p0: ids 0 and 1 (ratio 0.9), not 2 (ratio 0.37)
  h = Histogram(p, logits, 2000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.count(2), 0u);
}

TEST(Sampler, TemperatureNearZeroConcentratesOnArgmax) {
  SamplingParams p;
  p.temperature = 0.01f;
  p.seed = 9;
  auto h = Histogram(p, {1.0f, 1.5f, 0.2f}, 500);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, 1);
}

TEST(Sampler, RepetitionPenaltyFollowsHfRule) {
  // id 0 (logit 2) seen: 2 / 4 = 0.5 < 1.0 of id 1; id 2 (logit -1) seen: -4.
  SamplingParams p;
  p.repetition_penalty = 4.0f;
  Sampler s(p);
  EXPECT_EQ(s.Sample(std::vector<float>{2.0f, 1.0f, -1.0f}, std::vector<int32_t>{0, 0, 2}), 1);
}

// OpenAI's presence and frequency penalties count the generated tokens only (context from generated_from).
TEST(Sampler, PresenceAndFrequencyPenaltiesCountGeneratedTokens) {
  const std::vector<float> logits = {2.0f, 1.4f, 1.2f};
  // The prompt is {0, 0, 0}; one generated 0 and one generated 1.
  const std::vector<int32_t> context = {0, 0, 0, 0, 1};
  SamplingParams p;
  p.presence_penalty = 0.6f;  // 0: 2.0 - 0.6 = 1.4; 1: 1.4 - 0.6 = 0.8; 2 stays 1.2
  EXPECT_EQ(Sampler(p).Sample(logits, context, 3), 0);
  p.presence_penalty = 0.9f;  // 0: 1.1 < 2's 1.2
  EXPECT_EQ(Sampler(p).Sample(logits, context, 3), 2);
  // Only generated tokens count: with the whole context as prompt nothing is penalised.
  EXPECT_EQ(Sampler(p).Sample(logits, context, context.size()), 0);
  p = {};
  p.frequency_penalty = 0.3f;  // from index 1: 0 three times (2.0 - 0.9 = 1.1), 1 once (1.1) < 1.2
  EXPECT_EQ(Sampler(p).Sample(logits, context, 1), 2);
  EXPECT_EQ(Sampler(p).Sample(logits, context, 3), 0);  // once: 2.0 - 0.3 = 1.7
  p.frequency_penalty = -2.0f;                          // negative: encourages repeats
  EXPECT_EQ(Sampler(p).Sample(std::vector<float>{1.0f, 2.5f}, std::vector<int32_t>{0}, 0), 0);
  p = {};
  p.presence_penalty = 2.5f;
  EXPECT_THAT(ValidateSamplingParams(p),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("presence_penalty must be in [-2, 2], got 2.5")));
  p = {};
  p.frequency_penalty = -3.0f;
  EXPECT_THAT(ValidateSamplingParams(p),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("frequency_penalty must be in [-2, 2], got -3")));
}

// OpenAI's logit_bias: added to the logits before everything else; ids outside the vocabulary are ignored.
TEST(Sampler, LogitBiasShiftsLogitsBeforePenaltiesAndSampling) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f};
  SamplingParams p;
  p.logit_bias = {{0, -1.5f}};  // 0.5 < 1.0
  EXPECT_EQ(Sampler(p).Sample(logits, {}), 1);
  p.logit_bias = {{2, 1.6f}, {7, 100.0f}};  // 2.1 > 2.0; id 7 is outside: ignored
  EXPECT_EQ(Sampler(p).Sample(logits, {}), 2);
  // -100 bans a token even under sampling at a high temperature.
  p = {};
  p.temperature = 5.0f;
  p.seed = 1;
  p.logit_bias = {{0, -100.0f}};
  EXPECT_EQ(Histogram(p, logits, 300).count(0), 0u);
  // The repetition penalty sees the biased logit: 0's 2.0 - 3.0 = -1.0, penalised to -2.0 (below 2's -1.5),
  // not divided as the raw positive 2.0 would be.
  p = {};
  p.repetition_penalty = 2.0f;
  p.logit_bias = {{0, -3.0f}, {2, -2.0f}, {1, -3.0f}};
  EXPECT_EQ(Sampler(p).Sample(std::vector<float>{2.0f, 1.0f, 0.5f}, std::vector<int32_t>{0}), 2);
  p = {};
  p.logit_bias = {{1, 100.5f}};
  EXPECT_THAT(ValidateSamplingParams(p),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("logit_bias for token 1 must be in [-100, 100]")));
  p.logit_bias.assign(kMaxLogitBias + 1, {1, 0.0f});
  EXPECT_THAT(ValidateSamplingParams(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 1024")));
}

TEST(Sampler, ValidationNamesFieldAndRange) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_THAT(ValidateSamplingParams(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("temperature")));
  p = {};
  p.top_p = 0;
  EXPECT_THAT(ValidateSamplingParams(p),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_p must be in (0, 1]")));
  p = {};
  p.min_p = 2;
  EXPECT_THAT(ValidateSamplingParams(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_p")));
  p = {};
  p.top_k = -1;
  EXPECT_THAT(ValidateSamplingParams(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_k")));
  p = {};
  p.repetition_penalty = 0;
  EXPECT_THAT(ValidateSamplingParams(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repetition_penalty")));
}

}  // namespace
}  // namespace adak::engine
