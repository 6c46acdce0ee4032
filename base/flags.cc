#include "base/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace adak {

absl::StatusOr<Flags> Flags::Parse(int argc, char** argv, int begin, const std::vector<FlagSpec>& specs) {
  Flags flags;
  auto known = [&](std::string_view name) -> const FlagSpec* {
    for (const FlagSpec& s : specs) {
      if (s.name == name) return &s;
    }
    return nullptr;
  };
  auto list = [&] {
    std::vector<std::string> names;
    for (const FlagSpec& s : specs) names.push_back("--" + s.name);
    return absl::StrJoin(names, " ");
  };
  for (int i = begin; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", std::string(arg), "' (flags: ", list(), ")"));
    }
    arg.remove_prefix(2);
    std::string name(arg), value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
      has_value = true;
    }
    const FlagSpec* spec = known(name);
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (flags: ", list(), ")"));
    if (spec->takes_value && !has_value) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      value = argv[++i];
    } else if (!spec->takes_value && has_value) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
    }
    auto& slot = flags.values_[name];
    if (!slot.empty() && !spec->repeatable) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " given more than once"));
    }
    slot.push_back(value);
  }
  return flags;
}

bool Flags::Has(std::string_view name) const { return values_.find(name) != values_.end(); }

absl::StatusOr<std::string> Flags::Required(std::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return absl::InvalidArgumentError(absl::StrCat("missing required flag --", std::string(name)));
  return it->second.back();
}

std::string Flags::String(std::string_view name, std::string_view fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::string(fallback) : it->second.back();
}

absl::StatusOr<int64_t> Flags::Int(std::string_view name, int64_t fallback, int64_t min, int64_t max) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  int64_t v;
  if (!absl::SimpleAtoi(it->second.back(), &v) || v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("--", std::string(name), " must be an integer in [", min, ", ", max,
                                                   "], got '", it->second.back(), "'"));
  }
  return v;
}

absl::StatusOr<double> Flags::Double(std::string_view name, double fallback, double min, double max) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  double v;
  if (!absl::SimpleAtod(it->second.back(), &v) || !std::isfinite(v) || v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("--", std::string(name), " must be a number in [", min, ", ", max,
                                                   "], got '", it->second.back(), "'"));
  }
  return v;
}

std::vector<std::string> Flags::All(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace adak
