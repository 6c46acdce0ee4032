// `adak perplexity`: mean nats/token and perplexity over the first N tokens of a text file, in
// non-overlapping windows of L tokens, each with a fresh context (the first token of a window is only
// context), then the routing statistics. The scoring is training::Evaluate, shared with `adak eval`.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "training/evaluation.h"
#include "cli/commands.h"

namespace adak::cli {
namespace {

absl::Status Perplexity(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string path, flags.Required("data"));
  ASSIGN_OR_RETURN(int64_t max_tokens, flags.Int("max-tokens", 4096, 2, INT64_MAX));
  ASSIGN_OR_RETURN(LoadedSession s, OpenSession(flags));
  training::EvalParams params;
  ASSIGN_OR_RETURN(params.context, flags.Int("context", std::min<int64_t>(256, s.session->max_context()), 2,
                                             s.session->max_context()));
  params.routing = s.routing;
  std::string text;
  RETURN_IF_ERROR(ReadDataFile(path, &text));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, s.model->tokenizer->Encode(text, /*add_special_tokens=*/false));
  if (static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<size_t>(max_tokens));
  if (ids.size() < 2) return absl::InvalidArgumentError(StrCatStd("--data ", path, " has fewer than 2 tokens"));
  ASSIGN_OR_RETURN(training::EvalResult r, training::Evaluate(*s.session, ids, params));
  std::printf("%s", absl::StrFormat("tokens=%d scored=%d context=%d nats_per_token=%.6f perplexity=%.4f "
                                    "tok_s=%.1f\n",
                                    ids.size(), r.scored, params.context, r.nats_per_token(), r.perplexity(),
                                    static_cast<double>(r.tokens_run) / r.seconds)
                        .c_str());
  std::printf("routing=%s %s\nmean_k_per_layer=%s\n", std::string(engine::RoutingPolicyName(s.routing.policy)).c_str(),
              RoutingSummary(r.flops).c_str(), MeanKPerLayer(r.flops, s.model->config.num_layers).c_str());
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
