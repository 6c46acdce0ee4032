// `adak`: the command-line entry point, one sub-command per file (cmd_*.cc). `adak --help` lists the
// commands, `adak <command> --help` its flags; both are generated from the flag declarations.
#include <cstdio>
#include <string_view>
#include <vector>

#include "base/guarded_main.h"
#include "cli/app.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/serve_command.h"

namespace {

struct CommandEntry {
  const char* name;
  adak::cli::CommandFn (*set_up)(CLI::App*);
};

constexpr CommandEntry kCommands[] = {
    {"generate", adak::cli::SetUpGenerate},
    {"logits", adak::cli::SetUpLogits},
    {"perplexity", adak::cli::SetUpPerplexity},
    {"eval", adak::cli::SetUpEval},
    {"train-allocator", adak::cli::SetUpTrainAllocator},
    {"serve", adak::cli::SetUpServe},
    {"inspect", adak::cli::SetUpInspect},
    {"tokenize", adak::cli::SetUpTokenize},
    {"make-model", adak::cli::SetUpMakeModel},
};

int Run(int argc, char** argv) {
  CLI::App app("adak: inference, evaluation and Ada-K allocator training for Mixture-of-Experts models", "adak");
  adak::cli::ConfigureApp(&app);
  app.set_version_flag("--version", adak::cli::VersionLine(), "print the version and exit");
  std::vector<adak::cli::Command> commands;
  for (const CommandEntry& entry : kCommands) {
    CLI::App* sub = app.add_subcommand(entry.name);
    adak::cli::ConfigureApp(sub);
    commands.push_back({entry.name, sub, entry.set_up(sub)});
  }
  const bool no_command = argc < 2;
  if (no_command || std::string_view(argv[1]) == "help") {
    std::fputs(app.help().c_str(), no_command ? stderr : stdout);
    return no_command ? 2 : 0;
  }
  return adak::cli::RunCommandLine(&app, commands, argc, argv);
}

}  // namespace

int main(int argc, char** argv) {
  return adak::GuardedMain("adak", [&] { return Run(argc, argv); });
}
