// A device failure of an engine step (the fake engine's FailNext: its Forward returns Internal) through a
// real Scheduler, the gRPC service and the HTTP gateway: the failing request gets INTERNAL / 500 with the
// engine's message, readiness turns NOT_SERVING (grpc.health.v1 "adak.v1.Generation", /readyz 503) and
// stays off, liveness stays on, and new calls are refused UNAVAILABLE / 503.
#include "server/engine_health.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/grpc/server.h"
#include "server/http/gateway.h"
#include "tests/grpc_client.h"
#include "tests/http_client.h"
#include "tests/server/fake_serving.h"
#include "tests/test_util.h"

namespace adak::server {
namespace {

using ::adak::testing::HealthCheck;
using ::adak::testing::HttpRequest;
using ::adak::testing::HttpResponse;
using grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using Json = nlohmann::json;

TEST(EngineHealthObserver, OnlyInternalTurnsTheEngineUnhealthyAndEveryEventIsForwarded) {
  ServingState state;
  state.SetPhase(ServingPhase::kServing);
  std::vector<bool> readiness;
  state.SetReadinessListener([&](bool ready) { readiness.push_back(ready); });
  scheduler::testing::RecordingObserver inner;
  EngineHealthObserver observer(&state, &inner);
  for (absl::StatusCode code : {absl::StatusCode::kOk, absl::StatusCode::kCancelled,
                                absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnavailable}) {
    scheduler::RequestStats finished;
    finished.code = code;
    observer.OnRequestFinished(finished);
    EXPECT_TRUE(state.ready()) << absl::StatusCodeToString(code);
  }
  scheduler::RequestStats failed;
  failed.reason = scheduler::FinishReason::kError;
  failed.code = absl::StatusCode::kInternal;
  observer.OnRequestFinished(failed);
  EXPECT_TRUE(state.engine_failed());
  EXPECT_FALSE(state.ready());
  EXPECT_EQ(state.phase(), ServingPhase::kServing);
  EXPECT_EQ(readiness, (std::vector<bool>{true, false}));  // at registration, then the failure
  // For good: serving again does not make it ready.
  state.SetPhase(ServingPhase::kServing);
  EXPECT_FALSE(state.ready());
  EXPECT_EQ(inner.finished().size(), 5u);
  state.SetReadinessListener(nullptr);
}

// The fake serving stack behind a real gRPC server and HTTP gateway on ephemeral ports.
class EngineFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<GrpcServer>> grpc =
        GrpcServer::Start({.host = "127.0.0.1", .port = 0}, &serving_.context);
    ASSERT_TRUE(grpc.ok()) << grpc.status();
    grpc_ = *std::move(grpc);
    absl::StatusOr<std::unique_ptr<HttpGateway>> http =
        HttpGateway::Start({.host = "127.0.0.1", .port = 0, .threads = 1}, &serving_.context);
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = *std::move(http);
    serving_.sched->Start();
    serving_.state.SetPhase(ServingPhase::kServing);
  }
  void TearDown() override {
    serving_.state.SetPhase(ServingPhase::kDraining);
    serving_.sched->Shutdown();
    if (grpc_ != nullptr) grpc_->Shutdown(absl::Now() + absl::Seconds(2));
    if (http_ != nullptr) http_->Shutdown();
  }

  HealthCheckResponse::ServingStatus Health(const std::string& service) {
    HealthCheckResponse::ServingStatus status = HealthCheckResponse::UNKNOWN;
    EXPECT_TRUE(HealthCheck(grpc_->port(), service, &status).ok());
    return status;
  }
  HttpResponse Http(const std::string& method, const std::string& target, const std::string& body = "") {
    absl::StatusOr<HttpResponse> response = HttpRequest(http_->port(), method, target, body);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : HttpResponse{};
  }
  grpc::Status Generate() {
    adak::v1::GenerateRequest request;
    request.set_text("abc");
    request.set_max_tokens(3);
    request.mutable_sampling()->set_temperature(0.0f);
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    adak::v1::GenerateResponse response;
    return adak::testing::GenerationStub(grpc_->port())->Generate(&call, request, &response);
  }
  static std::string CompletionBody() { return Json{{"prompt", "abc"}, {"max_tokens", 3}, {"temperature", 0}}.dump(); }

  // Healthy: both readiness signals on, and a request succeeds.
  void ExpectHealthy() {
    EXPECT_EQ(Health("adak.v1.Generation"), HealthCheckResponse::SERVING);
    EXPECT_EQ(Http("GET", "/readyz").status, 200);
    const grpc::Status ok = Generate();
    EXPECT_TRUE(ok.ok()) << ok.error_message();
  }
  // After the failure: not ready on both front ends (liveness on), new calls refused.
  void ExpectNotServing() {
    EXPECT_EQ(Health("adak.v1.Generation"), HealthCheckResponse::NOT_SERVING);
    EXPECT_EQ(Health(""), HealthCheckResponse::SERVING);
    const HttpResponse ready = Http("GET", "/readyz");
    EXPECT_EQ(ready.status, 503);
    EXPECT_THAT(ready.body, HasSubstr("engine_failed"));
    EXPECT_EQ(Http("GET", "/healthz").status, 200);
    const grpc::Status refused = Generate();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
    EXPECT_THAT(refused.error_message(), HasSubstr("engine failed"));
    const HttpResponse refused_http = Http("POST", "/v1/completions", CompletionBody());
    EXPECT_EQ(refused_http.status, 503) << refused_http.body;
  }

  testing::FakeServing serving_{/*with_scheduler=*/true};
  std::unique_ptr<GrpcServer> grpc_;
  std::unique_ptr<HttpGateway> http_;
};

TEST_F(EngineFailureTest, GrpcRequestGetsInternalAndReadinessTurnsOff) {
  ExpectHealthy();
  serving_.executor.FailNext();
  const grpc::Status failed = Generate();
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::INTERNAL) << failed.error_message();
  EXPECT_THAT(failed.error_message(), HasSubstr("injected device failure"));
  EXPECT_TRUE(failed.error_details().empty());  // no request field is at fault
  ExpectNotServing();
}

TEST_F(EngineFailureTest, HttpRequestGets500AndReadinessTurnsOff) {
  ExpectHealthy();
  serving_.executor.FailNext();
  const HttpResponse failed = Http("POST", "/v1/completions", CompletionBody());
  EXPECT_EQ(failed.status, 500) << failed.body;
  const Json error = Json::parse(failed.body, nullptr, false)["error"];
  EXPECT_EQ(error["type"], "server_error");
  EXPECT_EQ(error["code"], "internal");
  EXPECT_TRUE(error["param"].is_null());
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("injected device failure"));
  ExpectNotServing();
}

}  // namespace
}  // namespace adak::server
