#include "server/http/gateway.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/strings.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/beast/core/error.hpp"
#include "server/http/session.h"

namespace adak::server {
namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// How long Shutdown lets running completions write their last bytes after cancelling them.
constexpr absl::Duration kShutdownGrace = absl::Seconds(2);

// The acceptor's wait after a failed accept: from kMinBackoff, doubling to kMaxBackoff while accepts fail.
constexpr std::chrono::milliseconds kMinBackoff(10);
constexpr std::chrono::milliseconds kMaxBackoff(1000);

// What a connection over max_connections gets before it is closed. Small enough for any socket buffer.
const std::string& TooManyConnectionsResponse() {
  static const std::string* response = [] {
    const std::string body =
        R"({"error":{"message":"too many open connections (the server's max_connections); retry later",)"
        R"("type":"service_unavailable","param":null,"code":"unavailable"}})";
    return new std::string(StrCatStd("HTTP/1.1 503 Service Unavailable\r\nServer: adak\r\n",
                                     "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n",
                                     "Content-Length: ", body.size(), "\r\n\r\n", body));
  }();
  return *response;
}

std::string RandomPrefix() {
  std::random_device device;
  return absl::StrCat(absl::Hex(device(), absl::kZeroPad8));
}

// The server's TLS context from the options' PEM files; null for plaintext.
absl::StatusOr<std::shared_ptr<net::ssl::context>> TlsContext(const HttpGatewayOptions& options) {
  if (options.tls_cert.empty() && options.tls_key.empty() && options.tls_client_ca.empty()) return nullptr;
  if (options.tls_cert.empty() || options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together (and --tls-client-ca needs both)");
  }
  auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  if (context->use_certificate_chain_file(options.tls_cert, ec); ec) {
    return absl::InvalidArgumentError(StrCatStd("--tls-cert: cannot read ", options.tls_cert, ": ", ec.message()));
  }
  if (context->use_private_key_file(options.tls_key, net::ssl::context::pem, ec); ec) {
    return absl::InvalidArgumentError(StrCatStd("--tls-key: cannot read ", options.tls_key, ": ", ec.message()));
  }
  if (!options.tls_client_ca.empty()) {
    if (context->load_verify_file(options.tls_client_ca, ec); ec) {
      return absl::InvalidArgumentError(
          StrCatStd("--tls-client-ca: cannot read ", options.tls_client_ca, ": ", ec.message()));
    }
    context->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

}  // namespace

int64_t EffectiveMaxConnections(const HttpGatewayOptions& options) {
  if (options.max_connections > 0) return options.max_connections;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 4096;
  return std::clamp<int64_t>(static_cast<int64_t>(limit.rlim_cur) / 2, 1, 4096);
}

class HttpGateway::Impl {
 public:
  ~Impl() { Shutdown(); }

  absl::Status Start(const HttpGatewayOptions& options, ServiceContext* context) {
    absl::StatusOr<std::shared_ptr<net::ssl::context>> tls = TlsContext(options);
    if (!tls.ok()) return tls.status();
    shared_ = std::make_shared<HttpGatewayShared>();
    shared_->tls = *std::move(tls);
    shared_->context = context;
    shared_->options = options;
    shared_->id_prefix = RandomPrefix();
    shared_->created = absl::ToUnixSeconds(absl::Now());
    shared_->max_connections = EffectiveMaxConnections(options);
    io_ = std::make_shared<net::io_context>(options.threads);

    beast::error_code ec;
    tcp::resolver resolver(*io_);
    auto endpoints = resolver.resolve(options.host, std::to_string(options.port),
                                      tcp::resolver::numeric_service | tcp::resolver::passive, ec);
    if (ec || endpoints.empty()) {
      return absl::InvalidArgumentError(
          StrCatStd("http host '", options.host, "' does not resolve: ", ec ? ec.message() : "no address"));
    }
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    const std::string where = StrCatStd(options.host, ":", options.port);
    acceptor_ = std::make_unique<tcp::acceptor>(net::make_strand(*io_));
    backoff_timer_ = std::make_unique<net::steady_timer>(acceptor_->get_executor());
    if (acceptor_->open(endpoint.protocol(), ec); ec) {
      return absl::UnavailableError(StrCatStd("http: cannot open a socket for ", where, ": ", ec.message()));
    }
    if (acceptor_->set_option(net::socket_base::reuse_address(true), ec); ec) {
      return absl::UnavailableError(StrCatStd("http: cannot set SO_REUSEADDR on ", where, ": ", ec.message()));
    }
    if (acceptor_->bind(endpoint, ec); ec) {
      return absl::UnavailableError(StrCatStd("http: cannot bind ", where, ": ", ec.message()));
    }
    if (acceptor_->listen(net::socket_base::max_listen_connections, ec); ec) {
      return absl::UnavailableError(StrCatStd("http: cannot listen on ", where, ": ", ec.message()));
    }
    port_ = acceptor_->local_endpoint().port();
    Accept();
    threads_.reserve(static_cast<size_t>(options.threads));
    for (int i = 0; i < options.threads; ++i) {
      threads_.emplace_back([io = io_] { io->run(); });
    }
    return absl::OkStatus();
  }

  int port() const { return port_; }

  void Shutdown() {
    if (shared_ == nullptr || acceptor_ == nullptr) return;
    std::vector<uint64_t> in_flight;
    {
      absl::MutexLock lock(&shared_->mu);
      if (shared_->stopping) return;
      shared_->stopping = true;
      in_flight.assign(shared_->in_flight.begin(), shared_->in_flight.end());
    }
    if (!threads_.empty()) {
      net::post(acceptor_->get_executor(), [this] {
        beast::error_code ec;
        acceptor_->close(ec);
        backoff_timer_->cancel();
      });
    }
    // Running completions end (Cancelled) and get a moment to send their last bytes.
    if (shared_->context->scheduler != nullptr) {
      for (uint64_t id : in_flight) shared_->context->scheduler->Cancel(id);
    }
    {
      absl::MutexLock lock(&shared_->mu);
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) { return shared_->active_responses == 0; };
      shared_->mu.AwaitWithTimeout(absl::Condition(&idle), kShutdownGrace);
    }
    io_->stop();
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
    beast::error_code ec;
    acceptor_->close(ec);
  }

 private:
  void Accept() {
    acceptor_->async_accept(net::make_strand(*io_), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_->is_open()) return;
      if (ec) {
        BackOff(ec);
        return;
      }
      backoff_ = std::chrono::milliseconds(0);
      if (shared_->connections.load() >= shared_->max_connections) {
        // Over the cap: a short 503 the socket buffer takes at once, then closed (no session, no timer).
        if (shared_->tls == nullptr) {  // (a TLS client could not read it: closed without a word)
          const std::string& response = TooManyConnectionsResponse();
          (void)::send(socket.native_handle(), response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        beast::error_code close_ec;
        socket.shutdown(tcp::socket::shutdown_both, close_ec);
        socket.close(close_ec);
      } else {
        beast::error_code nodelay_ec;
        socket.set_option(tcp::no_delay(true), nodelay_ec);
        StartHttpSession(std::move(socket), std::weak_ptr<net::io_context>(io_), shared_);
      }
      Accept();
    });
  }

  // accept failed (EMFILE, ENFILE, ENOBUFS, ...): the pending connection stays in the backlog, so retrying
  // at once would fail again at once. Waits, doubling the wait while the failures go on.
  void BackOff(const beast::error_code& ec) {
    if (backoff_.count() == 0) {
      LogWarning(StrCatStd("http: accept failed (", ec.message(), "); backing off while it fails; ",
                           shared_->connections.load(), " connections open"));
    }
    backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
    backoff_timer_->expires_after(backoff_);
    backoff_timer_->async_wait([this](beast::error_code wait_ec) {
      if (wait_ec == net::error::operation_aborted || !acceptor_->is_open()) return;
      Accept();
    });
  }

  std::shared_ptr<HttpGatewayShared> shared_;
  std::shared_ptr<net::io_context> io_;               // shared with the sinks the scheduler may still hold
  std::unique_ptr<tcp::acceptor> acceptor_;           // destroyed before io_ is released
  std::unique_ptr<net::steady_timer> backoff_timer_;  // on the acceptor's strand
  std::chrono::milliseconds backoff_{0};              // 0 while accepts succeed
  std::vector<std::thread> threads_;
  int port_ = 0;
};

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(const HttpGatewayOptions& options,
                                                                ServiceContext* context) {
  if (context == nullptr || context->model == nullptr || context->routing_weights == nullptr) {
    return absl::InvalidArgumentError("http gateway: the service context needs a model and routing weights");
  }
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(StrCatStd("http port must be in [0, 65535], got ", options.port));
  }
  if (options.threads < 1 || options.threads > 256) {
    return absl::InvalidArgumentError(StrCatStd("http threads must be in [1, 256], got ", options.threads));
  }
  if (options.max_connections < 0) {
    return absl::InvalidArgumentError(
        StrCatStd("http max_connections must be >= 0 (0 = from the fd limit), got ", options.max_connections));
  }
  for (const auto& [name, value] : {std::pair<const char*, absl::Duration>{"header_timeout", options.header_timeout},
                                    {"idle_timeout", options.idle_timeout},
                                    {"io_timeout", options.io_timeout}}) {
    if (value <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(StrCatStd("http ", name, " must be > 0, got ", absl::FormatDuration(value)));
    }
  }
  if (options.max_body_bytes < 1024) {
    return absl::InvalidArgumentError(StrCatStd("http max_body_bytes must be >= 1024, got ", options.max_body_bytes));
  }
  auto impl = std::make_unique<Impl>();
  absl::Status status = impl->Start(options, context);
  if (!status.ok()) return status;
  return std::unique_ptr<HttpGateway>(new HttpGateway(std::move(impl)));
}

HttpGateway::HttpGateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpGateway::~HttpGateway() { Shutdown(); }

int HttpGateway::port() const { return impl_->port(); }

void HttpGateway::Shutdown() { impl_->Shutdown(); }

}  // namespace adak::server
