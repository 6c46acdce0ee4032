#include "jinja/builtins.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::jinja {
namespace {

using Kind = Value::Kind;

absl::Status Bad(std::string_view where, std::string_view what) {
  return absl::InvalidArgumentError(StrCatStd(where, ": ", what));
}

bool IsPySpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python's str.strip family: `chars` (none: whitespace) removed from the chosen ends.
std::string Strip(std::string_view text, const Value* chars, bool left, bool right) {
  const auto strip = [&](char c) {
    if (chars == nullptr || chars->is_none() || chars->is_undefined()) return IsPySpace(c);
    return chars->Str().find(c) != std::string::npos;
  };
  size_t begin = 0;
  size_t end = text.size();
  if (left) {
    while (begin < end && strip(text[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip(text[end - 1])) --end;
  }
  return std::string(text.substr(begin, end - begin));
}

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}
std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}
std::string Title(std::string text) {
  bool start = true;
  for (char& c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalpha(u) != 0) {
      c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
      start = false;
    } else {
      start = true;
    }
  }
  return text;
}
std::string Capitalize(std::string text) {
  text = Lower(std::move(text));
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text;
}

absl::StatusOr<std::string> Replace(Renderer& renderer, const std::string& text, const Value& old_value,
                                    const Value& new_value, const Value* count) {
  if (!old_value.is_string() || !new_value.is_string()) {
    return Bad("replace", "the old and new values must be strings");
  }
  int64_t limit = -1;
  if (count != nullptr && count->kind() == Kind::kInt) limit = count->int_value();
  const std::string& from = old_value.string_value();
  const std::string& to = new_value.string_value();
  std::string out;
  size_t pos = 0;
  int64_t done = 0;
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    for (size_t i = 0; i <= text.size(); ++i) {
      if (limit < 0 || done < limit) {
        out += to;
        ++done;
      }
      if (i < text.size()) out.push_back(text[i]);
      RETURN_IF_ERROR(renderer.CheckSize(out.size()));
    }
    return out;
  }
  while (limit < 0 || done < limit) {
    const size_t found = text.find(from, pos);
    if (found == std::string::npos) break;
    out.append(text, pos, found - pos);
    out += to;
    RETURN_IF_ERROR(renderer.CheckSize(out.size()));
    pos = found + from.size();
    ++done;
  }
  out.append(text, pos, std::string::npos);
  RETURN_IF_ERROR(renderer.CheckSize(out.size()));
  return out;
}

absl::StatusOr<Value> Split(const std::string& text, const Value* sep, const Value* maxsplit, bool from_right) {
  int64_t limit = -1;
  if (maxsplit != nullptr && maxsplit->kind() == Kind::kInt) limit = maxsplit->int_value();
  Value::List parts;
  if (sep == nullptr || sep->is_none() || sep->is_undefined()) {
    // Runs of whitespace separate; no empty strings at the ends.
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && IsPySpace(text[i])) ++i;
      if (i >= text.size()) break;
      const size_t start = i;
      while (i < text.size() && !IsPySpace(text[i])) ++i;
      words.emplace_back(start, i);
    }
    if (limit >= 0 && static_cast<int64_t>(words.size()) > limit + 1) {
      if (from_right) {
        const size_t keep_from = words.size() - static_cast<size_t>(limit);
        parts.push_back(Value::String(Strip(text.substr(0, words[keep_from - 1].second), nullptr, true, true)));
        for (size_t w = keep_from; w < words.size(); ++w) {
          parts.push_back(Value::String(text.substr(words[w].first, words[w].second - words[w].first)));
        }
      } else {
        for (size_t w = 0; w < static_cast<size_t>(limit); ++w) {
          parts.push_back(Value::String(text.substr(words[w].first, words[w].second - words[w].first)));
        }
        parts.push_back(
            Value::String(Strip(text.substr(words[static_cast<size_t>(limit)].first), nullptr, false, true)));
      }
      return Value::MakeList(std::move(parts));
    }
    for (const auto& [start, end] : words) parts.push_back(Value::String(text.substr(start, end - start)));
    return Value::MakeList(std::move(parts));
  }
  if (!sep->is_string()) return Bad("split", "the separator must be a string or None");
  const std::string& separator = sep->string_value();
  if (separator.empty()) return Bad("split", "empty separator");
  std::vector<std::string> pieces;
  size_t pos = 0;
  while (true) {
    const size_t found = text.find(separator, pos);
    if (found == std::string::npos) break;
    pieces.push_back(text.substr(pos, found - pos));
    pos = found + separator.size();
  }
  pieces.push_back(text.substr(pos));
  if (limit >= 0 && static_cast<int64_t>(pieces.size()) > limit + 1) {
    std::vector<std::string> merged;
    if (from_right) {
      const size_t head = pieces.size() - static_cast<size_t>(limit);
      std::string first = pieces[0];
      for (size_t i = 1; i < head; ++i) first += separator + pieces[i];
      merged.push_back(first);
      for (size_t i = head; i < pieces.size(); ++i) merged.push_back(pieces[i]);
    } else {
      for (size_t i = 0; i < static_cast<size_t>(limit); ++i) merged.push_back(pieces[i]);
      std::string last = pieces[static_cast<size_t>(limit)];
      for (size_t i = static_cast<size_t>(limit) + 1; i < pieces.size(); ++i) last += separator + pieces[i];
      merged.push_back(last);
    }
    pieces = std::move(merged);
  }
  for (std::string& piece : pieces) parts.push_back(Value::String(std::move(piece)));
  return Value::MakeList(std::move(parts));
}

