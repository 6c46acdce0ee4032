#include "server/grpc/call_cancellation.h"

#include <utility>

namespace adak::server {

void CallCancellation::SetIds(std::vector<uint64_t> ids) {
  {
    absl::MutexLock lock(&mu_);
    ids_ = ids;
    if (!cancelled_) return;
  }
  for (uint64_t id : ids) cancel_(id);
}

void CallCancellation::Cancel() {
  std::vector<uint64_t> ids;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    ids = ids_;
  }
  for (uint64_t id : ids) cancel_(id);
}

std::function<void(uint64_t)> CancelIn(scheduler::Scheduler* scheduler) {
  return [scheduler](uint64_t id) { scheduler->Cancel(id); };
}

bool CallCancellation::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

}  // namespace adak::server
