// The paged KV block manager: which physical blocks of the KV cache ([0, num_blocks)) each sequence holds.
//
// A sequence's block table maps its logical block j (positions [j * block_size, (j + 1) * block_size)) to
// a physical block. Blocks are allocated on demand, step by step, as a sequence's computed length grows,
// and all returned at once when it finishes or is preempted. Allocation is all-or-nothing: EnsureCapacity
// either covers the requested length or changes nothing. The scheduler thread owns the manager; not
// thread-safe.
#ifndef ADAK_SCHEDULER_BLOCK_MANAGER_H_
#define ADAK_SCHEDULER_BLOCK_MANAGER_H_

#include <cstdint>
#include <vector>

namespace adak::scheduler {

class BlockManager {
 public:
  // REQUIRES: num_blocks >= 0, block_size > 0.
  BlockManager(int64_t num_blocks, int64_t block_size);

  // Blocks a table must hold to cover `tokens` positions.
  [[nodiscard]] int64_t BlocksFor(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  // Blocks `table` still lacks to cover `tokens` positions (0 when it already does).
  [[nodiscard]] int64_t MissingBlocks(const std::vector<int32_t>& table, int64_t tokens) const;

  // Grows `table` to cover `tokens` positions. False (table unchanged) when not enough blocks are free.
  [[nodiscard]] bool EnsureCapacity(std::vector<int32_t>* table, int64_t tokens);
  // Returns every block of `table` and clears it.
  void Release(std::vector<int32_t>* table);

  [[nodiscard]] int64_t num_blocks() const { return num_blocks_; }
  [[nodiscard]] int64_t block_size() const { return block_size_; }
  [[nodiscard]] int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  [[nodiscard]] int64_t num_used() const { return num_blocks_ - num_free(); }
  // used / total (0 for an empty cache).
  [[nodiscard]] double usage() const;

 private:
  int64_t num_blocks_;
  int64_t block_size_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
  std::vector<bool> in_use_;   // [num_blocks] catches double frees
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_BLOCK_MANAGER_H_
