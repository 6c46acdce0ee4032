// tokenizer/byte_level.h: the GPT-2 bytes_to_unicode table and its vocabulary order.
#include "tokenizer/byte_level.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace adak::tokenizer {
namespace {

TEST(ByteLevelVocabulary, IsGpt2sOrderPrintableBytesFirst) {
  const std::vector<std::string> v = ByteLevelVocabulary();
  ASSERT_EQ(v.size(), 256u);
  EXPECT_EQ(v[0], "!");                // byte 0x21, the first printable byte
  EXPECT_EQ(v[93], "~");               // 0x21..0x7E are 94 entries
  EXPECT_EQ(v[94], "\xC2\xA1");        // U+00A1
  EXPECT_EQ(v[187], "\xC3\xBF");       // U+00FF, the last printable byte (94 + 12 + 82 = 188 printable)
  EXPECT_EQ(v[188], "\xC4\x80");       // U+0100 stands for byte 0x00
  EXPECT_EQ(v[188 + 32], "\xC4\xA0");  // U+0120 'Ġ' stands for the space 0x20
  EXPECT_EQ(std::set<std::string>(v.begin(), v.end()).size(), 256u);
}

TEST(ByteLevelVocabulary, EveryEntryDecodesToItsByteAndEncodesBack) {
  for (const std::string& c : ByteLevelVocabulary()) {
    std::string byte;
    ASSERT_TRUE(ByteLevelDecodeToken(c, &byte)) << c;
    ASSERT_EQ(byte.size(), 1u);
    std::string back;
    ByteLevelEncode(byte, &back);
    EXPECT_EQ(back, c);
  }
}

}  // namespace
}  // namespace adak::tokenizer
