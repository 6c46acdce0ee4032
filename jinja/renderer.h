// Walks a parsed template (jinja/ast.h) over a context and writes the output, with Jinja2's semantics as
// Hugging Face's apply_chat_template runs them (immutable sandbox: only namespaces are mutable; loop
// bodies and macros get their own scope; `loop.*`; undefined prints as "" and fails on attribute access).
//
// Every render is bounded: output bytes, evaluation steps and macro call depth (RenderLimits), so a
// template or a request cannot make it run or grow without end.
//
// Not thread-safe: one Renderer per render.
#ifndef ADAK_JINJA_RENDERER_H_
#define ADAK_JINJA_RENDERER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/strings.h"
#include "jinja/ast.h"
#include "jinja/value.h"

namespace adak::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{8} << 20;  // also the longest string any expression may build
  int64_t max_steps = 5'000'000;              // statements run + expressions evaluated
  int max_call_depth = 64;                    // nested macro calls
  uint32_t max_value_depth = 64;              // lists and dicts nested in a value the template builds
};

class Renderer {
 public:
  Renderer(std::string_view source, const RenderLimits& limits);

  // Renders `body` with the variables of `context` (a dict) over the globals (range, namespace,
  // raise_exception, strftime_now). Errors: InvalidArgument "line L: ..." for raise_exception (its
  // message), an undefined attribute or a type error; ResourceExhausted "line L: ..." naming the limit when
  // one of RenderLimits is reached.
  [[nodiscard]] absl::StatusOr<std::string> Render(const Body& body, const Value& context);

  // For builtins: calls a callable value.
  [[nodiscard]] absl::StatusOr<Value> Call(const Value& callee, const CallArgs& args);
  // For builtins: OK when a string of `bytes` may be built; ResourceExhausted naming the limit otherwise.
  [[nodiscard]] absl::Status CheckSize(size_t bytes) const;
  [[nodiscard]] const RenderLimits& limits() const { return limits_; }

 private:
  struct Frame {
    StringMap<Value> vars;
    Frame* parent = nullptr;
  };
  enum class Flow { kNormal, kBreak, kContinue };

  absl::StatusOr<Flow> Exec(const Body& body, Frame& frame, std::string& out);
  absl::StatusOr<Flow> ExecOne(const Stmt& stmt, Frame& frame, std::string& out);
  absl::StatusOr<Flow> ExecFor(const Stmt& stmt, Frame& frame, std::string& out);
  absl::Status ExecSet(const Stmt& stmt, Frame& frame, Value value);
  absl::StatusOr<Value> Eval(const Expr& expr, Frame& frame);
  absl::StatusOr<Value> EvalBinary(const Expr& expr, Frame& frame);
  absl::StatusOr<CallArgs> EvalArgs(const std::vector<Arg>& args, Frame& frame);
  Value MakeMacro(const Stmt& stmt);
  static Value Lookup(const Frame& frame, std::string_view name);

  absl::Status Step();
  absl::Status Append(std::string& out, std::string_view text) const;
  absl::Status CheckDepth(const Value& value) const;
  // Prefixes an error with the line of `offset` (once).
  absl::Status At(size_t offset, const absl::Status& status) const;

  std::string_view source_;
  RenderLimits limits_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  Frame* root_ = nullptr;
};

}  // namespace adak::jinja

#endif  // ADAK_JINJA_RENDERER_H_
