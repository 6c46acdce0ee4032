// A Jinja template as Hugging Face's apply_chat_template renders it (jinja2 ImmutableSandboxedEnvironment
// with trim_blocks, lstrip_blocks and loopcontrols), in the subset real chat templates use: see
// jinja/parser.h for the syntax and jinja/builtins.h for the filters, tests and methods.
//
//   ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::Parse(source));
//   ASSIGN_OR_RETURN(std::string text, t.Render(jinja::Value::FromJson(context)));
//
// Thread safety: a parsed Template is immutable and may be rendered from many threads at once.
#ifndef ADAK_JINJA_TEMPLATE_H_
#define ADAK_JINJA_TEMPLATE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "jinja/ast.h"
#include "jinja/renderer.h"
#include "jinja/value.h"

namespace adak::jinja {

class Template {
 public:
  // Errors: InvalidArgument "line L: ..." for a syntax error or unsupported construct.
  [[nodiscard]] static absl::StatusOr<Template> Parse(std::string_view source);

  // Renders with the variables of `context` (a dict). Errors: InvalidArgument "line L: ..." (see
  // jinja/renderer.h), including the message of a raise_exception() the template calls; ResourceExhausted
  // when a limit is reached.
  [[nodiscard]] absl::StatusOr<std::string> Render(const Value& context, const RenderLimits& limits = {}) const;

  [[nodiscard]] const std::string& source() const { return program_->source; }

 private:
  struct Program {
    std::string source;
    Body body;
  };
  explicit Template(std::shared_ptr<const Program> program) : program_(std::move(program)) {}

  std::shared_ptr<const Program> program_;
};

}  // namespace adak::jinja

#endif  // ADAK_JINJA_TEMPLATE_H_
