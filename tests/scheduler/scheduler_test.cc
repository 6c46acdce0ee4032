// The scheduler end to end over the fake engine (tests/scheduler/fake_engine.h): continuous batching,
// chunked prefill, preemption, admission control, cancellation, deadlines, drain, stop conditions,
// logprobs, usage and the expert-compute budget.
#include "scheduler/scheduler.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/flops.h"
#include "tests/scheduler/fake_engine.h"
#include "tests/test_util.h"

namespace adak::scheduler {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using namespace ::adak::scheduler::testing;  // NOLINT: the fakes

struct Harness {
  explicit Harness(SchedulerOptions options = {}, int64_t num_blocks = 64, int64_t block_size = 4,
                   int64_t max_context = 256)
      : executor(num_blocks, block_size, max_context), tokenizer(MakeTestTokenizer()) {
    auto created = Scheduler::Create(&executor, tokenizer.get(), options, &clock, &observer);
    EXPECT_THAT(created, IsOk());
    if (created.ok()) scheduler = std::move(created).value();
  }
  std::shared_ptr<RecordingSink> Submit(GenerationRequest request, uint64_t* id = nullptr) {
    auto sink = std::make_shared<RecordingSink>();
    auto submitted = scheduler->Submit(std::move(request), sink);
    EXPECT_THAT(submitted, IsOk());
    if (id != nullptr && submitted.ok()) *id = *submitted;
    return sink;
  }

  FakeExecutor executor;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  FakeClock clock;
  RecordingObserver observer;
  std::unique_ptr<Scheduler> scheduler;
};

TEST(Scheduler, GreedyMatchesReferenceWithUsage) {
  Harness h;
  h.scheduler->Start();
  GenerationRequest request = Greedy(Prompt(10, 1), 12);
  request.return_routing_stats = true;
  auto sink = h.Submit(request);
  ASSERT_TRUE(sink->Wait());
  const std::vector<int32_t> expected = ReferenceGreedy(Prompt(10, 1), 12);
  EXPECT_THAT(sink->ids(), ElementsAreArray(expected));
  EXPECT_EQ(sink->text(), TextOf(expected));
  const FinalOutput final = sink->final();
  EXPECT_THAT(final.status, IsOk());
  EXPECT_EQ(final.reason, FinishReason::kLength);
  EXPECT_EQ(final.usage.prompt_tokens, 10);
  EXPECT_EQ(final.usage.completion_tokens, 12);
  // Every prompt token and every generated token but the last ran: 21 tokens x 2 layers x k = 2.
  EXPECT_EQ(final.usage.expert_activations, 21 * kLayers * kNativeK);
  EXPECT_DOUBLE_EQ(final.usage.expert_flops_saved, 0.0);
  EXPECT_GT(final.usage.expert_flops, 0.0);
  EXPECT_THAT(final.usage.mean_k_per_layer, ElementsAreArray({2.0, 2.0}));
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(h.scheduler->stats().kv_blocks_used, 0);
  // Idle: the thread sleeps, no step runs. The sleep is the behaviour under test (nothing happens for a
  // while), not synchronisation: there is no event to wait for.
  const int64_t steps = h.scheduler->stats().steps;
  absl::SleepFor(absl::Milliseconds(30));
  EXPECT_EQ(h.scheduler->stats().steps, steps);
  EXPECT_EQ(h.observer.first_tokens(), 1);
  EXPECT_EQ(h.observer.inter_tokens(), 11);
  ASSERT_EQ(h.observer.finished().size(), 1u);
  EXPECT_EQ(h.observer.finished()[0].generation_tokens, 12);
}

TEST(Scheduler, AdaKUsageCountsSavedFlops) {
  Harness h;
  h.executor.set_adak_k(1);
  h.scheduler->Start();
  GenerationRequest request = Greedy(Prompt(5, 2), 4);
  request.routing.policy = engine::RoutingPolicy::kAdaK;
  auto sink = h.Submit(request);
  ASSERT_TRUE(sink->Wait());
  const Usage usage = sink->final().usage;
  EXPECT_EQ(usage.expert_activations, 8 * kLayers * 1);
  EXPECT_NEAR(usage.expert_flops_saved, usage.expert_flops, 1e-6);  // half of native top-2
}

TEST(Scheduler, RequestsJoinAndLeaveEveryStep) {
  Harness h;
  h.executor.Gate();
  h.scheduler->Start();
  auto a = h.Submit(Greedy(Prompt(3, 1), 6));
  h.executor.Allow(3);             // a: prefill + 2 decodes
  h.executor.WaitBlockedAfter(3);  // a's 4th step is planned
  auto b = h.Submit(Greedy(Prompt(3, 2), 2));
  h.executor.Ungate();
  h.executor.Allow(100);
  ASSERT_TRUE(a->Wait());
  ASSERT_TRUE(b->Wait());
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));  // the last OnStep comes after the last OnFinish
  EXPECT_THAT(a->ids(), ElementsAreArray(ReferenceGreedy(Prompt(3, 1), 6)));
  EXPECT_THAT(b->ids(), ElementsAreArray(ReferenceGreedy(Prompt(3, 2), 2)));
  // a alone for 4 steps, then b's prefill joins a's decode, b leaves after 2 tokens, as does a (6 tokens).
  std::vector<int64_t> sequences;
  for (const StepStats& s : h.observer.steps()) sequences.push_back(s.num_sequences);
  EXPECT_THAT(sequences, ElementsAreArray({1, 1, 1, 1, 2, 2}));
  auto c = h.Submit(Greedy(Prompt(3, 3), 1));
  ASSERT_TRUE(c->Wait());
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(h.observer.steps().back().num_sequences, 1);
}

