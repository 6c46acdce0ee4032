// The one mapping from absl::Status (the engine's, scheduler's and admission's error channel) to gRPC and
// HTTP. Every front end converts through here and nowhere else.
//
// gRPC: the same canonical code and message (the numeric codes are equal). A status carrying a request
// field (base/error_field.h) also carries google.rpc.Status error details (the
// "grpc-status-details-bin" trailer) holding a google.rpc.BadRequest with one field violation: that
// field and the message.
// HTTP (OpenAI style): InvalidArgument/OutOfRange/FailedPrecondition 400, Unauthenticated 401,
// PermissionDenied 403, NotFound 404, ResourceExhausted
// 429, Cancelled 499, Unimplemented 501, Unavailable 503, DeadlineExceeded 504, everything else
// (Internal, Unknown, DataLoss, ...) 500; the body is {"error": {"message", "type", "param", "code"}} with
// `param` the attached field in the JSON spelling (ErrorParam), null when none.
// Pure functions; thread-safe.
#ifndef ADAK_SERVER_STATUS_MAPPING_H_
#define ADAK_SERVER_STATUS_MAPPING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace adak::server {

[[nodiscard]] grpc::Status ToGrpcStatus(const absl::Status& status);
// The inverse: code, message, and the field of a BadRequest detail when there is one.
[[nodiscard]] absl::Status FromGrpcStatus(const grpc::Status& status);

[[nodiscard]] int HttpStatusCode(const absl::Status& status);
// OpenAI's error "type": invalid_request_error, authentication_error, permission_error, not_found_error,
// rate_limit_exceeded, service_unavailable, timeout, server_error.
[[nodiscard]] const char* OpenAiErrorType(const absl::Status& status);

// A request field as the HTTP JSON body spells it: the routing options live under "adak" ("routing.top_k"
// -> "adak.routing.top_k", "return_routing_stats" -> "adak.return_routing_stats"); every other field has the
// same name (names the HTTP parser attached, e.g. "adak.timeout_seconds" or "n", pass unchanged).
[[nodiscard]] std::string HttpFieldName(std::string_view field);
// The OpenAI error's `param`: HttpFieldName of the field attached to `status`, or "" when none.
[[nodiscard]] std::string ErrorParam(const absl::Status& status);
// The OpenAI-style JSON error body; `param` is ErrorParam(status) (null when empty).
[[nodiscard]] std::string OpenAiErrorBody(const absl::Status& status);

// A lower-case name of the code for metric labels and the OpenAI error's `code` ("invalid_argument",
// "resource_exhausted", ...).
[[nodiscard]] std::string StatusCodeLabel(absl::StatusCode code);

}  // namespace adak::server

#endif  // ADAK_SERVER_STATUS_MAPPING_H_
