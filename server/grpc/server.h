// The gRPC front end: the adak.v1.Generation service (callback API, reactor contract of
// docs/architecture.md, "Threads"), grpc.health.v1 (service "" = liveness, "adak.v1.Generation" = readiness) and
// server reflection, on one port. Requests go through server/admission.h to the scheduler; tokens
// come back through a per-call queue drained from OnWriteDone.
#ifndef ADAK_SERVER_GRPC_SERVER_H_
#define ADAK_SERVER_GRPC_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/service_context.h"

namespace adak::server {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  int port = 50051;  // 0 = an ephemeral port (see GrpcServer::port)
  int64_t max_message_bytes = 16 << 20;
  // TLS: PEM files. With tls_cert and tls_key the port speaks TLS only; with tls_client_ca too, clients must
  // present a certificate that CA signed (mutual TLS). All empty: plaintext.
  std::string tls_cert = {};
  std::string tls_key = {};
  std::string tls_client_ca = {};
};

class GrpcServer {
 public:
  // Builds and starts the server. With a serving state in `context`, the server is that state's readiness
  // listener (ServingState::SetReadinessListener) until Shutdown. REQUIRES: `context` outlives it. Errors:
  // Unavailable when the port cannot be bound (names host:port); InvalidArgument naming the TLS option whose
  // file cannot be read, or tls_cert without tls_key (or the reverse), or tls_client_ca without them.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                                         ServiceContext* context);
  ~GrpcServer();  // Shutdown(now)

  [[nodiscard]] int port() const;
  // Readiness as grpc.health.v1 reports it for "adak.v1.Generation" (liveness "" stays SERVING). Set from
  // the serving state when the context has one.
  void SetReady(bool ready);
  // Stops the server; calls still running at `deadline` are cancelled. Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  class Impl;
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_SERVER_H_
