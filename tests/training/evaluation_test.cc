// training/evaluation: the token classifier on hand-picked texts and tokenizer ids, and Evaluate on a small
// random Mixtral (windowing, perplexity against a direct forward, routing statistics, errors).
#include "training/evaluation.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/session.h"
#include "testing/make_model.h"
#include "tests/test_util.h"

namespace adak::training {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::adak::testing::TempDir;
using ::testing::HasSubstr;

TEST(TokenClassName, NamesEveryClass) {
  EXPECT_EQ(TokenClassName(TokenClass::kWord), "word");
  EXPECT_EQ(TokenClassName(TokenClass::kNumber), "number");
  EXPECT_EQ(TokenClassName(TokenClass::kPunctuation), "punctuation");
  EXPECT_EQ(TokenClassName(TokenClass::kSpaceOther), "space/other");
}

TEST(TokenClassifier, ClassifiesTextByItsCharacters) {
  auto classifier = TokenClassifier::Create();
  ASSERT_THAT(classifier.status(), IsOk());
  struct Case {
    std::string text;
    TokenClass want;
  };
  const std::vector<Case> cases = {
      {"the", TokenClass::kWord},
      {" the", TokenClass::kWord},                      // byte-level leading space (decoded Ġ)
      {"\xE2\x96\x81the", TokenClass::kWord},           // SentencePiece ▁ left in
      {"3rd", TokenClass::kWord},                       // a letter wins over a digit
      {"\xC3\xA9t\xC3\xA9", TokenClass::kWord},         // été
      {"\xE6\x97\xA5\xE6\x9C\xAC", TokenClass::kWord},  // 日本
      {"42", TokenClass::kNumber},
      {" 7", TokenClass::kNumber},
      {"1,000", TokenClass::kNumber},     // digits with punctuation
      {"\xD9\xA3", TokenClass::kNumber},  // ARABIC-INDIC DIGIT THREE
      {",", TokenClass::kPunctuation},
      {" .", TokenClass::kPunctuation},
      {".\n", TokenClass::kPunctuation},
      {"$", TokenClass::kPunctuation},             // symbols count as punctuation
      {"\xE2\x80\x94", TokenClass::kPunctuation},  // em dash
      {"\xE2\x80\x99", TokenClass::kPunctuation},  // right single quotation mark
      {"\xE2\x96\x81\"", TokenClass::kPunctuation},
      {"", TokenClass::kSpaceOther},
      {" ", TokenClass::kSpaceOther},
      {"\n\n", TokenClass::kSpaceOther},
      {"\xE2\x96\x81", TokenClass::kSpaceOther},  // a lone ▁ is a space
      {"\x01", TokenClass::kSpaceOther},          // control character
      {"\xEF\xBF\xBD", TokenClass::kSpaceOther},  // U+FFFD: part of a character
      {"\xC3", TokenClass::kSpaceOther},          // invalid UTF-8
  };
  for (const Case& c : cases) {
    auto got = (*classifier)->ClassifyText(c.text);
    ASSERT_THAT(got.status(), IsOk()) << c.text;
    EXPECT_EQ(*got, c.want) << "'" << c.text << "' -> " << TokenClassName(*got);
  }
}

class EvaluationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeModelParams params;
    params.arch = engine::Architecture::kMixtral;
    params.seed = 5;
    params.overrides = {{"num_hidden_layers", "3"}, {"hidden_size", "64"}, {"max_position_embeddings", "64"}};
    const auto dir = tmp_.path() / "model";
    ASSERT_THAT(testing::MakeModel(params, dir), IsOk());
    auto model = engine::LoadModel(dir);
    ASSERT_THAT(model.status(), IsOk());
    model_ = *std::move(model);
    engine::SessionOptions options;
    options.num_threads = 2;
    auto session = engine::Session::Create(*model_, options);
    ASSERT_THAT(session.status(), IsOk());
    session_ = *std::move(session);
  }

  // Random ids over the whole vocabulary (also ids the tokenizer does not know: space/other).
  std::vector<int32_t> RandomTokens(size_t n, uint32_t seed) const {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(model_->config.vocab_size));
    return t;
  }

  static int64_t ClassTokens(const EvalResult& r) {
    int64_t n = 0;
    for (const TokenClassStats& s : r.classes) n += s.tokens;
    return n;
  }

  TempDir tmp_;
  std::unique_ptr<engine::Model> model_;
  std::unique_ptr<engine::Session> session_;
};

