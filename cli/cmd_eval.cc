// `adak eval`: `adak perplexity`'s richer sibling. Over the first N tokens of a text file (windows of L
// tokens, each on a fresh context, the first token of a window only context; training/evaluation.h) it
// reports perplexity, nats/token, mean k overall, per layer and per token class (word, number,
// punctuation, space/other), expert FLOPs and the savings against native top-K. With --sweep FAMILIES it
// also evaluates, on the same tokens, the training-free baselines of each family (training/evaluation.h:
// topk = fixed top-1..top-K, topp = top-p with the model's weighting, topp-raw, threshold), and prints the
// frontier table (the requested routing first); --sweep-topk is short for --sweep topk,topp-raw. --json prints one JSON
// object instead of the report; its "sweep" array holds the baseline rows only (the requested routing is the top-level
// object).
//
// --record (Ada-K only) also evaluates native top-K on the same tokens and writes the measured mean k and perplexity
// change into the evaluated allocator profile's file (metadata measured_*, and `profile` when given as
// --allocator NAME=FILE; engine/routing_weights.h), which the server lists with the profile.
//
// --max-tokens defaults to 4096 as for `adak perplexity`; 0 means the whole file. --context defaults to
// min(256, the model's max context).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "engine/safetensors.h"
#include "nlohmann/json.hpp"
#include "training/evaluation.h"

