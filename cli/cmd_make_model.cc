// `adak make-model`: a random-weight checkpoint of any size in real Hugging Face format.
#include <cstdio>
#include <string>

#include "base/status_macros.h"
#include "testing/make_model.h"
#include "cli/commands.h"

namespace adak::cli {
namespace {

absl::Status MakeModel(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string arch, flags.Required("arch"));
  ASSIGN_OR_RETURN(std::string out, flags.Required("out"));
  testing::MakeModelParams params;
  ASSIGN_OR_RETURN(params.arch, engine::ParseArchitecture(arch));
  ASSIGN_OR_RETURN(int64_t seed, flags.Int("seed", 0, 0, INT64_MAX));
  params.seed = static_cast<uint64_t>(seed);
  for (const std::string& kv : flags.All("set")) {
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

int RunMakeModel(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv, 2, {{"arch"}, {"out"}, {"seed"}, {"set", true, true}});
  if (!flags.ok()) return ReportError("make-model", flags.status());
  absl::Status s = MakeModel(*flags);
  return s.ok() ? 0 : ReportError("make-model", s);
}

}  // namespace adak::cli
