#include "server/http/completion_builder.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "server/status_mapping.h"

namespace adak::server {
namespace {

using OrderedJson = nlohmann::ordered_json;

// Invalid UTF-8 (a token string cut inside a character) becomes U+FFFD instead of throwing.
std::string Dump(const OrderedJson& value) { return value.dump(-1, ' ', false, OrderedJson::error_handler_t::replace); }

std::string SseEvent(const OrderedJson& data) { return StrCatStd("data: ", Dump(data), "\n\n"); }

OrderedJson TopDict(const std::vector<std::pair<std::string, float>>& entries) {
  OrderedJson dict = OrderedJson::object();
  for (const auto& [key, logprob] : entries) {
    if (!dict.contains(key)) dict[key] = logprob;
  }
  return dict;
}

OrderedJson Bytes(const std::string& text) {
  OrderedJson bytes = OrderedJson::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

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

// The legacy completions logprobs object, built array by array.
OrderedJson EmptyLegacyLogprobs() {
  OrderedJson lp = OrderedJson::object();
  lp["tokens"] = OrderedJson::array();
  lp["token_logprobs"] = OrderedJson::array();
  lp["top_logprobs"] = OrderedJson::array();
  lp["text_offset"] = OrderedJson::array();
  return lp;
}

void AddLegacy(OrderedJson& lp, const std::string& token, OrderedJson logprob, OrderedJson top, size_t offset) {
  lp["tokens"].push_back(token);
  lp["token_logprobs"].push_back(std::move(logprob));
  lp["top_logprobs"].push_back(std::move(top));
  lp["text_offset"].push_back(offset);
}

}  // namespace

CompletionBuilder::CompletionBuilder(const ServiceContext& context, const CompletionCall& call,
                                     std::vector<int32_t> prompt_ids, std::string prompt_text, std::string id,
                                     int64_t created, int64_t index)
    : context_(context),
      tokenizer_(*context.model->tokenizer),
      options_{.chat = call.endpoint == CompletionCall::Endpoint::kChat,
               .echo = call.echo,
               .logprobs = call.logprobs,
               .best_of = call.best_of,
               .candidates = call.candidates(),
               .stop_token_ids = call.api.stop_token_ids,
               .return_routing_stats = call.api.return_routing_stats},
      prompt_ids_(std::move(prompt_ids)),
      prompt_text_(std::move(prompt_text)),
      id_(std::move(id)),
      created_(created),
      index_(index),
      detokenizer_(*context.model->tokenizer, prompt_ids_) {
  if (options_.echo) streamed_offset_ = prompt_text_.size();
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
  generated_ += tokens.size();
  for (const scheduler::TokenOutput& token : tokens) {
    text_ += token.text;
    cumulative_logprob_ += token.logprob;
    if (!options_.logprobs) continue;
    TokenEntry entry;
    entry.id = token.id;
    entry.piece = detokenizer_.Push(token.id);
    entry.logprob = token.logprob;
    entry.top = token.top;
    tokens_.push_back(std::move(entry));
  }
}

void CompletionBuilder::SetPromptLogprobs(std::vector<float> logprobs,
                                          std::vector<std::vector<scheduler::TopLogprob>> top) {
  prompt_logprobs_ = std::move(logprobs);
  prompt_top_logprobs_ = std::move(top);
}

OrderedJson CompletionBuilder::ChatLogprobs(size_t begin, size_t end) const {
  OrderedJson content = OrderedJson::array();
  for (size_t i = begin; i < end; ++i) {
    const TokenEntry& token = tokens_[i];
    const int32_t prev = i > 0 ? tokens_[i - 1].id : (prompt_ids_.empty() ? -1 : prompt_ids_.back());
    OrderedJson entry = OrderedJson::object();
    entry["token"] = token.piece;
    entry["logprob"] = token.logprob;
    entry["bytes"] = Bytes(token.piece);
    OrderedJson top = OrderedJson::array();
    for (const scheduler::TopLogprob& alt : token.top) {
      const std::string piece = PieceAfter(prev, alt.id);
      top.push_back(OrderedJson{{"token", piece}, {"logprob", alt.logprob}, {"bytes", Bytes(piece)}});
    }
    entry["top_logprobs"] = std::move(top);
    content.push_back(std::move(entry));
  }
  return OrderedJson{{"content", std::move(content)}};
}

void CompletionBuilder::AddPromptLogprobs(OrderedJson& lp, const std::vector<float>& logprobs,
                                          const std::vector<std::vector<scheduler::TopLogprob>>& top) const {
  // The prompt's tokens: the first has no logprob (nothing precedes it), the others come from the
  // scheduler's prompt logprobs. Special tokens (BOS) read as "", so the pieces add up to the prompt text;
  // offsets stay inside it.
  tokenizer::IncrementalDetokenizer prompt_detokenizer(tokenizer_, {}, /*skip_special_tokens=*/true);
  size_t offset = 0;
  for (size_t i = 0; i < prompt_ids_.size(); ++i) {
    const int32_t id = prompt_ids_[i];
    const std::string piece = prompt_detokenizer.Push(id);
    const size_t at = std::min(offset, prompt_text_.size());
    offset += piece.size();
    if (i == 0 || i - 1 >= logprobs.size()) {
      AddLegacy(lp, piece, nullptr, nullptr, at);
      continue;
    }
    const float logprob = logprobs[i - 1];
    std::vector<std::pair<std::string, float>> entries;
    entries.emplace_back(PieceAfter(prompt_ids_[i - 1], id), logprob);
    if (i - 1 < top.size()) {
      for (const scheduler::TopLogprob& alt : top[i - 1])
        entries.emplace_back(PieceAfter(prompt_ids_[i - 1], alt.id), alt.logprob);
    }
    AddLegacy(lp, piece, logprob, TopDict(entries), at);
  }
}

OrderedJson CompletionBuilder::Envelope(bool chunk) const {
  OrderedJson out = OrderedJson::object();
  out["id"] = id_;
  out["object"] = chat() ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  out["created"] = created_;
  out["model"] = context_.model_name;
  return out;
}

std::string CompletionBuilder::ChunkEvent(OrderedJson choice) const {
  OrderedJson chunk = Envelope(/*chunk=*/true);
  chunk["choices"] = OrderedJson::array({std::move(choice)});
  return SseEvent(chunk);
}

std::string CompletionBuilder::StreamChunk() {
  const bool has_tokens = streamed_tokens_ < tokens_.size() || streamed_generated_ < generated_;
  const bool first_chat = chat() && !role_sent_;
  if (streamed_text_ == text_.size() && !has_tokens && !first_chat) return "";
  streamed_generated_ = generated_;
  OrderedJson choice = OrderedJson::object();
  choice["index"] = index_;
  const std::string text = text_.substr(streamed_text_);
  streamed_text_ = text_.size();
  if (chat()) {
    OrderedJson delta = OrderedJson::object();
    if (first_chat) delta["role"] = "assistant";
    delta["content"] = text;
    choice["delta"] = std::move(delta);
    role_sent_ = true;
    choice["logprobs"] = options_.logprobs ? ChatLogprobs(streamed_tokens_, tokens_.size()) : OrderedJson(nullptr);
    streamed_tokens_ = tokens_.size();
  } else {
    choice["text"] = text;
    if (options_.logprobs) {
      OrderedJson lp = EmptyLegacyLogprobs();
      for (; streamed_tokens_ < tokens_.size(); ++streamed_tokens_) {
        const TokenEntry& token = tokens_[streamed_tokens_];
        AddLegacy(lp, token.piece, token.logprob, TopDict(GeneratedTop(streamed_tokens_)), streamed_offset_);
        streamed_offset_ += token.piece.size();
      }
      choice["logprobs"] = std::move(lp);
    } else {
      choice["logprobs"] = nullptr;
    }
  }
  choice["finish_reason"] = nullptr;
  return ChunkEvent(std::move(choice));
}

std::string CompletionBuilder::EchoChunk() const {
  OrderedJson choice = OrderedJson::object();
  choice["index"] = index_;
  choice["text"] = prompt_text_;
  if (options_.logprobs) {
    OrderedJson lp = EmptyLegacyLogprobs();
    AddPromptLogprobs(lp, prompt_logprobs_, prompt_top_logprobs_);
    choice["logprobs"] = std::move(lp);
  } else {
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = nullptr;
  return ChunkEvent(std::move(choice));
}

OrderedJson CompletionBuilder::UsageObject(const std::vector<const scheduler::FinalOutput*>& finals) const {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached = 0;
  int64_t shared = 0;
  int64_t activations = 0;
  double flops = 0.0;
  double saved = 0.0;
  std::vector<double> per_layer;
  for (size_t c = 0; c < finals.size(); ++c) {
    const scheduler::Usage& usage = finals[c]->usage;
    const bool first_of_prompt = static_cast<int64_t>(c) % options_.best_of == 0;
    if (first_of_prompt) {
      prompt_tokens += usage.prompt_tokens;
      cached += usage.cached_prompt_tokens;
    } else {
      shared += usage.cached_prompt_tokens;
    }
    completion_tokens += usage.completion_tokens;
    activations += usage.expert_activations;
    flops += usage.expert_flops;
    saved += usage.expert_flops_saved;
    per_layer.resize(std::max(per_layer.size(), usage.mean_k_per_layer.size()), 0.0);
    for (size_t l = 0; l < usage.mean_k_per_layer.size(); ++l) {
      per_layer[l] += usage.mean_k_per_layer[l] / static_cast<double>(finals.size());
    }
  }
  OrderedJson out = OrderedJson::object();
  out["prompt_tokens"] = prompt_tokens;
  out["completion_tokens"] = completion_tokens;
  out["total_tokens"] = prompt_tokens + completion_tokens;
  // OpenAI's (and vLLM's) report of the prompt tokens served from the prefix cache.
  out["prompt_tokens_details"] = OrderedJson{{"cached_tokens", cached}};
  OrderedJson adak = OrderedJson::object();
  adak["expert_activations"] = activations;
  adak["expert_flops"] = flops;
  adak["expert_flops_saved"] = saved;
  const double native = flops + saved;
  adak["mean_k"] =
      native > 0.0 ? static_cast<double>(context_.model->config.num_experts_per_tok) * flops / native : 0.0;
  if (options_.candidates > 1) adak["shared_prompt_tokens"] = shared;
  if (options_.return_routing_stats) adak["mean_k_per_layer"] = per_layer;
  out["adak"] = std::move(adak);
  return out;
}

std::string CompletionBuilder::FinalChunk(const scheduler::FinalOutput& final, const OrderedJson* usage) const {
  OrderedJson choice = OrderedJson::object();
  choice["index"] = index_;
  if (chat()) {
    choice["delta"] = OrderedJson::object();
  } else {
    choice["text"] = "";
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = scheduler::FinishReasonName(final.reason);
  choice["stop_reason"] = StopReason(final, options_.stop_token_ids);
  OrderedJson chunk = Envelope(/*chunk=*/true);
  chunk["choices"] = OrderedJson::array({std::move(choice)});
  if (usage != nullptr) chunk["usage"] = *usage;
  return SseEvent(chunk);
}

std::string CompletionBuilder::FinalChunks(const scheduler::FinalOutput& final) const {
  if (!final.status.ok()) {
    return StrCatStd("data: ", OpenAiErrorBody(final.status), "\n\ndata: [DONE]\n\n");
  }
  const OrderedJson usage = UsageObject({&final});
  return StrCatStd(FinalChunk(final, &usage), "data: [DONE]\n\n");
}

OrderedJson CompletionBuilder::Choice(const scheduler::FinalOutput& final, int64_t index) const {
  OrderedJson choice = OrderedJson::object();
  choice["index"] = index;
  if (chat()) {
    choice["message"] = OrderedJson{{"role", "assistant"}, {"content", text_}};
    choice["logprobs"] = options_.logprobs ? ChatLogprobs(0, tokens_.size()) : OrderedJson(nullptr);
  } else {
    choice["text"] = options_.echo ? prompt_text_ + text_ : text_;
    if (options_.logprobs) {
      OrderedJson lp = EmptyLegacyLogprobs();
      size_t offset = 0;
      if (options_.echo) {
        AddPromptLogprobs(lp, final.prompt_logprobs, final.prompt_top_logprobs);
        offset = prompt_text_.size();
      }
      for (size_t i = 0; i < tokens_.size(); ++i) {
        const TokenEntry& token = tokens_[i];
        AddLegacy(lp, token.piece, token.logprob, TopDict(GeneratedTop(i)), offset);
        offset += token.piece.size();
      }
      choice["logprobs"] = std::move(lp);
    } else {
      choice["logprobs"] = nullptr;
    }
  }
  choice["finish_reason"] = scheduler::FinishReasonName(final.reason);
  choice["stop_reason"] = StopReason(final, options_.stop_token_ids);
  return choice;
}

std::string CompletionBuilder::Response(const scheduler::FinalOutput& final) const {
  OrderedJson response = Envelope(/*chunk=*/false);
  response["choices"] = OrderedJson::array({Choice(final, index_)});
  response["usage"] = UsageObject({&final});
  return Dump(response);
}

std::string CombineResponse(const CompletionCall& call, const std::vector<const CompletionBuilder*>& builders,
                            const std::vector<const scheduler::FinalOutput*>& finals) {
  OrderedJson response = builders.front()->Envelope(/*chunk=*/false);
  OrderedJson choices = OrderedJson::array();
  const auto best_of = static_cast<size_t>(call.best_of);
  for (size_t prompt = 0; prompt < call.prompts.size(); ++prompt) {
    std::vector<size_t> order(best_of);
    std::iota(order.begin(), order.end(), prompt * best_of);
    if (call.best_of > call.n) {
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return builders[a]->cumulative_logprob() > builders[b]->cumulative_logprob();
      });
    }
    for (size_t j = 0; j < static_cast<size_t>(call.n); ++j) {
      choices.push_back(builders[order[j]]->Choice(*finals[order[j]],
                                                   static_cast<int64_t>(prompt) * call.n + static_cast<int64_t>(j)));
    }
  }
  response["choices"] = std::move(choices);
  response["usage"] = builders.front()->UsageObject(finals);
  return Dump(response);
}

}  // namespace adak::server
