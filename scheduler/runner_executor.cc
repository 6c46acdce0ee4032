// MakeRunnerExecutor: the production StepExecutor over engine::ModelRunner, recording the routing of
// every token (the scheduler's expert budget and the per-layer metrics read routed_k / routed_ids).
#include <memory>

#include "scheduler/executor.h"

namespace adak::scheduler {
namespace {

class RunnerExecutor final : public StepExecutor {
 public:
  explicit RunnerExecutor(engine::ModelRunner* runner) : runner_(runner) { options_.record_routing = true; }

  [[nodiscard]] const engine::ModelConfig& config() const override { return runner_->config(); }
  [[nodiscard]] const engine::RoutingWeights& routing_weights() const override { return runner_->routing_weights(); }
  [[nodiscard]] int64_t num_kv_blocks() const override { return runner_->cache()->num_blocks(); }
  [[nodiscard]] int64_t block_size() const override { return runner_->cache()->block_size(); }
  [[nodiscard]] absl::Status Forward(std::span<const engine::SequenceInput> batch,
                                     engine::ForwardResult* result) override {
    return runner_->Forward(batch, options_, result);
  }

 private:
  engine::ModelRunner* runner_;
  engine::ForwardOptions options_;
};

}  // namespace

std::unique_ptr<StepExecutor> MakeRunnerExecutor(engine::ModelRunner* runner) {
  return std::make_unique<RunnerExecutor>(runner);
}

}  // namespace adak::scheduler
