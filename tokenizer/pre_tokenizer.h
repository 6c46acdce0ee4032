// tokenizer.json pre-tokenizers: split the normalized text of each non-added-token piece into "words" that
// the BPE model then encodes independently (merges never cross a word boundary).
//
// Supported types:
//   - ByteLevel {add_prefix_space, use_regex}: optional leading space, the GPT-2 regex split, then every byte
//     mapped to its printable character (tokenizer_byte_level.h);
//   - Split {pattern: String|Regex, behavior: Removed|Isolated|MergedWithPrevious|MergedWithNext|Contiguous,
//     invert};
//   - Metaspace {replacement, prepend_scheme: always|first|never (or the legacy add_prefix_space), split};
//   - Digits {individual_digits}; Whitespace; WhitespaceSplit; Sequence {pretokenizers}.
// Semantics follow the Rust `tokenizers` crate exactly, including that empty pieces are dropped. Pre-tokenizers
// are immutable after construction and safe to use from many threads.
#ifndef ADAK_TOKENIZER_PRE_TOKENIZER_H_
#define ADAK_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tokenizer/json.h"
#include "tokenizer/regex.h"

namespace adak::tokenizer {

// One piece of text on its way to the model.
struct PreToken {
  std::string text;
  // Whether the piece starts at byte 0 of the original input (HF `offsets_original().0 == 0`), which
  // Metaspace's prepend_scheme "first" tests.
  bool at_input_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece of `*pieces` by its sub-pieces, in order; empty sub-pieces are dropped.
  // REQUIRES: every piece is valid UTF-8. Errors: Internal when a regex fails to run.
  [[nodiscard]] virtual absl::Status PreTokenize(std::vector<PreToken>* pieces) const = 0;
};

// Builds the pre-tokenizer described by `json` (not null). `where` is its JSON path for error messages.
// Errors: InvalidArgument naming the unsupported type or the malformed field.
[[nodiscard]] absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const Json& json,
                                                                                 std::string_view where);

// How the matches of a Split pattern become pieces (HF `SplitDelimiterBehavior`).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The [begin, end) byte ranges of the pieces that splitting a text of `text_size` bytes at `matches` (sorted,
// non-overlapping) yields under `behavior`; with `invert` the matches are the pieces to keep and the text
// between them plays the delimiter. Empty ranges are omitted. Exposed for tests.
[[nodiscard]] std::vector<TokenizerRegex::Match> SplitRanges(size_t text_size,
                                                             const std::vector<TokenizerRegex::Match>& matches,
                                                             bool invert, SplitBehavior behavior);

// Metaspace's `prepend_scheme`: when to put the replacement character in front of a piece.
enum class PrependScheme { kAlways, kFirst, kNever };

// Reads `prepend_scheme` ("always"/"first"/"never"; default always) and the legacy `add_prefix_space` (false
// means never) of a Metaspace pre-tokenizer or decoder. Errors: InvalidArgument on unknown or contradicting
// values.
[[nodiscard]] absl::StatusOr<PrependScheme> ParsePrependScheme(const Json& json, std::string_view where);

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_PRE_TOKENIZER_H_
