// Whether the server accepts work: NOT_READY while loading, SERVING, then DRAINING after SIGTERM.
// Liveness (/healthz, grpc.health.v1 service "") is true while the process runs; readiness (/readyz, the
// "adak.v1.Generation" service) is true only while SERVING. Thread-safe.
#ifndef ADAK_SERVER_SERVING_STATE_H_
#define ADAK_SERVER_SERVING_STATE_H_

#include <atomic>

namespace adak::server {

enum class ServingPhase { kNotReady, kServing, kDraining };

class ServingState {
 public:
  void SetPhase(ServingPhase phase) { phase_.store(phase, std::memory_order_release); }
  [[nodiscard]] ServingPhase phase() const { return phase_.load(std::memory_order_acquire); }
  [[nodiscard]] bool ready() const { return phase() == ServingPhase::kServing; }

 private:
  std::atomic<ServingPhase> phase_{ServingPhase::kNotReady};
};

}  // namespace adak::server

#endif  // ADAK_SERVER_SERVING_STATE_H_
