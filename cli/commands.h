// The `adak` sub-commands. Each takes the full argv (argv[1] is the sub-command name), prints its
// result on stdout and errors on stderr, and returns the process exit code (0 ok, 1 runtime error, 2 bad
// usage).
#ifndef ADAK_SERVER_CLI_COMMANDS_H_
#define ADAK_SERVER_CLI_COMMANDS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model.h"
#include "engine/flops.h"
#include "engine/routing.h"
#include "engine/session.h"
#include "base/flags.h"

namespace adak::cli {

int RunGenerate(int argc, char** argv);
int RunLogits(int argc, char** argv);
int RunPerplexity(int argc, char** argv);
int RunInspect(int argc, char** argv);
int RunMakeModel(int argc, char** argv);
int RunEval(int argc, char** argv);
int RunTrainAllocator(int argc, char** argv);
int RunServe(int argc, char** argv);
int RunTokenize(int argc, char** argv);

// Prints "adak <command>: <status>" to stderr and returns the exit code for it (2 for InvalidArgument
// and NotFound, i.e. bad usage or input; 1 otherwise).
int ReportError(std::string_view command, const absl::Status& status);

// The flags every model command shares: --model, --threads and the routing flags (--routing, --allocator,
// --null-experts, --top-k, --top-p, --min-k, --max-k).
[[nodiscard]] std::vector<FlagSpec> ModelFlagSpecs(std::vector<FlagSpec> more);

// The model of --model, a session over it (--threads) with the routing files loaded, and the routing
// params of the flags, validated against the model (InvalidArgument naming the flag).
struct LoadedSession {
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<engine::Session> session;
  engine::RoutingParams routing;
};
[[nodiscard]] absl::StatusOr<LoadedSession> OpenSession(const Flags& flags);

// The whole text of the --data file. Errors: NotFound naming an unreadable path; InvalidArgument for a
// directory.
[[nodiscard]] absl::Status ReadDataFile(const std::string& path, std::string* text);

// "mean_k=1.53 expert_flops=... saved=..% " summary of a counter, and a per-layer mean k list "[1.50 1.56 ...]".
[[nodiscard]] std::string RoutingSummary(const engine::FlopCounter& flops);
[[nodiscard]] std::string MeanKPerLayer(const engine::FlopCounter& flops, int64_t num_layers);

}  // namespace adak::cli

#endif  // ADAK_SERVER_CLI_COMMANDS_H_
