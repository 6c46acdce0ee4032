// The grouped GEMM's tile schedule (kernels/cuda/tile_schedule.h) on the host: over plans with empty experts,
// experts smaller than a tile and experts of many tiles, the work items cover every (row, column tile) of
// every expert exactly once, inside that expert's rows, and nothing else.
#include "kernels/cuda/tile_schedule.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace adak::kernels::cuda {
namespace {

void ExpectExactCover(const std::vector<int32_t>& rows_per_expert, int64_t tile_m, int64_t tile_n, int64_t n) {
  const auto groups = static_cast<int64_t>(rows_per_expert.size());
  std::vector<int32_t> offsets(rows_per_expert.size() + 1, 0), tiles(rows_per_expert.size() + 1, 0);
  for (size_t e = 0; e < rows_per_expert.size(); ++e) {
    offsets[e + 1] = offsets[e] + rows_per_expert[e];
    tiles[e + 1] = tiles[e] + static_cast<int32_t>((rows_per_expert[e] + tile_m - 1) / tile_m);
  }
  const int32_t col_tiles = ColTiles(n, tile_n);
  const int64_t items = WorkItems(tiles.data(), groups, col_tiles);
  std::vector<int> covered(static_cast<size_t>(offsets.back() * col_tiles), 0);
  for (int64_t item = 0; item < items; ++item) {
    const Tile t = FindTile(tiles.data(), offsets.data(), groups, item, col_tiles, tile_m, tile_n);
    ASSERT_GE(t.group, 0);
    ASSERT_LT(t.group, groups);
    EXPECT_GE(t.row_begin, offsets[static_cast<size_t>(t.group)]);
    EXPECT_LE(t.row_end, offsets[static_cast<size_t>(t.group) + 1]);
    EXPECT_LT(t.row_begin, t.row_end);
    EXPECT_LE(t.row_end - t.row_begin, tile_m);
    EXPECT_EQ(t.col_begin % tile_n, 0);
    EXPECT_LT(t.col_begin, n);
    for (int32_t r = t.row_begin; r < t.row_end; ++r) {
      ++covered[static_cast<size_t>(static_cast<int64_t>(r) * col_tiles + t.col_begin / tile_n)];
    }
  }
  for (size_t i = 0; i < covered.size(); ++i) ASSERT_EQ(covered[i], 1) << "row " << i / col_tiles;
}

TEST(CudaTileSchedule, CoversEveryRowAndColumnTileOnceWithEmptyExperts) {
  ExpectExactCover({0, 5, 0, 0, 64, 65, 1, 0}, 64, 64, 200);
  ExpectExactCover({3}, 64, 64, 64);
  ExpectExactCover({0, 0, 130}, 64, 32, 33);
}

TEST(CudaTileSchedule, CoversRandomPlans) {
  std::mt19937 rng(5);
  for (int round = 0; round < 20; ++round) {
    std::vector<int32_t> rows(1 + rng() % 70);
    for (int32_t& r : rows) r = rng() % 3 == 0 ? 0 : static_cast<int32_t>(rng() % 150);
    ExpectExactCover(rows, 16 << (rng() % 3), 64, 1 + rng() % 300);
  }
}

TEST(CudaTileSchedule, NoWorkWhenNoExpertHasRows) {
  const std::vector<int32_t> tiles(9, 0);
  EXPECT_EQ(WorkItems(tiles.data(), 8, ColTiles(100, 64)), 0);
}

}  // namespace
}  // namespace adak::kernels::cuda
