// `adak serve`: the inference server (gRPC + OpenAI-compatible HTTP) over one model, until SIGTERM/SIGINT.
//
// SIGTERM and SIGINT are blocked in every thread (the mask is set before any thread starts) and taken
// with sigwait on the main thread: the first one drains (readiness off, new calls UNAVAILABLE, running
// requests finish for up to --drain-timeout, then the rest are cancelled) and the process exits 0; a
// second one during the drain cancels the remaining requests at once.
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/flags.h"
#include "cli/routing_flags.h"
#include "cli/serve_command.h"
#include "server/auth.h"
#include "server/server_app.h"

namespace adak::cli {
namespace {

struct ServeFlags {
  server::ServerAppOptions options;
  std::string model;
  RoutingFileFlags files;
  std::string default_routing;
  double drain_timeout_s = 30.0;
  double drain_grace_s = 0.0;
  double http_header_timeout_s = 10.0;
  double http_idle_timeout_s = 60.0;
  std::vector<std::string> api_keys;
  CLI::Option* default_routing_option = nullptr;
};

absl::StatusOr<server::ServerAppOptions> OptionsFromFlags(const ServeFlags& flags) {
  server::ServerAppOptions o = flags.options;
  o.model_dir = flags.model;
  o.allocators = AllocatorFiles(flags.files);
  o.null_experts = flags.files.null_experts;
  ASSIGN_OR_RETURN(o.default_routing, ImpliedRoutingPolicy("default-routing", Given(flags.default_routing_option),
                                                           flags.default_routing, flags.files));
  o.drain_timeout = absl::Seconds(flags.drain_timeout_s);
  o.drain_grace = absl::Seconds(flags.drain_grace_s);
  o.http_header_timeout = absl::Seconds(flags.http_header_timeout_s);
  o.http_idle_timeout = absl::Seconds(flags.http_idle_timeout_s);
  o.api_keys = flags.api_keys;
  if (const char* file = std::getenv("ADAK_API_KEYS_FILE"); file != nullptr && *file != '\0') {
    ASSIGN_OR_RETURN(std::vector<std::string> keys, server::ApiKeys::ReadFile(file));
    if (keys.empty()) {
      return absl::InvalidArgumentError(StrCatStd("ADAK_API_KEYS_FILE ", file, " holds no key"));
    }
    o.api_keys.insert(o.api_keys.end(), keys.begin(), keys.end());
  }
  return o;
}

const char* SignalName(int signal) { return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal"; }

absl::Status Serve(const ServeFlags& flags, const sigset_t& signals) {
  ASSIGN_OR_RETURN(server::ServerAppOptions options, OptionsFromFlags(flags));
  ASSIGN_OR_RETURN(std::unique_ptr<server::ServerApp> app, server::ServerApp::Create(options));
  RETURN_IF_ERROR(app->Start());
  if (!options.api_keys.empty()) {
    LogInfo(StrCatStd("adak serve: ", options.api_keys.size(),
                      " API key(s) required on HTTP /v1/* and adak.v1.Generation",
                      options.protect_metrics ? " and /metrics" : "", "; health",
                      options.protect_metrics ? "" : " and metrics", " open"));
  }
  LogInfo(app->ReadyLine());

  int signal = 0;
  sigwait(&signals, &signal);
  LogInfo(absl::StrFormat("adak serve: %s received, draining (up to %s)", SignalName(signal),
                          absl::FormatDuration(options.drain_timeout)));
  absl::Notification drained;
  bool idle = false;
  std::thread drain([&] {
    idle = app->Drain(options.drain_timeout);
    drained.Notify();
  });
  // A second signal while draining: stop now (the remaining requests end with UNAVAILABLE).
  while (!drained.HasBeenNotified()) {
    const timespec poll = {0, 100'000'000};  // 100 ms
    siginfo_t info;
    if (sigtimedwait(&signals, &info, &poll) > 0) {
      LogInfo(absl::StrFormat("adak serve: second %s, cancelling the remaining requests", SignalName(info.si_signo)));
      app->Shutdown();
    }
  }
  drain.join();
  LogInfo(idle ? "adak serve: drained, exiting" : "adak serve: drain timeout passed, remaining requests cancelled");
  return absl::OkStatus();
}

absl::Status BlockSignalsAndServe(const ServeFlags& flags) {
  // Block the signals before any thread exists, so every thread inherits the mask and only sigwait
  // takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return Serve(flags, signals);
}

}  // namespace

CommandFn SetUpServe(CLI::App* command) {
  command->description("the inference server (gRPC + OpenAI-compatible HTTP) over one model, until SIGTERM/SIGINT");
  auto flags = std::make_shared<ServeFlags>();
  server::ServerAppOptions& o = flags->options;
  AddString(command, "model", &flags->model, "Hugging Face model directory", "DIR")->required();
  AddRoutingFileFlags(command, "default-routing", &flags->files);
  flags->default_routing_option =
      AddString(command, "default-routing", &flags->default_routing,
                "routing of requests that name none: topk, adak (needs --allocator), null (needs --null-experts), "
                "topp or threshold (default: adak with --allocator, null with --null-experts, else topk)",
                "POLICY");
  AddDouble(command, "default-top-p", &o.default_top_p, "threshold of --default-routing topp; 0 = 0.5", 0.0, 1.0);
  AddDouble(command, "default-threshold", &o.default_threshold,
            "t of --default-routing threshold: keep expert i of the native top-K while p_i >= t * p_1", 0.0, 1.0);
  AddString(command, "host", &o.host, "address to listen on", "HOST");
  AddInt(command, "grpc-port", &o.grpc_port, "gRPC port; 0 = ephemeral, -1 = no gRPC server", -1, 65535);
  AddInt(command, "http-port", &o.http_port, "HTTP port; 0 = ephemeral, -1 = no HTTP gateway", -1, 65535);
  AddInt(command, "http-threads", &o.http_threads, "HTTP gateway threads", 1, 256);
  AddInt(command, "max-connections", &o.max_connections,
         "open HTTP connections at most (beyond: 503 + Retry-After); 0 = half the fd limit, at most 4096", 0, 1 << 20);
  AddDouble(command, "http-header-timeout", &flags->http_header_timeout_s,
            "seconds an HTTP connection has to send a complete request header (slowloris)", 0.001, 86400.0);
  AddDouble(command, "http-idle-timeout", &flags->http_idle_timeout_s,
            "seconds a kept-alive HTTP connection may idle between requests", 0.001, 86400.0);
  command
      ->add_option("--api-key", flags->api_keys,
                   "API key clients must send (Authorization: Bearer KEY; gRPC metadata authorization); repeatable; "
                   "also read from the file named by ADAK_API_KEYS_FILE, one a line")
      ->type_name("KEY")
      ->allow_extra_args(false);
  command
      ->add_option("--allowed-origins", o.allowed_origins,
                   "browser origins allowed to call the HTTP API cross-site (CORS), e.g. https://app.example.com or *; "
                   "repeatable or comma-separated; default none")
      ->delimiter(',')
      ->type_name("ORIGIN")
      ->allow_extra_args(false);
  AddString(command, "tls-cert", &o.tls_cert, "PEM certificate chain: the gRPC and HTTP ports speak TLS", "FILE");
  AddString(command, "tls-key", &o.tls_key, "PEM private key of --tls-cert", "FILE");
  AddString(command, "tls-client-ca", &o.tls_client_ca,
            "PEM CA: clients must present a certificate it signed (mutual TLS, both ports)", "FILE");
  AddFlag(command, "protect-metrics", &o.protect_metrics, "with API keys, /metrics needs a key too");
  AddInt(command, "threads", &o.threads, "engine worker threads; 0 = all hardware threads", 0, 1024);
  AddInt(command, "max-batch-tokens", &o.max_batch_tokens, "tokens per forward (prefill chunks + decodes)", 1, 1 << 20);
  AddInt(command, "max-running-requests", &o.max_running_requests, "sequences holding KV blocks", 1, 1 << 16);
  AddInt(command, "max-waiting-requests", &o.max_waiting_requests,
         "admitted but not yet running; beyond: RESOURCE_EXHAUSTED", 0, 1 << 20);
  AddInt(command, "prefill-chunk", &o.prefill_chunk, "prompt tokens of one request per step at most", 1, 1 << 20);
  AddDouble(command, "max-batch-expert-activations", &o.max_batch_expert_activations,
            "expert-compute budget per step in expected routed-expert activations; 0 = max-batch-tokens x native "
            "K x MoE layers",
            0.0, 1e12);
  AddInt(command, "kv-cache-mib", &o.kv_cache_mib,
         "KV cache budget in MiB; 0 = enough for max-running-requests full-context sequences, capped at 4 GiB", 0,
         int64_t{1} << 30);
  AddString(command, "kv-cache-dtype", &o.kv_cache_dtype,
            "KV cache element type: f32, or bf16 (half the bytes per block; attention still computes in fp32)", "TYPE");
  AddString(command, "matmul-precision", &o.matmul_precision,
            "dot products with BF16 weights: bf16 (activations rounded to bf16, vdpbf16ps, as llama.cpp; the "
            "default) or fp32 (exact); only CPUs with AVX512_BF16 have the bf16 path",
            "PRECISION");
  AddString(command, "device", &o.device, "compute backend: cpu, cuda (the first GPU) or cuda:N (GPU N)", "DEVICE");
  AddDouble(command, "drain-timeout", &flags->drain_timeout_s,
            "seconds running requests may take to finish after SIGTERM/SIGINT", 0.0, 86400.0);
  AddDouble(command, "drain-grace", &flags->drain_grace_s,
            "seconds the ports stay open after SIGTERM/SIGINT (new calls refused, readiness off) even when "
            "nothing runs, so balancers see the readiness drop first; at most --drain-timeout",
            0.0, 86400.0);
  return [flags] { return BlockSignalsAndServe(*flags); };
}

}  // namespace adak::cli
