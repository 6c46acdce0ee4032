// The scheduler over the real engine (the project's own models/stories-moe-small with its trained Ada-K
// allocator; nothing outside the repository): concurrent greedy requests with different prompt lengths and
// mixed routing policies (top-K and Ada-K in one batch) produce exactly the tokens greedy decoding gives
// each alone on a Session (testing/greedy_decode.h), also when a tiny KV cache forces preemption and
// recompute.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/cpu_backend.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/model_runner.h"
#include "engine/routing_weights.h"
#include "engine/session.h"
#include "scheduler/scheduler.h"
#include "testing/greedy_decode.h"
#include "tests/scheduler/fake_engine.h"
#include "tests/test_util.h"

namespace adak::scheduler {
namespace {

using ::adak::testing::IsOk;
using ::testing::ElementsAreArray;
using testing::RecordingObserver;
using testing::RecordingSink;

constexpr const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. One day, "
    "she saw a big red ball in the park. She ran to it and kicked it very hard. The ball flew over the fence "
    "and into the garden of an old man. Lily was scared, but she went to the old man's house and knocked on "
    "the door.";

struct Case {
  std::vector<int32_t> prompt;
  engine::RoutingParams routing;
  int64_t max_tokens = 0;
  std::vector<int32_t> expected;  // GreedyDecode alone
  std::string expected_text;
};

class SchedulerEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = engine::LoadModel(::adak::testing::DefaultModelDir());
    ASSERT_THAT(model, IsOk());
    model_ = std::move(model).value();
    ASSERT_THAT(engine::LoadAllocator(::adak::testing::DefaultAllocator(), model_->config, &routing_), IsOk());
  }

  // Prompts of different lengths, alternating top-K and Ada-K, with their solo references.
  std::vector<Case> MakeCases(int n, int64_t max_tokens) {
    auto ids = model_->tokenizer->Encode(kStory);
    EXPECT_THAT(ids, IsOk());
    std::vector<Case> cases;
    engine::SessionOptions options;
    options.num_threads = 2;
    auto session = engine::Session::Create(*model_, options, routing_);
    EXPECT_THAT(session, IsOk());
    for (int i = 0; i < n; ++i) {
      Case c;
      const size_t len = std::min<size_t>(ids->size(), static_cast<size_t>(3 + 7 * i));
      c.prompt.assign(ids->begin(), ids->begin() + static_cast<std::ptrdiff_t>(len));
      c.routing.policy = i % 2 == 0 ? engine::RoutingPolicy::kTopK : engine::RoutingPolicy::kAdaK;
      c.max_tokens = max_tokens;
      ::adak::testing::GreedyDecodeParams g;
      g.max_tokens = max_tokens;
      g.routing = c.routing;
      auto result = ::adak::testing::GreedyDecode(**session, c.prompt, g);
      EXPECT_THAT(result, IsOk());
      c.expected = result->output_ids;
      c.expected_text = result->text;
      cases.push_back(std::move(c));
    }
    return cases;
  }

  // The real engine under a scheduler: a 2-thread CPU backend, a KV cache of `num_blocks` blocks of 16
  // tokens, the model runner and its step executor.
  struct EngineStack {
    engine::CpuBackend backend{2};
    std::unique_ptr<engine::KvCache> cache;
    std::unique_ptr<engine::ModelRunner> runner;
    std::unique_ptr<StepExecutor> executor;
  };
  void BuildEngine(int64_t num_blocks, EngineStack* stack) {
    auto cache = engine::KvCache::Create(&stack->backend, model_->config, num_blocks, 16);
    ASSERT_THAT(cache, IsOk());
    stack->cache = std::move(cache).value();
    auto runner =
        engine::ModelRunner::Create(model_->config, model_->weights, routing_, &stack->backend, stack->cache.get());
    ASSERT_THAT(runner, IsOk());
    stack->runner = std::move(runner).value();
    stack->executor = MakeRunnerExecutor(stack->runner.get());
  }

