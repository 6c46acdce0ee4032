// Golden test: the engine against the independent fp32 reference of ../shared/models/stories-mixtral
// (reference/topk.json): token ids, top-10 logits per position, the last position's full logits, the
// routing of every layer and position, and 48 greedy tokens through the KV cache.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <vector>

#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::IsOk;

constexpr double kRelTol = 1e-3;

bool Close(double got, double want) { return std::fabs(got - want) <= kRelTol * std::max(1.0, std::fabs(want)); }

class StoriesMixtralTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto shared = ::adak::testing::SharedDir();
    if (!shared) GTEST_SKIP() << "../shared is absent (set ADAK_SHARED_DIR); skipping the golden test";
    const auto dir = *shared / "models/stories-mixtral";
    auto model = LoadModel(dir);
    ASSERT_THAT(model.status(), IsOk());
    model_ = *std::move(model);
    std::ifstream in(dir / "reference/topk.json");
    reference_ = nlohmann::json::parse(in);
    auto session = Session::Create(*model_, SessionOptions{});
    ASSERT_THAT(session.status(), IsOk());
    session_ = *std::move(session);
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Session> session_;
  nlohmann::json reference_;
};

TEST_F(StoriesMixtralTest, PromptLogitsAndRoutingMatchReference) {
  const int64_t vocab = model_->config.vocab_size;
  for (const auto& prompt : reference_["prompts"]) {
    SCOPED_TRACE(prompt["prompt"].get<std::string>());
    auto ids = model_->tokenizer->Encode(prompt["prompt"].get<std::string>());
    ASSERT_THAT(ids.status(), IsOk());
    ASSERT_EQ(*ids, prompt["input_ids"].get<std::vector<int32_t>>());
    session_->Reset();
    std::vector<float> logits;
    std::vector<std::vector<int32_t>> routing;
    std::vector<std::vector<float>> weights;
    ASSERT_THAT(session_->Append(*ids, true, &logits, &routing, &weights), IsOk());
    const size_t n = ids->size();
    ASSERT_EQ(logits.size(), n * static_cast<size_t>(vocab));

    for (size_t p = 0; p < n; ++p) {
      const float* row = logits.data() + p * static_cast<size_t>(vocab);
      const auto& top10 = prompt["top10_per_position"][p];
      std::vector<int32_t> order(static_cast<size_t>(vocab));
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + 10, order.end(),
                        [&](int32_t a, int32_t b) { return row[a] != row[b] ? row[a] > row[b] : a < b; });
      for (size_t i = 0; i < 10; ++i) {
        const int32_t want_id = top10[i][0].get<int32_t>();
        const double want_logit = top10[i][1].get<double>();
        EXPECT_EQ(order[i], want_id) << "position " << p << " rank " << i;
        EXPECT_PRED2(Close, row[want_id], want_logit) << "position " << p << " id " << want_id;
      }
    }
    const auto& last = prompt["last_position_logits"];
    const float* row = logits.data() + (n - 1) * static_cast<size_t>(vocab);
    for (int64_t v = 0; v < vocab; ++v) {
      ASSERT_PRED2(Close, row[v], last[static_cast<size_t>(v)].get<double>()) << "last position, id " << v;
    }
    for (size_t l = 0; l < routing.size(); ++l) {
      for (size_t p = 0; p < n; ++p) {
        const auto& want = prompt["routing_per_layer"][l][p];
        const auto experts = want["experts"].get<std::vector<int32_t>>();
        const auto want_w = want["weights"].get<std::vector<double>>();
        for (size_t j = 0; j < experts.size(); ++j) {
          EXPECT_EQ(routing[l][p * 2 + j], experts[j]) << "layer " << l << " position " << p << " slot " << j;
          EXPECT_NEAR(weights[l][p * 2 + j], want_w[j], 1e-4) << "layer " << l << " position " << p;
        }
      }
    }
  }
}

// 48 greedy tokens one at a time through the KV cache equal the reference's full-recompute greedy ids.
// A divergence is accepted only where our own top-2 logits are within 1e-3 (a near-tie), and then the
// rest of that continuation is not compared.
TEST_F(StoriesMixtralTest, GreedyContinuationMatchesReference) {
  const int64_t vocab = model_->config.vocab_size;
  for (const auto& prompt : reference_["prompts"]) {
    SCOPED_TRACE(prompt["prompt"].get<std::string>());
    const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
    const auto want = prompt["greedy"]["ids"].get<std::vector<int32_t>>();
    session_->Reset();
    std::vector<float> logits;
    ASSERT_THAT(session_->Append(ids, false, &logits), IsOk());
    for (size_t i = 0; i < want.size(); ++i) {
      const int32_t next = Argmax(logits);
      if (next != want[i]) {
        std::vector<float> sorted(logits);
        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
        EXPECT_LT(sorted[0] - sorted[1], 1e-3) << "divergence at generated token " << i << ": got " << next
                                               << ", reference " << want[i] << " with a clear margin";
        break;
      }
      ASSERT_EQ(logits.size(), static_cast<size_t>(vocab));
      ASSERT_THAT(session_->Append(std::span<const int32_t>(&next, 1), false, &logits), IsOk());
    }
  }
}

// The decoded greedy text is the reference text (prompt 1).
TEST_F(StoriesMixtralTest, GreedyTextReadsAsReference) {
  const auto& prompt = reference_["prompts"][0];
  const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
  GenerateOptions options;
  options.max_tokens = 48;
  options.stop_at_eos = false;
  auto result = Generate(*session_, ids, options);
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_EQ(result->text, prompt["greedy"]["text"].get<std::string>());
}

}  // namespace
}  // namespace adak::engine
