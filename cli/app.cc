#include "cli/app.h"

#include <cstdio>
#include <string>
#include <vector>

#include "base/strings.h"
#include "cli/flags.h"

namespace adak::cli {

int ReportError(std::string_view command, const absl::Status& status) {
  const std::string message(ToStd(status.message()));
  if (command.empty()) {
    std::fprintf(stderr, "adak: %s\n", message.c_str());
  } else {
    std::fprintf(stderr, "adak %.*s: %s\n", static_cast<int>(command.size()), command.data(), message.c_str());
  }
  const bool usage =
      status.code() == absl::StatusCode::kInvalidArgument || status.code() == absl::StatusCode::kNotFound;
  return usage ? 2 : 1;
}

int RunCommandLine(CLI::App* app, std::span<const Command> commands, int argc, char** argv) {
  // The command being parsed, for error messages: the sub-command once CLI11 has entered it.
  auto command_name = [&]() -> std::string {
    const std::vector<CLI::App*> subs = app->get_subcommands();
    if (!subs.empty()) return subs.front()->get_name();
    for (const Command& c : commands) {
      if (c.app == app) return c.name;
    }
    return "";
  };
  try {
    app->parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app->exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app->exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app->exit(e);
  } catch (const CLI::ParseError& e) {
    // An unknown flag explains a missing required one (`--modle x`), so it is reported first.
    const std::vector<CLI::App*> subs = app->get_subcommands();
    absl::Status extra = CheckNoExtras(subs.empty() ? *app : *subs.front());
    return ReportError(command_name(), extra.ok() ? UsageError(e) : extra);
  }
  const Command* chosen = nullptr;
  for (const Command& c : commands) {
    if (c.app != app && c.app->parsed()) chosen = &c;
  }
  if (chosen == nullptr) {
    for (const Command& c : commands) {
      if (c.app == app) chosen = &c;
    }
  }
  if (chosen == nullptr) {
    const std::vector<std::string> extras = app->remaining();
    if (!extras.empty() && !extras.front().starts_with("-")) {
      return ReportError("", absl::InvalidArgumentError(
                                 StrCatStd("unknown command '", extras.front(), "' (adak --help lists the commands)")));
    }
    absl::Status extra = CheckNoExtras(*app);
    if (!extra.ok()) return ReportError("", extra);
    std::fputs(app->help().c_str(), stderr);
    return ReportError("", absl::InvalidArgumentError("no command given"));
  }
  absl::Status status = CheckNoExtras(*chosen->app);
  if (status.ok()) status = chosen->run();
  return status.ok() ? 0 : ReportError(chosen->name, status);
}

std::optional<int> ParseOrExit(CLI::App* app, int argc, char** argv) {
  absl::Status status;
  try {
    app->parse(argc, argv);
    status = CheckNoExtras(*app);
  } catch (const CLI::CallForHelp& e) {
    return app->exit(e);
  } catch (const CLI::ParseError& e) {
    const absl::Status extra = CheckNoExtras(*app);
    status = extra.ok() ? UsageError(e) : extra;
  }
  if (status.ok()) return std::nullopt;
  std::fprintf(stderr, "%s: %s\n", app->get_name().c_str(), std::string(ToStd(status.message())).c_str());
  return 2;
}

}  // namespace adak::cli
