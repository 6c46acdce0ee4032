// The one absl::Status -> gRPC / HTTP mapping (server/status_mapping.h): every absl code to its gRPC code,
// HTTP status and OpenAI error type; the request field carried on the status (base/error_field.h) into
// the gRPC BadRequest detail and the OpenAI param, and never read from the message text.
#include "server/status_mapping.h"

#include <string>
#include <vector>

#include "base/error_field.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace adak::server {
namespace {

using Json = nlohmann::json;

struct CodeCase {
  absl::StatusCode code;
  grpc::StatusCode grpc;
  int http;
  const char* openai_type;
  const char* label;
};

// Every absl::StatusCode (0..16).
const std::vector<CodeCase>& AllCodes() {
  static const std::vector<CodeCase> cases = {
      {absl::StatusCode::kOk, grpc::StatusCode::OK, 200, "server_error", "ok"},
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED, 499, "server_error", "cancelled"},
      {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN, 500, "server_error", "unknown"},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT, 400, "invalid_request_error",
       "invalid_argument"},
      {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED, 504, "timeout", "deadline_exceeded"},
      {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND, 404, "not_found_error", "not_found"},
      {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS, 500, "server_error", "already_exists"},
      {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED, 403, "permission_error",
       "permission_denied"},
      {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED, 429, "rate_limit_exceeded",
       "resource_exhausted"},
      {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION, 400, "invalid_request_error",
       "failed_precondition"},
      {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED, 500, "server_error", "aborted"},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE, 400, "invalid_request_error", "out_of_range"},
      {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED, 501, "server_error", "unimplemented"},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL, 500, "server_error", "internal"},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE, 503, "service_unavailable", "unavailable"},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS, 500, "server_error", "data_loss"},
      {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED, 401, "authentication_error",
       "unauthenticated"},
  };
  return cases;
}

TEST(StatusMapping, CoversEveryAbslCode) {
  ASSERT_EQ(AllCodes().size(), 17u);
  for (size_t i = 0; i < AllCodes().size(); ++i) {
    EXPECT_EQ(static_cast<int>(AllCodes()[i].code), static_cast<int>(i)) << "the table is in code order";
  }
}

TEST(StatusMapping, EveryCodeToGrpcHttpAndOpenAiType) {
  for (const CodeCase& c : AllCodes()) {
    const absl::Status status(c.code, c.code == absl::StatusCode::kOk ? "" : "what went wrong");
    SCOPED_TRACE(absl::StatusCodeToString(c.code));
    const grpc::Status grpc = ToGrpcStatus(status);
    EXPECT_EQ(grpc.error_code(), c.grpc);
    EXPECT_EQ(grpc.error_message(), c.code == absl::StatusCode::kOk ? "" : "what went wrong");
    EXPECT_TRUE(grpc.error_details().empty());  // no field, no details
    EXPECT_EQ(HttpStatusCode(status), c.http);
    EXPECT_STREQ(OpenAiErrorType(status), c.openai_type);
    EXPECT_EQ(StatusCodeLabel(c.code), c.label);
    // And back: the same code and message.
    const absl::Status back = FromGrpcStatus(grpc);
    EXPECT_EQ(back.code(), c.code);
    EXPECT_EQ(back.message(), status.message());
    if (c.code == absl::StatusCode::kOk) continue;
    const Json body = Json::parse(OpenAiErrorBody(status));
    EXPECT_EQ(body["error"]["message"], "what went wrong");
    EXPECT_EQ(body["error"]["type"], c.openai_type);
    EXPECT_EQ(body["error"]["code"], c.label);
    EXPECT_TRUE(body["error"]["param"].is_null());
  }
}

TEST(StatusMapping, FieldBecomesAGrpcBadRequestDetail) {
  const absl::Status status = InvalidFieldError("routing.top_k", "routing.top_k must be in [1, 8], got 9");
  const grpc::Status grpc = ToGrpcStatus(status);
  EXPECT_EQ(grpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(grpc.error_message(), "routing.top_k must be in [1, 8], got 9");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(grpc.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(details.message(), grpc.error_message());
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.BadRequest");
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 1);
  EXPECT_EQ(bad_request.field_violations(0).field(), "routing.top_k");
  EXPECT_EQ(bad_request.field_violations(0).description(), grpc.error_message());
  // The field survives the round trip.
  const absl::Status back = FromGrpcStatus(grpc);
  EXPECT_EQ(back.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorField(back), "routing.top_k");
}

TEST(StatusMapping, FieldBecomesTheOpenAiParamInJsonSpelling) {
  const Json routing = Json::parse(OpenAiErrorBody(InvalidFieldError("routing.max_k", "routing.max_k ...")));
  EXPECT_EQ(routing["error"]["param"], "adak.routing.max_k");
  EXPECT_EQ(routing["error"]["message"], "routing.max_k ...");  // the message is not rewritten
  EXPECT_EQ(ErrorParam(InvalidFieldError("routing", "routing: ...")), "adak.routing");
  EXPECT_EQ(ErrorParam(InvalidFieldError("max_tokens", "prompt + max_tokens = 3 + 512 = 515 exceeds")), "max_tokens");
  EXPECT_EQ(ErrorParam(InvalidFieldError("adak.timeout_seconds", "...")), "adak.timeout_seconds");  // HTTP-only
  EXPECT_EQ(ErrorParam(WithErrorField(absl::NotFoundError("model 'x' is not served here"), "model")), "model");
  EXPECT_EQ(HttpFieldName("return_routing_stats"), "adak.return_routing_stats");
  EXPECT_EQ(HttpFieldName("temperature"), "temperature");
  EXPECT_EQ(HttpFieldName("prompt"), "prompt");
}

TEST(StatusMapping, MessageTextIsNeverParsedForTheField) {
  // Messages that start with a field name but carry no field have no param and no details.
  for (const char* message : {"max_tokens must be in [1, 512], got 0", "routing.policy: unknown 'x'",
                              "prompt + max_tokens = 3 + 512 = 515 exceeds", "temperature must be >= 0"}) {
    const absl::Status status = absl::InvalidArgumentError(message);
    EXPECT_EQ(ErrorParam(status), "") << message;
    EXPECT_TRUE(ToGrpcStatus(status).error_details().empty()) << message;
    EXPECT_TRUE(Json::parse(OpenAiErrorBody(status))["error"]["param"].is_null()) << message;
  }
}

TEST(ErrorField, AttachReplaceAndRemove) {
  absl::Status status = InvalidFieldError("top_p", "top_p must be in (0, 1], got 0");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorField(status), "top_p");
  status = WithErrorField(std::move(status), "top_k");
  EXPECT_EQ(ErrorField(status), "top_k");
  EXPECT_EQ(status.message(), "top_p must be in (0, 1], got 0");
  EXPECT_EQ(ErrorField(WithErrorField(status, "")), "");
  EXPECT_EQ(ErrorField(absl::InvalidArgumentError("top_k must be >= 0")), "");
  EXPECT_TRUE(WithErrorField(absl::OkStatus(), "x").ok());
  EXPECT_EQ(ErrorField(WithErrorField(absl::OkStatus(), "x")), "");
}

}  // namespace
}  // namespace adak::server
