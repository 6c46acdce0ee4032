#include "server/grpc/call_cancellation.h"

#include <utility>

namespace adak::server {
namespace {

// gRPC's deadline timer and absl::Now() may disagree by a little.
constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(20);

}  // namespace

scheduler::Scheduler::CancelReason CallCancellation::ReasonNow() const {
  return absl::Now() + kDeadlineSlack >= deadline_ ? scheduler::Scheduler::CancelReason::kDeadline
                                                   : scheduler::Scheduler::CancelReason::kClient;
}

void CallCancellation::SetIds(const std::vector<uint64_t>& ids) {
  scheduler::Scheduler::CancelReason reason;
  {
    absl::MutexLock lock(&mu_);
    ids_ = ids;
    if (!cancelled_) return;
    reason = reason_;
  }
  for (uint64_t id : ids) cancel_(id, reason);
}

void CallCancellation::Cancel() {
  std::vector<uint64_t> ids;
  const scheduler::Scheduler::CancelReason reason = ReasonNow();
  {
    absl::MutexLock lock(&mu_);
    if (!cancelled_) reason_ = reason;
    cancelled_ = true;
    ids = ids_;
  }
  for (uint64_t id : ids) cancel_(id, reason);
}

CallCancellation::CancelFn CancelIn(scheduler::Scheduler* scheduler) {
  return [scheduler](uint64_t id, scheduler::Scheduler::CancelReason reason) { scheduler->Cancel(id, reason); };
}

bool CallCancellation::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

}  // namespace adak::server
