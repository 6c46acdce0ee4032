// Running a CLI11 command line: the `adak` binary (nine sub-commands) and `adak-server` (`serve` alone)
// share how a command is parsed, how its errors are reported and which exit code they give.
//
// A command is a CLI::App (its description and flags, declared once by a SetUp* function) and the action
// that runs once its flags have parsed. Exit codes: 0 ok (also --help and --version), 2 bad usage (a
// flag CLI11 or our checks refuse, and actions failing with InvalidArgument or NotFound), 1 any other
// runtime failure. Thread-compatible.
#ifndef ADAK_CLI_APP_H_
#define ADAK_CLI_APP_H_

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace adak::cli {

// What a command does once its flags have parsed. It owns the storage its flags are bound to.
using CommandFn = std::function<absl::Status()>;

struct Command {
  std::string name;         // errors read "adak <name>: ..."
  CLI::App* app = nullptr;  // a sub-command of the App RunCommandLine parses, or that App itself
  CommandFn run;
};

// Prints "adak <command>: <message>" ("adak: <message>" for an empty command) to stderr and returns the
// exit code for `status`: 2 for InvalidArgument and NotFound (bad usage or input), 1 otherwise.
int ReportError(std::string_view command, const absl::Status& status);

// Parses argv with `app`, then runs the parsed command among `commands` (a sub-command first, else `app`
// itself when it is in `commands`). --help prints the help of the command given (the command list at the
// top level) and --version the VersionLine, both exiting 0. Arguments no command takes are reported as
// "unknown flag --x", "unexpected argument 'x'" or, at the top level, "unknown command 'x'". Returns the
// process exit code.
int RunCommandLine(CLI::App* app, std::span<const Command> commands, int argc, char** argv);

// For single-command programs (the benchmarks, adak-loadgen): parses argv with `app`. Returns nullopt when
// the flags parsed and the program should go on; else the exit code after printing --help (0) or
// "<app name>: <usage error>" (2, an unknown flag reported before a missing required one).
[[nodiscard]] std::optional<int> ParseOrExit(CLI::App* app, int argc, char** argv);

}  // namespace adak::cli

#endif  // ADAK_CLI_APP_H_