absl::StatusOr<bool> AffixMatch(std::string_view where, const std::string& text, const Value* affix, bool prefix) {
  if (affix == nullptr) return Bad(where, "takes one argument");
  const auto match = [&](const std::string& a) { return prefix ? text.starts_with(a) : text.ends_with(a); };
  if (affix->is_string()) return match(affix->string_value());
  if (affix->is_list()) {
    for (const Value& item : affix->list()) {
      if (!item.is_string()) return Bad(where, "a tuple argument must hold strings");
      if (match(item.string_value())) return true;
    }
    return false;
  }
  return Bad(where, StrCatStd("the argument must be a string or a tuple of strings, got ", affix->KindName()));
}

Value BoundMethod(const Value& self, std::string name) {
  const std::string method = name;
  return Value::MakeFunction(
      std::move(name), [self, method](Renderer& renderer, const CallArgs& args) -> absl::StatusOr<Value> {
        const std::string where = StrCatStd(self.KindName(), ".", method, "()");
        if (self.is_string()) {
          const std::string& text = self.string_value();
          if (method == "strip") return Value::String(Strip(text, args.Get(0, "chars"), true, true));
          if (method == "lstrip") return Value::String(Strip(text, args.Get(0, "chars"), true, false));
          if (method == "rstrip") return Value::String(Strip(text, args.Get(0, "chars"), false, true));
          if (method == "split") return Split(text, args.Get(0, "sep"), args.Get(1, "maxsplit"), false);
          if (method == "rsplit") return Split(text, args.Get(0, "sep"), args.Get(1, "maxsplit"), true);
          if (method == "startswith" || method == "endswith") {
            ASSIGN_OR_RETURN(bool match, AffixMatch(where, text, args.Get(0, "prefix"), method == "startswith"));
            return Value::Bool(match);
          }
          if (method == "upper") return Value::String(Upper(text));
          if (method == "lower") return Value::String(Lower(text));
          if (method == "title") return Value::String(Title(text));
          if (method == "capitalize") return Value::String(Capitalize(text));
          if (method == "replace") {
            const Value* from = args.Get(0, "old");
            const Value* to = args.Get(1, "new");
            if (from == nullptr || to == nullptr) return Bad(where, "takes the old and new strings");
            ASSIGN_OR_RETURN(std::string replaced, Replace(renderer, text, *from, *to, args.Get(2, "count")));
            return Value::String(std::move(replaced));
          }
          if (method == "find" || method == "count") {
            const Value* needle = args.Get(0, "sub");
            if (needle == nullptr || !needle->is_string()) return Bad(where, "takes a string");
            const std::string& sub = needle->string_value();
            if (method == "find") {
              const size_t at = text.find(sub);
              return Value::Int(at == std::string::npos ? -1 : CharCount(std::string_view(text).substr(0, at)));
            }
            if (sub.empty()) return Value::Int(CharCount(text) + 1);
            int64_t count = 0;
            for (size_t at = text.find(sub); at != std::string::npos; at = text.find(sub, at + sub.size())) ++count;
            return Value::Int(count);
          }
          if (method == "join") {
            const Value* items = args.Get(0, "iterable");
            if (items == nullptr) return Bad(where, "takes an iterable");
            ASSIGN_OR_RETURN(Value::List list, Iterate(*items));
            std::string out;
            for (size_t i = 0; i < list.size(); ++i) {
              if (i > 0) out += text;
              out += list[i].Str();
              RETURN_IF_ERROR(renderer.CheckSize(out.size()));
            }
            return Value::String(std::move(out));
          }
        } else if (self.is_mapping()) {
          if (method == "get") {
            const Value* key = args.Get(0, "key");
            if (key == nullptr) return Bad(where, "takes a key");
            const Value* found = self.Find(key->Str());
            if (found != nullptr) return *found;
            const Value* fallback = args.Get(1, "default");
            return fallback != nullptr ? *fallback : Value::None();
          }
          Value::List items;
          for (const auto& [key, value] : self.dict()) {
            if (method == "items") {
              items.push_back(Value::MakeList({Value::String(key), value}));
            } else if (method == "keys") {
              items.push_back(Value::String(key));
            } else {
              items.push_back(value);
            }
          }
          return Value::MakeList(std::move(items));
        }
        return Bad(where, "is not supported");
      });
}

