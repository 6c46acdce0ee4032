// Command-line flags of the `adak` sub-commands and the benchmarks: `--name value` or `--name=value`, some repeatable.
//
// Each sub-command declares the flags it accepts; anything else is an error naming the flag and listing
// the accepted ones. Typed getters return InvalidArgument naming the flag and the bad value.
#ifndef ADAK_BASE_FLAGS_H_
#define ADAK_BASE_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace adak {

struct FlagSpec {
  std::string name;       // without dashes
  bool takes_value = true;
  bool repeatable = false;
};

class Flags {
 public:
  // Parses argv[begin..). Errors: InvalidArgument for unknown flags, missing values, stray positionals.
  [[nodiscard]] static absl::StatusOr<Flags> Parse(int argc, char** argv, int begin, const std::vector<FlagSpec>& specs);

  [[nodiscard]] bool Has(std::string_view name) const;
  [[nodiscard]] absl::StatusOr<std::string> Required(std::string_view name) const;
  [[nodiscard]] std::string String(std::string_view name, std::string_view fallback) const;
  [[nodiscard]] absl::StatusOr<int64_t> Int(std::string_view name, int64_t fallback, int64_t min, int64_t max) const;
  [[nodiscard]] absl::StatusOr<double> Double(std::string_view name, double fallback, double min, double max) const;
  [[nodiscard]] std::vector<std::string> All(std::string_view name) const;

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
};

}  // namespace adak

#endif  // ADAK_BASE_FLAGS_H_
