// Golden test: the engine against the independent fp32 reference of ../shared/models/stories-mixtral
// (reference/topk.json): token ids, top-10 logits per position, the last position's full logits, the
// routing of every layer and position, and 48 greedy tokens through the KV cache.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <vector>

#include "engine/flops.h"
#include "engine/model.h"
#include "engine/routing_weights.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "nlohmann/json.hpp"
#include "testing/greedy_decode.h"
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
    AppendOptions options;
    options.all_logits = true;
    options.record_routing = true;
    AppendResult out;
    ASSERT_THAT(session_->Append(*ids, options, &out), IsOk());
    const std::vector<float>& logits = out.logits;
    const auto& routing = out.routed_ids;
    const auto& weights = out.routed_weights;
    const size_t e = static_cast<size_t>(model_->config.num_experts);
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
        EXPECT_EQ(out.routed_k[l][p], static_cast<int32_t>(experts.size()));
        EXPECT_EQ(routing[l][p * e + experts.size()], -1) << "slots past k are empty";
        for (size_t j = 0; j < experts.size(); ++j) {
          EXPECT_EQ(routing[l][p * e + j], experts[j]) << "layer " << l << " position " << p << " slot " << j;
          EXPECT_NEAR(weights[l][p * e + j], want_w[j], 1e-4) << "layer " << l << " position " << p;
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
  ::adak::testing::GreedyDecodeParams options;
  options.max_tokens = 48;
  options.stop_at_eos = false;
  auto result = ::adak::testing::GreedyDecode(*session_, ids, options);
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_EQ(result->text, prompt["greedy"]["text"].get<std::string>());
}

}  // namespace
}  // namespace adak::engine

namespace adak::engine {
namespace {

// Ada-K with the reference's random allocator (reference/adak.json): every position's and layer's k and
// experts, the top-10 logits, the last-position logits, 32 greedy tokens, and the activation totals.
class StoriesMixtralAdaKTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto shared = ::adak::testing::SharedDir();
    if (!shared) GTEST_SKIP() << "../shared is absent (set ADAK_SHARED_DIR); skipping the golden test";
    dir_ = *shared / "models/stories-mixtral";
    auto model = LoadModel(dir_);
    ASSERT_THAT(model.status(), ::adak::testing::IsOk());
    model_ = *std::move(model);
    RoutingWeights weights;
    ASSERT_THAT(LoadAllocator(dir_ / "reference/allocator-random.safetensors", model_->config, &weights),
                ::adak::testing::IsOk());
    auto session = Session::Create(*model_, SessionOptions{}, std::move(weights));
    ASSERT_THAT(session.status(), ::adak::testing::IsOk());
    session_ = *std::move(session);
    std::ifstream in(dir_ / "reference/adak.json");
    reference_ = nlohmann::json::parse(in);
    routing_.policy = RoutingPolicy::kAdaK;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Session> session_;
  nlohmann::json reference_;
  RoutingParams routing_;
};

TEST_F(StoriesMixtralAdaKTest, ReproducesReferenceKExpertsAndLogits) {
  const int64_t vocab = model_->config.vocab_size;
  const size_t e = static_cast<size_t>(model_->config.num_experts);
  for (const auto& prompt : reference_["prompts"]) {
    SCOPED_TRACE(prompt["prompt"].get<std::string>());
    const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
    session_->Reset();
    AppendOptions options;
    options.all_logits = true;
    options.record_routing = true;
    options.routing = routing_;
    AppendResult out;
    ASSERT_THAT(session_->Append(ids, options, &out), ::adak::testing::IsOk());
    for (size_t l = 0; l < 4; ++l) {
      for (size_t p = 0; p < ids.size(); ++p) {
        const auto& want = prompt["routing_per_layer"][l][p];
        ASSERT_EQ(out.routed_k[l][p], want["k"].get<int32_t>()) << "layer " << l << " position " << p;
        const auto experts = want["experts"].get<std::vector<int32_t>>();
        const auto weights = want["weights"].get<std::vector<double>>();
        for (size_t j = 0; j < experts.size(); ++j) {
          EXPECT_EQ(out.routed_ids[l][p * e + j], experts[j]) << "layer " << l << " position " << p;
          EXPECT_NEAR(out.routed_weights[l][p * e + j], weights[j], 1e-4) << "layer " << l << " position " << p;
        }
      }
    }
    for (size_t p = 0; p < ids.size(); ++p) {
      const float* row = out.logits.data() + p * static_cast<size_t>(vocab);
      for (const auto& pair : prompt["top10_per_position"][p]) {
        EXPECT_PRED2(Close, row[pair[0].get<int32_t>()], pair[1].get<double>()) << "position " << p;
      }
    }
    const float* last = out.logits.data() + (ids.size() - 1) * static_cast<size_t>(vocab);
    for (int64_t v = 0; v < vocab; ++v) {
      ASSERT_PRED2(Close, last[v], prompt["last_position_logits"][static_cast<size_t>(v)].get<double>());
    }
    ::adak::testing::GreedyDecodeParams gen;
    gen.routing = routing_;
    gen.stop_at_eos = false;
    const auto greedy = prompt["greedy"]["ids"].get<std::vector<int32_t>>();
    gen.max_tokens = static_cast<int64_t>(greedy.size());
    auto result = ::adak::testing::GreedyDecode(*session_, ids, gen);
    ASSERT_THAT(result.status(), ::adak::testing::IsOk());
    EXPECT_EQ(result->output_ids, greedy);
  }
}

TEST_F(StoriesMixtralAdaKTest, ActivationTotalsMatchReferenceForAllPrompts) {
  std::ifstream in(dir_ / "reference/topk.json");
  const auto topk = nlohmann::json::parse(in);
  for (const auto& totals : reference_["expert_activation_totals"]) {
    const size_t index = totals["index"].get<size_t>() - 1;
    const auto ids = topk["prompts"][index]["input_ids"].get<std::vector<int32_t>>();
    for (const bool adak : {false, true}) {
      session_->Reset();
      AppendOptions options;
      if (adak) options.routing = routing_;
      AppendResult out;
      ASSERT_THAT(session_->Append(ids, options, &out), ::adak::testing::IsOk());
      FlopCounter flops(model_->config);
      flops.Add(out.routed_k);
      EXPECT_EQ(flops.expert_activations(),
                totals[adak ? "expert_activations_adak" : "expert_activations_topk"].get<int64_t>())
          << "prompt " << index + 1 << (adak ? " adak" : " topk");
      EXPECT_EQ(flops.native_expert_activations(), totals["expert_activations_topk"].get<int64_t>());
    }
  }
}

}  // namespace
}  // namespace adak::engine
