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
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "scheduler/scheduler.h"

namespace adak::server {

class CallCancellation {
 public:
  using CancelFn = std::function<void(uint64_t, scheduler::Scheduler::CancelReason)>;

  // `cancel` ends one scheduler request (Scheduler::Cancel: idempotent, unknown ids ignored). `deadline` is
  // the call's: a cancel at or after it (gRPC cancels a call whose deadline expires) is a deadline, and is
  // passed on as CancelReason::kDeadline so the request is counted as one, not as a client cancel.
  explicit CallCancellation(CancelFn cancel, absl::Time deadline = absl::InfiniteFuture())
      : cancel_(std::move(cancel)), deadline_(deadline) {}

  CallCancellation(const CallCancellation&) = delete;
  CallCancellation& operator=(const CallCancellation&) = delete;

  // Records the call's requests (once, after they were admitted); cancels them at once when the call was
  // cancelled before.
  void SetIds(const std::vector<uint64_t>& ids);

  // Marks the call cancelled and cancels the requests recorded so far. Safe to call more than once.
  void Cancel();

  [[nodiscard]] bool cancelled() const;

 private:
  // The reason of a cancel now: kDeadline from shortly before the deadline on (timers and clocks differ by
  // a little), kClient before.
  scheduler::Scheduler::CancelReason ReasonNow() const;

  const CancelFn cancel_;
  const absl::Time deadline_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> ids_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  scheduler::Scheduler::CancelReason reason_ ABSL_GUARDED_BY(mu_) = scheduler::Scheduler::CancelReason::kClient;
};

// The cancel function of a call whose requests live in `scheduler`.
CallCancellation::CancelFn CancelIn(scheduler::Scheduler* scheduler);

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_CALL_CANCELLATION_H_
