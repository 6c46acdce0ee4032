// The continuous-batching scheduler: one thread that owns every sequence and the KV blocks and drives
// the engine step by step (Orca / vLLM iteration-level scheduling).
//
// Each step mixes the running decodes with prefill chunks of waiting or partially prefilled requests,
// under four limits: max_batch_tokens, max_running_requests, the free KV blocks, and the expert-compute
// budget (expected expert activations of the step, from the recent per-layer mean k). New requests join
// and finished ones leave at every step; when KV blocks run out the newest running sequence is preempted
// (its blocks freed, recomputed later). The whole batch goes to the engine in one forward, so tokens of
// requests with different routing policies share the dispatch plan.
//
// Thread-safety: Submit, Cancel, BeginDrain, WaitIdle, Shutdown and stats are safe from any thread;
// sinks and the observer are called on the scheduler thread only.
#ifndef ADAK_SCHEDULER_SCHEDULER_H_
#define ADAK_SCHEDULER_SCHEDULER_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scheduler/clock.h"
#include "scheduler/executor.h"
#include "scheduler/observer.h"
#include "scheduler/request.h"
#include "tokenizer/tokenizer.h"

namespace adak::scheduler {

struct SchedulerOptions {
  int64_t max_batch_tokens = 512;      // tokens per forward (prefill chunks + decodes)
  int64_t max_running_requests = 64;   // sequences holding KV blocks
  int64_t max_waiting_requests = 256;  // admitted but not yet running; beyond: ResourceExhausted
  int64_t prefill_chunk = 256;         // prompt tokens of one request per step at most
  // Expert-compute budget per step, in expected expert activations (sum over the step's tokens of the
  // recent mean k, summed over MoE layers). 0 = max_batch_tokens x native K x MoE layers, i.e. the token
  // limit binds for native routing and a batch of Ada-K tokens (fewer experts) is limited by tokens only.
  double max_batch_expert_activations = 0.0;
  // Reuse the KV blocks of earlier requests whose prompt starts with the same full blocks of tokens under
  // the same routing (outputs are unchanged: the engine's numerics do not depend on batch composition).
  // Requests with prompt_logprobs always compute their whole prompt.
  bool enable_prefix_caching = true;
  RequestLimits limits;  // max_context / vocab_size filled from the model when 0
};

// A thread-safe snapshot.
struct SchedulerStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t preemptions = 0;              // since start
  int64_t steps = 0;                    // since start
  int64_t prefix_cache_hit_tokens = 0;  // prompt tokens served from the prefix cache, since start
  int64_t kv_blocks_cached = 0;         // published blocks (in use or evictable)
  bool draining = false;
};

class Scheduler {
 public:
  // REQUIRES: executor, tokenizer, clock and observer (may be null) outlive the scheduler.
  // Errors: InvalidArgument for non-positive limits or a KV cache too small to hold one max_context sequence.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Scheduler>> Create(StepExecutor* executor,
                                                                         const tokenizer::Tokenizer* tokenizer,
                                                                         const SchedulerOptions& options,
                                                                         const Clock* clock,
                                                                         SchedulerObserver* observer);
  ~Scheduler();  // Shutdown()

  // Starts the step thread. Call once.
  void Start();

  // Queues a request; returns its id. Errors (the sink is never called then): InvalidArgument from
  // ValidateRequest; ResourceExhausted when max_waiting_requests are already waiting (names the limit);
  // Unavailable while draining or after Shutdown.
  [[nodiscard]] absl::StatusOr<uint64_t> Submit(GenerationRequest request, std::shared_ptr<RequestSink> sink);

  // Why a request is cancelled: the client went away (Cancelled, FinishReason::kCancelled), or its front end
  // saw its deadline expire (DeadlineExceeded, FinishReason::kDeadline, as if the scheduler had seen it).
  enum class CancelReason { kClient, kDeadline };
  // The request ends with Cancelled (OnFinish) -- DeadlineExceeded for kDeadline, or when its deadline has
  // passed by then -- and its KV blocks are freed at the next step boundary. Unknown or finished ids are
  // ignored; idempotent.
  void Cancel(uint64_t id, CancelReason reason = CancelReason::kClient);

  // Stops admitting (Submit returns Unavailable); queued and running requests go on.
  void BeginDrain();
  // Blocks until nothing is waiting or running, or the timeout passes; true when idle.
  bool WaitIdle(absl::Duration timeout);
  // Ends every remaining request with Unavailable ("server shutting down", reason kCancelled), joins the
  // thread. Idempotent.
  void Shutdown();

  [[nodiscard]] SchedulerStats stats() const;
  [[nodiscard]] const SchedulerOptions& options() const;

 private:
  class Impl;
  explicit Scheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_SCHEDULER_H_