  // Runs every case concurrently through a scheduler over a KV cache of `num_blocks` blocks of 16.
  void RunConcurrently(const std::vector<Case>& cases, int64_t num_blocks, int64_t max_context, int64_t* preemptions,
                       int rounds = 1, int64_t* cache_hits = nullptr) {
    EngineStack stack;
    ASSERT_NO_FATAL_FAILURE(BuildEngine(num_blocks, &stack));
    SchedulerOptions options;
    options.max_batch_tokens = 64;
    options.prefill_chunk = 24;
    options.limits.max_context = max_context;
    RecordingObserver observer;
    auto scheduler = Scheduler::Create(stack.executor.get(), model_->tokenizer.get(), options, nullptr, &observer);
    ASSERT_THAT(scheduler, IsOk());
    for (int round = 0; round < rounds; ++round) {
      std::vector<std::shared_ptr<RecordingSink>> sinks;
      for (const Case& c : cases) {
        GenerationRequest r;
        r.prompt_ids = c.prompt;
        r.max_tokens = c.max_tokens;
        r.routing = c.routing;
        auto sink = std::make_shared<RecordingSink>();
        ASSERT_THAT((*scheduler)->Submit(r, sink), IsOk());
        sinks.push_back(sink);
      }
      // The first round is queued whole before the loop starts, so the requests really overlap (on a loaded
      // machine the first could otherwise finish before the last is submitted).
      if (round == 0) (*scheduler)->Start();
      for (size_t i = 0; i < cases.size(); ++i) {
        ASSERT_TRUE(sinks[i]->Wait(absl::Seconds(120)));
        const FinalOutput final = sinks[i]->final();
        ASSERT_THAT(final.status, IsOk());
        std::vector<int32_t> ids = sinks[i]->ids();
        if (final.stop_token.has_value()) ids.pop_back();  // GreedyDecode does not report the eos token
        EXPECT_THAT(ids, ElementsAreArray(cases[i].expected))
            << "request " << i << " (" << cases[i].prompt.size() << " prompt tokens, "
            << engine::RoutingPolicyName(cases[i].routing.policy) << ")";
        EXPECT_EQ(sinks[i]->text(), cases[i].expected_text) << "request " << i << " round " << round;
      }
      ASSERT_TRUE((*scheduler)->WaitIdle(absl::Seconds(10)));
    }
    if (cache_hits != nullptr) *cache_hits = (*scheduler)->stats().prefix_cache_hit_tokens;
    EXPECT_EQ((*scheduler)->stats().kv_blocks_used, 0);
    *preemptions = (*scheduler)->stats().preemptions;
    bool mixed = false;
    for (const StepStats& s : observer.steps())
      mixed |= s.num_sequences > 1 && s.prefill_tokens > 0 && s.decode_tokens > 0;
    EXPECT_TRUE(mixed) << "no step mixed prefill chunks with decodes";
  }

  std::unique_ptr<engine::Model> model_;
  engine::RoutingWeights routing_;
};

TEST_F(SchedulerEngineTest, ConcurrentGreedyMatchesGenerateAlone) {
  const std::vector<Case> cases = MakeCases(8, 24);
  int64_t preemptions = 0;
  RunConcurrently(cases, /*num_blocks=*/256, /*max_context=*/512, &preemptions);
  EXPECT_EQ(preemptions, 0);
}

// Logprobs of every generated token are bitwise the same whether a request runs alone or among 31 others:
// the engine's numerics do not depend on the batch composition.
TEST_F(SchedulerEngineTest, LogprobsAreBatchInvariant) {
  const std::vector<Case> cases = MakeCases(32, 16);
  auto run = [&](const std::vector<size_t>& which, std::vector<std::vector<TokenOutput>>* outputs) {
    EngineStack stack;
    ASSERT_NO_FATAL_FAILURE(BuildEngine(512, &stack));
    SchedulerOptions options;
    options.max_batch_tokens = 128;
    options.prefill_chunk = 32;
    auto scheduler = Scheduler::Create(stack.executor.get(), model_->tokenizer.get(), options, nullptr, nullptr);
    ASSERT_THAT(scheduler, IsOk());
    (*scheduler)->Start();
    std::vector<std::shared_ptr<RecordingSink>> sinks;
    for (size_t i : which) {
      GenerationRequest r;
      r.prompt_ids = cases[i].prompt;
      r.max_tokens = cases[i].max_tokens;
      r.routing = cases[i].routing;
      r.logprobs = 2;
      sinks.push_back(std::make_shared<RecordingSink>());
      ASSERT_THAT((*scheduler)->Submit(r, sinks.back()), IsOk());
    }
    for (auto& sink : sinks) {
      ASSERT_TRUE(sink->Wait(absl::Seconds(120)));
      outputs->push_back(sink->outputs());
    }
  };
  std::vector<size_t> all;
  for (size_t i = 0; i < cases.size(); ++i) all.push_back(i);
  std::vector<std::vector<TokenOutput>> together;
  run(all, &together);
  ASSERT_EQ(together.size(), cases.size());
  for (size_t i : {size_t{0}, size_t{5}, size_t{17}, size_t{31}}) {
    std::vector<std::vector<TokenOutput>> alone;
    run({i}, &alone);
    ASSERT_EQ(alone.size(), 1u);
    ASSERT_EQ(alone[0].size(), together[i].size()) << "request " << i;
    for (size_t t = 0; t < alone[0].size(); ++t) {
      EXPECT_EQ(alone[0][t].id, together[i][t].id) << "request " << i << " token " << t;
      EXPECT_EQ(alone[0][t].logprob, together[i][t].logprob) << "request " << i << " token " << t;
      ASSERT_EQ(alone[0][t].top.size(), 2u);
      EXPECT_EQ(alone[0][t].top[1].logprob, together[i][t].top[1].logprob) << "request " << i << " token " << t;
    }
  }
}

