#include "engine/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/op_params.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cublas_loader.h"
#include "kernels/cuda/dispatch_plan.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/grouped_gemm.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/route_rule.h"

namespace adak::engine {
namespace cu = kernels::cuda;

namespace {

std::string CudaError(cudaError_t e) { return absl::StrCat(cudaGetErrorName(e), " (", cudaGetErrorString(e), ")"); }

class CudaBuffer final : public DeviceBuffer {
 public:
  CudaBuffer(void* data, size_t bytes) : data_(data), bytes_(bytes) {}
  ~CudaBuffer() override { cudaFree(data_); }
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  [[nodiscard]] void* data() const override { return data_; }
  [[nodiscard]] size_t bytes() const override { return bytes_; }

 private:
  void* data_;
  size_t bytes_;
};

// A device copy of a host array of pointers, rebuilt when the host array changes.
struct PointerTable {
  std::vector<const void*> host;
  std::unique_ptr<DeviceBuffer> device;
};

}  // namespace

struct CudaBackend::State {
  cudaStream_t stream = nullptr;
  const cu::CublasApi* cublas = nullptr;
  cublasHandle_t cublas_handle = nullptr;
  std::array<void*, kNumSlots> scratch{};
  std::array<size_t, kNumSlots> scratch_bytes{};
  std::vector<std::unique_ptr<DeviceBuffer>> weights;  // PrepareWeight copies
  // Keyed by the span's data pointer and which projection (0 gate, 1 up, 2 down); contents re-checked per use.
  std::unordered_map<const void*, std::array<PointerTable, 3>> expert_tables;
  std::unordered_map<const void*, PointerTable> extras_tables;
};

bool CudaDevicePresent() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(int device, kernels::DotPrecision dot_precision) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || device < 0 || device >= count) {
    return absl::FailedPreconditionError(absl::StrCat("cuda backend: no device cuda:", device, " (",
                                                      e == cudaSuccess ? count : 0, " devices",
                                                      e == cudaSuccess ? "" : absl::StrCat("; ", CudaError(e)), ")"));
  }
  if (const cudaError_t s = cudaSetDevice(device); s != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cuda backend: cudaSetDevice(", device, "): ", CudaError(s)));
  }
  auto state = std::make_unique<State>();
  if (const cudaError_t s = cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking); s != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cuda backend: cudaStreamCreate: ", CudaError(s)));
  }
  if (dot_precision == kernels::DotPrecision::kBf16) {
    state->cublas = cu::Cublas();
    if (state->cublas != nullptr &&
        (state->cublas->create(&state->cublas_handle) != CUBLAS_STATUS_SUCCESS ||
         state->cublas->set_stream(state->cublas_handle, state->stream) != CUBLAS_STATUS_SUCCESS)) {
      state->cublas = nullptr;
    }
  }
  return std::unique_ptr<CudaBackend>(new CudaBackend(device, dot_precision, std::move(state)));
}

CudaBackend::CudaBackend(int device, kernels::DotPrecision dot_precision, std::unique_ptr<State> state)
    : device_(device), dot_precision_(dot_precision), state_(std::move(state)) {}

CudaBackend::~CudaBackend() {
  Bind();
  cudaStreamSynchronize(state_->stream);
  for (void* p : state_->scratch) cudaFree(p);
  state_->weights.clear();
  state_->expert_tables.clear();
  state_->extras_tables.clear();
  if (state_->cublas_handle != nullptr) state_->cublas->destroy(state_->cublas_handle);
  cudaStreamDestroy(state_->stream);
}

void CudaBackend::Bind() const {
  // The current device is per host thread, and the scheduler thread that issues ops need not be the one that
  // created the backend.
  cudaSetDevice(device_);
}

void CudaBackend::Fail(const char* op, const std::string& message) {
  if (error_.ok()) error_ = absl::InternalError(absl::StrCat("cuda backend: ", op, ": ", message));
}

