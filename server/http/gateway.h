// The OpenAI-compatible HTTP gateway (Boost.Beast on its own Asio io_context threads, same process as
// the gRPC service): POST /v1/completions (stream as server-sent events; echo + logprobs for
// lm-evaluation-harness; an "adak" extension object for routing options), GET /v1/models, /healthz,
// /readyz and /metrics. Errors are OpenAI-style JSON with the status of server/status_mapping.h (503
// while draining). Requests go through server/admission.h like the gRPC ones.
#ifndef ADAK_SERVER_HTTP_GATEWAY_H_
#define ADAK_SERVER_HTTP_GATEWAY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/service_context.h"

namespace adak::server {

struct HttpGatewayOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = an ephemeral port (see HttpGateway::port)
  int threads = 2;  // io_context threads
  int64_t max_body_bytes = 8 << 20;
  // Open client connections at most; a connection beyond is answered 503 with Retry-After and closed.
  // 0 = half the process's file-descriptor limit (RLIMIT_NOFILE, soft), at most 4096, so the connections
  // alone can never exhaust the descriptors the rest of the process needs.
  int64_t max_connections = 0;
  // A connection must deliver a complete request header within this time of connecting (or, on a kept-alive
  // connection, of sending the first byte of its next request), else it is closed (slowloris).
  absl::Duration header_timeout = absl::Seconds(10);
  // How long a kept-alive connection may sit idle between requests before it is closed.
  absl::Duration idle_timeout = absl::Seconds(60);
  // How long reading a request body, or writing a response, may take.
  absl::Duration io_timeout = absl::Seconds(120);
  // Browser origins (e.g. "https://app.example.com", or "*") allowed to call the API cross-site: their
  // requests get Access-Control-Allow-Origin and their OPTIONS preflights 204. Empty: no CORS at all, so no
  // web page can read a response. POST bodies must be application/json (415 otherwise), so a page cannot
  // make the server generate with a "simple" text/plain request either.
  std::vector<std::string> allowed_origins = {};
  // TLS (HTTPS): PEM certificate chain and key; with tls_client_ca, clients must present a certificate that CA
  // signed (mutual TLS). All empty: plaintext.
  std::string tls_cert = {};
  std::string tls_key = {};
  std::string tls_client_ca = {};
};

// max_connections as the gateway applies it (0 resolved against the file-descriptor limit).
[[nodiscard]] int64_t EffectiveMaxConnections(const HttpGatewayOptions& options);

class HttpGateway {
 public:
  // Binds and starts serving. REQUIRES: `context` outlives the gateway. Errors: Unavailable when the
  // address cannot be bound (names host:port), InvalidArgument for bad options (a TLS file that cannot be
  // loaded is named with its option).
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
