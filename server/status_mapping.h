// The one mapping from absl::Status (the engine's and scheduler's error channel) to gRPC and HTTP.
//
// gRPC: the same canonical code and message. HTTP (OpenAI style): InvalidArgument/OutOfRange 400,
// NotFound 404, ResourceExhausted 429, Unavailable 503, DeadlineExceeded 504, Cancelled 499,
// Unimplemented 501, everything else 500; the body is {"error": {"message", "type", "param", "code"}}.
#ifndef ADAK_SERVER_STATUS_MAPPING_H_
#define ADAK_SERVER_STATUS_MAPPING_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace adak::server {

[[nodiscard]] grpc::Status ToGrpcStatus(const absl::Status& status);
[[nodiscard]] absl::Status FromGrpcStatus(const grpc::Status& status);

[[nodiscard]] int HttpStatusCode(const absl::Status& status);
// OpenAI's error "type": invalid_request_error, rate_limit_exceeded, service_unavailable, timeout,
// not_found_error, server_error.
[[nodiscard]] const char* OpenAiErrorType(const absl::Status& status);
// The OpenAI-style JSON error body. `param` (may be empty) names the offending field.
[[nodiscard]] std::string OpenAiErrorBody(const absl::Status& status, const std::string& param = "");

// A lower-case name of the code for metric labels ("invalid_argument", "resource_exhausted", ...).
[[nodiscard]] std::string StatusCodeLabel(absl::StatusCode code);

}  // namespace adak::server

#endif  // ADAK_SERVER_STATUS_MAPPING_H_
