// UTF-8 helpers for the tokenizer: validation, the White_Space property, code point decoding/encoding, and the lossy
// conversion of arbitrary bytes to valid UTF-8 that Rust's `String::from_utf8_lossy` performs (each maximal invalid
// subpart becomes one U+FFFD), which the Hugging Face byte-level decoder relies on.
//
// Stateless free functions; safe to call from any thread.
#ifndef ADAK_TOKENIZER_UTF8_H_
#define ADAK_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace adak::tokenizer {

inline constexpr char32_t kUtf8ReplacementChar = 0xFFFD;
inline constexpr std::string_view kUtf8ReplacementString = "\xEF\xBF\xBD";

// Byte offset of the first byte of the first invalid (or truncated) sequence in `text`, or
// std::string_view::npos when `text` is entirely valid UTF-8 (overlongs, surrogates and code points above
// U+10FFFF are invalid).
[[nodiscard]] size_t Utf8FindInvalid(std::string_view text);
[[nodiscard]] inline bool Utf8IsValid(std::string_view text) { return Utf8FindInvalid(text) == std::string_view::npos; }

// Length in bytes (1-4) of the sequence starting with `lead`. REQUIRES: `lead` starts a valid sequence.
[[nodiscard]] inline size_t Utf8SequenceLength(unsigned char lead) {
  if (lead < 0x80) {
    return 1;
  }
  if (lead < 0xE0) {
    return 2;
  }
  if (lead < 0xF0) {
    return 3;
  }
  return 4;
}

// Decodes the code point starting at `text[pos]`; stores its byte length in `*length`.
// REQUIRES: `text` is valid UTF-8 and `pos` is a character boundary inside it.
[[nodiscard]] char32_t Utf8DecodeAt(std::string_view text, size_t pos, size_t* length);

// Appends the UTF-8 encoding of `code_point` (REQUIRES: a Unicode scalar value) to `out`.
void Utf8Append(char32_t code_point, std::string* out);

// `bytes` with every maximal invalid subpart replaced by U+FFFD (Rust `String::from_utf8_lossy`).
[[nodiscard]] std::string Utf8Lossy(std::string_view bytes);

// Unicode White_Space (what Rust's `char::is_whitespace` and HF's `\s` test).
[[nodiscard]] bool IsUnicodeWhitespace(char32_t code_point);

// Whether `text` ends with U+FFFD, the mark a decoder leaves where a character is still incomplete.
[[nodiscard]] inline bool Utf8EndsWithReplacement(std::string_view text) {
  return text.size() >= kUtf8ReplacementString.size() &&
         text.substr(text.size() - kUtf8ReplacementString.size()) == kUtf8ReplacementString;
}

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_UTF8_H_
