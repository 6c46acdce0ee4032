// The `pattern` member of Split pre-tokenizers and Replace normalizers/decoders in tokenizer.json:
// {"String": "<literal>"} or {"Regex": "<Oniguruma regex>"}. Literals are searched directly; regexes go
// through TokenizerRegex. Immutable after construction; safe to use from many threads.
#ifndef ADAK_TOKENIZER_PATTERN_H_
#define ADAK_TOKENIZER_PATTERN_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/json.h"
#include "tokenizer/regex.h"

namespace adak::tokenizer {

class TokenizerPattern {
 public:
  // Parses {"String": s} or {"Regex": r}. Errors: InvalidArgument naming `where` when the object has
  // neither or the regex does not compile.
  [[nodiscard]] static absl::StatusOr<TokenizerPattern> FromJson(const Json& pattern, std::string_view where);

  // Non-overlapping, non-empty matches, left to right. REQUIRES: `text` is valid UTF-8.
  // Errors: Internal when the regex engine fails.
  [[nodiscard]] absl::StatusOr<std::vector<TokenizerRegex::Match>> FindAll(std::string_view text) const;

  // `text` with every match replaced by `content` (taken literally). Errors: as FindAll.
  [[nodiscard]] absl::StatusOr<std::string> ReplaceAll(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;                          // used when regex_ is null
  std::shared_ptr<const TokenizerRegex> regex_;  // shared: TokenizerPattern is copyable
};

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_PATTERN_H_
