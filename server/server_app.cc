#include "server/server_app.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "engine/routing_weights.h"
#include "kernels/cpu/matmul.h"
#include "scheduler/executor.h"
#include "server/auth.h"
#include "server/engine_health.h"
#include "server/grpc/server.h"
#include "server/http/gateway.h"

namespace adak::server {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kAutoKvCacheCapMiB = 4096;
// How long Shutdown gives calls to send their final messages before the front ends cancel them.
constexpr absl::Duration kFrontEndGrace = absl::Seconds(2);

// --kv-cache-dtype as an element type.
absl::StatusOr<DType> KvCacheDType(const ServerAppOptions& o) {
  absl::StatusOr<DType> dtype = engine::ParseKvCacheDType(o.kv_cache_dtype);
  if (!dtype.ok()) return absl::InvalidArgumentError(StrCatStd("--kv-cache-dtype: ", ToStd(dtype.status().message())));
  return *dtype;
}

// --matmul-precision as a kernels::DotPrecision.
absl::StatusOr<kernels::DotPrecision> MatMulPrecision(const ServerAppOptions& o) {
  absl::StatusOr<kernels::DotPrecision> precision = engine::ParseDotPrecision(o.matmul_precision);
  if (!precision.ok()) {
    return absl::InvalidArgumentError(StrCatStd("--matmul-precision: ", ToStd(precision.status().message())));
  }
  return *precision;
}

// --device as a backend and device ordinal.
absl::StatusOr<engine::DeviceSpec> ComputeDevice(const ServerAppOptions& o) {
  absl::StatusOr<engine::DeviceSpec> device = engine::ParseDevice(o.device);
  if (!device.ok()) return absl::InvalidArgumentError(StrCatStd("--device: ", ToStd(device.status().message())));
  return *device;
}

absl::Status ValidateOptions(const ServerAppOptions& o) {
  auto range = [](const char* flag, int64_t value, int64_t lo, int64_t hi) -> absl::Status {
    if (value < lo || value > hi) {
      return absl::InvalidArgumentError(StrCatStd("--", flag, " must be in [", lo, ", ", hi, "], got ", value));
    }
    return absl::OkStatus();
  };
  if (o.model_dir.empty()) return absl::InvalidArgumentError("--model is required (a Hugging Face model directory)");
  RETURN_IF_ERROR(range("grpc-port", o.grpc_port, -1, 65535));
  RETURN_IF_ERROR(range("http-port", o.http_port, -1, 65535));
  RETURN_IF_ERROR(range("threads", o.threads, 0, 1024));
  RETURN_IF_ERROR(range("http-threads", o.http_threads, 1, 256));
  RETURN_IF_ERROR(range("max-connections", o.max_connections, 0, 1 << 20));
  for (const auto& [flag, value] :
       {std::pair<const char*, absl::Duration>{"http-header-timeout", o.http_header_timeout},
        {"http-idle-timeout", o.http_idle_timeout}}) {
    if (value <= absl::ZeroDuration() || value > absl::Hours(24)) {
      return absl::InvalidArgumentError(
          StrCatStd("--", flag, " must be in (0, 86400] seconds, got ", absl::FormatDuration(value)));
    }
  }
  RETURN_IF_ERROR(range("max-batch-tokens", o.max_batch_tokens, 1, 1 << 20));
  RETURN_IF_ERROR(range("max-running-requests", o.max_running_requests, 1, 1 << 16));
  RETURN_IF_ERROR(range("max-waiting-requests", o.max_waiting_requests, 0, 1 << 20));
  RETURN_IF_ERROR(range("prefill-chunk", o.prefill_chunk, 1, 1 << 20));
  if (!(o.max_batch_expert_activations >= 0.0 && o.max_batch_expert_activations <= 1e12)) {
    return absl::InvalidArgumentError(
        StrCatStd("--max-batch-expert-activations must be in [0, 1e12], got ", o.max_batch_expert_activations));
  }
  RETURN_IF_ERROR(range("kv-cache-mib", o.kv_cache_mib, 0, int64_t{1} << 30));
  RETURN_IF_ERROR(range("block-size", o.block_size, 1, 4096));
  RETURN_IF_ERROR(KvCacheDType(o).status());
  RETURN_IF_ERROR(MatMulPrecision(o).status());
  RETURN_IF_ERROR(ComputeDevice(o).status());
  if (o.drain_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        StrCatStd("--drain-grace must be >= 0 seconds, got ", absl::FormatDuration(o.drain_grace)));
  }
  if (o.drain_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        StrCatStd("--drain-timeout must be >= 0 seconds, got ", absl::FormatDuration(o.drain_timeout)));
  }
  if (o.grpc_port < 0 && o.http_port < 0) {
    return absl::InvalidArgumentError("--grpc-port and --http-port are both off (-1): nothing would listen");
  }
  return absl::OkStatus();
}

