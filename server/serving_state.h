// Whether the server accepts work: NOT_READY while loading, SERVING, then DRAINING after SIGTERM; and
// whether the engine is healthy. A device (Internal) failure of an engine step marks the engine failed for
// good (server/engine_health.h): the process stays live but is no longer ready, and new calls are refused.
// Liveness (/healthz, grpc.health.v1 service "") is true while the process runs; readiness (/readyz, the
// "adak.v1.Generation" service) is true only while SERVING with a healthy engine.
//
// Thread-safe. Reads are lock-free; changes and the readiness listener run under one mutex, so the
// listener sees readiness changes in the order they happened and never after it was replaced.
#ifndef ADAK_SERVER_SERVING_STATE_H_
#define ADAK_SERVER_SERVING_STATE_H_

#include <atomic>
#include <functional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace adak::server {

enum class ServingPhase { kNotReady, kServing, kDraining };

class ServingState {
 public:
  void SetPhase(ServingPhase phase) {
    absl::MutexLock lock(&mu_);
    phase_.store(phase, std::memory_order_release);
    NotifyLocked();
  }

  // The engine failed (a device error): readiness turns off and stays off. Idempotent.
  void MarkEngineFailed() {
    absl::MutexLock lock(&mu_);
    if (engine_failed_.exchange(true, std::memory_order_acq_rel)) return;
    NotifyLocked();
  }

  // Called with ready() now and after every change of it (also when the value is unchanged), on the thread
  // that made the change, under the state's mutex: it must be quick and must not call back into the state.
  // Replaces the previous listener; nullptr removes it (no call is in flight once this returns).
  void SetReadinessListener(std::function<void(bool ready)> listener) {
    absl::MutexLock lock(&mu_);
    listener_ = std::move(listener);
    NotifyLocked();
  }

  [[nodiscard]] ServingPhase phase() const { return phase_.load(std::memory_order_acquire); }
  [[nodiscard]] bool engine_failed() const { return engine_failed_.load(std::memory_order_acquire); }
  [[nodiscard]] bool ready() const { return phase() == ServingPhase::kServing && !engine_failed(); }

 private:
  void NotifyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (listener_) listener_(ready());
  }

  std::atomic<ServingPhase> phase_{ServingPhase::kNotReady};
  std::atomic<bool> engine_failed_{false};
  absl::Mutex mu_;
  std::function<void(bool)> listener_ ABSL_GUARDED_BY(mu_);
};

}  // namespace adak::server

#endif  // ADAK_SERVER_SERVING_STATE_H_
