// String glue used across the project. Debian's Abseil (20220623) is built with its own absl::string_view
// (ABSL_OPTION_USE_STD_STRING_VIEW 0), so absl::StrCat and absl's string-keyed hash maps do not accept
// std::string_view. This header provides StrCatStd (absl::StrCat that also takes std::string_view) and
// StringMap, a flat_hash_map keyed by std::string that can be looked up with a std::string_view.
// Stateless; safe from any thread.
#ifndef ADAK_BASE_STRINGS_H_
#define ADAK_BASE_STRINGS_H_

#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace adak {

namespace strings_internal {
template <typename T>
decltype(auto) ToAlphaNumArg(const T& value) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return absl::string_view(value.data(), value.size());
  } else {
    return (value);
  }
}
}  // namespace strings_internal

// absl::StrCat accepting std::string_view arguments too.
template <typename... Args>
[[nodiscard]] std::string StrCatStd(const Args&... args) {
  return absl::StrCat(strings_internal::ToAlphaNumArg(args)...);
}

// std::string_view for an absl::string_view (e.g. absl::Status::message()).
[[nodiscard]] inline std::string_view ToStd(absl::string_view text) { return {text.data(), text.size()}; }

struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
struct StringViewEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

// A hash map keyed by std::string, with heterogeneous std::string_view lookup.
template <typename Value>
using StringMap = absl::flat_hash_map<std::string, Value, StringViewHash, StringViewEq>;

}  // namespace adak

#endif  // ADAK_BASE_STRINGS_H_
