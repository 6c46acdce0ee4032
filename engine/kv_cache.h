// Paged KV cache storage.
//
// KvCache owns, per layer, one K and one V device buffer of [num_blocks, block_size, kv_heads, head_dim]
// fp32 (vLLM's paged layout). Sequences address it through block tables: logical block j of a sequence
// holds its positions [j * block_size, (j + 1) * block_size). Who hands out the physical block ids is the
// owner's business (scheduler/block_manager.h for the server; a Session uses block j for its block j).
// Not thread-safe: one thread (the scheduler's) owns it.
#ifndef ADAK_ENGINE_KV_CACHE_H_
#define ADAK_ENGINE_KV_CACHE_H_

#include <cstdint>
#include <memory>
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

// Blocks needed to hold `tokens` positions.
[[nodiscard]] inline int64_t BlocksFor(int64_t tokens, int64_t block_size) {
  return (tokens + block_size - 1) / block_size;
}

}  // namespace adak::engine

#endif  // ADAK_ENGINE_KV_CACHE_H_
