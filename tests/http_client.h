// A small synchronous HTTP/1.1 client (Boost.Beast) for the server tests: one request per call on a
// fresh connection or on a kept-alive one, every operation bounded by a timeout, and a parser for
// server-sent-event bodies. Not thread-safe per object; separate objects may be used from separate
// threads.
#ifndef ADAK_TESTS_HTTP_CLIENT_H_
#define ADAK_TESTS_HTTP_CLIENT_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace adak::testing {

struct HttpResponse {
  int status = 0;
  std::string body;                            // chunked bodies decoded
  std::map<std::string, std::string> headers;  // lower-case names
  [[nodiscard]] std::string Header(const std::string& lower_case_name) const;
};

// One connection to 127.0.0.1:port, reused across requests while the server keeps it alive.
class HttpConnection {
 public:
  // Errors: Unavailable when the connection cannot be made within `timeout`.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpConnection>> Connect(
      int port, absl::Duration timeout = absl::Seconds(10));
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends one request and reads the whole response. Errors: Unavailable (connection closed, reset),
  // DeadlineExceeded when it takes longer than `timeout`.
  [[nodiscard]] absl::StatusOr<HttpResponse> Request(std::string_view method, std::string_view target,
                                                     std::string_view body = "",
                                                     std::string_view content_type = "application/json",
                                                     absl::Duration timeout = absl::Seconds(60));

  // Raw access for protocol-level tests: writes `bytes` as they are, then reads what arrives until
  // `until` is seen, the peer closes, or the timeout passes (returns what was read).
  [[nodiscard]] absl::Status WriteRaw(std::string_view bytes, absl::Duration timeout = absl::Seconds(10));
  [[nodiscard]] std::string ReadRawUntil(std::string_view until, absl::Duration timeout = absl::Seconds(30));
  // Closes the socket (the server sees the client go away).
  void Close();

 private:
  class Impl;
  explicit HttpConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection.
[[nodiscard]] absl::StatusOr<HttpResponse> HttpRequest(int port, std::string_view method, std::string_view target,
                                                       std::string_view body = "",
                                                       std::string_view content_type = "application/json",
                                                       absl::Duration timeout = absl::Seconds(60));

// The `data:` payloads of a server-sent-event body, in order ("[DONE]" included). Events must be
// separated by a blank line; a malformed body yields what parsed up to the problem.
[[nodiscard]] std::vector<std::string> SseData(std::string_view body);

}  // namespace adak::testing

#endif  // ADAK_TESTS_HTTP_CLIENT_H_
