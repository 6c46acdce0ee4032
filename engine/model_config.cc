#include "engine/model_config.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"

namespace adak::engine {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

struct ArchInfo {
  Architecture arch;
  std::string_view class_name;
  std::string_view model_type;
};

constexpr std::array<ArchInfo, 5> kArchitectures = {{
    {Architecture::kMixtral, "MixtralForCausalLM", "mixtral"},
    {Architecture::kQwen2Moe, "Qwen2MoeForCausalLM", "qwen2_moe"},
    {Architecture::kDeepseek, "DeepseekForCausalLM", "deepseek"},
    {Architecture::kOlmoe, "OlmoeForCausalLM", "olmoe"},
    {Architecture::kQwen3Moe, "Qwen3MoeForCausalLM", "qwen3_moe"},
}};

const ArchInfo& InfoOf(Architecture arch) {
  for (const ArchInfo& info : kArchitectures) {
    if (info.arch == arch) return info;
  }
  return kArchitectures[0];
}

std::string SupportedArchitectures() {
  std::vector<std::string> names;
  names.reserve(std::size(kArchitectures));
  for (const ArchInfo& info : kArchitectures) names.emplace_back(info.class_name);
  return absl::StrJoin(names, ", ");
}

// HF class defaults that differ between architectures.
struct ArchDefaults {
  int64_t max_position_embeddings;
  double rope_theta;
  float rms_norm_eps;
  int64_t num_key_value_heads;  // -1: num_attention_heads
};

ArchDefaults DefaultsOf(Architecture arch) {
  switch (arch) {
    case Architecture::kMixtral: return {int64_t{4096} * 32, 1e6, 1e-5f, 8};
    case Architecture::kQwen2Moe: return {32768, 10000.0, 1e-6f, 16};
    case Architecture::kDeepseek: return {2048, 10000.0, 1e-6f, 32};
    case Architecture::kOlmoe: return {4096, 10000.0, 1e-5f, -1};
    case Architecture::kQwen3Moe: return {32768, 10000.0, 1e-6f, 4};
  }
  return {4096, 10000.0, 1e-6f, -1};
}

// Typed access to the config.json object; every error names the key.
class ConfigReader {
 public:
  ConfigReader(const Json& json, std::string_view arch_name) : json_(json), arch_name_(arch_name) {}

  [[nodiscard]] bool Has(std::string_view key) const {
    auto it = json_.find(key);
    return it != json_.end() && !it->is_null();
  }

  [[nodiscard]] absl::Status Missing(std::string_view key) const {
    return absl::InvalidArgumentError(
        StrCatStd("config.json: required field '", key, "' is missing (", arch_name_, ")"));
  }

  [[nodiscard]] absl::Status Bad(std::string_view key, std::string_view expected) const {
    return absl::InvalidArgumentError(
        StrCatStd("config.json: field '", key, "' must be ", expected, ", got ", json_.at(std::string(key)).dump()));
  }

  [[nodiscard]] absl::StatusOr<int64_t> Int(std::string_view key, int64_t min) const {
    if (!Has(key)) return Missing(key);
    return IntValue(key, min);
  }

  [[nodiscard]] absl::StatusOr<int64_t> Int(std::string_view key, int64_t min, int64_t fallback) const {
    if (!Has(key)) return fallback;
    return IntValue(key, min);
  }

  [[nodiscard]] absl::StatusOr<double> Number(std::string_view key, double fallback, bool positive) const {
    if (!Has(key)) return fallback;
    const Json& v = json_.at(std::string(key));
    if (!v.is_number()) return Bad(key, "a number");
    const double d = v.get<double>();
    if (!std::isfinite(d) || (positive && d <= 0.0)) return Bad(key, positive ? "a positive number" : "finite");
    return d;
  }

  [[nodiscard]] absl::StatusOr<bool> Bool(std::string_view key, bool fallback) const {
    if (!Has(key)) return fallback;
    const Json& v = json_.at(std::string(key));
    if (!v.is_boolean()) return Bad(key, "true or false");
    return v.get<bool>();
  }

