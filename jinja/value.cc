#include "jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace adak::jinja {
namespace {

// Python's repr(float): the shortest digits that round-trip, in positional notation for exponents -4..15
// and scientific ("1e+16", "2.5e-05") outside it; integral values keep ".0".
std::string FloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  std::string scientific(buffer, result.ptr);  // "-1.2345e+06"
  const size_t e = scientific.find('e');
  std::string mantissa = scientific.substr(0, e);
  const int exponent = std::stoi(scientific.substr(e + 1));
  std::string sign;
  if (!mantissa.empty() && mantissa[0] == '-') {
    sign = "-";
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  if (exponent < -4 || exponent >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_buffer[16];
    std::snprintf(exp_buffer, sizeof(exp_buffer), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp_buffer;
  }
  std::string out;
  if (exponent < 0) {
    out = "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  } else {
    const auto point = static_cast<size_t>(exponent) + 1;
    if (digits.size() <= point) {
      out = digits + std::string(point - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, point) + "." + digits.substr(point);
    }
  }
  return sign + out;
}

std::string PythonStringRepr(const std::string& text) {
  const bool has_single = text.find('\'') != std::string::npos;
  const bool has_double = text.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == static_cast<unsigned char>(quote)) {
          out.push_back('\\');
          out.push_back(static_cast<char>(c));
        } else if (c < 0x20 || c == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "\\x%02x", c);
          out += hex;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back(quote);
  return out;
}

void JsonString(const std::string& text, std::string& out) {
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "\\u%04x", c);
          out += hex;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

absl::Status AppendJson(const Value& value, int indent, int depth, std::string& out) {
  const auto newline = [&](int level) {
    out.push_back('\n');
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
  };
  switch (value.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: out += "null"; return absl::OkStatus();
    case Value::Kind::kBool: out += value.bool_value() ? "true" : "false"; return absl::OkStatus();
    case Value::Kind::kInt: out += std::to_string(value.int_value()); return absl::OkStatus();
    case Value::Kind::kFloat: {
      const double number = value.number();
      out += std::isnan(number)   ? "NaN"
             : std::isinf(number) ? (number > 0 ? "Infinity" : "-Infinity")
                                  : FloatRepr(number);
      return absl::OkStatus();
    }
    case Value::Kind::kString: JsonString(value.string_value(), out); return absl::OkStatus();
    case Value::Kind::kList: {
      if (value.list().empty()) {
        out += "[]";
        return absl::OkStatus();
      }
      out.push_back('[');
      bool first = true;
      for (const Value& item : value.list()) {
        if (!first) out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(depth + 1);
        if (absl::Status status = AppendJson(item, indent, depth + 1, out); !status.ok()) return status;
      }
      if (indent >= 0) newline(depth);
      out.push_back(']');
      return absl::OkStatus();
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      if (value.dict().empty()) {
        out += "{}";
        return absl::OkStatus();
      }
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : value.dict()) {
        if (!first) out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(depth + 1);
        JsonString(key, out);
        out += ": ";
        if (absl::Status status = AppendJson(item, indent, depth + 1, out); !status.ok()) return status;
      }
      if (indent >= 0) newline(depth);
      out.push_back('}');
      return absl::OkStatus();
    }
    case Value::Kind::kFunction:
      return absl::InvalidArgumentError(
          absl::StrCat("tojson: a callable (", value.function_name(), ") is not JSON serializable"));
  }
  return absl::OkStatus();
}

}  // namespace

const Value* CallArgs::Get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  for (const auto& [key, value] : keyword) {
    if (key == name) return &value;
  }
  return nullptr;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::Bool(bool value) {
  Value v;
  v.kind_ = Kind::kBool;
  v.bool_ = value;
  return v;
}
Value Value::Int(int64_t value) {
  Value v;
  v.kind_ = Kind::kInt;
  v.int_ = value;
  return v;
}
Value Value::Float(double value) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.float_ = value;
  return v;
}
Value Value::String(std::string value) {
  Value v;
  v.kind_ = Kind::kString;
  v.string_ = std::make_shared<const std::string>(std::move(value));
  return v;
}
Value Value::MakeList(List items) {
  Value v;
  v.kind_ = Kind::kList;
  for (const Value& item : items) v.depth_ = std::max(v.depth_, item.depth_);
  ++v.depth_;
  v.list_ = std::make_shared<const List>(std::move(items));
  return v;
}
Value Value::MakeDict(Dict items) {
  Value v;
  v.kind_ = Kind::kDict;
  for (const auto& [key, item] : items) v.depth_ = std::max(v.depth_, item.depth_);
  ++v.depth_;
  v.dict_ = std::make_shared<Dict>(std::move(items));
  return v;
}
Value Value::MakeNamespace(Dict items) {
  Value v = MakeDict(std::move(items));
  v.kind_ = Kind::kNamespace;
  return v;
}
Value Value::MakeFunction(std::string name, Function function) {
  Value v;
  v.kind_ = Kind::kFunction;
  v.string_ = std::make_shared<const std::string>(std::move(name));
  v.function_ = std::make_shared<const Function>(std::move(function));
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null: return None();
    case nlohmann::ordered_json::value_t::boolean: return Bool(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Int(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto value = json.get<uint64_t>();
      return value > static_cast<uint64_t>(INT64_MAX) ? Float(static_cast<double>(value))
                                                      : Int(static_cast<int64_t>(value));
    }
    case nlohmann::ordered_json::value_t::number_float: return Float(json.get<double>());
    case nlohmann::ordered_json::value_t::string: return String(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJson(item));
      return MakeList(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict items;
      items.reserve(json.size());
      for (const auto& [key, item] : json.items()) items.emplace_back(key, FromJson(item));
      return MakeDict(std::move(items));
    }
    default: return Value();
  }
}

