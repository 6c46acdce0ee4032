#include "scheduler/block_manager.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace adak::scheduler {

BlockManager::BlockManager(int64_t num_blocks, int64_t block_size)
    : num_blocks_(std::max<int64_t>(num_blocks, 0)),
      block_size_(std::max<int64_t>(block_size, 1)),
      in_use_(static_cast<size_t>(num_blocks_)) {
  free_.reserve(static_cast<size_t>(num_blocks_));
  // Block 0 on top of the stack.
  for (int64_t b = num_blocks_ - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int64_t BlockManager::MissingBlocks(const std::vector<int32_t>& table, int64_t tokens) const {
  return std::max<int64_t>(0, BlocksFor(tokens) - static_cast<int64_t>(table.size()));
}

bool BlockManager::EnsureCapacity(std::vector<int32_t>* table, int64_t tokens) {
  const int64_t missing = MissingBlocks(*table, tokens);
  if (missing > num_free()) return false;
  for (int64_t i = 0; i < missing; ++i) {
    const int32_t b = free_.back();
    free_.pop_back();
    in_use_[static_cast<size_t>(b)] = true;
    table->push_back(b);
  }
  return true;
}

void BlockManager::Release(std::vector<int32_t>* table) {
  for (int32_t b : *table) {
    if (b < 0 || b >= num_blocks_ || !in_use_[static_cast<size_t>(b)]) {
      // A programmer error (the scheduler's bookkeeping is broken): continuing would corrupt other sequences.
      std::fprintf(stderr, "adak scheduler: KV block %d released twice or out of range\n", b);
      std::abort();
    }
    in_use_[static_cast<size_t>(b)] = false;
    free_.push_back(b);
  }
  table->clear();
}

double BlockManager::usage() const {
  return num_blocks_ == 0 ? 0.0 : static_cast<double>(num_used()) / static_cast<double>(num_blocks_);
}

}  // namespace adak::scheduler
