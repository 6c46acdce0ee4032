// tokenizer.json decoders: turn the token strings of a sequence of ids back into text.
//
// Like HF's `Decoder::decode_chain`, each decoder maps a list of token strings to a new list, and the final
// text is the concatenation. Supported types:
//   - ByteLevel: characters back to bytes (tokens that are not byte-level keep their own bytes), then invalid
//     UTF-8 replaced by U+FFFD per maximal invalid subpart;
//   - Metaspace {replacement, prepend_scheme}: replacement -> ' ', dropped in the first token unless "never";
//   - Replace {pattern, content}; ByteFallback (<0xNN> runs -> their UTF-8, or one U+FFFD per byte when
//     invalid); Fuse (concatenate); Strip {content, start, stop} (per token); Sequence {decoders}.
// Decoders are immutable after construction and safe to use from many threads.
#ifndef ADAK_TOKENIZER_DECODER_H_
#define ADAK_TOKENIZER_DECODER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/json.h"

namespace adak::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites `*tokens` in place (HF decode_chain). REQUIRES: every token is valid UTF-8; so is the result.
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// Builds the decoder described by `json` (not null). `where` is its JSON path for error messages.
// Errors: InvalidArgument naming the unsupported type or malformed field.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const Json& json, std::string_view where);

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_DECODER_H_
