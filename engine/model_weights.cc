#include "engine/model_weights.h"

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/safetensors.h"

namespace adak::engine {
namespace {

class Binder {
 public:
  explicit Binder(const WeightStore& store) : store_(store) {}

  [[nodiscard]] absl::StatusOr<TensorView> Get(const std::string& name, std::initializer_list<int64_t> shape) const {
    used_.insert(name);
    return store_.Get(name, std::span<const int64_t>(shape.begin(), shape.size()));
  }

  // The store's tensors no Get asked for, without the buffers Hugging Face ignores too.
  [[nodiscard]] std::vector<std::string> Unused() const {
    std::vector<std::string> unused;
    for (std::string& name : store_.TensorNames()) {
      if (used_.contains(name) || name.ends_with("rotary_emb.inv_freq")) continue;
      unused.push_back(std::move(name));
    }
    return unused;
  }

  // `prefix` + {gate,up,down}_proj.weight, or Mixtral's w1 / w3 / w2.
  [[nodiscard]] absl::StatusOr<MlpWeights> Mlp(const std::string& prefix, int64_t hidden, int64_t inter,
                                               bool mixtral_names) const {
    MlpWeights mlp;
    const char* gate = mixtral_names ? "w1.weight" : "gate_proj.weight";
    const char* up = mixtral_names ? "w3.weight" : "up_proj.weight";
    const char* down = mixtral_names ? "w2.weight" : "down_proj.weight";
    ASSIGN_OR_RETURN(mlp.gate, Get(prefix + gate, {inter, hidden}));
    ASSIGN_OR_RETURN(mlp.up, Get(prefix + up, {inter, hidden}));
    ASSIGN_OR_RETURN(mlp.down, Get(prefix + down, {hidden, inter}));
    return mlp;
  }