TEST_F(EvaluationTest, ClassifiesTokenizerIds) {
  auto classifier = TokenClassifier::Create();
  ASSERT_THAT(classifier.status(), IsOk());
  const tokenizer::Tokenizer& tok = *model_->tokenizer;
  auto id = [&](const std::string& token) {
    auto found = tok.TokenToId(token);
    EXPECT_TRUE(found.has_value()) << token;
    return found.value_or(0);
  };
  auto classify = [&](int32_t token_id) {
    auto c = (*classifier)->ClassifyToken(tok, token_id);
    EXPECT_THAT(c.status(), IsOk());
    return c.value_or(TokenClass::kSpaceOther);
  };
  EXPECT_EQ(classify(id("a")), TokenClass::kWord);
  EXPECT_EQ(classify(id("5")), TokenClass::kNumber);
  EXPECT_EQ(classify(id(",")), TokenClass::kPunctuation);
  EXPECT_EQ(classify(id("\xC4\xA0")), TokenClass::kSpaceOther);  // "Ġ", the space byte
  EXPECT_EQ(classify(id("\xC3\x83")), TokenClass::kSpaceOther);  // "Ã", byte 0xC3: half a character
  EXPECT_EQ(classify(static_cast<int32_t>(testing::kMakeModelEndOfTextId)), TokenClass::kSpaceOther);  // special
  EXPECT_EQ(classify(static_cast<int32_t>(testing::kMakeModelTokenizerSize)),
            TokenClass::kSpaceOther);  // no such token
  EXPECT_EQ(classify(-1), TokenClass::kSpaceOther);
}

TEST_F(EvaluationTest, NativeTopKWindowsAndCounts) {
  const std::vector<int32_t> ids = RandomTokens(50, 1);
  EvalParams params;
  params.context = 16;  // windows start at 0, 16, 32, 48: 15 + 15 + 15 + 1 scored
  auto r = Evaluate(*session_, ids, params);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->windows, 4);
  EXPECT_EQ(r->tokens_run, 50);
  EXPECT_EQ(r->scored, 46);
  EXPECT_EQ(r->flops.tokens(), 50);
  EXPECT_EQ(ClassTokens(*r), 46);
  EXPECT_DOUBLE_EQ(r->flops.mean_k(), 2.0);
  EXPECT_DOUBLE_EQ(r->flops.savings_ratio(), 0.0);
  EXPECT_EQ(r->flops.expert_flops_saved(), 0);
  for (const TokenClassStats& s : r->classes) {
    if (s.tokens > 0) {
      EXPECT_DOUBLE_EQ(s.mean_k(), 2.0);
    }
  }
  EXPECT_GT(r->nats_per_token(), 0.0);
  EXPECT_NEAR(r->perplexity(), std::exp(r->total_nats / 46.0), 1e-9 * r->perplexity());
  EXPECT_EQ(r->context, 16);
}

TEST_F(EvaluationTest, OddWindowOfOneTokenIsNotRun) {
  const std::vector<int32_t> ids = RandomTokens(33, 2);
  EvalParams params;
  params.context = 16;  // windows [0,16) [16,32); the lone token 32 is not run
  auto r = Evaluate(*session_, ids, params);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->windows, 2);
  EXPECT_EQ(r->tokens_run, 32);
  EXPECT_EQ(r->scored, 30);
}

TEST_F(EvaluationTest, NatsEqualADirectForwardOfTheWindow) {
  const std::vector<int32_t> ids = RandomTokens(20, 3);
  EvalParams params;
  params.context = 20;
  auto r = Evaluate(*session_, ids, params);
  ASSERT_THAT(r.status(), IsOk());
  ASSERT_EQ(r->scored, 19);

  session_->Reset();
  std::vector<float> logits;
  ASSERT_THAT(session_->Append(ids, /*all_logits=*/true, &logits), IsOk());
  const int64_t vocab = model_->config.vocab_size;
  double nats = 0.0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const float* row = logits.data() + i * static_cast<size_t>(vocab);
    double mx = row[0];
    for (int64_t v = 1; v < vocab; ++v) mx = std::max<double>(mx, row[v]);
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - mx);
    nats -= row[ids[i + 1]] - mx - std::log(sum);
  }
  EXPECT_NEAR(r->total_nats, nats, 1e-9 * std::fabs(nats));
  EXPECT_NEAR(r->nats_per_token(), nats / 19.0, 1e-9 * std::fabs(nats));
}

