#include "engine/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::engine {

absl::StatusOr<DType> ParseKvCacheDType(std::string_view name) {
  if (name == "f32" || name == "fp32" || name == "float32") return DType::kF32;
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  return absl::InvalidArgumentError(StrCatStd("kv cache dtype '", name.substr(0, 32), "' is not one of f32, bf16"));
}

std::string_view KvCacheDTypeName(DType dtype) { return dtype == DType::kBF16 ? "bf16" : "f32"; }

absl::StatusOr<kernels::DotPrecision> ParseDotPrecision(std::string_view name) {
  if (name == "fp32" || name == "f32" || name == "float32") return kernels::DotPrecision::kFp32;
  if (name == "bf16" || name == "bfloat16") return kernels::DotPrecision::kBf16;
  return absl::InvalidArgumentError(StrCatStd("matmul precision '", name.substr(0, 32), "' is not one of fp32, bf16"));
}

std::string_view DotPrecisionName(kernels::DotPrecision precision) {
  return precision == kernels::DotPrecision::kBf16 ? "bf16" : "fp32";
}

int64_t KvCache::BytesPerBlock(const ModelConfig& config, int64_t block_size, DType dtype) {
  return 2 * config.num_layers * block_size * config.kv_dim() * static_cast<int64_t>(DTypeSize(dtype));
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(Backend* backend, const ModelConfig& config,
                                                         int64_t num_blocks, int64_t block_size, DType dtype) {
  if (num_blocks <= 0 || block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv cache: num_blocks (", num_blocks, ") and block_size (", block_size, ") must be positive"));
  }
  if (dtype != DType::kF32 && dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        StrCatStd("kv cache: element type ", DTypeName(dtype), " is not supported (F32 or BF16)"));
  }
  std::unique_ptr<KvCache> cache(new KvCache());
  cache->num_blocks_ = num_blocks;
  cache->block_size_ = block_size;
  cache->dtype_ = dtype;
  const size_t bytes = static_cast<size_t>(num_blocks * block_size * config.kv_dim()) * DTypeSize(dtype);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    ASSIGN_OR_RETURN(auto k, backend->Allocate(bytes));
    ASSIGN_OR_RETURN(auto v, backend->Allocate(bytes));
    cache->k_.push_back(std::move(k));
    cache->v_.push_back(std::move(v));
  }
  return cache;
}

}  // namespace adak::engine
