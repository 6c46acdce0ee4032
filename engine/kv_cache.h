// Paged KV cache storage.
//
// KvCache owns, per layer, one K and one V device buffer of [num_blocks, block_size, kv_heads, head_dim]
// (vLLM's paged layout) of fp32 or bf16 elements (`dtype`; bf16 halves the bytes, so twice the blocks fit a
// budget, and rounds each stored K/V element to 8 significant bits; attention still computes in fp32). Sequences
// address it through block tables: logical block j of a sequence holds its positions [j * block_size, (j + 1) *
// block_size). Who hands out the physical block ids is the owner's business (scheduler/block_manager.h for the server;
// a Session uses block j for its block j). Not thread-safe: one thread (the scheduler's) owns it.
#ifndef ADAK_ENGINE_KV_CACHE_H_
#define ADAK_ENGINE_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/dtype.h"
#include "engine/backend.h"
#include "engine/model_config.h"
#include "kernels/cpu/matmul.h"

namespace adak::engine {

class KvCache {
 public:
  // Bytes one block takes across all layers (K and V) with elements of `dtype`.
  [[nodiscard]] static int64_t BytesPerBlock(const ModelConfig& config, int64_t block_size, DType dtype = DType::kF32);
  // Errors: InvalidArgument for non-positive sizes or a dtype other than kF32 / kBF16; ResourceExhausted
  // when the backend cannot allocate.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KvCache>> Create(Backend* backend, const ModelConfig& config,
                                                                       int64_t num_blocks, int64_t block_size,
                                                                       DType dtype = DType::kF32);

  // This layer's K / V storage, elements of dtype().
  [[nodiscard]] void* k(int64_t layer) const { return k_[static_cast<size_t>(layer)]->data(); }
  [[nodiscard]] void* v(int64_t layer) const { return v_[static_cast<size_t>(layer)]->data(); }
  [[nodiscard]] int64_t num_blocks() const { return num_blocks_; }
  [[nodiscard]] int64_t block_size() const { return block_size_; }
  [[nodiscard]] DType dtype() const { return dtype_; }

 private:
  KvCache() = default;
  int64_t num_blocks_ = 0;
  int64_t block_size_ = 0;
  DType dtype_ = DType::kF32;
  std::vector<std::unique_ptr<DeviceBuffer>> k_, v_;
};

// The --kv-cache-dtype spellings: "f32" (also "fp32", "float32") and "bf16" (also "bfloat16").
// Errors: InvalidArgument naming the value and the choices.
[[nodiscard]] absl::StatusOr<DType> ParseKvCacheDType(std::string_view name);
// "f32" or "bf16".
[[nodiscard]] std::string_view KvCacheDTypeName(DType dtype);

// The --matmul-precision spellings (BackendOptions::dot_precision; beside the --kv-cache-dtype ones): "fp32"
// (also "f32", "float32") and "bf16" (also "bfloat16"). Errors: InvalidArgument naming the value and the choices.
[[nodiscard]] absl::StatusOr<kernels::DotPrecision> ParseDotPrecision(std::string_view name);
// "fp32" or "bf16".
[[nodiscard]] std::string_view DotPrecisionName(kernels::DotPrecision precision);

// Blocks needed to hold `tokens` positions.
[[nodiscard]] inline int64_t BlocksFor(int64_t tokens, int64_t block_size) {
  return (tokens + block_size - 1) / block_size;
}

}  // namespace adak::engine

#endif  // ADAK_ENGINE_KV_CACHE_H_