void CudaBackend::Check(const char* op) {
  last_op_ = op;
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) Fail(op, CudaError(e));
}

absl::Status CudaBackend::Synchronize() {
  Bind();
  if (const cudaError_t e = cudaStreamSynchronize(state_->stream); e != cudaSuccess) {
    Fail(last_op_, absl::StrCat("device error at or before this op: ", CudaError(e)));
  }
  return error_;
}

void* CudaBackend::Scratch(Slot slot, size_t bytes) {
  bytes = std::max<size_t>(bytes, 256);
  if (state_->scratch_bytes[slot] >= bytes) return state_->scratch[slot];
  // Stream-ordered: kernels already enqueued on the old buffer finish before it is freed.
  if (state_->scratch[slot] != nullptr) cudaFreeAsync(state_->scratch[slot], state_->stream);
  state_->scratch[slot] = nullptr;
  state_->scratch_bytes[slot] = 0;
  const size_t grown = bytes + bytes / 4;
  if (const cudaError_t e = cudaMallocAsync(&state_->scratch[slot], grown, state_->stream); e != cudaSuccess) {
    state_->scratch[slot] = nullptr;
    Fail("scratch", absl::StrCat("cannot allocate ", grown, " bytes: ", CudaError(e)));
    return nullptr;
  }
  state_->scratch_bytes[slot] = grown;
  return state_->scratch[slot];
}

absl::StatusOr<std::unique_ptr<DeviceBuffer>> CudaBackend::Allocate(size_t bytes) {
  Bind();
  void* p = nullptr;
  const size_t n = std::max<size_t>(bytes, 4);
  if (const cudaError_t e = cudaMalloc(&p, n); e != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is not sticky: clear it
    return absl::ResourceExhaustedError(
        absl::StrCat("cuda backend: cannot allocate ", bytes, " bytes on cuda:", device_, ": ", CudaError(e)));
  }
  auto buffer = std::make_unique<CudaBuffer>(p, bytes);
  if (const cudaError_t e = cudaMemsetAsync(p, 0, n, state_->stream); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cuda backend: cudaMemset: ", CudaError(e)));
  }
  return buffer;
}

absl::Status CudaBackend::Upload(const void* host, size_t bytes, void* device) {
  Bind();
  if (bytes == 0) return absl::OkStatus();
  cudaError_t e = cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, state_->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(state_->stream);
  if (e != cudaSuccess) Fail("upload", CudaError(e));
  return error_;
}

absl::Status CudaBackend::Download(const void* device, size_t bytes, void* host) {
  Bind();
  if (bytes == 0) return error_;
  cudaError_t e = cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, state_->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(state_->stream);
  if (e != cudaSuccess) Fail(last_op_, absl::StrCat("download after this op: ", CudaError(e)));
  return error_;
}

absl::StatusOr<Tensor> CudaBackend::PrepareWeight(const TensorView& w) {
  Bind();
  if (w.shape.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", w.name, "' has ", w.shape.size(), " dimensions; weights must have at most 2"));
  }
  Tensor t;
  t.dtype = w.dtype;
  t.rows = w.shape.size() == 2 ? w.shape[0] : 1;
  t.cols = w.shape.empty() ? 1 : w.shape.back();
  t.stride = t.cols;
  const size_t bytes = static_cast<size_t>(t.rows * t.cols) * DTypeSize(w.dtype);
  ASSIGN_OR_RETURN(std::unique_ptr<DeviceBuffer> buffer, Allocate(bytes));
  RETURN_IF_ERROR(Upload(w.data, bytes, buffer->data()));
  t.data = buffer->data();
  state_->weights.push_back(std::move(buffer));
  return t;
}

void CudaBackend::Embedding(const Tensor& table, const int32_t* ids, const Tensor& out) {
  Bind();
  cu::LaunchEmbedding(table.data, table.dtype, table.cols, table.rows, ids, out.rows, out.f32(), out.stride,
                      state_->stream);
  Check("embedding");
}

void CudaBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  Bind();
  cu::LaunchRmsNorm(x.f32(), x.rows, x.cols, x.stride, w.data, w.dtype, eps, out.f32(), out.stride, state_->stream);
  Check("rms_norm");
}

void CudaBackend::Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out, bool accumulate) {
  Bind();
  if (x.rows <= 0 || w.rows <= 0) return;
  if (dot_precision_ == kernels::DotPrecision::kBf16 && w.dtype == DType::kBF16 && state_->cublas != nullptr) {
    // bf16 activations x bf16 weights -> fp32 on tensor cores: out^T = W x^T in cuBLAS's column-major terms.
    auto* xb = static_cast<uint16_t*>(Scratch(kBf16X, static_cast<size_t>(x.rows * x.cols) * 2));
    if (xb == nullptr) return;
    cu::LaunchToBf16(x.f32(), x.rows, x.cols, x.stride, xb, state_->stream);
    Check("linear.to_bf16");
    const float alpha = 1.0f;
    const float beta = accumulate ? 1.0f : 0.0f;
    const cublasStatus_t s =
        state_->cublas->gemm_ex(state_->cublas_handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows),
                                static_cast<int>(x.rows), static_cast<int>(x.cols), &alpha, w.data, CUDA_R_16BF,
                                static_cast<int>(w.stride), xb, CUDA_R_16BF, static_cast<int>(x.cols), &beta, out.data,
                                CUDA_R_32F, static_cast<int>(out.stride), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) Fail("linear.cublas", absl::StrCat("cublasGemmEx status ", static_cast<int>(s)));
    if (bias.present()) {
      cu::LaunchAddBias(out.f32(), x.rows, w.rows, out.stride, bias.data, bias.dtype, state_->stream);
      Check("linear.bias");
    }
    return;
  }
  cu::RowGemmParams p;
  p.a = x.f32();
  p.lda = x.stride;
  p.k = x.cols;
  p.n = w.rows;
  p.w_dtype = w.dtype;
  p.w = w.data;
  p.rows = x.rows;
  p.out = out.f32();
  p.ldo = out.stride;
  p.accumulate = accumulate;
  p.bias = bias.data;
  p.bias_dtype = bias.dtype;
  p.bf16_tensor_cores = tensor_cores();  // kBf16 without cuBLAS
  cu::LaunchRowGemm(p, x.rows, state_->stream);
  Check("linear");
}

void CudaBackend::Rope(const Tensor& x, int64_t heads, int64_t head_dim, const int32_t* positions, double theta) {
  Bind();
  cu::LaunchRope(x.f32(), x.rows, heads, head_dim, x.stride, positions, theta, state_->stream);
  Check("rope");
}

void CudaBackend::Attention(const AttentionArgs& a) {
  Bind();
  if (a.head_dim > cu::kMaxAttentionHeadDim) {
    Fail("attention", absl::StrCat("head_dim ", a.head_dim, " exceeds the kernel's limit ", cu::kMaxAttentionHeadDim));
    return;
  }
  cu::LaunchWriteKv(KvWriteParams(a), state_->stream);
  Check("attention.write_kv");
  cu::LaunchPagedAttention(PagedAttentionParamsOf(a), state_->stream);
  Check("attention");
}

const void* const* CudaBackend::ExpertPointers(std::span<const MlpTensors> experts, int which) {
  PointerTable& table = state_->expert_tables[experts.data()][static_cast<size_t>(which)];
  std::vector<const void*> host;
  host.reserve(experts.size());
  for (const MlpTensors& m : experts) host.push_back(which == 0 ? m.gate.data : which == 1 ? m.up.data : m.down.data);
  if (table.device == nullptr || table.host != host) {
    absl::StatusOr<std::unique_ptr<DeviceBuffer>> b = Allocate(host.size() * sizeof(void*));
    if (!b.ok()) {
      Fail("moe.expert_table", std::string(b.status().message()));
      return nullptr;
    }
    if (!Upload(host.data(), host.size() * sizeof(void*), (*b)->data()).ok()) return nullptr;
    table.device = *std::move(b);
    table.host = std::move(host);
  }
  return static_cast<const void* const*>(table.device->data());
}

