// The added tokens of a tokenizer.json ("added_tokens": special tokens such as <s> or <|endoftext|>, and
// user-added tokens) and the splitting of input text on them, as HF's AddedVocabulary does before any
// pre-tokenization:
//   - tokens with normalized=false are matched on the raw input; tokens with normalized=true are matched on
//     each normalized piece, against their own normalized content;
//   - at each position the longest token wins, and the leftmost match is taken first (non-overlapping scan);
//   - single_word tokens only match when not preceded or followed by a word character (\w);
//   - lstrip / rstrip tokens swallow the whitespace before / after them;
//   - an added token is never split or merged by the model.
// Immutable after Build; safe to use from many threads.
#ifndef ADAK_TOKENIZER_ADDED_TOKENS_H_
#define ADAK_TOKENIZER_ADDED_TOKENS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/strings.h"
#include "tokenizer/normalizer.h"

namespace adak::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;

  // Indexes `tokens` (tokens with empty content are ignored; for a repeated content the first entry wins).
  // `normalizer` (may be null) gives the matching form of normalized=true tokens.
  // Errors: Internal when the normalizer fails on a token.
  [[nodiscard]] static absl::StatusOr<AddedVocabulary> Build(std::vector<AddedToken> tokens,
                                                             const Normalizer* normalizer);

  // A piece of the text: an added token (`id` >= 0) or plain text (`id` == -1).
  struct Segment {
    size_t begin;
    size_t end;
    int32_t id;
  };
  // Splits `text` on the tokens with normalized=false. Segments cover `text` in order; empty plain segments
  // are omitted. REQUIRES: `text` is valid UTF-8.
  [[nodiscard]] std::vector<Segment> SplitRaw(std::string_view text) const { return Split(text, raw_); }
  // The same for tokens with normalized=true, on already normalized text.
  [[nodiscard]] std::vector<Segment> SplitNormalized(std::string_view text) const { return Split(text, normalized_); }
  [[nodiscard]] bool has_normalized_tokens() const { return !normalized_.patterns.empty(); }

  // nullptr when no added token has `id`.
  [[nodiscard]] const AddedToken* FindById(int32_t id) const;
  [[nodiscard]] std::optional<int32_t> FindByContent(std::string_view content) const;
  [[nodiscard]] int32_t max_id() const { return max_id_; }

 private:
  // A byte trie over the patterns of one matching set.
  struct Matcher {
    struct Node {
      absl::flat_hash_map<unsigned char, int32_t> children;
      int32_t token = -1;  // index into tokens_ of the pattern ending here
    };
    std::vector<Node> nodes;             // nodes[0] is the root
    std::array<bool, 256> first_byte{};  // whether any pattern starts with the byte
    std::vector<std::string> patterns;
  };
  static void AddPattern(Matcher* matcher, const std::string& pattern, int32_t token);
  // The longest pattern starting at `pos`: {end, token index}, or token -1.
  static std::pair<size_t, int32_t> LongestAt(const Matcher& matcher, std::string_view text, size_t pos);
  std::vector<Segment> Split(std::string_view text, const Matcher& matcher) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  StringMap<size_t> by_content_;
  Matcher raw_;
  Matcher normalized_;
  int32_t max_id_ = -1;
};

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_ADDED_TOKENS_H_
