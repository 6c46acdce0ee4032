// The fixture of the HTTP gateway tests: one real in-process ServerApp (HTTP only, on an ephemeral port)
// over models/stories-moe-small and its two allocator profiles for the whole suite, and helpers to call it over
// loopback and check OpenAI error bodies.
#ifndef ADAK_TESTS_SERVER_HTTP_GATEWAY_FIXTURE_H_
#define ADAK_TESTS_SERVER_HTTP_GATEWAY_FIXTURE_H_

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/server_app.h"
#include "tests/http_client.h"
#include "tests/test_util.h"

namespace adak::server {

class GatewayFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerAppOptions options;
    options.model_dir = ::adak::testing::DefaultModelDir();
    // The default model's two shipped profiles, as scripts/run.sh serves them.
    options.allocators = {engine::AllocatorFile{"", ::adak::testing::DefaultAllocator()},
                          engine::AllocatorFile{"", ::adak::testing::EcoAllocator()}};
    options.grpc_port = -1;
    options.http_port = 0;
    options.threads = 1;
    options.max_running_requests = 8;
    options.kv_cache_mib = 16;
    absl::StatusOr<std::unique_ptr<ServerApp>> app = ServerApp::Create(options);
    ASSERT_TRUE(app.ok()) << app.status();
    ASSERT_TRUE((*app)->Start().ok());
    app_ = app->release();
  }
  static void TearDownTestSuite() {
    delete app_;
    app_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(app_, nullptr);
    port_ = app_->http_port();
  }

  ::adak::testing::HttpResponse Post(const nlohmann::json& body, const std::string& target = "/v1/completions") {
    absl::StatusOr<::adak::testing::HttpResponse> response =
        ::adak::testing::HttpRequest(port_, "POST", target, body.dump());
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : ::adak::testing::HttpResponse{};
  }
  ::adak::testing::HttpResponse Get(const std::string& target) {
    absl::StatusOr<::adak::testing::HttpResponse> response = ::adak::testing::HttpRequest(port_, "GET", target);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : ::adak::testing::HttpResponse{};
  }
  static nlohmann::json Parse(const ::adak::testing::HttpResponse& response) {
    nlohmann::json json = nlohmann::json::parse(response.body, nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << response.body;
    return json;
  }
  // Expects an OpenAI error with `status` and `param` (null when empty).
  void ExpectError(const ::adak::testing::HttpResponse& response, int status, const std::string& param) {
    EXPECT_EQ(response.status, status) << response.body;
    const nlohmann::json json = Parse(response);
    ASSERT_TRUE(json.contains("error")) << response.body;
    if (param.empty()) {
      EXPECT_TRUE(json["error"]["param"].is_null()) << response.body;
    } else {
      EXPECT_EQ(json["error"]["param"], param) << response.body;
    }
    EXPECT_FALSE(json["error"]["message"].get<std::string>().empty());
  }
  static nlohmann::json Greedy(const std::string& prompt, int max_tokens) {
    return nlohmann::json{{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
  }

  static inline ServerApp* app_ = nullptr;
  int port_ = 0;
};

}  // namespace adak::server

#endif  // ADAK_TESTS_SERVER_HTTP_GATEWAY_FIXTURE_H_
