// adak-loadtest's workload: --mix / --prompt-words / --slo parsing, deterministic requests whose arms and
// lengths follow the asked distributions, and Gamma arrivals with the asked rate and burstiness.
#include "loadtest/workload.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace adak::loadtest {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseMix, ArmsWithPoliciesValuesAndWeights) {
  auto arms = ParseMix("topk:0.5,adak:0.25,threshold=0.3:0.25,default:1,topk=1:2");
  ASSERT_THAT(arms.status(), IsOk());
  ASSERT_EQ(arms->size(), 5u);
  EXPECT_EQ((*arms)[0].policy, "topk");
  EXPECT_FALSE((*arms)[0].value.has_value());
  EXPECT_DOUBLE_EQ((*arms)[1].weight, 0.25);
  EXPECT_EQ((*arms)[2].name, "threshold=0.3");
  EXPECT_EQ((*arms)[2].policy, "threshold");
  EXPECT_DOUBLE_EQ(*(*arms)[2].value, 0.3);
  EXPECT_EQ((*arms)[3].policy, "");  // the server's default
  EXPECT_DOUBLE_EQ(*(*arms)[4].value, 1.0);
}

TEST(ParseMix, RefusesBadEntriesNamingThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"topk", "'topk' must be NAME[=VALUE]:WEIGHT"},
      {"bogus:1", "unknown policy 'bogus'"},
      {"topk:0", "the weight must be a positive number, got '0'"},
      {"topk:-1", "positive number"},
      {"topk:x", "positive number"},
      {"topp:1", "policy 'topp' needs its value"},
      {"threshold:1", "policy 'threshold' needs its value"},
      {"adak=2:1", "policy 'adak' takes no value"},
      {"topk=1.5:1", "bad value '1.5'"},
      {"topp=0:1", "bad value '0'"},
      {"threshold=2:1", "bad value '2'"},
      {"topk:1,topk:2", "names 'topk' twice"},
  };
  for (const auto& [spec, message] : cases) {
    EXPECT_THAT(ParseMix(spec), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message))) << spec;
  }
}

