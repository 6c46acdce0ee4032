#include "engine/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "engine/op_params.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/rope.h"

namespace adak::engine {
namespace {

class HostBuffer final : public DeviceBuffer {
 public:
  HostBuffer(void* data, size_t bytes) : data_(data), bytes_(bytes) {}
  ~HostBuffer() override { std::free(data_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  [[nodiscard]] void* data() const override { return data_; }
  [[nodiscard]] size_t bytes() const override { return bytes_; }

 private:
  void* data_;
  size_t bytes_;
};

kernels::ExpertWeightPtrs Ptrs(const MlpTensors& m) { return {m.gate.data, m.up.data, m.down.data}; }

// The default expert-kernel options but for the dot precision.
kernels::MoeExpertsOptions ExpertsOptions(kernels::DotPrecision precision) {
  kernels::MoeExpertsOptions o;
  o.precision = precision;
  return o;
}

}  // namespace

CpuBackend::CpuBackend(int num_threads, kernels::DotPrecision dot_precision)
    : pool_(num_threads), dot_precision_(dot_precision) {}
CpuBackend::~CpuBackend() = default;

absl::StatusOr<std::unique_ptr<DeviceBuffer>> CpuBackend::Allocate(size_t bytes) {
  constexpr size_t kAlign = 64;
  const size_t rounded = std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  void* p = std::aligned_alloc(kAlign, rounded);
  if (p == nullptr) return absl::ResourceExhaustedError(absl::StrCat("cpu backend: cannot allocate ", bytes, " bytes"));
  std::memset(p, 0, rounded);
  return std::make_unique<HostBuffer>(p, bytes);
}

absl::Status CpuBackend::Upload(const void* host, size_t bytes, void* device) {
  std::memcpy(device, host, bytes);
  return absl::OkStatus();
}

absl::Status CpuBackend::Download(const void* device, size_t bytes, void* host) {
  std::memcpy(host, device, bytes);
  return absl::OkStatus();
}

absl::StatusOr<Tensor> CpuBackend::PrepareWeight(const TensorView& w) {
  if (w.shape.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", w.name, "' has ", w.shape.size(), " dimensions; weights must have at most 2"));
  }
  Tensor t;
  t.data = const_cast<std::byte*>(w.data);  // read-only by contract: ops never write weights
  t.dtype = w.dtype;
  t.rows = w.shape.size() == 2 ? w.shape[0] : 1;
  t.cols = w.shape.empty() ? 1 : w.shape.back();
  t.stride = t.cols;
  return t;
}

void CpuBackend::Embedding(const Tensor& table, const int32_t* ids, const Tensor& out) {
  kernels::EmbeddingLookup(table.data, table.dtype, table.cols, ids, out.rows, out.f32(), &pool_);
}

void CpuBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  kernels::RmsNormParams p;
  p.x = x.f32();
  p.rows = x.rows;
  p.dim = x.cols;
  p.x_stride = x.stride;
  p.w = w.data;
  p.w_dtype = w.dtype;
  p.eps = eps;
  p.out = out.f32();
  p.out_stride = out.stride;
  kernels::RmsNorm(p, &pool_);
}

void CpuBackend::Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out, bool accumulate) {
  kernels::MatMulParams p;
  p.x = x.f32();
  p.rows = x.rows;
  p.k = x.cols;
  p.x_stride = x.stride;
  p.w = w.data;
  p.w_dtype = w.dtype;
  p.n = w.rows;
  p.bias = bias.data;
  p.bias_dtype = bias.dtype;
  p.out = out.f32();
  p.out_stride = out.stride;
  p.accumulate = accumulate;
  kernels::MatMulOptions o;
  o.precision = dot_precision_;
  kernels::MatMulWithOptions(p, &pool_, o);
}

void CpuBackend::Rope(const Tensor& x, int64_t heads, int64_t head_dim, const int32_t* positions, double theta) {
  kernels::RopeParams p;
  p.x = x.f32();
  p.rows = x.rows;
  p.heads = heads;
  p.head_dim = head_dim;
  p.stride = x.stride;
  p.positions = positions;
  p.theta = theta;
  kernels::ApplyRope(p, &pool_);
}

void CpuBackend::Attention(const AttentionArgs& a) {
  kernels::WriteKvCache(KvWriteParams(a), &pool_);
  kernels::PagedAttention(PagedAttentionParamsOf(a), &pool_);
}

void CpuBackend::Moe(const MoeArgs& a) {
  const int64_t t = a.x.rows;
  const int64_t e = a.num_experts;
  const int64_t h = a.x.cols;
  const int64_t g = a.gate.rows;
  gate_logits_.resize(static_cast<size_t>(t * g));
  Linear(a.x, a.gate, Tensor{}, Tensor{gate_logits_.data(), DType::kF32, t, g, g}, false);

  route_ids_.resize(static_cast<size_t>(t * e));
  route_weights_.resize(static_cast<size_t>(t * e));
  const kernels::RouteParams r =
      RouteParamsOf(a, gate_logits_.data(), g, a.allocator_extras.empty() ? nullptr : a.allocator_extras.data(),
                    route_ids_.data(), route_weights_.data());
  kernels::RouteTokens(r, &pool_);
  if (a.ids_out != nullptr) std::copy(route_ids_.begin(), route_ids_.end(), a.ids_out);
  if (a.weights_out != nullptr) std::copy(route_weights_.begin(), route_weights_.end(), a.weights_out);

  kernels::BuildDispatchPlan(a.k_out, route_ids_.data(), route_weights_.data(), t, e, e, &plan_);
  expert_ptrs_.clear();
  for (const MlpTensors& m : a.experts) expert_ptrs_.push_back(Ptrs(m));

  kernels::MoeExpertsParams p;
  p.x = a.x.f32();
  p.hidden = h;
  p.intermediate = a.experts.empty() ? 0 : a.experts[0].gate.rows;
  p.dtype = a.experts.empty() ? DType::kBF16 : a.experts[0].gate.dtype;
  p.experts = expert_ptrs_.data();
  p.plan = &plan_;
  p.out = a.out.f32();
  kernels::MoeExpertsWithOptions(p, &scratch_, &pool_, ExpertsOptions(dot_precision_));

  if (a.shared.gate.present()) {
    const float* scale = nullptr;
    if (a.shared_gate.present()) {
      shared_scale_.resize(static_cast<size_t>(t));
      Linear(a.x, a.shared_gate, Tensor{}, Tensor{shared_scale_.data(), DType::kF32, t, 1, 1}, false);
      for (float& v : shared_scale_) v = kernels::Sigmoid(v);
      scale = shared_scale_.data();
    }
    kernels::DenseMlpParams d;
    d.x = a.x.f32();
    d.rows = t;
    d.hidden = h;
    d.intermediate = a.shared.gate.rows;
    d.dtype = a.shared.gate.dtype;
    d.w = Ptrs(a.shared);
    d.row_scale = scale;
    d.out = a.out.f32();
    kernels::DenseMlpWithOptions(d, &scratch_, &pool_, ExpertsOptions(dot_precision_));
  }
}

void CpuBackend::Mlp(const Tensor& x, const MlpTensors& w, const Tensor& out) {
  kernels::DenseMlpParams d;
  d.x = x.f32();
  d.rows = x.rows;
  d.hidden = x.cols;
  d.intermediate = w.gate.rows;
  d.dtype = w.gate.dtype;
  d.w = Ptrs(w);
  d.out = out.f32();
  kernels::DenseMlpWithOptions(d, &scratch_, &pool_, ExpertsOptions(dot_precision_));
}

void CpuBackend::GatherRows(const Tensor& x, const int32_t* rows, const Tensor& out) {
  const size_t row_bytes = static_cast<size_t>(x.cols) * DTypeSize(x.dtype);
  for (int64_t i = 0; i < out.rows; ++i) {
    std::memcpy(static_cast<char*>(out.data) + static_cast<size_t>(i * out.stride) * DTypeSize(out.dtype),
                static_cast<const char*>(x.data) + static_cast<size_t>(rows[i] * x.stride) * DTypeSize(x.dtype),
                row_bytes);
  }
}

void CpuBackend::Clamp(const Tensor& x, float limit) {
  for (int64_t r = 0; r < x.rows; ++r) {
    float* row = x.f32() + r * x.stride;
    for (int64_t c = 0; c < x.cols; ++c) row[c] = std::clamp(row[c], -limit, limit);
  }
}

}  // namespace adak::engine
