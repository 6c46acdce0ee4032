// The whole serving process in one object: the model and its routing files, the CPU backend, the paged KV
// cache, the model runner, the continuous-batching scheduler, the Prometheus metrics, the gRPC server and
// the HTTP gateway, wired through one ServiceContext. `adak serve` (cli/cmd_serve.cc) is a thin
// shell around it, and in-process tests build one directly (ports 0 = ephemeral).
//
// Lifecycle: Create (loads and validates everything; nothing listens yet) -> Start (scheduler thread,
// gRPC and HTTP listening, phase SERVING) -> [a device failure of an engine step: the failing requests end
// INTERNAL / 500, readiness turns NOT_SERVING for good and new calls are UNAVAILABLE; liveness stays on]
// -> Drain (readiness NOT_SERVING on grpc.health.v1 and /readyz,
// new calls UNAVAILABLE, running and queued requests go on for up to the timeout) -> Shutdown (requests
// still running end with UNAVAILABLE, front ends stop, threads joined). The destructor calls Shutdown.
//
// Thread-safety: Drain and Shutdown may be called from any thread (e.g. a signal-waiting thread), once
// each is enough and both are idempotent; the accessors are safe from any thread after Start.
#ifndef ADAK_SERVER_SERVER_APP_H_
#define ADAK_SERVER_SERVER_APP_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/model.h"
#include "engine/routing.h"
#include "scheduler/scheduler.h"
#include "server/metrics.h"
#include "server/service_context.h"

namespace adak::server {

struct ServerAppOptions {
  std::filesystem::path model_dir;  // required: a Hugging Face model directory
  // Optional Ada-K allocator files (enable routing "adak"), each a named profile; the first is the default.
  std::vector<engine::AllocatorFile> allocators;
  std::filesystem::path null_experts;  // optional null-experts file (enables routing "null")
  // The routing of requests that name no policy: "topk", "adak" (needs `allocators`), "null" (needs
  // `null_experts`), "topp" (uses default_top_p, the model's weighting) or "threshold" (default_threshold).
  std::string default_routing = "topk";
  double default_top_p = 0.0;      // for default_routing "topp": (0, 1]; 0 = 0.5
  double default_threshold = 0.3;  // for default_routing "threshold": [0, 1]

  std::string host = "127.0.0.1";
  int grpc_port = 50051;  // 0 = ephemeral; -1 = no gRPC server
  int http_port = 8080;   // 0 = ephemeral; -1 = no HTTP gateway
  int http_threads = 2;
  // HTTP connection bounds (server/http/gateway.h): open connections at most (0 = half the fd limit, at most
  // 4096), the time a connection has to send a request header, and the keep-alive idle time.
  int64_t max_connections = 0;
  absl::Duration http_header_timeout = absl::Seconds(10);
  absl::Duration http_idle_timeout = absl::Seconds(60);
  // API keys (server/auth.h); empty = no authentication. protect_metrics: /metrics needs a key too.
  std::vector<std::string> api_keys;
  bool protect_metrics = false;
  // TLS for both front ends (server/grpc/server.h, server/http/gateway.h): PEM certificate chain and key, and
  // optionally the CA client certificates must chain to (mutual TLS). All empty: plaintext.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Browser origins allowed cross-site (CORS, server/http/gateway.h); empty = none.
  std::vector<std::string> allowed_origins;

  int threads = 0;  // engine worker threads; 0 = all hardware threads
  int64_t max_batch_tokens = 512;
  int64_t max_running_requests = 64;
  int64_t max_waiting_requests = 256;
  int64_t prefill_chunk = 256;
  // Expert-compute budget per step in expected routed-expert activations (scheduler/expert_budget.h);
  // 0 = max_batch_tokens x native K x MoE layers.
  double max_batch_expert_activations = 0.0;
  // KV cache budget in MiB; 0 = enough for max_running_requests full-context sequences, capped at 4 GiB
  // but never below one full-context sequence. The block count is budget / KvCache::BytesPerBlock.
  int64_t kv_cache_mib = 0;
  int64_t block_size = 16;
  // KV cache element type (engine::ParseKvCacheDType): "bf16" (half the bytes per block of "f32", so twice
  // the blocks in the same budget; attention still computes in fp32; docs/performance.md measures its
  // perplexity cost) or "f32".
  std::string kv_cache_dtype = "bf16";
  // Dot products with BF16 weights (engine::ParseDotPrecision): "bf16" (activations rounded to bf16 and dotted
  // with vdpbf16ps, as llama.cpp; on CPUs without AVX512_BF16 the exact path runs anyway) or "fp32" (exact).
  std::string matmul_precision = "bf16";
  // The compute backend (engine::ParseDevice): "cpu", "cuda" (the first GPU) or "cuda:N".
  std::string device = "cpu";
  absl::Duration drain_timeout = absl::Seconds(30);  // what `adak serve` passes to Drain on SIGTERM
  // The least time Drain keeps the listeners open (refusing new calls, readiness off) even when nothing
  // runs, so that balancers polling readiness stop routing here before the ports close (a lame-duck
  // period; on Kubernetes a preStop sleep does the same before SIGTERM). Never beyond Drain's timeout.
  absl::Duration drain_grace = absl::ZeroDuration();
  MetricsOptions metrics;
};

class ServerApp {
 public:
  // Builds the backend of options.device, loads the model (and allocator / null experts), builds the engine,
  // the scheduler and the metrics. Nothing listens yet. Errors: InvalidArgument for bad options (names the
  // option and its range) or a default routing the loaded files cannot run; CreateBackend's for the device
  // (InvalidArgument for a backend not compiled in, FailedPrecondition when it has no device here), before
  // the model is loaded; the loaders' errors (NotFound naming a missing file,
  // InvalidArgument naming a corrupt file and tensor); ResourceExhausted when the KV cache cannot be
  // allocated.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ServerApp>> Create(const ServerAppOptions& options);
  ~ServerApp();  // Shutdown()
  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  // Starts the scheduler thread, the gRPC server and the HTTP gateway (those not disabled with port -1),
  // then turns SERVING. Errors: Unavailable naming host:port when a port cannot be bound (everything
  // started is stopped again). REQUIRES: called once.
  [[nodiscard]] absl::Status Start();

  // The bound ports (the ephemeral ones resolved); -1 for a disabled front end. Valid after Start.
  [[nodiscard]] int grpc_port() const;
  [[nodiscard]] int http_port() const;

  // "adak serve: ready model=NAME grpc=HOST:PORT http=HOST:PORT" (a disabled front end reads "off"),
  // the one line `adak serve` logs when it is ready.
  [[nodiscard]] std::string ReadyLine() const;

  // Readiness off (grpc.health.v1 "adak.v1.Generation" NOT_SERVING, /readyz 503), new calls UNAVAILABLE,
  // the scheduler stops admitting; then waits until running and queued requests finish or `timeout`
  // passes, and at least options().drain_grace (capped at `timeout`), and calls Shutdown. Returns true
  // when everything finished before the timeout.
  bool Drain(absl::Duration timeout);
  // Ends every request still running with UNAVAILABLE, stops the front ends (giving calls a moment to
  // send their final messages) and joins every thread. Idempotent.
  void Shutdown();

  [[nodiscard]] const ServerAppOptions& options() const;
  [[nodiscard]] const engine::Model& model() const;
  [[nodiscard]] scheduler::Scheduler* scheduler();
  [[nodiscard]] Metrics* metrics();
  [[nodiscard]] ServiceContext* context();

 private:
  class Impl;
  explicit ServerApp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace adak::server

#endif  // ADAK_SERVER_SERVER_APP_H_
