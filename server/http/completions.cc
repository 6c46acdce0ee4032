#include "server/http/completions.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "base/error_field.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"

namespace adak::server {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

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

// Step 1, `model`: absent, empty or the served model's name.
absl::Status CheckModel(const Json& body, const ServiceContext& context) {
  const Json* model = Find(body, "model");
  if (model == nullptr) return absl::OkStatus();
  if (!model->is_string()) {
    return InvalidFieldError("model", StrCatStd("model must be a string, got ", Describe(*model)));
  }
  const std::string name = model->get<std::string>();
  if (!name.empty() && name != context.model_name) {
    return WithErrorField(absl::NotFoundError(StrCatStd("model: '", name, "' is not served here (this server serves '",
                                                        context.model_name, "')")),
                          "model");
  }
  return absl::OkStatus();
}

// Step 2, `prompt`: a string or a token-id array, or a batch holding exactly one of those.
absl::Status ParsePrompt(const Json& body, ApiRequest* api) {
  const Json* prompt = Find(body, "prompt");
  if (prompt == nullptr) {
    return InvalidFieldError("prompt", "prompt is required (a string or an array of token ids)");
  }
  if (prompt->is_array() && !prompt->empty() && !IsTokenIdArray(*prompt)) {
    // A batch of prompts: lm-evaluation-harness sends a batch of one.
    if (prompt->size() > 1) {
      return InvalidFieldError("prompt", StrCatStd("prompt: one prompt per request, got ", prompt->size(),
                                                   " (send them as separate requests)"));
    }
    prompt = &(*prompt)[0];
    if (!prompt->is_string() && !IsTokenIdArray(*prompt)) {
      return InvalidFieldError("prompt", StrCatStd("prompt must be a string or a non-empty array of token ids, got ",
                                                   Describe(*prompt), " in the array"));
    }
  }
  if (prompt->is_string()) {
    api->text = prompt->get<std::string>();
    return absl::OkStatus();
  }
  if (prompt->is_array()) {
    if (prompt->empty()) return InvalidFieldError("prompt", "prompt: empty array (give at least one token id)");
    std::vector<int32_t> ids;
    RETURN_IF_ERROR(GetTokenIds(*prompt, "prompt", &ids));
    api->token_ids = std::move(ids);
    return absl::OkStatus();
  }
  return InvalidFieldError("prompt",
                           StrCatStd("prompt must be a string or an array of token ids, got ", Describe(*prompt)));
}

absl::Status RequireOne(const Json& body, const char* key, std::string_view what) {
  std::optional<int64_t> value;
  RETURN_IF_ERROR(GetInt(body, key, key, &value));
  if (value.has_value() && *value != 1) {
    return InvalidFieldError(key, StrCatStd(key, " must be 1 (", what, "), got ", *value));
  }
  return absl::OkStatus();
}

// Step 3, OpenAI fields accepted only at their neutral value: suffix, logit_bias, n, best_of.
absl::Status CheckUnsupported(const Json& body) {
  const Json* suffix = Find(body, "suffix");
  if (suffix != nullptr && !(suffix->is_string() && suffix->get<std::string>().empty())) {
    return InvalidFieldError("suffix", "suffix is not supported");
  }
  const Json* logit_bias = Find(body, "logit_bias");
  if (logit_bias != nullptr && !(logit_bias->is_object() && logit_bias->empty())) {
    return InvalidFieldError("logit_bias", "logit_bias is not supported (only an empty object)");
  }
  RETURN_IF_ERROR(RequireOne(body, "n", "one choice per request"));
  return RequireOne(body, "best_of", "one candidate per request");
}

// Step 4, length and sampling: max_tokens, temperature, top_p, top_k (-1 = off), min_p,
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
  std::optional<int64_t> seed;
  RETURN_IF_ERROR(GetInt(body, "seed", "seed", &seed));
  if (seed.has_value()) {
    if (*seed < 0) return InvalidFieldError("seed", StrCatStd("seed must be >= 0, got ", *seed));
    api->seed = static_cast<uint64_t>(*seed);
  }
  return absl::OkStatus();
}

