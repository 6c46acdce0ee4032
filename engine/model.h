// A model directory loaded for serving: its config, its weights (mmapped, checkpoint dtype) and its tokenizer.
//
// LoadModel reads and validates everything at once, so a corrupt or incomplete directory is refused before
// any request is served. Immutable after loading; safe to share across threads.
#ifndef ADAK_ENGINE_MODEL_H_
#define ADAK_ENGINE_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace adak::engine {

struct Model {
  std::filesystem::path dir;
  ModelConfig config;
  ModelWeights weights;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  // The chat template, or why there is none: NotFound when the model has none, InvalidArgument when it does
  // not parse (logged as a warning at load; completions still serve, chat requests get the error).
  absl::StatusOr<tokenizer::ChatTemplate> chat_template = absl::NotFoundError("the model has no chat template");
};

struct ParameterCounts {
  int64_t total = 0;             // every weight
  int64_t active_per_token = 0;  // weights one token touches with native top-K (embeddings: one row)
  int64_t expert = 0;            // routed expert weights
};

// Errors: those of LoadModelConfig, WeightStore::Open, BindModelWeights and Tokenizer::FromModelDir, with
// the directory named; InvalidArgument when the tokenizer has more ids than the model's vocabulary.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::filesystem::path& dir);

[[nodiscard]] ParameterCounts CountParameters(const ModelConfig& config);

// Bytes of weights one decode token reads with native top-K routing (attention, router, K experts, shared
// experts, dense MLPs, norms, one embedding row, the LM head), in the checkpoint dtype.
[[nodiscard]] int64_t WeightBytesPerToken(const ModelConfig& config);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_MODEL_H_
