// Tests for the parts of the tokenizer pipeline: split behaviors, UTF-8 handling, added-token flags
// (lstrip/rstrip/single_word) and the byte-level pre-tokenizer variants (add_prefix_space, Split + ByteLevel
// without regex as in Qwen/DeepSeek, Digits). Variants are built from the stories-mixtral tokenizer.json;
// expected ids were cross-checked with @huggingface/tokenizers 0.2.0, except single_word, which that
// implementation ignores and which follows the Rust crate here.
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/test_util.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Pieces(std::string_view text, std::string_view delimiter, SplitBehavior behavior,
                                bool invert = false) {
  std::vector<TokenizerRegex::Match> matches;
  for (size_t pos = text.find(delimiter); pos != std::string_view::npos; pos = text.find(delimiter, pos + 1)) {
    matches.push_back({pos, pos + delimiter.size()});
  }
  std::vector<std::string> pieces;
  for (const auto& range : SplitRanges(text.size(), matches, invert, behavior)) {
    pieces.emplace_back(text.substr(range.begin, range.end - range.begin));
  }
  return pieces;
}

// The examples of the HF `SplitDelimiterBehavior` documentation.
TEST(SplitRangesTest, FollowsEveryDelimiterBehavior) {
  const std::string text = "the-final--countdown";
  EXPECT_THAT(Pieces(text, "-", SplitBehavior::kRemoved), ElementsAre("the", "final", "countdown"));
  EXPECT_THAT(Pieces(text, "-", SplitBehavior::kIsolated), ElementsAre("the", "-", "final", "-", "-", "countdown"));
  EXPECT_THAT(Pieces(text, "-", SplitBehavior::kMergedWithPrevious), ElementsAre("the-", "final-", "-", "countdown"));
  EXPECT_THAT(Pieces(text, "-", SplitBehavior::kMergedWithNext), ElementsAre("the", "-final", "-", "-countdown"));
  EXPECT_THAT(Pieces(text, "-", SplitBehavior::kContiguous), ElementsAre("the", "-", "final", "--", "countdown"));
  // invert: the matches are the words, the rest the delimiters.
  EXPECT_THAT(Pieces("a1b22c", "2", SplitBehavior::kRemoved, /*invert=*/true), ElementsAre("2", "2"));
  EXPECT_THAT(Pieces("", "-", SplitBehavior::kIsolated), ElementsAre());
}

