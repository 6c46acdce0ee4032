// The syntax tree of a parsed template: expressions and statements, with the source offset of each for
// error messages. Built by jinja/parser.h, walked by jinja/renderer.h; immutable once built.
#ifndef ADAK_JINJA_AST_H_
#define ADAK_JINJA_AST_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace adak::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// One argument of a call, filter or test: positional when `name` is empty.
struct Arg {
  std::string name;
  ExprPtr value;
};

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kList,     // items
    kTuple,    // items
    kDict,     // items: key, value, key, value, ...
    kAttr,     // items[0].name
    kIndex,    // items[0][items[1]]
    kSlice,    // items[0][items[1]:items[2]:items[3]] (absent parts are null)
    kCall,     // items[0](args)
    kFilter,   // items[0] | name(args)
    kTest,     // items[0] is [not] name(args)
    kUnary,    // name ("not", "-", "+") items[0]
    kBinary,   // items[0] name items[1]; name is the operator ("and", "or", "in", "not in", "==", "~", ...)
    kTernary,  // items[0] if items[1] else items[2] (items[2] null: undefined)
  };
  Kind kind = Kind::kLiteral;
  size_t offset = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> items;
  std::vector<Arg> args;
  bool negated = false;  // kTest: `is not`
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (condition, body)...; a final else has a null condition
    kFor,       // for targets in expr [if filter]: body [else: else_body]
    kSet,       // set targets = expr, or set object.attribute = expr (object non-null)
    kSetBlock,  // set targets[0] %} body {% endset
    kMacro,     // macro name(targets with defaults) body
    kBreak,
    kContinue,
  };
  Kind kind = Kind::kText;
  size_t offset = 0;
  std::string text;
  ExprPtr expr;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::string> targets;
  ExprPtr object;
  std::string attribute;
  ExprPtr filter;
  Body body;
  Body else_body;
  std::string name;
  std::vector<ExprPtr> defaults;  // kMacro: one per target (null: no default)
};

}  // namespace adak::jinja

#endif  // ADAK_JINJA_AST_H_
