#include "engine/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace adak::engine {

int64_t KvCache::BytesPerBlock(const ModelConfig& config, int64_t block_size) {
  return 2 * config.num_layers * block_size * config.kv_dim() * static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(Backend* backend, const ModelConfig& config,
                                                         int64_t num_blocks, int64_t block_size) {
  if (num_blocks <= 0 || block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv cache: num_blocks (", num_blocks, ") and block_size (", block_size, ") must be positive"));
  }
  std::unique_ptr<KvCache> cache(new KvCache());
  cache->num_blocks_ = num_blocks;
  cache->block_size_ = block_size;
  const size_t bytes = static_cast<size_t>(num_blocks * block_size * config.kv_dim()) * sizeof(float);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    ASSIGN_OR_RETURN(auto k, backend->Allocate(bytes));
    ASSIGN_OR_RETURN(auto v, backend->Allocate(bytes));
    cache->k_.push_back(std::move(k));
    cache->v_.push_back(std::move(v));
  }
  return cache;
}

}  // namespace adak::engine