TEST_F(EvaluationTest, TopOneOverrideHalvesExpertFlops) {
  const std::vector<int32_t> ids = RandomTokens(40, 4);
  EvalParams params;
  params.context = 20;
  params.routing.policy = engine::RoutingPolicy::kTopK;
  params.routing.top_k = 1;
  auto r = Evaluate(*session_, ids, params);
  ASSERT_THAT(r.status(), IsOk());
  const int64_t k_native = model_->config.num_experts_per_tok;
  ASSERT_EQ(k_native, 2);
  EXPECT_DOUBLE_EQ(r->flops.mean_k(), 1.0);
  EXPECT_DOUBLE_EQ(r->flops.savings_ratio(), static_cast<double>(k_native - 1) / static_cast<double>(k_native));
  for (int64_t l = 0; l < model_->config.num_layers; ++l) EXPECT_DOUBLE_EQ(r->flops.mean_k(l), 1.0);
  for (const TokenClassStats& s : r->classes) {
    if (s.tokens > 0) {
      EXPECT_DOUBLE_EQ(s.mean_k(), 1.0);
    }
  }
  EXPECT_NEAR(r->perplexity(), std::exp(r->nats_per_token()), 1e-12 * r->perplexity());

  // The native run on the same tokens differs (a different expert mix).
  params.routing.top_k = 0;
  auto native = Evaluate(*session_, ids, params);
  ASSERT_THAT(native.status(), IsOk());
  EXPECT_NE(native->total_nats, r->total_nats);
  EXPECT_EQ(native->scored, r->scored);
}

TEST_F(EvaluationTest, TopPVariesKPerTokenAndClassesAccountForEveryScoredToken) {
  const std::vector<int32_t> ids = RandomTokens(48, 5);
  EvalParams params;
  params.context = 24;
  params.routing.policy = engine::RoutingPolicy::kTopP;
  params.routing.top_p = 0.6f;
  auto r = Evaluate(*session_, ids, params);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(ClassTokens(*r), r->scored);
  EXPECT_GE(r->flops.mean_k(), 1.0);
  EXPECT_LE(r->flops.mean_k(), static_cast<double>(model_->config.num_experts));
  for (const TokenClassStats& s : r->classes) {
    if (s.tokens == 0) continue;
    EXPECT_GE(s.mean_k(), 1.0);
    EXPECT_LE(s.mean_k(), static_cast<double>(model_->config.num_experts));
  }
  EXPECT_EQ(r->flops.expert_flops_saved(), r->flops.native_expert_flops() - r->flops.expert_flops());
}