const kernels::AllocatorExtras* CudaBackend::AllocatorExtrasOnDevice(std::span<const kernels::AllocatorExtras> extras) {
  if (extras.empty()) return nullptr;
  PointerTable& table = state_->extras_tables[extras.data()];
  std::vector<const void*> host;
  for (const kernels::AllocatorExtras& x : extras) {
    host.push_back(x.router_weight);
    host.push_back(x.bias);
  }
  if (table.device == nullptr || table.host != host) {
    absl::StatusOr<std::unique_ptr<DeviceBuffer>> b = Allocate(extras.size_bytes());
    if (!b.ok()) {
      Fail("moe.allocator_extras", std::string(b.status().message()));
      return nullptr;
    }
    if (!Upload(extras.data(), extras.size_bytes(), (*b)->data()).ok()) return nullptr;
    table.device = *std::move(b);
    table.host = std::move(host);
  }
  return static_cast<const kernels::AllocatorExtras*>(table.device->data());
}

void CudaBackend::Moe(const MoeArgs& a) {
  Bind();
  const int64_t t = a.x.rows;
  const int64_t e = a.num_experts;
  const int64_t h = a.x.cols;
  const int64_t g = a.gate.rows;
  if (t <= 0 || failed()) return;
  auto* logits = static_cast<float*>(Scratch(kLogits, static_cast<size_t>(t * g) * sizeof(float)));
  auto* ids = static_cast<int32_t*>(Scratch(kRouteIds, static_cast<size_t>(t * e) * sizeof(int32_t)));
  auto* weights = static_cast<float*>(Scratch(kRouteWeights, static_cast<size_t>(t * e) * sizeof(float)));
  auto* work = static_cast<float*>(
      Scratch(kRouteWork, static_cast<size_t>(t * cu::RouteWorkspaceWords(e, a.null_rows)) * sizeof(float)));
  auto* plan_words = static_cast<int32_t*>(Scratch(kPlan, static_cast<size_t>(cu::PlanWords(t, e, e)) * 4));
  const kernels::AllocatorExtras* extras = AllocatorExtrasOnDevice(a.allocator_extras);
  if (failed()) return;

  // 1. Every routing logit of the layer: router, allocators, null experts, one GEMM over the fused gate.
  Linear(a.x, a.gate, Tensor{}, Tensor{logits, DType::kF32, t, g, g}, false);

  // 2. Routing, each token by its own policy.
  const kernels::RouteParams r = RouteParamsOf(a, logits, g, extras, ids, weights);
  cu::LaunchRouteTokens(r, work, state_->stream);
  Check("moe.route");
  const size_t record = static_cast<size_t>(t * e);
  if (a.ids_out != nullptr) {
    cudaMemcpyAsync(a.ids_out, ids, record * sizeof(int32_t), cudaMemcpyDeviceToDevice, state_->stream);
  }
  if (a.weights_out != nullptr) {
    cudaMemcpyAsync(a.weights_out, weights, record * sizeof(float), cudaMemcpyDeviceToDevice, state_->stream);
  }
  Check("moe.record_routing");

  // 3. The padding-free plan, on the device.
  const cu::PlanArrays plan = cu::CarvePlan(plan_words, t, e, e, cu::kGemmTileM);
  cu::LaunchBuildPlan(plan, a.k_out, ids, weights, state_->stream);
  Check("moe.plan");

  // 4. ONE grouped gate/up GEMM (gather + SwiGLU fused) and ONE grouped down GEMM over sum_t k_t rows.
  if (!a.experts.empty()) {
    const int64_t inter = a.experts[0].gate.rows;
    const int64_t max_rows = t * e;
    auto* hidden = static_cast<float*>(Scratch(kExpertH, static_cast<size_t>(max_rows * inter) * sizeof(float)));
    auto* y = static_cast<float*>(Scratch(kExpertY, static_cast<size_t>(max_rows * h) * sizeof(float)));
    const void* const* gate_w = ExpertPointers(a.experts, 0);
    const void* const* up_w = ExpertPointers(a.experts, 1);
    const void* const* down_w = ExpertPointers(a.experts, 2);
    if (failed()) return;
    const cu::ExpertGemms gemms = cu::MakeExpertGemms(plan, a.x.f32(), a.x.stride, h, inter,
                                                      cu::ExpertWeights{gate_w, up_w, down_w, a.experts[0].gate.dtype},
                                                      hidden, y, tensor_cores());
    cu::LaunchRowGemm(gemms.gate_up, max_rows, state_->stream);
    Check("moe.gate_up");
    cu::LaunchRowGemm(gemms.down, max_rows, state_->stream);
    Check("moe.down");
    // 5. Weighted combine in slot order.
    cu::LaunchCombine(plan, a.k_out, y, h, a.out.f32(), a.out.stride, state_->stream);
    Check("moe.combine");
  }

  // 6. The shared expert, scaled per row by sigmoid(shared_gate x) when the model has that gate.
  if (a.shared.gate.present()) {
    float* scale = nullptr;
    if (a.shared_gate.present()) {
      scale = static_cast<float*>(Scratch(kSharedScale, static_cast<size_t>(t) * sizeof(float)));
      if (scale == nullptr) return;
      Linear(a.x, a.shared_gate, Tensor{}, Tensor{scale, DType::kF32, t, 1, 1}, false);
      cu::LaunchSigmoid(scale, t, state_->stream);
      Check("moe.shared_gate");
    }
    DenseMlp(a.x, a.shared, scale, a.out);
  }
}