bool IsStringMethod(std::string_view name) {
  static constexpr std::string_view kNames[] = {"strip",      "lstrip",   "rstrip", "split", "rsplit",
                                                "startswith", "endswith", "upper",  "lower", "title",
                                                "capitalize", "replace",  "find",   "count", "join"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

absl::StatusOr<int64_t> IntArg(std::string_view where, const Value* value, int64_t fallback) {
  if (value == nullptr || value->is_undefined() || value->is_none()) return fallback;
  if (value->kind() == Kind::kInt) return value->int_value();
  if (value->kind() == Kind::kBool) return value->bool_value() ? 1 : 0;
  return Bad(where, StrCatStd("expected an integer, got ", value->KindName()));
}

// The attribute `path` ("a.b") of `item`, for selectattr/map/sort/join attribute=.
Value AttributePath(const Value& item, const std::string& path) {
  Value current = item;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    int64_t index = 0;
    if (current.is_list() && absl::SimpleAtoi(part, &index)) {
      current = GetItem(current, Value::Int(index));
    } else if (current.is_mapping()) {
      const Value* found = current.Find(part);
      current = found != nullptr ? *found : Value();
    } else {
      return Value();
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return current;
}

absl::StatusOr<Value::List> SortedList(Value::List items, bool reverse, bool case_sensitive,
                                       const std::string& attribute) {
  absl::Status failure = absl::OkStatus();
  const auto key = [&](const Value& v) {
    Value k = attribute.empty() ? v : AttributePath(v, attribute);
    if (!case_sensitive && k.is_string()) k = Value::String(Lower(k.string_value()));
    return k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    absl::StatusOr<bool> less = reverse ? Less(key(b), key(a)) : Less(key(a), key(b));
    if (!less.ok()) {
      failure = less.status();
      return false;
    }
    return *less;
  });
  RETURN_IF_ERROR(failure);
  return items;
}

absl::StatusOr<Value> SelectOrReject(Renderer& renderer, std::string_view name, const Value& operand,
                                     const CallArgs& args) {
  const bool by_attribute = name == "selectattr" || name == "rejectattr";
  const bool select = name == "select" || name == "selectattr";
  ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return Bad(name, "takes an attribute name");
    }
    attribute = args.positional[0].string_value();
    next = 1;
  }
  std::string test;
  if (args.positional.size() > next) test = args.positional[next].Str();
  CallArgs test_args;
  for (size_t i = next + 1; i < args.positional.size(); ++i) test_args.positional.push_back(args.positional[i]);
  Value::List kept;
  for (const Value& item : items) {
    const Value subject = by_attribute ? AttributePath(item, attribute) : item;
    bool pass = false;
    if (test.empty()) {
      pass = subject.Truthy();
    } else {
      ASSIGN_OR_RETURN(pass, ApplyTest(renderer, test, subject, test_args));
    }
    if (pass == select) kept.push_back(item);
  }
  return Value::MakeList(std::move(kept));
}

