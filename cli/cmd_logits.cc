// `adak logits`: the prompt's token ids and, for every position, the top-N (id, logit) pairs in fp32.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "nlohmann/json.hpp"

namespace adak::cli {
namespace {

// The `n` largest entries of `row` (descending, ties to the lower id).
std::vector<std::pair<int32_t, float>> TopN(const float* row, int64_t vocab, int64_t n) {
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  n = std::min(n, vocab);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(),
                    [&](int32_t a, int32_t b) { return row[a] != row[b] ? row[a] > row[b] : a < b; });
  std::vector<std::pair<int32_t, float>> top;
  for (int64_t i = 0; i < n; ++i) top.emplace_back(ids[static_cast<size_t>(i)], row[ids[static_cast<size_t>(i)]]);
  return top;
}

struct LogitsFlags {
  ModelFlags model;
  std::string prompt;
  int64_t top = 10;
  bool json = false;
  bool trace = false;
};

absl::Status Logits(const LogitsFlags& flags) {
  const int64_t top = flags.top;
  ASSIGN_OR_RETURN(LoadedSession s, OpenSession(flags.model));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, s.model->tokenizer->Encode(flags.prompt));
  if (ids.empty()) return absl::InvalidArgumentError("--prompt encodes to no tokens");
  const bool trace = flags.trace;
  engine::AppendOptions options;
  options.all_logits = true;
  options.record_routing = trace;
  options.routing = s.routing;
  engine::AppendResult out;
  RETURN_IF_ERROR(s.session->Append(ids, options, &out));
  const std::vector<float>& logits = out.logits;
  const int64_t vocab = s.model->config.vocab_size;
  const int64_t e = s.model->config.num_experts;
  const auto& moe_layers = s.model->config.moe_layers;
  // Layer l's routing of position p: k and the experts in descending router probability.
  auto experts_of = [&](size_t l, size_t p) {
    const int32_t k = out.routed_k[l][p];
    const auto* ids_row = out.routed_ids[l].data() + p * static_cast<size_t>(e);
    return std::vector<int32_t>(ids_row, ids_row + k);
  };

  if (flags.json) {
    nlohmann::json doc;
    doc["token_ids"] = ids;
    nlohmann::json positions = nlohmann::json::array();
    for (size_t p = 0; p < ids.size(); ++p) {
      nlohmann::json pairs = nlohmann::json::array();
      for (const auto& [id, logit] : TopN(logits.data() + p * static_cast<size_t>(vocab), vocab, top)) {
        pairs.push_back({id, logit});
      }
      nlohmann::json position = {{"top", std::move(pairs)}};
      if (trace) {
        nlohmann::json layers = nlohmann::json::array();
        for (size_t l = 0; l < moe_layers.size(); ++l) {
          if (!moe_layers[l]) continue;
          layers.push_back({{"k", out.routed_k[l][p]}, {"experts", experts_of(l, p)}});
        }
        position["layers"] = std::move(layers);
      }
      positions.push_back(std::move(position));
    }
    doc["positions"] = std::move(positions);
    std::printf("%s\n", doc.dump().c_str());
    return absl::OkStatus();
  }
  for (size_t p = 0; p < ids.size(); ++p) {
    const std::string token = s.model->tokenizer->IdToToken(ids[p]);
    std::printf("%4zu  id=%-6d '%s'", p, ids[p], token.c_str());
    for (const auto& [id, logit] : TopN(logits.data() + p * static_cast<size_t>(vocab), vocab, top)) {
      std::printf(" %d:%.5f", id, logit);
    }
    if (trace) {
      for (size_t l = 0; l < moe_layers.size(); ++l) {
        if (!moe_layers[l]) continue;
        std::printf(" | L%zu k=%d", l, out.routed_k[l][p]);
        for (int32_t x : experts_of(l, p)) std::printf(" %d", x);
      }
    }
    std::printf("\n");
  }
  return absl::OkStatus();
}

}  // namespace

CommandFn SetUpLogits(CLI::App* command) {
  command->description("the prompt's token ids and, for every position, the top-N (id, logit) pairs in fp32");
  auto flags = std::make_shared<LogitsFlags>();
  AddModelFlags(command, &flags->model);
  AddString(command, "prompt", &flags->prompt, "text to run (tokenized with the model's tokenizer)")->required();
  AddInt(command, "top", &flags->top, "logits per position, largest first", 1, 1 << 20);
  AddFlag(command, "json", &flags->json, "print one JSON object {token_ids, positions: [{top, layers}]}");
  AddFlag(command, "trace", &flags->trace, "also print every MoE layer's k and chosen experts per position");
  return [flags] { return Logits(*flags); };
}

}  // namespace adak::cli
