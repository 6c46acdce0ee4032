#include "scheduler/block_manager.h"

#include <algorithm>

#include "base/check.h"

namespace adak::scheduler {
namespace {

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 29;
  return h;
}

}  // namespace

BlockManager::BlockManager(int64_t num_blocks, int64_t block_size, int64_t num_layers)
    : num_blocks_(std::max<int64_t>(num_blocks, 0)),
      block_size_(std::max<int64_t>(block_size, 1)),
      num_layers_(std::max<int64_t>(num_layers, 0)),
      blocks_(static_cast<size_t>(num_blocks_)) {
  free_.reserve(static_cast<size_t>(num_blocks_));
  // Block 0 on top of the stack.
  for (int64_t b = num_blocks_ - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int64_t BlockManager::MissingBlocks(const std::vector<int32_t>& table, int64_t tokens) const {
  return std::max<int64_t>(0, BlocksFor(tokens) - static_cast<int64_t>(table.size()));
}

int32_t BlockManager::Take() {
  int32_t b = 0;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = lru_.front();
    lru_.pop_front();
    Unpublish(b);
  }
  Block& block = blocks_[static_cast<size_t>(b)];
  ADAK_CHECK(block.refs == 0, "KV block ", b, " is allocated while referenced");
  block.refs = 1;
  return b;
}

bool BlockManager::EnsureCapacity(std::vector<int32_t>* table, int64_t tokens) {
  const int64_t missing = MissingBlocks(*table, tokens);
  if (missing > num_free()) return false;
  for (int64_t i = 0; i < missing; ++i) table->push_back(Take());
  return true;
}

void BlockManager::Release(std::vector<int32_t>* table) {
  // Tail first: a sequence's last blocks are the least likely to be shared, so they are evicted first.
  for (auto it = table->rbegin(); it != table->rend(); ++it) {
    const int32_t b = *it;
    ADAK_CHECK(b >= 0 && b < num_blocks_ && blocks_[static_cast<size_t>(b)].refs > 0, "KV block ", b,
               " released twice or out of range");
    Block& block = blocks_[static_cast<size_t>(b)];
    if (--block.refs > 0) continue;
    if (block.published) {
      block.lru = lru_.insert(lru_.end(), b);
    } else {
      free_.push_back(b);
    }
  }
  table->clear();
}

uint64_t BlockManager::BlockHash(uint64_t parent, uint64_t salt, std::span<const int32_t> tokens) {
  uint64_t h = Mix(Mix(0x5adacafe, parent), salt);
  for (int32_t t : tokens) h = Mix(h, static_cast<uint32_t>(t));
  return h;
}

void BlockManager::MatchPrefix(std::span<const int32_t> tokens, uint64_t salt, int64_t max_blocks,
                               std::vector<int32_t>* blocks, std::vector<uint64_t>* hashes) const {
  uint64_t parent = 0;
  const int64_t n = std::min<int64_t>(max_blocks, static_cast<int64_t>(tokens.size()) / block_size_);
  for (int64_t j = 0; j < n; ++j) {
    const auto chunk = tokens.subspan(static_cast<size_t>(j * block_size_), static_cast<size_t>(block_size_));
    const uint64_t h = BlockHash(parent, salt, chunk);
    auto it = by_hash_.find(h);
    if (it == by_hash_.end()) return;
    const Block& block = blocks_[static_cast<size_t>(it->second)];
    // Verify, so a hash collision can never serve another prompt's cache.
    if (block.parent != parent || block.salt != salt || !std::equal(chunk.begin(), chunk.end(), block.tokens.begin())) {
      return;
    }
    blocks->push_back(it->second);
    hashes->push_back(h);
    parent = h;
  }
}

int64_t BlockManager::CountEvictable(std::span<const int32_t> blocks) const {
  int64_t n = 0;
  for (int32_t b : blocks) n += blocks_[static_cast<size_t>(b)].refs == 0 ? 1 : 0;
  return n;
}

void BlockManager::Share(std::vector<int32_t>* table, std::span<const int32_t> blocks) {
  for (int32_t b : blocks) {
    Block& block = blocks_[static_cast<size_t>(b)];
    ADAK_CHECK(block.published, "KV block ", b, " is shared but not published");
    if (block.refs++ == 0) lru_.erase(block.lru);
    table->push_back(b);
  }
}

void BlockManager::Publish(int32_t b, uint64_t hash, uint64_t parent, uint64_t salt, std::span<const int32_t> tokens,
                           std::span<const uint16_t> routed_k) {
  Block& block = blocks_[static_cast<size_t>(b)];
  ADAK_CHECK(block.refs > 0, "KV block ", b, " is published while unreferenced");
  if (block.published || by_hash_.contains(hash)) return;
  block.published = true;
  block.hash = hash;
  block.parent = parent;
  block.salt = salt;
  block.tokens.assign(tokens.begin(), tokens.end());
  block.routed_k.assign(routed_k.begin(), routed_k.end());
  by_hash_.emplace(hash, b);
}

std::span<const uint16_t> BlockManager::routed_k(int32_t block) const {
  return blocks_[static_cast<size_t>(block)].routed_k;
}

void BlockManager::Unpublish(int32_t b) {
  Block& block = blocks_[static_cast<size_t>(b)];
  by_hash_.erase(block.hash);
  block.published = false;
  block.tokens.clear();
  block.routed_k.clear();
}

double BlockManager::usage() const {
  return num_blocks_ == 0 ? 0.0 : static_cast<double>(num_used()) / static_cast<double>(num_blocks_);
}

}  // namespace adak::scheduler
