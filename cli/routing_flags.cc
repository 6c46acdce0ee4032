#include "cli/routing_flags.h"

#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/flags.h"

namespace adak::cli {

void AddRoutingFileFlags(CLI::App* app, const std::string& policy_flag, RoutingFileFlags* files) {
  files->allocator_option =
      app->add_option("--allocator", files->allocators,
                      StrCatStd("Ada-K allocator safetensors file (layers.{i}.allocator.weight), optionally as a named "
                                "profile NAME=FILE; repeat for several profiles (the first is the default); selects --",
                                policy_flag, " adak unless --", policy_flag, " is given"))
          ->type_name("[NAME=]FILE")
          ->take_all()
          ->expected(1);
  files->null_experts_option =
      AddString(app, "null-experts", &files->null_experts,
                StrCatStd("null-experts safetensors file (layers.{i}.null_gate.weight); selects --", policy_flag,
                          " null unless --", policy_flag, " is given"),
                "FILE");
}

std::vector<engine::AllocatorFile> AllocatorFiles(const RoutingFileFlags& files) {
  std::vector<engine::AllocatorFile> out;
  for (const std::string& arg : files.allocators) {
    const size_t eq = arg.find('=');
    if (eq != std::string::npos && engine::ValidateProfileName(std::string_view(arg).substr(0, eq)).ok()) {
      out.push_back({arg.substr(0, eq), arg.substr(eq + 1)});
    } else {
      out.push_back({"", arg});
    }
  }
  return out;
}

absl::Status LoadRoutingFiles(const RoutingFileFlags& files, const engine::ModelConfig& config,
                              engine::RoutingWeights* weights) {
  for (const engine::AllocatorFile& file : AllocatorFiles(files)) {
    RETURN_IF_ERROR(engine::LoadAllocator(file.path, config, weights, file.name));
  }
  if (Given(files.null_experts_option)) {
    RETURN_IF_ERROR(engine::LoadNullExperts(files.null_experts, config, weights));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ImpliedRoutingPolicy(const std::string& policy_flag, bool policy_given,
                                                 const std::string& policy, const RoutingFileFlags& files) {
  if (policy_given) return policy;
  const bool allocator = Given(files.allocator_option);
  const bool null_experts = Given(files.null_experts_option);
  if (allocator && null_experts) {
    return absl::InvalidArgumentError(StrCatStd("--allocator and --null-experts were both given without --",
                                                policy_flag, "; say which policy to use (--", policy_flag,
                                                " adak or --", policy_flag, " null)"));
  }
  if (allocator) return std::string("adak");
  if (null_experts) return std::string("null");
  return std::string("topk");
}

void AddRoutingFlags(CLI::App* app, RoutingFlags* flags) {
  flags->routing_option = AddString(app, "routing", &flags->routing,
                                    "routing policy: topk, adak, null, topp or threshold (default: adak with "
                                    "--allocator, null with --null-experts, else topk)",
                                    "POLICY");
  AddRoutingFileFlags(app, "routing", &flags->files);
  flags->profile_option =
      AddString(app, "profile", &flags->profile,
                "--routing adak: the allocator profile to use, by name (default: the first --allocator)", "NAME");
  // The upper bounds of the k flags are the model's expert count, checked once it is loaded.
  flags->top_k_option = AddInt(app, "top-k", &flags->top_k,
                               "--routing topk: experts per token, up to E; 0 = the model's native K", 0, kNoMax);
  flags->top_p_option =
      AddDouble(app, "top-p", &flags->top_p,
                "--routing topp (required there): smallest expert set with probability >= P", 0.0, 1.0);
  flags->top_p_weighting_option = AddString(
      app, "top-p-weighting", &flags->top_p_weighting,
      "--routing topp: model (the native top-K's share and weights) or raw (softmax over all experts)", "WEIGHTING");
  flags->threshold_option = AddDouble(
      app, "threshold", &flags->threshold,
      "--routing threshold (required there): keep expert i of the native top-K while p_i >= T * p_1", 0.0, 1.0);
  flags->min_k_option =
      AddInt(app, "min-k", &flags->min_k,
             "--routing adak or threshold: at least this many experts (threshold: up to K); 0 = no bound", 0, kNoMax);
  flags->max_k_option = AddInt(app, "max-k", &flags->max_k,
                               "--routing adak: at most this many experts, up to E; 0 = no bound", 0, kNoMax);
}

absl::Status CheckRoutingFlags(const RoutingFlags& flags) {
  return ImpliedRoutingPolicy("routing", Given(flags.routing_option), flags.routing, flags.files).status();
}

absl::StatusOr<engine::RoutingParams> RoutingFromFlags(const RoutingFlags& flags, const engine::ModelConfig& config,
                                                       const engine::RoutingWeights& weights) {
  ASSIGN_OR_RETURN(std::string name,
                   ImpliedRoutingPolicy("routing", Given(flags.routing_option), flags.routing, flags.files));
  engine::RoutingParams r;
  ASSIGN_OR_RETURN(r.policy, engine::ParseRoutingPolicy(name));
  const int64_t e = config.num_experts;
  RETURN_IF_ERROR(CheckRange("top-k", flags.top_k, 0, e));
  RETURN_IF_ERROR(CheckRange("min-k", flags.min_k, 0, e));
  RETURN_IF_ERROR(CheckRange("max-k", flags.max_k, 0, e));
  r.top_k = flags.top_k;
  r.top_p = static_cast<float>(flags.top_p);
  r.min_k = flags.min_k;
  r.max_k = flags.max_k;
  if (r.policy == engine::RoutingPolicy::kTopP && !Given(flags.top_p_option)) {
    return absl::InvalidArgumentError("--routing topp needs --top-p P with P in (0, 1]");
  }
  if (Given(flags.top_p_option) && r.policy != engine::RoutingPolicy::kTopP) {
    return absl::InvalidArgumentError("--top-p applies to --routing topp only");
  }
  if (Given(flags.top_p_weighting_option)) {
    if (r.policy != engine::RoutingPolicy::kTopP) {
      return absl::InvalidArgumentError("--top-p-weighting applies to --routing topp only");
    }
    absl::StatusOr<engine::TopPWeighting> weighting = engine::ParseTopPWeighting(flags.top_p_weighting);
    if (!weighting.ok())
      return absl::InvalidArgumentError(StrCatStd("--top-p-weighting: ", weighting.status().message()));
    r.top_p_weighting = *weighting;
  }
  r.threshold = static_cast<float>(flags.threshold);
  if (r.policy == engine::RoutingPolicy::kThreshold && !Given(flags.threshold_option)) {
    return absl::InvalidArgumentError("--routing threshold needs --threshold T with T in [0, 1]");
  }
  if (Given(flags.threshold_option) && r.policy != engine::RoutingPolicy::kThreshold) {
    return absl::InvalidArgumentError("--threshold applies to --routing threshold only");
  }
  if (Given(flags.max_k_option) && r.policy != engine::RoutingPolicy::kAdaK) {
    return absl::InvalidArgumentError("--max-k applies to --routing adak only");
  }
  if (Given(flags.min_k_option) && r.policy != engine::RoutingPolicy::kAdaK &&
      r.policy != engine::RoutingPolicy::kThreshold) {
    return absl::InvalidArgumentError("--min-k applies to --routing adak and threshold only");
  }
  if (Given(flags.top_k_option) && r.policy != engine::RoutingPolicy::kTopK) {
    return absl::InvalidArgumentError("--top-k applies to --routing topk only");
  }
  if (Given(flags.profile_option)) {
    if (r.policy != engine::RoutingPolicy::kAdaK) {
      return absl::InvalidArgumentError("--profile applies to --routing adak only");
    }
    const int64_t index = weights.FindProfile(flags.profile);
    if (index < 0) {
      return absl::InvalidArgumentError(StrCatStd("--profile '", flags.profile, "' is not a loaded allocator profile (",
                                                  weights.allocators.empty() ? "none" : weights.ProfileNames(), ")"));
    }
    r.profile = static_cast<int32_t>(index);
  }
  return r;
}

}  // namespace adak::cli
