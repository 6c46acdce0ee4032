// The extra routing weights of adaptive policies: Ada-K allocators and AdaMoE null experts, loaded from
// their safetensors files and validated against the model.
//
// Allocator file: `layers.{i}.allocator.weight` [E, H] (F32, BF16 or F16) for MoE layers i; metadata
// `format` may be anything but the other adak format (`adak-null-experts`). Layers without an allocator keep native
// top-K. Null-experts file: `layers.{i}.null_gate.weight` [m, H], the same m in every layer, metadata
// `format=adak-null-experts` and `top_k=k'` (k' defaults to the native K). Both are widened to fp32 at
// load. Immutable after loading; safe to share across threads.
#ifndef ADAK_ENGINE_ROUTING_WEIGHTS_H_
#define ADAK_ENGINE_ROUTING_WEIGHTS_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/model_config.h"

namespace adak::engine {

struct RoutingWeights {
  // Per model layer: [E * H] fp32 allocator rows, or empty (no allocator for that layer).
  std::vector<std::vector<float>> allocator;
  std::map<std::string, std::string> allocator_metadata;
  // Per model layer: [m * H] fp32 null-expert gate rows, or empty.
  std::vector<std::vector<float>> null_gate;
  int64_t num_null = 0;    // m
  int64_t null_top_k = 0;  // k'
  std::map<std::string, std::string> null_metadata;

  [[nodiscard]] bool has_allocator() const;
  [[nodiscard]] bool has_null_experts() const { return num_null > 0; }
};

// Loads an allocator file into `weights`. Errors (InvalidArgument unless said): the file's own errors
// (NotFound, corrupt header); a tensor name other than layers.{i}.allocator.weight, a layer index that is
// not an MoE layer of the model, a shape other than [E, H] (names the tensor, both shapes), an integer
// dtype, `format=adak-null-experts`, no allocator tensor at all.
[[nodiscard]] absl::Status LoadAllocator(const std::filesystem::path& path, const ModelConfig& config,
                                         RoutingWeights* weights);

// Loads a null-experts file into `weights`; errors as LoadAllocator, plus m differing between layers or a
// top_k outside [1, E + m].
[[nodiscard]] absl::Status LoadNullExperts(const std::filesystem::path& path, const ModelConfig& config,
                                           RoutingWeights* weights);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_ROUTING_WEIGHTS_H_
