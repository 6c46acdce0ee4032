// libFuzzer target: a chat template as a downloaded model brings it (tokenizer_config.json's chat_template or
// chat_template.jinja), parsed and, when it parses, rendered over a fixed conversation with tools under small
// render limits. Any input must come back as a value or an error Status: a crash, a sanitizer report or a
// timeout (an unbounded loop or recursion) is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "jinja/template.h"
#include "nlohmann/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const adak::jinja::Value* context = [] {
    const auto json = nlohmann::ordered_json::parse(R"({
      "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\nthere"},
                   {"role": "assistant", "content": "<think>\nx\n</think>\n\nHello", "tool_calls": [
                     {"type": "function", "function": {"name": "f", "arguments": {"a": [1, 2.5, null, true]}}}]},
                   {"role": "tool", "content": "42"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
      "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})");
    return new adak::jinja::Value(adak::jinja::Value::FromJson(json));
  }();
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<adak::jinja::Template> parsed = adak::jinja::Template::Parse(source);
  if (!parsed.ok()) return 0;
  adak::jinja::RenderLimits limits;
  limits.max_output_bytes = 1 << 16;
  limits.max_steps = 20000;
  limits.max_call_depth = 16;
  (void)parsed->Render(*context, limits);
  return 0;
}
