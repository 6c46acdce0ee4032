// `adak logits`: the prompt's token ids and, for every position, the top-N (id, logit) pairs in fp32.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/cli/commands.h"

namespace adak::cli {
namespace {

// The `n` largest entries of `row` (descending, ties to the lower id).
std::vector<std::pair<int32_t, float>> TopN(const float* row, int64_t vocab, int64_t n) {
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  n = std::min(n, vocab);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
    return row[a] != row[b] ? row[a] > row[b] : a < b;
  });
  std::vector<std::pair<int32_t, float>> top;
  for (int64_t i = 0; i < n; ++i) top.emplace_back(ids[static_cast<size_t>(i)], row[ids[static_cast<size_t>(i)]]);
  return top;
}

absl::Status Logits(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string prompt, flags.Required("prompt"));
  ASSIGN_OR_RETURN(int64_t top, flags.Int("top", 10, 1, 1 << 20));
  ASSIGN_OR_RETURN(LoadedSession s, OpenSession(flags));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, s.model->tokenizer->Encode(prompt));
  if (ids.empty()) return absl::InvalidArgumentError("--prompt encodes to no tokens");
  std::vector<float> logits;
  RETURN_IF_ERROR(s.session->Append(ids, /*all_logits=*/true, &logits));
  const int64_t vocab = s.model->config.vocab_size;

  if (flags.Has("json")) {
    nlohmann::json out;
    out["token_ids"] = ids;
    nlohmann::json positions = nlohmann::json::array();
    for (size_t p = 0; p < ids.size(); ++p) {
      nlohmann::json pairs = nlohmann::json::array();
      for (const auto& [id, logit] : TopN(logits.data() + p * static_cast<size_t>(vocab), vocab, top)) {
        pairs.push_back({id, logit});
      }
      positions.push_back({{"top", std::move(pairs)}});
    }
    out["positions"] = std::move(positions);
    std::printf("%s\n", out.dump().c_str());
    return absl::OkStatus();
  }
  for (size_t p = 0; p < ids.size(); ++p) {
    const std::string token = s.model->tokenizer->IdToToken(ids[p]);
    std::printf("%4zu  id=%-6d '%s'", p, ids[p], token.c_str());
    for (const auto& [id, logit] : TopN(logits.data() + p * static_cast<size_t>(vocab), vocab, top)) {
      std::printf(" %d:%.5f", id, logit);
    }
    std::printf("\n");
  }
  return absl::OkStatus();
}

}  // namespace

int RunLogits(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv, 2, {{"model"}, {"prompt"}, {"top"}, {"json", false}, {"threads"}});
  if (!flags.ok()) return ReportError("logits", flags.status());
  absl::Status s = Logits(*flags);
  return s.ok() ? 0 : ReportError("logits", s);
}

}  // namespace adak::cli
