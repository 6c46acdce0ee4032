// The routing flags, declared once for every command that routes tokens (`adak generate`, `logits`,
// `perplexity`, `eval`; `adak serve` and `adak-server` share the routing-file flags):
//   --routing topk|adak|null|topp|threshold  --allocator [NAME=]FILE (repeatable: named profiles)
//   --profile NAME  --null-experts FILE  --top-k K  --top-p P  --top-p-weighting model|raw  --threshold T
//   --min-k K  --max-k K
//
// The policy follows the files given: without --routing, --allocator selects Ada-K and --null-experts
// selects null routing (both at once is a usage error naming both flags); --routing always wins, so
// `--routing topk --allocator F` stays top-K. `adak serve` applies the same rule to --default-routing.
//
// Thread-compatible (the structs are bound to one CLI::App, parsed on one thread).
#ifndef ADAK_CLI_ROUTING_FLAGS_H_
#define ADAK_CLI_ROUTING_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_config.h"
#include "engine/routing.h"
#include "engine/routing_weights.h"

namespace adak::cli {

// --allocator (each `[NAME=]FILE`, in order; the first is the default profile) and --null-experts.
struct RoutingFileFlags {
  std::vector<std::string> allocators;
  std::string null_experts;
  CLI::Option* allocator_option = nullptr;
  CLI::Option* null_experts_option = nullptr;
};

// Adds --allocator and --null-experts to `app`; their help says which policy they imply when
// `policy_flag` (e.g. "routing", "default-routing") is not given.
void AddRoutingFileFlags(CLI::App* app, const std::string& policy_flag, RoutingFileFlags* files);

// The allocator files of --allocator: `NAME=FILE` when the text before the first '=' is a valid profile name
// (engine::ValidateProfileName), else all of it is the FILE (its profile name then comes from the file).
[[nodiscard]] std::vector<engine::AllocatorFile> AllocatorFiles(const RoutingFileFlags& files);

// Loads the files the flags name into `weights`. Errors: the loaders' (NotFound naming a missing file,
// InvalidArgument naming a corrupt file or tensor).
[[nodiscard]] absl::Status LoadRoutingFiles(const RoutingFileFlags& files, const engine::ModelConfig& config,
                                            engine::RoutingWeights* weights);

// The policy name to use: `policy` when `policy_given`, else "adak" with an allocator, "null" with null
// experts, else "topk". Errors: InvalidArgument naming --allocator, --null-experts and --`policy_flag` when
// both files are given without the policy flag.
[[nodiscard]] absl::StatusOr<std::string> ImpliedRoutingPolicy(const std::string& policy_flag, bool policy_given,
                                                               const std::string& policy,
                                                               const RoutingFileFlags& files);

// Every routing flag of a model command.
struct RoutingFlags {
  std::string routing;
  RoutingFileFlags files;
  std::string profile;
  int64_t top_k = 0;
  double top_p = 0.0;
  std::string top_p_weighting = "model";
  double threshold = 0.0;
  int64_t min_k = 0;
  int64_t max_k = 0;
  CLI::Option* routing_option = nullptr;
  CLI::Option* profile_option = nullptr;
  CLI::Option* top_k_option = nullptr;
  CLI::Option* top_p_option = nullptr;
  CLI::Option* top_p_weighting_option = nullptr;
  CLI::Option* threshold_option = nullptr;
  CLI::Option* min_k_option = nullptr;
  CLI::Option* max_k_option = nullptr;
};

void AddRoutingFlags(CLI::App* app, RoutingFlags* flags);

// The usage errors of the routing flags that need no model (ImpliedRoutingPolicy's), so a command can
// report them before it reads anything.
[[nodiscard]] absl::Status CheckRoutingFlags(const RoutingFlags& flags);

// The routing params of the parsed flags, checked against the model: the policy (ImpliedRoutingPolicy),
// --top-k/--min-k/--max-k within [0, E], each policy's own flags only with that policy, and --profile among
// the loaded allocator profiles. Errors: InvalidArgument naming the flag. Does not check that the files the
// policy needs are loaded (engine::ValidateRoutingParams does).
[[nodiscard]] absl::StatusOr<engine::RoutingParams> RoutingFromFlags(const RoutingFlags& flags,
                                                                     const engine::ModelConfig& config,
                                                                     const engine::RoutingWeights& weights);

}  // namespace adak::cli

#endif  // ADAK_CLI_ROUTING_FLAGS_H_
