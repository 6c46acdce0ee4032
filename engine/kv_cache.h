// Paged KV cache storage and its block allocator.
//
// KvCache owns, per layer, one K and one V device buffer of [num_blocks, block_size, kv_heads, head_dim]
// fp32 (vLLM's paged layout). Sequences address it through block tables: logical block j of a sequence
// holds its positions [j * block_size, (j + 1) * block_size). BlockAllocator hands out physical block ids
// from a free list. Neither is thread-safe: the scheduler thread owns both.
#ifndef ADAK_ENGINE_KV_CACHE_H_
#define ADAK_ENGINE_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/model_config.h"

namespace adak::engine {

class KvCache {
 public:
  // Bytes one block takes across all layers (K and V).
  [[nodiscard]] static int64_t BytesPerBlock(const ModelConfig& config, int64_t block_size);
  // Errors: InvalidArgument for non-positive sizes; ResourceExhausted when the backend cannot allocate.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KvCache>> Create(Backend* backend, const ModelConfig& config,
                                                                       int64_t num_blocks, int64_t block_size);

  [[nodiscard]] float* k(int64_t layer) const { return static_cast<float*>(k_[static_cast<size_t>(layer)]->data()); }
  [[nodiscard]] float* v(int64_t layer) const { return static_cast<float*>(v_[static_cast<size_t>(layer)]->data()); }
  [[nodiscard]] int64_t num_blocks() const { return num_blocks_; }
  [[nodiscard]] int64_t block_size() const { return block_size_; }

 private:
  KvCache() = default;
  int64_t num_blocks_ = 0;
  int64_t block_size_ = 0;
  std::vector<std::unique_ptr<DeviceBuffer>> k_, v_;
};

class BlockAllocator {
 public:
  explicit BlockAllocator(int64_t num_blocks);
  // A free block id, or nullopt when none is left.
  [[nodiscard]] std::optional<int32_t> Allocate();
  // REQUIRES: `block` came from Allocate and is not already free.
  void Free(int32_t block);
  [[nodiscard]] int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  [[nodiscard]] int64_t num_blocks() const { return num_blocks_; }

 private:
  int64_t num_blocks_;
  std::vector<int32_t> free_;
};

// Blocks needed to hold `tokens` positions.
[[nodiscard]] inline int64_t BlocksFor(int64_t tokens, int64_t block_size) {
  return (tokens + block_size - 1) / block_size;
}

}  // namespace adak::engine

#endif  // ADAK_ENGINE_KV_CACHE_H_