  [[nodiscard]] absl::StatusOr<std::string> String(std::string_view key, std::string fallback) const {
    if (!Has(key)) return fallback;
    const Json& v = json_.at(std::string(key));
    if (!v.is_string()) return Bad(key, "a string");
    return v.get<std::string>();
  }

  [[nodiscard]] absl::StatusOr<std::vector<int64_t>> IntList(std::string_view key) const {
    std::vector<int64_t> out;
    if (!Has(key)) return out;
    const Json& v = json_.at(std::string(key));
    if (v.is_number_integer()) {
      out.push_back(v.get<int64_t>());
      return out;
    }
    if (!v.is_array()) return Bad(key, "an integer or a list of integers");
    for (const Json& e : v) {
      if (!e.is_number_integer()) return Bad(key, "an integer or a list of integers");
      out.push_back(e.get<int64_t>());
    }
    return out;
  }

  [[nodiscard]] const Json* Get(std::string_view key) const {
    auto it = json_.find(key);
    return it == json_.end() ? nullptr : &*it;
  }

 private:
  [[nodiscard]] absl::StatusOr<int64_t> IntValue(std::string_view key, int64_t min) const {
    const Json& v = json_.at(std::string(key));
    if (!v.is_number_integer()) return Bad(key, StrCatStd("an integer >= ", min));
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return Bad(key, "an integer that fits in 64 bits");
    }
    const int64_t i = v.get<int64_t>();
    if (i < min) return Bad(key, StrCatStd("an integer >= ", min));
    return i;
  }

  const Json& json_;
  std::string_view arch_name_;
};

absl::StatusOr<DType> ParseTorchDtype(const ConfigReader& r) {
  const std::string_view key = r.Has("torch_dtype") ? "torch_dtype" : "dtype";
  // (Not ASSIGN_OR_RETURN into a std::string: GCC 12 -O3 reports a false maybe-uninitialized there.)
  const absl::StatusOr<std::string> value = r.String(key, "bfloat16");
  if (!value.ok()) return value.status();
  const std::string& name = *value;
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float16") return DType::kF16;
  if (name == "float32") return DType::kF32;
  return absl::InvalidArgumentError(
      StrCatStd("config.json: field '", key, "' is '", name, "'; supported: bfloat16, float16, float32"));
}

std::string_view TorchDtypeName(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    default: return "bfloat16";
  }
}

absl::Status RefuseAttentionBias(const ConfigReader& r, std::string_view arch_name) {
  ASSIGN_OR_RETURN(bool bias, r.Bool("attention_bias", false));
  if (bias) {
    return absl::InvalidArgumentError(StrCatStd("config.json: field 'attention_bias' = true is not supported for ",
                                                arch_name, " (o_proj would need a bias)"));
  }
  return absl::OkStatus();
}

// Qwen2-MoE / Qwen3-MoE layer layout.
absl::Status QwenLayout(const ConfigReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(int64_t step, r.Int("decoder_sparse_step", 1, 1));
  ASSIGN_OR_RETURN(std::vector<int64_t> mlp_only, r.IntList("mlp_only_layers"));
  c.moe_layers.assign(static_cast<size_t>(c.num_layers), false);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const bool dense = std::find(mlp_only.begin(), mlp_only.end(), l) != mlp_only.end();
    c.moe_layers[static_cast<size_t>(l)] = !dense && c.num_experts > 0 && (l + 1) % step == 0;
  }
  return absl::OkStatus();
}

