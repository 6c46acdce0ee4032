// Template source -> tokens, with Jinja2's whitespace rules as Hugging Face configures them: one trailing
// newline of the source is dropped, `trim_blocks` (the newline right after a `%}` or `#}` goes) and
// `lstrip_blocks` (spaces and tabs before a `{%` or `{#` that starts its line go), and the `-` markers
// (`{%-`, `-}}`, ...) strip all whitespace on their side. Comments are dropped here.
//
// Stateless; safe from any thread.
#ifndef ADAK_JINJA_LEXER_H_
#define ADAK_JINJA_LEXER_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace adak::jinja {

struct Token {
  enum class Kind {
    kText,         // literal template text
    kOutputOpen,   // {{
    kOutputClose,  // }}
    kBlockOpen,    // {%
    kBlockClose,   // %}
    kName,         // identifier or keyword
    kString,       // text holds the unescaped value
    kInt,
    kFloat,
    kOperator,  // text holds it: == != <= >= // ** + - * / % < > = . , : | ( ) [ ] { } ~
    kEnd,
  };
  Kind kind = Kind::kEnd;
  std::string text;
  size_t offset = 0;  // in the source, for error positions
};

// The longest template source accepted (a chat template is a few KiB; the largest real ones ~90 KiB).
inline constexpr size_t kMaxTemplateBytes = size_t{1} << 20;

// Tokenizes `source`. Errors: InvalidArgument "line L: ..." for an unclosed tag, comment or string, a
// character that starts no token, or a source over kMaxTemplateBytes.
[[nodiscard]] absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source);

// "line L" for a byte offset of `source` (1-based).
[[nodiscard]] std::string LineOf(std::string_view source, size_t offset);

}  // namespace adak::jinja

#endif  // ADAK_JINJA_LEXER_H_
