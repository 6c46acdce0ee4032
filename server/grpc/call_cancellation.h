// CallCancellation: the scheduler requests one gRPC call owns, and whether the call was cancelled. The two
// arrive in either order -- a client may cancel before Admit has returned the request id -- and either way
// every request of a cancelled call is cancelled in the scheduler. Thread-safe; the cancel function runs
// outside the lock (the scheduler may hold its own lock while it calls the call's sinks).
#ifndef ADAK_SERVER_GRPC_CALL_CANCELLATION_H_
#define ADAK_SERVER_GRPC_CALL_CANCELLATION_H_

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/scheduler.h"

namespace adak::server {

class CallCancellation {
 public:
  // `cancel` ends one scheduler request (Scheduler::Cancel: idempotent, unknown ids ignored).
  explicit CallCancellation(std::function<void(uint64_t)> cancel) : cancel_(std::move(cancel)) {}

  CallCancellation(const CallCancellation&) = delete;
  CallCancellation& operator=(const CallCancellation&) = delete;

  // Records the call's requests (once, after they were admitted); cancels them at once when the call was
  // cancelled before.
  void SetIds(std::vector<uint64_t> ids);

  // Marks the call cancelled and cancels the requests recorded so far. Safe to call more than once.
  void Cancel();

  [[nodiscard]] bool cancelled() const;

 private:
  const std::function<void(uint64_t)> cancel_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> ids_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// The cancel function of a call whose requests live in `scheduler`.
std::function<void(uint64_t)> CancelIn(scheduler::Scheduler* scheduler);

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_CALL_CANCELLATION_H_
