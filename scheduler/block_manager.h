// The paged KV block manager: which physical blocks of the KV cache ([0, num_blocks)) each sequence holds,
// with prefix caching of full blocks.
//
// A sequence's block table maps its logical block j (positions [j * block_size, (j + 1) * block_size)) to
// a physical block. Blocks are allocated on demand, step by step, as a sequence's computed length grows,
// and returned when it finishes or is preempted. Allocation is all-or-nothing: EnsureCapacity either
// covers the requested length or changes nothing.
//
// Prefix caching (vLLM's automatic prefix caching): once every position of a block is computed, the
// scheduler Publishes it under a chained hash of (parent block's hash, routing salt, the block's tokens).
// A released published block keeps its contents and becomes evictable (LRU, tail blocks of a sequence
// first) instead of free; a later sequence whose prompt starts with the same tokens under the same routing
// MatchPrefix-es those blocks and Shares them (reference counted, read-only: a sequence only ever writes
// positions after its shared prefix). The routed k of every position is stored with the block, so a
// request's usage counts its cached prompt tokens exactly as if they had run. num_free() counts free and
// evictable blocks; allocation takes a free block first, else evicts the least recently released one.
// The scheduler thread owns the manager; not thread-safe.
#ifndef ADAK_SCHEDULER_BLOCK_MANAGER_H_
#define ADAK_SCHEDULER_BLOCK_MANAGER_H_

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace adak::scheduler {

class BlockManager {
 public:
  // REQUIRES: num_blocks >= 0, block_size > 0. `num_layers` sizes the routed-k record of cached blocks.
  BlockManager(int64_t num_blocks, int64_t block_size, int64_t num_layers = 0);

  // Blocks a table must hold to cover `tokens` positions.
  [[nodiscard]] int64_t BlocksFor(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  // Blocks `table` still lacks to cover `tokens` positions (0 when it already does).
  [[nodiscard]] int64_t MissingBlocks(const std::vector<int32_t>& table, int64_t tokens) const;

  // Grows `table` to cover `tokens` positions. False (table unchanged) when not enough blocks are free.
  [[nodiscard]] bool EnsureCapacity(std::vector<int32_t>* table, int64_t tokens);
  // Drops the table's reference to every block and clears it.
  void Release(std::vector<int32_t>* table);

  // --- Prefix caching ---
  // The hash a full block of `tokens` (block_size of them) gets after the block hashed `parent` (0 for
  // the first block), under routing `salt`.
  [[nodiscard]] static uint64_t BlockHash(uint64_t parent, uint64_t salt, std::span<const int32_t> tokens);
  // The longest run of published blocks holding tokens[0, n * block_size) under `salt`, n <= max_blocks;
  // appends their ids and hashes. Takes no reference.
  void MatchPrefix(std::span<const int32_t> tokens, uint64_t salt, int64_t max_blocks, std::vector<int32_t>* blocks,
                   std::vector<uint64_t>* hashes) const;
  // How many of `blocks` are evictable (unreferenced, so counted in num_free()).
  [[nodiscard]] int64_t CountEvictable(std::span<const int32_t> blocks) const;
  // Appends `blocks` (from MatchPrefix) to `table`, taking a reference to each.
  void Share(std::vector<int32_t>* table, std::span<const int32_t> blocks);
  // Publishes full block `block` (REQUIRES: referenced) under `hash` (BlockHash of its parent, salt and
  // tokens) with its positions' routed k, [block_size, num_layers]. A block whose content is already
  // published elsewhere stays private.
  void Publish(int32_t block, uint64_t hash, uint64_t parent, uint64_t salt, std::span<const int32_t> tokens,
               std::span<const uint16_t> routed_k);
  // The routed k record of a published block ([block_size, num_layers]).
  [[nodiscard]] std::span<const uint16_t> routed_k(int32_t block) const;

  [[nodiscard]] int64_t num_blocks() const { return num_blocks_; }
  [[nodiscard]] int64_t block_size() const { return block_size_; }
  [[nodiscard]] int64_t num_free() const { return static_cast<int64_t>(free_.size() + lru_.size()); }
  [[nodiscard]] int64_t num_used() const { return num_blocks_ - num_free(); }
  [[nodiscard]] int64_t num_cached() const { return static_cast<int64_t>(by_hash_.size()); }
  // used / total (0 for an empty cache).
  [[nodiscard]] double usage() const;

 private:
  struct Block {
    int32_t refs = 0;
    bool published = false;
    uint64_t hash = 0, parent = 0, salt = 0;
    std::vector<int32_t> tokens;     // [block_size] when published
    std::vector<uint16_t> routed_k;  // [block_size, num_layers] when published
    std::list<int32_t>::iterator lru;
  };
  int32_t Take();  // REQUIRES: num_free() > 0
  void Unpublish(int32_t block);

  int64_t num_blocks_;
  int64_t block_size_;
  int64_t num_layers_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;  // unpublished, unreferenced: a stack, the most recently freed reused first
  std::list<int32_t> lru_;     // published, unreferenced: evicted from the front
  std::unordered_map<uint64_t, int32_t> by_hash_;
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_BLOCK_MANAGER_H_