namespace adak::cli {
namespace {

double Round6(double x) { return std::round(x * 1e6) / 1e6; }

// The fields every row of the frontier shares (top-level object and "sweep" entries).
nlohmann::json RowJson(const training::EvalResult& r, const engine::ModelConfig& config) {
  nlohmann::json row;
  row["routing"] = std::string(engine::RoutingPolicyName(r.routing.policy));
  row["label"] = training::RoutingLabel(r.routing, config);
  if (r.routing.policy == engine::RoutingPolicy::kTopK) {
    row["top_k"] = r.routing.top_k == 0 ? config.num_experts_per_tok : r.routing.top_k;
  }
  if (r.routing.policy == engine::RoutingPolicy::kTopP) {
    row["top_p"] = Round6(r.routing.top_p);
    row["top_p_weighting"] = std::string(engine::TopPWeightingName(r.routing.top_p_weighting));
  }
  if (r.routing.policy == engine::RoutingPolicy::kThreshold) {
    row["threshold"] = Round6(r.routing.threshold);
    row["min_k"] = r.routing.min_k == 0 ? 1 : r.routing.min_k;
  }
  row["perplexity"] = r.perplexity();
  row["nats_per_token"] = r.nats_per_token();
  row["tokens"] = r.scored;
  row["mean_k"] = r.flops.mean_k();
  nlohmann::json per_layer = nlohmann::json::array();
  for (int64_t l = 0; l < config.num_layers; ++l) per_layer.push_back(r.flops.mean_k(l));
  row["mean_k_per_layer"] = std::move(per_layer);
  row["expert_activations"] = r.flops.expert_activations();
  row["expert_flops"] = r.flops.expert_flops();
  row["expert_flops_native"] = r.flops.native_expert_flops();
  row["expert_flops_saved"] = r.flops.expert_flops_saved();
  row["savings_ratio"] = r.flops.savings_ratio();
  row["seconds"] = r.seconds;
  return row;
}

void PrintJson(const training::EvalResult& main, const std::vector<training::EvalResult>& sweep,
               const engine::ModelConfig& config, const std::string& model_dir, const std::string& data) {
  nlohmann::json doc = RowJson(main, config);
  doc["model"] = model_dir;
  doc["data"] = data;
  doc["context"] = main.context;
  doc["windows"] = main.windows;
  doc["tokens_run"] = main.tokens_run;
  nlohmann::json classes = nlohmann::json::object();
  for (training::TokenClass c : training::kAllTokenClasses) {
    const training::TokenClassStats& s = main.token_class(c);
    classes[std::string(training::TokenClassName(c))] = {{"tokens", s.tokens}, {"mean_k", s.mean_k()}};
  }
  doc["token_classes"] = std::move(classes);
  if (!sweep.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const training::EvalResult& r : sweep) rows.push_back(RowJson(r, config));
    doc["sweep"] = std::move(rows);
  }
  std::printf("%s\n", doc.dump().c_str());
}

void PrintReport(const training::EvalResult& main, const std::vector<training::EvalResult>& sweep,
                 const engine::ModelConfig& config, const std::string& model_dir, const std::string& data) {
  std::printf("model=%s data=%s\n", model_dir.c_str(), data.c_str());
  std::printf("%s", absl::StrFormat("tokens_run=%d scored=%d windows=%d context=%d\n", main.tokens_run, main.scored,
                                    main.windows, main.context)
                        .c_str());
  std::printf("%s",
              absl::StrFormat("routing=%s nats_per_token=%.6f perplexity=%.4f tok_s=%.1f\n",
                              training::RoutingLabel(main.routing, config), main.nats_per_token(), main.perplexity(),
                              main.seconds > 0 ? static_cast<double>(main.tokens_run) / main.seconds : 0.0)
                  .c_str());
  std::printf("%s\nmean_k_per_layer=%s\n", RoutingSummary(main.flops).c_str(),
              MeanKPerLayer(main.flops, config.num_layers).c_str());
  std::printf("\n%-12s %8s %7s %7s\n", "token class", "tokens", "share", "mean_k");
  for (training::TokenClass c : training::kAllTokenClasses) {
    const training::TokenClassStats& s = main.token_class(c);
    const double share =
        main.scored == 0 ? 0.0 : 100.0 * static_cast<double>(s.tokens) / static_cast<double>(main.scored);
    std::printf(
        "%s",
        absl::StrFormat("%-12s %8d %6.2f%% %7.3f\n", training::TokenClassName(c), s.tokens, share, s.mean_k()).c_str());
  }
  if (sweep.empty()) return;
  std::printf("%s", absl::StrFormat("\nfrontier (the same %d scored tokens; savings against native top-%d):\n",
                                    main.scored, config.num_experts_per_tok)
                        .c_str());
  std::printf("%-24s %11s %11s %7s %18s %9s\n", "routing", "perplexity", "nats/token", "mean_k", "expert_flops",
              "savings");
  auto row = [&](const training::EvalResult& r, bool requested) {
    const std::string label = requested ? absl::StrCat(training::RoutingLabel(r.routing, config), " (requested)")
                                        : training::RoutingLabel(r.routing, config);
    std::printf("%s",
                absl::StrFormat("%-24s %11.4f %11.6f %7.4f %18d %8.2f%%\n", label, r.perplexity(), r.nats_per_token(),
                                r.flops.mean_k(), r.flops.expert_flops(), 100.0 * r.flops.savings_ratio())
                    .c_str());
  };
  row(main, true);
  for (const training::EvalResult& r : sweep) row(r, false);
}

struct EvalFlags {
  ModelFlags model;
  std::string data;
  int64_t max_tokens = 4096;
  int64_t context = 0;
  bool json = false;
  bool sweep_topk = false;
  std::string sweep;
  bool record = false;
  CLI::Option* context_option = nullptr;
  CLI::Option* sweep_option = nullptr;
};

std::string Fixed6(double x) { return absl::StrFormat("%.6f", x); }

// --record: writes what `main` measured, against native top-K on the same tokens, into the metadata of the
// evaluated allocator profile's file (engine/routing_weights.h).
absl::Status RecordProfile(const EvalFlags& flags, const training::EvalResult& main, const training::EvalResult& native,
                           int64_t context) {
  const std::vector<engine::AllocatorFile> files = AllocatorFiles(flags.model.routing.files);
  const auto profile = static_cast<size_t>(main.routing.profile);
  if (profile >= files.size()) return absl::InternalError("--record: the evaluated profile has no file");
  const std::filesystem::path file = files[profile].path;
  std::map<std::string, std::string> measured = {
      {"measured_mean_k", Fixed6(main.flops.mean_k())},
      {"measured_ppl_delta", Fixed6(main.perplexity() / native.perplexity() - 1.0)},
      {"measured_ppl", Fixed6(main.perplexity())},
      {"measured_ppl_native", Fixed6(native.perplexity())},
      {"measured_on", StrCatStd(std::filesystem::path(flags.data).filename().string(), ", ", main.scored,
                                " tokens, windows of ", context)}};
  if (!files[profile].name.empty()) measured["profile"] = files[profile].name;  // NAME=FILE names it for good
  RETURN_IF_ERROR(engine::UpdateSafetensorsMetadata(file, measured));
  std::fprintf(stderr, "recorded in %s: mean k %s, perplexity %+.2f%% against native top-K\n", file.c_str(),
               measured.at("measured_mean_k").c_str(), 100.0 * (main.perplexity() / native.perplexity() - 1.0));
  return absl::OkStatus();
}

absl::Status Eval(const EvalFlags& flags) {
  const std::string& path = flags.data;
  RETURN_IF_ERROR(CheckRoutingFlags(flags.model.routing));
  std::vector<training::SweepFamily> families;
  if (flags.sweep_topk && Given(flags.sweep_option)) {
    return absl::InvalidArgumentError(
        "--sweep-topk and --sweep were both given; --sweep-topk is --sweep topk,topp-raw");
  }
  if (flags.sweep_topk) families = {training::SweepFamily::kTopK, training::SweepFamily::kTopPRaw};
  if (Given(flags.sweep_option)) {
    absl::StatusOr<std::vector<training::SweepFamily>> parsed = training::ParseSweepFamilies(flags.sweep);
    if (!parsed.ok()) return absl::InvalidArgumentError(StrCatStd("--sweep: ", ToStd(parsed.status().message())));
    families = *std::move(parsed);
  }
  if (flags.max_tokens == 1) {
    return absl::InvalidArgumentError("--max-tokens must be 0 (the whole file) or at least 2, got 1");
  }
  std::string text;
  RETURN_IF_ERROR(ReadDataFile(path, &text));
  ASSIGN_OR_RETURN(LoadedSession s, OpenSession(flags.model));
  if (flags.record && s.routing.policy != engine::RoutingPolicy::kAdaK) {
    return absl::InvalidArgumentError("--record needs --routing adak (it records an allocator profile's cost)");
  }
  const int64_t max_context = s.session->max_context();
  const int64_t context = Given(flags.context_option) ? flags.context : std::min<int64_t>(256, max_context);
  RETURN_IF_ERROR(CheckRange("context", context, 2, max_context));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, s.model->tokenizer->Encode(text, /*add_special_tokens=*/false));
  if (flags.max_tokens > 0 && static_cast<int64_t>(ids.size()) > flags.max_tokens) {
    ids.resize(static_cast<size_t>(flags.max_tokens));
  }
  if (ids.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--data ", path, " has ", static_cast<int64_t>(ids.size()), " tokens; eval needs at least 2"));
  }

