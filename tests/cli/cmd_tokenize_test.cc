// `adak tokenize` as tools/train_demo_model.py runs it: the real binary on the committed default model's
// tokenizer (stories-mixtral's byte-level BPE), ids printed or written as uint32 little-endian.
#include <cstdint>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace adak {
namespace {

using ::adak::testing::RunCommand;
using ::adak::testing::ShellQuote;
using ::testing::HasSubstr;

std::string Tokenize(const std::string& args, int* code) {
  const std::string model = (::adak::testing::SourceDir() / "models/stories-moe-small").string();
  return RunCommand(::adak::testing::AdakBinary() + " tokenize --model " + ShellQuote(model) + " " + args, code);
}

// The ids of stories-mixtral's reference/topk.json prompt 1 (HF tokenizers semantics).
constexpr char kPrompt[] = "Once upon a time, there was a little girl who loved fashion.";
constexpr char kPromptIds[] = "504 458 258 421 11 405 288 258 388 509 477 651 272 1483 494 13";

TEST(AdakTokenize, PrintsSpaceSeparatedIds) {
  int code = 0;
  const std::string out = Tokenize("--text " + ShellQuote(kPrompt), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out, std::string(kPromptIds) + "\n");
}

TEST(AdakTokenize, EndOfTextInTheTextIsTheSpecialId) {
  int code = 0;
  const std::string out = Tokenize("--text " + ShellQuote("Once upon a time<|endoftext|>Hi"), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out, "504 458 258 421 4095 2598\n");
}

TEST(AdakTokenize, WritesUint32LittleEndianIds) {
  ::adak::testing::TempDir tmp;
  ::adak::testing::WriteFile(tmp.path() / "in.txt", std::string(kPrompt) + "<|endoftext|>");
  int code = 0;
  const std::string out = Tokenize("--file " + ShellQuote((tmp.path() / "in.txt").string()) + " --out " +
                                       ShellQuote((tmp.path() / "ids.bin").string()) + " 2>&1",
                                   &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("-> 17 tokens"));
  const std::string bytes = ::adak::testing::ReadFile(tmp.path() / "ids.bin");
  ASSERT_EQ(bytes.size(), 17u * 4);
  std::vector<uint32_t> ids;
  for (size_t i = 0; i < bytes.size(); i += 4) {
    uint32_t v = 0;
    for (size_t b = 0; b < 4; ++b) v |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + b])) << (8 * b);
    ids.push_back(v);
  }
  const std::vector<uint32_t> want = {504, 458, 258, 421, 11,   405, 288, 258, 388,
                                      509, 477, 651, 272, 1483, 494, 13,  4095};
  EXPECT_EQ(ids, want);
}

TEST(AdakTokenize, BadUsageIsExitCode2) {
  int code = 0;
  std::string out = Tokenize("--text a --file b 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("exactly one of --text S and --file F"));
  out = Tokenize("2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("exactly one of --text S and --file F"));
  out = Tokenize("--file /nonexistent/x.txt 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("cannot open --file /nonexistent/x.txt"));
  out = RunCommand(::adak::testing::AdakBinary() + " tokenize --model /nonexistent --text hi 2>&1", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("/nonexistent"));
}

}  // namespace
}  // namespace adak
