// The tile schedule of the grouped expert GEMM: which rows and columns each thread block computes, read from
// the device-side plan (kernels/cuda/dispatch_plan.h) with no host sync.
//
// Expert e's rows [expert_offsets[e], expert_offsets[e+1]) are cut into row tiles of tile_m rows; tile_offsets
// (PlanScan) numbers them across experts, so row tile i belongs to the expert e with tile_offsets[e] <= i <
// tile_offsets[e+1] (experts with no rows own no tile). Every row tile is split into col_tiles column tiles;
// work item w is (row tile w / col_tiles, column tile w % col_tiles). Blocks take work items in a grid-stride
// loop until WorkItems, so the grid is sized on the host without knowing R: only sum_t k_t rows are computed,
// nothing is padded but the last tile of each expert. Host and device run the same code (tests on the CPU).
#ifndef ADAK_KERNELS_CUDA_TILE_SCHEDULE_H_
#define ADAK_KERNELS_CUDA_TILE_SCHEDULE_H_

#include <cstdint>

#include "kernels/host_device.h"

namespace adak::kernels::cuda {

struct Tile {
  int32_t group = 0;      // expert
  int32_t row_begin = 0;  // plan rows [row_begin, row_end)
  int32_t row_end = 0;
  int32_t col_begin = 0;  // output columns [col_begin, min(col_begin + tile_n, n))
};

// Number of column tiles of an n-wide output.
[[nodiscard]] ADAK_HD inline int32_t ColTiles(int64_t n, int64_t tile_n) {
  return static_cast<int32_t>((n + tile_n - 1) / tile_n);
}

// Work items of a grouped GEMM: all row tiles times the column tiles.
[[nodiscard]] ADAK_HD inline int64_t WorkItems(const int32_t* tile_offsets, int64_t groups, int32_t col_tiles) {
  return static_cast<int64_t>(tile_offsets[groups]) * col_tiles;
}

// The tile of work item `item` (< WorkItems). Binary search for the last expert whose first tile <= the row
// tile: experts without rows share their successor's offset and are skipped.
[[nodiscard]] ADAK_HD inline Tile FindTile(const int32_t* tile_offsets, const int32_t* expert_offsets, int64_t groups,
                                           int64_t item, int32_t col_tiles, int64_t tile_m, int64_t tile_n) {
  const int32_t row_tile = static_cast<int32_t>(item / col_tiles);
  int64_t lo = 0;
  int64_t hi = groups;  // invariant: tile_offsets[lo] <= row_tile < tile_offsets[hi]
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (tile_offsets[mid] <= row_tile) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  Tile t;
  t.group = static_cast<int32_t>(lo);
  t.row_begin = expert_offsets[lo] + (row_tile - tile_offsets[lo]) * static_cast<int32_t>(tile_m);
  const int32_t end = t.row_begin + static_cast<int32_t>(tile_m);
  t.row_end = end < expert_offsets[lo + 1] ? end : expert_offsets[lo + 1];
  t.col_begin = static_cast<int32_t>(item % col_tiles) * static_cast<int32_t>(tile_n);
  return t;
}

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_TILE_SCHEDULE_H_
