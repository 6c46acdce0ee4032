// `adak tokenize`: text -> token ids with a model's tokenizer.json (no weights are loaded). The ids are
// printed space separated on one line, or written to --out as raw uint32 little-endian (what
// tools/train_demo_model.py reads with numpy). Special tokens written in the text (e.g. `<|endoftext|>`)
// become their ids, as HF's added-token splitting does; --add-special-tokens also runs the post-processor
// (e.g. a prepended BOS).
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "tokenizer/tokenizer.h"
#include "cli/commands.h"

namespace adak::cli {
namespace {

absl::Status WriteIds(const std::string& path, const std::vector<int32_t>& ids) {
  std::vector<unsigned char> bytes;
  bytes.reserve(ids.size() * 4);
  for (int32_t id : ids) {
    const auto v = static_cast<uint32_t>(id);
    for (int shift = 0; shift < 32; shift += 8) bytes.push_back(static_cast<unsigned char>((v >> shift) & 0xff));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::NotFoundError(absl::StrCat("cannot open --out file ", path, " for writing"));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("failed writing --out file ", path));
  return absl::OkStatus();
}

absl::Status ReadTextFile(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open --file ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("cannot read --file ", path));
  *text = ss.str();
  return absl::OkStatus();
}

absl::Status Tokenize(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string dir, flags.Required("model"));
  if (flags.Has("text") == flags.Has("file")) {
    return absl::InvalidArgumentError("give exactly one of --text S and --file F");
  }
  std::string text;
  if (flags.Has("text")) {
    text = flags.String("text", "");
  } else {
    RETURN_IF_ERROR(ReadTextFile(flags.String("file", ""), &text));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tokenizer, tokenizer::Tokenizer::FromModelDir(dir));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer->Encode(text, flags.Has("add-special-tokens")));
  if (flags.Has("out")) {
    RETURN_IF_ERROR(WriteIds(flags.String("out", ""), ids));
    std::fprintf(stderr, "adak tokenize: %zu bytes -> %zu tokens\n", text.size(), ids.size());
    return absl::OkStatus();
  }
  std::string line;
  line.reserve(ids.size() * 5 + 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line.push_back(' ');
    absl::StrAppend(&line, ids[i]);
  }
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stdout);
  return absl::OkStatus();
}

}  // namespace

int RunTokenize(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv, 2,
                            {{"model"}, {"text"}, {"file"}, {"out"}, {.name = "add-special-tokens", .takes_value = false}});
  if (!flags.ok()) return ReportError("tokenize", flags.status());
  absl::Status s = Tokenize(*flags);
  return s.ok() ? 0 : ReportError("tokenize", s);
}

}  // namespace adak::cli
