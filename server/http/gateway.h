// The OpenAI-compatible HTTP gateway (Boost.Beast on its own Asio io_context threads, same process as
// the gRPC service): POST /v1/completions (stream as server-sent events; echo + logprobs for
// lm-evaluation-harness; an "adak" extension object for routing options), GET /v1/models, /healthz,
// /readyz and /metrics. Errors are OpenAI-style JSON with the status of server/status_mapping.h (503
// while draining). Requests go through server/admission.h like the gRPC ones.
#ifndef ADAK_SERVER_HTTP_GATEWAY_H_
#define ADAK_SERVER_HTTP_GATEWAY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/service_context.h"

namespace adak::server {

struct HttpGatewayOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = an ephemeral port (see HttpGateway::port)
  int threads = 2;  // io_context threads
  int64_t max_body_bytes = 8 << 20;
};

class HttpGateway {
 public:
  // Binds and starts serving. REQUIRES: `context` outlives the gateway. Errors: Unavailable when the
  // address cannot be bound (names host:port), InvalidArgument for bad options.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(const HttpGatewayOptions& options,
                                                                          ServiceContext* context);
  ~HttpGateway();  // Shutdown()

  [[nodiscard]] int port() const;
  // Stops accepting, closes connections, joins the threads. Idempotent.
  void Shutdown();

 private:
  class Impl;
  explicit HttpGateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace adak::server

#endif  // ADAK_SERVER_HTTP_GATEWAY_H_
