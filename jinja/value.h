// The values a Jinja template computes with, with Python's semantics as Jinja2 (and so Hugging Face's
// apply_chat_template) gives them: undefined, none, booleans, 64-bit integers, floats, strings (UTF-8),
// lists, dicts (insertion-ordered), namespaces (the one mutable kind: `{% set ns.x = ... %}`) and callables
// (macros, builtins, bound methods).
//
// Lists and dicts are shared by reference like Python's (copying a Value copies a pointer); nothing but a
// namespace is ever mutated after it is built (Hugging Face renders in an immutable sandbox).
//
// Thread safety: a Value is immutable apart from namespaces; values made while rendering belong to that
// render.
#ifndef ADAK_JINJA_VALUE_H_
#define ADAK_JINJA_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace adak::jinja {

class Value;
class Renderer;

// The arguments of one call: positional, then keyword (in the order written).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // Positional `index`, else keyword `name`, else nullptr.
  [[nodiscard]] const Value* Get(size_t index, std::string_view name) const;
};

using Function = std::function<absl::StatusOr<Value>(Renderer& renderer, const CallArgs& args)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };
  using List = std::vector<Value>;
  using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order; keys unique

  Value() = default;  // undefined
  static Value None();
  static Value Bool(bool value);
  static Value Int(int64_t value);
  static Value Float(double value);
  static Value String(std::string value);
  static Value MakeList(List items);
  static Value MakeDict(Dict items);
  static Value MakeNamespace(Dict items);
  static Value MakeFunction(std::string name, Function function);

  // JSON -> Value (objects keep their member order; numbers become int or float as JSON spells them).
  static Value FromJson(const nlohmann::ordered_json& json);

  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] bool is_undefined() const { return kind_ == Kind::kUndefined; }
  [[nodiscard]] bool is_none() const { return kind_ == Kind::kNone; }
  [[nodiscard]] bool is_string() const { return kind_ == Kind::kString; }
  [[nodiscard]] bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  [[nodiscard]] bool is_list() const { return kind_ == Kind::kList; }
  [[nodiscard]] bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }

  [[nodiscard]] bool bool_value() const { return bool_; }
  [[nodiscard]] int64_t int_value() const { return int_; }
  // The number as a double (int, float or bool).
  [[nodiscard]] double number() const;
  [[nodiscard]] const std::string& string_value() const { return *string_; }
  [[nodiscard]] const List& list() const { return *list_; }
  [[nodiscard]] const Dict& dict() const { return *dict_; }
  [[nodiscard]] const std::string& function_name() const { return *string_; }
  [[nodiscard]] const Function& function() const { return *function_; }

  // How deeply lists and dicts nest inside this value (0 for a scalar, 1 for a flat list). Namespaces count
  // what they held when made.
  [[nodiscard]] uint32_t depth() const { return depth_; }
  // Whether this value is, or holds at any depth, a namespace.
  [[nodiscard]] bool HoldsNamespace() const;

  // Dict/namespace member `key`, or nullptr.
  [[nodiscard]] const Value* Find(std::string_view key) const;
  // Namespace only: sets `key` (adds it when absent). REQUIRES: kind() == kNamespace.
  void SetMember(std::string_view key, Value value) const;

  // Python truthiness: undefined, none, false, 0, 0.0, "" and empty containers are false.
  [[nodiscard]] bool Truthy() const;
  // Python's str(): what `{{ value }}` prints ("" for undefined; True/False/None; lists and dicts as
  // Python's repr).
  [[nodiscard]] std::string Str() const;
  // Python's repr() (strings quoted), for list and dict members.
  [[nodiscard]] std::string Repr() const;
  // Python json.dumps(value, ensure_ascii=False, indent=indent) (indent < 0: one line with ", " and ": ").
  // Errors: InvalidArgument for a callable.
  [[nodiscard]] absl::StatusOr<std::string> ToJson(int indent) const;
  // A short name of the kind for error messages ("string", "list", ...).
  [[nodiscard]] std::string_view KindName() const;

  // Python ==: numbers by value (1 == 1.0 == True), strings, lists and dicts element-wise, none == none,
  // undefined == undefined.
  friend bool operator==(const Value& a, const Value& b);

 private:
  Kind kind_ = Kind::kUndefined;
  uint32_t depth_ = 0;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0.0;
  std::shared_ptr<const std::string> string_;  // kString; the name of a kFunction
  std::shared_ptr<const List> list_;
  std::shared_ptr<Dict> dict_;  // kDict, kNamespace (only namespaces are written after construction)
  std::shared_ptr<const Function> function_;
};

}  // namespace adak::jinja

#endif  // ADAK_JINJA_VALUE_H_
