// The paged KV block manager: on-demand growth, all-or-nothing allocation, release, usage.
#include "scheduler/block_manager.h"

#include <set>
#include <span>
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

namespace adak::scheduler {
namespace {

std::vector<int32_t> Tokens(int32_t first, int n) {
  std::vector<int32_t> t;
  t.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t.push_back(first + i);
  return t;
}

// Publishes the full blocks of `table` holding `tokens`, as the scheduler does; returns their hashes.
std::vector<uint64_t> PublishAll(BlockManager& blocks, const std::vector<int32_t>& table,
                                 const std::vector<int32_t>& tokens, uint64_t salt) {
  std::vector<uint64_t> hashes;
  const std::vector<uint16_t> k(size_t{4} * 2, 1);
  uint64_t parent = 0;
  for (size_t j = 0; (j + 1) * 4 <= tokens.size(); ++j) {
    const auto chunk = std::span<const int32_t>(tokens).subspan(j * 4, 4);
    const uint64_t h = BlockManager::BlockHash(parent, salt, chunk);
    blocks.Publish(table[j], h, parent, salt, chunk, k);
    hashes.push_back(h);
    parent = h;
  }
  return hashes;
}

TEST(BlockManagerPrefixCache, MatchesPublishedPrefixUnderTheSameSalt) {
  BlockManager blocks(8, 4, /*num_layers=*/2);
  const std::vector<int32_t> tokens = Tokens(100, 10);  // 2 full blocks + 2 tokens
  std::vector<int32_t> a;
  ASSERT_TRUE(blocks.EnsureCapacity(&a, 10));
  const std::vector<uint64_t> hashes = PublishAll(blocks, a, tokens, /*salt=*/7);
  EXPECT_EQ(blocks.num_cached(), 2);

  std::vector<int32_t> matched;
  std::vector<uint64_t> matched_hashes;
  blocks.MatchPrefix(tokens, 7, 100, &matched, &matched_hashes);
  EXPECT_EQ(matched, std::vector<int32_t>(a.begin(), a.begin() + 2));
  EXPECT_EQ(matched_hashes, hashes);
  EXPECT_EQ(blocks.CountEvictable(matched), 0);  // a still holds them
  // max_blocks caps the match; another salt (routing) or a different first block matches nothing.
  matched.clear();
  blocks.MatchPrefix(tokens, 7, 1, &matched, &matched_hashes);
  EXPECT_EQ(matched.size(), 1u);
  matched.clear();
  blocks.MatchPrefix(tokens, 8, 100, &matched, &matched_hashes);
  EXPECT_TRUE(matched.empty());
  std::vector<int32_t> other = tokens;
  other[1] = 5;
  blocks.MatchPrefix(other, 7, 100, &matched, &matched_hashes);
  EXPECT_TRUE(matched.empty());
  // Same first block, different second: one block.
  other = tokens;
  other[6] = 5;
  blocks.MatchPrefix(other, 7, 100, &matched, &matched_hashes);
  EXPECT_EQ(matched.size(), 1u);
}

TEST(BlockManagerPrefixCache, SharedBlocksAreReferenceCountedAndEvictedLast) {
  BlockManager blocks(4, 4, 2);
  const std::vector<int32_t> tokens = Tokens(0, 8);
  std::vector<int32_t> a;
  ASSERT_TRUE(blocks.EnsureCapacity(&a, 8));
  PublishAll(blocks, a, tokens, 1);
  std::vector<int32_t> matched;
  std::vector<uint64_t> hashes;
  blocks.MatchPrefix(tokens, 1, 2, &matched, &hashes);
  std::vector<int32_t> b;
  blocks.Share(&b, matched);
  EXPECT_EQ(blocks.num_used(), 2);  // shared, not copied
  blocks.Release(&a);
  EXPECT_EQ(blocks.num_used(), 2);  // b still holds both
  blocks.Release(&b);
  EXPECT_EQ(blocks.num_used(), 0);
  EXPECT_EQ(blocks.num_free(), 4);
  EXPECT_EQ(blocks.num_cached(), 2);  // evictable, still matchable
  matched.clear();
  blocks.MatchPrefix(tokens, 1, 2, &matched, &hashes);
  ASSERT_EQ(matched.size(), 2u);
  EXPECT_EQ(blocks.CountEvictable(matched), 2);
  // Two never-published blocks are taken first; the third allocation evicts the tail block (block 1 of
  // the sequence), so the first block still matches.
  std::vector<int32_t> c;
  ASSERT_TRUE(blocks.EnsureCapacity(&c, 12));
  EXPECT_EQ(blocks.num_cached(), 1);
  matched.clear();
  blocks.MatchPrefix(tokens, 1, 2, &matched, &hashes);
  EXPECT_EQ(matched.size(), 1u);
  EXPECT_EQ(blocks.routed_k(matched[0]).size(), 8u);
  blocks.Release(&c);
}

TEST(BlockManagerPrefixCache, DuplicateContentStaysPrivate) {
  BlockManager blocks(4, 4, 2);
  const std::vector<int32_t> tokens = Tokens(0, 4);
  std::vector<int32_t> a, b;
  ASSERT_TRUE(blocks.EnsureCapacity(&a, 4));
  ASSERT_TRUE(blocks.EnsureCapacity(&b, 4));
  PublishAll(blocks, a, tokens, 1);
  PublishAll(blocks, b, tokens, 1);  // computed concurrently: the first one stays the cached copy
  EXPECT_EQ(blocks.num_cached(), 1);
  blocks.Release(&b);
  EXPECT_EQ(blocks.num_cached(), 1);
  std::vector<int32_t> matched;
  std::vector<uint64_t> hashes;
  blocks.MatchPrefix(tokens, 1, 1, &matched, &hashes);
  EXPECT_EQ(matched, a);
  blocks.Release(&a);
}

}  // namespace
}  // namespace adak::scheduler
