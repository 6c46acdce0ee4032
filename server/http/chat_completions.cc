#include "server/http/chat_completions.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "base/error_field.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/model.h"

namespace adak::server {
namespace {

using request_fields::Describe;
using request_fields::Find;
using request_fields::GetBool;
using request_fields::GetInt;
using request_fields::Json;

// messages: a non-empty array of objects with a string role; content normalised to a string (or null).
absl::StatusOr<Json> NormalizeMessages(const Json& body) {
  const Json* messages = Find(body, "messages");
  if (messages == nullptr) return InvalidFieldError("messages", "messages is required (a non-empty array)");
  if (!messages->is_array() || messages->empty()) {
    return InvalidFieldError("messages", StrCatStd("messages must be a non-empty array, got ", Describe(*messages)));
  }
  Json out = Json::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& message = (*messages)[i];
    const std::string where = StrCatStd("messages[", i, "]");
    if (!message.is_object()) {
      return InvalidFieldError("messages", StrCatStd(where, " must be an object, got ", Describe(message)));
    }
    const Json* role = Find(message, "role");
    if (role == nullptr || !role->is_string()) {
      return InvalidFieldError("messages", StrCatStd(where, ".role must be a string"));
    }
    Json normalized = message;
    if (const Json* content = Find(message, "content"); content != nullptr && !content->is_string()) {
      if (!content->is_array()) {
        return InvalidFieldError(
            "messages",
            StrCatStd(where, ".content must be a string, null or an array of parts, got ", Describe(*content)));
      }
      std::string text;
      for (size_t p = 0; p < content->size(); ++p) {
        const Json& part = (*content)[p];
        const Json* type = part.is_object() ? Find(part, "type") : nullptr;
        const Json* part_text = part.is_object() ? Find(part, "text") : nullptr;
        if (type == nullptr || *type != "text" || part_text == nullptr || !part_text->is_string()) {
          return InvalidFieldError("messages", StrCatStd(where, ".content[", p,
                                                         "]: only {\"type\": \"text\", \"text\": ...} parts are "
                                                         "supported (this model reads text only), got ",
                                                         Describe(part)));
        }
        if (!text.empty()) text += "\n";
        text += part_text->get<std::string>();
      }
      normalized["content"] = text;
    }
    out.push_back(std::move(normalized));
  }
  return out;
}

absl::Status ParseChatOutput(const Json& body, CompletionCall* call) {
  RETURN_IF_ERROR(request_fields::ParseStream(body, &call->stream));
  RETURN_IF_ERROR(GetBool(body, "logprobs", "logprobs", &call->logprobs));
  std::optional<int64_t> top;
  RETURN_IF_ERROR(GetInt(body, "top_logprobs", "top_logprobs", &top));
  if (top.has_value() && !call->logprobs) {
    return InvalidFieldError("top_logprobs", "top_logprobs needs logprobs: true");
  }
  if (call->logprobs) call->api.logprobs = top.value_or(0);
  return absl::OkStatus();
}

absl::Status CheckUnsupported(const Json& body) {
  if (const Json* format = Find(body, "response_format"); format != nullptr) {
    const Json* type = format->is_object() ? Find(*format, "type") : nullptr;
    if (type == nullptr || *type != "text") {
      return InvalidFieldError(
          "response_format",
          StrCatStd("response_format: only {\"type\": \"text\"} is supported, got ", Describe(*format)));
    }
  }
  if (const Json* choice = Find(body, "tool_choice"); choice != nullptr && !(*choice == "none" || *choice == "auto")) {
    return InvalidFieldError(
        "tool_choice", StrCatStd("tool_choice: only \"none\" or \"auto\" (the server does not parse tool calls), got ",
                                 Describe(*choice)));
  }
  bool continue_final = false;
  RETURN_IF_ERROR(GetBool(body, "continue_final_message", "continue_final_message", &continue_final));
  if (continue_final) return InvalidFieldError("continue_final_message", "continue_final_message is not supported");
  if (const Json* tools = Find(body, "tools"); tools != nullptr && !tools->is_array()) {
    return InvalidFieldError("tools", StrCatStd("tools must be an array, got ", Describe(*tools)));
  }
  if (const Json* kwargs = Find(body, "chat_template_kwargs"); kwargs != nullptr && !kwargs->is_object()) {
    return InvalidFieldError("chat_template_kwargs",
                             StrCatStd("chat_template_kwargs must be an object, got ", Describe(*kwargs)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CompletionCall> ParseChatRequest(std::string_view body, const ServiceContext& context) {
  ASSIGN_OR_RETURN(Json json, request_fields::ParseObject(body));
  CompletionCall call;
  call.endpoint = CompletionCall::Endpoint::kChat;
  RETURN_IF_ERROR(request_fields::ParseModel(json, context, &call.api));
  ASSIGN_OR_RETURN(Json messages, NormalizeMessages(json));
  RETURN_IF_ERROR(CheckUnsupported(json));
  RETURN_IF_ERROR(request_fields::ParseSampling(json, &call.api));
  std::optional<int64_t> max_completion_tokens;
  RETURN_IF_ERROR(GetInt(json, "max_completion_tokens", "max_completion_tokens", &max_completion_tokens));
  if (max_completion_tokens.has_value()) call.api.max_tokens = max_completion_tokens;
  RETURN_IF_ERROR(request_fields::ParseStopping(json, &call.api));
  RETURN_IF_ERROR(ParseChatOutput(json, &call));
  bool add_generation_prompt = true;
  RETURN_IF_ERROR(GetBool(json, "add_generation_prompt", "add_generation_prompt", &add_generation_prompt));
  RETURN_IF_ERROR(request_fields::ParseAdak(json, &call.api));

  const absl::StatusOr<tokenizer::ChatTemplate>& chat_template = context.model->chat_template;
  if (!chat_template.ok()) {
    return InvalidFieldError(
        "messages", StrCatStd("this model cannot serve chat requests: ", ToStd(chat_template.status().message())));
  }
  const Json* tools = Find(json, "tools");
  const Json* kwargs = Find(json, "chat_template_kwargs");
  // A prompt longer than the context times the most bytes one token covers cannot be served: rendering
  // stops there instead of building it.
  const auto per_token =
      static_cast<int64_t>(context.model->tokenizer->max_input_bytes_per_token().value_or(size_t{1} << 16));
  const int64_t max_context = LimitsFor(context).max_context;
  jinja::RenderLimits limits;
  limits.max_output_bytes = static_cast<size_t>(
      std::min<int64_t>((max_context + 1) * per_token, static_cast<int64_t>(limits.max_output_bytes)));
  absl::StatusOr<std::string> prompt =
      chat_template->Apply(messages, add_generation_prompt, tools != nullptr ? *tools : Json(),
                           kwargs != nullptr ? *kwargs : Json(), limits);
  if (absl::IsResourceExhausted(prompt.status())) {
    return InvalidFieldError(
        "messages", StrCatStd("messages: rendering them stopped at a limit (", ToStd(prompt.status().message()),
                              "); the model's context of ", max_context, " tokens holds at most ",
                              limits.max_output_bytes, " bytes of prompt"));
  }
  if (!prompt.ok()) return InvalidFieldError("messages", StrCatStd("messages: ", ToStd(prompt.status().message())));
  ApiPrompt rendered;
  rendered.text = *std::move(prompt);
  call.prompts.push_back(std::move(rendered));
  call.api.add_special_tokens = false;
  RETURN_IF_ERROR(ParseChoiceCounts(json, &call));
  return call;
}

}  // namespace adak::server
