// The real adak-loadtest binary against a real in-process server (ServerApp on the project's own model
// and allocator) over loopback gRPC and HTTP: closed and open loops, an A/B mix whose arms the server
// routes differently, duration bounds, and failures counted by code with exit status 1.
#include <cstdlib>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/server_app.h"
#include "tests/test_util.h"

namespace adak::loadtest {
namespace {

using ::adak::testing::DefaultAllocator;
using ::adak::testing::DefaultModelDir;
using ::adak::testing::ReadFile;
using ::adak::testing::RunCommand;
using ::adak::testing::ShellQuote;
using ::adak::testing::TempDir;
using ::testing::HasSubstr;
using Json = nlohmann::json;

class LoadtestProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server::ServerAppOptions options;
    options.model_dir = DefaultModelDir();
    options.allocators = {engine::AllocatorFile{"", DefaultAllocator()}};
    options.grpc_port = 0;
    options.http_port = 0;
    options.threads = 1;
    options.max_running_requests = 8;
    options.kv_cache_mib = 16;
    absl::StatusOr<std::unique_ptr<server::ServerApp>> app = server::ServerApp::Create(options);
    ASSERT_TRUE(app.ok()) << app.status();
    ASSERT_TRUE((*app)->Start().ok());
    app_ = std::move(app).value().release();
  }
  static void TearDownTestSuite() {
    delete app_;
    app_ = nullptr;
  }

  // Runs adak-loadtest with `flags` plus --json; returns the report (null when none was written).
  Json Run(const std::string& flags, int* code, std::string* output = nullptr) {
    const std::string json = (tmp_.path() / "report.json").string();
    std::remove(json.c_str());
    const std::string command = ShellQuote((::adak::testing::BinDir() / "adak-loadtest").string()) + " " + flags +
                                " --no-progress --json " + ShellQuote(json) + " 2>&1";
    const std::string out = RunCommand(command, code);
    if (output != nullptr) *output = out;
    const std::string text = ReadFile(json);
    return text.empty() ? Json() : Json::parse(text);
  }
  std::string Grpc() const { return "--target 127.0.0.1:" + std::to_string(app_->grpc_port()); }
  std::string OpenAi() const { return "--api openai --target http://127.0.0.1:" + std::to_string(app_->http_port()); }

  static server::ServerApp* app_;
  TempDir tmp_;
};

server::ServerApp* LoadtestProcessTest::app_ = nullptr;

TEST_F(LoadtestProcessTest, ClosedLoopAbMixOverGrpcReportsEachArm) {
  int code = -1;
  std::string out;
  const Json report =
      Run(Grpc() + " --concurrency 2 --requests 8 --max-tokens 8 --mix topk:1,adak:1 --seed 3", &code, &out);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("ttft p50"));  // the table
  const Json& all = report["overall"];
  EXPECT_EQ(all["requests"], 8);
  EXPECT_EQ(all["errors"], 0);
  EXPECT_EQ(all["output_tokens"], 8 * 8);
  EXPECT_GT(all["ttft_ms"]["p50"].get<double>(), 0.0);
  EXPECT_EQ(all["itl_ms"]["count"], 8 * 7);
  EXPECT_GT(all["output_throughput"].get<double>(), 0.0);
  EXPECT_EQ(report["config"]["mode"], "closed");
  ASSERT_EQ(report["arms"].size(), 2u);
  const Json& topk = report["arms"][0];
  const Json& adak = report["arms"][1];
  EXPECT_EQ(topk["arm"], "topk");
  EXPECT_EQ(topk["requests"].get<int64_t>() + adak["requests"].get<int64_t>(), 8);
  ASSERT_GT(topk["requests"].get<int64_t>(), 0);
  ASSERT_GT(adak["requests"].get<int64_t>(), 0);
  // The server's own usage: native top-2 saves nothing; the allocator picks fewer experts.
  EXPECT_DOUBLE_EQ(topk["mean_k"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(topk["flop_savings_ratio"].get<double>(), 0.0);
  EXPECT_LT(adak["mean_k"].get<double>(), 2.0);
  EXPECT_GT(adak["flop_savings_ratio"].get<double>(), 0.0);
}

TEST_F(LoadtestProcessTest, OpenLoopOverTheOpenAiEndpoint) {
  int code = -1;
  std::string out;
  const Json report =
      Run(OpenAi() + " --rate 40 --requests 10 --max-tokens 4:8 --prompt-words 3:12 --slo ttft=60000", &code, &out);
  ASSERT_EQ(code, 0) << out;
  const Json& all = report["overall"];
  EXPECT_EQ(all["requests"], 10);
  EXPECT_EQ(all["errors"], 0);
  const int64_t tokens = all["output_tokens"].get<int64_t>();
  EXPECT_GE(tokens, 40);
  EXPECT_LE(tokens, 80);
  EXPECT_EQ(all["itl_ms"]["count"].get<int64_t>(), tokens - 10);
  EXPECT_GT(all["prompt_tokens"].get<int64_t>(), 0);
  EXPECT_DOUBLE_EQ(all["mean_k"].get<double>(), 2.0);  // usage.adak of the default (top-K) routing
  EXPECT_EQ(all["good_requests"], 10);
  EXPECT_EQ(report["config"]["mode"], "open");
}

TEST_F(LoadtestProcessTest, DurationBoundsAnOpenLoop) {
  int code = -1;
  std::string out;
  const Json report = Run(Grpc() + " --rate 40 --duration 0.5 --max-tokens 2", &code, &out);
  ASSERT_EQ(code, 0) << out;
  // About 20 arrivals in 0.5 s at 40/s (Poisson): far from 0 and from unbounded.
  EXPECT_GE(report["overall"]["requests"].get<int64_t>(), 5);
  EXPECT_LE(report["overall"]["requests"].get<int64_t>(), 60);
}

TEST_F(LoadtestProcessTest, RefusedRequestsAreCountedByCodeAndExitOne) {
  int code = -1;
  std::string out;
  // The server has no null-experts file: every request of that arm is INVALID_ARGUMENT (gRPC) / 400 (HTTP).
  Json report = Run(Grpc() + " --concurrency 1 --requests 3 --max-tokens 2 --mix null:1", &code, &out);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("3 requests failed; first: invalid_argument: "));
  EXPECT_EQ(report["overall"]["errors_by_code"]["invalid_argument"], 3);
  report = Run(OpenAi() + " --concurrency 1 --requests 2 --max-tokens 2 --mix null:1", &code, &out);
  EXPECT_EQ(code, 1) << out;
  EXPECT_EQ(report["overall"]["errors_by_code"]["http_400"], 2);
}

TEST_F(LoadtestProcessTest, UsageErrorsExitTwoNamingTheFlag) {
  int code = -1;
  std::string out;
  (void)Run(Grpc() + " --requests 2", &code, &out);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("exactly one of --concurrency"));
  (void)Run(Grpc() + " --concurrency 1 --requests 2 --mix topk:0", &code, &out);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("the weight must be a positive number"));
  (void)Run("--api openai --target 127.0.0.1:1 --concurrency 1 --requests 1", &code, &out);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("must be http://HOST:PORT"));
  (void)Run("--target 127.0.0.1:1 --concurrency 1 --requests 1", &code, &out);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(out, HasSubstr("cannot connect to 127.0.0.1:1"));
}

}  // namespace
}  // namespace adak::loadtest
