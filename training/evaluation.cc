#include "training/evaluation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "tokenizer/utf8.h"

namespace adak::training {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581, SentencePiece's space marker

absl::StatusOr<std::unique_ptr<tokenizer::TokenizerRegex>> CompileBuiltin(std::string_view pattern) {
  auto regex = tokenizer::TokenizerRegex::Compile(pattern);
  if (!regex.ok()) {
    return absl::InternalError(absl::StrCat("token classifier pattern does not compile: ", regex.status().message()));
  }
  return std::move(*regex);
}

absl::StatusOr<bool> Contains(const tokenizer::TokenizerRegex& regex, std::string_view text) {
  ASSIGN_OR_RETURN(std::vector<tokenizer::TokenizerRegex::Match> matches, regex.FindAll(text));
  return !matches.empty();
}

bool HasNonSpace(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    const char32_t c = tokenizer::Utf8DecodeAt(text, pos, &length);
    if (!tokenizer::IsUnicodeWhitespace(c)) return true;
    pos += length;
  }
  return false;
}

// log softmax(row)[target], in double.
double LogProb(const float* row, int64_t vocab, int32_t target) {
  double mx = row[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(row[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
  return static_cast<double>(row[target]) - mx - std::log(sum);
}

}  // namespace

std::string_view TokenClassName(TokenClass token_class) {
  switch (token_class) {
    case TokenClass::kWord: return "word";
    case TokenClass::kNumber: return "number";
    case TokenClass::kPunctuation: return "punctuation";
    case TokenClass::kSpaceOther: return "space/other";
  }
  return "space/other";
}

absl::StatusOr<std::unique_ptr<TokenClassifier>> TokenClassifier::Create() {
  std::unique_ptr<TokenClassifier> c(new TokenClassifier());
  ASSIGN_OR_RETURN(c->letter_, CompileBuiltin("\\p{L}"));
  ASSIGN_OR_RETURN(c->number_, CompileBuiltin("\\p{N}"));
  ASSIGN_OR_RETURN(c->not_punct_, CompileBuiltin("[^\\p{P}\\p{S}\\s]"));
  return c;
}

absl::StatusOr<TokenClass> TokenClassifier::ClassifyText(std::string_view raw) const {
  if (!tokenizer::Utf8IsValid(raw) || raw.find(tokenizer::kUtf8ReplacementString) != std::string_view::npos) {
    return TokenClass::kSpaceOther;
  }
  std::string text;
  text.reserve(raw.size());
  for (size_t pos = 0; pos < raw.size();) {
    if (raw.substr(pos, kMetaspace.size()) == kMetaspace) {
      text.push_back(' ');
      pos += kMetaspace.size();
    } else {
      text.push_back(raw[pos]);
      ++pos;
    }
  }
  ASSIGN_OR_RETURN(bool letter, Contains(*letter_, text));
  if (letter) return TokenClass::kWord;
  ASSIGN_OR_RETURN(bool number, Contains(*number_, text));
  if (number) return TokenClass::kNumber;
  ASSIGN_OR_RETURN(bool other, Contains(*not_punct_, text));
  if (!other && HasNonSpace(text)) return TokenClass::kPunctuation;
  return TokenClass::kSpaceOther;
}

absl::StatusOr<TokenClass> TokenClassifier::ClassifyToken(const tokenizer::Tokenizer& tokenizer, int32_t id) const {
  if (id < 0 || id >= tokenizer.vocab_size() || tokenizer.IsSpecial(id)) return TokenClass::kSpaceOther;
  const int32_t ids[1] = {id};
  return ClassifyText(tokenizer.Decode(ids));
}

double EvalResult::perplexity() const { return std::exp(nats_per_token()); }

absl::StatusOr<EvalResult> Evaluate(engine::Session& session, std::span<const int32_t> ids, const EvalParams& params) {
  const engine::Model& model = session.model();
  const engine::ModelConfig& config = model.config;
  if (ids.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("evaluation needs at least 2 tokens, got ", static_cast<int64_t>(ids.size())));
  }
  if (params.context < 2 || params.context > session.max_context()) {
    return absl::InvalidArgumentError(absl::StrCat("context ", params.context, " is outside [2, ",
                                                   session.max_context(), "] (the session's max_context)"));
  }
  RETURN_IF_ERROR(ValidateRoutingParams(params.routing, config, session.routing_weights()));
  ASSIGN_OR_RETURN(std::unique_ptr<TokenClassifier> classifier, TokenClassifier::Create());

  EvalResult result(config);
  result.routing = params.routing;
  result.context = params.context;
  const int64_t vocab = config.vocab_size;
  const int64_t moe_layers = config.num_moe_layers();
  // Class of each id, decided once: -1 = not yet.
  std::vector<int16_t> class_of(static_cast<size_t>(std::max<int64_t>(vocab, 0)), -1);  // -1: not yet classified

  engine::AppendOptions options;
  options.all_logits = true;
  options.routing = params.routing;
  engine::AppendResult out;
  const auto t0 = std::chrono::steady_clock::now();
  const size_t step = static_cast<size_t>(params.context);
  for (size_t begin = 0; begin + 1 < ids.size(); begin += step) {
    const size_t end = std::min(ids.size(), begin + step);
    const std::span<const int32_t> window = ids.subspan(begin, end - begin);
    session.Reset();
    RETURN_IF_ERROR(session.Append(window, options, &out));
    result.flops.Add(out.routed_k);
    ++result.windows;
    result.tokens_run += static_cast<int64_t>(window.size());
    for (size_t i = 1; i < window.size(); ++i) {
      const int32_t id = window[i];
      result.total_nats -= LogProb(out.logits.data() + (i - 1) * static_cast<size_t>(vocab), vocab, id);
      ++result.scored;
      int16_t& cached = class_of[static_cast<size_t>(id)];  // id < vocab: Append checked it
      if (cached < 0) {
        ASSIGN_OR_RETURN(TokenClass c, classifier->ClassifyToken(*model.tokenizer, id));
        cached = static_cast<int16_t>(c);
      }
      double k = 0.0;
      for (size_t l = 0; l < out.routed_k.size(); ++l) {
        if (config.moe_layers[l]) k += out.routed_k[l][i];
      }
      TokenClassStats& stats = result.classes[static_cast<size_t>(cached)];
      ++stats.tokens;
      stats.sum_k += moe_layers == 0 ? 0.0 : k / static_cast<double>(moe_layers);
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

absl::StatusOr<std::vector<SweepFamily>> ParseSweepFamilies(std::string_view list) {
  static constexpr std::pair<std::string_view, SweepFamily> kNames[] = {{"topk", SweepFamily::kTopK},
                                                                        {"topp", SweepFamily::kTopP},
                                                                        {"topp-raw", SweepFamily::kTopPRaw},
                                                                        {"threshold", SweepFamily::kThreshold}};
  std::vector<SweepFamily> out;
  if (list == "all") {
    for (const auto& [name, family] : kNames) out.push_back(family);
    return out;
  }
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view entry = list.substr(0, comma);
    const auto* it =
        std::find_if(std::begin(kNames), std::end(kNames), [&](const auto& n) { return n.first == entry; });
    if (it == std::end(kNames)) {
      return absl::InvalidArgumentError(
          StrCatStd("unknown sweep family '", entry, "' (accepted: topk, topp, topp-raw, threshold, or all)"));
    }
    if (std::find(out.begin(), out.end(), it->second) != out.end()) {
      return absl::InvalidArgumentError(StrCatStd("sweep family '", entry, "' is listed twice"));
    }
    out.push_back(it->second);
    if (comma == std::string_view::npos) return out;
    list.remove_prefix(comma + 1);
  }
}

std::vector<engine::RoutingParams> FrontierRoutings(const engine::ModelConfig& config,
                                                    std::span<const SweepFamily> families) {
  std::vector<engine::RoutingParams> out;
  for (SweepFamily family : families) {
    switch (family) {
      case SweepFamily::kTopK:
        for (int64_t k = 1; k <= config.num_experts_per_tok; ++k) {
          out.push_back({.policy = engine::RoutingPolicy::kTopK, .top_k = k});
        }
        break;
      case SweepFamily::kTopP:
        for (float p : kFrontierTopP) out.push_back({.policy = engine::RoutingPolicy::kTopP, .top_p = p});
        break;
      case SweepFamily::kTopPRaw:
        for (float p : kFrontierTopPRaw) {
          out.push_back(
              {.policy = engine::RoutingPolicy::kTopP, .top_p = p, .top_p_weighting = engine::TopPWeighting::kRaw});
        }
        break;
      case SweepFamily::kThreshold:
        for (float t : kFrontierThreshold) out.push_back({.policy = engine::RoutingPolicy::kThreshold, .threshold = t});
        break;
    }
  }
  return out;
}

std::string RoutingLabel(const engine::RoutingParams& params, const engine::ModelConfig& config) {
  switch (params.policy) {
    case engine::RoutingPolicy::kTopK:
      return absl::StrCat("topk k=", params.top_k == 0 ? config.num_experts_per_tok : params.top_k);
    case engine::RoutingPolicy::kTopP:
      return absl::StrCat(params.top_p_weighting == engine::TopPWeighting::kRaw ? "topp-raw" : "topp",
                          absl::StrFormat(" p=%.2f", params.top_p));
    case engine::RoutingPolicy::kThreshold:
      if (params.min_k > 1) return absl::StrFormat("threshold t=%.2f, min_k=%d", params.threshold, params.min_k);
      return absl::StrFormat("threshold t=%.2f", params.threshold);
    case engine::RoutingPolicy::kAdaK:
      if (params.min_k == 0 && params.max_k == 0) return "adak";
      return absl::StrCat("adak k=", params.min_k == 0 ? 1 : params.min_k, "..",
                          params.max_k == 0 ? config.num_experts : params.max_k);
    case engine::RoutingPolicy::kNull: return "null";
  }
  return "unknown";
}

}  // namespace adak::training
