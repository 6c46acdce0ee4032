// What the two row-GEMM tile bodies (grouped_gemm.cu on CUDA cores, grouped_gemm_mma.cu on tensor cores) share:
// the walk over their 64 x 64 output tiles, the activation load with the fused row gather, and the epilogue.
// Included only by those two .cu files.
#ifndef ADAK_KERNELS_CUDA_ROW_GEMM_TILES_CUH_
#define ADAK_KERNELS_CUDA_ROW_GEMM_TILES_CUH_

#include <math.h>

#include <cstdint>

#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/grouped_gemm.h"
#include "kernels/cuda/tile_schedule.h"

namespace adak::kernels::cuda::row_gemm {

// Calls body(row_begin, row_end, col_begin, w, w_up) for every output tile this block owns (grid-stride): one
// group of p.rows rows, or the plan's groups (tile_schedule.h) with each group's weights. w_up is null without
// SwiGLU. Block-uniform, so body may synchronise the block.
template <bool kSwiGlu, class Body>
__device__ void ForEachTile(const RowGemmParams& p, Body body) {
  const int32_t col_tiles = ColTiles(p.n, kGemmTileN);
  if (p.group_w == nullptr) {
    const int64_t items = (p.rows + kGemmTileM - 1) / kGemmTileM * col_tiles;
    for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
      const auto row_begin = static_cast<int32_t>(item / col_tiles * kGemmTileM);
      const auto row_end = static_cast<int32_t>(row_begin + kGemmTileM < p.rows ? row_begin + kGemmTileM : p.rows);
      body(row_begin, row_end, static_cast<int32_t>(item % col_tiles * kGemmTileN), p.w, kSwiGlu ? p.w_up : nullptr);
    }
    return;
  }
  const int64_t items = WorkItems(p.tile_offsets, p.groups, col_tiles);
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const Tile t = FindTile(p.tile_offsets, p.expert_offsets, p.groups, item, col_tiles, kGemmTileM, kGemmTileN);
    body(t.row_begin, t.row_end, t.col_begin, p.group_w[t.group], kSwiGlu ? p.group_w_up[t.group] : nullptr);
  }
}

// Activation k of output row r (the gathered A row), 0 outside the tile's rows or past K.
__device__ inline float LoadActivation(const RowGemmParams& p, int64_t r, int32_t row_end, int64_t k) {
  if (r >= row_end || k >= p.k) return 0.0f;
  return p.a[(p.gather != nullptr ? p.gather[r] : r) * p.lda + k];
}

// The epilogue of output (r, col): acc, or silu(acc) * acc_up under SwiGLU, + bias, * the row's scale, stored
// or accumulated.
template <bool kSwiGlu>
__device__ inline void Store(const RowGemmParams& p, int64_t r, int64_t col, float acc, float acc_up) {
  float v = acc;
  if constexpr (kSwiGlu) v = v / (1.0f + expf(-v)) * acc_up;
  if (p.bias != nullptr) v += LoadAsF32(p.bias, p.bias_dtype, col);
  if (p.row_scale != nullptr) v *= p.row_scale[r];
  float* o = p.out + r * p.ldo + col;
  *o = p.accumulate ? *o + v : v;
}

}  // namespace adak::kernels::cuda::row_gemm

#endif  // ADAK_KERNELS_CUDA_ROW_GEMM_TILES_CUH_
