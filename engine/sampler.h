// Next-token sampling from one sequence's logits.
//
// Order of operations (as vLLM): repetition penalty over the context (HF rule: positive logits divided
// by the penalty, negative ones multiplied), then OpenAI's presence and frequency penalties over the
// generated tokens only (logit -= presence * [count > 0] + frequency * count), temperature, top-k, top-p,
// min-p, then a draw from the
// renormalised distribution. temperature == 0 is greedy (argmax, ties to the lower id), whatever the
// other filters. A Sampler holds the per-sequence RNG: one instance per sequence, not thread-safe.
#ifndef ADAK_ENGINE_SAMPLER_H_
#define ADAK_ENGINE_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace adak::engine {

struct SamplingParams {
  float temperature = 0.0f;         // >= 0; 0 = greedy
  int64_t top_k = 0;                // >= 0; 0 = off
  float top_p = 1.0f;               // (0, 1]
  float min_p = 0.0f;               // [0, 1]
  float repetition_penalty = 1.0f;  // > 0; 1 = off
  float presence_penalty = 0.0f;    // [-2, 2]; 0 = off
  float frequency_penalty = 0.0f;   // [-2, 2]; 0 = off
  std::optional<uint64_t> seed;     // unset: seeded from std::random_device
  // OpenAI's logit_bias: added to the logit of each id (in [-100, 100]; -100 bans the id, 100 all but forces
  // it) before the penalties, temperature and truncation. Ids outside the vocabulary are ignored by Sample;
  // the request layer refuses them.
  std::vector<std::pair<int32_t, float>> logit_bias;
};

// The most logit_bias entries one request may carry (OpenAI's limit is 300; this is larger).
inline constexpr size_t kMaxLogitBias = 1024;

// InvalidArgument naming the field and its allowed range.
[[nodiscard]] absl::Status ValidateSamplingParams(const SamplingParams& params);

class Sampler {
 public:
  // REQUIRES: ValidateSamplingParams(params).ok().
  explicit Sampler(const SamplingParams& params);

  // Draws the next token from `logits` [V]; `context` are the prompt and generated ids so far, the
  // generated ones from index `generated_from` on (what the presence and frequency penalties count).
  [[nodiscard]] int32_t Sample(std::span<const float> logits, std::span<const int32_t> context,
                               size_t generated_from = 0);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> work_;
  std::vector<float> biased_;  // the logits after logit_bias, before the penalties
  std::vector<int32_t> order_;
  std::vector<int32_t> counts_;  // [V] generated-token counts, for the presence/frequency penalties
};

// The index of the largest logit (ties: lowest index).
[[nodiscard]] int32_t Argmax(std::span<const float> logits);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_SAMPLER_H_