// Step 5, stop conditions: stop (a string or an array of strings), stop_token_ids, ignore_eos.
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

// Step 6, what the response carries: stream, stream_options (an object), echo, logprobs (an integer).
absl::Status ParseOutput(const Json& body, CompletionCall* call) {
  RETURN_IF_ERROR(GetBool(body, "stream", "stream", &call->stream));
  const Json* stream_options = Find(body, "stream_options");
  if (stream_options != nullptr && !stream_options->is_object()) {
    return InvalidFieldError("stream_options",
                             StrCatStd("stream_options must be an object, got ", Describe(*stream_options)));
  }
  RETURN_IF_ERROR(GetBool(body, "echo", "echo", &call->echo));
  const Json* logprobs = Find(body, "logprobs");
  if (logprobs != nullptr && logprobs->is_boolean()) {
    return InvalidFieldError("logprobs",
                             StrCatStd("logprobs must be an integer in [0, 20] (the number of top alternatives), got ",
                                       Describe(*logprobs)));
  }
  RETURN_IF_ERROR(GetInt(body, "logprobs", "logprobs", &call->api.logprobs));
  call->logprobs = call->api.logprobs.has_value();
  return absl::OkStatus();
}

// adak.routing: policy, top_k, top_p, top_p_weighting, threshold, min_k, max_k.
absl::Status ParseRouting(const Json& adak, ApiRequest* api) {
  const Json* routing = Find(adak, "routing");
  if (routing == nullptr) return absl::OkStatus();
  if (!routing->is_object()) {
    return InvalidFieldError("adak.routing", StrCatStd("adak.routing must be an object, got ", Describe(*routing)));
  }
  RETURN_IF_ERROR(CheckKnownKeys(*routing, "adak.routing.",
                                 {"policy", "top_k", "top_p", "top_p_weighting", "threshold", "min_k", "max_k"},
                                 "policy, top_k, top_p, top_p_weighting, threshold, min_k, max_k"));
  if (const Json* policy = Find(*routing, "policy"); policy != nullptr) {
    if (!policy->is_string()) {
      return InvalidFieldError(
          "adak.routing.policy",
          StrCatStd("adak.routing.policy must be a string (topk, adak, null, topp, threshold), got ",
                    Describe(*policy)));
    }
    api->routing.policy = policy->get<std::string>();
  }
  RETURN_IF_ERROR(GetInt(*routing, "top_k", "adak.routing.top_k", &api->routing.top_k));
  RETURN_IF_ERROR(GetNumber(*routing, "top_p", "adak.routing.top_p", &api->routing.top_p));
  if (const Json* weighting = Find(*routing, "top_p_weighting"); weighting != nullptr) {
    if (!weighting->is_string()) {
      return InvalidFieldError(
          "adak.routing.top_p_weighting",
          StrCatStd("adak.routing.top_p_weighting must be a string (model, raw), got ", Describe(*weighting)));
    }
    api->routing.top_p_weighting = weighting->get<std::string>();
  }
  RETURN_IF_ERROR(GetNumber(*routing, "threshold", "adak.routing.threshold", &api->routing.threshold));
  RETURN_IF_ERROR(GetInt(*routing, "min_k", "adak.routing.min_k", &api->routing.min_k));
  return GetInt(*routing, "max_k", "adak.routing.max_k", &api->routing.max_k);
}

// Step 7, our extension object "adak": routing, return_routing_stats, timeout_seconds.
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

// Step 8, prompt scoring: echo + logprobs (not streamed) or echo with max_tokens 0 scores the prompt, and
// then max_tokens 0 is allowed (OpenAI's default 16 otherwise, not Score's 0).
absl::Status ApplyEcho(CompletionCall* call) {
  ApiRequest& api = call->api;
  if (call->echo && call->logprobs) {
    if (call->stream) {
      return InvalidFieldError("logprobs",
                               "logprobs: echo with logprobs (prompt scoring) is not available with stream: true; use "
                               "stream: false");
    }
    api.prompt_logprobs = true;
  }
  if (call->echo && api.max_tokens.has_value() && *api.max_tokens == 0) {
    // Echo of the prompt alone: the scheduler scores the prompt and generates nothing.
    api.prompt_logprobs = true;
  }
  if (api.prompt_logprobs) {
    api.allow_zero_max_tokens = true;
    if (!api.max_tokens.has_value()) api.max_tokens = 16;
  }
  return absl::OkStatus();
}

