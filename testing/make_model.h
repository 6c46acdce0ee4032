// Random-weight checkpoints in real Hugging Face format, for tests and benchmarks (`adak make-model`).
//
// MakeModel writes a model directory that every loader in engine/ (and HF transformers) reads like a real
// one: config.json in the architecture's own format, model.safetensors (or shards plus
// model.safetensors.index.json), tokenizer.json, tokenizer_config.json and generation_config.json.
// Weights are N(0, 0.02) in config.torch_dtype (RMSNorm weights 1.0), drawn from a generator seeded by
// std::mt19937_64(seed), so the same params give byte-identical files. The data is generated and written
// tensor by tensor in bounded memory (about 50 MB), so a 14 GB checkpoint needs no more RAM than a small one
// (the 6.9B-parameter OLMoE shape takes about 7 s on a 2-core VM). Stateless functions; safe to call from several
// threads on different directories.
#ifndef ADAK_TESTING_MAKE_MODEL_H_
#define ADAK_TESTING_MAKE_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_config.h"

namespace adak::testing {

// The tokenizer MakeModel writes: byte-level BPE (GPT-2 ByteLevel pre-tokenizer and decoder, no
// normalizer, no post-processor) with the 256 byte tokens as ids 0..255 in GPT-2 bytes_to_unicode order,
// a handful of merges (ids 256..), and `<|endoftext|>` as the last id, an added special token that is also
// bos_token_id / eos_token_id in config.json and generation_config.json.
inline constexpr int64_t kMakeModelTokenizerSize = 265;  // ids, <|endoftext|> included
inline constexpr int64_t kMakeModelEndOfTextId = kMakeModelTokenizerSize - 1;

struct MakeModelParams {
  engine::Architecture arch = engine::Architecture::kMixtral;
  uint64_t seed = 0;
  // config.json keys and values applied over the architecture's small defaults (hidden 256, 4 layers, 4 heads
  // of 64, 8 experts top-2, vocab 512, max_position_embeddings 2048, bfloat16; per-architecture extras such as
  // Qwen2-MoE's shared expert or DeepSeek's first dense layer). A value is parsed as JSON when it can be
  // ("2048", "true", "[0, 3]", "null"), else taken as a string ("bfloat16"), and must suit the key's type.
  // Keys are the architecture's own; these generic spellings are also accepted where the architecture names
  // the key differently: num_experts (Mixtral num_local_experts, DeepSeek n_routed_experts),
  // moe_intermediate_size (Mixtral and OLMoE intermediate_size), num_shared_experts (DeepSeek
  // n_shared_experts), dtype (torch_dtype). head_dim may be set for the architectures that honour it
  // (Mixtral, Qwen2-MoE, Qwen3-MoE). When hidden_size is overridden and num_attention_heads and head_dim are
  // not, the heads are rescaled to head_dim 64 (num_key_value_heads keeps the default ratio unless given).
  std::vector<std::pair<std::string, std::string>> overrides;
  // 0: one model.safetensors. Otherwise shards model-0000i-of-0000n.safetensors of at most this many bytes
  // of tensor data each (a larger tensor gets a shard of its own) and model.safetensors.index.json.
  uint64_t max_shard_bytes = 0;
  // Called now and then from the calling thread with the data bytes written so far and the total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// The config MakeModel would write for `params`. Errors (InvalidArgument): an unknown override key (named,
// with the architecture), an unparsable or mistyped value (names key and value), any ParseModelConfig error
// of the result, or a vocab_size smaller than kMakeModelTokenizerSize.
[[nodiscard]] absl::StatusOr<engine::ModelConfig> MakeModelConfig(const MakeModelParams& params);

// Writes the checkpoint into `out_dir` (created if needed; files of an earlier checkpoint there are replaced,
// and a stale model.safetensors.index.json or model.safetensors of the other layout is removed).
// Shards of 64 MiB or more are written with O_DIRECT (see SafetensorsWriteOptions). Errors: those of
// MakeModelConfig; ResourceExhausted when the disk cannot hold a shard (found before writing it);
// Internal or another errno-derived code on I/O failure, leaving no complete-looking safetensors file behind.
[[nodiscard]] absl::Status MakeModel(const MakeModelParams& params, const std::filesystem::path& out_dir);

}  // namespace adak::testing

#endif  // ADAK_TESTING_MAKE_MODEL_H_
