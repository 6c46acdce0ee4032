// `adak perplexity`: mean nats/token and perplexity over the first N tokens of a text file, in
// non-overlapping windows of L tokens, each with a fresh context (the first token of a window is only
// context), then the routing statistics. The scoring is training::Evaluate, shared with `adak eval`.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "training/evaluation.h"

namespace adak::cli {
namespace {

struct PerplexityFlags {
  ModelFlags model;
  std::string data;
  int64_t max_tokens = 4096;
  int64_t context = 0;
  CLI::Option* context_option = nullptr;
};

absl::Status Perplexity(const PerplexityFlags& flags) {
  const std::string& path = flags.data;
  ASSIGN_OR_RETURN(LoadedSession s, OpenSession(flags.model));
  training::EvalParams params;
  const int64_t max_context = s.session->max_context();
  params.context = Given(flags.context_option) ? flags.context : std::min<int64_t>(256, max_context);
  RETURN_IF_ERROR(CheckRange("context", params.context, 2, max_context));
  params.routing = s.routing;
  std::string text;
  RETURN_IF_ERROR(ReadDataFile(path, &text));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, s.model->tokenizer->Encode(text, /*add_special_tokens=*/false));
  if (static_cast<int64_t>(ids.size()) > flags.max_tokens) ids.resize(static_cast<size_t>(flags.max_tokens));
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

CommandFn SetUpPerplexity(CLI::App* command) {
  command->description("mean nats/token and perplexity over a text file, then the routing statistics");
  auto flags = std::make_shared<PerplexityFlags>();
  AddModelFlags(command, &flags->model);
  AddString(command, "data", &flags->data, "text file to score", "FILE")->required();
  AddInt(command, "max-tokens", &flags->max_tokens, "score the first N tokens of --data", 2, kNoMax);
  flags->context_option =
      AddInt(command, "context", &flags->context,
             "window length L, each window on a fresh context; at most the model's max context", 2, kNoMax)
          ->default_str("min(256, max context)");
  return [flags] { return Perplexity(*flags); };
}

}  // namespace adak::cli
