#include "jinja/renderer.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "jinja/builtins.h"
#include "jinja/lexer.h"

namespace adak::jinja {
namespace {

absl::Status TypeError(std::string_view op, const Value& a, const Value& b) {
  return absl::InvalidArgumentError(
      StrCatStd("unsupported operand types for ", op, ": ", a.KindName(), " and ", b.KindName()));
}

bool IsInt(const Value& v) { return v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool; }
int64_t AsInt(const Value& v) { return v.kind() == Value::Kind::kBool ? (v.bool_value() ? 1 : 0) : v.int_value(); }
bool IsNumeric(const Value& v) { return v.is_number() || v.kind() == Value::Kind::kBool; }

// Python's slice of a sequence of `size` items: the indices it selects.
absl::StatusOr<std::vector<int64_t>> SliceIndices(int64_t size, const Value& start, const Value& stop,
                                                  const Value& step) {
  const auto get = [](const Value& v, int64_t* out) -> absl::Status {
    if (v.is_undefined() || v.is_none()) return absl::OkStatus();
    if (!IsInt(v)) return absl::InvalidArgumentError(StrCatStd("slice indices must be integers, got ", v.KindName()));
    *out = AsInt(v);
    return absl::OkStatus();
  };
  int64_t step_value = 1;
  RETURN_IF_ERROR(get(step, &step_value));
  if (step_value == 0) return absl::InvalidArgumentError("slice step cannot be zero");
  int64_t lo = step_value > 0 ? 0 : size - 1;
  int64_t hi = step_value > 0 ? size : -1;
  const auto clamp = [&](int64_t index) {
    if (index < 0) index += size;
    if (step_value > 0) return std::clamp<int64_t>(index, 0, size);
    return std::clamp<int64_t>(index, -1, size - 1);
  };
  if (!(start.is_undefined() || start.is_none())) {
    int64_t v = 0;
    RETURN_IF_ERROR(get(start, &v));
    lo = clamp(v);
  }
  if (!(stop.is_undefined() || stop.is_none())) {
    int64_t v = 0;
    RETURN_IF_ERROR(get(stop, &v));
    hi = clamp(v);
  }
  std::vector<int64_t> indices;
  if (step_value > 0) {
    for (int64_t i = lo; i < hi; i += step_value) indices.push_back(i);
  } else {
    for (int64_t i = lo; i > hi; i += step_value) indices.push_back(i);
  }
  return indices;
}

// The byte offsets of each code point of a UTF-8 string, plus its size.
std::vector<size_t> CharOffsets(std::string_view text) {
  std::vector<size_t> offsets;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) offsets.push_back(i);
  }
  offsets.push_back(text.size());
  return offsets;
}

}  // namespace

Renderer::Renderer(std::string_view source, const RenderLimits& limits) : source_(source), limits_(limits) {}

absl::Status Renderer::Step() {
  if (++steps_ > limits_.max_steps) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the template ran more than the limit of ", limits_.max_steps, " steps"));
  }
  return absl::OkStatus();
}

absl::Status Renderer::CheckSize(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the template built a string of ", bytes,
                                                     " bytes, over the limit of ", limits_.max_output_bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status Renderer::CheckDepth(const Value& value) const {
  if (value.depth() > limits_.max_value_depth) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the template built lists or dicts nested deeper than the limit of ", limits_.max_value_depth));
  }
  return absl::OkStatus();
}

absl::Status Renderer::Append(std::string& out, std::string_view text) const {
  RETURN_IF_ERROR(CheckSize(out.size() + text.size()));
  out.append(text);
  return absl::OkStatus();
}

absl::Status Renderer::At(size_t offset, const absl::Status& status) const {
  if (status.ok() || ToStd(status.message()).starts_with("line ")) return status;
  return absl::Status(status.code(), StrCatStd(LineOf(source_, offset), ": ", ToStd(status.message())));
}