double Value::number() const {
  switch (kind_) {
    case Kind::kInt: return static_cast<double>(int_);
    case Kind::kFloat: return float_;
    case Kind::kBool: return bool_ ? 1.0 : 0.0;
    default: return 0.0;
  }
}

const Value* Value::Find(std::string_view key) const {
  if (!is_mapping()) return nullptr;
  for (const auto& [name, value] : *dict_) {
    if (name == key) return &value;
  }
  return nullptr;
}

void Value::SetMember(std::string_view key, Value value) const {
  for (auto& [name, member] : *dict_) {
    if (name == key) {
      member = std::move(value);
      return;
    }
  }
  dict_->emplace_back(std::string(key), std::move(value));
}

bool Value::HoldsNamespace() const {
  switch (kind_) {
    case Kind::kNamespace: return true;
    case Kind::kList:
      return std::any_of(list_->begin(), list_->end(), [](const Value& v) { return v.HoldsNamespace(); });
    case Kind::kDict:
      return std::any_of(dict_->begin(), dict_->end(), [](const auto& m) { return m.second.HoldsNamespace(); });
    default: return false;
  }
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return bool_;
    case Kind::kInt: return int_ != 0;
    case Kind::kFloat: return float_ != 0.0;
    case Kind::kString: return !string_->empty();
    case Kind::kList: return !list_->empty();
    case Kind::kDict: return !dict_->empty();
    case Kind::kNamespace:
    case Kind::kFunction: return true;
  }
  return false;
}

std::string Value::Str() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kString: return *string_;
    default: return Repr();
  }
}

std::string Value::Repr() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return bool_ ? "True" : "False";
    case Kind::kInt: return std::to_string(int_);
    case Kind::kFloat: return FloatRepr(float_);
    case Kind::kString: return PythonStringRepr(*string_);
    case Kind::kList: {
      std::string out = "[";
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i > 0) out += ", ";
        out += (*list_)[i].Repr();
      }
      return out + "]";
    }
    case Kind::kDict:
    case Kind::kNamespace: {
      std::string out = kind_ == Kind::kNamespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [key, value] : *dict_) {
        if (!first) out += ", ";
        first = false;
        out += PythonStringRepr(key) + ": " + value.Repr();
      }
      return out + (kind_ == Kind::kNamespace ? "}>" : "}");
    }
    case Kind::kFunction: return absl::StrCat("<function ", *string_, ">");
  }
  return "";
}

absl::StatusOr<std::string> Value::ToJson(int indent) const {
  std::string out;
  if (absl::Status status = AppendJson(*this, indent, 0, out); !status.ok()) return status;
  return out;
}

std::string_view Value::KindName() const {
  switch (kind_) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "none";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "string";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "namespace";
    case Kind::kFunction: return "callable";
  }
  return "value";
}

bool operator==(const Value& a, const Value& b) {
  using Kind = Value::Kind;
  const auto numeric = [](Kind kind) { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; };
  if (numeric(a.kind_) && numeric(b.kind_)) {
    if (a.kind_ != Kind::kFloat && b.kind_ != Kind::kFloat) {
      const int64_t x = a.kind_ == Kind::kBool ? static_cast<int64_t>(a.bool_) : a.int_;
      const int64_t y = b.kind_ == Kind::kBool ? static_cast<int64_t>(b.bool_) : b.int_;
      return x == y;
    }
    return a.number() == b.number();
  }
  if (a.kind_ != b.kind_) {
    const bool a_dict = a.kind_ == Kind::kDict || a.kind_ == Kind::kNamespace;
    const bool b_dict = b.kind_ == Kind::kDict || b.kind_ == Kind::kNamespace;
    if (!(a_dict && b_dict)) return false;
  }
  switch (a.kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString: return *a.string_ == *b.string_;
    case Kind::kList: return *a.list_ == *b.list_;
    case Kind::kDict:
    case Kind::kNamespace: {
      if (a.dict_->size() != b.dict_->size()) return false;
      for (const auto& [key, value] : *a.dict_) {
        const Value* other = b.Find(key);
        if (other == nullptr || !(value == *other)) return false;
      }
      return true;
    }
    case Kind::kFunction: return a.function_ == b.function_;
    default: return false;
  }
}

}  // namespace adak::jinja
