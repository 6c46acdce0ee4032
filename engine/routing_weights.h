// The extra routing weights of adaptive policies: Ada-K allocators and AdaMoE null experts, loaded from
// their safetensors files and validated against the model.
//
// Allocator file: `layers.{i}.allocator.weight` [E, H] (F32, BF16 or F16) for MoE layers i; metadata
// `format` may be anything but the other adak format (`adak-null-experts`). Layers without an allocator keep native
// top-K. Version 2 (metadata version=2) adds, in every layer with an allocator, `layers.{i}.allocator.router_weight`
// [E, E] and `layers.{i}.allocator.bias` [E]: action logits W x + U f + b, f the token's sorted log router
// probabilities (kernels/cpu/moe_routing.h); a version-1 file means what it always meant. Several allocators can be
// loaded as named profiles (up to kernels::kMaxAllocatorProfiles); a request picks one by name, the first loaded is the
// default. A profile's name is the one given, else the file's metadata `profile`, else "default". The metadata
// `measured_mean_k`, `measured_ppl_delta` (relative perplexity change against native top-K) and `measured_on` record
// what `adak eval --record` measured. Null-experts file: `layers.{i}.null_gate.weight` [m, H], the same m in every
// layer, metadata `format=adak-null-experts` and `top_k=k'` (k' defaults to the native K). Both are widened to fp32 at
// load. Immutable after loading; safe to share across threads.
#ifndef ADAK_ENGINE_ROUTING_WEIGHTS_H_
#define ADAK_ENGINE_ROUTING_WEIGHTS_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "engine/model_config.h"

namespace adak::engine {

// One named Ada-K allocator.
struct AllocatorProfile {
  std::string name;
  int version = 1;
  // Per model layer: [E * H] fp32 allocator rows, or empty (no allocator for that layer).
  std::vector<std::vector<float>> layers;
  // Version 2 only (else empty), per model layer as `layers`: U [E * E] and b [E], the router-confidence terms
  // (kernels::AllocatorExtras).
  std::vector<std::vector<float>> router_weight;
  std::vector<std::vector<float>> bias;
  std::map<std::string, std::string> metadata;

  // True when some layer has rows.
  [[nodiscard]] bool any_layer() const;
  // The metadata `measured_mean_k` / `measured_ppl_delta` as numbers; nullopt when absent or not a number.
  [[nodiscard]] std::optional<double> measured_mean_k() const;
  [[nodiscard]] std::optional<double> measured_ppl_delta() const;
};

struct RoutingWeights {
  // The allocator profiles in load order; [0] is the default one. Empty: no allocator.
  std::vector<AllocatorProfile> allocators;
  // Per model layer: [m * H] fp32 null-expert gate rows, or empty.
  std::vector<std::vector<float>> null_gate;
  int64_t num_null = 0;    // m
  int64_t null_top_k = 0;  // k'
  std::map<std::string, std::string> null_metadata;

  [[nodiscard]] bool has_allocator() const { return !allocators.empty(); }
  // The index of the profile named `name`, or -1.
  [[nodiscard]] int64_t FindProfile(std::string_view name) const;
  // The profile names, comma-separated (for error messages).
  [[nodiscard]] std::string ProfileNames() const;
  [[nodiscard]] bool has_null_experts() const { return num_null > 0; }
};

// An allocator file and the profile name to load it under (empty: the file's metadata `profile`, else
// "default").
struct AllocatorFile {
  std::string name;
  std::filesystem::path path;
};

// Profile names: 1 to 32 characters of [A-Za-z0-9_.-].
[[nodiscard]] absl::Status ValidateProfileName(std::string_view name);

// Loads an allocator file into `weights` as one more profile named `name` (empty: the file's metadata
// `profile`, else "default"). Errors (InvalidArgument unless said): the file's own errors (NotFound, corrupt
// header); a tensor name other than layers.{i}.allocator.weight, a layer index that is not an MoE layer of
// the model, a shape other than [E, H] (names the tensor, both shapes), an integer dtype,
// `format=adak-null-experts`, no allocator tensor at all, a version-2 layer without all three tensors; a bad or
// duplicate profile name; more than
// kernels::kMaxAllocatorProfiles profiles.
[[nodiscard]] absl::Status LoadAllocator(const std::filesystem::path& path, const ModelConfig& config,
                                         RoutingWeights* weights, std::string_view name = {});

// Loads a null-experts file into `weights`; errors as LoadAllocator, plus m differing between layers or a
// top_k outside [1, E + m].
[[nodiscard]] absl::Status LoadNullExperts(const std::filesystem::path& path, const ModelConfig& config,
                                           RoutingWeights* weights);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_ROUTING_WEIGHTS_H_
