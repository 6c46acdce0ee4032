// A serving stack without model files for the server tests: the scheduler's fake engine
// (tests/scheduler/fake_engine.h: 32-token character vocabulary, 4 experts, top-2, an allocator, no null
// experts), a Model holding its config and tokenizer, and a ServiceContext over them. With `scheduler`
// the context gets a real Scheduler (real clock) driving the fake engine behind an EngineHealthObserver,
// so a FailNext() on the engine is a device failure of the next step. Header-only; not thread-safe
// (set up and torn down by one test thread).
#ifndef ADAK_TESTS_SERVER_FAKE_SERVING_H_
#define ADAK_TESTS_SERVER_FAKE_SERVING_H_

#include <memory>
#include <utility>

#include "engine/model.h"
#include "engine/routing.h"
#include "gtest/gtest.h"
#include "scheduler/clock.h"
#include "scheduler/scheduler.h"
#include "server/engine_health.h"
#include "server/service_context.h"
#include "server/serving_state.h"
#include "tests/scheduler/fake_engine.h"

namespace adak::server::testing {

struct FakeServing {
  explicit FakeServing(bool with_scheduler) : executor(/*num_blocks=*/256, /*block_size=*/4) {
    model.dir = "fake-model";
    model.config = executor.config();
    model.tokenizer = scheduler::testing::MakeTestTokenizer();
    routing_weights = executor.routing_weights();
    context.model = &model;
    context.routing_weights = &routing_weights;
    context.model_name = "fake-model";
    context.default_routing = engine::RoutingParams{.policy = engine::RoutingPolicy::kTopK};
    context.state = &state;
    if (!with_scheduler) return;
    auto created = scheduler::Scheduler::Create(&executor, model.tokenizer.get(), scheduler::SchedulerOptions{},
                                                scheduler::RealClock::Get(), &observer);
    EXPECT_TRUE(created.ok()) << created.status();
    if (created.ok()) sched = std::move(created).value();
    context.scheduler = sched.get();
  }
  ~FakeServing() {
    if (sched != nullptr) sched->Shutdown();
  }

  scheduler::testing::FakeExecutor executor;
  engine::Model model;
  engine::RoutingWeights routing_weights;
  ServingState state;
  scheduler::testing::RecordingObserver inner;  // what EngineHealthObserver forwards to
  EngineHealthObserver observer{&state, &inner};
  std::unique_ptr<scheduler::Scheduler> sched;
  ServiceContext context;
};

}  // namespace adak::server::testing

#endif  // ADAK_TESTS_SERVER_FAKE_SERVING_H_