absl::Status ParseBody(const Json& body, const ServiceContext& context, CompletionCall* call) {
  RETURN_IF_ERROR(CheckModel(body, context));
  RETURN_IF_ERROR(ParsePrompt(body, &call->api));
  RETURN_IF_ERROR(CheckUnsupported(body));
  RETURN_IF_ERROR(ParseSampling(body, &call->api));
  RETURN_IF_ERROR(ParseStopping(body, &call->api));
  RETURN_IF_ERROR(ParseOutput(body, call));
  RETURN_IF_ERROR(ParseAdak(body, &call->api));
  return ApplyEcho(call);
}

OrderedJson TopDict(const std::vector<std::pair<std::string, float>>& entries) {
  OrderedJson dict = OrderedJson::object();
  for (const auto& [key, logprob] : entries) {
    if (!dict.contains(key)) dict[key] = logprob;
  }
  return dict;
}

}  // namespace

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

absl::StatusOr<CompletionCall> ParseCompletionRequest(std::string_view body, const ServiceContext& context) {
  RETURN_IF_ERROR(CheckJsonDepth(body, kMaxJsonDepth));
  Json json = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError("the request body is not valid JSON");
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(StrCatStd("the request body must be a JSON object, got ", Describe(json)));
  }
  CompletionCall call;
  RETURN_IF_ERROR(ParseBody(json, context, &call));
  return call;
}

CompletionBuilder::CompletionBuilder(const ServiceContext& context, const CompletionCall& call,
                                     std::vector<int32_t> prompt_ids, std::string prompt_text, std::string id,
                                     int64_t created)
    : context_(context),
      tokenizer_(*context.model->tokenizer),
      call_(call),
      prompt_ids_(std::move(prompt_ids)),
      prompt_text_(std::move(prompt_text)),
      id_(std::move(id)),
      created_(created),
      detokenizer_(*context.model->tokenizer, prompt_ids_) {
  if (call_.echo) streamed_offset_ = prompt_text_.size();
}

std::string CompletionBuilder::PieceAfter(int32_t prev, int32_t id) const {
  if (prev < 0) {
    const int32_t ids[1] = {id};
    return tokenizer_.Decode(ids);
  }
  const int32_t before[1] = {prev};
  const int32_t both[2] = {prev, id};
  const std::string head = tokenizer_.Decode(before);
  std::string text = tokenizer_.Decode(both);
  if (text.size() >= head.size() && text.compare(0, head.size(), head) == 0) return text.substr(head.size());
  const int32_t alone[1] = {id};
  return tokenizer_.Decode(alone);
}

std::vector<std::pair<std::string, float>> CompletionBuilder::GeneratedTop(size_t i) const {
  const TokenEntry& token = tokens_[i];
  const int32_t prev = i > 0 ? tokens_[i - 1].id : (prompt_ids_.empty() ? -1 : prompt_ids_.back());
  std::vector<std::pair<std::string, float>> top;
  top.emplace_back(PieceAfter(prev, token.id), token.logprob);
  for (const scheduler::TopLogprob& alt : token.top) top.emplace_back(PieceAfter(prev, alt.id), alt.logprob);
  return top;
}

void CompletionBuilder::AddTokens(const std::vector<scheduler::TokenOutput>& tokens) {
  for (const scheduler::TokenOutput& token : tokens) {
    text_ += token.text;
    if (!call_.logprobs) continue;
    TokenEntry entry;
    entry.id = token.id;
    entry.piece = detokenizer_.Push(token.id);
    entry.logprob = token.logprob;
    entry.top = token.top;
    tokens_.push_back(std::move(entry));
  }
}

