#include "server/http/request_fields.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "base/error_field.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace adak::server {

absl::Status CheckJsonDepth(std::string_view body, int max_depth) {
  // Strings are skipped (brackets inside them do not nest); malformed JSON is left to the parser.
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return absl::InvalidArgumentError(StrCatStd("the request body nests JSON arrays and objects more than ",
                                                    max_depth, " levels deep (the limit is ", max_depth,
                                                    "; at byte offset ", i, ")"));
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return absl::OkStatus();
}

namespace request_fields {

absl::StatusOr<Json> ParseObject(std::string_view body) {
  RETURN_IF_ERROR(CheckJsonDepth(body, kMaxJsonDepth));
  Json json = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError("the request body is not valid JSON");
  if (!json.is_object()) {
    return absl::InvalidArgumentError(StrCatStd("the request body must be a JSON object, got ", Describe(json)));
  }
  return json;
}

std::string Describe(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// The value of `key` in `object`, or null when it is absent or null.
const Json* Find(const Json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// Each getter leaves `out` untouched when the key is absent or null. `field` is the key as the API spells
// it from the top of the body (e.g. "adak.routing.top_k"); refusals name it and carry it.
absl::Status GetInt(const Json& object, const char* key, std::string_view field, std::optional<int64_t>* out) {
  const Json* value = Find(object, key);
  if (value == nullptr) return absl::OkStatus();
  if (value->is_number_unsigned()) {
    const uint64_t number = value->get<uint64_t>();
    if (number > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidFieldError(field, StrCatStd(field, " is out of range, got ", Describe(*value)));
    }
    *out = static_cast<int64_t>(number);
    return absl::OkStatus();
  }
  if (value->is_number_integer()) {
    *out = value->get<int64_t>();
    return absl::OkStatus();
  }
  if (value->is_number_float()) {
    const double number = value->get<double>();
    if (std::isfinite(number) && number == std::floor(number) && std::fabs(number) < 9.0e15) {
      *out = static_cast<int64_t>(number);
      return absl::OkStatus();
    }
  }
  return InvalidFieldError(field, StrCatStd(field, " must be an integer, got ", Describe(*value)));
}

absl::Status GetNumber(const Json& object, const char* key, std::string_view field, std::optional<double>* out) {
  const Json* value = Find(object, key);
  if (value == nullptr) return absl::OkStatus();
  if (!value->is_number()) {
    return InvalidFieldError(field, StrCatStd(field, " must be a number, got ", Describe(*value)));
  }
  *out = value->get<double>();
  return absl::OkStatus();
}

absl::Status GetBool(const Json& object, const char* key, std::string_view field, bool* out) {
  const Json* value = Find(object, key);
  if (value == nullptr) return absl::OkStatus();
  if (!value->is_boolean()) {
    return InvalidFieldError(field, StrCatStd(field, " must be true or false, got ", Describe(*value)));
  }
  *out = value->get<bool>();
  return absl::OkStatus();
}

absl::Status GetTokenIds(const Json& array, std::string_view field, std::vector<int32_t>* out) {
  out->clear();
  out->reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const Json& value = array[i];
    if (!value.is_number_integer()) {
      return InvalidFieldError(
          field, StrCatStd(field, ": token ids must be integers, got ", Describe(value), " at index ", i));
    }
    const int64_t id = value.is_number_unsigned() && value.get<uint64_t>() > uint64_t{1} << 62
                           ? std::numeric_limits<int64_t>::max()
                           : value.get<int64_t>();
    if (id < std::numeric_limits<int32_t>::min() || id > std::numeric_limits<int32_t>::max()) {
      return InvalidFieldError(field,
                               StrCatStd(field, ": token id ", Describe(value), " at index ", i, " is out of range"));
    }
    out->push_back(static_cast<int32_t>(id));
  }
  return absl::OkStatus();
}

bool IsTokenIdArray(const Json& value) {
  if (!value.is_array() || value.empty()) return false;
  for (const Json& element : value) {
    if (!element.is_number_integer()) return false;
  }
  return true;
}

// Refuses every key of `object` outside `known` (a comma-separated list, as the message shows it).
absl::Status CheckKnownKeys(const Json& object, std::string_view prefix, std::initializer_list<const char*> known,
                            std::string_view known_list) {
  for (auto field = object.begin(); field != object.end(); ++field) {
    if (std::none_of(known.begin(), known.end(), [&](const char* key) { return field.key() == key; })) {
      const std::string name = StrCatStd(prefix, field.key());
      return InvalidFieldError(name, StrCatStd(name, " is not a known field (known: ", known_list, ")"));
    }
  }
  return absl::OkStatus();
}

namespace {

// ", and '<model>:<profile>' for its allocator profiles: a, b" or "".
std::string ProfileModelList(const ServiceContext& context) {
  if (context.routing_weights == nullptr || context.routing_weights->allocators.empty()) return "";
  return StrCatStd(" and '", context.model_name,
                   ":<profile>' for its allocator profiles: ", context.routing_weights->ProfileNames());
}

}  // namespace

// `model`: absent, empty, the served model's name, or "<name>:<profile>" for a loaded allocator profile.
absl::Status ParseModel(const Json& body, const ServiceContext& context, ApiRequest* api) {
  const Json* model = Find(body, "model");
  if (model == nullptr) return absl::OkStatus();
  if (!model->is_string()) {
    return InvalidFieldError("model", StrCatStd("model must be a string, got ", Describe(*model)));
  }
  const std::string name = model->get<std::string>();
  if (name.empty() || name == context.model_name) return absl::OkStatus();
  if (name.starts_with(context.model_name + ":")) {
    const std::string profile = name.substr(context.model_name.size() + 1);
    if (context.routing_weights != nullptr && context.routing_weights->FindProfile(profile) >= 0) {
      api->routing.model_profile = profile;
      return absl::OkStatus();
    }
  }
  return WithErrorField(
      absl::NotFoundError(StrCatStd("model: '", name.substr(0, 128), "' is not served here (this server serves '",
                                    context.model_name, "'", ProfileModelList(context), ")")),
      "model");
}

// Length and sampling: max_tokens, temperature, top_p, top_k (-1 = off), min_p,
// repetition_penalty, presence_penalty, frequency_penalty, seed. Only the JSON types here; the ranges are
// admission's (server/admission.h).
absl::Status ParseSampling(const Json& body, ApiRequest* api) {
  RETURN_IF_ERROR(GetInt(body, "max_tokens", "max_tokens", &api->max_tokens));
  RETURN_IF_ERROR(GetNumber(body, "temperature", "temperature", &api->temperature));
  RETURN_IF_ERROR(GetNumber(body, "top_p", "top_p", &api->top_p));
  RETURN_IF_ERROR(GetInt(body, "top_k", "top_k", &api->top_k));
  if (api->top_k.has_value() && *api->top_k == -1) api->top_k = 0;  // vLLM's "off"
  RETURN_IF_ERROR(GetNumber(body, "min_p", "min_p", &api->min_p));
  RETURN_IF_ERROR(GetNumber(body, "repetition_penalty", "repetition_penalty", &api->repetition_penalty));
  RETURN_IF_ERROR(GetNumber(body, "presence_penalty", "presence_penalty", &api->presence_penalty));
  RETURN_IF_ERROR(GetNumber(body, "frequency_penalty", "frequency_penalty", &api->frequency_penalty));
  if (const Json* bias = Find(body, "logit_bias"); bias != nullptr) {
    if (!bias->is_object()) {
      return InvalidFieldError(
          "logit_bias", StrCatStd("logit_bias must be an object mapping token ids to biases, got ", Describe(*bias)));
    }
    for (const auto& [key, value] : bias->items()) {
      int64_t id = 0;
      if (!absl::SimpleAtoi(key, &id)) {
        return InvalidFieldError(
            "logit_bias", StrCatStd("logit_bias: keys must be token ids (integers as strings), got '", key, "'"));
      }
      if (!value.is_number()) {
        return InvalidFieldError(
            "logit_bias", StrCatStd("logit_bias: the bias of token ", key, " must be a number, got ", Describe(value)));
      }
      api->logit_bias.emplace_back(id, value.get<double>());
    }
  }
  std::optional<int64_t> seed;
  RETURN_IF_ERROR(GetInt(body, "seed", "seed", &seed));
  if (seed.has_value()) {
    if (*seed < 0) return InvalidFieldError("seed", StrCatStd("seed must be >= 0, got ", *seed));
    api->seed = static_cast<uint64_t>(*seed);
  }
  return absl::OkStatus();
}

absl::Status ParseStream(const Json& body, bool* stream) {
  RETURN_IF_ERROR(GetBool(body, "stream", "stream", stream));
  const Json* stream_options = Find(body, "stream_options");
  if (stream_options != nullptr && !stream_options->is_object()) {
    return InvalidFieldError("stream_options",
                             StrCatStd("stream_options must be an object, got ", Describe(*stream_options)));
  }
  return absl::OkStatus();
}

// Stop conditions: stop (a string or an array of strings), stop_token_ids, ignore_eos.
absl::Status ParseStopping(const Json& body, ApiRequest* api) {
  if (const Json* stop = Find(body, "stop"); stop != nullptr) {
    if (stop->is_string()) {
      api->stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const Json& value : *stop) {
        if (!value.is_string()) {
          return InvalidFieldError("stop", StrCatStd("stop must be a string or an array of strings, got ",
                                                     Describe(value), " in the array"));
        }
        api->stop.push_back(value.get<std::string>());
      }
    } else {
      return InvalidFieldError("stop",
                               StrCatStd("stop must be a string or an array of strings, got ", Describe(*stop)));
    }
  }
  if (const Json* stop_ids = Find(body, "stop_token_ids"); stop_ids != nullptr) {
    if (!stop_ids->is_array()) {
      return InvalidFieldError("stop_token_ids",
                               StrCatStd("stop_token_ids must be an array of token ids, got ", Describe(*stop_ids)));
    }
    RETURN_IF_ERROR(GetTokenIds(*stop_ids, "stop_token_ids", &api->stop_token_ids));
  }
  return GetBool(body, "ignore_eos", "ignore_eos", &api->ignore_eos);
}

namespace {

// adak.routing.<key> as a string into `out` when present; otherwise-typed values are refused naming the field
// and `what` it should be.
absl::Status GetRoutingString(const Json& routing, const char* key, std::string_view what,
                              std::optional<std::string>* out) {
  const Json* value = Find(routing, key);
  if (value == nullptr) return absl::OkStatus();
  const std::string field = StrCatStd("adak.routing.", key);
  if (!value->is_string()) {
    return InvalidFieldError(field, StrCatStd(field, " must be a string (", what, "), got ", Describe(*value)));
  }
  *out = value->get<std::string>();
  return absl::OkStatus();
}

// adak.routing: policy, top_k, top_p, top_p_weighting, threshold, min_k, max_k, profile.
absl::Status ParseRouting(const Json& adak, ApiRequest* api) {
  const Json* routing = Find(adak, "routing");
  if (routing == nullptr) return absl::OkStatus();
  if (!routing->is_object()) {
    return InvalidFieldError("adak.routing", StrCatStd("adak.routing must be an object, got ", Describe(*routing)));
  }
  RETURN_IF_ERROR(
      CheckKnownKeys(*routing, "adak.routing.",
                     {"policy", "top_k", "top_p", "top_p_weighting", "threshold", "min_k", "max_k", "profile"},
                     "policy, top_k, top_p, top_p_weighting, threshold, min_k, max_k, profile"));
  std::optional<std::string> policy;
  RETURN_IF_ERROR(GetRoutingString(*routing, "policy", "topk, adak, null, topp, threshold", &policy));
  if (policy.has_value()) api->routing.policy = *std::move(policy);
  RETURN_IF_ERROR(GetInt(*routing, "top_k", "adak.routing.top_k", &api->routing.top_k));
  RETURN_IF_ERROR(GetNumber(*routing, "top_p", "adak.routing.top_p", &api->routing.top_p));
  RETURN_IF_ERROR(GetRoutingString(*routing, "top_p_weighting", "model, raw", &api->routing.top_p_weighting));
  RETURN_IF_ERROR(GetNumber(*routing, "threshold", "adak.routing.threshold", &api->routing.threshold));
  RETURN_IF_ERROR(GetInt(*routing, "min_k", "adak.routing.min_k", &api->routing.min_k));
  RETURN_IF_ERROR(GetRoutingString(*routing, "profile", "an allocator profile name", &api->routing.profile));
  return GetInt(*routing, "max_k", "adak.routing.max_k", &api->routing.max_k);
}

}  // namespace

// Our extension object "adak": routing, return_routing_stats, timeout_seconds.
absl::Status ParseAdak(const Json& body, ApiRequest* api) {
  const Json* adak = Find(body, "adak");
  if (adak == nullptr) return absl::OkStatus();
  if (!adak->is_object()) return InvalidFieldError("adak", StrCatStd("adak must be an object, got ", Describe(*adak)));
  RETURN_IF_ERROR(CheckKnownKeys(*adak, "adak.", {"routing", "return_routing_stats", "timeout_seconds"},
                                 "routing, return_routing_stats, timeout_seconds"));
  RETURN_IF_ERROR(GetBool(*adak, "return_routing_stats", "adak.return_routing_stats", &api->return_routing_stats));
  std::optional<double> timeout;
  RETURN_IF_ERROR(GetNumber(*adak, "timeout_seconds", "adak.timeout_seconds", &timeout));
  if (timeout.has_value()) {
    if (!(*timeout > 0.0 && *timeout <= 86400.0)) {
      return InvalidFieldError("adak.timeout_seconds",
                               StrCatStd("adak.timeout_seconds must be in (0, 86400], got ", *timeout));
    }
    api->deadline = absl::Now() + absl::Seconds(*timeout);
  }
  return ParseRouting(*adak, api);
}

}  // namespace request_fields
}  // namespace adak::server
