// Small synchronous gRPC client helpers for the server tests: stubs for adak.v1.Generation and
// grpc.health.v1, requests, and a stream reader that collects a whole GenerateStream call.
// Thread-safe (each call builds its own context).
#ifndef ADAK_TESTS_GRPC_CLIENT_H_
#define ADAK_TESTS_GRPC_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "adak/v1/generation.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace adak::testing {

[[nodiscard]] std::shared_ptr<grpc::Channel> LocalChannel(int port);
[[nodiscard]] std::unique_ptr<adak::v1::Generation::Stub> GenerationStub(int port);

// A greedy (temperature 0) request for `max_tokens` tokens after `text`, with routing `policy` ("" =
// the server default) and ignore_eos so the length is exact.
[[nodiscard]] adak::v1::GenerateRequest GreedyRequest(const std::string& text, int max_tokens,
                                                      const std::string& policy = "");

struct StreamResult {
  grpc::Status status;
  std::string text;                // every message's text
  std::vector<int32_t> token_ids;  // every message's ids
  int messages = 0;
  adak::v1::GenerateStreamResponse last;  // the final message (finish_reason, usage) when OK
};

// Runs one GenerateStream call to the end. `deadline` is relative to now.
[[nodiscard]] StreamResult RunStream(adak::v1::Generation::Stub* stub, const adak::v1::GenerateRequest& request,
                                     absl::Duration deadline = absl::Seconds(60));

// grpc.health.v1 Check of `service`; the status code of the call, the serving status in `serving`.
[[nodiscard]] grpc::Status HealthCheck(int port, const std::string& service,
                                       grpc::health::v1::HealthCheckResponse::ServingStatus* serving);

}  // namespace adak::testing

#endif  // ADAK_TESTS_GRPC_CLIENT_H_