absl::StatusOr<engine::RoutingParams> DefaultRouting(const ServerAppOptions& o, const engine::ModelConfig& config,
                                                     const engine::RoutingWeights& weights) {
  absl::StatusOr<engine::RoutingPolicy> policy = engine::ParseRoutingPolicy(o.default_routing);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(StrCatStd("--default-routing: ", ToStd(policy.status().message())));
  }
  engine::RoutingParams params{.policy = *policy};
  if (*policy == engine::RoutingPolicy::kTopP) {
    if (!(o.default_top_p >= 0.0 && o.default_top_p <= 1.0)) {
      return absl::InvalidArgumentError(StrCatStd("--default-top-p must be in (0, 1], got ", o.default_top_p));
    }
    params.top_p = o.default_top_p > 0.0 ? static_cast<float>(o.default_top_p) : 0.5f;
  }
  if (*policy == engine::RoutingPolicy::kThreshold) params.threshold = static_cast<float>(o.default_threshold);
  absl::Status valid = engine::ValidateRoutingParams(params, config, weights);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(StrCatStd("--default-routing ", o.default_routing, ": ", ToStd(valid.message())));
  }
  return params;
}

// The KV cache block count for the options (see ServerAppOptions::kv_cache_mib).
absl::StatusOr<int64_t> KvBlocks(const ServerAppOptions& o, const engine::ModelConfig& config, DType dtype) {
  const int64_t bytes_per_block = engine::KvCache::BytesPerBlock(config, o.block_size, dtype);
  const int64_t per_sequence = engine::BlocksFor(config.max_position_embeddings, o.block_size);
  if (o.kv_cache_mib == 0) {
    const int64_t cap = std::max<int64_t>(1, kAutoKvCacheCapMiB * kMiB / bytes_per_block);
    return std::max(per_sequence, std::min(o.max_running_requests * per_sequence, cap));
  }
  const int64_t blocks = o.kv_cache_mib * kMiB / bytes_per_block;
  if (blocks < per_sequence) {
    const int64_t need_mib = (per_sequence * bytes_per_block + kMiB - 1) / kMiB;
    return absl::InvalidArgumentError(StrCatStd("--kv-cache-mib ", o.kv_cache_mib, " holds ", blocks, " blocks of ",
                                                o.block_size, " tokens, fewer than one full-context sequence needs (",
                                                config.max_position_embeddings, " tokens = ", per_sequence,
                                                " blocks = ", need_mib, " MiB)"));
  }
  return blocks;
}

std::string ModelName(const std::filesystem::path& dir) {
  std::filesystem::path normal = dir.lexically_normal();
  if (normal.filename().empty()) normal = normal.parent_path();
  std::string name = normal.filename().string();
  return name.empty() ? "model" : name;
}

}  // namespace

class ServerApp::Impl {
 public:
  ServerAppOptions options;
  std::unique_ptr<engine::Model> model;
  engine::RoutingWeights routing_weights;
  std::unique_ptr<engine::Backend> backend;
  std::unique_ptr<engine::KvCache> cache;
  std::unique_ptr<engine::ModelRunner> runner;
  std::unique_ptr<scheduler::StepExecutor> executor;
  std::unique_ptr<Metrics> metrics;
  ServingState state;
  // The scheduler's observer: the metrics, behind the engine-health check that turns `state` unready on
  // a device failure.
  std::unique_ptr<EngineHealthObserver> observer;
  std::unique_ptr<scheduler::Scheduler> scheduler;
  ApiKeys api_keys;
  ServiceContext context;
  // Front ends last, so they are destroyed first.
  std::unique_ptr<GrpcServer> grpc;
  std::unique_ptr<HttpGateway> http;

  absl::Mutex mu;
  bool started ABSL_GUARDED_BY(mu) = false;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
};

