// `adak generate`: continue a prompt, streaming the text to stdout; stats on stderr.
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "cli/commands.h"

namespace adak::cli {
namespace {

absl::Status Generate(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string prompt, flags.Required("prompt"));
  engine::GenerateOptions options;
  ASSIGN_OR_RETURN(options.max_tokens, flags.Int("max-tokens", 64, 1, 1 << 20));
  ASSIGN_OR_RETURN(double temperature, flags.Double("temperature", 0.0, 0.0, 100.0));
  ASSIGN_OR_RETURN(options.sampling.top_k, flags.Int("sample-top-k", 0, 0, 1 << 30));
  ASSIGN_OR_RETURN(double top_p, flags.Double("sample-top-p", 1.0, 1e-9, 1.0));
  ASSIGN_OR_RETURN(double min_p, flags.Double("min-p", 0.0, 0.0, 1.0));
  ASSIGN_OR_RETURN(double rep, flags.Double("repetition-penalty", 1.0, 1e-6, 100.0));
  options.sampling.temperature = static_cast<float>(temperature);
  options.sampling.top_p = static_cast<float>(top_p);
  options.sampling.min_p = static_cast<float>(min_p);
  options.sampling.repetition_penalty = static_cast<float>(rep);
  if (flags.Has("seed")) {
    ASSIGN_OR_RETURN(int64_t seed, flags.Int("seed", 0, 0, INT64_MAX));
    options.sampling.seed = static_cast<uint64_t>(seed);
  }
  options.stop_at_eos = !flags.Has("ignore-eos");
  ASSIGN_OR_RETURN(LoadedSession s, OpenSession(flags));
  options.routing = s.routing;
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, s.model->tokenizer->Encode(prompt));
  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);
  ASSIGN_OR_RETURN(engine::GenerateResult r,
                   engine::Generate(*s.session, ids, options, [](std::string_view piece) {
                     std::fwrite(piece.data(), 1, piece.size(), stdout);
                     std::fflush(stdout);
                   }));
  std::fputc('\n', stdout);
  const double n = static_cast<double>(r.output_ids.size());
  std::fprintf(stderr, "%s",
               absl::StrFormat("[stats] prompt_tokens=%d generated_tokens=%d finish_reason=%s prefill_tok_s=%.1f "
                               "decode_tok_s=%.1f total_s=%.3f routing=%s %s\n",
                               r.prompt_ids.size(), r.output_ids.size(), r.finish_reason,
                               static_cast<double>(r.prompt_ids.size()) / r.prefill_seconds,
                               n > 1 ? (n - 1) / r.decode_seconds : 0.0, r.prefill_seconds + r.decode_seconds,
                               engine::RoutingPolicyName(s.routing.policy), RoutingSummary(*r.flops))
                   .c_str());
  return absl::OkStatus();
}

}  // namespace

int RunGenerate(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv, 2,
                            ModelFlagSpecs({{"prompt"}, {"max-tokens"}, {"temperature"}, {"seed"}, {"sample-top-k"},
                                            {"sample-top-p"}, {"min-p"}, {"repetition-penalty"}, {"ignore-eos", false}}));
  if (!flags.ok()) return ReportError("generate", flags.status());
  absl::Status s = Generate(*flags);
  return s.ok() ? 0 : ReportError("generate", s);
}

}  // namespace adak::cli
