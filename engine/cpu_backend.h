// The CPU backend: host memory as device memory, ops run on a fixed worker pool, fp32 accumulation.
//
// Weights are used in place from the mmapped checkpoint (PrepareWeight copies nothing). Ops run
// synchronously on the calling thread plus the pool's workers. Dot products with BF16 weights are exact unless
// the backend was built with DotPrecision::kBf16 (BackendOptions::dot_precision). Not thread-safe (one
// scheduler thread).
#ifndef ADAK_ENGINE_CPU_BACKEND_H_
#define ADAK_ENGINE_CPU_BACKEND_H_

#include <memory>

#include "engine/backend.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/moe_experts.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::engine {

class CpuBackend final : public Backend {
 public:
  // num_threads: 0 = all hardware threads. dot_precision: of Linear, Moe and Mlp with BF16 weights
  // (BackendOptions::dot_precision).
  explicit CpuBackend(int num_threads = 0, kernels::DotPrecision dot_precision = kernels::DotPrecision::kFp32);
  ~CpuBackend() override;

  [[nodiscard]] std::string_view name() const override { return "cpu"; }
  [[nodiscard]] absl::StatusOr<std::unique_ptr<DeviceBuffer>> Allocate(size_t bytes) override;
  [[nodiscard]] absl::Status Upload(const void* host, size_t bytes, void* device) override;
  [[nodiscard]] absl::Status Download(const void* device, size_t bytes, void* host) override;
  [[nodiscard]] absl::StatusOr<Tensor> PrepareWeight(const TensorView& w) override;

  void Embedding(const Tensor& table, const int32_t* ids, const Tensor& out) override;
  void RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) override;
  void Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out, bool accumulate) override;
  void Rope(const Tensor& x, int64_t heads, int64_t head_dim, const int32_t* positions, double theta) override;
  void Attention(const AttentionArgs& args) override;
  void Moe(const MoeArgs& args) override;
  void Mlp(const Tensor& x, const MlpTensors& w, const Tensor& out) override;
  void GatherRows(const Tensor& x, const int32_t* rows, const Tensor& out) override;
  void Clamp(const Tensor& x, float limit) override;
  [[nodiscard]] absl::Status Synchronize() override { return absl::OkStatus(); }

  [[nodiscard]] kernels::ThreadPool* pool() { return &pool_; }

 private:
  kernels::ThreadPool pool_;
  kernels::DotPrecision dot_precision_;
  kernels::MoeScratch scratch_;
  std::vector<float> gate_logits_, route_weights_, shared_scale_;
  std::vector<int32_t> route_ids_;
  std::vector<kernels::ExpertWeightPtrs> expert_ptrs_;
  kernels::DispatchPlan plan_;
};

}  // namespace adak::engine

#endif  // ADAK_ENGINE_CPU_BACKEND_H_
