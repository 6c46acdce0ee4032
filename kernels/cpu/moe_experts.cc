#include "kernels/cpu/moe_experts.h"

#include <cstring>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/matmul.h"

namespace adak::kernels {
namespace {

MatMulParams Linear(const float* x, int64_t rows, int64_t k, const void* w, DType dtype, int64_t n, float* out) {
  MatMulParams m;
  m.x = x;
  m.rows = rows;
  m.k = k;
  m.x_stride = k;
  m.w = w;
  m.w_dtype = dtype;
  m.n = n;
  m.out = out;
  m.out_stride = n;
  return m;
}

// down(silu(gate x) * up x) for `rows` contiguous rows of x into scratch->down.
void SwiGlu(const float* x, int64_t rows, int64_t hidden, int64_t inter, DType dtype, const ExpertWeightPtrs& w,
            MoeScratch* s, ThreadPool* pool) {
  const size_t ri = static_cast<size_t>(rows * inter);
  if (s->gate.size() < ri) s->gate.resize(ri);
  if (s->up.size() < ri) s->up.resize(ri);
  if (s->down.size() < static_cast<size_t>(rows * hidden)) s->down.resize(static_cast<size_t>(rows * hidden));
  MatMul(Linear(x, rows, hidden, w.gate, dtype, inter, s->gate.data()), pool);
  MatMul(Linear(x, rows, hidden, w.up, dtype, inter, s->up.data()), pool);
  SiluMul(s->gate.data(), s->up.data(), s->gate.data(), rows, inter, inter);
  MatMul(Linear(s->gate.data(), rows, inter, w.down, dtype, hidden, s->down.data()), pool);
}

}  // namespace

void MoeExperts(const MoeExpertsParams& p, MoeScratch* s, ThreadPool* pool) {
  const DispatchPlan& plan = *p.plan;
  const int64_t h = p.hidden;
  for (int64_t e = 0; e < plan.num_experts; ++e) {
    const int32_t begin = plan.expert_offsets[static_cast<size_t>(e)];
    const int32_t end = plan.expert_offsets[static_cast<size_t>(e) + 1];
    const int64_t rows = end - begin;
    if (rows == 0) continue;
    if (s->gathered.size() < static_cast<size_t>(rows * h)) s->gathered.resize(static_cast<size_t>(rows * h));
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(s->gathered.data() + r * h, p.x + static_cast<int64_t>(plan.row_token[begin + r]) * h,
                  sizeof(float) * static_cast<size_t>(h));
    }
    SwiGlu(s->gathered.data(), rows, h, p.intermediate, p.dtype, p.experts[e], s, pool);
    for (int64_t r = 0; r < rows; ++r) {
      float* o = p.out + static_cast<int64_t>(plan.row_token[begin + r]) * h;
      const float w = plan.row_weight[begin + r];
      const float* y = s->down.data() + r * h;
      for (int64_t i = 0; i < h; ++i) o[i] += w * y[i];
    }
  }
}

void MoeExpertsReference(const MoeExpertsParams& p) {
  const DispatchPlan& plan = *p.plan;
  const int64_t h = p.hidden, inter = p.intermediate;
  std::vector<float> gate(static_cast<size_t>(inter)), up(static_cast<size_t>(inter)), y(static_cast<size_t>(h));
  for (int64_t e = 0; e < plan.num_experts; ++e) {
    for (int32_t r = plan.expert_offsets[static_cast<size_t>(e)]; r < plan.expert_offsets[static_cast<size_t>(e) + 1];
         ++r) {
      const float* x = p.x + static_cast<int64_t>(plan.row_token[static_cast<size_t>(r)]) * h;
      MatMulReference(Linear(x, 1, h, p.experts[e].gate, p.dtype, inter, gate.data()));
      MatMulReference(Linear(x, 1, h, p.experts[e].up, p.dtype, inter, up.data()));
      SiluMul(gate.data(), up.data(), gate.data(), 1, inter, inter);
      MatMulReference(Linear(gate.data(), 1, inter, p.experts[e].down, p.dtype, h, y.data()));
      float* o = p.out + static_cast<int64_t>(plan.row_token[static_cast<size_t>(r)]) * h;
      for (int64_t i = 0; i < h; ++i) o[i] += plan.row_weight[static_cast<size_t>(r)] * y[static_cast<size_t>(i)];
    }
  }
}

void DenseMlp(const DenseMlpParams& p, MoeScratch* s, ThreadPool* pool) {
  SwiGlu(p.x, p.rows, p.hidden, p.intermediate, p.dtype, p.w, s, pool);
  for (int64_t r = 0; r < p.rows; ++r) {
    const float scale = p.row_scale != nullptr ? p.row_scale[r] : 1.0f;
    float* o = p.out + r * p.hidden;
    const float* y = s->down.data() + r * p.hidden;
    for (int64_t i = 0; i < p.hidden; ++i) o[i] = (p.accumulate ? o[i] : 0.0f) + scale * y[i];
  }
}

}  // namespace adak::kernels
