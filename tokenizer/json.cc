#include "tokenizer/json.h"

#include "base/strings.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {

absl::Status TokenizerJsonError(std::string_view where, std::string_view what) {
  if (where.empty()) {
    return absl::InvalidArgumentError(StrCatStd("tokenizer.json: ", what));
  }
  return absl::InvalidArgumentError(StrCatStd("tokenizer.json: ", where, ": ", what));
}

std::string JsonPath(std::string_view where, std::string_view key) {
  if (where.empty()) {
    return std::string(key);
  }
  return StrCatStd(where, ".", key);
}

const Json* JsonMember(const Json& object, std::string_view key) {
  if (!object.is_object()) {
    return nullptr;
  }
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

absl::StatusOr<std::string> JsonString(const Json& object, std::string_view key, std::string_view where) {
  const Json* member = JsonMember(object, key);
  if (member == nullptr) {
    return TokenizerJsonError(JsonPath(where, key), "missing");
  }
  if (!member->is_string()) {
    return TokenizerJsonError(JsonPath(where, key), "expected a string");
  }
  return member->get<std::string>();
}

absl::StatusOr<std::optional<std::string>> JsonOptionalString(const Json& object, std::string_view key,
                                                              std::string_view where) {
  const Json* member = JsonMember(object, key);
  if (member == nullptr) {
    return std::optional<std::string>();
  }
  if (!member->is_string()) {
    return TokenizerJsonError(JsonPath(where, key), "expected a string");
  }
  return std::optional<std::string>(member->get<std::string>());
}

absl::StatusOr<bool> JsonBool(const Json& object, std::string_view key, bool default_value, std::string_view where) {
  const Json* member = JsonMember(object, key);
  if (member == nullptr) {
    return default_value;
  }
  if (!member->is_boolean()) {
    return TokenizerJsonError(JsonPath(where, key), "expected true or false");
  }
  return member->get<bool>();
}

absl::StatusOr<int64_t> JsonCount(const Json& object, std::string_view key, int64_t default_value,
                                  std::string_view where) {
  const Json* member = JsonMember(object, key);
  if (member == nullptr) {
    return default_value;
  }
  if (member->is_number_unsigned()) {
    return static_cast<int64_t>(member->get<uint64_t>());
  }
  return TokenizerJsonError(JsonPath(where, key), "expected a non-negative integer");
}

absl::StatusOr<char32_t> JsonChar(const Json& object, std::string_view key, std::string_view where) {
  const Json* member = JsonMember(object, key);
  if (member == nullptr) {
    return TokenizerJsonError(JsonPath(where, key), "missing");
  }
  if (!member->is_string()) {
    return TokenizerJsonError(JsonPath(where, key), "expected a string");
  }
  const auto& text = member->get_ref<const std::string&>();
  if (text.empty() || !Utf8IsValid(text) || Utf8SequenceLength(static_cast<unsigned char>(text[0])) != text.size()) {
    return TokenizerJsonError(JsonPath(where, key), "expected exactly one character");
  }
  size_t length = 0;
  return Utf8DecodeAt(text, 0, &length);
}

}  // namespace adak::tokenizer
