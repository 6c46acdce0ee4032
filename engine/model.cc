#include "engine/model.h"

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/safetensors.h"

namespace adak::engine {
namespace {

absl::Status Annotate(const absl::Status& s, const std::filesystem::path& dir) {
  return absl::Status(s.code(), absl::StrCat("loading model ", dir.string(), ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::filesystem::path& dir) {
  auto model = std::make_unique<Model>();
  model->dir = dir;
  auto config = LoadModelConfig(dir);
  if (!config.ok()) return Annotate(config.status(), dir);
  model->config = *std::move(config);
  auto store = WeightStore::Open(dir);
  if (!store.ok()) return Annotate(store.status(), dir);
  auto weights = BindModelWeights(model->config, std::shared_ptr<const WeightStore>(std::move(*store)));
  if (!weights.ok()) return Annotate(weights.status(), dir);
  model->weights = *std::move(weights);
  auto tokenizer = tokenizer::Tokenizer::FromModelDir(dir);
  if (!tokenizer.ok()) return Annotate(tokenizer.status(), dir);
  model->tokenizer = *std::move(tokenizer);
  if (model->tokenizer->vocab_size() > model->config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("loading model ", dir.string(), ": tokenizer has ",
                                                   model->tokenizer->vocab_size(), " ids but vocab_size is ",
                                                   model->config.vocab_size));
  }
  model->chat_template = tokenizer::ChatTemplate::FromModelDir(dir);
  if (!model->chat_template.ok() && !absl::IsNotFound(model->chat_template.status())) {
    LogWarning(StrCatStd("model ", dir.string(),
                         ": chat requests will be refused: ", ToStd(model->chat_template.status().message())));
  }
  return model;
}

namespace {

struct Counts {
  int64_t attention = 0, norms_per_layer = 0, router = 0, expert = 0, shared = 0, dense = 0;
};

Counts LayerCounts(const ModelConfig& c) {
  Counts n;
  const int64_t h = c.hidden_size;
  n.attention = h * c.q_dim() + 2 * h * c.kv_dim() + c.q_dim() * h;
  if (c.attention_bias) n.attention += c.q_dim() + 2 * c.kv_dim();
  if (c.qk_norm == QkNorm::kPerHead) n.attention += 2 * c.head_dim;
  if (c.qk_norm == QkNorm::kFull) n.attention += c.q_dim() + c.kv_dim();
  n.norms_per_layer = 2 * h;
  n.router = c.num_experts * h;
  n.expert = 3 * h * c.moe_intermediate_size;
  n.shared = 3 * h * c.shared_expert_intermediate_size + (c.shared_expert_gate ? h : 0);
  n.dense = 3 * h * c.intermediate_size;
  return n;
}

}  // namespace

ParameterCounts CountParameters(const ModelConfig& c) {
  const Counts n = LayerCounts(c);
  ParameterCounts p;
  const int64_t embed = c.vocab_size * c.hidden_size;
  p.total = embed + c.hidden_size + (c.tie_word_embeddings ? 0 : embed);
  p.active_per_token = c.hidden_size + c.hidden_size + embed;  // one embedding row + final norm + lm head
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const bool moe = c.moe_layers[static_cast<size_t>(l)];
    const int64_t common = n.attention + n.norms_per_layer;
    p.total += common;
    p.active_per_token += common;
    if (moe) {
      p.total += n.router + c.num_experts * n.expert + n.shared;
      p.active_per_token += n.router + c.num_experts_per_tok * n.expert + n.shared;
      p.expert += c.num_experts * n.expert;
    } else {
      p.total += n.dense;
      p.active_per_token += n.dense;
    }
  }
  return p;
}

int64_t WeightBytesPerToken(const ModelConfig& c) {
  return CountParameters(c).active_per_token * static_cast<int64_t>(DTypeSize(c.torch_dtype));
}

}  // namespace adak::engine