  const engine::ModelConfig& config = s.model->config;
  training::EvalParams params;
  params.context = context;
  params.routing = s.routing;
  ASSIGN_OR_RETURN(training::EvalResult main, training::Evaluate(*s.session, ids, params));
  std::vector<training::EvalResult> sweep;
  if (!families.empty()) {
    for (const engine::RoutingParams& routing : training::FrontierRoutings(config, families)) {
      params.routing = routing;
      ASSIGN_OR_RETURN(training::EvalResult r, training::Evaluate(*s.session, ids, params));
      sweep.push_back(std::move(r));
    }
  }
  if (flags.record) {
    params.routing = engine::RoutingParams{};  // native top-K on the same tokens
    ASSIGN_OR_RETURN(training::EvalResult native, training::Evaluate(*s.session, ids, params));
    RETURN_IF_ERROR(RecordProfile(flags, main, native, context));
  }
  if (flags.json) {
    PrintJson(main, sweep, config, flags.model.model, path);
  } else {
    PrintReport(main, sweep, config, flags.model.model, path);
  }
  return absl::OkStatus();
}

}  // namespace

CommandFn SetUpEval(CLI::App* command) {
  command->description(
      "perplexity, mean k (overall, per layer, per token class) and expert FLOP savings over a text file");
  auto flags = std::make_shared<EvalFlags>();
  AddModelFlags(command, &flags->model);
  AddString(command, "data", &flags->data, "text file to score", "FILE")->required();
  AddInt(command, "max-tokens", &flags->max_tokens, "score the first N tokens of --data; 0 = the whole file", 0,
         kNoMax);
  flags->context_option =
      AddInt(command, "context", &flags->context,
             "window length L, each window on a fresh context; at most the model's max context", 2, kNoMax)
          ->default_str("min(256, max context)");
  AddFlag(command, "json", &flags->json, "print one JSON object instead of the report");
  flags->sweep_option = AddString(command, "sweep", &flags->sweep,
                                  "also evaluate these training-free baselines on the same tokens and print the "
                                  "frontier: a comma list of topk, topp, topp-raw, threshold, or all",
                                  "FAMILIES");
  AddFlag(command, "sweep-topk", &flags->sweep_topk, "short for --sweep topk,topp-raw");
  AddFlag(command, "record", &flags->record,
          "--routing adak: also evaluate native top-K on the same tokens and write the profile's mean k and "
          "perplexity change (and the NAME of --allocator NAME=FILE) into the profile's file's metadata (shown "
          "by /v1/models and GetModelInfo)");
  return [flags] { return Eval(*flags); };
}

}  // namespace adak::cli