TEST(Scheduler, ChunkedPrefillKeepsDecodesRunning) {
  SchedulerOptions options;
  options.prefill_chunk = 16;
  Harness h(options);
  h.executor.Gate();
  h.scheduler->Start();
  auto decoding = h.Submit(Greedy(Prompt(4, 3), 40));
  h.executor.Allow(2);
  h.executor.WaitBlockedAfter(2);
  auto long_prompt = h.Submit(Greedy(Prompt(150, 4), 3));
  h.executor.Ungate();
  h.executor.Allow(1000);
  ASSERT_TRUE(decoding->Wait());
  ASSERT_TRUE(long_prompt->Wait());
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_THAT(decoding->ids(), ElementsAreArray(ReferenceGreedy(Prompt(4, 3), 40)));
  EXPECT_THAT(long_prompt->ids(), ElementsAreArray(ReferenceGreedy(Prompt(150, 4), 3)));
  // The 150-token prompt ran in ceil(150 / 16) = 10 chunks, each next to a decode of the first request.
  int64_t prefill_steps = 0;
  const std::vector<StepStats> steps = h.observer.steps();
  ASSERT_GT(steps.size(), 1u);
  EXPECT_EQ(steps[0].prefill_tokens, 4);  // the first request's own prompt
  for (size_t i = 1; i < steps.size(); ++i) {
    const StepStats& s = steps[i];
    EXPECT_LE(s.prefill_tokens, 16);
    if (s.prefill_tokens > 1) {
      ++prefill_steps;
      EXPECT_EQ(s.decode_tokens, 1) << "a prefill chunk ran without the running decode";
    }
  }
  EXPECT_EQ(prefill_steps, 10);
}