namespace {

// The logprobs object of OpenAI's legacy completions: tokens, token_logprobs, top_logprobs, text_offset.
struct LogprobsJson {
  OrderedJson tokens = OrderedJson::array();
  OrderedJson token_logprobs = OrderedJson::array();
  OrderedJson top_logprobs = OrderedJson::array();
  OrderedJson text_offset = OrderedJson::array();

  void Add(const std::string& token, OrderedJson logprob, OrderedJson top, size_t offset) {
    tokens.push_back(token);
    token_logprobs.push_back(std::move(logprob));
    top_logprobs.push_back(std::move(top));
    text_offset.push_back(offset);
  }

  OrderedJson Take() {
    OrderedJson out = OrderedJson::object();
    out["tokens"] = std::move(tokens);
    out["token_logprobs"] = std::move(token_logprobs);
    out["top_logprobs"] = std::move(top_logprobs);
    out["text_offset"] = std::move(text_offset);
    return out;
  }
};

OrderedJson ChunkEnvelope(const std::string& id, int64_t created, const std::string& model) {
  OrderedJson chunk = OrderedJson::object();
  chunk["id"] = id;
  chunk["object"] = "text_completion";
  chunk["created"] = created;
  chunk["model"] = model;
  return chunk;
}

// Invalid UTF-8 (a token string cut inside a character) becomes U+FFFD instead of throwing.
std::string Dump(const OrderedJson& value) { return value.dump(-1, ' ', false, OrderedJson::error_handler_t::replace); }

// vLLM's stop_reason: the stop string or stop_token_ids entry that ended the completion; null for EOS,
// length and everything else.
OrderedJson StopReason(const scheduler::FinalOutput& final, const std::vector<int32_t>& stop_token_ids) {
  if (!final.matched_stop.empty()) return final.matched_stop;
  if (final.stop_token.has_value() &&
      std::find(stop_token_ids.begin(), stop_token_ids.end(), *final.stop_token) != stop_token_ids.end()) {
    return *final.stop_token;
  }
  return nullptr;
}

std::string SseEvent(const OrderedJson& data) { return StrCatStd("data: ", Dump(data), "\n\n"); }

}  // namespace