TEST_F(EvaluationTest, RefusesBadInput) {
  const std::vector<int32_t> ids = RandomTokens(10, 6);
  EvalParams params;
  params.context = 8;
  EXPECT_THAT(Evaluate(*session_, std::span<const int32_t>(ids.data(), 1), params),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 2 tokens, got 1")));
  params.context = 1;
  EXPECT_THAT(Evaluate(*session_, ids, params),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context 1 is outside [2, 64]")));
  params.context = 65;
  EXPECT_THAT(Evaluate(*session_, ids, params),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context 65 is outside [2, 64]")));
  params.context = 8;
  params.routing.policy = engine::RoutingPolicy::kAdaK;
  EXPECT_THAT(Evaluate(*session_, ids, params),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs an allocator file")));
  params.routing = {};
  params.routing.top_k = 9;
  EXPECT_THAT(Evaluate(*session_, ids, params),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_k must be in [0, 8]")));
  params.routing = {};
  std::vector<int32_t> bad = ids;
  bad[3] = static_cast<int32_t>(model_->config.vocab_size);
  EXPECT_THAT(Evaluate(*session_, bad, params), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST_F(EvaluationTest, FrontierListsEachFamilyInTheOrderGiven) {
  const std::vector<SweepFamily> families = {SweepFamily::kThreshold, SweepFamily::kTopK, SweepFamily::kTopP,
                                             SweepFamily::kTopPRaw};
  const std::vector<engine::RoutingParams> sweep = FrontierRoutings(model_->config, families);
  ASSERT_EQ(sweep.size(), kFrontierThreshold.size() + 2u + kFrontierTopP.size() + kFrontierTopPRaw.size());
  size_t i = 0;
  for (float t : kFrontierThreshold) {
    EXPECT_EQ(sweep[i].policy, engine::RoutingPolicy::kThreshold);
    EXPECT_EQ(sweep[i++].threshold, t);
  }
  for (int64_t k = 1; k <= 2; ++k) {
    EXPECT_EQ(sweep[i].policy, engine::RoutingPolicy::kTopK);
    EXPECT_EQ(sweep[i++].top_k, k);
  }
  for (float p : kFrontierTopP) {
    EXPECT_EQ(sweep[i].policy, engine::RoutingPolicy::kTopP);
    EXPECT_EQ(sweep[i].top_p_weighting, engine::TopPWeighting::kModel);
    EXPECT_EQ(sweep[i++].top_p, p);
  }
  for (float p : kFrontierTopPRaw) {
    EXPECT_EQ(sweep[i].policy, engine::RoutingPolicy::kTopP);
    EXPECT_EQ(sweep[i].top_p_weighting, engine::TopPWeighting::kRaw);
    EXPECT_EQ(sweep[i++].top_p, p);
  }
  for (const engine::RoutingParams& r : sweep) {
    EXPECT_THAT(ValidateRoutingParams(r, model_->config, session_->routing_weights()), IsOk());
  }
}

TEST(SweepFamilies, ParseNamesListsAndRefusesUnknownOrRepeated) {
  using Families = std::vector<SweepFamily>;
  auto one = ParseSweepFamilies("topk");
  ASSERT_THAT(one.status(), IsOk());
  EXPECT_EQ(*one, Families{SweepFamily::kTopK});
  auto two = ParseSweepFamilies("threshold,topp-raw");
  ASSERT_THAT(two.status(), IsOk());
  EXPECT_EQ(*two, (Families{SweepFamily::kThreshold, SweepFamily::kTopPRaw}));
  auto all = ParseSweepFamilies("all");
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_EQ(*all, (Families{SweepFamily::kTopK, SweepFamily::kTopP, SweepFamily::kTopPRaw, SweepFamily::kThreshold}));
  EXPECT_THAT(ParseSweepFamilies("topk,ser"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown sweep family 'ser' (accepted: topk")));
  EXPECT_THAT(ParseSweepFamilies(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown sweep family ''")));
  EXPECT_THAT(ParseSweepFamilies("topp,topp"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'topp' is listed twice")));
}

// On a top-2 model, top-p with the model's weighting at p and the threshold rule at t = (1 - p) / p both
// mean "k = 1 exactly when p1 / (p1 + p2) >= p": the same tokens get the same k and the same perplexity.
// (The random model's router is nearly uniform, so p is just above 1/2.)
TEST_F(EvaluationTest, OnATopTwoModelThresholdAndModelWeightedTopPAgree) {
  ASSERT_EQ(model_->config.num_experts_per_tok, 2);
  const std::vector<int32_t> ids = RandomTokens(64, 8);
  EvalParams params;
  params.context = 32;
  params.routing.policy = engine::RoutingPolicy::kTopP;
  params.routing.top_p = 0.52f;
  auto topp = Evaluate(*session_, ids, params);
  ASSERT_THAT(topp.status(), IsOk());
  params.routing = {.policy = engine::RoutingPolicy::kThreshold, .threshold = 0.48f / 0.52f};
  auto threshold = Evaluate(*session_, ids, params);
  ASSERT_THAT(threshold.status(), IsOk());
  EXPECT_GT(topp->flops.mean_k(), 1.0);
  EXPECT_LT(topp->flops.mean_k(), 2.0);
  EXPECT_EQ(topp->flops.expert_activations(), threshold->flops.expert_activations());
  EXPECT_NEAR(topp->total_nats, threshold->total_nats, 1e-6 * std::abs(topp->total_nats));
}

TEST_F(EvaluationTest, LabelsNameTheConfiguration) {
  const engine::ModelConfig& c = model_->config;
  engine::RoutingParams r;
  EXPECT_EQ(RoutingLabel(r, c), "topk k=2");
  r.top_k = 1;
  EXPECT_EQ(RoutingLabel(r, c), "topk k=1");
  r = {};
  r.policy = engine::RoutingPolicy::kTopP;
  r.top_p = 0.5f;
  EXPECT_EQ(RoutingLabel(r, c), "topp p=0.50");
  r.top_p_weighting = engine::TopPWeighting::kRaw;
  EXPECT_EQ(RoutingLabel(r, c), "topp-raw p=0.50");
  r = {.policy = engine::RoutingPolicy::kThreshold, .threshold = 0.3f};
  EXPECT_EQ(RoutingLabel(r, c), "threshold t=0.30");
  r.min_k = 2;
  EXPECT_EQ(RoutingLabel(r, c), "threshold t=0.30, min_k=2");
  r = {};
  r.policy = engine::RoutingPolicy::kAdaK;
  EXPECT_EQ(RoutingLabel(r, c), "adak");
  r.max_k = 4;
  EXPECT_EQ(RoutingLabel(r, c), "adak k=1..4");
  r = {};
  r.policy = engine::RoutingPolicy::kNull;
  EXPECT_EQ(RoutingLabel(r, c), "null");
}

}  // namespace
}  // namespace adak::training
