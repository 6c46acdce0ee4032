// Evaluation of a model and a routing policy on a token stream (`adak eval`, `adak perplexity`): the
// perplexity of the tokens under fixed windows, and what the routing did on them — mean k overall, per
// layer and per class of token (word, number, punctuation, space/other), expert FLOPs and the savings
// against the model's native top-K.
//
// Windowing (the same as `adak perplexity`): the ids are cut into consecutive, non-overlapping windows of
// `context` tokens (the last one may be shorter); each window runs on a fresh sequence, and every token of
// a window but the first is scored (predicted from the tokens before it in its window). A trailing window
// of a single token scores nothing and is not run.
//
// Token classes are decided on the token's own decoded text (Tokenizer::Decode of the single id, so the
// byte-level `Ġ` / SentencePiece `▁` space marker is already a space; a leftover U+2581 counts as a space):
//   kWord         contains a letter (\p{L});
//   kNumber       contains a digit or other numeric character (\p{N}) and no letter;
//   kPunctuation  only punctuation and symbols (\p{P}, \p{S}), possibly with whitespace, at least one;
//   kSpaceOther   everything else: whitespace only, empty, special tokens (BOS/EOS...), partial UTF-8
//                 (a byte token decoding to U+FFFD), control characters.
//
// TokenClassifier is immutable after Create and safe to use from many threads. Evaluate drives one
// Session, which is not thread-safe: one Evaluate per session at a time.
#ifndef ADAK_TRAINING_EVALUATION_H_
#define ADAK_TRAINING_EVALUATION_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/flops.h"
#include "engine/model_config.h"
#include "engine/routing.h"
#include "engine/session.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"

namespace adak::training {

enum class TokenClass { kWord = 0, kNumber = 1, kPunctuation = 2, kSpaceOther = 3 };
inline constexpr int kNumTokenClasses = 4;
inline constexpr std::array<TokenClass, kNumTokenClasses> kAllTokenClasses = {
    TokenClass::kWord, TokenClass::kNumber, TokenClass::kPunctuation, TokenClass::kSpaceOther};

// "word", "number", "punctuation", "space/other".
[[nodiscard]] std::string_view TokenClassName(TokenClass token_class);

class TokenClassifier {
 public:
  // Errors: Internal when the built-in Unicode patterns do not compile (a PCRE2 built without Unicode).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TokenClassifier>> Create();

  // The class of a token whose decoded text is `text` (any bytes; invalid UTF-8 is kSpaceOther).
  // Errors: Internal when PCRE2 gives up on the text (a resource limit; not expected on a token).
  [[nodiscard]] absl::StatusOr<TokenClass> ClassifyText(std::string_view text) const;
  // The class of token `id`: kSpaceOther for special tokens and ids outside the vocabulary, else
  // ClassifyText(tokenizer.Decode({id})). Errors: those of ClassifyText.
  [[nodiscard]] absl::StatusOr<TokenClass> ClassifyToken(const tokenizer::Tokenizer& tokenizer, int32_t id) const;

 private:
  TokenClassifier() = default;
  std::unique_ptr<tokenizer::TokenizerRegex> letter_;     // \p{L}
  std::unique_ptr<tokenizer::TokenizerRegex> number_;     // \p{N}
  std::unique_ptr<tokenizer::TokenizerRegex> not_punct_;  // anything but \p{P}, \p{S}, whitespace
};

struct EvalParams {
  int64_t context = 256;  // window length L; REQUIRES 2 <= context <= session.max_context()
  engine::RoutingParams routing;
};

// Tokens of one class among the scored tokens and the k they ran with.
struct TokenClassStats {
  int64_t tokens = 0;
  double sum_k = 0.0;  // sum over the tokens of their k averaged over the MoE layers
  [[nodiscard]] double mean_k() const { return tokens == 0 ? 0.0 : sum_k / static_cast<double>(tokens); }
};

struct EvalResult {
  explicit EvalResult(const engine::ModelConfig& config) : flops(config) {}

  engine::RoutingParams routing;
  int64_t context = 0;
  int64_t windows = 0;
  int64_t tokens_run = 0;   // every token of every window that ran
  int64_t scored = 0;       // tokens predicted (all but the first of each window)
  double total_nats = 0.0;  // sum of -log p(token | its window prefix) over the scored tokens
  double seconds = 0.0;     // wall time of the forward passes and scoring
  // Routed k of every token run (mean k, per layer, expert FLOPs and savings against native top-K).
  engine::FlopCounter flops;
  // Indexed by TokenClass, over the scored tokens (the tokens' counts sum to `scored`).
  std::array<TokenClassStats, kNumTokenClasses> classes{};

  [[nodiscard]] double nats_per_token() const { return scored == 0 ? 0.0 : total_nats / static_cast<double>(scored); }
  [[nodiscard]] double perplexity() const;  // exp(nats_per_token())
  [[nodiscard]] const TokenClassStats& token_class(TokenClass c) const { return classes[static_cast<size_t>(c)]; }
};

// Runs `ids` through `session` in windows of params.context (see the file comment) with params.routing
// and scores them. The session is Reset before each window and left holding the last one.
// Errors: InvalidArgument when ids has fewer than 2 tokens, for a context outside [2, max_context] (names
// the limit), for routing params the model or the session's routing weights do not allow (as
// ValidateRoutingParams), and for a token id outside the vocabulary; those of TokenClassifier.
[[nodiscard]] absl::StatusOr<EvalResult> Evaluate(engine::Session& session, std::span<const int32_t> ids,
                                                  const EvalParams& params);

// The training-free baselines `adak eval --sweep` compares a policy with, by family:
//   topk       fixed top-k for k = 1..K (the model's native num_experts_per_tok);
//   topp       top-p with the model's weighting at each of kFrontierTopP;
//   topp-raw   top-p over raw probabilities at each of kFrontierTopPRaw;
//   threshold  SER threshold (min_k 1) at each of kFrontierThreshold.
enum class SweepFamily { kTopK, kTopP, kTopPRaw, kThreshold };
inline constexpr std::array<float, 4> kFrontierTopP = {0.6f, 0.7f, 0.8f, 0.9f};
inline constexpr std::array<float, 3> kFrontierTopPRaw = {0.3f, 0.5f, 0.7f};
inline constexpr std::array<float, 5> kFrontierThreshold = {0.1f, 0.2f, 0.3f, 0.5f, 0.7f};
// A comma-separated list of family names ("topk", "topp", "topp-raw", "threshold") or "all", in the order
// given, without repeats. InvalidArgument naming the unknown or repeated entry and the accepted names.
[[nodiscard]] absl::StatusOr<std::vector<SweepFamily>> ParseSweepFamilies(std::string_view list);
// The routings of `families`, family by family in order, each family's values ascending.
[[nodiscard]] std::vector<engine::RoutingParams> FrontierRoutings(const engine::ModelConfig& config,
                                                                  std::span<const SweepFamily> families);

// A short name of a routing configuration: "topk k=2" (top_k 0 resolved to the native K), "topp p=0.80",
// "topp-raw p=0.50", "threshold t=0.30" (", min_k=2" with a min_k above 1), "adak", "adak k=1..4" (with a
// min/max clamp), "null".
[[nodiscard]] std::string RoutingLabel(const engine::RoutingParams& params, const engine::ModelConfig& config);

}  // namespace adak::training

#endif  // ADAK_TRAINING_EVALUATION_H_
