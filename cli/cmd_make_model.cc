// `adak make-model`: a random-weight checkpoint of any size in real Hugging Face format.
#include <cstdio>
#include <string>
#include <vector>

#include "base/status_macros.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "testing/make_model.h"

namespace adak::cli {
namespace {

struct MakeModelFlags {
  std::string arch;
  std::string out;
  int64_t seed = 0;
  std::vector<std::string> set;
};

absl::Status MakeModel(const MakeModelFlags& flags) {
  const std::string& out = flags.out;
  testing::MakeModelParams params;
  ASSIGN_OR_RETURN(params.arch, engine::ParseArchitecture(flags.arch));
  params.seed = static_cast<uint64_t>(flags.seed);
  for (const std::string& kv : flags.set) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError("--set expects key=value, got '" + kv + "'");
    }
    params.overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  RETURN_IF_ERROR(testing::MakeModel(params, out));
  std::printf("wrote %s model to %s\n", std::string(engine::ArchitectureName(params.arch)).c_str(), out.c_str());
  return absl::OkStatus();
}

}  // namespace

CommandFn SetUpMakeModel(CLI::App* command) {
  command->description("write a random-weight checkpoint of any size in real Hugging Face format");
  auto flags = std::make_shared<MakeModelFlags>();
  AddString(command, "arch", &flags->arch, "architecture: mixtral, qwen2_moe, deepseek, olmoe or qwen3_moe", "ARCH")
      ->required();
  AddString(command, "out", &flags->out, "output directory", "DIR")->required();
  AddInt(command, "seed", &flags->seed, "weight seed", 0, kNoMax);
  command->add_option("--set", flags->set, "config.json override key=value (repeatable)")
      ->type_name("KEY=VALUE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  return [flags] { return MakeModel(*flags); };
}

}  // namespace adak::cli
