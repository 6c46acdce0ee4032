// `adak serve`: the inference server (gRPC + OpenAI-compatible HTTP) over one model, until SIGTERM/SIGINT.
//
// SIGTERM and SIGINT are blocked in every thread (the mask is set before any thread starts) and taken
// with sigwait on the main thread: the first one drains (readiness off, new calls UNAVAILABLE, running
// requests finish for up to --drain-timeout, then the rest are cancelled) and the process exits 0; a
// second one during the drain cancels the remaining requests at once.
#include <csignal>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "server/server_app.h"

namespace adak::cli {
namespace {

absl::StatusOr<server::ServerAppOptions> OptionsFromFlags(const Flags& flags) {
  server::ServerAppOptions o;
  ASSIGN_OR_RETURN(std::string model, flags.Required("model"));
  o.model_dir = model;
  o.allocator = flags.String("allocator", "");
  o.null_experts = flags.String("null-experts", "");
  o.default_routing = flags.String("default-routing", "topk");
  ASSIGN_OR_RETURN(o.default_top_p, flags.Double("default-top-p", 0.0, 0.0, 1.0));
  o.host = flags.String("host", "127.0.0.1");
  ASSIGN_OR_RETURN(int64_t grpc_port, flags.Int("grpc-port", 50051, -1, 65535));
  ASSIGN_OR_RETURN(int64_t http_port, flags.Int("http-port", 8080, -1, 65535));
  ASSIGN_OR_RETURN(int64_t http_threads, flags.Int("http-threads", 2, 1, 256));
  ASSIGN_OR_RETURN(int64_t threads, flags.Int("threads", 0, 0, 1024));
  o.grpc_port = static_cast<int>(grpc_port);
  o.http_port = static_cast<int>(http_port);
  o.http_threads = static_cast<int>(http_threads);
  o.threads = static_cast<int>(threads);
  ASSIGN_OR_RETURN(o.max_batch_tokens, flags.Int("max-batch-tokens", 512, 1, 1 << 20));
  ASSIGN_OR_RETURN(o.max_running_requests, flags.Int("max-running-requests", 64, 1, 1 << 16));
  ASSIGN_OR_RETURN(o.max_waiting_requests, flags.Int("max-waiting-requests", 256, 0, 1 << 20));
  ASSIGN_OR_RETURN(o.prefill_chunk, flags.Int("prefill-chunk", 256, 1, 1 << 20));
  ASSIGN_OR_RETURN(o.max_batch_expert_activations, flags.Double("max-batch-expert-activations", 0.0, 0.0, 1e12));
  ASSIGN_OR_RETURN(o.kv_cache_mib, flags.Int("kv-cache-mib", 0, 0, int64_t{1} << 30));
  ASSIGN_OR_RETURN(double drain, flags.Double("drain-timeout", 30.0, 0.0, 86400.0));
  o.drain_timeout = absl::Seconds(drain);
  return o;
}

const char* SignalName(int signal) { return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal"; }

absl::Status Serve(const Flags& flags, const sigset_t& signals) {
  ASSIGN_OR_RETURN(server::ServerAppOptions options, OptionsFromFlags(flags));
  ASSIGN_OR_RETURN(std::unique_ptr<server::ServerApp> app, server::ServerApp::Create(options));
  RETURN_IF_ERROR(app->Start());
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
    const timespec poll = {0, 100 * 1000 * 1000};
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

}  // namespace

int RunServe(int argc, char** argv) {
  // Block the signals before any thread exists, so every thread inherits the mask and only sigwait
  // takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto flags = Flags::Parse(argc, argv, 2,
                            {{"model"}, {"allocator"}, {"null-experts"}, {"default-routing"}, {"default-top-p"},
                             {"host"}, {"grpc-port"}, {"http-port"}, {"http-threads"}, {"threads"},
                             {"max-batch-tokens"}, {"max-running-requests"}, {"max-waiting-requests"},
                             {"prefill-chunk"}, {"max-batch-expert-activations"}, {"kv-cache-mib"}, {"drain-timeout"}});
  if (!flags.ok()) return ReportError("serve", flags.status());
  absl::Status s = Serve(*flags, signals);
  if (!s.ok()) return ReportError("serve", s);
  return 0;
}

}  // namespace adak::cli