std::string Normalized(const char* type, std::string_view text) {
  auto normalizer = NormalizerFromJson(nlohmann::json{{"type", type}}, "normalizer");
  EXPECT_TRUE(normalizer.ok()) << normalizer.status();
  if (!normalizer.ok()) return "";
  auto out = (*normalizer)->Normalize(text);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

// The four Unicode normal forms, as Hugging Face's normalizers apply them (NFC used to be the identity).
TEST(UnicodeNormalizerTest, AppliesTheFourNormalForms) {
  EXPECT_EQ(Normalized("NFC", "e\u0301"), "\u00e9");              // e + combining acute -> é
  EXPECT_EQ(Normalized("NFC", "\u212b"), "\u00c5");               // ANGSTROM SIGN -> Å
  EXPECT_EQ(Normalized("NFC", "\u1100\u1161\u11a8"), "\uac01");   // Hangul jamo -> 각
  EXPECT_EQ(Normalized("NFC", "a\u0323\u0307"), "\u1ea1\u0307");  // canonical order, then composition
  EXPECT_EQ(Normalized("NFC", "\uf900"), "\u8c48");               // compatibility ideograph (singleton)
  EXPECT_EQ(Normalized("NFD", "\u00e9"), "e\u0301");
  EXPECT_EQ(Normalized("NFKC", "\ufb01 \u2460"), "fi 1");  // ligature, circled digit
  EXPECT_EQ(Normalized("NFKD", "\u00e9\u2460"), "e\u03011");
  EXPECT_EQ(Normalized("NFC", "plain ascii"), "plain ascii");
}

// A tokenizer with an NFC normalizer encodes decomposed input like the composed one.
TEST(UnicodeNormalizerTest, NfcTokenizerEncodesDecomposedInputAsComposed) {
  auto json = nlohmann::json::parse(
      ::adak::testing::ReadFile(::adak::testing::SourceDir() / "tests/tokenizer/testdata/llama_tiny.json"));
  json["normalizer"]["normalizers"].insert(json["normalizer"]["normalizers"].begin(),
                                           nlohmann::json::object({{"type", "NFC"}}));
  auto tokenizer = Tokenizer::FromJson(json.dump());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto composed = (*tokenizer)->Encode("caf\u00e9", false);
  auto decomposed = (*tokenizer)->Encode("cafe\u0301", false);
  ASSERT_TRUE(composed.ok()) << composed.status();
  ASSERT_TRUE(decomposed.ok()) << decomposed.status();
  EXPECT_EQ(*composed, *decomposed);
}

TEST(Utf8Test, ValidatesAndReplacesMaximalInvalidSubparts) {
  EXPECT_TRUE(Utf8IsValid("plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_EQ(Utf8FindInvalid("ab\xC0\xAF"), 2u);           // overlong
  EXPECT_EQ(Utf8FindInvalid("a\xED\xA0\x80"), 1u);        // surrogate
  EXPECT_EQ(Utf8FindInvalid("abc\xF4\x90\x80\x80"), 3u);  // above U+10FFFF
  EXPECT_EQ(Utf8FindInvalid("\xE2\x82"), 0u);             // truncated
  // As Rust's String::from_utf8_lossy.
  EXPECT_EQ(Utf8Lossy("a\xE2\x82"), "a\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xF0\x9F\x98x"), "\xEF\xBF\xBDx");
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xFF\xC3\xA9"), "\xEF\xBF\xBD\xC3\xA9");
}

class ByteLevelVariantTest : public ::testing::Test {
 protected:
  // The stories-mixtral tokenizer.json with `edit` applied.
  template <typename Edit>
  std::unique_ptr<Tokenizer> Variant(const std::filesystem::path& shared, Edit edit) {
    auto json =
        nlohmann::json::parse(::adak::testing::ReadFile(shared / "models" / "stories-mixtral" / "tokenizer.json"));
    edit(json);
    auto tokenizer = Tokenizer::FromJson(json.dump());
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
    return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
  }
  static void AddMask(nlohmann::json& json, const char* flag) {
    json["added_tokens"].push_back({{"id", 4096},
                                    {"content", "<mask>"},
                                    {"single_word", false},
                                    {"lstrip", false},
                                    {"rstrip", false},
                                    {"normalized", false},
                                    {"special", true}});
    json["added_tokens"].back()[flag] = true;
  }
  static std::vector<int32_t> Ids(const Tokenizer& tokenizer, std::string_view text) {
    auto ids = tokenizer.Encode(text, false);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<int32_t>{};
  }
};

TEST_F(ByteLevelVariantTest, AddedTokenLstripSwallowsWhitespaceBefore) {
  ADAK_REQUIRE_SHARED(shared);
  auto tok = Variant(shared, [](nlohmann::json& j) { AddMask(j, "lstrip"); });
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 4097);
  EXPECT_THAT(Ids(*tok, "I saw a <mask> there"), ElementsAre(40, 461, 258, 4096, 405));
  EXPECT_THAT(Ids(*tok, "I saw a   <mask>   there"), ElementsAre(40, 461, 258, 4096, 220, 220, 405));
  EXPECT_THAT(Ids(*tok, "x <mask> <mask> y"), ElementsAre(87, 4096, 4096, 311));
  EXPECT_THAT(Ids(*tok, "a<mask>b"), ElementsAre(64, 4096, 65));
}

TEST_F(ByteLevelVariantTest, AddedTokenRstripSwallowsWhitespaceAfter) {
  ADAK_REQUIRE_SHARED(shared);
  auto tok = Variant(shared, [](nlohmann::json& j) { AddMask(j, "rstrip"); });
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(Ids(*tok, "I saw a <mask> there"), ElementsAre(40, 461, 258, 220, 4096, 83, 637));
  EXPECT_THAT(Ids(*tok, "x <mask> <mask> y"), ElementsAre(87, 220, 4096, 4096, 88));
}

TEST_F(ByteLevelVariantTest, SingleWordTokenOnlyMatchesBetweenNonWordCharacters) {
  ADAK_REQUIRE_SHARED(shared);
  auto tok = Variant(shared, [](nlohmann::json& j) { AddMask(j, "single_word"); });
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(Ids(*tok, "x <mask> <mask> y"), ElementsAre(87, 220, 4096, 220, 4096, 311));
  EXPECT_THAT(Ids(*tok, "<mask>"), ElementsAre(4096));
  // Inside a word it is plain text: < m ask >.
  EXPECT_THAT(Ids(*tok, "a<mask>b"), ElementsAre(64, 27, 76, 1395, 29, 65));
}

TEST_F(ByteLevelVariantTest, AddPrefixSpaceAppliesToEveryPiece) {
  ADAK_REQUIRE_SHARED(shared);
  auto tok = Variant(shared, [](nlohmann::json& j) { j["pre_tokenizer"]["add_prefix_space"] = true; });
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(Ids(*tok, "Once upon a time"), ElementsAre(220, 504, 458, 258, 421));
  EXPECT_THAT(Ids(*tok, " leading space"), ElementsAre(2508, 283, 438, 609));  // already has one
  EXPECT_THAT(Ids(*tok, "Hello world, it's 2024!"), ElementsAre(348, 3110, 1028, 11, 305, 362, 220, 17, 15, 17, 19, 0));
  EXPECT_EQ(tok->Decode(Ids(*tok, "Once upon a time")), " Once upon a time");
}

TEST_F(ByteLevelVariantTest, SplitRegexThenByteLevelWithoutRegex) {
  ADAK_REQUIRE_SHARED(shared);
  // The Qwen2 pattern (case-insensitive contractions, single digits, newline runs).
  const std::string qwen =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  auto tok = Variant(shared, [&](nlohmann::json& j) {
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", qwen}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  });
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(Ids(*tok, "caf\xC3\xA9 3.14"), ElementsAre(66, 3229, 127, 102, 220, 18, 13, 16, 19));
  EXPECT_THAT(Ids(*tok, "CAN'T STOP it'S"), ElementsAre(34, 3074, 6, 51, 312, 51, 46, 47, 305, 6, 50));
  EXPECT_THAT(Ids(*tok, "line one\n\nline two\r\n  indented"),
              ElementsAre(75, 667, 499, 198, 198, 75, 667, 749, 201, 198, 220, 1281, 354, 264));
  EXPECT_EQ(tok->Decode(Ids(*tok, "caf\xC3\xA9 3.14")), "caf\xC3\xA9 3.14");
}

TEST_F(ByteLevelVariantTest, DigitsPreTokenizerIsolatesDigits) {
  ADAK_REQUIRE_SHARED(shared);
  auto tok = Variant(shared, [](nlohmann::json& j) {
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers",
                           {{{"type", "Digits"}, {"individual_digits", true}},
                            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  });
  ASSERT_NE(tok, nullptr);
  // " 3" no longer merges: the digit is its own piece, the space another.
  EXPECT_THAT(Ids(*tok, "caf\xC3\xA9 3.14"), ElementsAre(66, 3229, 127, 102, 220, 18, 13, 16, 19));
}

}  // namespace
}  // namespace adak::tokenizer
