// Many concurrent requests through a small KV cache with random prompt lengths, policies, stop strings
// and cancellations, submitted from several threads: every request ends exactly once, completed ones
// produce exactly their solo reference, and every KV block is back at the end. Seeds are fixed and logged.
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "scheduler/scheduler.h"
#include "tests/scheduler/fake_engine.h"
#include "tests/test_util.h"

namespace adak::scheduler {
namespace {

using ::adak::testing::IsOk;
using namespace ::adak::scheduler::testing;  // NOLINT: the fakes

TEST(SchedulerStress, RandomWorkloadUnderKvPressure) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    FakeExecutor executor(/*num_blocks=*/24, /*block_size=*/4, /*max_context=*/96);
    executor.set_adak_k(1);
    auto tokenizer = MakeTestTokenizer();
    RecordingObserver observer;
    SchedulerOptions options;
    options.max_batch_tokens = 24;
    options.prefill_chunk = 8;
    options.max_running_requests = 6;
    options.max_waiting_requests = 1000;
    options.max_batch_expert_activations = 60;
    options.limits.max_context = 64;
    auto scheduler = Scheduler::Create(&executor, tokenizer.get(), options, nullptr, &observer);
    ASSERT_THAT(scheduler, IsOk());
    (*scheduler)->Start();

    constexpr int kThreads = 3, kPerThread = 20;
    struct Submitted {
      GenerationRequest request;
      std::shared_ptr<RecordingSink> sink;
      uint64_t id = 0;
      bool cancelled = false;
    };
    std::vector<std::vector<Submitted>> all(kThreads);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(seed * 100 + static_cast<uint32_t>(t));
        for (int i = 0; i < kPerThread; ++i) {
          Submitted s;
          s.request = Greedy(Prompt(1 + static_cast<int64_t>(rng() % 30), static_cast<int32_t>(rng() % 1000)),
                             1 + static_cast<int64_t>(rng() % 30));
          if (rng() % 2) s.request.routing.policy = engine::RoutingPolicy::kAdaK;
          s.sink = std::make_shared<RecordingSink>();
          auto id = (*scheduler)->Submit(s.request, s.sink);
          ASSERT_THAT(id, IsOk());
          s.id = *id;
          if (rng() % 5 == 0) {
            // A random delay before the cancel is the behaviour under test, not synchronisation: it lands
            // the cancel at random points of the request's life (queued, prefilling, decoding, finished).
            absl::SleepFor(absl::Microseconds(rng() % 300));
            (*scheduler)->Cancel(s.id);
            s.cancelled = true;
          }
          all[static_cast<size_t>(t)].push_back(std::move(s));
        }
      });
    }
    for (auto& th : threads) th.join();
    int completed = 0;
    for (auto& per_thread : all) {
      for (Submitted& s : per_thread) {
        if (!s.sink->Wait(absl::Seconds(30))) {
          const SchedulerStats st = (*scheduler)->stats();
          // A request that never ends: the scheduler's state says whether it still steps.
          ADD_FAILURE() << "request " << s.id << " did not end within 30 s: prompt " << s.request.prompt_ids.size()
                        << " max_tokens " << s.request.max_tokens << " cancelled " << s.cancelled << " policy "
                        << static_cast<int>(s.request.routing.policy) << " tokens so far " << s.sink->ids().size()
                        << " | running " << st.running << " waiting " << st.waiting << " kv used " << st.kv_blocks_used
                        << "/" << st.kv_blocks_total << " cached " << st.kv_blocks_cached << " steps " << st.steps
                        << " preemptions " << st.preemptions;
          return;
        }
        const FinalOutput final = s.sink->final();
        if (final.status.ok()) {
          ++completed;
          EXPECT_EQ(s.sink->ids(), ReferenceGreedy(s.request.prompt_ids, s.request.max_tokens));
          EXPECT_EQ(s.sink->text(), TextOf(s.sink->ids()));
        } else {
          EXPECT_TRUE(s.cancelled) << final.status;
          EXPECT_EQ(final.status.code(), absl::StatusCode::kCancelled);
        }
      }
    }
    EXPECT_GT(completed, kThreads * kPerThread / 2);
    ASSERT_TRUE((*scheduler)->WaitIdle(absl::Seconds(10)));
    const SchedulerStats stats = (*scheduler)->stats();
    EXPECT_EQ(stats.kv_blocks_used, 0);
    EXPECT_EQ(stats.running, 0);
    EXPECT_EQ(stats.waiting, 0);
    EXPECT_EQ(observer.finished().size(), static_cast<size_t>(kThreads * kPerThread));
    for (const StepStats& step : observer.steps()) {
      EXPECT_LE(step.batch_tokens, 24);
      EXPECT_LE(step.kv_cache_usage, 1.0);
    }
    std::printf("seed %u: %zu steps, %lld preemptions, %lld prefix-cache hit tokens, %d of %d completed\n", seed,
                observer.steps().size(), static_cast<long long>(stats.preemptions),
                static_cast<long long>(stats.prefix_cache_hit_tokens), completed, kThreads * kPerThread);
  }
}

}  // namespace
}  // namespace adak::scheduler
