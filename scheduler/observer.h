// Events the scheduler reports, for metrics (server/metrics.h implements this with prometheus-cpp).
//
// Every callback runs on the scheduler thread, synchronously, and must be cheap and never block. The
// scheduler never depends on Prometheus: it only fills these plain structs.
#ifndef ADAK_SCHEDULER_OBSERVER_H_
#define ADAK_SCHEDULER_OBSERVER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/model_runner.h"
#include "engine/routing.h"
#include "scheduler/request.h"

namespace adak::scheduler {

// One engine step, after the forward.
struct StepStats {
  int64_t num_sequences = 0;
  int64_t prefill_tokens = 0;
  int64_t decode_tokens = 0;
  int64_t batch_tokens = 0;  // prefill + decode
  absl::Duration duration;   // planning + forward + sampling
  // The forward's routing: routed_k [L][T] and routed_ids [L][T * E] (-1 past k), T = batch_tokens.
  const engine::ForwardResult* forward = nullptr;
  std::span<const engine::RoutingPolicy> token_policy;  // [T] the policy each token ran
  std::span<const int32_t> token_profile;               // [T] its allocator profile (RoutingParams::profile)
  double expert_flops = 0.0;                            // routed-expert FLOPs of this step
  double expert_flops_saved = 0.0;                      // against native top-K on the same tokens
  // Scheduler state after the step.
  int64_t running = 0;
  int64_t waiting = 0;
  double kv_cache_usage = 0.0;  // used blocks / total blocks
  int64_t preempted = 0;        // sequences preempted in this step
};

struct RequestStats {
  FinishReason reason = FinishReason::kLength;
  absl::StatusCode code = absl::StatusCode::kOk;
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  absl::Duration queue_time;  // submit -> first scheduled
  absl::Duration e2e;         // submit -> finish
};

class SchedulerObserver {
 public:
  virtual ~SchedulerObserver() = default;
  virtual void OnStep(const StepStats& step) = 0;
  virtual void OnFirstToken(absl::Duration time_to_first_token) = 0;
  virtual void OnInterToken(absl::Duration latency) = 0;
  virtual void OnRequestFinished(const RequestStats& request) = 0;
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_OBSERVER_H_
