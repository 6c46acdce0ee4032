// The filters, tests, methods and global functions templates call, with Python/Jinja2 semantics:
//   filters  length count trim upper lower title capitalize string int float abs default d first last
//            join list reverse sort unique items dictsort tojson replace indent selectattr rejectattr map
//            min max sum safe escape e wordcount
//   tests    defined undefined none string number integer float boolean true false mapping iterable
//            sequence callable odd even divisibleby eq equalto == ne != lt gt le ge in lower upper sameas
//   methods  str: strip lstrip rstrip split rsplit startswith endswith upper lower title capitalize
//            replace find count join; dict: get items keys values (lists have no methods: templates run
//            in an immutable sandbox)
//   globals  range namespace raise_exception strftime_now
//
// Stateless functions; errors are InvalidArgument naming the filter/test/method and what was wrong (the
// renderer adds the line).
#ifndef ADAK_JINJA_BUILTINS_H_
#define ADAK_JINJA_BUILTINS_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "jinja/renderer.h"
#include "jinja/value.h"

namespace adak::jinja {

// `operand | name(args)`.
[[nodiscard]] absl::StatusOr<Value> ApplyFilter(Renderer& renderer, std::string_view name, const Value& operand,
                                                const CallArgs& args);

// `operand is name(args)`.
[[nodiscard]] absl::StatusOr<bool> ApplyTest(Renderer& renderer, std::string_view name, const Value& operand,
                                             const CallArgs& args);

// `object.name`: a bound method of a string or dict, a dict/namespace member, or undefined.
[[nodiscard]] Value GetAttribute(const Value& object, std::string_view name);

// `object[index]` (lists and strings by int, negative from the end; dicts by key): undefined when absent.
[[nodiscard]] Value GetItem(const Value& object, const Value& index);

// The global names every render sees.
[[nodiscard]] Value::Dict Globals();

// Python's `in`: substring, list membership or dict key. Errors: InvalidArgument for other containers.
[[nodiscard]] absl::StatusOr<bool> Contains(const Value& container, const Value& item);

// Python's <, for sorting and comparisons: numbers with numbers, strings with strings (bytewise), lists
// lexicographically. Errors: InvalidArgument for other pairs.
[[nodiscard]] absl::StatusOr<bool> Less(const Value& a, const Value& b);

// A list of the items of an iterable (list; string: its characters; dict: its keys). Errors:
// InvalidArgument naming the kind for anything else (undefined iterates as empty).
[[nodiscard]] absl::StatusOr<Value::List> Iterate(const Value& value);

// Number of characters (code points) of a UTF-8 string.
[[nodiscard]] int64_t CharCount(std::string_view text);

}  // namespace adak::jinja

#endif  // ADAK_JINJA_BUILTINS_H_
