// Hardening of both front ends against inputs a remote party controls (issue 14), each over real loopback
// connections to a real `adak serve` process (tests/server_process.h) on the project's own
// models/stories-moe-small: deeply nested JSON, oversized prompts, connection floods and slow clients under a
// low file-descriptor limit, gRPC deadlines in the metrics, and the small protocol details (Retry-After,
// Transfer-Encoding, /v1/models). Needs nothing outside the repository.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpcpp/generic/generic_stub.h"
#include "nlohmann/json.hpp"
#include "tests/grpc_client.h"
#include "tests/http_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"

namespace adak::testing {
namespace {

using ::adak::testing::MetricValue;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

std::vector<std::string> ModelArgs() {
  return {"--model", DefaultModelDir().string(), "--allocator", DefaultAllocator().string(), "--threads", "1"};
}

// The server's user + system CPU time so far, from /proc/<pid>/stat.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1.0;
  const std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  // After the command: state is field 3 of the man page, utime 14 and stime 15.
  int64_t utime = 0;
  int64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// A raw TCP connection to 127.0.0.1:port that sends nothing; -1 when it cannot connect.
int IdleSocket(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// POSTs a one-token completion until it is answered 200 (a 503 over the connection cap, a refused or reset
// connection are retried after 100 ms); the time it took, or nullopt after `timeout`.
std::optional<absl::Duration> TimeUntilServed(int port, absl::Duration timeout) {
  const absl::Time start = absl::Now();
  while (absl::Now() - start < timeout) {
    absl::StatusOr<HttpResponse> response =
        HttpRequest(port, "POST", "/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 1})",
                    "application/json", timeout - (absl::Now() - start));
    if (response.ok() && response->status == 200) return absl::Now() - start;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return std::nullopt;
}

// One server for the tests that do not need their own.
class HardeningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(ModelArgs());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static HttpResponse Post(const std::string& body, const std::string& target = "/v1/completions") {
    absl::StatusOr<HttpResponse> response = HttpRequest(server_->http_port(), "POST", target, body);
    EXPECT_TRUE(response.ok()) << response.status() << "\n" << server_->Log();
    return response.ok() ? *response : HttpResponse{};
  }
  static void ExpectAlive() {
    absl::StatusOr<HttpResponse> health = HttpRequest(server_->http_port(), "GET", "/healthz");
    ASSERT_TRUE(health.ok()) << "the server is gone: " << health.status() << "\n" << server_->Log();
    EXPECT_EQ(health->status, 200);
  }

  static ServerProcess* server_;
};

ServerProcess* HardeningTest::server_ = nullptr;

// A body nested 70,000 arrays deep (140 KB, far under the body limit) used to overflow the stack of the
// HTTP thread and kill the process. Now: 400 naming the limit, whichever field holds the nesting.
TEST_F(HardeningTest, DeeplyNestedJsonIsRefusedNamingTheLimit) {
  const std::string open70k(70000, '[');
  const std::string close70k(70000, ']');
  const std::string open100k(100000, '[');
  const std::string close100k(100000, ']');
  for (const std::string& body : {absl::StrCat(R"({"prompt": )", open70k, close70k, "}"),
                                  absl::StrCat(R"({"prompt": "hi", "stop": )", open100k, close100k, "}"),
                                  absl::StrCat(R"({"prompt": "hi", "adak": )", std::string(100000, '{'), "}")}) {
    const HttpResponse response = Post(body);
    EXPECT_EQ(response.status, 400) << response.body.substr(0, 300);
    EXPECT_THAT(response.body, HasSubstr("more than 32 levels deep"));
    ExpectAlive();
  }
  // Nesting inside a string is text, not structure.
  const HttpResponse text = Post(absl::StrCat(R"({"prompt": ")", std::string(100, '['), R"(", "max_tokens": 1})"));
  EXPECT_EQ(text.status, 200) << text.body;
}

// A 7 MB prompt used to be tokenized (~1 s of CPU, more under load) before the context check refused it.
// Now a text longer than context x the most bytes a token covers is refused by its size, and a shorter one
// that still does not fit stops the tokenizer once it passes the context.
TEST_F(HardeningTest, OversizedPromptIsRefusedBeforeTokenizing) {
  const std::string huge(7 << 20, 'a');
  const absl::Time start = absl::Now();
  const HttpResponse response = Post(Json{{"prompt", huge}, {"max_tokens", 1}}.dump());
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(response.status, 400) << response.body;
  EXPECT_THAT(response.body, HasSubstr("bytes of text cannot fit in 512 tokens"));
  EXPECT_THAT(response.body, HasSubstr(R"("param":"prompt")"));
  std::cout << "[ measured ] 7 MiB HTTP prompt refused after " << absl::FormatDuration(took) << "\n";

  // Under the byte bound but over the context: " a" is one token each.
  std::string words;
  for (int i = 0; i < 600; ++i) words += " a";
  const HttpResponse over = Post(Json{{"prompt", words}, {"max_tokens", 1}}.dump());
  EXPECT_EQ(over.status, 400) << over.body;
  EXPECT_THAT(over.body, HasSubstr("encodes to more than 512 tokens"));
}

// gRPC: the receive limit follows the context (a 15 MiB prompt is refused before it is parsed), Tokenize
// refuses what cannot fit up front, and Score's context error names Score's fields.
TEST_F(HardeningTest, GrpcOversizedRequestsAreRefusedUpFront) {
  auto stub = GenerationStub(server_->grpc_port());
  {
    grpc::ClientContext call;
    adak::v1::GenerateResponse response;
    const absl::Time start = absl::Now();
    const grpc::Status status = stub->Generate(&call, GreedyRequest(std::string(15 << 20, 'a'), 1), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    std::cout << "[ measured ] 15 MiB gRPC prompt refused after " << absl::FormatDuration(absl::Now() - start) << ": "
              << status.error_message() << "\n";
  }
  {
    grpc::ClientContext call;
    adak::v1::TokenizeRequest request;
    request.set_text(std::string(1 << 20, 'a'));
    adak::v1::TokenizeResponse response;
    const grpc::Status status = stub->Tokenize(&call, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("text: 1048576 bytes of text cannot fit in 512 tokens"));
  }
  {
    grpc::ClientContext call;
    adak::v1::ScoreRequest request;
    for (int i = 0; i < 500; ++i) request.add_prompt_token_ids(300 + i % 100);
    adak::v1::TokenIds* continuation = request.add_continuation_token_ids();
    for (int i = 0; i < 20; ++i) continuation->add_ids(400);
    adak::v1::ScoreResponse response;
    const grpc::Status status = stub->Score(&call, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("prompt + continuation_token_ids[0] = 500 + 20 = 520 tokens"));
    EXPECT_THAT(status.error_message(), Not(HasSubstr("max_tokens")));
  }
}

// A gRPC call whose deadline expires is counted as a deadline (as HTTP timeouts are), not as a cancel: gRPC
// cancels the call at its deadline, and that cancel used to be counted as the client's.
TEST_F(HardeningTest, GrpcDeadlineIsCountedAsADeadline) {
  const auto scrape = [] {
    absl::StatusOr<HttpResponse> metrics = HttpRequest(server_->http_port(), "GET", "/metrics");
    EXPECT_TRUE(metrics.ok());
    return metrics.ok() ? metrics->body : "";
  };
  const std::string deadline = R"(adak_requests_total{finished_reason="deadline"})";
  const std::string cancelled = R"(adak_requests_total{finished_reason="cancelled"})";
  const std::string before = scrape();
  auto stub = GenerationStub(server_->grpc_port());
  for (bool stream : {false, true}) {
    adak::v1::GenerateRequest request = GreedyRequest("Once upon a time", 480);
    if (stream) {
      const StreamResult result = RunStream(stub.get(), request, absl::Milliseconds(40));
      EXPECT_EQ(result.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << result.status.error_message();
    } else {
      grpc::ClientContext call;
      call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(40)));
      adak::v1::GenerateResponse response;
      const grpc::Status status = stub->Generate(&call, request, &response);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
    }
  }
  std::string after;
  EXPECT_TRUE(WaitFor("both requests to be counted", [&] {
    after = scrape();
    return MetricValue(after, deadline) + MetricValue(after, cancelled) >=
           MetricValue(before, deadline) + MetricValue(before, cancelled) + 2;
  }));
  EXPECT_EQ(MetricValue(after, deadline) - MetricValue(before, deadline), 2) << after;
  EXPECT_EQ(MetricValue(after, cancelled) - MetricValue(before, cancelled), 0) << after;
  EXPECT_EQ(MetricValue(after, R"(adak_request_errors_total{code="cancelled"})"),
            MetricValue(before, R"(adak_request_errors_total{code="cancelled"})"));
}

// Documented gRPC library behaviour (docs/serving.md): bytes that do not decode as the request message never
// reach the service and are answered by the library; the server keeps serving.
TEST_F(HardeningTest, UndecodableGrpcRequestIsAnsweredByTheLibrary) {
  std::shared_ptr<grpc::Channel> channel = LocalChannel(server_->grpc_port());
  grpc::GenericStub generic(channel);
  const std::string garbage = "\xff\xff\xff\xff\x0f garbage";
  grpc::Slice slice(garbage);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Status status;
  absl::Notification done;
  generic.UnaryCall(&call, "/adak.v1.Generation/Generate", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(15)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
  auto stub = GenerationStub(server_->grpc_port());
  grpc::ClientContext ok_call;
  adak::v1::GenerateResponse ok;
  EXPECT_TRUE(stub->Generate(&ok_call, GreedyRequest("Once", 1), &ok).ok());
}

// A web page can POST text/plain to any local server without a preflight; only application/json bodies are
// accepted now (415 otherwise).
TEST_F(HardeningTest, CompletionsRequireJsonBodies) {
  const std::string body = R"({"prompt": "Once", "max_tokens": 1})";
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"}) {
    absl::StatusOr<HttpResponse> response = HttpRequest(server_->http_port(), "POST", "/v1/completions", body, type);
    ASSERT_TRUE(response.ok());
    EXPECT_EQ(response->status, 415) << type << ": " << response->body;
    EXPECT_THAT(response->body, HasSubstr("Content-Type must be application/json"));
  }
  absl::StatusOr<HttpResponse> json =
      HttpRequest(server_->http_port(), "POST", "/v1/completions", body, "application/json; charset=utf-8");
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(json->status, 200) << json->body;
  // No CORS without --allowed-origins.
  EXPECT_EQ(json->Header("access-control-allow-origin"), "");
}

// CORS only for the origins --allowed-origins names.
TEST(HardeningProcessTest, CorsOnlyForAllowedOrigins) {
  std::vector<std::string> args = ModelArgs();
  args.insert(args.end(), {"--allowed-origins", "https://good.example,https://other.example"});
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args);
  ASSERT_TRUE(server.ok()) << server.status();
  const auto raw = [&](const std::string& request) {
    absl::StatusOr<std::unique_ptr<HttpConnection>> connection = HttpConnection::Connect((*server)->http_port());
    EXPECT_TRUE(connection.ok());
    if (!connection.ok()) return std::string();
    EXPECT_TRUE((*connection)->WriteRaw(request).ok());
    return (*connection)->ReadRawUntil("\x01", absl::Seconds(20));  // until the server closes
  };
  const std::string preflight =
      "OPTIONS /v1/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://good.example\r\n"
      "Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n";
  const std::string good = raw(preflight);
  EXPECT_THAT(good, HasSubstr("HTTP/1.1 204"));
  EXPECT_THAT(good, HasSubstr("Access-Control-Allow-Origin: https://good.example"));
  EXPECT_THAT(good, HasSubstr("Access-Control-Allow-Headers: Authorization, Content-Type"));
  std::string evil_preflight = preflight;
  evil_preflight.replace(evil_preflight.find("good"), 4, "evil");
  const std::string evil = raw(evil_preflight);
  EXPECT_THAT(evil, HasSubstr("HTTP/1.1 403"));
  EXPECT_THAT(evil, Not(HasSubstr("Access-Control-Allow-Origin")));
  const std::string body = R"({"prompt": "Once", "max_tokens": 1})";
  const std::string post = raw(absl::StrCat(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://other.example\r\nContent-Type: application/json\r\n"
      "Content-Length: ",
      body.size(), "\r\nConnection: close\r\n\r\n", body));
  EXPECT_THAT(post, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(post, HasSubstr("Access-Control-Allow-Origin: https://other.example"));
}

TEST_F(HardeningTest, UnsupportedTransferEncodingIsNotImplemented) {
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection = HttpConnection::Connect(server_->http_port());
  ASSERT_TRUE(connection.ok()) << connection.status();
  ASSERT_TRUE((*connection)
                  ->WriteRaw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: gzip\r\n\r\nxxxxxxxx")
                  .ok());
  const std::string reply = (*connection)->ReadRawUntil("}}", absl::Seconds(5));
  EXPECT_THAT(reply, HasSubstr("HTTP/1.1 501")) << reply;
  EXPECT_THAT(reply, HasSubstr("Transfer-Encoding 'gzip' is not supported"));
  ExpectAlive();
}

TEST_F(HardeningTest, ModelsDoNotExposeTheServersPath) {
  absl::StatusOr<HttpResponse> response = HttpRequest(server_->http_port(), "GET", "/v1/models");
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->status, 200);
  EXPECT_THAT(response->body, Not(HasSubstr(DefaultModelDir().string())));
  const Json json = Json::parse(response->body);
  EXPECT_EQ(json["data"][0]["root"], "stories-moe-small");
}

// 429 (the waiting queue is full) and 503 (over --max-connections) both tell the client when to retry.
TEST(HardeningProcessTest, RetryAfterOn429WhenTheQueueIsFull) {
  std::vector<std::string> args = ModelArgs();
  args.insert(args.end(), {"--max-waiting-requests", "1", "--max-running-requests", "1"});
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->http_port();
  // Bursts of 16 concurrent requests against a queue of one: some are refused.
  HttpResponse busy;
  for (int burst = 0; burst < 10 && busy.status != 429; ++burst) {
    std::vector<HttpResponse> responses(16);
    std::vector<std::thread> clients;
    clients.reserve(responses.size());
    for (HttpResponse& response : responses) {
      clients.emplace_back([&response, port] {
        absl::StatusOr<HttpResponse> r =
            HttpRequest(port, "POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 64, "ignore_eos": true})");
        if (r.ok()) response = *r;
      });
    }
    for (std::thread& client : clients) client.join();
    for (const HttpResponse& response : responses) {
      if (response.status == 429) busy = response;
    }
  }
  ASSERT_EQ(busy.status, 429) << "no request of 10 bursts was refused";
  EXPECT_EQ(busy.Header("retry-after"), "1");
  EXPECT_THAT(busy.body, HasSubstr("max_waiting_requests"));
}

TEST(HardeningProcessTest, RetryAfterOn503OverMaxConnections) {
  std::vector<std::string> args = ModelArgs();
  args.insert(args.end(), {"--max-connections", "1"});
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->http_port();
  absl::StatusOr<std::unique_ptr<HttpConnection>> holder = HttpConnection::Connect(port);
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE((*holder)->Request("GET", "/healthz").ok());  // the one connection allowed, kept alive
  absl::StatusOr<HttpResponse> over = HttpRequest(port, "GET", "/healthz");
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_EQ(over->status, 503) << over->body;
  EXPECT_EQ(over->Header("retry-after"), "1");
  EXPECT_THAT(over->body, HasSubstr("max_connections"));
}

// A connection that trickles its header is closed after --http-header-timeout even though it keeps
// sending; a kept-alive connection idle for longer than that (but under --http-idle-timeout) still works.
TEST(HardeningProcessTest, HeaderTimeoutClosesSlowHeadersButNotIdleKeepAlive) {
  std::vector<std::string> args = ModelArgs();
  args.insert(args.end(), {"--http-header-timeout", "1", "--http-idle-timeout", "30"});
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->http_port();

  absl::StatusOr<std::unique_ptr<HttpConnection>> kept = HttpConnection::Connect(port);
  ASSERT_TRUE(kept.ok());
  ASSERT_TRUE((*kept)->Request("GET", "/healthz").ok());

  absl::StatusOr<std::unique_ptr<HttpConnection>> slow = HttpConnection::Connect(port);
  ASSERT_TRUE(slow.ok());
  const std::string header = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
  const absl::Time start = absl::Now();
  bool closed = false;
  for (size_t i = 0; i < header.size() && !closed; ++i) {
    closed = !(*slow)->WriteRaw(header.substr(i, 1), absl::Seconds(1)).ok();
    absl::SleepFor(absl::Milliseconds(200));  // the trickle itself is what is tested
  }
  // The server closed it: a write failed, or reading finds the end of the stream with no response.
  if (!closed) closed = (*slow)->ReadRawUntil("HTTP/1.1 200", absl::Seconds(2)).empty();
  EXPECT_TRUE(closed) << "a header sent one byte per 200 ms was still being read after "
                      << absl::FormatDuration(absl::Now() - start);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // 2 s idle (over the 1 s header timeout): the kept-alive connection serves its next request.
  absl::SleepFor(absl::Seconds(2));
  absl::StatusOr<HttpResponse> again = (*kept)->Request("GET", "/healthz");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->status, 200);
}

// Under `ulimit -n 256`, 300 idle connections used to stop the server from accepting anyone while both HTTP
// threads spun at 100% CPU on accept4 EMFILE, until the idle connections timed out 120 s later. Now the
// connections are capped below the fd limit, the acceptor backs off, idle connections that never send a
// header are closed after --http-header-timeout, and another client is served within seconds at little CPU.
TEST(HardeningProcessTest, IdleConnectionFloodUnderALowFdLimitStarvesNobody) {
  std::vector<std::string> args = ModelArgs();
  args.insert(args.end(), {"--grpc-port", "-1", "--http-header-timeout", "2"});
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args, absl::Seconds(60), 256);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->http_port();
  const double cpu_before = CpuSeconds((*server)->pid());

