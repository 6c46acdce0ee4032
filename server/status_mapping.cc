#include "server/status_mapping.h"

#include "absl/strings/ascii.h"
#include "nlohmann/json.hpp"

namespace adak::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

int HttpStatusCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kUnimplemented: return 501;
    default: return 500;
  }
}

const char* OpenAiErrorType(const absl::Status& status) {
  switch (HttpStatusCode(status)) {
    case 400: return "invalid_request_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_exceeded";
    case 503: return "service_unavailable";
    case 504: return "timeout";
    default: return "server_error";
  }
}

std::string StatusCodeLabel(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);  // e.g. "INVALID_ARGUMENT"
  absl::AsciiStrToLower(&name);
  return name;
}

std::string OpenAiErrorBody(const absl::Status& status, const std::string& param) {
  nlohmann::json error = {{"message", std::string(status.message())},
                          {"type", OpenAiErrorType(status)},
                          {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
                          {"code", StatusCodeLabel(status.code())}};
  return nlohmann::json{{"error", error}}.dump();
}

}  // namespace adak::server
