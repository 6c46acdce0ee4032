// The paged KV block manager: on-demand growth, all-or-nothing allocation, release, usage.
#include "scheduler/block_manager.h"

#include <set>
#include <vector>

#include "tests/test_util.h"

namespace adak::scheduler {
namespace {

TEST(BlockManager, GrowsOnDemandAndReleases) {
  BlockManager blocks(/*num_blocks=*/6, /*block_size=*/4);
  std::vector<int32_t> a, b;
  ASSERT_TRUE(blocks.EnsureCapacity(&a, 1));
  EXPECT_EQ(a.size(), 1u);
  ASSERT_TRUE(blocks.EnsureCapacity(&a, 4));  // still one block
  EXPECT_EQ(a.size(), 1u);
  ASSERT_TRUE(blocks.EnsureCapacity(&a, 5));
  EXPECT_EQ(a.size(), 2u);
  ASSERT_TRUE(blocks.EnsureCapacity(&b, 16));
  EXPECT_EQ(blocks.num_used(), 6);
  EXPECT_DOUBLE_EQ(blocks.usage(), 1.0);
  std::set<int32_t> ids(a.begin(), a.end());
  ids.insert(b.begin(), b.end());
  EXPECT_EQ(ids.size(), 6u);  // no block handed out twice
  for (int32_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 6);
  }
  blocks.Release(&a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(blocks.num_free(), 2);
  blocks.Release(&b);
  EXPECT_EQ(blocks.num_used(), 0);
  EXPECT_DOUBLE_EQ(blocks.usage(), 0.0);
}

TEST(BlockManager, AllocationIsAllOrNothing) {
  BlockManager blocks(3, 4);
  std::vector<int32_t> a = {}, b = {};
  ASSERT_TRUE(blocks.EnsureCapacity(&a, 8));
  EXPECT_FALSE(blocks.EnsureCapacity(&b, 9));  // needs 3, 1 free
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(blocks.num_free(), 1);
  EXPECT_EQ(blocks.MissingBlocks(b, 9), 3);
  EXPECT_EQ(blocks.MissingBlocks(a, 8), 0);
  EXPECT_EQ(blocks.BlocksFor(0), 0);
  EXPECT_EQ(blocks.BlocksFor(9), 3);
}

TEST(BlockManagerDeathTest, DoubleReleaseAborts) {
  BlockManager blocks(2, 4);
  std::vector<int32_t> a;
  ASSERT_TRUE(blocks.EnsureCapacity(&a, 4));
  std::vector<int32_t> copy = a;
  blocks.Release(&a);
  EXPECT_DEATH(blocks.Release(&copy), "released twice");
}

}  // namespace
}  // namespace adak::scheduler