TEST(ParseRange, FixedOrInclusiveRange) {
  auto fixed = ParseRange("32", "prompt-words", 1);
  ASSERT_THAT(fixed.status(), IsOk());
  EXPECT_EQ(fixed->lo, 32);
  EXPECT_EQ(fixed->hi, 32);
  auto range = ParseRange("8:16", "max-tokens", 1);
  ASSERT_THAT(range.status(), IsOk());
  EXPECT_EQ(range->lo, 8);
  EXPECT_EQ(range->hi, 16);
  for (const char* bad : {"0", "9:3", "x", "", "4:", ":4", "-3"}) {
    EXPECT_THAT(ParseRange(bad, "max-tokens", 1),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max-tokens must be N or LO:HI with 1 <= LO")))
        << bad;
  }
}

TEST(ParseSlo, BoundsInMilliseconds) {
  auto slo = ParseSlo("ttft=500,itl=50.5");
  ASSERT_THAT(slo.status(), IsOk());
  EXPECT_DOUBLE_EQ(*slo->ttft_ms, 500.0);
  EXPECT_DOUBLE_EQ(*slo->itl_ms, 50.5);
  EXPECT_FALSE(slo->tpot_ms.has_value());
  EXPECT_FALSE(slo->empty());
  for (const char* bad : {"ttft", "ttft=0", "latency=5", "ttft=abc"}) {
    EXPECT_THAT(ParseSlo(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be ttft=MS"))) << bad;
  }
}

TEST(Workload, RequestsAreDeterministicAndFollowTheWeightsAndRanges) {
  auto arms = ParseMix("topk:1,adak:3");
  ASSERT_THAT(arms.status(), IsOk());
  auto w = Workload::Create("", Range{4, 12}, Range{16, 64}, *arms, /*seed=*/7);
  ASSERT_THAT(w.status(), IsOk());
  auto again = Workload::Create("", Range{4, 12}, Range{16, 64}, *arms, /*seed=*/7);
  auto other = Workload::Create("", Range{4, 12}, Range{16, 64}, *arms, /*seed=*/8);
  constexpr int kN = 8000;
  int adak = 0, differs = 0;
  int64_t min_words = 1 << 30, max_words = 0, min_tokens = 1 << 30, max_tokens = 0;
  for (int i = 0; i < kN; ++i) {
    const RequestSpec r = w->Request(i);
    const RequestSpec s = again->Request(i);
    EXPECT_EQ(r.prompt, s.prompt);
    EXPECT_EQ(r.max_tokens, s.max_tokens);
    EXPECT_EQ(r.arm, s.arm);
    if (other->Request(i).prompt != r.prompt) ++differs;
    adak += r.arm == 1 ? 1 : 0;
    std::istringstream split(r.prompt);
    int64_t words = 0;
    for (std::string word; split >> word;) ++words;
    min_words = std::min(min_words, words);
    max_words = std::max(max_words, words);
    min_tokens = std::min(min_tokens, r.max_tokens);
    max_tokens = std::max(max_tokens, r.max_tokens);
  }
  EXPECT_NEAR(adak / static_cast<double>(kN), 0.75, 0.02);
  EXPECT_GT(differs, kN * 9 / 10);
  EXPECT_EQ(min_words, 4);
  EXPECT_EQ(max_words, 12);
  EXPECT_EQ(min_tokens, 16);
  EXPECT_EQ(max_tokens, 64);
}

TEST(Workload, PromptsFromAFileAreItsStoriesCutToTheWords) {
  ::adak::testing::TempDir tmp;
  const std::string path = (tmp.path() / "stories.txt").string();
  std::ofstream(path) << "One two three four five.\nSix seven.\n\nAlpha beta\n<|endoftext|>\nGamma\n";
  auto w = Workload::Create(path, Range{3, 3}, Range{1, 1}, {}, 0);
  ASSERT_THAT(w.status(), IsOk());
  EXPECT_EQ(w->Request(0).prompt, "One two three");
  EXPECT_EQ(w->Request(1).prompt, "Alpha beta");  // shorter than 3 words: all of it
  EXPECT_EQ(w->Request(2).prompt, "Gamma");
  EXPECT_EQ(w->Request(3).prompt, "One two three");
  ASSERT_EQ(w->arms().size(), 1u);
  EXPECT_EQ(w->arms()[0].policy, "");
  EXPECT_THAT(Workload::Create((tmp.path() / "missing.txt").string(), Range{1, 1}, Range{1, 1}, {}, 0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot open")));
  const std::string empty = (tmp.path() / "empty.txt").string();
  std::ofstream(empty) << "\n\n";
  EXPECT_THAT(Workload::Create(empty, Range{1, 1}, Range{1, 1}, {}, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has no text")));
}

// Gaps of a Gamma(shape B, mean 1/R) process: mean 1/R, coefficient of variation 1/sqrt(B).
TEST(ArrivalProcess, RateAndBurstiness) {
  for (double burstiness : {1.0, 0.25, 4.0}) {
    ArrivalProcess arrivals(/*rate=*/50.0, burstiness, /*seed=*/3);
    constexpr int kN = 40000;
    double last = 0.0, sum = 0.0, sum2 = 0.0;
    for (int i = 0; i < kN; ++i) {
      const double t = arrivals.Next();
      ASSERT_GE(t, last);
      const double gap = t - last;
      sum += gap;
      sum2 += gap * gap;
      last = t;
    }
    const double mean = sum / kN;
    const double cv = std::sqrt(sum2 / kN - mean * mean) / mean;
    EXPECT_NEAR(mean, 0.02, 0.02 * 0.03) << burstiness;
    EXPECT_NEAR(cv, 1.0 / std::sqrt(burstiness), 0.05 / std::sqrt(burstiness)) << burstiness;
  }
  ArrivalProcess a(10.0, 1.0, 5), b(10.0, 1.0, 5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.Next(), b.Next());
}

}  // namespace
}  // namespace adak::loadtest
