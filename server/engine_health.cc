#include "server/engine_health.h"

namespace adak::server {

void EngineHealthObserver::OnStep(const scheduler::StepStats& step) {
  if (inner_ != nullptr) inner_->OnStep(step);
}

void EngineHealthObserver::OnFirstToken(absl::Duration time_to_first_token) {
  if (inner_ != nullptr) inner_->OnFirstToken(time_to_first_token);
}

void EngineHealthObserver::OnInterToken(absl::Duration latency) {
  if (inner_ != nullptr) inner_->OnInterToken(latency);
}

void EngineHealthObserver::OnRequestFinished(const scheduler::RequestStats& request) {
  // Internal is the scheduler's code for a failed engine step only (everything else ends OK, Cancelled,
  // DeadlineExceeded or Unavailable), so it is the device-failure signal.
  if (request.code == absl::StatusCode::kInternal) state_->MarkEngineFailed();
  if (inner_ != nullptr) inner_->OnRequestFinished(request);
}

}  // namespace adak::server
