#include "jinja/parser.h"

#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::jinja {
namespace {

using TK = Token::Kind;

class Parser {
 public:
  Parser(std::string_view source, const std::vector<Token>& tokens) : source_(source), tokens_(tokens) {}

  absl::StatusOr<Body> Run() {
    Body body;
    std::string stop;
    RETURN_IF_ERROR(ParseBody({}, body, stop));
    return body;
  }

 private:
  // --- helpers
  const Token& Peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& token = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return token;
  }
  bool IsOp(std::string_view op, size_t ahead = 0) const {
    return Peek(ahead).kind == TK::kOperator && Peek(ahead).text == op;
  }
  bool IsName(std::string_view name, size_t ahead = 0) const {
    return Peek(ahead).kind == TK::kName && Peek(ahead).text == name;
  }
  absl::Status Error(size_t offset, std::string_view what) const {
    return absl::InvalidArgumentError(StrCatStd(LineOf(source_, offset), ": ", what));
  }
  std::string Describe(const Token& token) const {
    switch (token.kind) {
      case TK::kEnd: return "the end of the template";
      case TK::kBlockClose: return "'%}'";
      case TK::kOutputClose: return "'}}'";
      case TK::kString: return "a string";
      case TK::kText: return "template text";
      default: return StrCatStd("'", token.text, "'");
    }
  }
  absl::Status Expect(std::string_view op) {
    if (!IsOp(op)) return Error(Peek().offset, StrCatStd("expected '", op, "', got ", Describe(Peek())));
    Next();
    return absl::OkStatus();
  }
  absl::Status ExpectBlockClose() {
    if (Peek().kind != TK::kBlockClose) {
      return Error(Peek().offset, StrCatStd("expected '%}', got ", Describe(Peek())));
    }
    Next();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName(std::string_view what) {
    if (Peek().kind != TK::kName) return Error(Peek().offset, StrCatStd("expected ", what, ", got ", Describe(Peek())));
    return Next().text;
  }
  absl::Status Enter(size_t offset) {
    if (++depth_ > kMaxNesting) {
      return Error(offset, StrCatStd("the template nests deeper than the limit of ", kMaxNesting, " levels"));
    }
    return absl::OkStatus();
  }
  struct DepthGuard {
    explicit DepthGuard(int& depth) : depth(depth) {}
    ~DepthGuard() { --depth; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    int& depth;
  };
  // A loop that nests each new node over the previous ones (a + b + c, a.b.c, a|f|g) deepens the tree by
  // one per round: each round counts against kMaxNesting until the loop's function returns.
  class ChainGuard {
   public:
    explicit ChainGuard(Parser& parser) : parser_(parser) {}
    ~ChainGuard() { parser_.depth_ -= rounds_; }
    ChainGuard(const ChainGuard&) = delete;
    ChainGuard& operator=(const ChainGuard&) = delete;
    absl::Status Next(size_t offset) {
      ++rounds_;
      return parser_.Enter(offset);
    }

   private:
    Parser& parser_;
    int rounds_ = 0;
  };

  static ExprPtr Make(Expr::Kind kind, size_t offset) {
    auto expr = std::make_unique<Expr>();
    expr->kind = kind;
    expr->offset = offset;
    return expr;
  }
  static ExprPtr Binary(std::string op, ExprPtr left, ExprPtr right, size_t offset) {
    ExprPtr expr = Make(Expr::Kind::kBinary, offset);
    expr->name = std::move(op);
    expr->items.push_back(std::move(left));
    expr->items.push_back(std::move(right));
    return expr;
  }

  // --- statements

  // Parses statements until `{% name` for a name in `stops` (consumed up to the name; `stop` says which)
  // or the end (only when `stops` is empty).
  absl::Status ParseBody(std::initializer_list<std::string_view> stops, Body& body, std::string& stop) {
    while (true) {
      const Token& token = Peek();
      if (token.kind == TK::kEnd) {
        if (stops.size() == 0) return absl::OkStatus();
        std::string names;
        for (std::string_view name : stops) names += StrCatStd(names.empty() ? "" : " or ", "'", name, "'");
        return Error(token.offset, StrCatStd("unexpected end of template: expected ", names));
      }
      if (token.kind == TK::kText) {
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = Stmt::Kind::kText;
        stmt->offset = token.offset;
        stmt->text = Next().text;
        body.push_back(std::move(stmt));
        continue;
      }
      if (token.kind == TK::kOutputOpen) {
        Next();
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = Stmt::Kind::kOutput;
        stmt->offset = token.offset;
        ASSIGN_OR_RETURN(stmt->expr, ParseExpression());
        if (Peek().kind != TK::kOutputClose) {
          return Error(Peek().offset, StrCatStd("expected '}}', got ", Describe(Peek())));
        }
        Next();
        body.push_back(std::move(stmt));
        continue;
      }
      if (token.kind != TK::kBlockOpen) return Error(token.offset, StrCatStd("unexpected ", Describe(token)));
      const Token& keyword = Peek(1);
      if (keyword.kind != TK::kName) return Error(keyword.offset, "expected a tag name after '{%'");
      for (std::string_view name : stops) {
        if (keyword.text == name) {
          Next();
          Next();
          stop = keyword.text;
          return absl::OkStatus();
        }
      }
      Next();
      Next();
      RETURN_IF_ERROR(Enter(keyword.offset));
      DepthGuard guard(depth_);
      RETURN_IF_ERROR(ParseStatement(keyword, body));
    }
  }

  absl::Status ParseStatement(const Token& keyword, Body& body) {
    auto stmt = std::make_unique<Stmt>();
    stmt->offset = keyword.offset;
    const std::string& name = keyword.text;
    std::string stop;
    if (name == "if") {
      stmt->kind = Stmt::Kind::kIf;
      ExprPtr condition;
      ASSIGN_OR_RETURN(condition, ParseExpression());
      RETURN_IF_ERROR(ExpectBlockClose());
      while (true) {
        Body branch;
        RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, branch, stop));
        stmt->branches.emplace_back(std::move(condition), std::move(branch));
        if (stop == "endif") break;
        if (stop == "else") {
          RETURN_IF_ERROR(ExpectBlockClose());
          Body last;
          RETURN_IF_ERROR(ParseBody({"endif"}, last, stop));
          stmt->branches.emplace_back(nullptr, std::move(last));
          break;
        }
        ASSIGN_OR_RETURN(condition, ParseExpression());
        RETURN_IF_ERROR(ExpectBlockClose());
      }
      RETURN_IF_ERROR(ExpectBlockClose());
    } else if (name == "for") {
      stmt->kind = Stmt::Kind::kFor;
      do {
        std::string target;
        ASSIGN_OR_RETURN(target, ExpectName("a loop variable"));
        stmt->targets.push_back(std::move(target));
      } while (IsOp(",") && (Next(), true));
      if (!IsName("in")) return Error(Peek().offset, StrCatStd("expected 'in', got ", Describe(Peek())));
      Next();
      // The iterable stops before an `if` filter (no ternary here, as in Jinja2).
      ASSIGN_OR_RETURN(stmt->expr, ParseOr());
      if (IsName("if")) {
        Next();
        ASSIGN_OR_RETURN(stmt->filter, ParseExpression());
      }
      if (IsName("recursive")) return Error(Peek().offset, "recursive loops are not supported");
      RETURN_IF_ERROR(ExpectBlockClose());
      RETURN_IF_ERROR(ParseBody({"else", "endfor"}, stmt->body, stop));
      if (stop == "else") {
        RETURN_IF_ERROR(ExpectBlockClose());
        RETURN_IF_ERROR(ParseBody({"endfor"}, stmt->else_body, stop));
      }
      RETURN_IF_ERROR(ExpectBlockClose());
    } else if (name == "set") {
      std::string first;
      ASSIGN_OR_RETURN(first, ExpectName("a variable name"));
      if (IsOp(".")) {
        Next();
        stmt->kind = Stmt::Kind::kSet;
        stmt->object = Make(Expr::Kind::kName, keyword.offset);
        stmt->object->name = first;
        ASSIGN_OR_RETURN(stmt->attribute, ExpectName("an attribute name"));
      } else {
        stmt->targets.push_back(first);
        while (IsOp(",")) {
          Next();
          std::string target;
          ASSIGN_OR_RETURN(target, ExpectName("a variable name"));
          stmt->targets.push_back(std::move(target));
        }
      }
      if (Peek().kind == TK::kBlockClose && stmt->object == nullptr && stmt->targets.size() == 1) {
        Next();
        stmt->kind = Stmt::Kind::kSetBlock;
        RETURN_IF_ERROR(ParseBody({"endset"}, stmt->body, stop));
        RETURN_IF_ERROR(ExpectBlockClose());
      } else {
        stmt->kind = Stmt::Kind::kSet;
        RETURN_IF_ERROR(Expect("="));
        ASSIGN_OR_RETURN(stmt->expr, ParseTupleOrExpression());
        RETURN_IF_ERROR(ExpectBlockClose());
      }
    } else if (name == "macro") {
      stmt->kind = Stmt::Kind::kMacro;
      ASSIGN_OR_RETURN(stmt->name, ExpectName("a macro name"));
      RETURN_IF_ERROR(Expect("("));
      while (!IsOp(")")) {
        std::string param;
        ASSIGN_OR_RETURN(param, ExpectName("a parameter name"));
        ExprPtr default_value;
        if (IsOp("=")) {
          Next();
          ASSIGN_OR_RETURN(default_value, ParseExpression());
        }
        stmt->targets.push_back(std::move(param));
        stmt->defaults.push_back(std::move(default_value));
        if (!IsOp(",")) break;
        Next();
      }
      RETURN_IF_ERROR(Expect(")"));
      RETURN_IF_ERROR(ExpectBlockClose());
      RETURN_IF_ERROR(ParseBody({"endmacro"}, stmt->body, stop));
      RETURN_IF_ERROR(ExpectBlockClose());
    } else if (name == "break" || name == "continue") {
      stmt->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      RETURN_IF_ERROR(ExpectBlockClose());
    } else if (name == "generation") {
      // Hugging Face's AssistantTracker block: rendered as its body.
      RETURN_IF_ERROR(ExpectBlockClose());
      Body inner;
      RETURN_IF_ERROR(ParseBody({"endgeneration"}, inner, stop));
      RETURN_IF_ERROR(ExpectBlockClose());
      for (auto& child : inner) body.push_back(std::move(child));
      return absl::OkStatus();
    } else {
      return Error(keyword.offset, StrCatStd("unsupported tag '", name,
                                             "' (supported: if, for, set, macro, break, continue, generation)"));
    }
    body.push_back(std::move(stmt));
    return absl::OkStatus();
  }

