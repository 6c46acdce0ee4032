#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cli/commands.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "engine/routing_weights.h"

namespace adak::cli {

int ReportError(std::string_view command, const absl::Status& status) {
  std::fprintf(stderr, "adak %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               std::string(status.message()).c_str());
  const bool usage = status.code() == absl::StatusCode::kInvalidArgument || status.code() == absl::StatusCode::kNotFound;
  return usage ? 2 : 1;
}

std::vector<FlagSpec> ModelFlagSpecs(std::vector<FlagSpec> more) {
  for (const char* name : {"model", "threads", "routing", "allocator", "null-experts", "top-k", "top-p", "min-k", "max-k"}) {
    more.push_back({name});
  }
  return more;
}

namespace {

absl::StatusOr<engine::RoutingParams> RoutingFromFlags(const Flags& flags, const engine::ModelConfig& config) {
  engine::RoutingParams r;
  ASSIGN_OR_RETURN(r.policy, engine::ParseRoutingPolicy(flags.String("routing", "topk")));
  const int64_t e = config.num_experts;
  ASSIGN_OR_RETURN(r.top_k, flags.Int("top-k", 0, 0, e));
  ASSIGN_OR_RETURN(double top_p, flags.Double("top-p", 0.0, 0.0, 1.0));
  r.top_p = static_cast<float>(top_p);
  ASSIGN_OR_RETURN(r.min_k, flags.Int("min-k", 0, 0, e));
  ASSIGN_OR_RETURN(r.max_k, flags.Int("max-k", 0, 0, e));
  if (r.policy == engine::RoutingPolicy::kTopP && !flags.Has("top-p")) {
    return absl::InvalidArgumentError("--routing topp needs --top-p P with P in (0, 1]");
  }
  if (flags.Has("top-p") && r.policy != engine::RoutingPolicy::kTopP) {
    return absl::InvalidArgumentError("--top-p applies to --routing topp only");
  }
  if ((flags.Has("min-k") || flags.Has("max-k")) && r.policy != engine::RoutingPolicy::kAdaK) {
    return absl::InvalidArgumentError("--min-k and --max-k apply to --routing adak only");
  }
  if (flags.Has("top-k") && r.policy != engine::RoutingPolicy::kTopK) {
    return absl::InvalidArgumentError("--top-k applies to --routing topk only");
  }
  return r;
}

}  // namespace

absl::StatusOr<LoadedSession> OpenSession(const Flags& flags) {
  LoadedSession s;
  ASSIGN_OR_RETURN(std::string dir, flags.Required("model"));
  ASSIGN_OR_RETURN(s.model, engine::LoadModel(dir));
  engine::RoutingWeights weights;
  if (flags.Has("allocator")) {
    RETURN_IF_ERROR(engine::LoadAllocator(flags.String("allocator", ""), s.model->config, &weights));
  }
  if (flags.Has("null-experts")) {
    RETURN_IF_ERROR(engine::LoadNullExperts(flags.String("null-experts", ""), s.model->config, &weights));
  }
  ASSIGN_OR_RETURN(s.routing, RoutingFromFlags(flags, s.model->config));
  RETURN_IF_ERROR(engine::ValidateRoutingParams(s.routing, s.model->config, weights));
  engine::SessionOptions options;
  ASSIGN_OR_RETURN(int64_t threads, flags.Int("threads", 0, 0, 1024));
  options.num_threads = static_cast<int>(threads);
  ASSIGN_OR_RETURN(s.session, engine::Session::Create(*s.model, options, std::move(weights)));
  return s;
}

absl::Status ReadDataFile(const std::string& path, std::string* text) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("--data ", path, " is a directory, not a text file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open --data file ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  *text = ss.str();
  return absl::OkStatus();
}

std::string RoutingSummary(const engine::FlopCounter& f) {
  return absl::StrFormat("mean_k=%.4f expert_activations=%d expert_flops=%d expert_flops_native=%d "
                         "expert_flops_saved=%d savings=%.2f%%",
                         f.mean_k(), f.expert_activations(), f.expert_flops(), f.native_expert_flops(),
                         f.expert_flops_saved(), 100.0 * f.savings_ratio());
}

std::string MeanKPerLayer(const engine::FlopCounter& f, int64_t num_layers) {
  std::string out = "[";
  for (int64_t l = 0; l < num_layers; ++l) out += absl::StrFormat("%s%.3f", l ? " " : "", f.mean_k(l));
  return out + "]";
}

}  // namespace adak::cli
