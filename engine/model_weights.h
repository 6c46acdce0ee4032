// The model's parameters bound by name and shape from a checkpoint, per architecture.
//
// BindModelWeights maps every tensor the forward pass needs from the checkpoint names of config.arch
// (e.g. Mixtral `model.layers.{i}.block_sparse_moe.experts.{j}.w1.weight`, Qwen2-MoE/OLMoE/DeepSeek/Qwen3
// `model.layers.{i}.mlp.experts.{j}.gate_proj.weight`) into the architecture-neutral structs below, and
// checks each shape against the config. Weights stay in their checkpoint dtype (no copy): the views point
// into the store's mmapped files, which `store` keeps alive. Immutable after binding; thread-safe to read.
//
// Shape legend (engine/README.md): H hidden, E experts, I expert intermediate, V vocab.
#ifndef ADAK_ENGINE_MODEL_WEIGHTS_H_
#define ADAK_ENGINE_MODEL_WEIGHTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_config.h"
#include "engine/tensor_view.h"

namespace adak::engine {

class WeightStore;

// A SwiGLU MLP: down(silu(gate x) * up x).
struct MlpWeights {
  TensorView gate;  // [I, H]   (Mixtral w1)
  TensorView up;    // [I, H]   (Mixtral w3)
  TensorView down;  // [H, I]   (Mixtral w2)
  [[nodiscard]] bool present() const { return gate.present(); }
};

struct LayerWeights {
  TensorView input_norm;              // [H]
  TensorView post_attention_norm;     // [H]
  TensorView q_proj;                  // [heads * head_dim, H]
  TensorView k_proj;                  // [kv_heads * head_dim, H]
  TensorView v_proj;                  // [kv_heads * head_dim, H]
  TensorView o_proj;                  // [H, heads * head_dim]
  TensorView q_bias, k_bias, v_bias;  // [heads*head_dim] / [kv_heads*head_dim]; present iff attention_bias
  TensorView q_norm, k_norm;          // [head_dim] (kPerHead) or [heads*head_dim]/[kv_heads*head_dim] (kFull)

  bool is_moe = false;
  // MoE layers.
  TensorView router;                // [E, H]
  std::vector<MlpWeights> experts;  // E entries, each with intermediate moe_intermediate_size
  MlpWeights shared_expert;         // optional; intermediate shared_expert_intermediate_size
  TensorView shared_expert_gate;    // [1, H]; present iff config.shared_expert_gate
  // Dense layers (!is_moe).
  MlpWeights mlp;  // intermediate intermediate_size
};

struct ModelWeights {
  TensorView embed_tokens;  // [V, H]
  TensorView final_norm;    // [H]
  TensorView lm_head;       // [V, H]; the embed_tokens view when tie_word_embeddings
  std::vector<LayerWeights> layers;
  // Checkpoint tensors no module uses (sorted; buffers HF also ignores, `*.rotary_emb.inv_freq`, left out).
  // BindModelWeights logs a warning naming them, as Hugging Face does, and loads the model anyway.
  std::vector<std::string> unused_tensors;
  std::shared_ptr<const WeightStore> store;  // keeps the mapped files alive
};

// Errors: NotFound naming the missing tensor (and the checkpoint files searched); InvalidArgument naming the
// tensor, its file, the expected and the actual shape, or an unsupported dtype.
[[nodiscard]] absl::StatusOr<ModelWeights> BindModelWeights(const ModelConfig& config,
                                                            std::shared_ptr<const WeightStore> store);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_MODEL_WEIGHTS_H_
