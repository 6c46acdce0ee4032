#include "engine/routing_weights.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string_view>

#include "absl/strings/numbers.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/safetensors.h"
#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/norm.h"

namespace adak::engine {
namespace {

// Parses "layers.{i}.<suffix>"; -1 when the name has another form.
int64_t LayerIndex(std::string_view name, std::string_view suffix) {
  constexpr std::string_view kPrefix = "layers.";
  if (name.substr(0, kPrefix.size()) != kPrefix || name.size() <= kPrefix.size() + suffix.size() ||
      name.substr(name.size() - suffix.size()) != suffix) {
    return -1;
  }
  const std::string_view digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - suffix.size());
  int64_t i = -1;
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &i)) {
    return -1;
  }
  return i;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += StrCatStd(i ? ", " : "", shape[i]);
  return s + "]";
}

struct Loaded {
  std::vector<std::vector<float>> per_layer;
  std::map<std::string, std::string> metadata;
  int64_t rows = 0;
};

// Reads every `layers.{i}.<suffix>` tensor of `path` as [rows, H] fp32; rows == expected_rows when > 0.
absl::StatusOr<Loaded> LoadPerLayer(const std::filesystem::path& path, const ModelConfig& config,
                                    std::string_view suffix, std::string_view format, int64_t expected_rows) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  const std::string where = path.string();
  Loaded out;
  out.per_layer.assign(static_cast<size_t>(config.num_layers), {});
  for (const auto& [key, value] : file->metadata()) out.metadata[key] = value;
  // Files saved by other tools carry other formats (torch writes "pt"): only the other adak format is refused.
  if (auto it = out.metadata.find("format");
      it != out.metadata.end() && it->second != format && it->second.rfind("adak-", 0) == 0) {
    return absl::InvalidArgumentError(
        StrCatStd(where, ": metadata format is '", it->second, "', expected '", format, "'"));
  }
  int64_t found = 0;
  for (const auto& [name, view] : file->tensors()) {
    const int64_t layer = LayerIndex(name, suffix);
    if (layer < 0) {
      return absl::InvalidArgumentError(
          StrCatStd(where, ": unexpected tensor '", name, "' (expected layers.{i}", suffix, ")"));
    }
    if (layer >= config.num_layers || !config.moe_layers[static_cast<size_t>(layer)]) {
      return absl::InvalidArgumentError(StrCatStd(where, ": tensor '", name, "' names layer ", layer,
                                                  ", which is not an MoE layer of the model (", config.num_layers,
                                                  " layers)"));
    }
    const int64_t rows = view.shape.size() == 2 ? view.shape[0] : -1;
    const int64_t want_rows = expected_rows > 0 ? expected_rows : (out.rows > 0 ? out.rows : rows);
    if (view.shape.size() != 2 || rows != want_rows || rows <= 0 || view.shape[1] != config.hidden_size) {
      return absl::InvalidArgumentError(StrCatStd(where, ": tensor '", name, "' has shape ", ShapeString(view.shape),
                                                  ", expected [", want_rows > 0 ? StrCatStd(want_rows) : "m", ", ",
                                                  config.hidden_size, "]"));
    }
    if (view.dtype != DType::kF32 && view.dtype != DType::kBF16 && view.dtype != DType::kF16) {
      return absl::InvalidArgumentError(
          StrCatStd(where, ": tensor '", name, "' has dtype ", DTypeName(view.dtype), "; expected F32, BF16 or F16"));
    }
    out.rows = rows;
    std::vector<float>& dst = out.per_layer[static_cast<size_t>(layer)];
    dst.resize(static_cast<size_t>(view.numel()));
    for (int64_t i = 0; i < view.numel(); ++i)
      dst[static_cast<size_t>(i)] = kernels::LoadAsF32(view.data, view.dtype, i);
    ++found;
  }
  if (found == 0) return absl::InvalidArgumentError(StrCatStd(where, ": no layers.{i}", suffix, " tensor"));
  return out;
}