TEST(Scheduler, KvExhaustionPreemptsNewestAndOutputIsUnchanged) {
  // 24 blocks of 4 tokens = 96 positions; three sequences of 8 + 24 tokens need 3 x 8 = 24 blocks at their
  // end but only get there by preempting.
  SchedulerOptions options;
  options.limits.max_context = 40;
  Harness h(options, /*num_blocks=*/18, /*block_size=*/4, /*max_context=*/64);
  // All three are queued before the loop starts: submitted into a running scheduler, the first could finish
  // before the last arrives on a loaded machine, and nothing would need preempting.
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  sinks.reserve(3);
  for (int32_t i = 0; i < 3; ++i) sinks.push_back(h.Submit(Greedy(Prompt(8, 10 + i), 24)));
  h.scheduler->Start();
  for (int32_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(sinks[static_cast<size_t>(i)]->Wait());
    EXPECT_THAT(sinks[static_cast<size_t>(i)]->final().status, IsOk());
    EXPECT_THAT(sinks[static_cast<size_t>(i)]->ids(), ElementsAreArray(ReferenceGreedy(Prompt(8, 10 + i), 24)))
        << "request " << i;
    // Usage counts each position once, recompute or not.
    EXPECT_EQ(sinks[static_cast<size_t>(i)]->final().usage.expert_activations, 31 * kLayers * kNativeK);
  }
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_GT(h.scheduler->stats().preemptions, 0);
  int64_t preempted = 0;
  for (const StepStats& s : h.observer.steps()) preempted += s.preempted;
  EXPECT_EQ(preempted, h.scheduler->stats().preemptions);
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(h.scheduler->stats().kv_blocks_used, 0);
}

TEST(Scheduler, QueueFullIsResourceExhaustedWhileOthersFinish) {
  SchedulerOptions options;
  options.max_running_requests = 1;
  options.max_waiting_requests = 2;
  Harness h(options);
  auto a = h.Submit(Greedy(Prompt(4, 1), 5));
  auto b = h.Submit(Greedy(Prompt(4, 2), 5));
  auto refused = h.scheduler->Submit(Greedy(Prompt(4, 3), 5), std::make_shared<RecordingSink>());
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("max_waiting_requests = 2")));
  h.scheduler->Start();
  ASSERT_TRUE(a->Wait());
  ASSERT_TRUE(b->Wait());
  EXPECT_THAT(a->final().status, IsOk());
  EXPECT_THAT(b->final().status, IsOk());
  EXPECT_THAT(b->ids(), ElementsAreArray(ReferenceGreedy(Prompt(4, 2), 5)));
  // Room again once they ran.
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  auto c = h.Submit(Greedy(Prompt(4, 3), 5));
  ASSERT_TRUE(c->Wait());
  EXPECT_THAT(c->final().status, IsOk());
}

TEST(Scheduler, CancelFreesBlocksWithinOneStep) {
  Harness h;
  h.executor.Gate();
  h.scheduler->Start();
  uint64_t id = 0;
  auto sink = h.Submit(Greedy(Prompt(20, 1), 100), &id);
  h.executor.Allow(4);
  h.executor.WaitBlockedAfter(4);  // the 5th step is planned and waits
  EXPECT_GT(h.scheduler->stats().kv_blocks_used, 0);
  h.scheduler->Cancel(id);
  h.executor.Allow(1);  // the planned step may finish; the cancel takes effect at the next step boundary
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(h.executor.forwards(), 5);
  EXPECT_LE(sink->ids().size(), 5u);
  EXPECT_THAT(sink->final().status, StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_EQ(sink->final().reason, FinishReason::kCancelled);
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(h.scheduler->stats().kv_blocks_used, 0);
  h.scheduler->Cancel(id);     // finished: ignored
  h.scheduler->Cancel(12345);  // unknown: ignored
  h.executor.Ungate();
}

TEST(Scheduler, DeadlineExceededFreesBlocks) {
  Harness h;
  h.executor.Gate();
  h.scheduler->Start();
  GenerationRequest request = Greedy(Prompt(6, 1), 100);
  request.deadline = h.clock.Now() + absl::Seconds(10);
  auto sink = h.Submit(request);
  h.executor.Allow(3);
  h.executor.WaitBlockedAfter(3);
  h.clock.Advance(absl::Seconds(11));
  h.executor.Allow(1);  // the planned step finishes; the deadline hits at the next boundary
  ASSERT_TRUE(sink->Wait());
  EXPECT_THAT(sink->final().status, StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("deadline exceeded")));
  EXPECT_EQ(sink->final().reason, FinishReason::kDeadline);
  EXPECT_LE(sink->ids().size(), 4u);
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(h.scheduler->stats().kv_blocks_used, 0);
  h.executor.Ungate();
}

