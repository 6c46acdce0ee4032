// The servers adak-loadtest drives: our gRPC API (adak.v1.Generation/GenerateStream) or any
// OpenAI-compatible `POST /v1/completions` with `"stream": true` (server-sent events), so the same tool
// measures another server side by side.
//
// Every request streams; Send blocks until the stream ends, the per-request timeout passes, or the
// transport fails, and fills the record (timings relative to `run_start`). Requests always set
// `ignore_eos` (vLLM's extension; ours too) so the output length is the one asked for, greedy unless a
// temperature is given, and the arm's routing: over gRPC as RoutingOptions, over HTTP as our
// `"adak": {"routing": ...}` extension (omitted for the "default" arm, so other servers see a plain
// OpenAI body). Implementations are thread-safe: many threads call Send at once.
#ifndef ADAK_LOADTEST_TARGET_H_
#define ADAK_LOADTEST_TARGET_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "loadtest/report.h"
#include "loadtest/workload.h"
#include "nlohmann/json.hpp"

namespace adak::loadtest {

struct TargetOptions {
  std::string api = "grpc";  // "grpc" or "openai"
  // grpc: HOST:PORT. openai: http://HOST:PORT[/PATH] (PATH default /v1/completions).
  std::string address;
  std::string model;  // openai: the "model" field; empty = omitted
  double temperature = 0.0;
  absl::Duration timeout = absl::Seconds(600);
  // grpc: retries of a call that ends UNAVAILABLE before any response (a draining or restarting replica
  // behind a balancer), through gRPC's own retry policy (backoff 0.2 s doubling to 2 s); 0..4.
  int64_t grpc_retries = 0;
};

class Target {
 public:
  virtual ~Target() = default;
  virtual void Send(const RequestSpec& spec, const Arm& arm, std::chrono::steady_clock::time_point run_start,
                    RequestRecord* record) = 0;
};

// Whether one OpenAI streaming event's first choice is a generated token, as vLLM's benchmark_serving counts
// chunks: it has text, or its finish_reason is null (a step whose text the server still holds back, e.g. an
// unfinished UTF-8 character, arrives with empty text). The closing event (finish_reason set, no text) is not.
[[nodiscard]] bool IsTokenEvent(const nlohmann::json& choice);

// InvalidArgument for an unknown api or an address it cannot parse; Unavailable when a gRPC channel does
// not connect within 10 s.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Target>> MakeTarget(const TargetOptions& options);

}  // namespace adak::loadtest

#endif  // ADAK_LOADTEST_TARGET_H_
