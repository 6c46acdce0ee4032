#include "cli/flags.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#ifndef ADAK_VERSION
#error "ADAK_VERSION must be defined (cli/CMakeLists.txt passes the CMake project version)"
#endif

namespace adak::cli {
namespace {

template <typename T>
std::string RangeText(T min, T max) {
  if (max == std::numeric_limits<T>::max()) return absl::StrCat(">= ", min);
  return absl::StrCat("in [", min, ", ", max, "]");
}

// CLI11 prefixes a validator's message with "--name: "; ours already read "must be ...", so UsageError
// turns the prefix into "--name ".
template <typename T>
CLI::Option* AddIntImpl(CLI::App* app, const std::string& name, T* value, const std::string& description, T min,
                        T max) {
  CLI::Validator range(
      [min, max](std::string& text) -> std::string {
        int64_t v = 0;
        if (!absl::SimpleAtoi(text, &v) || v < static_cast<int64_t>(min) || v > static_cast<int64_t>(max)) {
          return absl::StrCat("must be an integer in [", min, ", ", max, "], got '", text, "'");
        }
        return "";
      },
      /*validator_desc=*/"");
  return app->add_option("--" + name, *value, absl::StrCat(description, " (", RangeText(min, max), ")"))
      ->check(range)
      ->capture_default_str();
}

std::string FlagNameIn(const std::string& message, const std::string& suffix) {
  std::string name = message.substr(0, message.size() - suffix.size());
  return absl::StartsWith(name, "--") ? name : "--" + name;
}

}  // namespace

CLI::Option* AddInt(CLI::App* app, const std::string& name, int64_t* value, const std::string& description, int64_t min,
                    int64_t max) {
  return AddIntImpl(app, name, value, description, min, max);
}

CLI::Option* AddInt(CLI::App* app, const std::string& name, int* value, const std::string& description, int min,
                    int max) {
  return AddIntImpl(app, name, value, description, min, max);
}

CLI::Option* AddDouble(CLI::App* app, const std::string& name, double* value, const std::string& description,
                       double min, double max) {
  CLI::Validator range(
      [min, max](std::string& text) -> std::string {
        double v = 0.0;
        if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || v < min || v > max) {
          return absl::StrCat("must be a number in [", min, ", ", max, "], got '", text, "'");
        }
        return "";
      },
      /*validator_desc=*/"");
  return app->add_option("--" + name, *value, absl::StrCat(description, " (in [", min, ", ", max, "])"))
      ->check(range)
      ->capture_default_str();
}

CLI::Option* AddString(CLI::App* app, const std::string& name, std::string* value, const std::string& description,
                       const std::string& type) {
  return app->add_option("--" + name, *value, description)->type_name(type)->capture_default_str();
}

CLI::Option* AddFlag(CLI::App* app, const std::string& name, bool* value, const std::string& description) {
  return app->add_flag("--" + name, *value, description)->disable_flag_override();
}

absl::Status CheckRange(const std::string& name, int64_t value, int64_t min, int64_t max) {
  if (value >= min && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, " must be an integer in [", min, ", ", max, "], got '", value, "'"));
}

absl::Status UsageError(const CLI::ParseError& error) {
  const std::string kind = error.get_name();
  std::string message = error.what();
  if (kind == "RequiredError" && absl::EndsWith(message, " is required") && absl::StartsWith(message, "--")) {
    return absl::InvalidArgumentError("missing required flag " + FlagNameIn(message, " is required"));
  }
  if (kind == "ArgumentMismatch") {
    const std::string kOverride = " was given a disallowed flag override";
    if (absl::EndsWith(message, kOverride)) {
      return absl::InvalidArgumentError(absl::StrCat("flag ", FlagNameIn(message, kOverride), " takes no value"));
    }
    // "--name: 1 required TYPE missing" (CLI11 2.1) or "Expected exactly 1 arguments to --name, got 0".
    if (absl::StrContains(message, " missing") || absl::StrContains(message, ", got 0")) {
      const size_t begin = message.find("--");
      const size_t end = message.find_first_of(":, ", begin);
      if (begin != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("flag ", message.substr(begin, end - begin), " needs a value"));
      }
    }
    // "--name: At Most 1 required but received 2".
    if (absl::StrContains(message, "At Most 1 required") && absl::StartsWith(message, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag ", message.substr(0, message.find(':')), " given more than once"));
    }
  }
  if (kind == "ValidationError" && absl::StartsWith(message, "--")) {
    // "--name: must be ..." -> "--name must be ...".
    if (const size_t colon = message.find(": "); colon != std::string::npos) message.replace(colon, 2, " ");
  }
  return absl::InvalidArgumentError(message);
}

absl::Status CheckNoExtras(const CLI::App& app) {
  const std::vector<std::string> extras = app.remaining();
  if (extras.empty()) return absl::OkStatus();
  const std::string& first = extras.front();
  if (absl::StartsWith(first, "-") && first.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("unknown flag ", first.substr(0, first.find('='))));
  }
  return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", first, "'"));
}

void ConfigureApp(CLI::App* app) {
  app->allow_extras();
  app->set_help_flag("-h,--help", "print this help and exit");
  app->get_formatter()->column_width(36);
}

std::string VersionLine() { return absl::StrCat("adak ", ADAK_VERSION); }

}  // namespace adak::cli
