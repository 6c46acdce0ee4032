// The CUDA backend: one device, one stream, every op of engine/backend.h as device kernels
// (kernels/cuda/), fp32 activations and accumulation.
//
// Memory: Allocate is cudaMalloc (zeroed); PrepareWeight uploads a checkpoint tensor once in its own dtype
// (BF16 stays BF16) and owns the copy; the KV cache, activations and scratch are device-resident. Upload and
// Download copy on the stream and wait for it (their host buffers may be reused at once); every other op is
// asynchronous.
//
// Dot products: exact fp32 products of the weights' values (the CUDA-core row GEMM of
// kernels/cuda/grouped_gemm.h) unless the backend was built with DotPrecision::kBf16. Then every product with
// BF16 weights rounds the activations to bf16 (as the CPU backend's kBf16) and runs on the tensor cores with
// fp32 accumulation: Linear through cuBLAS's bf16 GEMM (loaded on first use, kernels/cuda/cublas_loader.h; the
// tensor-core row GEMM when it is not there), the experts and MLPs through the tensor-core row GEMM.
//
// MoE: the fused gate GEMM, the routing kernel (every policy, per token), the dispatch plan built on the device,
// ONE grouped gate/up GEMM with the row gather and SwiGLU fused, ONE grouped down GEMM, both over exactly
// sum_t k_t rows, then the weighted combine; the shared expert as a dense MLP scaled per row. No host sync.
//
// Errors: a failed launch or device fault is recorded with the op that issued it and returned by
// Synchronize (Internal, "cuda backend: <op>: <cause>") and by every later Synchronize (device faults are
// sticky); ops after a recorded error still enqueue nothing harmful. Never aborts. Not thread-safe (one
// scheduler thread), like every backend.
#ifndef ADAK_ENGINE_CUDA_BACKEND_H_
#define ADAK_ENGINE_CUDA_BACKEND_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "kernels/cpu/matmul.h"

namespace adak::engine {

// Whether a CUDA device is usable here (a driver and at least one device).
[[nodiscard]] bool CudaDevicePresent();

class CudaBackend final : public Backend {
 public:
  // Device `device` (0-based). Errors: FailedPrecondition naming the device count when there is no such device;
  // Internal for a failed stream creation.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(int device, kernels::DotPrecision dot_precision);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  [[nodiscard]] std::string_view name() const override { return "cuda"; }
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
  [[nodiscard]] absl::Status Synchronize() override;

 private:
  struct State;  // CUDA handles and scratch (cuda_backend.cc)
  // Named scratch buffers, grown on demand (stream-ordered), reused across ops.
  enum Slot : int {
    kLogits,
    kRouteIds,
    kRouteWeights,
    kRouteWork,
    kPlan,
    kExpertH,
    kExpertY,
    kSharedScale,
    kMlpH,
    kBf16X,
    kNumSlots
  };

  CudaBackend(int device, kernels::DotPrecision dot_precision, std::unique_ptr<State> state);
  // Makes device_ current on the calling thread (every public op starts with it).
  void Bind() const;
  // Records the first error of the launches since the last check, naming `op`.
  void Check(const char* op);
  void Fail(const char* op, const std::string& message);
  [[nodiscard]] bool failed() const { return !error_.ok(); }
  [[nodiscard]] bool tensor_cores() const { return dot_precision_ == kernels::DotPrecision::kBf16; }
  void* Scratch(Slot slot, size_t bytes);
  // Device arrays of the experts' gate / up / down pointers (cached per span of experts).
  const void* const* ExpertPointers(std::span<const MlpTensors> experts, int which);
  const kernels::AllocatorExtras* AllocatorExtrasOnDevice(std::span<const kernels::AllocatorExtras> extras);
  // out (+)= MLP(x), each row scaled by row_scale[r] when given (h: the scratch of the intermediate).
  void DenseMlp(const Tensor& x, const MlpTensors& w, const float* row_scale, const Tensor& out);

  int device_;
  kernels::DotPrecision dot_precision_;
  std::unique_ptr<State> state_;
  absl::Status error_;
  const char* last_op_ = "none";
};

}  // namespace adak::engine

#endif  // ADAK_ENGINE_CUDA_BACKEND_H_