absl::StatusOr<std::unique_ptr<ServerApp>> ServerApp::Create(const ServerAppOptions& options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  // The backend first: a device that is absent here fails before a large model is read.
  ASSIGN_OR_RETURN(const engine::DeviceSpec device, ComputeDevice(options));
  ASSIGN_OR_RETURN(const kernels::DotPrecision dot_precision, MatMulPrecision(options));
  ASSIGN_OR_RETURN(impl->backend, engine::CreateBackend(device.backend, {.num_threads = options.threads,
                                                                         .dot_precision = dot_precision,
                                                                         .device_index = device.index}));
  LogInfo(StrCatStd("adak serve: device ", engine::DeviceName(device)));
  std::string dot_path = "exact";
  if (device.backend != "cpu") {
    dot_path = StrCatStd("on ", engine::DeviceName(device));
  } else if (dot_precision == kernels::DotPrecision::kBf16) {
    dot_path = kernels::Bf16DotSupported() ? "BF16 weights dot bf16-rounded activations with vdpbf16ps"
                                           : "no AVX512_BF16 on this CPU: exact";
  }
  LogInfo(absl::StrFormat("adak serve: matmul precision %s (%s)", std::string(engine::DotPrecisionName(dot_precision)),
                          dot_path));
  ASSIGN_OR_RETURN(impl->model, engine::LoadModel(options.model_dir));
  const engine::ModelConfig& config = impl->model->config;
  for (const engine::AllocatorFile& file : options.allocators) {
    RETURN_IF_ERROR(engine::LoadAllocator(file.path, config, &impl->routing_weights, file.name));
  }
  if (!options.null_experts.empty()) {
    RETURN_IF_ERROR(engine::LoadNullExperts(options.null_experts, config, &impl->routing_weights));
  }
  ASSIGN_OR_RETURN(engine::RoutingParams default_routing, DefaultRouting(options, config, impl->routing_weights));
  ASSIGN_OR_RETURN(const DType kv_dtype, KvCacheDType(options));
  ASSIGN_OR_RETURN(const int64_t blocks, KvBlocks(options, config, kv_dtype));

  ASSIGN_OR_RETURN(impl->cache,
                   engine::KvCache::Create(impl->backend.get(), config, blocks, options.block_size, kv_dtype));
  LogInfo(absl::StrFormat(
      "adak serve: kv cache %d blocks of %d tokens (%d tokens), %s, %.1f MiB", blocks, options.block_size,
      blocks * options.block_size, std::string(engine::KvCacheDTypeName(kv_dtype)),
      static_cast<double>(blocks * engine::KvCache::BytesPerBlock(config, options.block_size, kv_dtype)) /
          static_cast<double>(kMiB)));
  ASSIGN_OR_RETURN(impl->runner, engine::ModelRunner::Create(config, impl->model->weights, impl->routing_weights,
                                                             impl->backend.get(), impl->cache.get()));
  impl->executor = scheduler::MakeRunnerExecutor(impl->runner.get());
  MetricsOptions metrics_options = options.metrics;
  for (const engine::AllocatorProfile& profile : impl->routing_weights.allocators) {
    metrics_options.allocator_profiles.push_back(profile.name);
  }
  impl->metrics = std::make_unique<Metrics>(config, metrics_options);
  impl->observer = std::make_unique<EngineHealthObserver>(&impl->state, impl->metrics.get());

  scheduler::SchedulerOptions sched;
  sched.max_batch_tokens = options.max_batch_tokens;
  sched.max_running_requests = options.max_running_requests;
  sched.max_waiting_requests = options.max_waiting_requests;
  sched.prefill_chunk = std::min(options.prefill_chunk, options.max_batch_tokens);
  sched.max_batch_expert_activations = options.max_batch_expert_activations;
  ASSIGN_OR_RETURN(impl->scheduler,
                   scheduler::Scheduler::Create(impl->executor.get(), impl->model->tokenizer.get(), sched,
                                                scheduler::RealClock::Get(), impl->observer.get()));

  impl->context.model = impl->model.get();
  impl->context.routing_weights = &impl->routing_weights;
  impl->context.model_name = ModelName(options.model_dir);
  impl->context.default_routing = default_routing;
  impl->context.scheduler = impl->scheduler.get();
  impl->context.metrics = impl->metrics.get();
  impl->context.state = &impl->state;
  ASSIGN_OR_RETURN(impl->api_keys, ApiKeys::Create(options.api_keys, options.protect_metrics));
  impl->context.api_keys = &impl->api_keys;
  return std::unique_ptr<ServerApp>(new ServerApp(std::move(impl)));
}

