#include "tokenizer/chat_template.h"

#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "jinja/value.h"

namespace adak::tokenizer {
namespace {

using OrderedJson = nlohmann::ordered_json;

absl::StatusOr<std::string> ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCatStd("cannot open ", path.string()));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// bos_token / eos_token as a string or {"content": ...}; "" when absent or null.
absl::StatusOr<std::string> TokenText(const OrderedJson& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return absl::InvalidArgumentError(
      StrCatStd("tokenizer_config.json: ", key, ": expected a string or an object with \"content\""));
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::FromSource(std::string_view source, std::string bos_token,
                                                      std::string eos_token) {
  absl::StatusOr<jinja::Template> parsed = jinja::Template::Parse(source);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(StrCatStd("chat template: ", ToStd(parsed.status().message())));
  }
  return ChatTemplate(*std::move(parsed), std::move(bos_token), std::move(eos_token));
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromModelDir(const std::filesystem::path& dir) {
  OrderedJson config = OrderedJson::object();
  if (std::filesystem::exists(dir / "tokenizer_config.json")) {
    ASSIGN_OR_RETURN(std::string text, ReadText(dir / "tokenizer_config.json"));
    try {
      config = OrderedJson::parse(text);
    } catch (const OrderedJson::exception& e) {
      return absl::InvalidArgumentError(StrCatStd("tokenizer_config.json: not valid JSON: ", e.what()));
    }
    if (!config.is_object()) return absl::InvalidArgumentError("tokenizer_config.json: expected an object");
  }
  ASSIGN_OR_RETURN(std::string bos, TokenText(config, "bos_token"));
  ASSIGN_OR_RETURN(std::string eos, TokenText(config, "eos_token"));
  std::string source;
  if (std::filesystem::exists(dir / "chat_template.jinja")) {
    ASSIGN_OR_RETURN(source, ReadText(dir / "chat_template.jinja"));
  } else if (auto it = config.find("chat_template"); it != config.end() && !it->is_null()) {
    if (it->is_string()) {
      source = it->get<std::string>();
    } else if (it->is_array()) {
      for (const OrderedJson& named : *it) {
        if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
            named["template"].is_string()) {
          source = named["template"].get<std::string>();
        }
      }
      if (source.empty()) {
        return absl::InvalidArgumentError(
            "tokenizer_config.json: chat_template: a list of named templates without a \"default\" one");
      }
    } else {
      return absl::InvalidArgumentError("tokenizer_config.json: chat_template: expected a string or a list");
    }
  } else {
    return absl::NotFoundError(
        "the model has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja); use "
        "/v1/completions with a prompt");
  }
  return FromSource(source, std::move(bos), std::move(eos));
}

absl::StatusOr<std::string> ChatTemplate::Apply(const OrderedJson& messages, bool add_generation_prompt,
                                                const OrderedJson& tools, const OrderedJson& extra,
                                                const jinja::RenderLimits& limits) const {
  OrderedJson context = OrderedJson::object();
  context["messages"] = messages;
  if (!tools.is_null()) context["tools"] = tools;
  context["add_generation_prompt"] = add_generation_prompt;
  context["bos_token"] = bos_token_;
  context["eos_token"] = eos_token_;
  if (extra.is_object()) {
    for (const auto& [key, value] : extra.items()) {
      if (!context.contains(key)) context[key] = value;
    }
  }
  absl::StatusOr<std::string> text = template_.Render(jinja::Value::FromJson(context), limits);
  if (!text.ok())
    return absl::Status(text.status().code(), StrCatStd("chat template: ", ToStd(text.status().message())));
  return text;
}

}  // namespace adak::tokenizer
