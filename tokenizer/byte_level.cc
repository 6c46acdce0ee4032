#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace adak::tokenizer {
namespace {

struct ByteLevelTables {
  std::array<std::string, 256> byte_to_utf8;
  std::array<int, 0x144> char_to_byte;  // every mapped character is below U+0144
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables* const tables = [] {
    auto* t = new ByteLevelTables();
    t->char_to_byte.fill(-1);
    int next_extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next_extra++);
      Utf8Append(cp, &t->byte_to_utf8[b]);
      t->char_to_byte[cp] = b;
    }
    return t;
  }();
  return *tables;
}

}  // namespace

std::vector<std::string> ByteLevelVocabulary() {
  const ByteLevelTables& t = Tables();
  std::vector<std::string> vocabulary;
  vocabulary.reserve(256);
  for (const int b : t.char_to_byte) {
    if (b >= 0) vocabulary.push_back(t.byte_to_utf8[b]);
  }
  return vocabulary;
}

void ByteLevelEncode(std::string_view bytes, std::string* out) {
  const auto& table = Tables().byte_to_utf8;
  for (const char c : bytes) {
    out->append(table[static_cast<unsigned char>(c)]);
  }
}

int ByteLevelDecodeChar(char32_t code_point) {
  const auto& table = Tables().char_to_byte;
  return code_point < table.size() ? table[code_point] : -1;
}

bool ByteLevelDecodeToken(std::string_view token, std::string* out) {
  const size_t original_size = out->size();
  size_t pos = 0;
  while (pos < token.size()) {
    size_t length = 0;
    const int byte = ByteLevelDecodeChar(Utf8DecodeAt(token, pos, &length));
    if (byte < 0) {
      out->resize(original_size);
      return false;
    }
    out->push_back(static_cast<char>(byte));
    pos += length;
  }
  return true;
}

}  // namespace adak::tokenizer
