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
  int64_t hidden_size = 0;                  // H
  int64_t num_layers = 0;                   // L
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;          // GQA: each KV head serves heads / kv_heads query heads.
  int64_t head_dim = 0;                     // "head_dim" if present, else hidden / heads.
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  float rms_norm_eps = 1e-6f;
  bool attention_bias = false;              // bias on q, k, v projections (Qwen2-MoE: true).
  QkNorm qk_norm = QkNorm::kNone;
  float clip_qkv = 0.0f;                    // OLMoE "clip_qkv"; 0 = off.
  bool tie_word_embeddings = false;         // lm_head = embed_tokens when true.

  // MoE.
  int64_t num_experts = 0;                  // E routed experts.
  int64_t num_experts_per_tok = 0;          // native top-K.
  int64_t moe_intermediate_size = 0;        // I of one routed expert.
  bool norm_topk_prob = false;              // renormalise the chosen K weights (Mixtral: always true).
  int64_t num_shared_experts = 0;           // DeepSeek "n_shared_experts"; Qwen2-MoE: 1 when it has one.
  int64_t shared_expert_intermediate_size = 0;  // total intermediate of the shared expert MLP.
  bool shared_expert_gate = false;          // Qwen2-MoE: sigmoid(gate x) scales the shared expert output.
  int64_t intermediate_size = 0;            // dense MLP intermediate (leading dense / mlp-only layers).
  // Per layer: true when the layer has an MoE block, false for a dense SwiGLU MLP. Size num_layers.
  std::vector<bool> moe_layers;

  // Special token ids from config.json (-1 when absent). The tokenizer merges these with its own files.
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  DType torch_dtype = DType::kBF16;

  [[nodiscard]] int64_t q_dim() const { return num_attention_heads * head_dim; }
  [[nodiscard]] int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  [[nodiscard]] int64_t num_moe_layers() const;
};

// Parses the text of a config.json. Errors (InvalidArgument): not JSON, unknown architecture (names it and
// lists the supported ones), a required field missing or of the wrong type or out of range (names the field).
[[nodiscard]] absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text);

// Reads `dir/config.json`. NotFound when the file is missing; otherwise as ParseModelConfig, with the path
// in the message.
[[nodiscard]] absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& dir);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_MODEL_CONFIG_H_
