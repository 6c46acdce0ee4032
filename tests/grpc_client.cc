#include "tests/grpc_client.h"

#include "absl/strings/str_cat.h"

namespace adak::testing {

std::shared_ptr<grpc::Channel> LocalChannel(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
}

std::unique_ptr<adak::v1::Generation::Stub> GenerationStub(int port) {
  return adak::v1::Generation::NewStub(LocalChannel(port));
}

adak::v1::GenerateRequest GreedyRequest(const std::string& text, int max_tokens, const std::string& policy) {
  adak::v1::GenerateRequest request;
  request.set_text(text);
  request.set_max_tokens(max_tokens);
  request.mutable_sampling()->set_temperature(0.0f);
  request.set_ignore_eos(true);
  if (!policy.empty()) request.mutable_routing()->set_policy(policy);
  return request;
}

StreamResult RunStream(adak::v1::Generation::Stub* stub, const adak::v1::GenerateRequest& request,
                       absl::Duration deadline) {
  StreamResult result;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  std::unique_ptr<grpc::ClientReader<adak::v1::GenerateStreamResponse>> reader =
      stub->GenerateStream(&context, request);
  adak::v1::GenerateStreamResponse message;
  while (reader->Read(&message)) {
    ++result.messages;
    result.text += message.text();
    result.token_ids.insert(result.token_ids.end(), message.token_ids().begin(), message.token_ids().end());
    result.last = message;
  }
  result.status = reader->Finish();
  return result;
}

grpc::Status HealthCheck(int port, const std::string& service,
                         grpc::health::v1::HealthCheckResponse::ServingStatus* serving) {
  auto stub = grpc::health::v1::Health::NewStub(LocalChannel(port));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  *serving = response.status();
  return status;
}

}  // namespace adak::testing
