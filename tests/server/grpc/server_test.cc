// GrpcServer itself (no model needed): binding, the port-in-use error, grpc.health.v1 liveness and
// readiness, and server reflection answering for the adak.v1.Generation service.
#include <memory>
#include <string>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "server/grpc/server.h"
#include "tests/grpc_client.h"
#include "tests/test_util.h"

namespace adak::server {
namespace {

using ::adak::testing::HealthCheck;
using ::adak::testing::StatusIs;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

std::unique_ptr<GrpcServer> StartOnEphemeralPort(ServiceContext* context) {
  GrpcServerOptions options;
  options.port = 0;
  absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(options, context);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(GrpcServerTest, HealthIsLiveAtOnceAndReadyOnlyWhenSet) {
  ServiceContext context;  // the health and reflection services need no model
  std::unique_ptr<GrpcServer> server = StartOnEphemeralPort(&context);
  ASSERT_NE(server, nullptr);
  HealthCheckResponse::ServingStatus serving = HealthCheckResponse::UNKNOWN;
  ASSERT_TRUE(HealthCheck(server->port(), "", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::SERVING);
  ASSERT_TRUE(HealthCheck(server->port(), "adak.v1.Generation", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::NOT_SERVING);
  server->SetReady(true);
  ASSERT_TRUE(HealthCheck(server->port(), "adak.v1.Generation", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::SERVING);
  server->SetReady(false);
  ASSERT_TRUE(HealthCheck(server->port(), "adak.v1.Generation", &serving).ok());
  EXPECT_EQ(serving, HealthCheckResponse::NOT_SERVING);
  server->Shutdown(absl::Now());
  server->Shutdown(absl::Now());  // idempotent
}

TEST(GrpcServerTest, PortInUseIsUnavailableNamingTheAddress) {
  ServiceContext context;
  std::unique_ptr<GrpcServer> first = StartOnEphemeralPort(&context);
  ASSERT_NE(first, nullptr);
  GrpcServerOptions options;
  options.port = first->port();
  absl::StatusOr<std::unique_ptr<GrpcServer>> second = GrpcServer::Start(options, &context);
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable, HasSubstr(absl::StrCat("127.0.0.1:", first->port()))));
}

TEST(GrpcServerTest, BadOptionsAreInvalidArgument) {
  ServiceContext context;
  GrpcServerOptions options;
  options.port = 70000;
  EXPECT_THAT(GrpcServer::Start(options, &context), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port")));
}

// One grpc.reflection.v1alpha ServerReflectionInfo exchange over the generic (byte) API, since the
// reflection protos are not shipped: `request` is a serialized ServerReflectionRequest.
std::string ReflectionExchange(int port, const std::string& request, grpc::Status* status) {
  grpc::CompletionQueue cq;
  grpc::GenericStub stub(adak::testing::LocalChannel(port));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto call = stub.PrepareCall(&context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](intptr_t want) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!step(1)) return "";
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  step(2);
  call->WritesDone(reinterpret_cast<void*>(3));
  step(3);
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(4));
  std::string response;
  if (step(4)) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(in.Dump(&slices).ok());
    for (const grpc::Slice& s : slices) response.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  call->Finish(status, reinterpret_cast<void*>(5));
  step(5);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return response;
}

TEST(GrpcServerTest, ReflectionListsTheServicesAndDescribesGeneration) {
  ServiceContext context;
  std::unique_ptr<GrpcServer> server = StartOnEphemeralPort(&context);
  ASSERT_NE(server, nullptr);
  grpc::Status status;
  // list_services = "" (field 7, length-delimited, empty).
  const std::string services = ReflectionExchange(server->port(), std::string("\x3a\x00", 2), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(services, HasSubstr("adak.v1.Generation"));
  EXPECT_THAT(services, HasSubstr("grpc.reflection.v1alpha.ServerReflection"));
  // file_containing_symbol = "adak.v1.Generation" (field 4): the FileDescriptorProto of the API.
  const std::string symbol = "adak.v1.Generation";
  const std::string file =
      ReflectionExchange(server->port(), std::string("\x22", 1) + static_cast<char>(symbol.size()) + symbol, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(file, HasSubstr("adak/v1/generation.proto"));
  EXPECT_THAT(file, HasSubstr("GenerateStream"));
}

}  // namespace
}  // namespace adak::server