void CudaBackend::DenseMlp(const Tensor& x, const MlpTensors& w, const float* row_scale, const Tensor& out) {
  const int64_t t = x.rows;
  const int64_t inter = w.gate.rows;
  if (t <= 0 || failed()) return;
  auto* hidden = static_cast<float*>(Scratch(kMlpH, static_cast<size_t>(t * inter) * sizeof(float)));
  if (hidden == nullptr) return;
  cu::RowGemmParams up;
  up.a = x.f32();
  up.lda = x.stride;
  up.k = x.cols;
  up.n = inter;
  up.w_dtype = w.gate.dtype;
  up.w = w.gate.data;
  up.w_up = w.up.data;
  up.rows = t;
  up.swiglu = true;
  up.out = hidden;
  up.ldo = inter;
  up.bf16_tensor_cores = tensor_cores();
  cu::LaunchRowGemm(up, t, state_->stream);
  Check("mlp.gate_up");
  cu::RowGemmParams down;
  down.a = hidden;
  down.lda = inter;
  down.k = inter;
  down.n = w.down.rows;
  down.w_dtype = w.down.dtype;
  down.w = w.down.data;
  down.rows = t;
  down.out = out.f32();
  down.ldo = out.stride;
  down.accumulate = true;
  down.row_scale = row_scale;
  down.bf16_tensor_cores = tensor_cores();
  cu::LaunchRowGemm(down, t, state_->stream);
  Check("mlp.down");
}

void CudaBackend::Mlp(const Tensor& x, const MlpTensors& w, const Tensor& out) {
  Bind();
  DenseMlp(x, w, nullptr, out);
}

void CudaBackend::GatherRows(const Tensor& x, const int32_t* rows, const Tensor& out) {
  Bind();
  cu::LaunchGatherRows(x.data, x.stride, DTypeSize(x.dtype), x.cols, rows, out.rows, out.data, out.stride,
                       state_->stream);
  Check("gather_rows");
}

void CudaBackend::Clamp(const Tensor& x, float limit) {
  Bind();
  cu::LaunchClamp(x.f32(), x.rows, x.cols, x.stride, limit, state_->stream);
  Check("clamp");
}

}  // namespace adak::engine
