// The adak.v1.Generation callback service: Generate/GenerateStream (server/grpc/generate.h), Score
// (server/grpc/score.h), and the two small unary methods Tokenize and GetModelInfo, answered inline.
// Every method refuses with UNAVAILABLE unless the server is SERVING with a healthy engine
// (CheckServing, server/admission.h). Thread-safe: gRPC calls the
// methods from its callback threads; the service only reads the context.
#ifndef ADAK_SERVER_GRPC_SERVICE_H_
#define ADAK_SERVER_GRPC_SERVICE_H_

#include "absl/status/statusor.h"
#include "adak/v1/generation.grpc.pb.h"
#include "server/service_context.h"

namespace adak::server {

class GenerationService final : public adak::v1::Generation::CallbackService {
 public:
  // REQUIRES: `context` outlives the service.
  explicit GenerationService(ServiceContext* context) : context_(context) {}

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* call, const adak::v1::GenerateRequest* request,
                                     adak::v1::GenerateResponse* response) override;
  grpc::ServerWriteReactor<adak::v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* call, const adak::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* call, const adak::v1::ScoreRequest* request,
                                  adak::v1::ScoreResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* call, const adak::v1::TokenizeRequest* request,
                                     adak::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* call,
                                         const adak::v1::GetModelInfoRequest* request,
                                         adak::v1::ModelInfo* response) override;

 private:
  ServiceContext* context_;
};

// OK when the call carries a valid API key in its `authorization` metadata, or the server has none
// (server/auth.h); Unauthenticated otherwise, counted as a refusal.
[[nodiscard]] absl::Status Authenticate(const grpc::CallbackServerContext& call, const ServiceContext& context);

// The model description GetModelInfo returns (also usable without a call).
[[nodiscard]] adak::v1::ModelInfo MakeModelInfo(const ServiceContext& context);

// Tokenize without a call. InvalidArgument naming "text" when it is not valid UTF-8 or does not fit in the
// model's context (refused by its size before tokenizing when it cannot fit; see TokenizeBounded).
[[nodiscard]] absl::StatusOr<adak::v1::TokenizeResponse> TokenizeText(const ServiceContext& context,
                                                                      const std::string& text);

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_SERVICE_H_
