// `adak inspect`: architecture, sizes and parameter counts (total and active per token) of a model.
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "engine/safetensors.h"

namespace adak::cli {
namespace {

std::string Human(int64_t n) {
  if (n >= 1'000'000'000) return absl::StrFormat("%.2fB", static_cast<double>(n) / 1e9);
  if (n >= 1'000'000) return absl::StrFormat("%.2fM", static_cast<double>(n) / 1e6);
  if (n >= 1'000) return absl::StrFormat("%.1fK", static_cast<double>(n) / 1e3);
  return absl::StrFormat("%d", n);
}

absl::Status Inspect(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model, engine::LoadModel(dir));
  const engine::ModelConfig& c = model->config;
  const engine::ParameterCounts p = engine::CountParameters(c);
  const char* qk = c.qk_norm == engine::QkNorm::kNone      ? "none"
                   : c.qk_norm == engine::QkNorm::kPerHead ? "per-head"
                                                           : "full";
  std::string moe_layers;
  for (bool m : c.moe_layers) moe_layers += m ? 'M' : 'D';
  std::printf("%s", absl::StrFormat("model:            %s\n"
                                    "architecture:     %s (model_type %s)\n"
                                    "dtype:            %s\n"
                                    "layers:           %d (%s; M = MoE, D = dense)\n"
                                    "hidden:           %d\n"
                                    "attention:        %d heads, %d kv heads, head_dim %d, qkv bias %s, qk norm %s\n"
                                    "rope_theta:       %g\n"
                                    "rms_norm_eps:     %g\n"
                                    "vocab:            %d (tokenizer %d), tied embeddings %s\n"
                                    "max positions:    %d\n"
                                    "experts:          %d routed, top-%d, intermediate %d, renormalise %s\n"
                                    "shared expert:    intermediate %d, sigmoid gate %s\n"
                                    "dense mlp:        intermediate %d\n"
                                    "parameters:       %s total (%d), %s active per token (%d), %s in routed experts\n"
                                    "weight bytes/tok: %s\n",
                                    dir, engine::ArchitectureName(c.arch), c.model_type, DTypeName(c.torch_dtype),
                                    c.num_layers, moe_layers, c.hidden_size, c.num_attention_heads,
                                    c.num_key_value_heads, c.head_dim, c.attention_bias ? "yes" : "no", qk,
                                    c.rope_theta, c.rms_norm_eps, c.vocab_size, model->tokenizer->vocab_size(),
                                    c.tie_word_embeddings ? "yes" : "no", c.max_position_embeddings, c.num_experts,
                                    c.num_experts_per_tok, c.moe_intermediate_size, c.norm_topk_prob ? "yes" : "no",
                                    c.shared_expert_intermediate_size, c.shared_expert_gate ? "yes" : "no",
                                    c.intermediate_size, Human(p.total), p.total, Human(p.active_per_token),
                                    p.active_per_token, Human(p.expert), Human(engine::WeightBytesPerToken(c)))
                        .c_str());
  return absl::OkStatus();
}

}  // namespace

CommandFn SetUpInspect(CLI::App* command) {
  command->description("architecture, sizes and parameter counts (total and active per token) of a model");
  auto model = std::make_shared<std::string>();
  AddString(command, "model", model.get(), "Hugging Face model directory", "DIR")->required();
  return [model] { return Inspect(*model); };
}

}  // namespace adak::cli
