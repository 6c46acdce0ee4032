// A model's chat template: the Jinja `chat_template` of tokenizer_config.json (or the chat_template.jinja
// file newer transformers versions write beside it), rendered as transformers' apply_chat_template does:
// the variables messages, add_generation_prompt, bos_token, eos_token, tools (when given) and any extra
// keyword arguments (vLLM's chat_template_kwargs, e.g. enable_thinking), with jinja/ (trim_blocks,
// lstrip_blocks, loopcontrols, immutable sandbox). The rendered text already holds the special tokens the
// template writes (bos_token), so it is tokenized without adding any.
//
// Immutable after loading; safe to share across threads.
#ifndef ADAK_TOKENIZER_CHAT_TEMPLATE_H_
#define ADAK_TOKENIZER_CHAT_TEMPLATE_H_

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "jinja/renderer.h"
#include "jinja/template.h"
#include "nlohmann/json.hpp"

namespace adak::tokenizer {

class ChatTemplate {
 public:
  // From a model directory: chat_template.jinja when present, else tokenizer_config.json's chat_template
  // (a string, or a list of {"name", "template"} of which "default" is taken), with its bos_token and
  // eos_token strings ("" when absent). Errors: NotFound "the model has no chat template ..." when there
  // is none; InvalidArgument naming the file and line when the template does not parse, or the config
  // field has the wrong type.
  [[nodiscard]] static absl::StatusOr<ChatTemplate> FromModelDir(const std::filesystem::path& dir);

  // From template source. Errors: InvalidArgument "chat template: line L: ..." when it does not parse.
  [[nodiscard]] static absl::StatusOr<ChatTemplate> FromSource(std::string_view source, std::string bos_token,
                                                               std::string eos_token);

  // Renders `messages` (a JSON array). `tools` is passed when not null; the members of `extra` (an object,
  // or null) become variables too, after the standard ones (so they may not override messages, tools,
  // add_generation_prompt, bos_token or eos_token). Errors: InvalidArgument "chat template: line L: ..."
  // (e.g. the template's own raise_exception message, such as roles not alternating); ResourceExhausted
  // "chat template: ..." when `limits` stop the render.
  [[nodiscard]] absl::StatusOr<std::string> Apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                                  const nlohmann::ordered_json& tools,
                                                  const nlohmann::ordered_json& extra,
                                                  const jinja::RenderLimits& limits = {}) const;

  [[nodiscard]] const std::string& source() const { return template_.source(); }

 private:
  ChatTemplate(jinja::Template t, std::string bos_token, std::string eos_token)
      : template_(std::move(t)), bos_token_(std::move(bos_token)), eos_token_(std::move(eos_token)) {}

  jinja::Template template_;
  std::string bos_token_;
  std::string eos_token_;
};

}  // namespace adak::tokenizer

#endif  // ADAK_TOKENIZER_CHAT_TEMPLATE_H_