 private:
  const WeightStore& store_;
  mutable absl::flat_hash_set<std::string> used_;  // every name asked for
};

absl::StatusOr<LayerWeights> BindLayer(const ModelConfig& c, const Binder& b, int64_t i) {
  const std::string p = StrCatStd("model.layers.", i, ".");
  const int64_t h = c.hidden_size;
  LayerWeights w;
  ASSIGN_OR_RETURN(w.input_norm, b.Get(p + "input_layernorm.weight", {h}));
  ASSIGN_OR_RETURN(w.post_attention_norm, b.Get(p + "post_attention_layernorm.weight", {h}));
  ASSIGN_OR_RETURN(w.q_proj, b.Get(p + "self_attn.q_proj.weight", {c.q_dim(), h}));
  ASSIGN_OR_RETURN(w.k_proj, b.Get(p + "self_attn.k_proj.weight", {c.kv_dim(), h}));
  ASSIGN_OR_RETURN(w.v_proj, b.Get(p + "self_attn.v_proj.weight", {c.kv_dim(), h}));
  ASSIGN_OR_RETURN(w.o_proj, b.Get(p + "self_attn.o_proj.weight", {h, c.q_dim()}));
  if (c.attention_bias) {
    ASSIGN_OR_RETURN(w.q_bias, b.Get(p + "self_attn.q_proj.bias", {c.q_dim()}));
    ASSIGN_OR_RETURN(w.k_bias, b.Get(p + "self_attn.k_proj.bias", {c.kv_dim()}));
    ASSIGN_OR_RETURN(w.v_bias, b.Get(p + "self_attn.v_proj.bias", {c.kv_dim()}));
  }
  if (c.qk_norm == QkNorm::kPerHead) {
    ASSIGN_OR_RETURN(w.q_norm, b.Get(p + "self_attn.q_norm.weight", {c.head_dim}));
    ASSIGN_OR_RETURN(w.k_norm, b.Get(p + "self_attn.k_norm.weight", {c.head_dim}));
  } else if (c.qk_norm == QkNorm::kFull) {
    ASSIGN_OR_RETURN(w.q_norm, b.Get(p + "self_attn.q_norm.weight", {c.q_dim()}));
    ASSIGN_OR_RETURN(w.k_norm, b.Get(p + "self_attn.k_norm.weight", {c.kv_dim()}));
  }

  w.is_moe = c.moe_layers.at(static_cast<size_t>(i));
  if (!w.is_moe) {
    ASSIGN_OR_RETURN(w.mlp, b.Mlp(p + "mlp.", h, c.intermediate_size, /*mixtral_names=*/false));
    return w;
  }
  const bool mixtral = c.arch == Architecture::kMixtral;
  const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
  ASSIGN_OR_RETURN(w.router, b.Get(moe + "gate.weight", {c.num_experts, h}));
  w.experts.reserve(static_cast<size_t>(c.num_experts));
  for (int64_t j = 0; j < c.num_experts; ++j) {
    ASSIGN_OR_RETURN(MlpWeights expert, b.Mlp(StrCatStd(moe, "experts.", j, "."), h, c.moe_intermediate_size, mixtral));
    w.experts.push_back(std::move(expert));
  }
  if (c.num_shared_experts > 0) {
    // Qwen2-MoE has one `shared_expert`; DeepSeek fuses its n_shared_experts into one `shared_experts` MLP.
    const char* name = c.arch == Architecture::kDeepseek ? "shared_experts." : "shared_expert.";
    ASSIGN_OR_RETURN(w.shared_expert, b.Mlp(moe + name, h, c.shared_expert_intermediate_size, false));
  }
  if (c.shared_expert_gate) {
    ASSIGN_OR_RETURN(w.shared_expert_gate, b.Get(moe + "shared_expert_gate.weight", {1, h}));
  }
  return w;
}

}  // namespace

absl::StatusOr<ModelWeights> BindModelWeights(const ModelConfig& config, std::shared_ptr<const WeightStore> store) {
  if (store == nullptr) return absl::InvalidArgumentError("BindModelWeights: no weight store");
  if (config.moe_layers.size() != static_cast<size_t>(config.num_layers)) {
    return absl::InvalidArgumentError(StrCatStd("BindModelWeights: config has ", config.moe_layers.size(),
                                                " moe_layers entries for ", config.num_layers, " layers"));
  }
  const Binder b(*store);
  ModelWeights w;
  const int64_t v = config.vocab_size;
  const int64_t h = config.hidden_size;
  ASSIGN_OR_RETURN(w.embed_tokens, b.Get("model.embed_tokens.weight", {v, h}));
  ASSIGN_OR_RETURN(w.final_norm, b.Get("model.norm.weight", {h}));
  if (config.tie_word_embeddings) {
    w.lm_head = w.embed_tokens;
  } else {
    ASSIGN_OR_RETURN(w.lm_head, b.Get("lm_head.weight", {v, h}));
  }
  w.layers.reserve(static_cast<size_t>(config.num_layers));
  for (int64_t i = 0; i < config.num_layers; ++i) {
    ASSIGN_OR_RETURN(LayerWeights layer, BindLayer(config, b, i));
    w.layers.push_back(std::move(layer));
  }
  w.unused_tensors = b.Unused();
  if (!w.unused_tensors.empty()) {
    constexpr size_t kNamed = 8;
    std::string names;
    for (size_t i = 0; i < std::min(kNamed, w.unused_tensors.size()); ++i) {
      absl::StrAppend(&names, i > 0 ? ", " : "", w.unused_tensors[i]);
    }
    if (w.unused_tensors.size() > kNamed)
      absl::StrAppend(&names, ", ... (", w.unused_tensors.size() - kNamed, " more)");
    LogWarning(StrCatStd("model weights: ", w.unused_tensors.size(),
                         " checkpoint tensor(s) no module uses (ignored): ", names));
  }
  w.store = std::move(store);
  return w;
}

}  // namespace adak::engine
