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
#include "cli/commands.h"
#include "cli/flags.h"
#include "tokenizer/tokenizer.h"

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

struct TokenizeFlags {
  std::string model;
  std::string text;
  std::string file;
  std::string out;
  bool add_special_tokens = false;
  CLI::Option* text_option = nullptr;
  CLI::Option* file_option = nullptr;
  CLI::Option* out_option = nullptr;
};

absl::Status Tokenize(const TokenizeFlags& flags) {
  if (Given(flags.text_option) == Given(flags.file_option)) {
    return absl::InvalidArgumentError("give exactly one of --text S and --file F");
  }
  std::string text;
  if (Given(flags.text_option)) {
    text = flags.text;
  } else {
    RETURN_IF_ERROR(ReadTextFile(flags.file, &text));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tokenizer, tokenizer::Tokenizer::FromModelDir(flags.model));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer->Encode(text, flags.add_special_tokens));
  if (Given(flags.out_option)) {
    RETURN_IF_ERROR(WriteIds(flags.out, ids));
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

CommandFn SetUpTokenize(CLI::App* command) {
  command->description("text -> token ids with a model's tokenizer.json (no weights are loaded)");
  auto flags = std::make_shared<TokenizeFlags>();
  AddString(command, "model", &flags->model, "Hugging Face model directory (its tokenizer.json)", "DIR")->required();
  flags->text_option = AddString(command, "text", &flags->text, "text to tokenize (or --file)");
  flags->file_option = AddString(command, "file", &flags->file, "file whose text to tokenize (or --text)", "FILE");
  flags->out_option =
      AddString(command, "out", &flags->out,
                "write the ids as raw uint32 little-endian to this file instead of printing them", "FILE");
  AddFlag(command, "add-special-tokens", &flags->add_special_tokens,
          "also run the tokenizer's post-processor (e.g. a prepended BOS)");
  return [flags] { return Tokenize(*flags); };
}

}  // namespace adak::cli
