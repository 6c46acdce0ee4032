#include "jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace adak::jinja {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

class Lexer {
 public:
  explicit Lexer(std::string_view source) : source_(source) {}

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    bool strip_leading = false;  // the previous tag ended with '-'
    bool trim_newline = false;   // the previous tag was a block or comment (trim_blocks)
    while (pos <= source_.size()) {
      const size_t open = FindOpen(pos);
      size_t text_begin = pos;
      size_t text_end = open == std::string_view::npos ? source_.size() : open;
      if (strip_leading) {
        while (text_begin < text_end && IsSpace(source_[text_begin])) ++text_begin;
      } else if (trim_newline && text_begin < text_end) {
        if (source_[text_begin] == '\n') {
          ++text_begin;
        } else if (source_[text_begin] == '\r' && text_begin + 1 < text_end && source_[text_begin + 1] == '\n') {
          text_begin += 2;
        }
      }
      if (open != std::string_view::npos) {
        const char kind = source_[open + 1];
        const char marker = open + 2 < source_.size() ? source_[open + 2] : '\0';
        if (marker == '-') {
          while (text_end > text_begin && IsSpace(source_[text_end - 1])) --text_end;
        } else if ((kind == '%' || kind == '#') && marker != '+') {
          // lstrip_blocks: only when the tag starts its line (in the source).
          size_t line_start = open;
          while (line_start > 0 && (source_[line_start - 1] == ' ' || source_[line_start - 1] == '\t')) --line_start;
          if ((line_start == 0 || source_[line_start - 1] == '\n') && line_start >= text_begin) {
            text_end = std::min(text_end, line_start);
          }
        }
      }
      if (text_end > text_begin) {
        tokens_.push_back(
            {Token::Kind::kText, std::string(source_.substr(text_begin, text_end - text_begin)), text_begin});
      }
      if (open == std::string_view::npos) break;
      const char kind = source_[open + 1];
      size_t inner = open + 2;
      if (inner < source_.size() && (source_[inner] == '-' || source_[inner] == '+')) ++inner;
      if (kind == '#') {
        const size_t close = source_.find("#}", inner);
        if (close == std::string_view::npos) return Error(open, "unclosed comment ({# without #})");
        strip_leading = close > inner && source_[close - 1] == '-';
        trim_newline = true;
        pos = close + 2;
        continue;
      }
      const bool block = kind == '%';
      tokens_.push_back({block ? Token::Kind::kBlockOpen : Token::Kind::kOutputOpen, "", open});
      absl::StatusOr<size_t> end = LexTag(inner, block);
      if (!end.ok()) return end.status();
      pos = *end;
      strip_leading = close_strips_;
      trim_newline = block;
    }
    tokens_.push_back({Token::Kind::kEnd, "", source_.size()});
    return std::move(tokens_);
  }

 private:
  absl::Status Error(size_t offset, std::string_view what) const {
    return absl::InvalidArgumentError(StrCatStd(LineOf(source_, offset), ": ", what));
  }

  size_t FindOpen(size_t from) const {
    for (size_t i = from; i + 1 < source_.size(); ++i) {
      if (source_[i] == '{' && (source_[i + 1] == '{' || source_[i + 1] == '%' || source_[i + 1] == '#')) return i;
    }
    return std::string_view::npos;
  }

  // Lexes the inside of a tag from `pos`; returns the offset just past its closing delimiter.
  absl::StatusOr<size_t> LexTag(size_t pos, bool block) {
    const size_t tag_start = pos;
    int depth = 0;  // open brackets and braces inside the tag
    while (true) {
      while (pos < source_.size() && IsSpace(source_[pos])) ++pos;
      if (pos >= source_.size()) return Error(tag_start, block ? "unclosed tag ({% without %})" : "unclosed {{");
      const char c = source_[pos];
      const std::string_view rest = source_.substr(pos);
      // The closing delimiter, with an optional '-' before it.
      const std::string_view close = block ? "%}" : "}}";
      if (depth == 0 && (rest.starts_with(close) || (c == '-' && rest.substr(1).starts_with(close)))) {
        const size_t end = pos + (c == '-' ? 3 : 2);
        tokens_.push_back({block ? Token::Kind::kBlockClose : Token::Kind::kOutputClose, "", pos});
        close_strips_ = c == '-';
        return end;
      }
      if (c == '\'' || c == '"') {
        absl::StatusOr<size_t> end = LexString(pos);
        if (!end.ok()) return end.status();
        pos = *end;
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
        size_t end = pos;
        while (end < source_.size() &&
               (std::isdigit(static_cast<unsigned char>(source_[end])) != 0 || source_[end] == '_')) {
          ++end;
        }
        bool is_float = false;
        if (end + 1 < source_.size() && source_[end] == '.' &&
            std::isdigit(static_cast<unsigned char>(source_[end + 1])) != 0) {
          is_float = true;
          ++end;
          while (end < source_.size() && std::isdigit(static_cast<unsigned char>(source_[end])) != 0) ++end;
        }
        std::string digits;
        for (size_t i = pos; i < end; ++i) {
          if (source_[i] != '_') digits.push_back(source_[i]);
        }
        tokens_.push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, digits, pos});
        pos = end;
        continue;
      }
      if (IsNameStart(c)) {
        size_t end = pos;
        while (end < source_.size() && IsNameChar(source_[end])) ++end;
        tokens_.push_back({Token::Kind::kName, std::string(source_.substr(pos, end - pos)), pos});
        pos = end;
        continue;
      }
      static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=", "//", "**"};
      bool matched = false;
      for (std::string_view op : kTwo) {
        if (rest.starts_with(op)) {
          tokens_.push_back({Token::Kind::kOperator, std::string(op), pos});
          pos += 2;
          matched = true;
          break;
        }
      }
      if (matched) continue;
      static constexpr std::string_view kOne = "+-*/%<>=.,:|()[]{}~";
      if (kOne.find(c) == std::string_view::npos) {
        return Error(pos, StrCatStd("unexpected character '", std::string(1, c), "' in a tag"));
      }
      if (c == '(' || c == '[' || c == '{') ++depth;
      if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
      tokens_.push_back({Token::Kind::kOperator, std::string(1, c), pos});
      ++pos;
    }
  }

  absl::StatusOr<size_t> LexString(size_t pos) {
    const char quote = source_[pos];
    std::string value;
    size_t i = pos + 1;
    while (i < source_.size() && source_[i] != quote) {
      char c = source_[i];
      if (c == '\\' && i + 1 < source_.size()) {
        const char next = source_[i + 1];
        i += 2;
        switch (next) {
          case 'n': value.push_back('\n'); break;
          case 't': value.push_back('\t'); break;
          case 'r': value.push_back('\r'); break;
          case 'b': value.push_back('\b'); break;
          case 'f': value.push_back('\f'); break;
          case 'v': value.push_back('\v'); break;
          case '0': value.push_back('\0'); break;
          case '\\':
          case '\'':
          case '"': value.push_back(next); break;
          case '\n': break;  // a backslash-newline continues the string
          default: value.push_back('\\'); value.push_back(next);
        }
        continue;
      }
      value.push_back(c);
      ++i;
    }
    if (i >= source_.size()) return Error(pos, "unclosed string literal");
    tokens_.push_back({Token::Kind::kString, std::move(value), pos});
    return i + 1;
  }

  std::string_view source_;
  std::vector<Token> tokens_;
  bool close_strips_ = false;  // the last tag closed with '-%}' or '-}}'
};

}  // namespace

std::string LineOf(std::string_view source, size_t offset) {
  offset = std::min(offset, source.size());
  return absl::StrCat("line ", std::count(source.begin(), source.begin() + static_cast<ptrdiff_t>(offset), '\n') + 1);
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source) {
  if (source.size() > kMaxTemplateBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("template of ", source.size(), " bytes is over the limit of ", kMaxTemplateBytes, " bytes"));
  }
  if (source.ends_with('\n')) source.remove_suffix(1);  // keep_trailing_newline=False
  return Lexer(source).Run();
}

}  // namespace adak::jinja
