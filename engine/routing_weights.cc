#include "engine/routing_weights.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
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

// One per-layer tensor kind of a routing file: `layers.{i}<suffix>` of shape [rows, cols] ([rows] when cols
// is 0); rows 0 = whatever the first such tensor has, the same in every layer.
struct TensorKind {
  std::string_view suffix;
  int64_t rows = 0;
  int64_t cols = 0;
};

struct Loaded {
  std::vector<std::vector<std::vector<float>>> per_layer;  // [kind][layer]: the values, or empty
  std::map<std::string, std::string> metadata;
  int64_t rows = 0;            // of the first kind
  std::vector<int64_t> found;  // [kind]: tensors of that kind
};

// Reads every `layers.{i}<suffix>` tensor of `path` as fp32, for the given kinds (any other name is refused).
absl::StatusOr<Loaded> LoadPerLayer(const std::filesystem::path& path, const ModelConfig& config,
                                    std::span<const TensorKind> kinds, std::string_view format) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  const std::string where = path.string();
  Loaded out;
  out.per_layer.assign(kinds.size(), std::vector<std::vector<float>>(static_cast<size_t>(config.num_layers)));
  out.found.assign(kinds.size(), 0);
  std::vector<int64_t> kind_rows(kinds.size(), 0);
  for (const auto& [key, value] : file->metadata()) out.metadata[key] = value;
  // Files saved by other tools carry other formats (torch writes "pt"): only the other adak format is refused.
  if (auto it = out.metadata.find("format");
      it != out.metadata.end() && it->second != format && it->second.rfind("adak-", 0) == 0) {
    return absl::InvalidArgumentError(
        StrCatStd(where, ": metadata format is '", it->second, "', expected '", format, "'"));
  }
  for (const auto& [name, view] : file->tensors()) {
    int64_t layer = -1;
    size_t kind = 0;
    for (; kind < kinds.size(); ++kind) {
      layer = LayerIndex(name, kinds[kind].suffix);
      if (layer >= 0) break;
    }
    if (layer < 0) {
      std::string expected;
      for (const TensorKind& k : kinds) expected += StrCatStd(expected.empty() ? "" : " or ", "layers.{i}", k.suffix);
      return absl::InvalidArgumentError(StrCatStd(where, ": unexpected tensor '", name, "' (expected ", expected, ")"));
    }
    if (layer >= config.num_layers || !config.moe_layers[static_cast<size_t>(layer)]) {
      return absl::InvalidArgumentError(StrCatStd(where, ": tensor '", name, "' names layer ", layer,
                                                  ", which is not an MoE layer of the model (", config.num_layers,
                                                  " layers)"));
    }
    const TensorKind& k = kinds[kind];
    const bool matrix = k.cols > 0;
    const int64_t rows = view.shape.size() == (matrix ? 2u : 1u) ? view.shape[0] : -1;
    const int64_t want_rows = k.rows > 0 ? k.rows : (kind_rows[kind] > 0 ? kind_rows[kind] : rows);
    if (rows != want_rows || rows <= 0 || (matrix && view.shape[1] != k.cols)) {
      return absl::InvalidArgumentError(StrCatStd(where, ": tensor '", name, "' has shape ", ShapeString(view.shape),
                                                  ", expected [", want_rows > 0 ? StrCatStd(want_rows) : "m",
                                                  matrix ? StrCatStd(", ", k.cols) : "", "]"));
    }
    if (view.dtype != DType::kF32 && view.dtype != DType::kBF16 && view.dtype != DType::kF16) {
      return absl::InvalidArgumentError(
          StrCatStd(where, ": tensor '", name, "' has dtype ", DTypeName(view.dtype), "; expected F32, BF16 or F16"));
    }
    kind_rows[kind] = rows;
    std::vector<float>& dst = out.per_layer[kind][static_cast<size_t>(layer)];
    dst.resize(static_cast<size_t>(view.numel()));
    for (int64_t i = 0; i < view.numel(); ++i)
      dst[static_cast<size_t>(i)] = kernels::LoadAsF32(view.data, view.dtype, i);
    ++out.found[kind];
  }
  if (out.found[0] == 0)
    return absl::InvalidArgumentError(StrCatStd(where, ": no layers.{i}", kinds[0].suffix, " tensor"));
  out.rows = kind_rows[0];
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
  const int64_t e = config.num_experts;
  const TensorKind kinds[] = {
      {".allocator.weight", e, config.hidden_size}, {".allocator.router_weight", e, e}, {".allocator.bias", e, 0}};
  ASSIGN_OR_RETURN(Loaded loaded, LoadPerLayer(path, config, kinds, "adak-allocator"));
  // Version 2: every layer with an allocator has its router weight and bias, and no layer has them alone.
  const bool v2 = loaded.found[1] > 0 || loaded.found[2] > 0;
  for (int64_t l = 0; l < config.num_layers && v2; ++l) {
    const auto layer = static_cast<size_t>(l);
    const bool w = !loaded.per_layer[0][layer].empty(), u = !loaded.per_layer[1][layer].empty(),
               b = !loaded.per_layer[2][layer].empty();
    if (w != u || w != b) {
      return absl::InvalidArgumentError(StrCatStd(
          path.string(), ": layer ", l,
          " must have all of layers.{i}.allocator.weight, .allocator.router_weight and .allocator.bias (a version-2 "
          "allocator) or none"));
    }
  }
  AllocatorProfile profile;
  profile.version = v2 ? 2 : 1;
  if (v2) {
    profile.router_weight = std::move(loaded.per_layer[1]);
    profile.bias = std::move(loaded.per_layer[2]);
  }
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
  profile.layers = std::move(loaded.per_layer[0]);
  profile.metadata = std::move(loaded.metadata);
  weights->allocators.push_back(std::move(profile));
  return absl::OkStatus();
}

absl::Status LoadNullExperts(const std::filesystem::path& path, const ModelConfig& config, RoutingWeights* weights) {
  const TensorKind kinds[] = {{".null_gate.weight", 0, config.hidden_size}};
  ASSIGN_OR_RETURN(Loaded loaded, LoadPerLayer(path, config, kinds, "adak-null-experts"));
  int64_t top_k = config.num_experts_per_tok;
  if (auto it = loaded.metadata.find("top_k"); it != loaded.metadata.end()) {
    if (!absl::SimpleAtoi(it->second, &top_k) || top_k < 1 || top_k > config.num_experts + loaded.rows) {
      return absl::InvalidArgumentError(StrCatStd(path.string(), ": metadata top_k '", it->second,
                                                  "' must be an integer in [1, ", config.num_experts + loaded.rows,
                                                  "]"));
    }
  }
  weights->null_gate = std::move(loaded.per_layer[0]);
  weights->num_null = loaded.rows;
  weights->null_top_k = top_k;
  weights->null_metadata = std::move(loaded.metadata);
  return absl::OkStatus();
}

}  // namespace adak::engine
