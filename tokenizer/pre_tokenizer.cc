#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "base/status_macros.h"
#include "base/strings.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pattern.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {
namespace {

// The pattern of HF's ByteLevel pre-tokenizer (GPT-2).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Appends the non-empty sub-pieces `ranges` of `text` (the text of `parent`) to `out`.
void AppendRanges(const PreToken& parent, std::string_view text, const std::vector<TokenizerRegex::Match>& ranges,
                  std::vector<PreToken>* out) {
  for (const auto& range : ranges) {
    if (range.end <= range.begin) {
      continue;
    }
    out->push_back(
        {std::string(text.substr(range.begin, range.end - range.begin)), parent.at_input_start && range.begin == 0});
  }
}

// Runs `fn(piece, &out)` on every piece and replaces the pieces by what it appended.
template <typename Fn>
absl::Status SplitEach(std::vector<PreToken>* pieces, Fn fn) {
  std::vector<PreToken> out;
  out.reserve(pieces->size());
  for (PreToken& piece : *pieces) {
    if (piece.text.empty()) {
      continue;
    }
    RETURN_IF_ERROR(fn(piece, &out));
  }
  *pieces = std::move(out);
  return absl::OkStatus();
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  absl::Status PreTokenize(std::vector<PreToken>* pieces) const override {
    for (const auto& step : steps_) {
      RETURN_IF_ERROR(step->PreTokenize(pieces));
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Split, Digits, Whitespace and WhitespaceSplit: a pattern plus a behavior.
class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(TokenizerPattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  absl::Status PreTokenize(std::vector<PreToken>* pieces) const override {
    return SplitEach(pieces, [this](const PreToken& piece, std::vector<PreToken>* out) -> absl::Status {
      ASSIGN_OR_RETURN(const auto matches, pattern_.FindAll(piece.text));
      AppendRanges(piece, piece.text, SplitRanges(piece.text.size(), matches, invert_, behavior_), out);
      return absl::OkStatus();
    });
  }

 private:
  TokenizerPattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<TokenizerRegex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  absl::Status PreTokenize(std::vector<PreToken>* pieces) const override {
    return SplitEach(pieces, [this](const PreToken& piece, std::vector<PreToken>* out) -> absl::Status {
      std::string prefixed;
      std::string_view text = piece.text;
      if (add_prefix_space_ && text.front() != ' ') {
        prefixed = StrCatStd(" ", text);
        text = prefixed;
      }
      std::vector<TokenizerRegex::Match> ranges;
      if (regex_ != nullptr) {
        ASSIGN_OR_RETURN(const auto matches, regex_->FindAll(text));
        ranges = SplitRanges(text.size(), matches, /*invert=*/false, SplitBehavior::kIsolated);
      } else {
        ranges.push_back({0, text.size()});
      }
      for (const auto& range : ranges) {
        PreToken sub;
        sub.at_input_start = piece.at_input_start && range.begin == 0;
        ByteLevelEncode(text.substr(range.begin, range.end - range.begin), &sub.text);
        out->push_back(std::move(sub));
      }
      return absl::OkStatus();
    });
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<TokenizerRegex> regex_;  // null when use_regex is false
};

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split) : scheme_(scheme), split_(split) {
    Utf8Append(replacement, &replacement_);
  }
  absl::Status PreTokenize(std::vector<PreToken>* pieces) const override {
    return SplitEach(pieces, [this](const PreToken& piece, std::vector<PreToken>* out) -> absl::Status {
      std::string text;
      text.reserve(piece.text.size() + replacement_.size());
      const bool starts_with_replacement =
          piece.text.front() == ' ' || std::string_view(piece.text).substr(0, replacement_.size()) == replacement_;
      if (!starts_with_replacement &&
          (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece.at_input_start))) {
        text.append(replacement_);
      }
      for (const char c : piece.text) {
        if (c == ' ') {
          text.append(replacement_);
        } else {
          text.push_back(c);
        }
      }
      if (!split_) {
        out->push_back({std::move(text), piece.at_input_start});
        return absl::OkStatus();
      }
      std::vector<TokenizerRegex::Match> matches;
      for (size_t pos = text.find(replacement_); pos != std::string::npos;
           pos = text.find(replacement_, pos + replacement_.size())) {
        matches.push_back({pos, pos + replacement_.size()});
      }
      AppendRanges(piece, text, SplitRanges(text.size(), matches, false, SplitBehavior::kMergedWithNext), out);
      return absl::OkStatus();
    });
  }

 private:
  std::string replacement_;  // UTF-8
  PrependScheme scheme_;
  bool split_;
};

absl::StatusOr<SplitBehavior> ParseBehavior(const Json& json, std::string_view where) {
  ASSIGN_OR_RETURN(const std::string name, JsonString(json, "behavior", where));
  if (name == "Removed") {
    return SplitBehavior::kRemoved;
  }
  if (name == "Isolated") {
    return SplitBehavior::kIsolated;
  }
  if (name == "MergedWithPrevious") {
    return SplitBehavior::kMergedWithPrevious;
  }
  if (name == "MergedWithNext") {
    return SplitBehavior::kMergedWithNext;
  }
  if (name == "Contiguous") {
    return SplitBehavior::kContiguous;
  }
  return TokenizerJsonError(JsonPath(where, "behavior"),
                            StrCatStd("unknown split behavior '", name,
                                      "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or "
                                      "Contiguous)"));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> RegexSplit(std::string_view pattern, SplitBehavior behavior,
                                                         bool invert) {
  ASSIGN_OR_RETURN(const auto compiled,
                   TokenizerPattern::FromJson(Json{{"Regex", std::string(pattern)}}, "pre_tokenizer"));
  return std::make_unique<SplitPreTokenizer>(compiled, behavior, invert);
}

}  // namespace

std::vector<TokenizerRegex::Match> SplitRanges(size_t text_size, const std::vector<TokenizerRegex::Match>& matches,
                                               bool invert, SplitBehavior behavior) {
  struct Segment {
    size_t begin;
    size_t end;
    bool is_match;
  };
  std::vector<Segment> segments;
  segments.reserve(matches.size() * 2 + 1);
  size_t previous_end = 0;
  for (const auto& match : matches) {
    if (previous_end != match.begin) {
      segments.push_back({previous_end, match.begin, invert});
    }
    segments.push_back({match.begin, match.end, !invert});
    previous_end = match.end;
  }
  if (previous_end != text_size) {
    segments.push_back({previous_end, text_size, invert});
  }

  std::vector<TokenizerRegex::Match> ranges;
  ranges.reserve(segments.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& s : segments) {
        ranges.push_back({s.begin, s.end});
      }
      break;
    case SplitBehavior::kRemoved:
      for (const auto& s : segments) {
        if (!s.is_match) {
          ranges.push_back({s.begin, s.end});
        }
      }
      break;
    case SplitBehavior::kContiguous:
      for (const auto& s : segments) {
        if (s.is_match == previous_match && !ranges.empty()) {
          ranges.back().end = s.end;
        } else {
          ranges.push_back({s.begin, s.end});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& s : segments) {
        if (s.is_match && !previous_match && !ranges.empty()) {
          ranges.back().end = s.end;
        } else {
          ranges.push_back({s.begin, s.end});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !ranges.empty()) {
          ranges.back().begin = it->begin;
        } else {
          ranges.push_back({it->begin, it->end});
        }
        previous_match = it->is_match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
  }
  std::erase_if(ranges, [](const TokenizerRegex::Match& r) { return r.end <= r.begin; });
  return ranges;
}

absl::StatusOr<PrependScheme> ParsePrependScheme(const Json& json, std::string_view where) {
  ASSIGN_OR_RETURN(const std::optional<std::string> scheme, JsonOptionalString(json, "prepend_scheme", where));
  const Json* legacy = JsonMember(json, "add_prefix_space");
  if (legacy != nullptr && !legacy->is_boolean()) {
    return TokenizerJsonError(JsonPath(where, "add_prefix_space"), "expected true or false");
  }
  std::optional<PrependScheme> result;
  if (scheme.has_value()) {
    if (*scheme == "always") {
      result = PrependScheme::kAlways;
    } else if (*scheme == "first") {
      result = PrependScheme::kFirst;
    } else if (*scheme == "never") {
      result = PrependScheme::kNever;
    } else {
      return TokenizerJsonError(JsonPath(where, "prepend_scheme"),
                                StrCatStd("unknown prepend_scheme '", *scheme, "' (expected always, first or never)"));
    }
  }
  // As HF: add_prefix_space false means "never" and must not contradict an explicit scheme.
  if (legacy != nullptr && !legacy->get<bool>()) {
    if (result.has_value() && *result != PrependScheme::kNever) {
      return TokenizerJsonError(where, "add_prefix_space false does not match prepend_scheme");
    }
    result = PrependScheme::kNever;
  }
  return result.value_or(PrependScheme::kAlways);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const Json& json, std::string_view where) {
  if (!json.is_object()) {
    return TokenizerJsonError(where, "expected an object");
  }
  ASSIGN_OR_RETURN(const std::string type, JsonString(json, "type", where));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(auto steps, ParseJsonSequence<PreTokenizer>(json, "pretokenizers", where,
                                                                 [](const Json& step, std::string_view at) {
                                                                   return PreTokenizerFromJson(step, at);
                                                                 }));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "ByteLevel") {
    ASSIGN_OR_RETURN(const bool add_prefix_space, JsonBool(json, "add_prefix_space", true, where));
    ASSIGN_OR_RETURN(const bool use_regex, JsonBool(json, "use_regex", true, where));
    std::unique_ptr<TokenizerRegex> regex;
    if (use_regex) {
      ASSIGN_OR_RETURN(regex, TokenizerRegex::Compile(kGpt2Pattern));
    }
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(regex));
  }
  if (type == "Split") {
    const Json* pattern_json = JsonMember(json, "pattern");
    if (pattern_json == nullptr) {
      return TokenizerJsonError(JsonPath(where, "pattern"), "missing");
    }
    ASSIGN_OR_RETURN(TokenizerPattern pattern, TokenizerPattern::FromJson(*pattern_json, JsonPath(where, "pattern")));
    ASSIGN_OR_RETURN(const SplitBehavior behavior, ParseBehavior(json, where));
    ASSIGN_OR_RETURN(const bool invert, JsonBool(json, "invert", false, where));
    return std::make_unique<SplitPreTokenizer>(std::move(pattern), behavior, invert);
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(const char32_t replacement, JsonChar(json, "replacement", where));
    ASSIGN_OR_RETURN(const PrependScheme scheme, ParsePrependScheme(json, where));
    ASSIGN_OR_RETURN(const bool split, JsonBool(json, "split", true, where));
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, split);
  }
  if (type == "Digits") {
    ASSIGN_OR_RETURN(const bool individual, JsonBool(json, "individual_digits", false, where));
    return RegexSplit(R"(\p{N})", individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false);
  }
  if (type == "Whitespace") {
    return RegexSplit(R"(\w+|[^\w\s]+)", SplitBehavior::kRemoved, /*invert=*/true);
  }
  if (type == "WhitespaceSplit") {
    return RegexSplit(R"(\s+)", SplitBehavior::kRemoved, /*invert=*/false);
  }
  return TokenizerJsonError(JsonPath(where, "type"),
                            StrCatStd("pre-tokenizer type '", type,
                                      "' is not supported (supported: ByteLevel, Split, Metaspace, Digits, "
                                      "Whitespace, WhitespaceSplit, Sequence)"));
}

}  // namespace adak::tokenizer
