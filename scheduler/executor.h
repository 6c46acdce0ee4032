// What the scheduler drives: one batched forward over the paged KV cache.
//
// StepExecutor is the seam between the scheduler and the engine, so scheduler policies are tested with a
// fake engine (tests/scheduler/) and the server runs them over a real ModelRunner (RunnerExecutor). The
// executor owns nothing the scheduler owns: the scheduler assigns KV block ids in [0, num_kv_blocks()).
// Not thread-safe: the scheduler thread is the only caller.
#ifndef ADAK_SCHEDULER_EXECUTOR_H_
#define ADAK_SCHEDULER_EXECUTOR_H_

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "engine/model_config.h"
#include "engine/model_runner.h"
#include "engine/routing_weights.h"

namespace adak::scheduler {

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  [[nodiscard]] virtual const engine::ModelConfig& config() const = 0;
  [[nodiscard]] virtual const engine::RoutingWeights& routing_weights() const = 0;
  [[nodiscard]] virtual int64_t num_kv_blocks() const = 0;
  [[nodiscard]] virtual int64_t block_size() const = 0;
  // Same contract as engine::ModelRunner::Forward (routing is always recorded: routed_k, routed_ids).
  [[nodiscard]] virtual absl::Status Forward(std::span<const engine::SequenceInput> batch,
                                             engine::ForwardResult* result) = 0;
};

// The production executor. REQUIRES: `runner` (and its cache) outlive the executor.
[[nodiscard]] std::unique_ptr<StepExecutor> MakeRunnerExecutor(engine::ModelRunner* runner);

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_EXECUTOR_H_