std::string CompletionBuilder::StreamChunk() {
  const bool has_tokens = streamed_tokens_ < tokens_.size();
  if (streamed_text_ == text_.size() && !has_tokens) return "";
  OrderedJson choice = OrderedJson::object();
  choice["index"] = 0;
  choice["text"] = text_.substr(streamed_text_);
  streamed_text_ = text_.size();
  if (call_.logprobs) {
    LogprobsJson lp;
    for (; streamed_tokens_ < tokens_.size(); ++streamed_tokens_) {
      const TokenEntry& token = tokens_[streamed_tokens_];
      lp.Add(token.piece, token.logprob, TopDict(GeneratedTop(streamed_tokens_)), streamed_offset_);
      streamed_offset_ += token.piece.size();
    }
    choice["logprobs"] = lp.Take();
  } else {
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = nullptr;
  OrderedJson chunk = ChunkEnvelope(id_, created_, context_.model_name);
  chunk["choices"] = OrderedJson::array({std::move(choice)});
  return SseEvent(chunk);
}

std::string CompletionBuilder::EchoChunk() const {
  OrderedJson choice = OrderedJson::object();
  choice["index"] = 0;
  choice["text"] = prompt_text_;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  OrderedJson chunk = ChunkEnvelope(id_, created_, context_.model_name);
  chunk["choices"] = OrderedJson::array({std::move(choice)});
  return SseEvent(chunk);
}

std::string CompletionBuilder::UsageJson(const scheduler::Usage& usage) const { return Dump(UsageObject(usage)); }

OrderedJson CompletionBuilder::UsageObject(const scheduler::Usage& usage) const {
  OrderedJson out = OrderedJson::object();
  out["prompt_tokens"] = usage.prompt_tokens;
  out["completion_tokens"] = usage.completion_tokens;
  out["total_tokens"] = usage.prompt_tokens + usage.completion_tokens;
  // OpenAI's (and vLLM's) report of the prompt tokens served from the prefix cache.
  out["prompt_tokens_details"] = OrderedJson{{"cached_tokens", usage.cached_prompt_tokens}};
  OrderedJson adak = OrderedJson::object();
  adak["expert_activations"] = usage.expert_activations;
  adak["expert_flops"] = usage.expert_flops;
  adak["expert_flops_saved"] = usage.expert_flops_saved;
  const double native = usage.expert_flops + usage.expert_flops_saved;
  adak["mean_k"] = native > 0.0
                       ? static_cast<double>(context_.model->config.num_experts_per_tok) * usage.expert_flops / native
                       : 0.0;
  if (call_.api.return_routing_stats) adak["mean_k_per_layer"] = usage.mean_k_per_layer;
  out["adak"] = std::move(adak);
  return out;
}

std::string CompletionBuilder::FinalChunks(const scheduler::FinalOutput& final) const {
  if (!final.status.ok()) {
    return StrCatStd("data: ", OpenAiErrorBody(final.status), "\n\ndata: [DONE]\n\n");
  }
  OrderedJson choice = OrderedJson::object();
  choice["index"] = 0;
  choice["text"] = "";
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = scheduler::FinishReasonName(final.reason);
  choice["stop_reason"] = StopReason(final, call_.api.stop_token_ids);
  OrderedJson chunk = ChunkEnvelope(id_, created_, context_.model_name);
  chunk["choices"] = OrderedJson::array({std::move(choice)});
  chunk["usage"] = UsageObject(final.usage);
  return StrCatStd(SseEvent(chunk), "data: [DONE]\n\n");
}

std::string CompletionBuilder::Response(const scheduler::FinalOutput& final) const {
  OrderedJson choice = OrderedJson::object();
  choice["index"] = 0;
  choice["text"] = call_.echo ? prompt_text_ + text_ : text_;
  if (call_.logprobs) {
    LogprobsJson lp;
    size_t offset = 0;
    if (call_.echo) {
      // The prompt's tokens: the first has no logprob (nothing precedes it), the others come from the
      // scheduler's prompt_logprobs.
      // Special tokens (BOS) read as "", so the pieces add up to the prompt text; offsets stay inside it.
      tokenizer::IncrementalDetokenizer prompt_detokenizer(tokenizer_, {}, /*skip_special_tokens=*/true);
      for (size_t i = 0; i < prompt_ids_.size(); ++i) {
        const int32_t id = prompt_ids_[i];
        const std::string piece = prompt_detokenizer.Push(id);
        lp.tokens.push_back(piece);
        lp.text_offset.push_back(std::min(offset, prompt_text_.size()));
        offset += piece.size();
        if (i == 0 || i - 1 >= final.prompt_logprobs.size()) {
          lp.token_logprobs.push_back(nullptr);
          lp.top_logprobs.push_back(nullptr);
          continue;
        }
        const float logprob = final.prompt_logprobs[i - 1];
        lp.token_logprobs.push_back(logprob);
        std::vector<std::pair<std::string, float>> top;
        top.emplace_back(PieceAfter(prompt_ids_[i - 1], id), logprob);
        if (i - 1 < final.prompt_top_logprobs.size()) {
          for (const scheduler::TopLogprob& alt : final.prompt_top_logprobs[i - 1]) {
            top.emplace_back(PieceAfter(prompt_ids_[i - 1], alt.id), alt.logprob);
          }
        }
        lp.top_logprobs.push_back(TopDict(top));
      }
      offset = prompt_text_.size();
    }
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const TokenEntry& token = tokens_[i];
      lp.Add(token.piece, token.logprob, TopDict(GeneratedTop(i)), offset);
      offset += token.piece.size();
    }
    choice["logprobs"] = lp.Take();
  } else {
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = scheduler::FinishReasonName(final.reason);
  choice["stop_reason"] = StopReason(final, call_.api.stop_token_ids);
  OrderedJson response = ChunkEnvelope(id_, created_, context_.model_name);
  response["choices"] = OrderedJson::array({std::move(choice)});
  response["usage"] = UsageObject(final.usage);
  return Dump(response);
}

}  // namespace adak::server
