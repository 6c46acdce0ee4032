// Regular expressions for the patterns found in tokenizer.json (Split pre-tokenizers, the GPT-2 ByteLevel
// pattern, Replace normalizers/decoders), compiled with PCRE2 in UTF + UCP mode so that `\p{L}`, `\p{N}`,
// `\s` and `\w` follow Unicode like Oniguruma does for HF tokenizers, and JIT-compiled when PCRE2 supports it.
//
// A compiled TokenizerRegex is immutable and safe to use from many threads at once: matching state (match
// data, JIT stack) lives in per-thread storage, never in the object.
#ifndef ADAK_TOKENIZER_REGEX_H_
#define ADAK_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace adak::tokenizer {

class TokenizerRegex {
 public:
  // Compiles `pattern` (Oniguruma syntax as written in tokenizer.json; `\uXXXX` escapes are accepted).
  // Errors: InvalidArgument with PCRE2's message and the offending offset.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TokenizerRegex>> Compile(std::string_view pattern);
  // A regex matching exactly the string `literal`. Errors: as Compile (never for valid UTF-8).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TokenizerRegex>> Literal(std::string_view literal);

  ~TokenizerRegex();
  TokenizerRegex(const TokenizerRegex&) = delete;
  TokenizerRegex& operator=(const TokenizerRegex&) = delete;

  struct Match {
    size_t begin;
    size_t end;
  };
  // Every non-overlapping, non-empty match in `text`, left to right (empty matches are skipped, as they
  // produce no piece). REQUIRES: `text` is valid UTF-8 (it is not re-checked, for speed).
  // Errors: Internal when PCRE2 gives up (e.g. a resource limit).
  [[nodiscard]] absl::StatusOr<std::vector<Match>> FindAll(std::string_view text) const;

  [[nodiscard]] const std::string& pattern() const { return pattern_; }

 private:
  TokenizerRegex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_REGEX_H_
