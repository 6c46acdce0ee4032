#include "tokenizer/decoder.h"

#include <utility>

#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pattern.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace adak::tokenizer {
namespace {

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& step : steps_) {
      step->DecodeChain(tokens);
    }
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& token : *tokens) {
      if (!ByteLevelDecodeToken(token, &bytes)) {
        bytes.append(token);
      }
    }
    tokens->assign(1, Utf8Lossy(bytes));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, PrependScheme scheme) : scheme_(scheme) {
    Utf8Append(replacement, &replacement_);
  }
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      const std::string& token = (*tokens)[i];
      const std::string_view space = (i == 0 && scheme_ != PrependScheme::kNever) ? "" : " ";
      std::string out;
      out.reserve(token.size());
      size_t pos = 0;
      for (size_t found = token.find(replacement_); found != std::string::npos; found = token.find(replacement_, pos)) {
        out.append(token, pos, found - pos);
        out.append(space);
        pos = found + replacement_.size();
      }
      out.append(token, pos);
      (*tokens)[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(TokenizerPattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      // A regex that fails to run leaves the token as it is (decoding has no error channel).
      auto replaced = pattern_.ReplaceAll(token, content_);
      if (replaced.ok()) {
        token = std::move(replaced).value();
      }
    }
  }

 private:
  TokenizerPattern pattern_;
  std::string content_;
};

// The byte of a "<0xNN>" token, or -1.
int FallbackByte(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') {
    return -1;
  }
  int value = 0;
  for (const char c : token.substr(3, 2)) {
    int digit = -1;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    }
    if (digit < 0) {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string pending;
    auto flush = [&out, &pending] {
      if (pending.empty()) {
        return;
      }
      if (Utf8IsValid(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) {
          out.emplace_back(kUtf8ReplacementString);
        }
      }
      pending.clear();
    };
    for (std::string& token : *tokens) {
      const int byte = FallbackByte(token);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    *tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override { tokens->assign(1, absl::StrJoin(*tokens, "")); }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      // Character boundaries of the token.
      std::vector<size_t> starts;
      std::vector<char32_t> chars;
      for (size_t pos = 0; pos < token.size();) {
        size_t length = 0;
        chars.push_back(Utf8DecodeAt(token, pos, &length));
        starts.push_back(pos);
        pos += length;
      }
      starts.push_back(token.size());
      size_t start_cut = 0;
      for (size_t i = 0; i < start_ && i < chars.size() && chars[i] == content_; ++i) {
        start_cut = i + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        const size_t index = chars.size() - i - 1;
        if (chars[index] != content_) {
          break;
        }
        stop_cut = index;
      }
      if (stop_cut < start_cut) {
        stop_cut = start_cut;
      }
      token = token.substr(starts[start_cut], starts[stop_cut] - starts[start_cut]);
    }
  }

 private:
  char32_t content_;
  size_t start_;
  size_t stop_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const Json& json, std::string_view where) {
  if (!json.is_object()) {
    return TokenizerJsonError(where, "expected an object");
  }
  ASSIGN_OR_RETURN(const std::string type, JsonString(json, "type", where));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(auto steps,
                     ParseJsonSequence<Decoder>(json, "decoders", where, [](const Json& step, std::string_view at) {
                       return DecoderFromJson(step, at);
                     }));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelDecoder>();
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(const char32_t replacement, JsonChar(json, "replacement", where));
    ASSIGN_OR_RETURN(const PrependScheme scheme, ParsePrependScheme(json, where));
    return std::make_unique<MetaspaceDecoder>(replacement, scheme);
  }
  if (type == "Replace") {
    const Json* pattern_json = JsonMember(json, "pattern");
    if (pattern_json == nullptr) {
      return TokenizerJsonError(JsonPath(where, "pattern"), "missing");
    }
    ASSIGN_OR_RETURN(TokenizerPattern pattern, TokenizerPattern::FromJson(*pattern_json, JsonPath(where, "pattern")));
    ASSIGN_OR_RETURN(std::string content, JsonString(json, "content", where));
    return std::make_unique<ReplaceDecoder>(std::move(pattern), std::move(content));
  }
  if (type == "ByteFallback") {
    return std::make_unique<ByteFallbackDecoder>();
  }
  if (type == "Fuse") {
    return std::make_unique<FuseDecoder>();
  }
  if (type == "Strip") {
    ASSIGN_OR_RETURN(const char32_t content, JsonChar(json, "content", where));
    ASSIGN_OR_RETURN(const int64_t start, JsonCount(json, "start", 0, where));
    ASSIGN_OR_RETURN(const int64_t stop, JsonCount(json, "stop", 0, where));
    return std::make_unique<StripDecoder>(content, static_cast<size_t>(start), static_cast<size_t>(stop));
  }
  return TokenizerJsonError(JsonPath(where, "type"),
                            StrCatStd("decoder type '", type,
                                      "' is not supported (supported: ByteLevel, Metaspace, Replace, "
                                      "ByteFallback, Fuse, Strip, Sequence)"));
}

}  // namespace adak::tokenizer
