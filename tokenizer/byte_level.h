// The GPT-2 byte <-> character table (`bytes_to_unicode`) shared by the ByteLevel pre-tokenizer and decoder.
//
// Byte-level BPE vocabularies never contain raw bytes: every byte is first mapped to a printable character
// (printable Latin-1 bytes map to themselves, the other 68 to U+0100..U+0143 in byte order), so that any byte
// string becomes a string of vocabulary characters. Immutable tables; safe from any thread.
#ifndef ADAK_TOKENIZER_BYTE_LEVEL_H_
#define ADAK_TOKENIZER_BYTE_LEVEL_H_

#include <string>
#include <string_view>
#include <vector>

namespace adak::tokenizer {

// The 256 mapped characters (UTF-8) in GPT-2's vocabulary order, i.e. by code point: the printable bytes
// (mapped to themselves) first, then the other 68 (U+0100..U+0143). A byte-level BPE vocabulary's first
// 256 entries.
[[nodiscard]] std::vector<std::string> ByteLevelVocabulary();

// Appends the mapped characters (UTF-8) of every byte of `bytes` to `out`.
void ByteLevelEncode(std::string_view bytes, std::string* out);

// The byte that `code_point` stands for, or -1 when it is not one of the 256 mapped characters.
[[nodiscard]] int ByteLevelDecodeChar(char32_t code_point);

// Maps every character of `token` back to its byte and appends the bytes to `out`. Returns false (appending
// nothing) when some character is not a mapped character, as HF then keeps the token's own bytes.
// REQUIRES: `token` is valid UTF-8.
[[nodiscard]] bool ByteLevelDecodeToken(std::string_view token, std::string* out);

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_BYTE_LEVEL_H_
