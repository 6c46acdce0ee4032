#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include <utility>
#include <vector>

#include "base/status_macros.h"
#include "base/strings.h"
#include "tokenizer/pattern.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {
namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  absl::StatusOr<std::string> Normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) {
      ASSIGN_OR_RETURN(current, step->Normalize(current));
    }
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  absl::StatusOr<std::string> Normalize(std::string_view text) const override {
    if (text.empty()) {
      return std::string();
    }
    return StrCatStd(prefix_, text);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(TokenizerPattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  absl::StatusOr<std::string> Normalize(std::string_view text) const override {
    return pattern_.ReplaceAll(text, content_);
  }

 private:
  TokenizerPattern pattern_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  absl::StatusOr<std::string> Normalize(std::string_view text) const override {
    size_t begin = 0;
    size_t end = text.size();
    if (left_) {
      while (begin < end) {
        size_t length = 0;
        if (!IsUnicodeWhitespace(Utf8DecodeAt(text, begin, &length))) {
          break;
        }
        begin += length;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) {
          --start;
        }
        size_t length = 0;
        if (!IsUnicodeWhitespace(Utf8DecodeAt(text, start, &length))) {
          break;
        }
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_;
  bool right_;
};

// NFC, NFD, NFKC, NFKD through utf8proc (the Unicode tables of the Debian library).
class UnicodeNormalizer final : public Normalizer {
 public:
  UnicodeNormalizer(std::string name, utf8proc_option_t options) : name_(std::move(name)), options_(options) {}
  absl::StatusOr<std::string> Normalize(std::string_view text) const override {
    if (text.empty()) return std::string();
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t size =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                     &out, static_cast<utf8proc_option_t>(options_ | UTF8PROC_STABLE));
    if (size < 0) {
      return absl::InternalError(StrCatStd("normalizer ", name_, ": ", utf8proc_errmsg(size)));
    }
    std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(size));
    std::free(out);
    return result;
  }

 private:
  std::string name_;
  utf8proc_option_t options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const Json& json, std::string_view where) {
  if (!json.is_object()) {
    return TokenizerJsonError(where, "expected an object");
  }
  ASSIGN_OR_RETURN(const std::string type, JsonString(json, "type", where));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(auto steps, ParseJsonSequence<Normalizer>(json, "normalizers", where,
                                                               [](const Json& step, std::string_view at) {
                                                                 return NormalizerFromJson(step, at);
                                                               }));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Prepend") {
    ASSIGN_OR_RETURN(std::string prefix, JsonString(json, "prepend", where));
    return std::make_unique<PrependNormalizer>(std::move(prefix));
  }
  if (type == "Replace") {
    const Json* pattern_json = JsonMember(json, "pattern");
    if (pattern_json == nullptr) {
      return TokenizerJsonError(JsonPath(where, "pattern"), "missing");
    }
    ASSIGN_OR_RETURN(TokenizerPattern pattern, TokenizerPattern::FromJson(*pattern_json, JsonPath(where, "pattern")));
    ASSIGN_OR_RETURN(std::string content, JsonString(json, "content", where));
    return std::make_unique<ReplaceNormalizer>(std::move(pattern), std::move(content));
  }
  if (type == "Strip") {
    ASSIGN_OR_RETURN(const bool left, JsonBool(json, "strip_left", true, where));
    ASSIGN_OR_RETURN(const bool right, JsonBool(json, "strip_right", true, where));
    return std::make_unique<StripNormalizer>(left, right);
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(type, UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(type, UTF8PROC_DECOMPOSE);
  if (type == "NFKC")
    return std::make_unique<UnicodeNormalizer>(type,
                                               static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD")
    return std::make_unique<UnicodeNormalizer>(type,
                                               static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  return TokenizerJsonError(JsonPath(where, "type"),
                            StrCatStd("normalizer type '", type,
                                      "' is not supported (supported: Sequence, Prepend, Replace, Strip, NFC, NFD, "
                                      "NFKC, NFKD)"));
}

}  // namespace adak::tokenizer