std::optional<double> MetadataNumber(const std::map<std::string, std::string>& metadata, const std::string& key) {
  auto it = metadata.find(key);
  double v = 0.0;
  if (it == metadata.end() || !absl::SimpleAtod(it->second, &v) || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

bool AllocatorProfile::any_layer() const {
  return std::any_of(layers.begin(), layers.end(), [](const auto& a) { return !a.empty(); });
}

std::optional<double> AllocatorProfile::measured_mean_k() const { return MetadataNumber(metadata, "measured_mean_k"); }

std::optional<double> AllocatorProfile::measured_ppl_delta() const {
  return MetadataNumber(metadata, "measured_ppl_delta");
}

int64_t RoutingWeights::FindProfile(std::string_view name) const {
  for (size_t i = 0; i < allocators.size(); ++i) {
    if (allocators[i].name == name) return static_cast<int64_t>(i);
  }
  return -1;
}

std::string RoutingWeights::ProfileNames() const {
  std::string names;
  for (const AllocatorProfile& p : allocators) names += (names.empty() ? "" : ", ") + p.name;
  return names;
}

absl::Status ValidateProfileName(std::string_view name) {
  constexpr size_t kMaxName = 32;
  const bool ok = !name.empty() && name.size() <= kMaxName && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
  if (!ok) {
    return absl::InvalidArgumentError(StrCatStd("allocator profile name '", name.substr(0, 64), "' must be 1 to ",
                                                kMaxName, " characters of [A-Za-z0-9_.-]"));
  }
  return absl::OkStatus();
}

absl::Status LoadAllocator(const std::filesystem::path& path, const ModelConfig& config, RoutingWeights* weights,
                           std::string_view name) {
  if (static_cast<int64_t>(weights->allocators.size()) >= kernels::kMaxAllocatorProfiles) {
    return absl::InvalidArgumentError(
        StrCatStd(path.string(), ": at most ", kernels::kMaxAllocatorProfiles, " allocator profiles can be loaded"));
  }
  ASSIGN_OR_RETURN(Loaded loaded,
                   LoadPerLayer(path, config, ".allocator.weight", "adak-allocator", config.num_experts));
  AllocatorProfile profile;
  profile.name = std::string(name);
  if (profile.name.empty()) {
    auto it = loaded.metadata.find("profile");
    profile.name = it != loaded.metadata.end() ? it->second : "default";
  }
  if (absl::Status valid = ValidateProfileName(profile.name); !valid.ok()) {
    return absl::InvalidArgumentError(StrCatStd(path.string(), ": ", valid.message()));
  }
  if (weights->FindProfile(profile.name) >= 0) {
    return absl::InvalidArgumentError(StrCatStd(path.string(), ": allocator profile '", profile.name,
                                                "' is already loaded (give each file its own NAME=FILE)"));
  }
  profile.layers = std::move(loaded.per_layer);
  profile.metadata = std::move(loaded.metadata);
  weights->allocators.push_back(std::move(profile));
  return absl::OkStatus();
}

absl::Status LoadNullExperts(const std::filesystem::path& path, const ModelConfig& config, RoutingWeights* weights) {
  ASSIGN_OR_RETURN(Loaded loaded, LoadPerLayer(path, config, ".null_gate.weight", "adak-null-experts", 0));
  int64_t top_k = config.num_experts_per_tok;
  if (auto it = loaded.metadata.find("top_k"); it != loaded.metadata.end()) {
    if (!absl::SimpleAtoi(it->second, &top_k) || top_k < 1 || top_k > config.num_experts + loaded.rows) {
      return absl::InvalidArgumentError(StrCatStd(path.string(), ": metadata top_k '", it->second,
                                                  "' must be an integer in [1, ", config.num_experts + loaded.rows,
                                                  "]"));
    }
  }
  weights->null_gate = std::move(loaded.per_layer);
  weights->num_null = loaded.rows;
  weights->null_top_k = top_k;
  weights->null_metadata = std::move(loaded.metadata);
  return absl::OkStatus();
}

}  // namespace adak::engine
