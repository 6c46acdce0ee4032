// ModelRunner on random checkpoints of every architecture: the KV cache and batching give the same logits
// as a single full prefill, and malformed batches are refused before anything is written.
#include "engine/model_runner.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "base/strings.h"
#include "engine/cpu_backend.h"
#include "engine/model.h"
#include "kernels/cpu/norm.h"
#include "testing/make_model.h"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::testing::HasSubstr;

class ModelRunnerTest : public ::testing::TestWithParam<Architecture> {
 protected:
  void SetUp() override {
    testing::MakeModelParams params;
    params.arch = GetParam();
    params.seed = 11;
    params.overrides = {{"num_hidden_layers", "3"}, {"hidden_size", "64"}, {"max_position_embeddings", "64"}};
    const auto dir = tmp_.path() / "model";
    ASSERT_THAT(testing::MakeModel(params, dir), IsOk());
    auto model = LoadModel(dir);
    ASSERT_THAT(model.status(), IsOk());
    model_ = *std::move(model);
    backend_ = std::make_unique<CpuBackend>(2);
    auto cache = KvCache::Create(backend_.get(), model_->config, 32, 4);
    ASSERT_THAT(cache.status(), IsOk());
    cache_ = *std::move(cache);
    auto runner = ModelRunner::Create(model_->config, model_->weights, routing_, backend_.get(), cache_.get());
    ASSERT_THAT(runner.status(), IsOk());
    runner_ = *std::move(runner);
  }

  std::vector<int32_t> RandomTokens(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(model_->config.vocab_size));
    return t;
  }

  static SequenceInput In(std::span<const int32_t> tokens, int64_t start, std::span<const int32_t> table,
                          bool all_logits, RoutingParams routing = {}) {
    SequenceInput in;
    in.tokens = tokens;
    in.start_position = start;
    in.block_table = table;
    in.all_logits = all_logits;
    in.routing = routing;
    return in;
  }

  static void ExpectClose(const float* a, const float* b, int64_t n, const char* what) {
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_FALSE(std::isnan(a[i])) << what << " NaN at " << i;
      ASSERT_NEAR(a[i], b[i], 1e-4f * (1 + std::fabs(b[i]))) << what << " element " << i;
    }
  }

  ::adak::testing::TempDir tmp_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<CpuBackend> backend_;
  std::unique_ptr<KvCache> cache_;
  RoutingWeights routing_;
  std::unique_ptr<ModelRunner> runner_;
};

TEST_P(ModelRunnerTest, ChunkedPrefillAndDecodeMatchFullPrefill) {
  const auto tokens = RandomTokens(11, 1);
  const int64_t vocab = model_->config.vocab_size;
  const std::vector<int32_t> table_a = {0, 1, 2}, table_b = {7, 3, 9};  // scattered blocks
  ForwardResult full, step;
  SequenceInput in = In(tokens, 0, table_a, true);
  ASSERT_THAT(runner_->Forward({&in, 1}, {}, &full), IsOk());
  ASSERT_EQ(full.logits.size(), tokens.size() * static_cast<size_t>(vocab));

  // 5 tokens, then 4, then 2 single decodes, on other blocks.
  size_t pos = 0;
  for (size_t n : {5u, 4u, 1u, 1u}) {
    SequenceInput chunk =
        In(std::span<const int32_t>(tokens).subspan(pos, n), static_cast<int64_t>(pos), table_b, false);
    ASSERT_THAT(runner_->Forward({&chunk, 1}, {}, &step), IsOk());
    pos += n;
    ExpectClose(step.logits.data(), full.logits.data() + (pos - 1) * static_cast<size_t>(vocab), vocab, "chunk");
  }
}

