// Small accessors for reading tokenizer.json (and its companion config files) with nlohmann::json without
// letting exceptions escape: every accessor checks the type first and returns InvalidArgument naming the
// file, the JSON path and what was expected, e.g.
//   "tokenizer.json: pre_tokenizer.pretokenizers[1].behavior: expected a string".
// Stateless; safe from any thread.
#ifndef ADAK_TOKENIZER_JSON_H_
#define ADAK_TOKENIZER_JSON_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"

namespace adak::tokenizer {

using Json = nlohmann::json;

// InvalidArgument "tokenizer.json: <where>: <what>" (`where` may be empty for the whole file).
[[nodiscard]] absl::Status TokenizerJsonError(std::string_view where, std::string_view what);

// `where` + "." + `key`, or `key` alone when `where` is empty.
[[nodiscard]] std::string JsonPath(std::string_view where, std::string_view key);

// The member `key` of `object`, or nullptr when `object` is not an object, or the member is absent or null.
[[nodiscard]] const Json* JsonMember(const Json& object, std::string_view key);

// Required string member. Errors: InvalidArgument when absent/null ("missing") or not a string.
[[nodiscard]] absl::StatusOr<std::string> JsonString(const Json& object, std::string_view key, std::string_view where);
// Optional string member: nullopt when absent or null. Errors: InvalidArgument when not a string.
[[nodiscard]] absl::StatusOr<std::optional<std::string>> JsonOptionalString(const Json& object, std::string_view key,
                                                                            std::string_view where);
// Optional boolean member with a default. Errors: InvalidArgument when present but not a boolean.
[[nodiscard]] absl::StatusOr<bool> JsonBool(const Json& object, std::string_view key, bool default_value,
                                            std::string_view where);
// Optional non-negative integer member with a default. Errors: InvalidArgument when present but not a
// non-negative integer.
[[nodiscard]] absl::StatusOr<int64_t> JsonCount(const Json& object, std::string_view key, int64_t default_value,
                                                std::string_view where);
// The single character of a string member (e.g. Metaspace `replacement`). Errors: InvalidArgument when
// missing, not a string, or not exactly one UTF-8 character.
[[nodiscard]] absl::StatusOr<char32_t> JsonChar(const Json& object, std::string_view key, std::string_view where);

// Parses json[key], an array, with `parse(element, where_of_element)` for each element: the steps of a
// `Sequence` normalizer / pre-tokenizer / decoder / post-processor. Errors: "expected an array" at
// where.key, or the first element's error (its where is "where.key[i]").
template <typename T, typename Parse>
[[nodiscard]] absl::StatusOr<std::vector<std::unique_ptr<T>>> ParseJsonSequence(const Json& json, std::string_view key,
                                                                                std::string_view where, Parse parse) {
  const std::string path = JsonPath(where, key);
  const Json* list = JsonMember(json, key);
  if (list == nullptr || !list->is_array()) return TokenizerJsonError(path, "expected an array");
  std::vector<std::unique_ptr<T>> steps;
  for (size_t i = 0; i < list->size(); ++i) {
    absl::StatusOr<std::unique_ptr<T>> step = parse((*list)[i], StrCatStd(path, "[", i, "]"));
    if (!step.ok()) return step.status();
    steps.push_back(*std::move(step));
  }
  return steps;
}

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_JSON_H_
