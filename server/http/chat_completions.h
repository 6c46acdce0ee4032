// The OpenAI /v1/chat/completions request of the HTTP gateway: the body -> CompletionCall mapping, with the
// prompt rendered from `messages` by the model's chat template (tokenizer/chat_template.h; tokenized
// without adding special tokens: the template writes them).
//
// Request fields: model, messages (each {role, content, ...}; content a string, null, or an array of
// {"type": "text", "text"} parts, joined with "\n" as vLLM does; every other member, e.g. tool_calls or
// reasoning_content, reaches the template as given), max_completion_tokens (or max_tokens), temperature,
// top_p, n, stream, stream_options, stop, seed, logprobs (true/false) with top_logprobs (0..20),
// presence_penalty, frequency_penalty, logit_bias, response_format ({"type": "text"} only), tools (passed to
// the template), tool_choice ("none" or "auto"; the server does not parse tool calls out of the output),
// user; vLLM's top_k, min_p, repetition_penalty, ignore_eos, stop_token_ids, chat_template_kwargs (extra
// template variables, e.g. {"enable_thinking": false}), add_generation_prompt (default true); and "adak" as
// for completions.
//
// Stateless; safe from any thread.
#ifndef ADAK_SERVER_HTTP_CHAT_COMPLETIONS_H_
#define ADAK_SERVER_HTTP_CHAT_COMPLETIONS_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "server/http/completions.h"
#include "server/service_context.h"

namespace adak::server {

// Errors: as ParseCompletionRequest, and InvalidArgument carrying `messages` when they are malformed or the
// template refuses them (its raise_exception message, e.g. roles not alternating) or the model has no
// usable chat template (the message says why).
[[nodiscard]] absl::StatusOr<CompletionCall> ParseChatRequest(std::string_view body, const ServiceContext& context);

}  // namespace adak::server

#endif  // ADAK_SERVER_HTTP_CHAT_COMPLETIONS_H_
