// `adak-server`: `adak serve` alone (same flags, same behaviour), linked without training/ or testing/.
#include <vector>

#include "base/guarded_main.h"
#include "cli/app.h"
#include "cli/flags.h"
#include "cli/serve_command.h"

namespace {

int Run(int argc, char** argv) {
  CLI::App app(
      "adak-server: the adak inference server (gRPC + OpenAI-compatible HTTP); adak serve without the "
      "offline commands",
      "adak-server");
  adak::cli::ConfigureApp(&app);
  app.set_version_flag("--version", adak::cli::VersionLine(), "print the version and exit");
  const std::vector<adak::cli::Command> commands = {{"serve", &app, adak::cli::SetUpServe(&app)}};
  return adak::cli::RunCommandLine(&app, commands, argc, argv);
}

}  // namespace

int main(int argc, char** argv) {
  return adak::GuardedMain("adak-server", [&] { return Run(argc, argv); });
}
