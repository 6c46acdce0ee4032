// The routed-expert FFNs of one MoE layer, executed over a DispatchPlan.
//
// For each expert e with rows: h = silu(x_rows · gate_e^T) * (x_rows · up_e^T); y = h · down_e^T;
// out[token] += weight * y, every expert's weights read once per call. Experts without rows are skipped.
// Scratch memory is owned by the caller's MoeScratch (reused across calls, not thread-safe).
#ifndef ADAK_KERNELS_CPU_MOE_EXPERTS_H_
#define ADAK_KERNELS_CPU_MOE_EXPERTS_H_

#include <cstdint>
#include <vector>

#include "base/dtype.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/thread_pool.h"

namespace adak::kernels {

struct ExpertWeightPtrs {
  const void* gate = nullptr;  // [I, H]
  const void* up = nullptr;    // [I, H]
  const void* down = nullptr;  // [H, I]
};

struct MoeExpertsParams {
  const float* x = nullptr;            // [T, H] input (the post-attention norm output)
  int64_t hidden = 0;                  // H
  int64_t intermediate = 0;            // I
  DType dtype = DType::kBF16;          // of every expert weight
  const ExpertWeightPtrs* experts = nullptr;  // [E]
  const DispatchPlan* plan = nullptr;
  float* out = nullptr;                // [T, H], accumulated into
};

struct MoeScratch {
  std::vector<float> gathered, gate, up, down;
};

void MoeExperts(const MoeExpertsParams& p, MoeScratch* scratch, ThreadPool* pool);
// Per-token, per-expert loop with MatMulReference; the oracle.
void MoeExpertsReference(const MoeExpertsParams& p);

// A dense SwiGLU MLP over all T rows (shared experts and dense layers): out (=|+=) down(silu(gate x) * up x) * scale.
struct DenseMlpParams {
  const float* x = nullptr;  // [T, H]
  int64_t rows = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  DType dtype = DType::kBF16;
  ExpertWeightPtrs w;
  const float* row_scale = nullptr;  // [T] optional per-row scale of the output (sigmoid shared-expert gate)
  float* out = nullptr;              // [T, H]
  bool accumulate = true;
};
void DenseMlp(const DenseMlpParams& p, MoeScratch* scratch, ThreadPool* pool);

}  // namespace adak::kernels

#endif  // ADAK_KERNELS_CPU_MOE_EXPERTS_H_