ServerApp::ServerApp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ServerApp::~ServerApp() { Shutdown(); }

absl::Status ServerApp::Start() {
  Impl& s = *impl_;
  {
    absl::MutexLock lock(&s.mu);
    if (s.started || s.shut_down) return absl::FailedPreconditionError("ServerApp::Start called twice");
    s.started = true;
  }
  s.scheduler->Start();
  if (s.options.grpc_port >= 0) {
    GrpcServerOptions grpc;
    grpc.host = s.options.host;
    grpc.port = s.options.grpc_port;
    grpc.tls_cert = s.options.tls_cert;
    grpc.tls_key = s.options.tls_key;
    grpc.tls_client_ca = s.options.tls_client_ca;
    absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(grpc, &s.context);
    if (!server.ok()) {
      Shutdown();
      return server.status();
    }
    s.grpc = *std::move(server);
  }
  if (s.options.http_port >= 0) {
    HttpGatewayOptions http;
    http.host = s.options.host;
    http.port = s.options.http_port;
    http.threads = s.options.http_threads;
    http.max_connections = s.options.max_connections;
    http.header_timeout = s.options.http_header_timeout;
    http.idle_timeout = s.options.http_idle_timeout;
    http.allowed_origins = s.options.allowed_origins;
    http.tls_cert = s.options.tls_cert;
    http.tls_key = s.options.tls_key;
    http.tls_client_ca = s.options.tls_client_ca;
    absl::StatusOr<std::unique_ptr<HttpGateway>> gateway = HttpGateway::Start(http, &s.context);
    if (!gateway.ok()) {
      Shutdown();
      return gateway.status();
    }
    s.http = *std::move(gateway);
  }
  s.state.SetPhase(ServingPhase::kServing);  // the gRPC health service follows (GrpcServer listens)
  return absl::OkStatus();
}

int ServerApp::grpc_port() const { return impl_->grpc != nullptr ? impl_->grpc->port() : -1; }
int ServerApp::http_port() const { return impl_->http != nullptr ? impl_->http->port() : -1; }

std::string ServerApp::ReadyLine() const {
  auto endpoint = [this](int port) {
    return port < 0 ? std::string("off") : StrCatStd(impl_->options.host, ":", port);
  };
  return StrCatStd("adak serve: ready model=", impl_->context.model_name, " grpc=", endpoint(grpc_port()),
                   " http=", endpoint(http_port()));
}

bool ServerApp::Drain(absl::Duration timeout) {
  Impl& s = *impl_;
  s.state.SetPhase(ServingPhase::kDraining);
  s.scheduler->BeginDrain();
  const absl::Time start = absl::Now();
  const bool idle = s.scheduler->WaitIdle(timeout);
  const absl::Duration grace = std::min(s.options.drain_grace, timeout);
  if (const absl::Duration left = grace - (absl::Now() - start); left > absl::ZeroDuration()) absl::SleepFor(left);
  Shutdown();
  return idle;
}

void ServerApp::Shutdown() {
  Impl& s = *impl_;
  absl::MutexLock lock(&s.mu);  // held throughout: a concurrent caller returns once shutdown is complete
  if (s.shut_down) return;
  s.shut_down = true;
  s.state.SetPhase(ServingPhase::kDraining);
  // First the scheduler: whatever still runs ends with Unavailable, so every call can finish; then the
  // front ends, which give those calls a moment to send their last messages.
  s.scheduler->Shutdown();
  const absl::Time deadline = absl::Now() + kFrontEndGrace;
  if (s.grpc != nullptr) s.grpc->Shutdown(deadline);
  if (s.http != nullptr) s.http->Shutdown();
}

const ServerAppOptions& ServerApp::options() const { return impl_->options; }
const engine::Model& ServerApp::model() const { return *impl_->model; }
scheduler::Scheduler* ServerApp::scheduler() { return impl_->scheduler.get(); }
Metrics* ServerApp::metrics() { return impl_->metrics.get(); }
ServiceContext* ServerApp::context() { return &impl_->context; }

}  // namespace adak::server
