// EngineHealthObserver: how the server learns that the engine failed.
//
// The scheduler reports a failed engine step (a device error: StepExecutor::Forward returned an error) by
// ending every request of that step with Internal ("engine step failed: ...", reason kError) through each
// request's sink and through SchedulerObserver::OnRequestFinished (scheduler/scheduler.cc, FailStep). This
// observer sits between the scheduler and the metrics: it forwards every event to `inner` unchanged and, on
// the first request that finishes with Internal, marks the ServingState's engine failed, which turns
// readiness NOT_SERVING (grpc.health.v1 "adak.v1.Generation", /readyz 503) and refuses new calls. The
// failing requests keep their Internal status (gRPC INTERNAL, HTTP 500).
//
// Thread-safety: the callbacks run on the scheduler thread (as SchedulerObserver requires); `state` and
// `inner` are thread-safe. REQUIRES: `state` and `inner` (may be null) outlive the observer.
#ifndef ADAK_SERVER_ENGINE_HEALTH_H_
#define ADAK_SERVER_ENGINE_HEALTH_H_

#include "absl/time/time.h"
#include "scheduler/observer.h"
#include "server/serving_state.h"

namespace adak::server {

class EngineHealthObserver final : public scheduler::SchedulerObserver {
 public:
  EngineHealthObserver(ServingState* state, scheduler::SchedulerObserver* inner) : state_(state), inner_(inner) {}
  EngineHealthObserver(const EngineHealthObserver&) = delete;
  EngineHealthObserver& operator=(const EngineHealthObserver&) = delete;

  void OnStep(const scheduler::StepStats& step) override;
  void OnFirstToken(absl::Duration time_to_first_token) override;
  void OnInterToken(absl::Duration latency) override;
  void OnRequestFinished(const scheduler::RequestStats& request) override;

 private:
  ServingState* const state_;
  scheduler::SchedulerObserver* const inner_;
};

}  // namespace adak::server

#endif  // ADAK_SERVER_ENGINE_HEALTH_H_