absl::StatusOr<Value> Map(Renderer& renderer, const Value& operand, const CallArgs& args) {
  ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
  Value::List mapped;
  if (const Value* attribute = args.Get(SIZE_MAX, "attribute"); attribute != nullptr) {
    const Value* fallback = args.Get(SIZE_MAX, "default");
    for (const Value& item : items) {
      Value value = AttributePath(item, attribute->Str());
      if (value.is_undefined() && fallback != nullptr) value = *fallback;
      mapped.push_back(std::move(value));
    }
    return Value::MakeList(std::move(mapped));
  }
  if (args.positional.empty()) return Bad("map", "takes a filter name or attribute=");
  const std::string filter = args.positional[0].Str();
  CallArgs filter_args;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  filter_args.keyword = args.keyword;
  for (const Value& item : items) {
    ASSIGN_OR_RETURN(Value value, ApplyFilter(renderer, filter, item, filter_args));
    mapped.push_back(std::move(value));
  }
  return Value::MakeList(std::move(mapped));
}

std::string HtmlEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace

int64_t CharCount(std::string_view text) {
  int64_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return count;
}

absl::StatusOr<Value::List> Iterate(const Value& value) {
  switch (value.kind()) {
    case Kind::kUndefined: return Value::List{};
    case Kind::kList: return value.list();
    case Kind::kDict:
    case Kind::kNamespace: {
      Value::List keys;
      for (const auto& [key, item] : value.dict()) keys.push_back(Value::String(key));
      return keys;
    }
    case Kind::kString: {
      Value::List chars;
      const std::string& text = value.string_value();
      for (size_t i = 0; i < text.size();) {
        size_t j = i + 1;
        while (j < text.size() && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80) ++j;
        chars.push_back(Value::String(text.substr(i, j - i)));
        i = j;
      }
      return chars;
    }
    default: return absl::InvalidArgumentError(StrCatStd("a ", value.KindName(), " is not iterable"));
  }
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string()) {
      return absl::InvalidArgumentError(StrCatStd("'in <string>' requires a string, not a ", item.KindName()));
    }
    return container.string_value().find(item.string_value()) != std::string::npos;
  }
  if (container.is_list()) {
    return std::any_of(container.list().begin(), container.list().end(), [&](const Value& v) { return v == item; });
  }
  if (container.is_mapping()) return container.Find(item.Str()) != nullptr && item.is_string();
  if (container.is_undefined()) return false;
  return absl::InvalidArgumentError(
      StrCatStd("'in' needs a string, list or dict on its right, got a ", container.KindName()));
}