  std::vector<int> idle;
  for (int i = 0; i < 300; ++i) {
    const int fd = IdleSocket(port);
    if (fd >= 0) idle.push_back(fd);
  }
  EXPECT_GE(idle.size(), 256u);  // the backlog takes what the server does not accept
  const absl::Time flood_start = absl::Now();
  const std::optional<absl::Duration> served = TimeUntilServed(port, absl::Seconds(15));
  // Keep the flood up a little longer, then measure the CPU the whole episode cost.
  absl::SleepFor(absl::Seconds(1));
  const absl::Duration window = absl::Now() - flood_start;
  const double cpu = CpuSeconds((*server)->pid()) - cpu_before;
  for (int fd : idle) ::close(fd);

  ASSERT_TRUE(served.has_value()) << "no client was served within 15 s of 300 idle connections\n" << (*server)->Log();
  std::cout << "[ measured ] 300 idle connections, ulimit -n 256: another client served after "
            << absl::FormatDuration(*served) << "; server CPU " << cpu << " s over " << absl::FormatDuration(window)
            << "\n";
  EXPECT_LT(*served, absl::Seconds(6));  // header timeout 2 s + retries
  EXPECT_LT(cpu, 0.25 * absl::ToDoubleSeconds(window)) << "the server spun";
  EXPECT_THAT((*server)->Log(), Not(HasSubstr("Too many open files\n2026")));
}

}  // namespace
}  // namespace adak::testing
