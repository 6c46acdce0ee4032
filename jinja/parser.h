// Tokens -> syntax tree, for the Jinja subset real chat templates use:
//   statements  if/elif/else, for (with `if` filters, `else`, tuple targets, loop.*), set (names, tuples,
//               `ns.attr`, block set), macro, break/continue (loopcontrols), and Hugging Face's
//               `generation` block (rendered as its body);
//   expressions literals (strings, ints, floats, lists, tuples, dicts, true/false/none in both cases),
//               names, `.attr`, `[index]`, slices `[a:b:c]`, calls with keyword arguments, filters
//               `|f(args)`, tests `is [not] t(args)`, `not`, `and`, `or`, comparisons, `in`/`not in`,
//               + - * / // % ** ~, unary -, and `a if c else b`; precedence as Jinja2's parser has it.
// Anything else (extends, include, call blocks, filter blocks, raw) is refused with the line naming it.
//
// Stateless; safe from any thread.
#ifndef ADAK_JINJA_PARSER_H_
#define ADAK_JINJA_PARSER_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "jinja/ast.h"
#include "jinja/lexer.h"

namespace adak::jinja {

// The deepest nesting of expressions and blocks a template may have (real templates nest < 20).
inline constexpr int kMaxNesting = 128;

// Parses the tokens of `source` (jinja/lexer.h). Errors: InvalidArgument "line L: ..." naming what was
// expected or which tag is unsupported, or that nesting exceeds kMaxNesting.
[[nodiscard]] absl::StatusOr<Body> Parse(std::string_view source, const std::vector<Token>& tokens);

}  // namespace adak::jinja

#endif  // ADAK_JINJA_PARSER_H_