absl::StatusOr<bool> Less(const Value& a, const Value& b) {
  const auto numeric = [](const Value& v) { return v.is_number() || v.kind() == Kind::kBool; };
  if (numeric(a) && numeric(b)) return a.number() < b.number();
  if (a.is_string() && b.is_string()) return a.string_value() < b.string_value();
  if (a.is_list() && b.is_list()) {
    const auto& x = a.list();
    const auto& y = b.list();
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
      if (x[i] == y[i]) continue;
      return Less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return absl::InvalidArgumentError(
      StrCatStd("'<' is not supported between a ", a.KindName(), " and a ", b.KindName()));
}

Value GetAttribute(const Value& object, std::string_view name) {
  if (object.is_string() && IsStringMethod(name)) return BoundMethod(object, std::string(name));
  if (object.kind() == Kind::kDict && (name == "get" || name == "items" || name == "keys" || name == "values")) {
    return BoundMethod(object, std::string(name));
  }
  if (const Value* member = object.Find(name); member != nullptr) return *member;
  return Value();
}

Value GetItem(const Value& object, const Value& index) {
  if (object.is_mapping()) {
    const Value* member = object.Find(index.Str());
    return member != nullptr && (index.is_string() || index.is_number()) ? *member : Value();
  }
  if ((object.is_list() || object.is_string()) && (index.kind() == Kind::kInt || index.kind() == Kind::kBool)) {
    int64_t i = index.kind() == Kind::kBool ? (index.bool_value() ? 1 : 0) : index.int_value();
    if (object.is_list()) {
      const auto size = static_cast<int64_t>(object.list().size());
      if (i < 0) i += size;
      if (i < 0 || i >= size) return Value();
      return object.list()[static_cast<size_t>(i)];
    }
    absl::StatusOr<Value::List> chars = Iterate(object);
    const auto size = static_cast<int64_t>(chars->size());
    if (i < 0) i += size;
    if (i < 0 || i >= size) return Value();
    return (*chars)[static_cast<size_t>(i)];
  }
  if (object.is_string() && index.is_string()) return GetAttribute(object, index.string_value());
  return Value();
}

absl::StatusOr<Value> ApplyFilter(Renderer& renderer, std::string_view name, const Value& operand,
                                  const CallArgs& args) {
  const std::string where = StrCatStd("filter ", name);
  if (name == "length" || name == "count") {
    if (operand.is_string()) return Value::Int(CharCount(operand.string_value()));
    if (operand.is_list()) return Value::Int(static_cast<int64_t>(operand.list().size()));
    if (operand.is_mapping()) return Value::Int(static_cast<int64_t>(operand.dict().size()));
    if (operand.is_undefined()) return Value::Int(0);
    return Bad(where, StrCatStd("a ", operand.KindName(), " has no length"));
  }
  if (name == "trim") return Value::String(Strip(operand.Str(), args.Get(0, "chars"), true, true));
  if (name == "upper") return Value::String(Upper(operand.Str()));
  if (name == "lower") return Value::String(Lower(operand.Str()));
  if (name == "title") return Value::String(Title(operand.Str()));
  if (name == "capitalize") return Value::String(Capitalize(operand.Str()));
  if (name == "string") return Value::String(operand.Str());
  if (name == "safe") return operand;
  if (name == "escape" || name == "e") return Value::String(HtmlEscape(operand.Str()));
  if (name == "wordcount") {
    ASSIGN_OR_RETURN(Value words, Split(operand.Str(), nullptr, nullptr, false));
    return Value::Int(static_cast<int64_t>(words.list().size()));
  }
  if (name == "int") {
    ASSIGN_OR_RETURN(int64_t fallback, IntArg(where, args.Get(0, "default"), 0));
    if (operand.kind() == Kind::kInt) return operand;
    if (operand.kind() == Kind::kBool) return Value::Int(operand.bool_value() ? 1 : 0);
    if (operand.kind() == Kind::kFloat) return Value::Int(static_cast<int64_t>(operand.number()));
    int64_t parsed = 0;
    if (operand.is_string() && absl::SimpleAtoi(Strip(operand.string_value(), nullptr, true, true), &parsed)) {
      return Value::Int(parsed);
    }
    double as_double = 0.0;
    if (operand.is_string() && absl::SimpleAtod(operand.string_value(), &as_double) && std::isfinite(as_double)) {
      return Value::Int(static_cast<int64_t>(as_double));
    }
    return Value::Int(fallback);
  }
  if (name == "float") {
    if (operand.is_number() || operand.kind() == Kind::kBool) return Value::Float(operand.number());
    double parsed = 0.0;
    if (operand.is_string() && absl::SimpleAtod(operand.string_value(), &parsed)) return Value::Float(parsed);
    const Value* fallback = args.Get(0, "default");
    return fallback != nullptr ? *fallback : Value::Float(0.0);
  }
  if (name == "abs") {
    if (operand.kind() == Kind::kInt)
      return Value::Int(operand.int_value() < 0 ? -operand.int_value() : operand.int_value());
    if (operand.is_number()) return Value::Float(std::fabs(operand.number()));
    return Bad(where, StrCatStd("bad operand type: ", operand.KindName()));
  }
  if (name == "default" || name == "d") {
    const Value* fallback = args.Get(0, "default_value");
    const Value* boolean = args.Get(1, "boolean");
    const bool use_fallback = boolean != nullptr && boolean->Truthy() ? !operand.Truthy() : operand.is_undefined();
    if (use_fallback) return fallback != nullptr ? *fallback : Value::String("");
    return operand;
  }
  if (name == "first" || name == "last") {
    ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") {
    ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
    return Value::MakeList(std::move(items));
  }
  if (name == "reverse") {
    if (operand.is_string()) {
      ASSIGN_OR_RETURN(Value::List chars, Iterate(operand));
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->string_value();
      return Value::String(std::move(out));
    }
    ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
    std::reverse(items.begin(), items.end());
    return Value::MakeList(std::move(items));
  }
  if (name == "join") {
    ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
    const Value* separator = args.Get(0, "d");
    const Value* attribute = args.Get(1, "attribute");
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0 && separator != nullptr) out += separator->Str();
      out += (attribute != nullptr ? AttributePath(items[i], attribute->Str()) : items[i]).Str();
      RETURN_IF_ERROR(renderer.CheckSize(out.size()));
    }
    return Value::String(std::move(out));
  }
  if (name == "sort") {
    ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
    const Value* reverse = args.Get(0, "reverse");
    const Value* case_sensitive = args.Get(1, "case_sensitive");
    const Value* attribute = args.Get(2, "attribute");
    ASSIGN_OR_RETURN(Value::List sorted, SortedList(std::move(items), reverse != nullptr && reverse->Truthy(),
                                                    case_sensitive != nullptr && case_sensitive->Truthy(),
                                                    attribute != nullptr ? attribute->Str() : std::string()));
    return Value::MakeList(std::move(sorted));
  }
  if (name == "dictsort") {
    if (!operand.is_mapping()) return Bad(where, "needs a dict");
    Value::List pairs;
    for (const auto& [key, value] : operand.dict()) pairs.push_back(Value::MakeList({Value::String(key), value}));
    const Value* case_sensitive = args.Get(0, "case_sensitive");
    const Value* by = args.Get(1, "by");
    const Value* reverse = args.Get(2, "reverse");
    ASSIGN_OR_RETURN(Value::List sorted, SortedList(std::move(pairs), reverse != nullptr && reverse->Truthy(),
                                                    case_sensitive != nullptr && case_sensitive->Truthy(),
                                                    by != nullptr && by->Str() == "value" ? "1" : "0"));
    return Value::MakeList(std::move(sorted));
  }
  if (name == "unique") {
    ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
    Value::List unique;
    for (const Value& item : items) {
      if (std::none_of(unique.begin(), unique.end(), [&](const Value& v) { return v == item; })) unique.push_back(item);
    }
    return Value::MakeList(std::move(unique));
  }
  if (name == "min" || name == "max") {
    ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
    if (items.empty()) return Value();
    Value best = items[0];
    for (const Value& item : items) {
      ASSIGN_OR_RETURN(bool less, name == "min" ? Less(item, best) : Less(best, item));
      if (less) best = item;
    }
    return best;
  }
  if (name == "sum") {
    ASSIGN_OR_RETURN(Value::List items, Iterate(operand));
    bool all_ints = true;
    int64_t total = 0;
    double total_float = 0.0;
    for (const Value& item : items) {
      if (!item.is_number() && item.kind() != Kind::kBool) return Bad(where, "needs numbers");
      if (item.kind() == Kind::kFloat) all_ints = false;
      total += item.kind() == Kind::kInt ? item.int_value() : 0;
      total_float += item.number();
    }
    return all_ints ? Value::Int(total) : Value::Float(total_float);
  }
  if (name == "items") {
    if (operand.is_undefined()) return Value::MakeList({});
    if (!operand.is_mapping()) return Bad(where, StrCatStd("needs a dict, got a ", operand.KindName()));
    return renderer.Call(GetAttribute(Value::MakeDict(operand.dict()), "items"), {});
  }
  if (name == "tojson") {
    ASSIGN_OR_RETURN(int64_t indent, IntArg(where, args.Get(0, "indent"), -1));
    absl::StatusOr<std::string> json = operand.ToJson(static_cast<int>(std::clamp<int64_t>(indent, -1, 64)));
    if (!json.ok()) return json.status();
    RETURN_IF_ERROR(renderer.CheckSize(json->size()));
    return Value::String(*std::move(json));
  }
  if (name == "replace") {
    const Value* from = args.Get(0, "old");
    const Value* to = args.Get(1, "new");
    if (from == nullptr || to == nullptr) return Bad(where, "takes the old and new strings");
    ASSIGN_OR_RETURN(std::string replaced, Replace(renderer, operand.Str(), *from, *to, args.Get(2, "count")));
    return Value::String(std::move(replaced));
  }
  if (name == "indent") {
    ASSIGN_OR_RETURN(int64_t width, IntArg(where, args.Get(0, "width"), 4));
    const Value* first = args.Get(1, "first");
    const Value* blank = args.Get(2, "blank");
    const std::string pad(static_cast<size_t>(std::clamp<int64_t>(width, 0, 256)), ' ');
    const std::string text = operand.Str();
    std::string out;
    size_t start = 0;
    bool first_line = true;
    while (start <= text.size()) {
      const size_t end = text.find('\n', start);
      const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
      const bool indent_line =
          first_line ? (first != nullptr && first->Truthy()) : (!line.empty() || (blank != nullptr && blank->Truthy()));
      if (indent_line) out += pad;
      out += line;
      RETURN_IF_ERROR(renderer.CheckSize(out.size()));
      if (end == std::string::npos) break;
      out.push_back('\n');
      start = end + 1;
      first_line = false;
    }
    return Value::String(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    return SelectOrReject(renderer, name, operand, args);
  }
  if (name == "map") return Map(renderer, operand, args);
  return Bad(where, "is not supported");
}

