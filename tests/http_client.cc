#include "tests/http_client.h"

#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace adak::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::chrono::milliseconds ToChrono(absl::Duration d) { return std::chrono::milliseconds(absl::ToInt64Milliseconds(d)); }

absl::Status FromError(beast::error_code ec, std::string_view what) {
  if (ec == beast::error::timeout) return absl::DeadlineExceededError(absl::StrCat(std::string(what), ": timed out"));
  return absl::UnavailableError(absl::StrCat(std::string(what), ": ", ec.message()));
}

}  // namespace

std::string HttpResponse::Header(const std::string& lower_case_name) const {
  auto it = headers.find(lower_case_name);
  return it == headers.end() ? "" : it->second;
}

class HttpConnection::Impl {
 public:
  net::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;

  // Runs the io_context until the pending operation completed.
  void Run() {
    io.restart();
    io.run();
  }
};

HttpConnection::HttpConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpConnection::~HttpConnection() { Close(); }

absl::StatusOr<std::unique_ptr<HttpConnection>> HttpConnection::Connect(int port, absl::Duration timeout) {
  auto impl = std::make_unique<Impl>();
  beast::error_code result;
  impl->stream.expires_after(ToChrono(timeout));
  impl->stream.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)),
                             [&](beast::error_code ec) { result = ec; });
  impl->Run();
  if (result) return FromError(result, absl::StrCat("connect to 127.0.0.1:", port));
  return std::unique_ptr<HttpConnection>(new HttpConnection(std::move(impl)));
}

absl::StatusOr<HttpResponse> HttpConnection::Request(std::string_view method, std::string_view target,
                                                     std::string_view body, std::string_view content_type,
                                                     absl::Duration timeout) {
  http::request<http::string_body> request;
  request.method_string(beast::string_view(method.data(), method.size()));
  request.target(beast::string_view(target.data(), target.size()));
  request.version(11);
  request.set(http::field::host, "127.0.0.1");
  request.keep_alive(true);
  if (!body.empty() || method == "POST") {
    request.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    request.body() = std::string(body);
    request.prepare_payload();
  }
  beast::error_code result;
  impl_->stream.expires_after(ToChrono(timeout));
  http::async_write(impl_->stream, request, [&](beast::error_code ec, size_t) { result = ec; });
  impl_->Run();
  if (result) return FromError(result, "write request");

  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 30);
  http::async_read(impl_->stream, impl_->buffer, parser, [&](beast::error_code ec, size_t) { result = ec; });
  impl_->Run();
  if (result) return FromError(result, "read response");
  const auto& response = parser.get();
  HttpResponse out;
  out.status = static_cast<int>(response.result_int());
  out.body = response.body();
  for (const auto& field : response) {
    std::string name(field.name_string().data(), field.name_string().size());
    absl::AsciiStrToLower(&name);
    out.headers[name] = std::string(field.value().data(), field.value().size());
  }
  return out;
}

absl::Status HttpConnection::WriteRaw(std::string_view bytes, absl::Duration timeout) {
  beast::error_code result;
  impl_->stream.expires_after(ToChrono(timeout));
  net::async_write(impl_->stream, net::buffer(bytes.data(), bytes.size()),
                   [&](beast::error_code ec, size_t) { result = ec; });
  impl_->Run();
  if (result) return FromError(result, "write");
  return absl::OkStatus();
}

std::string HttpConnection::ReadRawUntil(std::string_view until, absl::Duration timeout) {
  std::string received;
  const absl::Time deadline = absl::Now() + timeout;
  char chunk[4096];
  while (received.find(until) == std::string::npos) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    beast::error_code result;
    size_t got = 0;
    impl_->stream.expires_after(ToChrono(left));
    impl_->stream.async_read_some(net::buffer(chunk), [&](beast::error_code ec, size_t n) {
      result = ec;
      got = n;
    });
    impl_->Run();
    received.append(chunk, got);
    if (result) break;
  }
  return received;
}

void HttpConnection::Close() {
  if (impl_ == nullptr) return;
  beast::error_code ec;
  impl_->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  impl_->stream.socket().close(ec);
}

absl::StatusOr<HttpResponse> HttpRequest(int port, std::string_view method, std::string_view target,
                                         std::string_view body, std::string_view content_type, absl::Duration timeout) {
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection = HttpConnection::Connect(port);
  if (!connection.ok()) return connection.status();
  return (*connection)->Request(method, target, body, content_type, timeout);
}

std::vector<std::string> SseData(std::string_view body) {
  std::vector<std::string> data;
  while (!body.empty()) {
    const size_t end = body.find("\n\n");
    if (end == std::string_view::npos) break;
    std::string_view event = body.substr(0, end);
    body.remove_prefix(end + 2);
    if (!event.starts_with("data: ")) break;
    data.emplace_back(event.substr(6));
  }
  return data;
}

}  // namespace adak::testing
