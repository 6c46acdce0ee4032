// Typed flags for the `adak` commands, `adak-server` and the tools, on CLI11 (Debian libcli11-dev 2.1.2).
//
// Each command declares its flags once, with a description and (captured from the bound variable) a
// default; the same declarations parse argv and print `--help`, so there is no hand-written usage text.
// The helpers here add the checks CLI11 does not word as we want: integer and number ranges refused at
// parse time naming the flag ("--top must be an integer in [1, 1048576], got '0'"), boolean flags that
// take no value, and the mapping of CLI11's parse errors onto our messages and absl::StatusCode
// InvalidArgument (bad usage, exit code 2):
//   unknown flag --bogus / unexpected argument 'x' / missing required flag --data / flag --x needs a value /
//   flag --x takes no value / flag --x given more than once.
//
// Thread-compatible: an App and the variables it binds belong to the thread that parses.
#ifndef ADAK_CLI_FLAGS_H_
#define ADAK_CLI_FLAGS_H_

#include <cstdint>
#include <limits>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace adak::cli {

inline constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

// `--name` bound to `*value`, whose current value is the default shown by --help. On a value outside
// [min, max] (or not an integer) parsing fails with "--name must be an integer in [min, max], got 'v'".
// REQUIRES: `value` outlives parsing; name without dashes.
CLI::Option* AddInt(CLI::App* app, const std::string& name, int64_t* value, const std::string& description, int64_t min,
                    int64_t max);
CLI::Option* AddInt(CLI::App* app, const std::string& name, int* value, const std::string& description, int min,
                    int max);
// The same for a finite number: "--name must be a number in [min, max], got 'v'".
CLI::Option* AddDouble(CLI::App* app, const std::string& name, double* value, const std::string& description,
                       double min, double max);
// Any string; `type` names it in --help (e.g. DIR, FILE). A default is shown when `*value` is not empty.
CLI::Option* AddString(CLI::App* app, const std::string& name, std::string* value, const std::string& description,
                       const std::string& type = "TEXT");
// A boolean flag: `--name` sets `*value`; `--name=x` is refused ("flag --name takes no value").
CLI::Option* AddFlag(CLI::App* app, const std::string& name, bool* value, const std::string& description);

// Whether the flag was on the command line.
[[nodiscard]] inline bool Given(const CLI::Option* option) { return option != nullptr && option->count() > 0; }

// InvalidArgument "--name must be an integer in [min, max], got 'value'" when value is out of range (for
// ranges only known after parsing, e.g. the model's context length), else OK.
[[nodiscard]] absl::Status CheckRange(const std::string& name, int64_t value, int64_t min, int64_t max);

// A CLI11 parse error as InvalidArgument in our wording (see the file comment); the message of an
// unrecognised error is kept as CLI11 wrote it.
[[nodiscard]] absl::Status UsageError(const CLI::ParseError& error);

// InvalidArgument naming the first argument `app` did not recognise ("unknown flag --bogus" or
// "unexpected argument 'x'"), else OK. For apps that allow_extras() so parsing collects them.
[[nodiscard]] absl::Status CheckNoExtras(const CLI::App& app);

// Our defaults for a command's App: extras collected (reported by CheckNoExtras), help on --help/-h,
// options listed in declaration order.
void ConfigureApp(CLI::App* app);

// "adak <version>" (the CMake project version).
[[nodiscard]] std::string VersionLine();

}  // namespace adak::cli

#endif  // ADAK_CLI_FLAGS_H_
