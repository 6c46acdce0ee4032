// The offline `adak` commands (library adak_cli_tools): generate, logits, perplexity, eval,
// train-allocator, inspect, tokenize, make-model. `serve` lives apart (cli/serve_command.h) so the serving
// binary links no training or testing code.
//
// Each SetUp* function gives `command` its one-line description and its flags (cli/flags.h) and returns
// the action to run once they have parsed (cli/app.h); the action prints its result on stdout and
// progress on stderr. Thread-compatible.
#ifndef ADAK_CLI_COMMANDS_H_
#define ADAK_CLI_COMMANDS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/dtype.h"
#include "cli/app.h"
#include "cli/routing_flags.h"
#include "engine/device.h"
#include "engine/flops.h"
#include "engine/model.h"
#include "engine/routing.h"
#include "engine/session.h"
#include "kernels/cpu/matmul.h"

namespace adak::cli {

[[nodiscard]] CommandFn SetUpGenerate(CLI::App* command);
[[nodiscard]] CommandFn SetUpLogits(CLI::App* command);
[[nodiscard]] CommandFn SetUpPerplexity(CLI::App* command);
[[nodiscard]] CommandFn SetUpEval(CLI::App* command);
[[nodiscard]] CommandFn SetUpTrainAllocator(CLI::App* command);
[[nodiscard]] CommandFn SetUpInspect(CLI::App* command);
[[nodiscard]] CommandFn SetUpTokenize(CLI::App* command);
[[nodiscard]] CommandFn SetUpMakeModel(CLI::App* command);

// The flags every routing model command shares: --model (required), --threads, --kv-cache-dtype,
// --matmul-precision, --device and the routing flags.
struct ModelFlags {
  std::string model;
  int threads = 0;
  // --kv-cache-dtype (engine::ParseKvCacheDType): f32 for the scoring commands (exact reference numbers);
  // `adak generate` sets bf16 before AddModelFlags, as `adak serve` defaults.
  std::string kv_cache_dtype = "f32";
  // --matmul-precision (engine::ParseDotPrecision): fp32 (exact) for the scoring commands; `adak generate` sets
  // bf16 before AddModelFlags, as `adak serve` defaults.
  std::string matmul_precision = "fp32";
  // --device (engine::ParseDevice): cpu, cuda or cuda:N; the backend every command computes on.
  std::string device = "cpu";
  RoutingFlags routing;
};
void AddModelFlags(CLI::App* command, ModelFlags* flags);
// --kv-cache-dtype as an element type. Errors: InvalidArgument naming the flag and the choices.
[[nodiscard]] absl::StatusOr<DType> KvCacheDType(const ModelFlags& flags);
// --matmul-precision as a dot precision. Errors: InvalidArgument naming the flag and the choices.
[[nodiscard]] absl::StatusOr<kernels::DotPrecision> MatMulPrecision(const ModelFlags& flags);
// A --device value (ModelFlags::device, train-allocator's --device) as a backend and device ordinal. Errors:
// InvalidArgument naming the flag and the accepted forms.
[[nodiscard]] absl::StatusOr<engine::DeviceSpec> ParseDeviceFlag(std::string_view text);

// The model of --model, its routing files, and the routing params of the flags, validated against the
// model (InvalidArgument naming the flag; the loaders' errors).
struct LoadedModel {
  std::unique_ptr<engine::Model> model;
  engine::RoutingWeights weights;
  engine::RoutingParams routing;
};
[[nodiscard]] absl::StatusOr<LoadedModel> LoadModelAndRouting(const ModelFlags& flags);

// LoadModelAndRouting plus a single-sequence session over it (--threads, --kv-cache-dtype, --matmul-precision,
// --device) holding the routing files. Errors: LoadModelAndRouting's; CreateBackend's for --device (InvalidArgument
// for a backend not compiled in, FailedPrecondition when it has no device here).
struct LoadedSession {
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<engine::Session> session;
  engine::RoutingParams routing;
};
[[nodiscard]] absl::StatusOr<LoadedSession> OpenSession(const ModelFlags& flags);

// The whole text of the --data file. Errors: NotFound naming an unreadable path; InvalidArgument for a
// directory.
[[nodiscard]] absl::Status ReadDataFile(const std::string& path, std::string* text);

// "mean_k=1.53 expert_flops=... saved=..% " summary of a counter, and a per-layer mean k list "[1.50 1.56 ...]".
[[nodiscard]] std::string RoutingSummary(const engine::FlopCounter& flops);
[[nodiscard]] std::string MeanKPerLayer(const engine::FlopCounter& flops, int64_t num_layers);

}  // namespace adak::cli

#endif  // ADAK_CLI_COMMANDS_H_