absl::Status ParseArchitectureFields(const ConfigReader& r, ModelConfig& c) {
  const std::string_view name = ArchitectureName(c.arch);
  switch (c.arch) {
    case Architecture::kMixtral: {
      ASSIGN_OR_RETURN(c.num_experts, r.Int("num_local_experts", 1));
      ASSIGN_OR_RETURN(c.num_experts_per_tok, r.Int("num_experts_per_tok", 1));
      ASSIGN_OR_RETURN(c.intermediate_size, r.Int("intermediate_size", 1));
      c.moe_intermediate_size = c.intermediate_size;
      c.norm_topk_prob = true;
      c.moe_layers.assign(static_cast<size_t>(c.num_layers), true);
      if (r.Has("sliding_window")) {
        ASSIGN_OR_RETURN(int64_t window, r.Int("sliding_window", 1));
        if (window < c.max_position_embeddings) {
          return absl::InvalidArgumentError(
              StrCatStd("config.json: field 'sliding_window' = ", window,
                        " is not supported (sliding-window attention); it must be null or >= max_position_embeddings (",
                        c.max_position_embeddings, ")"));
        }
      }
      break;
    }
    case Architecture::kQwen2Moe:
    case Architecture::kQwen3Moe: {
      ASSIGN_OR_RETURN(c.num_experts, r.Int("num_experts", 0));
      ASSIGN_OR_RETURN(c.norm_topk_prob, r.Bool("norm_topk_prob", false));
      if (c.num_experts > 0) {
        ASSIGN_OR_RETURN(c.num_experts_per_tok, r.Int("num_experts_per_tok", 1));
        ASSIGN_OR_RETURN(c.moe_intermediate_size, r.Int("moe_intermediate_size", 1));
      }
      ASSIGN_OR_RETURN(c.intermediate_size, r.Int("intermediate_size", 1, 0));
      ASSIGN_OR_RETURN(bool sliding, r.Bool("use_sliding_window", false));
      if (sliding) {
        return absl::InvalidArgumentError(
            "config.json: field 'use_sliding_window' = true is not supported (sliding-window attention)");
      }
      if (c.arch == Architecture::kQwen2Moe) {
        ASSIGN_OR_RETURN(c.attention_bias, r.Bool("qkv_bias", true));
        if (c.num_experts > 0) {
          ASSIGN_OR_RETURN(c.shared_expert_intermediate_size, r.Int("shared_expert_intermediate_size", 0, 5632));
          c.num_shared_experts = c.shared_expert_intermediate_size > 0 ? 1 : 0;
          c.shared_expert_gate = c.num_shared_experts > 0;
        }
      } else {
        RETURN_IF_ERROR(RefuseAttentionBias(r, name));
        c.qk_norm = QkNorm::kPerHead;
      }
      RETURN_IF_ERROR(QwenLayout(r, c));
      break;
    }
    case Architecture::kDeepseek: {
      RETURN_IF_ERROR(RefuseAttentionBias(r, name));
      ASSIGN_OR_RETURN(std::string scoring, r.String("scoring_func", "softmax"));
      if (scoring != "softmax") {
        return absl::InvalidArgumentError(
            StrCatStd("config.json: field 'scoring_func' is '", scoring, "'; supported: softmax"));
      }
      ASSIGN_OR_RETURN(c.norm_topk_prob, r.Bool("norm_topk_prob", false));
      ASSIGN_OR_RETURN(int64_t first_dense, r.Int("first_k_dense_replace", 0, 0));
      ASSIGN_OR_RETURN(int64_t freq, r.Int("moe_layer_freq", 1, 1));
      ASSIGN_OR_RETURN(c.intermediate_size, r.Int("intermediate_size", 1, 0));
      const bool routed = r.Has("n_routed_experts");
      if (routed) {
        ASSIGN_OR_RETURN(c.num_experts, r.Int("n_routed_experts", 1));
        ASSIGN_OR_RETURN(c.num_experts_per_tok, r.Int("num_experts_per_tok", 1));
        // Hugging Face's DeepSeek gate renormalises only when top_k > 1 (`if self.top_k > 1 and
        // self.norm_topk_prob`): a single expert keeps its softmax weight.
        if (c.num_experts_per_tok == 1) c.norm_topk_prob = false;
        ASSIGN_OR_RETURN(c.moe_intermediate_size, r.Int("moe_intermediate_size", 1));
        ASSIGN_OR_RETURN(c.num_shared_experts, r.Int("n_shared_experts", 0, 0));
        c.shared_expert_intermediate_size = c.moe_intermediate_size * c.num_shared_experts;
      }
      c.moe_layers.assign(static_cast<size_t>(c.num_layers), false);
      for (int64_t l = 0; l < c.num_layers; ++l) {
        c.moe_layers[static_cast<size_t>(l)] = routed && l >= first_dense && l % freq == 0;
      }
      break;
    }
    case Architecture::kOlmoe: {
      RETURN_IF_ERROR(RefuseAttentionBias(r, name));
      ASSIGN_OR_RETURN(c.num_experts, r.Int("num_experts", 1));
      ASSIGN_OR_RETURN(c.num_experts_per_tok, r.Int("num_experts_per_tok", 1));
      ASSIGN_OR_RETURN(c.intermediate_size, r.Int("intermediate_size", 1));
      c.moe_intermediate_size = c.intermediate_size;
      ASSIGN_OR_RETURN(c.norm_topk_prob, r.Bool("norm_topk_prob", false));
      ASSIGN_OR_RETURN(double clip, r.Number("clip_qkv", 0.0, /*positive=*/true));
      c.clip_qkv = static_cast<float>(clip);
      c.qk_norm = QkNorm::kFull;
      c.moe_layers.assign(static_cast<size_t>(c.num_layers), true);
      break;
    }
  }
  if (c.num_experts > 0 && c.num_experts_per_tok > c.num_experts) {
    return absl::InvalidArgumentError(StrCatStd("config.json: field 'num_experts_per_tok' = ", c.num_experts_per_tok,
                                                " exceeds the number of experts (", c.num_experts, ")"));
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (!c.moe_layers[static_cast<size_t>(l)] && c.intermediate_size <= 0) {
      return absl::InvalidArgumentError(
          StrCatStd("config.json: required field 'intermediate_size' is missing (layer ", l, " is a dense MLP)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseJson(const Json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("config.json: the top level is not a JSON object");
  ModelConfig c;
  {
    auto it = j.find("architectures");
    if (it == j.end() || it->is_null()) {
      return absl::InvalidArgumentError(
          StrCatStd("config.json: required field 'architectures' is missing "
                    "(supported: ",
                    SupportedArchitectures(), ")"));
    }
    if (!it->is_array() || it->empty() || !(*it)[0].is_string()) {
      return absl::InvalidArgumentError("config.json: field 'architectures' must be a non-empty list of strings");
    }
    const std::string name = (*it)[0].get<std::string>();
    bool found = false;
    for (const ArchInfo& info : kArchitectures) {
      if (info.class_name == name) {
        c.arch = info.arch;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          StrCatStd("config.json: unsupported architecture '", name, "' (supported: ", SupportedArchitectures(), ")"));
    }
  }
  const std::string_view arch_name = ArchitectureName(c.arch);
  const ConfigReader r(j, arch_name);
  const ArchDefaults defaults = DefaultsOf(c.arch);

  ASSIGN_OR_RETURN(c.model_type, r.String("model_type", std::string(ArchitectureModelType(c.arch))));
  ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size", 1));
  ASSIGN_OR_RETURN(c.hidden_size, r.Int("hidden_size", 1));
  ASSIGN_OR_RETURN(c.num_layers, r.Int("num_hidden_layers", 1));
  ASSIGN_OR_RETURN(c.num_attention_heads, r.Int("num_attention_heads", 1));
  ASSIGN_OR_RETURN(c.num_key_value_heads,
                   r.Int("num_key_value_heads", 1,
                         defaults.num_key_value_heads > 0 ? defaults.num_key_value_heads : c.num_attention_heads));
  if (c.num_key_value_heads > c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(StrCatStd("config.json: field 'num_key_value_heads' = ", c.num_key_value_heads,
                                                " must divide num_attention_heads (", c.num_attention_heads, ")"));
  }
  // DeepSeek v1 and OLMoE always use hidden / heads; the others honour an explicit head_dim.
  const bool fixed_head_dim = c.arch == Architecture::kDeepseek || c.arch == Architecture::kOlmoe;
  if (r.Has("head_dim") && !fixed_head_dim) {
    ASSIGN_OR_RETURN(c.head_dim, r.Int("head_dim", 1));
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return absl::InvalidArgumentError(StrCatStd("config.json: hidden_size (", c.hidden_size,
                                                  ") is not a multiple of num_attention_heads (", c.num_attention_heads,
                                                  ")", fixed_head_dim ? "" : " and field 'head_dim' is missing"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
    if (r.Has("head_dim")) {
      ASSIGN_OR_RETURN(int64_t head_dim, r.Int("head_dim", 1));
      if (head_dim != c.head_dim) {
        return absl::InvalidArgumentError(StrCatStd("config.json: field 'head_dim' = ", head_dim, " must equal ",
                                                    "hidden_size / num_attention_heads (", c.head_dim, ") for ",
                                                    arch_name));
      }
    }
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(StrCatStd("config.json: head_dim = ", c.head_dim,
                                                " is odd; rotary position embeddings (RoPE) rotate pairs of "
                                                "dimensions and need an even head_dim"));
  }
  ASSIGN_OR_RETURN(c.max_position_embeddings, r.Int("max_position_embeddings", 1, defaults.max_position_embeddings));
  double theta = defaults.rope_theta;
  if (const Json* params = r.Get("rope_parameters");
      params != nullptr && params->is_object() && params->contains("rope_theta")) {
    const ConfigReader pr(*params, arch_name);
    ASSIGN_OR_RETURN(theta, pr.Number("rope_theta", theta, /*positive=*/true));
  }
  ASSIGN_OR_RETURN(c.rope_theta, r.Number("rope_theta", theta, /*positive=*/true));
  for (std::string_view key : {"rope_scaling", "rope_parameters"}) {
    const Json* scaling = r.Get(key);
    if (scaling == nullptr || scaling->is_null()) continue;
    std::string type = "default";
    if (scaling->is_object()) {
      for (const char* type_key : {"rope_type", "type"}) {
        if (scaling->contains(type_key) && (*scaling)[type_key].is_string()) type = (*scaling)[type_key];
      }
    } else {
      type = scaling->dump();
    }
    if (type != "default") {
      return absl::InvalidArgumentError(
          StrCatStd("config.json: field '", key, "' of type '", type, "' is not supported (only plain RoPE)"));
    }
  }
  ASSIGN_OR_RETURN(double eps, r.Number("rms_norm_eps", defaults.rms_norm_eps, /*positive=*/true));
  c.rms_norm_eps = static_cast<float>(eps);
  ASSIGN_OR_RETURN(c.tie_word_embeddings, r.Bool("tie_word_embeddings", false));
  ASSIGN_OR_RETURN(std::string act, r.String("hidden_act", "silu"));
  if (act != "silu") {
    return absl::InvalidArgumentError(StrCatStd("config.json: field 'hidden_act' is '", act, "'; supported: silu"));
  }
  ASSIGN_OR_RETURN(c.torch_dtype, ParseTorchDtype(r));
  ASSIGN_OR_RETURN(std::vector<int64_t> bos, r.IntList("bos_token_id"));
  if (bos.size() > 1) return r.Bad("bos_token_id", "an integer");
  c.bos_token_id = bos.empty() ? -1 : bos[0];
  ASSIGN_OR_RETURN(c.eos_token_ids, r.IntList("eos_token_id"));
  for (int64_t id : c.eos_token_ids) {
    if (id < 0) return r.Bad("eos_token_id", "non-negative");
  }
  if (c.bos_token_id < -1) return r.Bad("bos_token_id", "non-negative");

  RETURN_IF_ERROR(ParseArchitectureFields(r, c));
  return c;
}

// The shortest decimal that reads back as `f` as a float, stored as a double (so JSON shows "1e-05").
double FloatForJson(float f) {
  std::array<char, 64> buf;
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), f);
  if (ec != std::errc()) return static_cast<double>(f);
  return std::strtod(std::string(buf.data(), end).c_str(), nullptr);
}

}  // namespace

std::string_view ArchitectureName(Architecture arch) { return InfoOf(arch).class_name; }

std::string_view ArchitectureModelType(Architecture arch) { return InfoOf(arch).model_type; }

absl::StatusOr<Architecture> ParseArchitecture(std::string_view name) {
  for (const ArchInfo& info : kArchitectures) {
    if (name == info.class_name || name == info.model_type) return info.arch;
  }
  std::vector<std::string> known;
  known.reserve(std::size(kArchitectures));
  for (const ArchInfo& info : kArchitectures) known.push_back(StrCatStd(info.model_type, " (", info.class_name, ")"));
  return absl::InvalidArgumentError(
      StrCatStd("unknown architecture '", name, "'; supported: ", absl::StrJoin(known, ", ")));
}

int64_t ModelConfig::num_moe_layers() const {
  return static_cast<int64_t>(std::count(moe_layers.begin(), moe_layers.end(), true));
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text) {
  try {
    Json j = Json::parse(json_text.begin(), json_text.end());
    return ParseJson(j);
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(StrCatStd("config.json is not valid JSON: ", e.what()));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(StrCatStd("config.json: ", e.what()));
  }
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(StrCatStd("model config not found: ", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InternalError(StrCatStd("cannot read ", path.string()));
  absl::StatusOr<ModelConfig> config = ParseModelConfig(text);
  if (!config.ok()) {
    return absl::Status(config.status().code(), StrCatStd(path.string(), ": ", config.status().message()));
  }
  return config;
}

std::string ModelConfigToJson(const ModelConfig& c) {
  OrderedJson j;
  j["architectures"] = OrderedJson::array({std::string(ArchitectureName(c.arch))});
  j["model_type"] = c.model_type.empty() ? std::string(ArchitectureModelType(c.arch)) : c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  const bool any_dense = c.num_moe_layers() < c.num_layers;
  const int64_t expert_i = c.moe_intermediate_size;
  switch (c.arch) {
    case Architecture::kMixtral:
    case Architecture::kOlmoe: j["intermediate_size"] = expert_i; break;
    default:
      if (c.intermediate_size > 0 || any_dense) j["intermediate_size"] = c.intermediate_size;
      break;
  }
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  if (c.arch != Architecture::kDeepseek && c.arch != Architecture::kOlmoe) j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["initializer_range"] = 0.02;
  j["rms_norm_eps"] = FloatForJson(c.rms_norm_eps);
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["use_cache"] = true;
  switch (c.arch) {
    case Architecture::kMixtral:
      j["num_local_experts"] = c.num_experts;
      j["num_experts_per_tok"] = c.num_experts_per_tok;
      j["sliding_window"] = nullptr;
      j["router_aux_loss_coef"] = 0.001;
      break;
    case Architecture::kQwen2Moe:
    case Architecture::kQwen3Moe: {
      j["num_experts"] = c.num_experts;
      j["num_experts_per_tok"] = c.num_experts_per_tok;
      j["moe_intermediate_size"] = c.moe_intermediate_size;
      if (c.arch == Architecture::kQwen2Moe) {
        j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
        j["qkv_bias"] = c.attention_bias;
      } else {
        j["attention_bias"] = false;
      }
      j["norm_topk_prob"] = c.norm_topk_prob;
      j["decoder_sparse_step"] = 1;
      OrderedJson mlp_only = OrderedJson::array();
      if (c.num_experts > 0) {
        for (int64_t l = 0; l < c.num_layers; ++l) {
          if (!c.moe_layers[static_cast<size_t>(l)]) mlp_only.push_back(l);
        }
      }
      j["mlp_only_layers"] = mlp_only;
      j["use_sliding_window"] = false;
      j["router_aux_loss_coef"] = 0.001;
      break;
    }
    case Architecture::kDeepseek: {
      // Find (first_k_dense_replace, moe_layer_freq) reproducing moe_layers.
      int64_t first = c.num_layers;
      for (int64_t l = 0; l < c.num_layers; ++l) {
        if (c.moe_layers[static_cast<size_t>(l)]) {
          first = l;
          break;
        }
      }
      int64_t freq = 1;
      for (int64_t f = 1; f <= std::max<int64_t>(1, c.num_layers); ++f) {
        bool match = true;
        for (int64_t l = 0; l < c.num_layers && match; ++l) {
          match = c.moe_layers[static_cast<size_t>(l)] == (l >= first && l % f == 0);
        }
        if (match) {
          freq = f;
          break;
        }
      }
      if (c.num_experts > 0) {
        j["n_routed_experts"] = c.num_experts;
        j["num_experts_per_tok"] = c.num_experts_per_tok;
        j["moe_intermediate_size"] = c.moe_intermediate_size;
        j["n_shared_experts"] = c.num_shared_experts > 0 ? OrderedJson(c.num_shared_experts) : OrderedJson(nullptr);
      } else {
        j["n_routed_experts"] = nullptr;
        j["n_shared_experts"] = nullptr;
        j["num_experts_per_tok"] = nullptr;
      }
      j["first_k_dense_replace"] = first;
      j["moe_layer_freq"] = freq;
      j["norm_topk_prob"] = c.norm_topk_prob;
      j["scoring_func"] = "softmax";
      j["attention_bias"] = false;
      j["aux_loss_alpha"] = 0.001;
      break;
    }
    case Architecture::kOlmoe:
      j["num_experts"] = c.num_experts;
      j["num_experts_per_tok"] = c.num_experts_per_tok;
      j["norm_topk_prob"] = c.norm_topk_prob;
      j["clip_qkv"] = c.clip_qkv > 0.0f ? OrderedJson(FloatForJson(c.clip_qkv)) : OrderedJson(nullptr);
      j["attention_bias"] = false;
      j["router_aux_loss_coef"] = 0.01;
      break;
  }
  j["bos_token_id"] = c.bos_token_id >= 0 ? OrderedJson(c.bos_token_id) : OrderedJson(nullptr);
  if (c.eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else {
    j["eos_token_id"] = c.eos_token_ids;
  }
  j["torch_dtype"] = TorchDtypeName(c.torch_dtype);
  return j.dump(2) + "\n";
}

std::string DescribeModelConfig(const ModelConfig& c) {
  std::string s =
      absl::StrFormat("%s: L=%d H=%d heads=%d/%dx%d V=%d", ArchitectureName(c.arch), c.num_layers, c.hidden_size,
                      c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.vocab_size);
  absl::StrAppendFormat(&s, " E=%d K=%d I=%d moe_layers=%d/%d", c.num_experts, c.num_experts_per_tok,
                        c.moe_intermediate_size, c.num_moe_layers(), c.num_layers);
  if (c.num_moe_layers() < c.num_layers) absl::StrAppendFormat(&s, " dense_I=%d", c.intermediate_size);
  if (c.num_shared_experts > 0) {
    absl::StrAppendFormat(&s, " shared=%dx(I=%d)%s", c.num_shared_experts, c.shared_expert_intermediate_size,
                          c.shared_expert_gate ? "+gate" : "");
  }
  absl::StrAppendFormat(&s, " norm_topk=%s", c.norm_topk_prob ? "true" : "false");
  if (c.attention_bias) s += " qkv_bias";
  if (c.qk_norm == QkNorm::kPerHead) s += " qk_norm=per_head";
  if (c.qk_norm == QkNorm::kFull) s += " qk_norm=full";
  if (c.clip_qkv > 0.0f) absl::StrAppendFormat(&s, " clip_qkv=%g", c.clip_qkv);
  absl::StrAppendFormat(&s, " theta=%g eps=%g%s %s", c.rope_theta, c.rms_norm_eps, c.tie_word_embeddings ? " tied" : "",
                        TorchDtypeName(c.torch_dtype));
  return s;
}

}  // namespace adak::engine
