// One description of every supported MoE architecture, parsed from a Hugging Face `config.json`.
//
// Supported `architectures[0]`: MixtralForCausalLM, Qwen2MoeForCausalLM (Qwen1.5-MoE), DeepseekForCausalLM
// (DeepSeek-MoE-16B, v1), OlmoeForCausalLM, Qwen3MoeForCausalLM. Each field below is filled from the
// architecture's own config keys and defaults (those of the HF `*Config` class), so the forward pass never
// branches on architecture names, only on these fields. Plain value type; thread-compatible.
#ifndef ADAK_ENGINE_MODEL_CONFIG_H_
#define ADAK_ENGINE_MODEL_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/dtype.h"

namespace adak::engine {

enum class Architecture { kMixtral, kQwen2Moe, kDeepseek, kOlmoe, kQwen3Moe };

// "MixtralForCausalLM", ...
[[nodiscard]] std::string_view ArchitectureName(Architecture arch);
// Accepts the HF class name; also the short forms used by `adak make-model --arch`
// ("mixtral", "qwen2_moe", "deepseek", "olmoe", "qwen3_moe"). Unknown names: InvalidArgument listing the known.
[[nodiscard]] absl::StatusOr<Architecture> ParseArchitecture(std::string_view name);
// The config.json "model_type" of the architecture, which is also its short form: "mixtral", "qwen2_moe",
// "deepseek", "olmoe", "qwen3_moe".
[[nodiscard]] std::string_view ArchitectureModelType(Architecture arch);

// Normalisation of queries and keys before RoPE.
enum class QkNorm {
  kNone,
  kPerHead,  // Qwen3-MoE: RMSNorm over each head's head_dim ([head_dim] weights).
  kFull,     // OLMoE: RMSNorm over the whole q / k projection ([heads * head_dim] weights).
};

struct ModelConfig {
  Architecture arch = Architecture::kMixtral;
  std::string model_type;  // config.json "model_type", informational.

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;  // H
  int64_t num_layers = 0;   // L
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // GQA: each KV head serves heads / kv_heads query heads.
  int64_t head_dim = 0;             // "head_dim" if present, else hidden / heads.
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  float rms_norm_eps = 1e-6f;
  bool attention_bias = false;  // bias on q, k, v projections (Qwen2-MoE: true).
  QkNorm qk_norm = QkNorm::kNone;
  float clip_qkv = 0.0f;             // OLMoE "clip_qkv"; 0 = off.
  bool tie_word_embeddings = false;  // lm_head = embed_tokens when true.

  // MoE.
  int64_t num_experts = 0;            // E routed experts.
  int64_t num_experts_per_tok = 0;    // native top-K.
  int64_t moe_intermediate_size = 0;  // I of one routed expert.
  // Renormalise the chosen K weights (Mixtral: always true; DeepSeek: only when num_experts_per_tok > 1,
  // as its Hugging Face gate does, so a DeepSeek config with top-1 reads false here).
  bool norm_topk_prob = false;
  int64_t num_shared_experts = 0;               // DeepSeek "n_shared_experts"; Qwen2-MoE: 1 when it has one.
  int64_t shared_expert_intermediate_size = 0;  // total intermediate of the shared expert MLP.
  bool shared_expert_gate = false;              // Qwen2-MoE: sigmoid(gate x) scales the shared expert output.
  int64_t intermediate_size = 0;                // dense MLP intermediate (leading dense / mlp-only layers).
  // Per layer: true when the layer has an MoE block, false for a dense SwiGLU MLP. Size num_layers.
  std::vector<bool> moe_layers;

  // Special token ids from config.json (-1 when absent). The tokenizer merges these with its own files.
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  DType torch_dtype = DType::kBF16;

  [[nodiscard]] int64_t q_dim() const { return num_attention_heads * head_dim; }
  [[nodiscard]] int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  [[nodiscard]] int64_t num_moe_layers() const;

  // Field-by-field equality (the round-trip tests use it).
  [[nodiscard]] bool operator==(const ModelConfig&) const = default;
};

// Parses the text of a config.json. Errors (InvalidArgument): not JSON, unknown architecture (names it and
// lists the supported ones), a required field missing or of the wrong type or out of range (names the field).
[[nodiscard]] absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text);

// Reads `dir/config.json`. NotFound when the file is missing; otherwise as ParseModelConfig, with the path
// in the message.
[[nodiscard]] absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& dir);

// Per-architecture semantics of the config keys (HF `*Config` defaults in parentheses). Required everywhere:
// architectures, vocab_size, hidden_size, num_hidden_layers, num_attention_heads. Shared, optional keys:
// num_key_value_heads (HF class default; OLMoE: num_attention_heads), head_dim (hidden / heads),
// max_position_embeddings, rope_theta (or rope_parameters.rope_theta), rms_norm_eps, tie_word_embeddings
// (false), torch_dtype or dtype ("bfloat16" | "float16" | "float32"; bfloat16), bos_token_id,
// eos_token_id (int or list), hidden_act (must be "silu"); rope_scaling must be absent, null or "default".
//   Mixtral: num_local_experts, num_experts_per_tok, intermediate_size (= the expert's I) required; every
//     layer MoE; norm_topk_prob is always true; sliding_window null or >= max_position_embeddings.
//   Qwen2-MoE: num_experts, num_experts_per_tok, moe_intermediate_size required; shared_expert_intermediate_size
//     (5632; 0 = no shared expert), sigmoid shared_expert_gate whenever there is a shared expert, qkv_bias
//     (true), norm_topk_prob (false), decoder_sparse_step (1), mlp_only_layers ([]); layer l is MoE iff
//     l not in mlp_only_layers and num_experts > 0 and (l + 1) % decoder_sparse_step == 0.
//   DeepSeek (v1): n_routed_experts (null = all dense), num_experts_per_tok and moe_intermediate_size (when
//     routed), n_shared_experts (null = 0; the shared MLP's I = moe_intermediate_size * n_shared_experts),
//     first_k_dense_replace (0), moe_layer_freq (1), norm_topk_prob (false), scoring_func ("softmax" only);
//     layer l is MoE iff n_routed_experts is set and l >= first_k_dense_replace and l % moe_layer_freq == 0.
//   OLMoE: num_experts, num_experts_per_tok, intermediate_size (the expert's I) required; every layer MoE;
//     q/k RMSNorm over the whole projection; clip_qkv (null); norm_topk_prob (false).
//   Qwen3-MoE: as Qwen2-MoE without shared experts or qkv bias; per-head q/k RMSNorm; norm_topk_prob (false).
// `intermediate_size` is required whenever a layer is dense. attention_bias = true is refused for every
// architecture but Qwen2-MoE (their o_proj would carry a bias the engine does not implement).

// A config.json text in the architecture's own HF format (its class name, model_type and keys) from which
// ParseModelConfig returns `config` again, field for field. Qwen layouts are written as decoder_sparse_step 1
// plus mlp_only_layers; DeepSeek as first_k_dense_replace / moe_layer_freq, which can express only the layouts
// ParseModelConfig produces. REQUIRES: `config` is valid (e.g. it came from ParseModelConfig).
[[nodiscard]] std::string ModelConfigToJson(const ModelConfig& config);

// One human-readable line, e.g. "MixtralForCausalLM: L=4 H=256 heads=4/2x64 V=4096 E=8 K=2 I=512 ...".
[[nodiscard]] std::string DescribeModelConfig(const ModelConfig& config);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_MODEL_CONFIG_H_