  // --- expressions (Jinja2's precedence, loosest first)

  // `a, b` without brackets is a tuple (set statements).
  absl::StatusOr<ExprPtr> ParseTupleOrExpression() {
    const size_t offset = Peek().offset;
    ASSIGN_OR_RETURN(ExprPtr first, ParseExpression());
    if (!IsOp(",")) return first;
    ExprPtr tuple = Make(Expr::Kind::kTuple, offset);
    tuple->items.push_back(std::move(first));
    while (IsOp(",")) {
      Next();
      ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
      tuple->items.push_back(std::move(item));
    }
    return tuple;
  }

  absl::StatusOr<ExprPtr> ParseExpression() {
    RETURN_IF_ERROR(Enter(Peek().offset));
    DepthGuard guard(depth_);
    const size_t offset = Peek().offset;
    ASSIGN_OR_RETURN(ExprPtr value, ParseOr());
    ChainGuard chain(*this);
    while (IsName("if")) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      Next();
      ExprPtr ternary = Make(Expr::Kind::kTernary, offset);
      ASSIGN_OR_RETURN(ExprPtr condition, ParseOr());
      ExprPtr otherwise;
      if (IsName("else")) {
        Next();
        ASSIGN_OR_RETURN(otherwise, ParseExpression());
      }
      ternary->items.push_back(std::move(value));
      ternary->items.push_back(std::move(condition));
      ternary->items.push_back(std::move(otherwise));
      value = std::move(ternary);
    }
    return value;
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    ChainGuard chain(*this);
    while (IsName("or")) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      const size_t offset = Next().offset;
      ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      left = Binary("or", std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    ChainGuard chain(*this);
    while (IsName("and")) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      const size_t offset = Next().offset;
      ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      left = Binary("and", std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      RETURN_IF_ERROR(Enter(Peek().offset));
      DepthGuard guard(depth_);
      ExprPtr expr = Make(Expr::Kind::kUnary, Next().offset);
      expr->name = "not";
      ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      expr->items.push_back(std::move(operand));
      return expr;
    }
    return ParseCompare();
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseMath1());
    ChainGuard chain(*this);
    while (true) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      std::string op;
      if (Peek().kind == TK::kOperator && (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" ||
                                           Peek().text == ">" || Peek().text == "<=" || Peek().text == ">=")) {
        op = Peek().text;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && IsName("in", 1)) {
        op = "not in";
        Next();
        Next();
      } else {
        return left;
      }
      const size_t offset = Peek().offset;
      ASSIGN_OR_RETURN(ExprPtr right, ParseMath1());
      left = Binary(std::move(op), std::move(left), std::move(right), offset);
    }
  }

  absl::StatusOr<ExprPtr> ParseMath1() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    ChainGuard chain(*this);
    while (IsOp("+") || IsOp("-")) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      const Token& op = Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      left = Binary(op.text, std::move(left), std::move(right), op.offset);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseConcat() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseMath2());
    ChainGuard chain(*this);
    while (IsOp("~")) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      const size_t offset = Next().offset;
      ASSIGN_OR_RETURN(ExprPtr right, ParseMath2());
      left = Binary("~", std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseMath2() {
    ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    ChainGuard chain(*this);
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      const Token& op = Next();
      ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      left = Binary(op.text, std::move(left), std::move(right), op.offset);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParsePow() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseUnary());
    ChainGuard chain(*this);
    while (IsOp("**")) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      const size_t offset = Next().offset;
      ASSIGN_OR_RETURN(ExprPtr right, ParseUnary());
      left = Binary("**", std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseUnary() {
    RETURN_IF_ERROR(Enter(Peek().offset));
    DepthGuard guard(depth_);
    ExprPtr expr;
    if (IsOp("-") || IsOp("+")) {
      expr = Make(Expr::Kind::kUnary, Peek().offset);
      expr->name = Next().text;
      ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary());
      expr->items.push_back(std::move(operand));
    } else {
      ASSIGN_OR_RETURN(expr, ParsePrimary());
      ASSIGN_OR_RETURN(expr, ParsePostfix(std::move(expr)));
    }
    return ParseFilters(std::move(expr));
  }

  absl::StatusOr<std::vector<Arg>> ParseArgs() {
    std::vector<Arg> args;
    RETURN_IF_ERROR(Expect("("));
    while (!IsOp(")")) {
      Arg arg;
      if (Peek().kind == TK::kName && IsOp("=", 1)) {
        arg.name = Next().text;
        Next();
      }
      ASSIGN_OR_RETURN(arg.value, ParseExpression());
      args.push_back(std::move(arg));
      if (!IsOp(",")) break;
      Next();
    }
    RETURN_IF_ERROR(Expect(")"));
    return args;
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr expr) {
    ChainGuard chain(*this);
    while (true) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      if (IsOp(".")) {
        const size_t offset = Next().offset;
        ExprPtr attr = Make(Expr::Kind::kAttr, offset);
        if (Peek().kind == TK::kInt) {  // foo.0 is foo[0]
          attr->kind = Expr::Kind::kIndex;
          ExprPtr index = Make(Expr::Kind::kLiteral, Peek().offset);
          int64_t value = 0;
          (void)absl::SimpleAtoi(Next().text, &value);
          index->literal = Value::Int(value);
          attr->items.push_back(std::move(expr));
          attr->items.push_back(std::move(index));
        } else {
          ASSIGN_OR_RETURN(attr->name, ExpectName("an attribute name"));
          attr->items.push_back(std::move(expr));
        }
        expr = std::move(attr);
      } else if (IsOp("[")) {
        const size_t offset = Next().offset;
        ExprPtr parts[3];
        int part = 0;
        bool slice = false;
        while (!IsOp("]")) {
          if (IsOp(":")) {
            Next();
            slice = true;
            if (++part > 2) return Error(Peek().offset, "a slice has at most three parts");
            continue;
          }
          ASSIGN_OR_RETURN(parts[part], ParseExpression());
          if (!IsOp(":") && !IsOp("]")) {
            return Error(Peek().offset, StrCatStd("expected ']' or ':', got ", Describe(Peek())));
          }
        }
        Next();
        ExprPtr index = Make(slice ? Expr::Kind::kSlice : Expr::Kind::kIndex, offset);
        index->items.push_back(std::move(expr));
        if (slice) {
          for (auto& p : parts) index->items.push_back(std::move(p));
        } else {
          if (parts[0] == nullptr) return Error(offset, "empty subscript []");
          index->items.push_back(std::move(parts[0]));
        }
        expr = std::move(index);
      } else if (IsOp("(")) {
        ExprPtr call = Make(Expr::Kind::kCall, Peek().offset);
        ASSIGN_OR_RETURN(call->args, ParseArgs());
        call->items.push_back(std::move(expr));
        expr = std::move(call);
      } else {
        return expr;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseFilters(ExprPtr expr) {
    ChainGuard chain(*this);
    while (true) {
      RETURN_IF_ERROR(chain.Next(Peek().offset));
      if (IsOp("|")) {
        const size_t offset = Next().offset;
        ExprPtr filter = Make(Expr::Kind::kFilter, offset);
        ASSIGN_OR_RETURN(filter->name, ExpectName("a filter name"));
        if (IsOp("(")) {
          ASSIGN_OR_RETURN(filter->args, ParseArgs());
        }
        filter->items.push_back(std::move(expr));
        expr = std::move(filter);
      } else if (IsName("is")) {
        const size_t offset = Next().offset;
        ExprPtr test = Make(Expr::Kind::kTest, offset);
        if (IsName("not")) {
          Next();
          test->negated = true;
        }
        // `none`, `true`, `false` are test names here even though they are literals elsewhere.
        ASSIGN_OR_RETURN(test->name, ExpectName("a test name"));
        if (IsOp("(")) {
          ASSIGN_OR_RETURN(test->args, ParseArgs());
        } else if (Peek().kind == TK::kString || Peek().kind == TK::kInt || Peek().kind == TK::kFloat) {
          // `is divisibleby 3`, `is equalto 'x'`: one argument without parentheses.
          Arg arg;
          ASSIGN_OR_RETURN(arg.value, ParsePrimary());
          test->args.push_back(std::move(arg));
        }
        test->items.push_back(std::move(expr));
        expr = std::move(test);
      } else {
        return expr;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token& token = Peek();
    switch (token.kind) {
      case TK::kString: {
        ExprPtr expr = Make(Expr::Kind::kLiteral, token.offset);
        std::string text = Next().text;
        while (Peek().kind == TK::kString) text += Next().text;  // adjacent literals concatenate
        expr->literal = Value::String(std::move(text));
        return expr;
      }
      case TK::kInt: {
        ExprPtr expr = Make(Expr::Kind::kLiteral, token.offset);
        int64_t value = 0;
        if (!absl::SimpleAtoi(token.text, &value)) return Error(token.offset, "integer literal out of range");
        Next();
        expr->literal = Value::Int(value);
        return expr;
      }
      case TK::kFloat: {
        ExprPtr expr = Make(Expr::Kind::kLiteral, token.offset);
        expr->literal = Value::Float(std::strtod(Next().text.c_str(), nullptr));
        return expr;
      }
      case TK::kName: {
        ExprPtr expr = Make(Expr::Kind::kLiteral, token.offset);
        const std::string& name = token.text;
        if (name == "true" || name == "True") {
          expr->literal = Value::Bool(true);
        } else if (name == "false" || name == "False") {
          expr->literal = Value::Bool(false);
        } else if (name == "none" || name == "None") {
          expr->literal = Value::None();
        } else {
          expr->kind = Expr::Kind::kName;
          expr->name = name;
        }
        Next();
        return expr;
      }
      case TK::kOperator: {
        if (token.text == "(") {
          const size_t offset = Next().offset;
          if (IsOp(")")) {
            Next();
            return Make(Expr::Kind::kTuple, offset);
          }
          ASSIGN_OR_RETURN(ExprPtr first, ParseExpression());
          if (IsOp(")")) {
            Next();
            return first;
          }
          ExprPtr tuple = Make(Expr::Kind::kTuple, offset);
          tuple->items.push_back(std::move(first));
          while (IsOp(",")) {
            Next();
            if (IsOp(")")) break;
            ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
            tuple->items.push_back(std::move(item));
          }
          RETURN_IF_ERROR(Expect(")"));
          return tuple;
        }
        if (token.text == "[") {
          ExprPtr list = Make(Expr::Kind::kList, Next().offset);
          while (!IsOp("]")) {
            ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
            list->items.push_back(std::move(item));
            if (!IsOp(",")) break;
            Next();
          }
          RETURN_IF_ERROR(Expect("]"));
          return list;
        }
        if (token.text == "{") {
          ExprPtr dict = Make(Expr::Kind::kDict, Next().offset);
          while (!IsOp("}")) {
            ASSIGN_OR_RETURN(ExprPtr key, ParseExpression());
            RETURN_IF_ERROR(Expect(":"));
            ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
            dict->items.push_back(std::move(key));
            dict->items.push_back(std::move(value));
            if (!IsOp(",")) break;
            Next();
          }
          RETURN_IF_ERROR(Expect("}"));
          return dict;
        }
        break;
      }
      default: break;
    }
    return Error(token.offset, StrCatStd("expected an expression, got ", Describe(token)));
  }

  std::string_view source_;
  const std::vector<Token>& tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<Body> Parse(std::string_view source, const std::vector<Token>& tokens) {
  return Parser(source, tokens).Run();
}

}  // namespace adak::jinja