TEST_P(ModelRunnerTest, BatchedSequencesMatchEachAlone) {
  const int64_t vocab = model_->config.vocab_size;
  const auto a = RandomTokens(6, 2), b = RandomTokens(9, 3), c = RandomTokens(1, 4);
  const std::vector<int32_t> ta = {0, 1}, tb = {2, 3, 4}, tc = {5};
  ForwardResult alone_a, alone_b, alone_c, batched;
  SequenceInput ia = In(a, 0, ta, true), ib = In(b, 0, tb, false), ic = In(c, 0, tc, true);
  ASSERT_THAT(runner_->Forward({&ia, 1}, {}, &alone_a), IsOk());
  ASSERT_THAT(runner_->Forward({&ib, 1}, {}, &alone_b), IsOk());
  ASSERT_THAT(runner_->Forward({&ic, 1}, {}, &alone_c), IsOk());
  const std::vector<SequenceInput> batch = {ia, ib, ic};
  ForwardOptions opts;
  opts.record_routing = true;
  ASSERT_THAT(runner_->Forward(batch, opts, &batched), IsOk());
  ASSERT_EQ(batched.logits_offset, (std::vector<int64_t>{0, 6, 7, 8}));
  ExpectClose(batched.logits.data(), alone_a.logits.data(), 6 * vocab, "sequence a");
  ExpectClose(batched.logits.data() + 6 * vocab, alone_b.logits.data(), vocab, "sequence b");
  ExpectClose(batched.logits.data() + 7 * vocab, alone_c.logits.data(), vocab, "sequence c");
  // Routing was recorded for every token of every MoE layer: native k valid experts, then empty slots.
  const int64_t k = model_->config.num_experts_per_tok, e = model_->config.num_experts;
  for (size_t l = 0; l < batched.routed_ids.size(); ++l) {
    ASSERT_EQ(batched.routed_ids[l].size(), static_cast<size_t>(16 * e));
    ASSERT_EQ(batched.routed_k[l].size(), 16u);
    if (!model_->config.moe_layers[l]) continue;
    for (int64_t t = 0; t < 16; ++t) {
      EXPECT_EQ(batched.routed_k[l][static_cast<size_t>(t)], k);
      for (int64_t j = 0; j < e; ++j) {
        const int32_t id = batched.routed_ids[l][static_cast<size_t>(t * e + j)];
        if (j < k) {
          EXPECT_GE(id, 0);
          EXPECT_LT(id, e);
        } else {
          EXPECT_EQ(id, -1);
        }
      }
    }
  }
}

