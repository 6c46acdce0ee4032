// One client connection of the HTTP gateway (server/http/gateway.h), and what all connections share.
//
// A session reads requests (keep-alive, pipelining, Expect: 100-continue, a body limit), answers the GET
// endpoints at once, and runs at most one completion at a time: it validates and builds the request
// (server/http/completions.h, server/request_builder.h), submits it to the scheduler with a sink that
// posts every event to the connection's strand (the scheduler thread never waits on the network), and
// writes the response, or the SSE stream one write at a time. While a completion runs it keeps a read
// pending, so a client that goes away cancels its request. Timeouts (HttpGatewayOptions): a complete request
// header within header_timeout of connecting or of the next request's first byte, kept-alive idling up to
// idle_timeout, bodies and responses within io_timeout. With a TLS context it handshakes first and then reads
// and writes through TLS. API keys (server/auth.h) are checked before routing /v1/*; POST bodies must be
// application/json; CORS headers only for allowed origins. Every member runs on the connection's strand;
// the session lives as long as an operation of it is pending.
#ifndef ADAK_SERVER_HTTP_SESSION_H_
#define ADAK_SERVER_HTTP_SESSION_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl/context.hpp"
#include "server/http/gateway.h"
#include "server/service_context.h"

namespace adak::server {

// What the gateway, its connections and the scheduler's sinks share. Thread-safe (mu guards the rest).
struct HttpGatewayShared {
  ServiceContext* context = nullptr;
  HttpGatewayOptions options;
  std::string id_prefix;  // random, so completion ids differ across restarts
  std::atomic<uint64_t> next_id{0};
  int64_t created = 0;                             // /v1/models "created"
  int64_t max_connections = 0;                     // EffectiveMaxConnections(options)
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plaintext
  std::atomic<int64_t> connections{0};             // open sessions

  absl::Mutex mu;
  absl::flat_hash_set<uint64_t> in_flight ABSL_GUARDED_BY(mu);  // scheduler ids not yet finished
  int64_t active_responses ABSL_GUARDED_BY(mu) = 0;             // completions not yet fully answered
  bool stopping ABSL_GUARDED_BY(mu) = false;                    // set by Shutdown: cancel what starts
};

// Serves `socket` (whose executor is the connection's strand) until the client leaves. `io` is the
// gateway's io_context, which the scheduler's sinks keep alive past the gateway's shutdown.
void StartHttpSession(boost::asio::ip::tcp::socket socket, std::weak_ptr<boost::asio::io_context> io,
                      std::shared_ptr<HttpGatewayShared> shared);

}  // namespace adak::server

#endif  // ADAK_SERVER_HTTP_SESSION_H_