TEST(Scheduler, DrainFinishesInFlightAndRefusesNew) {
  Harness h;
  h.scheduler->Start();
  auto a = h.Submit(Greedy(Prompt(5, 1), 30));
  h.scheduler->BeginDrain();
  EXPECT_TRUE(h.scheduler->stats().draining);
  EXPECT_THAT(h.scheduler->Submit(Greedy(Prompt(5, 2), 3), std::make_shared<RecordingSink>()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("draining")));
  EXPECT_TRUE(h.scheduler->WaitIdle(absl::Seconds(10)));
  ASSERT_TRUE(a->finished());
  EXPECT_THAT(a->final().status, IsOk());
  EXPECT_EQ(a->ids().size(), 30u);
}

TEST(Scheduler, ShutdownEndsRemainingWithUnavailable) {
  Harness h;
  h.executor.Gate();
  h.scheduler->Start();
  auto running = h.Submit(Greedy(Prompt(5, 1), 50));
  h.executor.Allow(2);
  h.executor.WaitBlockedAfter(2);
  EXPECT_FALSE(h.scheduler->WaitIdle(absl::Milliseconds(20)));
  h.executor.Ungate();
  h.scheduler->Shutdown();
  ASSERT_TRUE(running->finished());
  const absl::Status status = running->final().status;
  // It may have finished its 50 tokens before the shutdown reached it; otherwise Unavailable.
  if (!status.ok()) {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
    EXPECT_EQ(running->final().reason, FinishReason::kCancelled);
  }
  EXPECT_THAT(h.scheduler->Submit(Greedy(Prompt(5, 2), 3), std::make_shared<RecordingSink>()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shut down")));
  h.scheduler->Shutdown();  // idempotent
}

TEST(Scheduler, ShutdownBeforeStartEndsQueued) {
  Harness h;
  auto queued = h.Submit(Greedy(Prompt(5, 1), 5));
  h.scheduler->Shutdown();
  ASSERT_TRUE(queued->finished());
  EXPECT_THAT(queued->final().status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  EXPECT_EQ(queued->final().reason, FinishReason::kCancelled);
}

TEST(Scheduler, StopStringAcrossTokensIsHeldBackAndCut) {
  const std::vector<int32_t> expected = ReferenceGreedy(Prompt(6, 5), 30);
  const std::string full = TextOf(expected);
  // A stop string spanning three tokens of the output, first occurring at `at` >= 5.
  size_t at = 5;
  while (at + 3 < full.size() && full.find(full.substr(at, 3)) != at) ++at;
  ASSERT_LT(at + 3, full.size()) << "pick another prompt: no fresh 3-token substring";
  const std::string stop = full.substr(at, 3);
  Harness h;
  h.scheduler->Start();
  GenerationRequest request = Greedy(Prompt(6, 5), 30);
  request.stop = {"zzzzzzzz", stop};
  auto sink = h.Submit(request);
  ASSERT_TRUE(sink->Wait());
  const FinalOutput final = sink->final();
  EXPECT_EQ(final.reason, FinishReason::kStop);
  EXPECT_EQ(final.matched_stop, stop);
  EXPECT_EQ(sink->text(), full.substr(0, at));
  EXPECT_EQ(sink->ids().size(), at + 3);  // the token completing the match is reported, its text is not
  // Streaming never released text that became part of the match.
  std::string streamed;
  for (const std::string& piece : sink->pieces()) {
    streamed += piece;
    EXPECT_EQ(full.substr(0, streamed.size()), streamed);
    EXPECT_LE(streamed.size(), at);
  }
}

TEST(Scheduler, StopTokenEndsWithoutText) {
  const std::vector<int32_t> expected = ReferenceGreedy(Prompt(6, 6), 20);
  const int32_t stop_id = expected[7];
  size_t first = 0;
  while (expected[first] != stop_id) ++first;
  Harness h;
  h.scheduler->Start();
  GenerationRequest request = Greedy(Prompt(6, 6), 20);
  request.stop_token_ids = {stop_id};
  auto sink = h.Submit(request);
  ASSERT_TRUE(sink->Wait());
  const FinalOutput final = sink->final();
  EXPECT_EQ(final.reason, FinishReason::kStop);
  ASSERT_TRUE(final.stop_token.has_value());
  EXPECT_EQ(*final.stop_token, stop_id);
  EXPECT_EQ(sink->text(), TextOf(std::span(expected).first(first)));
  EXPECT_EQ(final.usage.completion_tokens, static_cast<int64_t>(first) + 1);
}

// log-softmax reference.
std::vector<float> LogSoftmax(const std::vector<float>& logits) {
  double max = logits[0];
  for (float x : logits) max = std::max<double>(max, x);
  double sum = 0.0;
  for (float x : logits) sum += std::exp(x - max);
  std::vector<float> out;
  out.reserve(logits.size());
  for (float x : logits) out.push_back(static_cast<float>(x - max - std::log(sum)));
  return out;
}

TEST(Scheduler, LogprobsOfGeneratedTokens) {
  Harness h;
  h.scheduler->Start();
  GenerationRequest request = Greedy(Prompt(7, 8), 5);
  request.logprobs = 3;
  auto sink = h.Submit(request);
  ASSERT_TRUE(sink->Wait());
  std::vector<int32_t> context = Prompt(7, 8);
  const std::vector<TokenOutput> outputs = sink->outputs();
  ASSERT_EQ(outputs.size(), 5u);
  for (const TokenOutput& t : outputs) {
    const std::vector<float> ref = LogSoftmax(FakeLogits(context));
    EXPECT_NEAR(t.logprob, ref[static_cast<size_t>(t.id)], 1e-5);
    ASSERT_EQ(t.top.size(), 3u);
    EXPECT_EQ(t.top[0].id, t.id);  // greedy: the top token
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(t.top[i].logprob, ref[static_cast<size_t>(t.top[i].id)], 1e-5);
    EXPECT_GE(t.top[0].logprob, t.top[1].logprob);
    EXPECT_GE(t.top[1].logprob, t.top[2].logprob);
    context.push_back(t.id);
  }
}

TEST(Scheduler, PromptLogprobsOverChunksForScoring) {
  SchedulerOptions options;
  options.prefill_chunk = 5;  // the 23-token prompt runs in 5 chunks
  Harness h(options);
  h.scheduler->Start();
  GenerationRequest request = Greedy(Prompt(23, 9), 0);
  request.prompt_logprobs = true;
  request.logprobs = 2;
  auto sink = h.Submit(request);
  ASSERT_TRUE(sink->Wait());
  const FinalOutput final = sink->final();
  EXPECT_THAT(final.status, IsOk());
  EXPECT_TRUE(sink->ids().empty());
  const std::vector<int32_t> prompt = Prompt(23, 9);
  ASSERT_EQ(final.prompt_logprobs.size(), 22u);
  ASSERT_EQ(final.prompt_top_logprobs.size(), 22u);
  for (size_t i = 0; i + 1 < prompt.size(); ++i) {
    const std::vector<float> ref = LogSoftmax(FakeLogits(std::span(prompt).first(i + 1)));
    EXPECT_NEAR(final.prompt_logprobs[i], ref[static_cast<size_t>(prompt[i + 1])], 1e-5) << i;
    ASSERT_EQ(final.prompt_top_logprobs[i].size(), 2u);
  }
  EXPECT_EQ(final.usage.completion_tokens, 0);
  EXPECT_EQ(final.usage.prompt_tokens, 23);
}

TEST(Scheduler, ExpertBudgetPacksMoreAdaKTokensPerStep) {
  // Budget: 16 native tokens per step (16 x K=2 x 2 layers = 64 activations); the token limit is 64.
  auto max_prefill_batch = [](engine::RoutingPolicy policy, int64_t* steps) {
    SchedulerOptions options;
    options.max_batch_tokens = 64;
    options.prefill_chunk = 64;
    options.max_batch_expert_activations = 64;
    Harness h(options, /*num_blocks=*/128, /*block_size=*/4);
    h.executor.set_adak_k(1);
    h.scheduler->Start();
    GenerationRequest request = Greedy(Prompt(240, 1), 1);
    request.routing.policy = policy;
    auto sink = h.Submit(request);
    EXPECT_TRUE(sink->Wait());
    int64_t most = 0;
    for (int64_t t : h.executor.batch_tokens()) most = std::max(most, t);
    *steps = static_cast<int64_t>(h.executor.batch_tokens().size());
    return most;
  };
  int64_t topk_steps = 0, adak_steps = 0;
  const int64_t topk = max_prefill_batch(engine::RoutingPolicy::kTopK, &topk_steps);
  const int64_t adak = max_prefill_batch(engine::RoutingPolicy::kAdaK, &adak_steps);
  EXPECT_EQ(topk, 16);
  EXPECT_EQ(topk_steps, 15);
  // k = 1 costs half: once the moving average has seen it, a step packs up to 32 tokens.
  EXPECT_GE(adak, 28);
  EXPECT_LE(adak, 32);
  EXPECT_LT(adak_steps, topk_steps);
}

TEST(Scheduler, EngineErrorKeepsItsCode) {
  Harness h;
  h.scheduler->Start();
  h.executor.FailNext(absl::StatusCode::kResourceExhausted);
  auto failed = h.Submit(Greedy(Prompt(5, 1), 5));
  ASSERT_TRUE(failed->Wait());
  EXPECT_THAT(failed->final().status,
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("engine step failed: injected device failure")));
  EXPECT_EQ(failed->final().reason, FinishReason::kError);
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
}

TEST(Scheduler, EngineErrorFailsTheStepWithInternalAndGoesOn) {
  Harness h;
  h.scheduler->Start();
  h.executor.FailNext();
  auto failed = h.Submit(Greedy(Prompt(5, 1), 5));
  ASSERT_TRUE(failed->Wait());
  EXPECT_THAT(failed->final().status, StatusIs(absl::StatusCode::kInternal, HasSubstr("injected device failure")));
  EXPECT_EQ(failed->final().reason, FinishReason::kError);
  auto ok = h.Submit(Greedy(Prompt(5, 1), 5));
  ASSERT_TRUE(ok->Wait());
  EXPECT_THAT(ok->final().status, IsOk());
  EXPECT_THAT(ok->ids(), ElementsAreArray(ReferenceGreedy(Prompt(5, 1), 5)));
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(h.scheduler->stats().kv_blocks_used, 0);
}

TEST(Scheduler, InvalidRequestsNameTheField) {
  Harness h;
  auto submit = [&](GenerationRequest r) {
    return h.scheduler->Submit(std::move(r), std::make_shared<RecordingSink>());
  };
  EXPECT_THAT(submit(Greedy({}, 5)), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt")));
  EXPECT_THAT(submit(Greedy({1, 99}, 5)), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[0, 32)")));
  EXPECT_THAT(submit(Greedy({1}, 0)), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_tokens")));
  EXPECT_THAT(submit(Greedy({1}, 256)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt + max_tokens = 1 + 256 = 257")));
  GenerationRequest hot = Greedy({1}, 5);
  hot.sampling.temperature = -1.0f;
  EXPECT_THAT(submit(hot), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("temperature")));
  GenerationRequest many = Greedy({1}, 5);
  many.logprobs = 21;
  EXPECT_THAT(submit(many), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("logprobs")));
  GenerationRequest topp = Greedy({1}, 5);
  topp.routing.policy = engine::RoutingPolicy::kTopP;
  EXPECT_THAT(submit(topp), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("routing")));
  GenerationRequest null = Greedy({1}, 5);
  null.routing.policy = engine::RoutingPolicy::kNull;
  EXPECT_THAT(submit(null), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null-experts")));
  EXPECT_EQ(h.scheduler->stats().waiting, 0);
}

TEST(Scheduler, CreateRefusesBadOptions) {
  FakeExecutor executor(/*num_blocks=*/8, /*block_size=*/4, /*max_context=*/64);
  auto tokenizer = MakeTestTokenizer();
  FakeClock clock;
  SchedulerOptions options;
  EXPECT_THAT(Scheduler::Create(&executor, tokenizer.get(), options, &clock, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the KV cache holds 8 blocks")));
  options.limits.max_context = 32;
  EXPECT_THAT(Scheduler::Create(&executor, tokenizer.get(), options, &clock, nullptr), IsOk());
  options.max_batch_tokens = 0;
  EXPECT_THAT(Scheduler::Create(&executor, tokenizer.get(), options, &clock, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_batch_tokens")));
  options.max_batch_tokens = 8;
  options.limits.max_context = 65;
  EXPECT_THAT(Scheduler::Create(&executor, tokenizer.get(), options, &clock, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_context")));
}

TEST(Scheduler, PrefixCacheReusesFullPromptBlocks) {
  Harness h;  // blocks of 4
  h.scheduler->Start();
  const std::vector<int32_t> first = Prompt(22, 3);
  std::vector<int32_t> second(first.begin(), first.begin() + 18);  // blocks 0..3 equal, block 4 differs
  for (int32_t t : {30, 31, 30, 31, 30, 31}) second.push_back(t);
  auto a = h.Submit(Greedy(first, 6));
  ASSERT_TRUE(a->Wait());
  EXPECT_EQ(a->final().usage.cached_prompt_tokens, 0);
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  const size_t steps_before = h.executor.batch_tokens().size();

  auto b = h.Submit(Greedy(second, 6));
  ASSERT_TRUE(b->Wait());
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));
  EXPECT_THAT(b->ids(), ElementsAreArray(ReferenceGreedy(second, 6)));
  const Usage usage = b->final().usage;
  EXPECT_EQ(usage.cached_prompt_tokens, 16);
  // Usage is as if every token had run: 24 prompt + 5 generated tokens.
  EXPECT_EQ(usage.expert_activations, 29 * kLayers * kNativeK);
  // Only the 8 uncached prompt tokens ran in b's prefill.
  EXPECT_EQ(h.executor.batch_tokens()[steps_before], 8);
  EXPECT_EQ(h.scheduler->stats().prefix_cache_hit_tokens, 16);
  EXPECT_EQ(h.scheduler->stats().kv_blocks_used, 0);
  EXPECT_GT(h.scheduler->stats().kv_blocks_cached, 0);

  // The whole first prompt again: every full block but the one holding the last token is reused.
  auto again = h.Submit(Greedy(first, 6));
  ASSERT_TRUE(again->Wait());
  EXPECT_THAT(again->ids(), ElementsAreArray(a->ids()));
  EXPECT_EQ(again->final().usage.cached_prompt_tokens, 20);
  EXPECT_EQ(again->final().usage.expert_activations, a->final().usage.expert_activations);

  // Another routing policy changes the cache contents: no reuse.
  GenerationRequest adak = Greedy(first, 2);
  adak.routing.policy = engine::RoutingPolicy::kAdaK;
  auto other = h.Submit(adak);
  ASSERT_TRUE(other->Wait());
  EXPECT_EQ(other->final().usage.cached_prompt_tokens, 0);
  // Prompt logprobs need every prompt row: no reuse, and the values are right.
  GenerationRequest scoring = Greedy(first, 0);
  scoring.prompt_logprobs = true;
  auto scored = h.Submit(scoring);
  ASSERT_TRUE(scored->Wait());
  EXPECT_EQ(scored->final().usage.cached_prompt_tokens, 0);
  EXPECT_EQ(scored->final().prompt_logprobs.size(), 21u);
}

TEST(Scheduler, PrefixCachingCanBeTurnedOff) {
  SchedulerOptions options;
  options.enable_prefix_caching = false;
  Harness h(options);
  h.scheduler->Start();
  auto a = h.Submit(Greedy(Prompt(22, 3), 3));
  ASSERT_TRUE(a->Wait());
  auto b = h.Submit(Greedy(Prompt(22, 3), 3));
  ASSERT_TRUE(b->Wait());
  EXPECT_EQ(b->final().usage.cached_prompt_tokens, 0);
  EXPECT_EQ(h.scheduler->stats().prefix_cache_hit_tokens, 0);
  EXPECT_EQ(h.scheduler->stats().kv_blocks_cached, 0);
}

TEST(Scheduler, SampledRequestsWithSeedsAreReproducible) {
  auto run = [](uint64_t seed) {
    Harness h;
    h.scheduler->Start();
    std::vector<std::shared_ptr<RecordingSink>> sinks;
    for (int i = 0; i < 4; ++i) {
      GenerationRequest r = Greedy(Prompt(5, i), 10);
      r.sampling.temperature = 1.0f;
      r.sampling.seed = seed + static_cast<uint64_t>(i);
      sinks.push_back(h.Submit(r));
    }
    std::vector<std::vector<int32_t>> ids;
    for (auto& s : sinks) {
      EXPECT_TRUE(s->Wait());
      ids.push_back(s->ids());
    }
    return ids;
  };
  EXPECT_EQ(run(7), run(7));
}

// The FLOPs a step reports and a request's usage are engine::FlopCounter's over the same routed k: a top-K
// request at native K = 2 and an Ada-K request at k = 1 run together, 8 tokens each (5 prompt + 3 decodes).
TEST(Scheduler, StepAndUsageFlopsAreFlopCounters) {
  Harness h;
  h.executor.set_adak_k(1);
  h.scheduler->Start();
  GenerationRequest adak = Greedy(Prompt(5, 2), 4);
  adak.routing.policy = engine::RoutingPolicy::kAdaK;
  auto a = h.Submit(adak);
  auto b = h.Submit(Greedy(Prompt(5, 3), 4));
  ASSERT_TRUE(a->Wait());
  ASSERT_TRUE(b->Wait());
  ASSERT_TRUE(h.scheduler->WaitIdle(absl::Seconds(5)));  // the last step's OnStep follows the last finish
  const engine::ModelConfig& config = h.executor.config();
  const auto routed = [](int32_t k) { return std::vector<std::vector<int32_t>>(kLayers, std::vector<int32_t>(8, k)); };
  engine::FlopCounter adak_flops(config), topk_flops(config), both(config);
  adak_flops.Add(routed(1));
  topk_flops.Add(routed(static_cast<int32_t>(kNativeK)));
  both.Add(routed(1));
  both.Add(routed(static_cast<int32_t>(kNativeK)));
  EXPECT_EQ(a->final().usage.expert_flops, static_cast<double>(adak_flops.expert_flops()));
  EXPECT_EQ(a->final().usage.expert_flops_saved, static_cast<double>(adak_flops.expert_flops_saved()));
  EXPECT_EQ(b->final().usage.expert_flops, static_cast<double>(topk_flops.expert_flops()));
  EXPECT_EQ(b->final().usage.expert_flops_saved, 0.0);
  double step_flops = 0.0, step_saved = 0.0;
  int64_t step_tokens = 0;
  for (const StepStats& step : h.observer.steps()) {
    step_flops += step.expert_flops;
    step_saved += step.expert_flops_saved;
    step_tokens += step.batch_tokens;
  }
  EXPECT_EQ(step_tokens, 16);
  EXPECT_EQ(step_flops, static_cast<double>(both.expert_flops()));
  EXPECT_EQ(step_saved, static_cast<double>(both.expert_flops_saved()));
  EXPECT_GT(step_saved, 0.0);
}

}  // namespace
}  // namespace adak::scheduler
