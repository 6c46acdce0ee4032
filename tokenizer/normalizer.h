// tokenizer.json normalizers: text -> text transforms applied to every piece of the input that is not an
// added token, before pre-tokenization.
//
// Supported types: Sequence, Prepend (only non-empty text), Replace (String or Regex pattern, literal
// content), Strip (Unicode whitespace, left/right), and the Unicode normal forms NFC, NFD, NFKC, NFKD
// (utf8proc, Debian's libutf8proc: its Unicode version's tables). Any other type is refused with
// InvalidArgument.
// Normalizers are immutable after construction and safe to use from many threads.
#ifndef ADAK_TOKENIZER_NORMALIZER_H_
#define ADAK_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tokenizer/json.h"

namespace adak::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // The normalized text. REQUIRES: `text` is valid UTF-8 (the result is too).
  // Errors: Internal when a regex fails to run.
  [[nodiscard]] virtual absl::StatusOr<std::string> Normalize(std::string_view text) const = 0;
};

// Builds the normalizer described by `json` (the value of "normalizer", or an element of a Sequence; not
// null). `where` is its JSON path, used in error messages. Errors: InvalidArgument naming the unsupported
// type or malformed field.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const Json& json, std::string_view where);

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_NORMALIZER_H_