TEST_P(ModelRunnerTest, RefusesMalformedBatches) {
  const std::vector<int32_t> table = {0, 1};
  const std::vector<int32_t> bad_id = {1, static_cast<int32_t>(model_->config.vocab_size)};
  ForwardResult r;
  SequenceInput in = In(bad_id, 0, table, false);
  EXPECT_THAT(runner_->Forward({&in, 1}, {}, &r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside the vocabulary")));
  const std::vector<int32_t> ok = {1, 2};
  in = In(ok, 63, table, false);
  EXPECT_THAT(runner_->Forward({&in, 1}, {}, &r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_position_embeddings 64")));
  const std::vector<int32_t> short_table = {0};
  in = In(ok, 3, short_table, false);
  EXPECT_THAT(runner_->Forward({&in, 1}, {}, &r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs 2")));
  const std::vector<int32_t> bad_block = {0, 99};
  in = In(ok, 3, bad_block, false);
  EXPECT_THAT(runner_->Forward({&in, 1}, {}, &r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("KV block 99")));
  EXPECT_THAT(runner_->Forward({}, {}, &r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty batch")));
}

// The recorded router inputs are what the router saw: softmax(W_router x) on the host picks the same experts.
TEST_P(ModelRunnerTest, RecordsRouterInputs) {
  const auto tokens = RandomTokens(5, 6);
  const std::vector<int32_t> table = {0, 1};
  ForwardOptions opts;
  opts.record_routing = true;
  opts.record_router_inputs = true;
  ForwardResult r;
  SequenceInput in = In(tokens, 0, table, false);
  ASSERT_THAT(runner_->Forward({&in, 1}, opts, &r), IsOk());
  const ModelConfig& c = model_->config;
  const int64_t h = c.hidden_size, e = c.num_experts;
  for (size_t l = 0; l < r.router_inputs.size(); ++l) {
    if (!c.moe_layers[l]) {
      EXPECT_TRUE(r.router_inputs[l].empty());
      continue;
    }
    ASSERT_EQ(r.router_inputs[l].size(), static_cast<size_t>(5 * h));
    const TensorView& router = model_->weights.layers[l].router;
    for (int64_t t = 0; t < 5; ++t) {
      std::vector<double> logit(static_cast<size_t>(e));
      for (int64_t j = 0; j < e; ++j) {
        for (int64_t i = 0; i < h; ++i) {
          logit[static_cast<size_t>(j)] +=
              static_cast<double>(kernels::LoadAsF32(router.data, router.dtype, j * h + i)) *
              r.router_inputs[l][static_cast<size_t>(t * h + i)];
        }
      }
      const int32_t best = static_cast<int32_t>(std::max_element(logit.begin(), logit.end()) - logit.begin());
      EXPECT_EQ(r.routed_ids[l][static_cast<size_t>(t * e)], best) << "layer " << l << " token " << t;
    }
  }
}

// Sampled Ada-K rollouts are reproducible per seed, and SetAllocator changes the routing in place.
TEST_P(ModelRunnerTest, SampledRolloutsAndAllocatorUpdates) {
  const ModelConfig& c = model_->config;
  const int64_t h = c.hidden_size, e = c.num_experts;
  RoutingWeights alloc;
  alloc.allocators.resize(1);
  alloc.allocators[0].layers.assign(static_cast<size_t>(c.num_layers), {});
  std::mt19937 rng(8);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (!c.moe_layers[static_cast<size_t>(l)]) continue;
    auto& w = alloc.allocators[0].layers[static_cast<size_t>(l)];
    w.resize(static_cast<size_t>(e * h));
    for (float& v : w) v = d(rng);
  }
  auto runner = ModelRunner::Create(c, model_->weights, alloc, backend_.get(), cache_.get());
  ASSERT_THAT(runner.status(), IsOk());
  const auto tokens = RandomTokens(12, 9);
  const std::vector<int32_t> table = {0, 1, 2};
  auto run = [&](uint64_t seed, bool sample) {
    RoutingParams routing;
    routing.policy = RoutingPolicy::kAdaK;
    routing.sample = sample;
    routing.seed = seed;
    SequenceInput in = In(tokens, 0, table, false, routing);
    ForwardResult r;
    EXPECT_THAT((*runner)->Forward({&in, 1}, {}, &r), IsOk());
    return r.routed_k;
  };
  EXPECT_EQ(run(1, true), run(1, true));
  EXPECT_NE(run(1, true), run(2, true));
  int64_t moe_layer = -1;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (!c.moe_layers[static_cast<size_t>(l)]) continue;
    moe_layer = l;
    std::vector<float> rows(static_cast<size_t>(e * h), 0.0f);
    ASSERT_THAT((*runner)->SetAllocator(0, l, rows), IsOk());
  }
  // All-zero rows tie: the lowest action wins, k = 1.
  const auto k_after = run(0, false);
  for (size_t l = 0; l < static_cast<size_t>(c.num_layers); ++l) {
    if (!c.moe_layers[l]) continue;
    for (int32_t k : k_after[l]) EXPECT_EQ(k, 1);
  }
  EXPECT_THAT((*runner)->SetAllocator(0, moe_layer, std::vector<float>(3, 0.0f)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs")));
  EXPECT_THAT(runner_->SetAllocator(0, moe_layer, std::vector<float>(static_cast<size_t>(e * h), 0.0f)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no allocator")));
  // The runner's allocator is version 1: it has no router weight or bias to set.
  EXPECT_THAT((*runner)->SetAllocatorExtras(0, moe_layer, std::vector<float>(static_cast<size_t>(e * e), 0.0f),
                                            std::vector<float>(static_cast<size_t>(e), 0.0f)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no version-2 allocator of profile 0")));
}

// SetAllocatorExtras on a version-2 allocator: the new bias steers the routing in place (with W = 0 and U = 0
// a bias favouring action a gives every token k = a + 1), wrong sizes and a missing profile are refused
// naming what was wrong, and a refused call leaves the routing as it was.
TEST_P(ModelRunnerTest, SetAllocatorExtrasSteersAVersion2Allocator) {
  const ModelConfig& c = model_->config;
  const int64_t h = c.hidden_size, e = c.num_experts;
  RoutingWeights alloc;
  alloc.allocators.resize(1);
  AllocatorProfile& p = alloc.allocators[0];
  p.version = 2;
  p.layers.assign(static_cast<size_t>(c.num_layers), {});
  p.router_weight.assign(static_cast<size_t>(c.num_layers), {});
  p.bias.assign(static_cast<size_t>(c.num_layers), {});
  int64_t moe_layer = -1;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (!c.moe_layers[static_cast<size_t>(l)]) continue;
    moe_layer = l;
    p.layers[static_cast<size_t>(l)].assign(static_cast<size_t>(e * h), 0.0f);
    p.router_weight[static_cast<size_t>(l)].assign(static_cast<size_t>(e * e), 0.0f);
    p.bias[static_cast<size_t>(l)].assign(static_cast<size_t>(e), 0.0f);
  }
  ASSERT_GE(moe_layer, 0);
  auto runner = ModelRunner::Create(c, model_->weights, alloc, backend_.get(), cache_.get());
  ASSERT_THAT(runner.status(), IsOk());
  const auto tokens = RandomTokens(10, 5);
  const std::vector<int32_t> table = {0, 1, 2};
  auto k_of_layer = [&](int64_t layer) {
    RoutingParams routing;
    routing.policy = RoutingPolicy::kAdaK;
    SequenceInput in = In(tokens, 0, table, false, routing);
    ForwardResult r;
    EXPECT_THAT((*runner)->Forward({&in, 1}, {}, &r), IsOk());
    return r.routed_k[static_cast<size_t>(layer)];
  };
  const int32_t want_k = static_cast<int32_t>(std::min<int64_t>(2, e));
  std::vector<float> bias(static_cast<size_t>(e), 0.0f);
  bias[static_cast<size_t>(want_k - 1)] = 10.0f;
  const std::vector<float> u(static_cast<size_t>(e * e), 0.0f);
  ASSERT_THAT((*runner)->SetAllocatorExtras(0, moe_layer, u, bias), IsOk());
  for (int32_t k : k_of_layer(moe_layer)) EXPECT_EQ(k, want_k);

  EXPECT_THAT((*runner)->SetAllocatorExtras(0, moe_layer, std::vector<float>(3, 0.0f), bias),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(StrCatStd("needs ", e * e, " + ", e, " values, got 3 + ", e))));
  EXPECT_THAT((*runner)->SetAllocatorExtras(0, moe_layer, u, std::vector<float>(static_cast<size_t>(e + 1), 1.0f)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(StrCatStd("got ", e * e, " + ", e + 1))));
  EXPECT_THAT((*runner)->SetAllocatorExtras(1, moe_layer, u, bias),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no version-2 allocator of profile 1")));
  EXPECT_THAT((*runner)->SetAllocatorExtras(0, c.num_layers, u, bias),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no version-2 allocator")));
  for (int32_t k : k_of_layer(moe_layer)) EXPECT_EQ(k, want_k);  // the refusals changed nothing
}

// A sampling mask that selects MoE layer j alone: layer j's k varies across seeds, every other layer takes
// its allocator's argmax on the states it sees (checked on the host from the recorded router inputs).
TEST_P(ModelRunnerTest, SampleMaskSamplesOnlyTheSelectedLayer) {
  const ModelConfig& c = model_->config;
  const int64_t h = c.hidden_size, e = c.num_experts;
  RoutingWeights alloc;
  alloc.allocators.resize(1);
  alloc.allocators[0].layers.assign(static_cast<size_t>(c.num_layers), {});
  std::mt19937 rng(8);
  std::normal_distribution<float> d(0.0f, 0.05f);  // flat enough that sampled k spreads
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (!c.moe_layers[static_cast<size_t>(l)]) continue;
    auto& w = alloc.allocators[0].layers[static_cast<size_t>(l)];
    w.resize(static_cast<size_t>(e * h));
    for (float& v : w) v = d(rng);
  }
  auto runner = ModelRunner::Create(c, model_->weights, alloc, backend_.get(), cache_.get());
  ASSERT_THAT(runner.status(), IsOk());
  const auto tokens = RandomTokens(24, 9);
  const std::vector<int32_t> table = {0, 1, 2, 3, 4, 5};
  ForwardOptions options;
  options.record_router_inputs = true;
  // The allocator's argmax k of every token of layer l from its recorded inputs (ties: fewer experts).
  auto argmax_k = [&](const ForwardResult& r, size_t l) {
    std::vector<int32_t> k;
    for (size_t t = 0; t < tokens.size(); ++t) {
      std::vector<double> logit(static_cast<size_t>(e), 0.0);
      for (int64_t a = 0; a < e; ++a) {
        for (int64_t i = 0; i < h; ++i) {
          logit[static_cast<size_t>(a)] +=
              static_cast<double>(alloc.allocators[0].layers[l][static_cast<size_t>(a * h + i)]) *
              r.router_inputs[l][t * static_cast<size_t>(h) + static_cast<size_t>(i)];
        }
      }
      k.push_back(static_cast<int32_t>(std::max_element(logit.begin(), logit.end()) - logit.begin()) + 1);
    }
    return k;
  };
  for (int64_t j = 0; j < c.num_layers; ++j) {
    if (!c.moe_layers[static_cast<size_t>(j)]) continue;
    std::set<std::vector<int32_t>> sampled_k;
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      RoutingParams routing;
      routing.policy = RoutingPolicy::kAdaK;
      routing.sample = true;
      routing.seed = seed;
      routing.sample_layers.reset();
      routing.sample_layers.set(static_cast<size_t>(j));
      SequenceInput in = In(tokens, 0, table, false, routing);
      ForwardResult r;
      ASSERT_THAT((*runner)->Forward({&in, 1}, options, &r), IsOk());
      for (size_t l = 0; l < static_cast<size_t>(c.num_layers); ++l) {
        if (!c.moe_layers[l] || static_cast<int64_t>(l) == j) continue;
        EXPECT_EQ(r.routed_k[l], argmax_k(r, l))
            << "layer " << l << " with only layer " << j << " sampling, seed " << seed;
      }
      sampled_k.insert(r.routed_k[static_cast<size_t>(j)]);
    }
    EXPECT_GT(sampled_k.size(), 1u) << "layer " << j << " samples its k";
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ModelRunnerTest,
                         ::testing::Values(Architecture::kMixtral, Architecture::kQwen2Moe, Architecture::kDeepseek,
                                           Architecture::kOlmoe, Architecture::kQwen3Moe),
                         [](const auto& info) {
                           std::string name(ArchitectureName(info.param));
                           return name.substr(0, name.find("For"));
                         });

}  // namespace
}  // namespace adak::engine
