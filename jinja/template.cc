#include "jinja/template.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "base/status_macros.h"
#include "jinja/lexer.h"
#include "jinja/parser.h"

namespace adak::jinja {

absl::StatusOr<Template> Template::Parse(std::string_view source) {
  auto program = std::make_shared<Program>();
  program->source = std::string(source);
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(program->source));
  // Tokens point into program->source only through offsets; the body owns its text.
  ASSIGN_OR_RETURN(program->body, jinja::Parse(program->source, tokens));
  return Template(std::move(program));
}

absl::StatusOr<std::string> Template::Render(const Value& context, const RenderLimits& limits) const {
  Renderer renderer(program_->source, limits);
  return renderer.Render(program_->body, context);
}

}  // namespace adak::jinja
