#include "tokenizer/pattern.h"

#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::tokenizer {

absl::StatusOr<TokenizerPattern> TokenizerPattern::FromJson(const Json& pattern, std::string_view where) {
  TokenizerPattern result;
  if (const Json* literal = JsonMember(pattern, "String"); literal != nullptr) {
    if (!literal->is_string()) {
      return TokenizerJsonError(JsonPath(where, "String"), "expected a string");
    }
    result.literal_ = literal->get<std::string>();
    return result;
  }
  if (const Json* regex = JsonMember(pattern, "Regex"); regex != nullptr) {
    if (!regex->is_string()) {
      return TokenizerJsonError(JsonPath(where, "Regex"), "expected a string");
    }
    auto compiled = TokenizerRegex::Compile(regex->get<std::string>());
    if (!compiled.ok()) {
      return TokenizerJsonError(JsonPath(where, "Regex"), ToStd(compiled.status().message()));
    }
    result.regex_ = std::move(compiled).value();
    return result;
  }
  return TokenizerJsonError(where, "expected an object with a \"String\" or \"Regex\" member");
}

absl::StatusOr<std::vector<TokenizerRegex::Match>> TokenizerPattern::FindAll(std::string_view text) const {
  if (regex_ != nullptr) {
    return regex_->FindAll(text);
  }
  std::vector<TokenizerRegex::Match> matches;
  if (literal_.empty()) {
    return matches;
  }
  size_t pos = text.find(literal_);
  while (pos != std::string_view::npos) {
    matches.push_back({pos, pos + literal_.size()});
    pos = text.find(literal_, pos + literal_.size());
  }
  return matches;
}

absl::StatusOr<std::string> TokenizerPattern::ReplaceAll(std::string_view text, std::string_view content) const {
  ASSIGN_OR_RETURN(const std::vector<TokenizerRegex::Match> matches, FindAll(text));
  if (matches.empty()) {
    return std::string(text);
  }
  std::string out;
  out.reserve(text.size() + matches.size() * content.size());
  size_t last = 0;
  for (const auto& match : matches) {
    out.append(text.substr(last, match.begin - last));
    out.append(content);
    last = match.end;
  }
  out.append(text.substr(last));
  return out;
}

}  // namespace adak::tokenizer
