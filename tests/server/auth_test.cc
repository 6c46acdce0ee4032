// API keys (server/auth.h): the key check itself, and a real `adak serve` with keys from --api-key and
// ADAK_API_KEYS_FILE over loopback on both front ends (HTTP Authorization: Bearer, gRPC metadata
// authorization), with health and metrics open and the keys absent from the log.
#include "server/auth.h"

#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/grpc_client.h"
#include "tests/http_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"

namespace adak::server {
namespace {

using ::adak::testing::GenerationStub;
using ::adak::testing::GreedyRequest;
using ::adak::testing::HttpConnection;
using ::adak::testing::HttpRequest;
using ::adak::testing::HttpResponse;
using ::adak::testing::ServerProcess;
using ::adak::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(ApiKeysTest, ChecksBearerKeys) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::Create({"alpha-123", "beta-456"});
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(keys->enabled());
  EXPECT_TRUE(keys->Check("Bearer alpha-123").ok());
  EXPECT_TRUE(keys->Check("Bearer beta-456").ok());
  EXPECT_THAT(keys->Check("Bearer alpha-12"), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("invalid")));
  EXPECT_THAT(keys->Check("Bearer alpha-1234"), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("invalid")));
  EXPECT_THAT(keys->Check("alpha-123"), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("missing")));
  EXPECT_THAT(keys->Check(""), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Authorization: Bearer")));
  // No key in any message.
  EXPECT_THAT(std::string(keys->Check("Bearer wrong").message()), Not(HasSubstr("alpha")));
  EXPECT_TRUE(ApiKeys().Check("").ok());  // no keys: open
  EXPECT_THAT(ApiKeys::Create({"has space"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key #1")));
  EXPECT_THAT(ApiKeys::Create({""}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST(ApiKeysTest, ConstantTimeEqualsComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0", 2), "a"));
}

TEST(ApiKeysTest, ReadsAKeysFile) {
  adak::testing::TempDir dir;
  adak::testing::WriteFile(dir.path() / "keys", "# comment\n\n  key-one  \nkey-two\r\n");
  absl::StatusOr<std::vector<std::string>> keys = ApiKeys::ReadFile(dir.path() / "keys");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_THAT(*keys, ::testing::ElementsAre("key-one", "key-two"));
  adak::testing::WriteFile(dir.path() / "bad", "ok\nnot ok\n");
  EXPECT_THAT(ApiKeys::ReadFile(dir.path() / "bad"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
  EXPECT_THAT(ApiKeys::ReadFile(dir.path() / "missing"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

class AuthServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    keys_dir_ = new adak::testing::TempDir();
    adak::testing::WriteFile(keys_dir_->path() / "keys", "# deployment keys\nfile-key-789\n");
    setenv("ADAK_API_KEYS_FILE", (keys_dir_->path() / "keys").c_str(), 1);
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start({"--model", adak::testing::DefaultModelDir().string(), "--threads", "1", "--api-key",
                              "flag-key-123", "--api-key", "flag-key-456"});
    unsetenv("ADAK_API_KEYS_FILE");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete keys_dir_;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  // POST /v1/completions with `authorization` ("" = no header).
  static HttpResponse Complete(const std::string& authorization) {
    absl::StatusOr<std::unique_ptr<HttpConnection>> connection = HttpConnection::Connect(server_->http_port());
    EXPECT_TRUE(connection.ok());
    if (!connection.ok()) return {};
    std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    if (!authorization.empty()) request += "Authorization: " + authorization + "\r\n";
    const std::string body = R"({"prompt": "Once", "max_tokens": 2})";
    request += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    EXPECT_TRUE((*connection)->WriteRaw(request).ok());
    const std::string raw = (*connection)->ReadRawUntil("\x01", absl::Seconds(20));  // until closed
    HttpResponse response;
    if (raw.size() > 12) response.status = std::stoi(raw.substr(9, 3));
    response.body = raw;
    return response;
  }

  static adak::testing::TempDir* keys_dir_;
  static ServerProcess* server_;
};

adak::testing::TempDir* AuthServerTest::keys_dir_ = nullptr;
ServerProcess* AuthServerTest::server_ = nullptr;

TEST_F(AuthServerTest, HttpNeedsABearerKeyOnTheApiOnly) {
  const HttpResponse none = Complete("");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_THAT(none.body, HasSubstr("WWW-Authenticate: Bearer"));
  EXPECT_THAT(none.body, HasSubstr("authentication_error"));
  EXPECT_EQ(Complete("Bearer nope").status, 401);
  EXPECT_EQ(Complete("Bearer flag-key-123").status, 200);
  EXPECT_EQ(Complete("Bearer flag-key-456").status, 200);
  EXPECT_EQ(Complete("Bearer file-key-789").status, 200);  // from ADAK_API_KEYS_FILE
  absl::StatusOr<HttpResponse> models = HttpRequest(server_->http_port(), "GET", "/v1/models");
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->status, 401);
  for (const char* open : {"/healthz", "/readyz", "/metrics"}) {
    absl::StatusOr<HttpResponse> response = HttpRequest(server_->http_port(), "GET", open);
    ASSERT_TRUE(response.ok()) << open;
    EXPECT_EQ(response->status, 200) << open;
  }
}

TEST_F(AuthServerTest, GrpcNeedsTheAuthorizationMetadata) {
  auto stub = GenerationStub(server_->grpc_port());
  const auto generate = [&](const std::string& authorization) {
    grpc::ClientContext call;
    if (!authorization.empty()) call.AddMetadata("authorization", authorization);
    adak::v1::GenerateResponse response;
    return stub->Generate(&call, GreedyRequest("Once", 2), &response);
  };
  EXPECT_EQ(generate("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(generate("Bearer flag-key").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(generate("Bearer flag-key-123").ok());
  EXPECT_TRUE(generate("Bearer file-key-789").ok());
  const adak::testing::StreamResult refused = adak::testing::RunStream(stub.get(), GreedyRequest("Once", 2));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext call;
    adak::v1::TokenizeRequest request;
    request.set_text("Once");
    adak::v1::TokenizeResponse response;
    EXPECT_EQ(stub->Tokenize(&call, request, &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  grpc::health::v1::HealthCheckResponse::ServingStatus serving;
  EXPECT_TRUE(adak::testing::HealthCheck(server_->grpc_port(), "adak.v1.Generation", &serving).ok());
  EXPECT_THAT(server_->Log(), Not(HasSubstr("flag-key-123")));
  EXPECT_THAT(server_->Log(), Not(HasSubstr("file-key-789")));
  EXPECT_THAT(server_->Log(), HasSubstr("3 API key(s) required"));
}

}  // namespace
}  // namespace adak::server
