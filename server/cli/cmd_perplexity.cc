// `adak perplexity`: mean nats/token and perplexity over the first N tokens of a text file, in
// non-overlapping windows of L tokens, each with a fresh context (the first token of a window is only
// context).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "server/cli/commands.h"

namespace adak::cli {
namespace {

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open --data file ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// log softmax(row)[target], in double.
double LogProb(const float* row, int64_t vocab, int32_t target) {
  double mx = row[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(row[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - mx);
  return row[target] - mx - std::log(sum);
}

absl::Status Perplexity(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string path, flags.Required("data"));
  ASSIGN_OR_RETURN(int64_t max_tokens, flags.Int("max-tokens", 4096, 2, INT64_MAX));
  ASSIGN_OR_RETURN(LoadedSession s, OpenSession(flags));
  ASSIGN_OR_RETURN(int64_t context, flags.Int("context", std::min<int64_t>(256, s.session->max_context()), 2,
                                              s.session->max_context()));
  ASSIGN_OR_RETURN(std::string text, ReadText(path));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, s.model->tokenizer->Encode(text, /*add_special_tokens=*/false));
  if (static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<size_t>(max_tokens));
  if (ids.size() < 2) return absl::InvalidArgumentError(absl::StrCat("--data ", path, " has fewer than 2 tokens"));

  const int64_t vocab = s.model->config.vocab_size;
  double nll = 0.0;
  int64_t scored = 0;
  engine::AppendOptions options;
  options.all_logits = true;
  options.routing = s.routing;
  engine::AppendResult out;
  engine::FlopCounter flops(s.model->config);
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t begin = 0; begin + 1 < ids.size(); begin += static_cast<size_t>(context)) {
    const size_t end = std::min(ids.size(), begin + static_cast<size_t>(context));
    s.session->Reset();
    std::span<const int32_t> window(ids.data() + begin, end - begin);
    RETURN_IF_ERROR(s.session->Append(window, options, &out));
    flops.Add(out.routed_k);
    for (size_t i = 0; i + 1 < window.size(); ++i) {
      nll -= LogProb(out.logits.data() + i * static_cast<size_t>(vocab), vocab, window[i + 1]);
      ++scored;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double mean = nll / static_cast<double>(scored);
  std::printf("%s", absl::StrFormat("tokens=%d scored=%d context=%d nats_per_token=%.6f perplexity=%.4f "
                                    "tok_s=%.1f\n",
                                    ids.size(), scored, context, mean, std::exp(mean),
                                    static_cast<double>(ids.size()) / seconds)
                        .c_str());
  std::printf("routing=%s %s\nmean_k_per_layer=%s\n", std::string(engine::RoutingPolicyName(s.routing.policy)).c_str(),
              RoutingSummary(flops).c_str(), MeanKPerLayer(flops, s.model->config.num_layers).c_str());
  return absl::OkStatus();
}

}  // namespace

int RunPerplexity(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv, 2, ModelFlagSpecs({{"data"}, {"max-tokens"}, {"context"}}));
  if (!flags.ok()) return ReportError("perplexity", flags.status());
  absl::Status s = Perplexity(*flags);
  return s.ok() ? 0 : ReportError("perplexity", s);
}

}  // namespace adak::cli
