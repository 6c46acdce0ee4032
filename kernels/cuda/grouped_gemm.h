// The row GEMM family of the CUDA backend: out[r, n] = sum_k A[a_row(r), k] * W_g(r)[n, k] over fp32
// activations and F32/F16/BF16 weights, fp32 products and accumulation (the exact path, as the CPU backend's
// DotPrecision::kFp32).
//
// One kernel serves three shapes:
//  - a dense GEMM (one group, rows [0, rows)): Linear with exact dots, the dense MLP;
//  - the grouped expert GEMM over a device-side dispatch plan (kernels/cuda/dispatch_plan.h): one launch over
//    exactly sum_t k_t rows, expert e computing its rows [expert_offsets[e], expert_offsets[e+1]) with its own
//    weights, the tile schedule of kernels/cuda/tile_schedule.h read on the device (no host sync, no padded
//    slots, never one launch per expert or per k group);
//  - either with the row gather fused into the A load (a_row = gather[r], the token of plan row r) and with
//    SwiGLU fused into the epilogue (gate and up computed together: out = silu(x W_gate^T) * (x W_up^T)).
// The epilogue stores, accumulates (+=), adds a bias, or scales each row (the shared expert's sigmoid gate).
//
// Two tile implementations, the same 64 x 64 output tiles, schedule and epilogues: exact fp32 FMAs on CUDA cores
// (256 threads, 4 x 4 outputs per thread, K in steps of 16 through shared memory), and, with
// bf16_tensor_cores over BF16 weights, mma.sync on the tensor cores (4 warps of 32 x 32, K in steps of 32;
// wgmma/TMA on sm_90a is the next step, docs/gpu.md). Launchers enqueue on `stream`; pointers are device
// memory.
#ifndef ADAK_KERNELS_CUDA_GROUPED_GEMM_H_
#define ADAK_KERNELS_CUDA_GROUPED_GEMM_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "base/dtype.h"
#include "kernels/cuda/dispatch_plan.h"

namespace adak::kernels::cuda {

inline constexpr int64_t kGemmTileM = 64;
inline constexpr int64_t kGemmTileN = 64;

struct RowGemmParams {
  const float* a = nullptr;  // activations, row stride lda
  int64_t lda = 0;
  const int32_t* gather = nullptr;  // [rows] A row of each output row, or nullptr (identity)
  int64_t k = 0;                    // reduction length
  int64_t n = 0;                    // output columns
  DType w_dtype = DType::kBF16;
  // Weights [n, k] row-major, row stride k. One group: w / w_up. Grouped: per-group device pointer arrays.
  const void* w = nullptr;
  const void* w_up = nullptr;               // SwiGLU only: the up projection
  const void* const* group_w = nullptr;     // [groups] device array, or nullptr for one group
  const void* const* group_w_up = nullptr;  // [groups] (SwiGLU)
  // Rows: one group of `rows`, or the plan's groups (expert_offsets/tile_offsets, device [groups + 1]).
  int64_t rows = 0;
  int64_t groups = 1;
  const int32_t* expert_offsets = nullptr;
  const int32_t* tile_offsets = nullptr;  // row tiles of kGemmTileM per group (PlanScan with tile_m = kGemmTileM)
  bool swiglu = false;
  // Epilogue.
  float* out = nullptr;  // [rows, n], row stride ldo
  int64_t ldo = 0;
  bool accumulate = false;
  const void* bias = nullptr;  // [n] of bias_dtype, or nullptr
  DType bias_dtype = DType::kF32;
  const float* row_scale = nullptr;  // [rows] out (+)= row_scale[r] * result, or nullptr
  // BF16 weights only (ignored otherwise): round the activations to bf16 as they are staged and multiply on
  // the tensor cores (mma.sync m16n8k16, fp32 accumulation; grouped_gemm_mma.cu), the device's form of
  // DotPrecision::kBf16. Off: the exact CUDA-core kernel.
  bool bf16_tensor_cores = false;
};

// An MoE layer's experts on the device: per-expert weight pointers (device arrays [E]) and their dtype.
struct ExpertWeights {
  const void* const* gate = nullptr;
  const void* const* up = nullptr;
  const void* const* down = nullptr;
  DType dtype = DType::kBF16;
};

// The layer's two grouped GEMMs over a scanned plan (PlanScan with tile_m = kGemmTileM): gate/up over x's rows
// gathered by plan.row_token (row stride x_stride, h wide) with SwiGLU into hidden [R, inter], then down into
// y [R, h]. Launch each with LaunchRowGemm.
struct ExpertGemms {
  RowGemmParams gate_up;
  RowGemmParams down;
};
[[nodiscard]] ExpertGemms MakeExpertGemms(const PlanArrays& plan, const float* x, int64_t x_stride, int64_t h,
                                          int64_t inter, const ExpertWeights& w, float* hidden, float* y,
                                          bool tensor_cores);

// REQUIRES: one group (group_w == nullptr) or expert_offsets/tile_offsets from a scanned plan; `max_rows`
// bounds the rows of a grouped launch (it sizes the grid; blocks past the plan's work items exit).
void LaunchRowGemm(const RowGemmParams& p, int64_t max_rows, cudaStream_t stream);

namespace internal {
// The tensor-core kernel (grouped_gemm_mma.cu); LaunchRowGemm sizes the grid and calls it.
void LaunchRowGemmMma(const RowGemmParams& p, unsigned grid, cudaStream_t stream);
}  // namespace internal

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_GROUPED_GEMM_H_