absl::StatusOr<std::string> Renderer::Render(const Body& body, const Value& context) {
  Frame globals;
  for (auto& [name, value] : Globals()) globals.vars[name] = std::move(value);
  Frame root;
  root.parent = &globals;
  if (context.is_mapping()) {
    for (const auto& [name, value] : context.dict()) root.vars[name] = value;
  }
  root_ = &root;
  std::string out;
  absl::StatusOr<Flow> flow = Exec(body, root, out);
  root_ = nullptr;
  if (!flow.ok()) return flow.status();
  return out;
}

absl::StatusOr<Renderer::Flow> Renderer::Exec(const Body& body, Frame& frame, std::string& out) {
  for (const auto& stmt : body) {
    ASSIGN_OR_RETURN(Flow flow, ExecOne(*stmt, frame, out));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

absl::StatusOr<Renderer::Flow> Renderer::ExecOne(const Stmt& stmt, Frame& frame, std::string& out) {
  RETURN_IF_ERROR(At(stmt.offset, Step()));
  switch (stmt.kind) {
    case Stmt::Kind::kText: RETURN_IF_ERROR(Append(out, stmt.text)); return Flow::kNormal;
    case Stmt::Kind::kOutput: {
      ASSIGN_OR_RETURN(Value value, Eval(*stmt.expr, frame));
      RETURN_IF_ERROR(At(stmt.offset, Append(out, value.Str())));
      return Flow::kNormal;
    }
    case Stmt::Kind::kIf:
      for (const auto& [condition, body] : stmt.branches) {
        bool take = condition == nullptr;
        if (!take) {
          ASSIGN_OR_RETURN(Value value, Eval(*condition, frame));
          take = value.Truthy();
        }
        if (take) return Exec(body, frame, out);
      }
      return Flow::kNormal;
    case Stmt::Kind::kFor: return ExecFor(stmt, frame, out);
    case Stmt::Kind::kSet: {
      ASSIGN_OR_RETURN(Value value, Eval(*stmt.expr, frame));
      RETURN_IF_ERROR(At(stmt.offset, ExecSet(stmt, frame, std::move(value))));
      return Flow::kNormal;
    }
    case Stmt::Kind::kSetBlock: {
      std::string captured;
      Frame inner;
      inner.parent = &frame;
      ASSIGN_OR_RETURN(Flow flow, Exec(stmt.body, inner, captured));
      (void)flow;
      frame.vars[stmt.targets[0]] = Value::String(std::move(captured));
      return Flow::kNormal;
    }
    case Stmt::Kind::kMacro: frame.vars[stmt.name] = MakeMacro(stmt); return Flow::kNormal;
    case Stmt::Kind::kBreak: return Flow::kBreak;
    case Stmt::Kind::kContinue: return Flow::kContinue;
  }
  return Flow::kNormal;
}

absl::Status Renderer::ExecSet(const Stmt& stmt, Frame& frame, Value value) {
  if (stmt.object != nullptr) {
    const Value target = Lookup(frame, stmt.object->name);
    if (target.kind() != Value::Kind::kNamespace) {
      return absl::InvalidArgumentError(StrCatStd("cannot assign attribute '", stmt.attribute, "' of ",
                                                  stmt.object->name, " (a ", target.KindName(),
                                                  "): only a namespace() can be assigned to"));
    }
    // A namespace holding a namespace (itself, or one that may come to hold it) could form a cycle.
    if (value.HoldsNamespace()) {
      return absl::InvalidArgumentError(StrCatStd("cannot store a namespace in ", stmt.object->name, ".",
                                                  stmt.attribute, " (namespaces hold plain values)"));
    }
    target.SetMember(stmt.attribute, std::move(value));
    return absl::OkStatus();
  }
  if (stmt.targets.size() == 1) {
    frame.vars[stmt.targets[0]] = std::move(value);
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(Value::List items, Iterate(value));
  if (items.size() != stmt.targets.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot unpack ", items.size(), " values into ", stmt.targets.size(), " names"));
  }
  for (size_t i = 0; i < items.size(); ++i) frame.vars[stmt.targets[i]] = items[i];
  return absl::OkStatus();
}

absl::StatusOr<Renderer::Flow> Renderer::ExecFor(const Stmt& stmt, Frame& frame, std::string& out) {
  ASSIGN_OR_RETURN(Value iterable, Eval(*stmt.expr, frame));
  absl::StatusOr<Value::List> all = Iterate(iterable);
  if (!all.ok()) return At(stmt.offset, all.status());
  if (iterable.is_mapping() && stmt.targets.size() == 2) {
    return At(stmt.offset, absl::InvalidArgumentError(
                               "cannot unpack the keys of a dict into two names (iterate over dict.items())"));
  }
  // The `if` filter runs first: loop.* count the items that pass it.
  Value::List items;
  for (Value& item : *all) {
    if (stmt.filter != nullptr) {
      Frame probe;
      probe.parent = &frame;
      Stmt assign;
      assign.targets = stmt.targets;
      RETURN_IF_ERROR(At(stmt.offset, ExecSet(assign, probe, item)));
      ASSIGN_OR_RETURN(Value keep, Eval(*stmt.filter, probe));
      if (!keep.Truthy()) continue;
    }
    items.push_back(std::move(item));
  }
  if (items.empty()) {
    Frame inner;
    inner.parent = &frame;
    ASSIGN_OR_RETURN(Flow flow, Exec(stmt.else_body, inner, out));
    (void)flow;
    return Flow::kNormal;
  }
  const auto length = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < length; ++i) {
    Frame inner;
    inner.parent = &frame;
    Stmt assign;
    assign.targets = stmt.targets;
    RETURN_IF_ERROR(At(stmt.offset, ExecSet(assign, inner, items[static_cast<size_t>(i)])));
    inner.vars["loop"] = Value::MakeDict({
        {"index", Value::Int(i + 1)},
        {"index0", Value::Int(i)},
        {"revindex", Value::Int(length - i)},
        {"revindex0", Value::Int(length - i - 1)},
        {"first", Value::Bool(i == 0)},
        {"last", Value::Bool(i == length - 1)},
        {"length", Value::Int(length)},
        {"previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value()},
        {"nextitem", i + 1 < length ? items[static_cast<size_t>(i + 1)] : Value()},
    });
    ASSIGN_OR_RETURN(Flow flow, Exec(stmt.body, inner, out));
    if (flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Value Renderer::MakeMacro(const Stmt& stmt) {
  const Stmt* macro = &stmt;
  return Value::MakeFunction(stmt.name, [macro](Renderer& renderer, const CallArgs& args) -> absl::StatusOr<Value> {
    if (renderer.call_depth_ >= renderer.limits_.max_call_depth) {
      return absl::ResourceExhaustedError(
          absl::StrCat("macro calls nest deeper than the limit of ", renderer.limits_.max_call_depth));
    }
    if (args.positional.size() > macro->targets.size()) {
      return absl::InvalidArgumentError(absl::StrCat("macro ", macro->name, " takes ", macro->targets.size(),
                                                     " arguments, got ", args.positional.size()));
    }
    Frame frame;
    frame.parent = renderer.root_;
    for (size_t i = 0; i < macro->targets.size(); ++i) {
      const Value* given = args.Get(i, macro->targets[i]);
      if (given != nullptr) {
        frame.vars[macro->targets[i]] = *given;
      } else if (macro->defaults[i] != nullptr) {
        ASSIGN_OR_RETURN(frame.vars[macro->targets[i]], renderer.Eval(*macro->defaults[i], frame));
      } else {
        frame.vars[macro->targets[i]] = Value();
      }
    }
    ++renderer.call_depth_;
    std::string out;
    absl::StatusOr<Flow> flow = renderer.Exec(macro->body, frame, out);
    --renderer.call_depth_;
    if (!flow.ok()) return flow.status();
    return Value::String(std::move(out));
  });
}

Value Renderer::Lookup(const Frame& frame, std::string_view name) {
  for (const Frame* f = &frame; f != nullptr; f = f->parent) {
    if (auto it = f->vars.find(name); it != f->vars.end()) return it->second;
  }
  return Value();
}

absl::StatusOr<Value> Renderer::Call(const Value& callee, const CallArgs& args) {
  if (callee.kind() != Value::Kind::kFunction) {
    return absl::InvalidArgumentError(StrCatStd("a ", callee.KindName(), " is not callable"));
  }
  return callee.function()(*this, args);
}

absl::StatusOr<CallArgs> Renderer::EvalArgs(const std::vector<Arg>& args, Frame& frame) {
  CallArgs out;
  for (const Arg& arg : args) {
    ASSIGN_OR_RETURN(Value value, Eval(*arg.value, frame));
    if (arg.name.empty()) {
      out.positional.push_back(std::move(value));
    } else {
      out.keyword.emplace_back(arg.name, std::move(value));
    }
  }
  return out;
}

absl::StatusOr<Value> Renderer::Eval(const Expr& expr, Frame& frame) {
  RETURN_IF_ERROR(At(expr.offset, Step()));
  switch (expr.kind) {
    case Expr::Kind::kLiteral: return expr.literal;
    case Expr::Kind::kName: return Lookup(frame, expr.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      Value::List items;
      for (const auto& item : expr.items) {
        ASSIGN_OR_RETURN(Value value, Eval(*item, frame));
        items.push_back(std::move(value));
      }
      Value list = Value::MakeList(std::move(items));
      RETURN_IF_ERROR(At(expr.offset, CheckDepth(list)));
      return list;
    }
    case Expr::Kind::kDict: {
      Value::Dict items;
      for (size_t i = 0; i + 1 < expr.items.size(); i += 2) {
        ASSIGN_OR_RETURN(Value key, Eval(*expr.items[i], frame));
        ASSIGN_OR_RETURN(Value value, Eval(*expr.items[i + 1], frame));
        const std::string name = key.Str();
        bool replaced = false;
        for (auto& [existing, member] : items) {
          if (existing == name) {
            member = value;
            replaced = true;
          }
        }
        if (!replaced) items.emplace_back(name, std::move(value));
      }
      Value dict = Value::MakeDict(std::move(items));
      RETURN_IF_ERROR(At(expr.offset, CheckDepth(dict)));
      return dict;
    }
    case Expr::Kind::kAttr: {
      ASSIGN_OR_RETURN(Value object, Eval(*expr.items[0], frame));
      if (object.is_undefined()) {
        return At(expr.offset, absl::InvalidArgumentError(
                                   StrCatStd("cannot read attribute '", expr.name, "' of an undefined value")));
      }
      if (object.is_none()) {
        return At(expr.offset, absl::InvalidArgumentError(StrCatStd("'None' has no attribute '", expr.name, "'")));
      }
      return GetAttribute(object, expr.name);
    }
    case Expr::Kind::kIndex: {
      ASSIGN_OR_RETURN(Value object, Eval(*expr.items[0], frame));
      ASSIGN_OR_RETURN(Value index, Eval(*expr.items[1], frame));
      if (object.is_undefined() || object.is_none()) {
        return At(expr.offset,
                  absl::InvalidArgumentError(StrCatStd(
                      "cannot index ", object.is_none() ? "None" : "an undefined value", " with ", index.Repr())));
      }
      return GetItem(object, index);
    }
    case Expr::Kind::kSlice: {
      ASSIGN_OR_RETURN(Value object, Eval(*expr.items[0], frame));
      Value parts[3];
      for (int i = 0; i < 3; ++i) {
        if (expr.items[static_cast<size_t>(i) + 1] != nullptr) {
          ASSIGN_OR_RETURN(parts[i], Eval(*expr.items[static_cast<size_t>(i) + 1], frame));
        }
      }
      if (object.is_list()) {
        absl::StatusOr<std::vector<int64_t>> indices =
            SliceIndices(static_cast<int64_t>(object.list().size()), parts[0], parts[1], parts[2]);
        if (!indices.ok()) return At(expr.offset, indices.status());
        Value::List items;
        for (int64_t i : *indices) items.push_back(object.list()[static_cast<size_t>(i)]);
        return Value::MakeList(std::move(items));
      }
      if (object.is_string()) {
        const std::string& text = object.string_value();
        const std::vector<size_t> offsets = CharOffsets(text);
        absl::StatusOr<std::vector<int64_t>> indices =
            SliceIndices(static_cast<int64_t>(offsets.size() - 1), parts[0], parts[1], parts[2]);
        if (!indices.ok()) return At(expr.offset, indices.status());
        std::string sliced;
        for (int64_t i : *indices) {
          const auto c = static_cast<size_t>(i);
          sliced.append(text, offsets[c], offsets[c + 1] - offsets[c]);
        }
        return Value::String(std::move(sliced));
      }
      return At(expr.offset, absl::InvalidArgumentError(StrCatStd("cannot slice a ", object.KindName())));
    }
    case Expr::Kind::kCall: {
      ASSIGN_OR_RETURN(Value callee, Eval(*expr.items[0], frame));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(expr.args, frame));
      if (callee.kind() != Value::Kind::kFunction) {
        std::string what = expr.items[0]->kind == Expr::Kind::kName   ? StrCatStd("'", expr.items[0]->name, "'")
                           : expr.items[0]->kind == Expr::Kind::kAttr ? StrCatStd("'", expr.items[0]->name, "'")
                                                                      : std::string("the value");
        return At(expr.offset, absl::InvalidArgumentError(StrCatStd(
                                   what, " is not callable (it is ", callee.is_undefined() ? "undefined" : "a ",
                                   callee.is_undefined() ? "" : callee.KindName(), ")")));
      }
      absl::StatusOr<Value> result = Call(callee, args);
      if (!result.ok()) return At(expr.offset, result.status());
      RETURN_IF_ERROR(At(expr.offset, CheckDepth(*result)));
      return result;
    }
    case Expr::Kind::kFilter: {
      ASSIGN_OR_RETURN(Value operand, Eval(*expr.items[0], frame));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(expr.args, frame));
      absl::StatusOr<Value> result = ApplyFilter(*this, expr.name, operand, args);
      if (!result.ok()) return At(expr.offset, result.status());
      RETURN_IF_ERROR(At(expr.offset, CheckDepth(*result)));
      return result;
    }
    case Expr::Kind::kTest: {
      ASSIGN_OR_RETURN(Value operand, Eval(*expr.items[0], frame));
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(expr.args, frame));
      absl::StatusOr<bool> result = ApplyTest(*this, expr.name, operand, args);
      if (!result.ok()) return At(expr.offset, result.status());
      return Value::Bool(*result != expr.negated);
    }
    case Expr::Kind::kUnary: {
      ASSIGN_OR_RETURN(Value operand, Eval(*expr.items[0], frame));
      if (expr.name == "not") return Value::Bool(!operand.Truthy());
      if (operand.kind() == Value::Kind::kFloat)
        return Value::Float(expr.name == "-" ? -operand.number() : operand.number());
      if (IsInt(operand)) return Value::Int(expr.name == "-" ? -AsInt(operand) : AsInt(operand));
      return At(expr.offset, absl::InvalidArgumentError(
                                 StrCatStd("bad operand type for unary ", expr.name, ": ", operand.KindName())));
    }
    case Expr::Kind::kBinary: return EvalBinary(expr, frame);
    case Expr::Kind::kTernary: {
      ASSIGN_OR_RETURN(Value condition, Eval(*expr.items[1], frame));
      if (condition.Truthy()) return Eval(*expr.items[0], frame);
      if (expr.items[2] == nullptr) return Value();
      return Eval(*expr.items[2], frame);
    }
  }
  return Value();
}

absl::StatusOr<Value> Renderer::EvalBinary(const Expr& expr, Frame& frame) {
  const std::string& op = expr.name;
  ASSIGN_OR_RETURN(Value a, Eval(*expr.items[0], frame));
  if (op == "and") return a.Truthy() ? Eval(*expr.items[1], frame) : a;
  if (op == "or") return a.Truthy() ? a : Eval(*expr.items[1], frame);
  ASSIGN_OR_RETURN(Value b, Eval(*expr.items[1], frame));
  const auto fail = [&](const absl::Status& status) { return At(expr.offset, status); };
  if (op == "==") return Value::Bool(a == b);
  if (op == "!=") return Value::Bool(!(a == b));
  if (op == "in" || op == "not in") {
    absl::StatusOr<bool> in = Contains(b, a);
    if (!in.ok()) return fail(in.status());
    return Value::Bool(*in == (op == "in"));
  }
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    absl::StatusOr<bool> less = op == "<" || op == ">=" ? Less(a, b) : Less(b, a);
    if (!less.ok()) return fail(less.status());
    return Value::Bool(op == "<" || op == ">" ? *less : !*less);
  }
  if (op == "~") {
    std::string joined = a.Str() + b.Str();
    RETURN_IF_ERROR(fail(CheckSize(joined.size())));
    return Value::String(std::move(joined));
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      RETURN_IF_ERROR(fail(CheckSize(a.string_value().size() + b.string_value().size())));
      return Value::String(a.string_value() + b.string_value());
    }
    if (a.is_list() && b.is_list()) {
      Value::List items = a.list();
      items.insert(items.end(), b.list().begin(), b.list().end());
      RETURN_IF_ERROR(fail(CheckSize(items.size())));
      return Value::MakeList(std::move(items));
    }
  }
  if (op == "*" && ((a.is_string() && IsInt(b)) || (IsInt(a) && b.is_string()))) {
    const Value& text = a.is_string() ? a : b;
    const int64_t count = std::max<int64_t>(0, AsInt(a.is_string() ? b : a));
    const auto total = static_cast<double>(text.string_value().size()) * static_cast<double>(count);
    if (total > static_cast<double>(limits_.max_output_bytes)) RETURN_IF_ERROR(fail(CheckSize(SIZE_MAX)));
    std::string repeated;
    for (int64_t i = 0; i < count; ++i) repeated += text.string_value();
    return Value::String(std::move(repeated));
  }
  if (!IsNumeric(a) || !IsNumeric(b)) return fail(TypeError(op, a, b));
  const bool ints = IsInt(a) && IsInt(b);
  if (op == "+" || op == "-" || op == "*") {
    if (ints) {
      int64_t result = 0;
      const bool overflow = op == "+"   ? __builtin_add_overflow(AsInt(a), AsInt(b), &result)
                            : op == "-" ? __builtin_sub_overflow(AsInt(a), AsInt(b), &result)
                                        : __builtin_mul_overflow(AsInt(a), AsInt(b), &result);
      if (overflow) return fail(absl::InvalidArgumentError("integer overflow"));
      return Value::Int(result);
    }
    const double x = a.number();
    const double y = b.number();
    return Value::Float(op == "+" ? x + y : op == "-" ? x - y : x * y);
  }
  if (op == "/") {
    if (b.number() == 0.0) return fail(absl::InvalidArgumentError("division by zero"));
    return Value::Float(a.number() / b.number());
  }
  if (op == "//" || op == "%") {
    if (b.number() == 0.0) return fail(absl::InvalidArgumentError("integer division or modulo by zero"));
    if (ints) {
      const int64_t x = AsInt(a);
      const int64_t y = AsInt(b);
      int64_t quotient = x / y;
      int64_t remainder = x % y;
      if (remainder != 0 && ((remainder < 0) != (y < 0))) {
        --quotient;
        remainder += y;
      }
      return Value::Int(op == "//" ? quotient : remainder);
    }
    const double x = a.number();
    const double y = b.number();
    const double quotient = std::floor(x / y);
    return Value::Float(op == "//" ? quotient : x - quotient * y);
  }
  if (op == "**") {
    if (ints && AsInt(b) >= 0) {
      const int64_t base = AsInt(a);
      const int64_t exponent = AsInt(b);
      if (base == 0) return Value::Int(exponent == 0 ? 1 : 0);
      if (base == 1) return Value::Int(1);
      if (base == -1) return Value::Int(exponent % 2 == 0 ? 1 : -1);
      int64_t result = 1;
      for (int64_t i = 0; i < exponent; ++i) {  // |base| >= 2: overflows within 63 rounds
        if (__builtin_mul_overflow(result, base, &result)) return fail(absl::InvalidArgumentError("integer overflow"));
      }
      return Value::Int(result);
    }
    return Value::Float(std::pow(a.number(), b.number()));
  }
  return fail(absl::InvalidArgumentError(StrCatStd("unknown operator ", op)));
}

}  // namespace adak::jinja