// The second round is served mostly from the prefix cache (KV written by other requests, in other batch
// shapes) and still matches GreedyDecode alone.
TEST_F(SchedulerEngineTest, PrefixCacheKeepsOutputs) {
  const std::vector<Case> cases = MakeCases(8, 16);
  int64_t preemptions = 0, hits = 0;
  RunConcurrently(cases, /*num_blocks=*/256, /*max_context=*/512, &preemptions, /*rounds=*/2, &hits);
  EXPECT_GE(hits, 64);
}

// The expert budget measured on the real engine: under the same budget (16 native tokens per step), Ada-K
// routing clamped to k = 1 (max_k = 1) packs about twice the prompt tokens per step once the moving
// average has seen its routing, and needs fewer steps for the same prompts.
TEST_F(SchedulerEngineTest, ExpertBudgetPacksMoreAdaKTokens) {
  auto ids = model_->tokenizer->Encode(kStory);
  ASSERT_THAT(ids, IsOk());
  auto run = [&](const engine::RoutingParams& routing, int64_t* steps, int64_t* mean_k_x1000) {
    EngineStack stack;
    ASSERT_NO_FATAL_FAILURE(BuildEngine(64, &stack));
    SchedulerOptions options;
    options.max_batch_tokens = 64;
    options.prefill_chunk = 64;
    options.max_batch_expert_activations = 16.0 * 2 * 4;  // 16 tokens x K = 2 x 4 MoE layers
    options.enable_prefix_caching = false;
    RecordingObserver observer;
    auto scheduler = Scheduler::Create(stack.executor.get(), model_->tokenizer.get(), options, nullptr, &observer);
    ASSERT_THAT(scheduler, IsOk());
    (*scheduler)->Start();
    std::vector<std::shared_ptr<RecordingSink>> sinks;
    for (int i = 0; i < 4; ++i) {
      GenerationRequest r;
      r.prompt_ids.assign(ids->begin() + i, ids->end());
      r.max_tokens = 1;
      r.routing = routing;
      r.return_routing_stats = true;
      sinks.push_back(std::make_shared<RecordingSink>());
      ASSERT_THAT((*scheduler)->Submit(r, sinks.back()), IsOk());
    }
    for (auto& sink : sinks) ASSERT_TRUE(sink->Wait(absl::Seconds(60)));
    ASSERT_TRUE((*scheduler)->WaitIdle(absl::Seconds(10)));
    int64_t most = 0;
    for (const StepStats& s : observer.steps()) most = std::max(most, s.batch_tokens);
    *steps = static_cast<int64_t>(observer.steps().size());
    *mean_k_x1000 = static_cast<int64_t>(1000 * sinks[0]->final().usage.mean_k_per_layer[0]);
    std::printf("%s: %lld steps, at most %lld tokens per step, mean k (layer 0) %.3f\n",
                std::string(engine::RoutingPolicyName(routing.policy)).c_str(), static_cast<long long>(*steps),
                static_cast<long long>(most), *mean_k_x1000 / 1000.0);
    EXPECT_LE(most, 64);
  };
  engine::RoutingParams topk;
  engine::RoutingParams adak;
  adak.policy = engine::RoutingPolicy::kAdaK;
  adak.max_k = 1;
  int64_t topk_steps = 0, adak_steps = 0, topk_k = 0, adak_k = 0;
  run(topk, &topk_steps, &topk_k);
  run(adak, &adak_steps, &adak_k);
  EXPECT_EQ(topk_k, 2000);
  EXPECT_EQ(adak_k, 1000);
  EXPECT_LT(adak_steps * 4, topk_steps * 3) << "k = 1 should need clearly fewer steps under the expert budget";
}

TEST_F(SchedulerEngineTest, PreemptionUnderATinyKvCacheKeepsOutputs) {
  const std::vector<Case> cases = MakeCases(6, 32);
  int64_t preemptions = 0;
  // 8 blocks of 16 = 128 positions for six sequences of up to 38 + 32 tokens.
  RunConcurrently(cases, /*num_blocks=*/8, /*max_context=*/128, &preemptions);
  EXPECT_GT(preemptions, 0);
}

}  // namespace
}  // namespace adak::scheduler
