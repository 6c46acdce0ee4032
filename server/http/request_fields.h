// The JSON fields the OpenAI-compatible endpoints share (/v1/completions and /v1/chat/completions): typed
// getters that refuse a wrong type naming the field, and the parsers of the field groups both endpoints
// accept (model; sampling incl. logit_bias; stop conditions; our "adak" extension object). Refusals are
// InvalidArgument naming the field as the body spells it and carrying it (base/error_field.h).
//
// Stateless functions; safe from any thread.
#ifndef ADAK_SERVER_HTTP_REQUEST_FIELDS_H_
#define ADAK_SERVER_HTTP_REQUEST_FIELDS_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/admission.h"
#include "server/service_context.h"

namespace adak::server {

// The deepest nesting of JSON arrays and objects a request body may have (the deepest valid completion
// nests 3: "adak" -> "routing" -> values; a chat request with tools nests deeper: messages -> message ->
// tool_calls -> call -> function -> arguments -> values, and tool parameter schemas nest further).
// Deeper bodies are refused before they are parsed: a deeply nested value would otherwise exhaust the
// stack of whatever walks it recursively.
inline constexpr int kMaxJsonDepth = 32;

// OK when no array or object in `body` nests deeper than `max_depth` levels; InvalidArgument naming the
// limit otherwise. Runs in one pass over the bytes (strings skipped) without parsing; malformed JSON is not
// detected here.
[[nodiscard]] absl::Status CheckJsonDepth(std::string_view body, int max_depth);

namespace request_fields {

using Json = nlohmann::ordered_json;

// The body as a JSON object (member order kept). Errors: InvalidArgument without a field when it nests
// deeper than kMaxJsonDepth, is not JSON, or is not an object.
[[nodiscard]] absl::StatusOr<Json> ParseObject(std::string_view body);

// A short rendering of a value for error messages (at most 60 characters).
[[nodiscard]] std::string Describe(const Json& value);
// The value of `key` in `object`, or nullptr when it is absent or null.
[[nodiscard]] const Json* Find(const Json& object, const char* key);

// Each getter leaves `out` untouched when the key is absent or null. `field` is the key as the API spells
// it from the top of the body (e.g. "adak.routing.top_k"); refusals name it and carry it.
[[nodiscard]] absl::Status GetInt(const Json& object, const char* key, std::string_view field,
                                  std::optional<int64_t>* out);
[[nodiscard]] absl::Status GetNumber(const Json& object, const char* key, std::string_view field,
                                     std::optional<double>* out);
[[nodiscard]] absl::Status GetBool(const Json& object, const char* key, std::string_view field, bool* out);
// `array`'s elements as token ids (int32). REQUIRES: array.is_array().
[[nodiscard]] absl::Status GetTokenIds(const Json& array, std::string_view field, std::vector<int32_t>* out);
// A non-empty array of integers.
[[nodiscard]] bool IsTokenIdArray(const Json& value);
// Refuses every key of `object` outside `known` (`known_list` is how the message lists them).
[[nodiscard]] absl::Status CheckKnownKeys(const Json& object, std::string_view prefix,
                                          std::initializer_list<const char*> known, std::string_view known_list);

// `model`: absent, empty, the served model's name, or "<name>:<profile>" naming a loaded allocator profile (as
// /v1/models lists them; sets api->routing.model_profile). NotFound carrying `model` otherwise.
[[nodiscard]] absl::Status ParseModel(const Json& body, const ServiceContext& context, ApiRequest* api);
// max_tokens (or `max_tokens_key`), temperature, top_p, top_k (-1 = off), min_p, repetition_penalty,
// presence_penalty, frequency_penalty, seed, logit_bias ({"token id": bias}). Only the JSON types here; the
// ranges are admission's (server/admission.h).
[[nodiscard]] absl::Status ParseSampling(const Json& body, ApiRequest* api);
// stream (a boolean) and stream_options (an object; its members are not read).
[[nodiscard]] absl::Status ParseStream(const Json& body, bool* stream);
// stop (a string or an array of strings), stop_token_ids, ignore_eos.
[[nodiscard]] absl::Status ParseStopping(const Json& body, ApiRequest* api);
// Our extension object "adak": routing {policy, top_k, top_p, top_p_weighting, threshold, min_k, max_k, profile},
// return_routing_stats, timeout_seconds; unknown members are refused.
[[nodiscard]] absl::Status ParseAdak(const Json& body, ApiRequest* api);

}  // namespace request_fields
}  // namespace adak::server

#endif  // ADAK_SERVER_HTTP_REQUEST_FIELDS_H_