absl::StatusOr<bool> ApplyTest(Renderer& /*renderer*/, std::string_view name, const Value& operand,
                               const CallArgs& args) {
  const std::string where = StrCatStd("test ", name);
  const Value* other = args.Get(0, "other");
  const auto need_other = [&]() -> absl::Status {
    return other == nullptr ? Bad(where, "takes one argument") : absl::OkStatus();
  };
  if (name == "defined") return !operand.is_undefined();
  if (name == "undefined") return operand.is_undefined();
  if (name == "none") return operand.is_none();
  if (name == "string") return operand.is_string();
  if (name == "number") return operand.is_number();
  if (name == "integer") return operand.kind() == Kind::kInt;
  if (name == "float") return operand.kind() == Kind::kFloat;
  if (name == "boolean") return operand.kind() == Kind::kBool;
  if (name == "true") return operand.kind() == Kind::kBool && operand.bool_value();
  if (name == "false") return operand.kind() == Kind::kBool && !operand.bool_value();
  if (name == "mapping") return operand.kind() == Kind::kDict;
  if (name == "iterable") return operand.is_list() || operand.is_string() || operand.is_mapping();
  if (name == "sequence") return operand.is_list() || operand.is_string() || operand.kind() == Kind::kDict;
  if (name == "callable") return operand.kind() == Kind::kFunction;
  if (name == "odd" || name == "even") {
    if (operand.kind() != Kind::kInt) return Bad(where, StrCatStd("needs an integer, got a ", operand.KindName()));
    return (operand.int_value() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    RETURN_IF_ERROR(need_other());
    if (operand.kind() != Kind::kInt || other->kind() != Kind::kInt || other->int_value() == 0) {
      return Bad(where, "needs non-zero integers");
    }
    return operand.int_value() % other->int_value() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") {
    RETURN_IF_ERROR(need_other());
    return operand == *other;
  }
  if (name == "ne" || name == "!=") {
    RETURN_IF_ERROR(need_other());
    return !(operand == *other);
  }
  if (name == "lt" || name == "lessthan" || name == "<") {
    RETURN_IF_ERROR(need_other());
    return Less(operand, *other);
  }
  if (name == "gt" || name == "greaterthan" || name == ">") {
    RETURN_IF_ERROR(need_other());
    return Less(*other, operand);
  }
  if (name == "le" || name == "<=") {
    RETURN_IF_ERROR(need_other());
    ASSIGN_OR_RETURN(bool greater, Less(*other, operand));
    return !greater;
  }
  if (name == "ge" || name == ">=") {
    RETURN_IF_ERROR(need_other());
    ASSIGN_OR_RETURN(bool less, Less(operand, *other));
    return !less;
  }
  if (name == "in") {
    RETURN_IF_ERROR(need_other());
    return Contains(*other, operand);
  }
  if (name == "lower") return operand.is_string() && Lower(operand.string_value()) == operand.string_value();
  if (name == "upper") return operand.is_string() && Upper(operand.string_value()) == operand.string_value();
  return Bad(where, "is not supported");
}

Value::Dict Globals() {
  Value::Dict globals;
  globals.emplace_back(
      "raise_exception",
      Value::MakeFunction("raise_exception", [](Renderer&, const CallArgs& args) -> absl::StatusOr<Value> {
        const Value* message = args.Get(0, "message");
        return absl::InvalidArgumentError(message != nullptr ? message->Str() : std::string("raise_exception()"));
      }));
  globals.emplace_back(
      "range", Value::MakeFunction("range", [](Renderer& renderer, const CallArgs& args) -> absl::StatusOr<Value> {
        int64_t start = 0;
        int64_t stop = 0;
        int64_t step = 1;
        if (args.positional.empty() || args.positional.size() > 3) return Bad("range()", "takes 1 to 3 integers");
        for (const Value& v : args.positional) {
          if (v.kind() != Kind::kInt) return Bad("range()", StrCatStd("needs integers, got a ", v.KindName()));
        }
        if (args.positional.size() == 1) {
          stop = args.positional[0].int_value();
        } else {
          start = args.positional[0].int_value();
          stop = args.positional[1].int_value();
          if (args.positional.size() == 3) step = args.positional[2].int_value();
        }
        if (step == 0) return Bad("range()", "step must not be zero");
        const double count = std::max(
            0.0, std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step)));
        if (count > static_cast<double>(renderer.limits().max_steps)) {
          return absl::ResourceExhaustedError(
              absl::StrCat("range(): a range of ", count, " items is over the limit of ", renderer.limits().max_steps));
        }
        Value::List items;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.push_back(Value::Int(i));
        return Value::MakeList(std::move(items));
      }));
  globals.emplace_back("namespace",
                       Value::MakeFunction("namespace", [](Renderer&, const CallArgs& args) -> absl::StatusOr<Value> {
                         Value::Dict members;
                         if (!args.positional.empty()) {
                           if (!args.positional[0].is_mapping())
                             return Bad("namespace()", "takes a dict or keyword arguments");
                           members = args.positional[0].dict();
                         }
                         for (const auto& [key, value] : args.keyword) {
                           bool replaced = false;
                           for (auto& [existing, member] : members) {
                             if (existing == key) {
                               member = value;
                               replaced = true;
                             }
                           }
                           if (!replaced) members.emplace_back(key, value);
                         }
                         return Value::MakeNamespace(std::move(members));
                       }));
  globals.emplace_back(
      "strftime_now", Value::MakeFunction("strftime_now", [](Renderer&, const CallArgs& args) -> absl::StatusOr<Value> {
        const Value* format = args.Get(0, "format");
        if (format == nullptr || !format->is_string()) return Bad("strftime_now()", "takes a format string");
        const std::time_t now = std::time(nullptr);
        std::tm utc{};
        gmtime_r(&now, &utc);
        char buffer[256];
        const size_t n = std::strftime(buffer, sizeof(buffer), format->string_value().c_str(), &utc);
        return Value::String(std::string(buffer, n));
      }));
  return globals;
}

}  // namespace adak::jinja
