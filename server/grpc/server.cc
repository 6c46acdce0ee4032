#include "server/grpc/server.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/admission.h"
#include "server/grpc/score.h"
#include "server/grpc/service.h"

namespace adak::server {
namespace {

// The readiness service name of grpc.health.v1.
constexpr char kReadinessService[] = "adak.v1.Generation";

std::string HostPort(const std::string& host, int port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return ipv6 ? StrCatStd("[", host, "]:", port) : StrCatStd(host, ":", port);
}

// The contents of the PEM file of option `name`. InvalidArgument naming the option and the file.
absl::StatusOr<std::string> ReadPem(const char* name, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) text.clear();
  if (text.empty()) return absl::InvalidArgumentError(StrCatStd("--", name, ": cannot read ", path, " (a PEM file)"));
  return text;
}

// Plaintext, or TLS (and mutual TLS) from the options' PEM files.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const GrpcServerOptions& options) {
  if (options.tls_cert.empty() && options.tls_key.empty() && options.tls_client_ca.empty()) {
    return grpc::InsecureServerCredentials();
  }
  if (options.tls_cert.empty() || options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together (and --tls-client-ca needs both)");
  }
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("tls-cert", options.tls_cert));
  ASSIGN_OR_RETURN(pair.private_key, ReadPem("tls-key", options.tls_key));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!options.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("tls-client-ca", options.tls_client_ca));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

class GrpcServer::Impl {
 public:
  explicit Impl(ServiceContext* context) : service_(context), state_(context->state) {}

  GenerationService service_;
  ServingState* const state_;  // may be null
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                              ServiceContext* context) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(StrCatStd("grpc port must be in [0, 65535], got ", options.port));
  }
  if (options.max_message_bytes < 1 || options.max_message_bytes > (int64_t{1} << 31) - 1) {
    return absl::InvalidArgumentError(
        StrCatStd("grpc max_message_bytes must be in [1, 2^31), got ", options.max_message_bytes));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials(options));
  auto impl = std::make_unique<Impl>(context);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = HostPort(options.host, options.port);
  builder.AddListeningPort(address, credentials, &impl->port_);
  builder.RegisterService(&impl->service_);
  // Nothing larger than the longest useful request (Score: the prompt and its continuations, each within the
  // context) is received: a bigger message is refused (RESOURCE_EXHAUSTED) before it is parsed.
  // (A context without a model -- health and reflection only -- keeps the option.)
  const int64_t max_receive =
      context->model == nullptr
          ? options.max_message_bytes
          : std::min(options.max_message_bytes, MaxRequestBytes(*context, kMaxScoreContinuations + 1));
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_receive));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  // gRPC turns SO_REUSEPORT on by default, which would let a second server bind a port in use.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  impl->server_ = builder.BuildAndStart();
  if (impl->server_ == nullptr || impl->port_ == 0) {
    return absl::UnavailableError(StrCatStd("grpc: cannot listen on ", address));
  }
  // Liveness ("") is SERVING from here on; readiness follows the serving state (NOT_SERVING until it turns
  // SERVING, and again while draining or once the engine failed), or SetReady without one.
  impl->server_->GetHealthCheckService()->SetServingStatus(kReadinessService, false);
  auto server = std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
  if (server->impl_->state_ != nullptr) {
    server->impl_->state_->SetReadinessListener([self = server.get()](bool ready) { self->SetReady(ready); });
  }
  return server;
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() { Shutdown(absl::Now()); }

int GrpcServer::port() const { return impl_->port_; }

void GrpcServer::SetReady(bool ready) {
  absl::MutexLock lock(&impl_->mu_);
  if (impl_->shut_down_) return;
  impl_->server_->GetHealthCheckService()->SetServingStatus(kReadinessService, ready);
}

void GrpcServer::Shutdown(absl::Time deadline) {
  // First, outside mu_ (the listener runs under the state's lock and then takes mu_): no more readiness
  // updates from the state once this returns.
  if (impl_->state_ != nullptr) impl_->state_->SetReadinessListener(nullptr);
  {
    absl::MutexLock lock(&impl_->mu_);
    if (impl_->shut_down_) return;
    impl_->shut_down_ = true;
    impl_->server_->GetHealthCheckService()->SetServingStatus(kReadinessService, false);
  }
  // Stops accepting calls, lets the running ones finish until `deadline`, then cancels them and waits
  // for their reactors to be done.
  impl_->server_->Shutdown(absl::ToChronoTime(deadline));
  impl_->server_->Wait();
}

}  // namespace adak::server
