// The shared admission path (server/admission.h): a bad field refused by the gRPC service and by the
// HTTP gateway gets the same code and message, carries the same field on the Status, and surfaces as the
// same gRPC BadRequest field and as the OpenAI param in the JSON spelling. Runs on the fake engine's model
// (tests/server/fake_serving.h), no files and no running server.
#include "server/admission.h"

#include <functional>
#include <string>
#include <vector>

#include "adak/v1/generation.pb.h"
#include "base/error_field.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/grpc/convert.h"
#include "server/http/completions.h"
#include "server/status_mapping.h"
#include "tests/server/fake_serving.h"
#include "tests/test_util.h"

namespace adak::server {
namespace {

using ::adak::testing::StatusIs;
using ::testing::HasSubstr;
using Json = nlohmann::json;

struct BadField {
  const char* name;
  std::function<void(adak::v1::GenerateRequest*)> grpc_edit;
  Json http_body;          // the same request as a /v1/completions body
  const char* field;       // carried on the Status (the gRPC BadRequest field)
  const char* http_param;  // the OpenAI param
  const char* message;     // a part of the shared message
};

// The field name of the BadRequest detail ToGrpcStatus builds, or "" without one.
std::string GrpcField(const absl::Status& status) {
  google::rpc::Status details;
  if (!details.ParseFromString(ToGrpcStatus(status).error_details()) || details.details_size() != 1) return "";
  google::rpc::BadRequest bad_request;
  if (!details.details(0).UnpackTo(&bad_request) || bad_request.field_violations_size() != 1) return "";
  return bad_request.field_violations(0).field();
}

class AdmissionTest : public ::testing::Test {
 protected:
  static adak::v1::GenerateRequest Base() {
    adak::v1::GenerateRequest request;
    request.set_text("abc");
    request.set_max_tokens(4);
    return request;
  }
  static Json BaseBody(Json extra) {
    Json body = {{"prompt", "abc"}, {"max_tokens", 4}};
    for (auto it = extra.begin(); it != extra.end(); ++it) body[it.key()] = it.value();
    return body;
  }

  testing::FakeServing serving_{/*with_scheduler=*/false};
};

TEST_F(AdmissionTest, SameBadFieldSameMessageAndFieldOnBothFrontEnds) {
  const std::vector<BadField> cases = {
      {"max_tokens 0", [](auto* r) { r->set_max_tokens(0); }, BaseBody({{"max_tokens", 0}}), "max_tokens", "max_tokens",
       "max_tokens must be >= 1, got 0"},
      {"max_tokens over the limit", [](auto* r) { r->set_max_tokens(1000); }, BaseBody({{"max_tokens", 1000}}),
       "max_tokens", "max_tokens", "max_tokens must be in [1, 256], got 1000"},
      {"prompt + max_tokens over the context", [](auto* r) { r->set_max_tokens(255); }, BaseBody({{"max_tokens", 255}}),
       "max_tokens", "max_tokens", "prompt + max_tokens = 3 + 255 = 258 exceeds the model's context length of 256"},
      {"temperature", [](auto* r) { r->mutable_sampling()->set_temperature(-1.0f); }, BaseBody({{"temperature", -1}}),
       "temperature", "temperature", "temperature must be >= 0"},
      {"top_p", [](auto* r) { r->mutable_sampling()->set_top_p(0.0f); }, BaseBody({{"top_p", 0}}), "top_p", "top_p",
       "top_p must be in (0, 1], got 0"},
      {"top_k", [](auto* r) { r->mutable_sampling()->set_top_k(-3); }, BaseBody({{"top_k", -3}}), "top_k", "top_k",
       "top_k must be >= 0 (0 = off), got -3"},
      {"min_p", [](auto* r) { r->mutable_sampling()->set_min_p(2.0f); }, BaseBody({{"min_p", 2}}), "min_p", "min_p",
       "min_p must be in [0, 1], got 2"},
      {"repetition_penalty", [](auto* r) { r->mutable_sampling()->set_repetition_penalty(0.0f); },
       BaseBody({{"repetition_penalty", 0}}), "repetition_penalty", "repetition_penalty",
       "repetition_penalty must be > 0"},
      {"presence_penalty", [](auto* r) { r->mutable_sampling()->set_presence_penalty(2.5f); },
       BaseBody({{"presence_penalty", 2.5}}), "presence_penalty", "presence_penalty",
       "presence_penalty must be in [-2, 2], got 2.5"},
      {"frequency_penalty", [](auto* r) { r->mutable_sampling()->set_frequency_penalty(-3.0f); },
       BaseBody({{"frequency_penalty", -3}}), "frequency_penalty", "frequency_penalty",
       "frequency_penalty must be in [-2, 2], got -3"},
      {"logprobs", [](auto* r) { r->set_logprobs(21); }, BaseBody({{"logprobs", 21}}), "logprobs", "logprobs",
       "logprobs must be in [0, 20], got 21"},
      {"empty stop string", [](auto* r) { r->add_stop(""); }, BaseBody({{"stop", Json::array({""})}}), "stop", "stop",
       "stop: strings must not be empty"},
      {"stop token outside the vocabulary", [](auto* r) { r->add_stop_token_ids(99); },
       BaseBody({{"stop_token_ids", {99}}}), "stop_token_ids", "stop_token_ids",
       "stop_token_ids: id 99 is outside [0, 32)"},
      {"prompt token outside the vocabulary",
       [](auto* r) {
         r->clear_text();
         r->add_token_ids(1);
         r->add_token_ids(99);
       },
       BaseBody({{"prompt", {1, 99}}}), "prompt", "prompt", "prompt token id 99 at index 1 is outside [0, 32)"},
      {"logit_bias id outside the vocabulary",
       [](auto* r) { (*r->mutable_sampling()->mutable_logit_bias())[40] = 1.0f; },
       BaseBody({{"logit_bias", {{"40", 1}}}}), "logit_bias", "logit_bias",
       "logit_bias: token id 40 is outside the vocabulary [0, 32)"},
      {"logit_bias out of range", [](auto* r) { (*r->mutable_sampling()->mutable_logit_bias())[3] = 150.0f; },
       BaseBody({{"logit_bias", {{"3", 150}}}}), "logit_bias", "logit_bias",
       "logit_bias for token 3 must be in [-100, 100], got 150"},
      {"unknown routing policy", [](auto* r) { r->mutable_routing()->set_policy("bogus"); },
       BaseBody({{"adak", {{"routing", {{"policy", "bogus"}}}}}}), "routing.policy", "adak.routing.policy",
       "routing.policy: "},
      {"routing.top_k", [](auto* r) { r->mutable_routing()->set_top_k(9); },
       BaseBody({{"adak", {{"routing", {{"top_k", 9}}}}}}), "routing.top_k", "adak.routing.top_k",
       "routing.top_k must be in [1, 4], got 9"},
      {"routing.min_k", [](auto* r) { r->mutable_routing()->set_min_k(0); },
       BaseBody({{"adak", {{"routing", {{"min_k", 0}}}}}}), "routing.min_k", "adak.routing.min_k",
       "routing.min_k must be in [1, 4], got 0"},
      {"routing.max_k", [](auto* r) { r->mutable_routing()->set_max_k(5); },
       BaseBody({{"adak", {{"routing", {{"max_k", 5}}}}}}), "routing.max_k", "adak.routing.max_k",
       "routing.max_k must be in [1, 4], got 5"},
      {"topp without top_p", [](auto* r) { r->mutable_routing()->set_policy("topp"); },
       BaseBody({{"adak", {{"routing", {{"policy", "topp"}}}}}}), "routing.top_p", "adak.routing.top_p",
       "routing.top_p is required for routing.policy 'topp'"},
      {"threshold without its value", [](auto* r) { r->mutable_routing()->set_policy("threshold"); },
       BaseBody({{"adak", {{"routing", {{"policy", "threshold"}}}}}}), "routing.threshold", "adak.routing.threshold",
       "routing.threshold is required for routing.policy 'threshold' (in [0, 1])"},
      {"threshold out of range",
       [](auto* r) {
         r->mutable_routing()->set_policy("threshold");
         r->mutable_routing()->set_threshold(1.5f);
       },
       BaseBody({{"adak", {{"routing", {{"policy", "threshold"}, {"threshold", 1.5}}}}}}), "routing.threshold",
       "adak.routing.threshold", "routing.threshold must be in [0, 1], got 1.5"},
      {"threshold min_k over the native K",
       [](auto* r) {
         r->mutable_routing()->set_policy("threshold");
         r->mutable_routing()->set_threshold(0.5f);
         r->mutable_routing()->set_min_k(3);
       },
       BaseBody({{"adak", {{"routing", {{"policy", "threshold"}, {"threshold", 0.5}, {"min_k", 3}}}}}}), "routing",
       "adak.routing", "routing: routing min_k for policy 'threshold' must be in [0, 2] (the native K), got 3"},
      {"unknown top-p weighting",
       [](auto* r) {
         r->mutable_routing()->set_policy("topp");
         r->mutable_routing()->set_top_p(0.5f);
         r->mutable_routing()->set_top_p_weighting("softmax");
       },
       BaseBody({{"adak", {{"routing", {{"policy", "topp"}, {"top_p", 0.5}, {"top_p_weighting", "softmax"}}}}}}),
       "routing.top_p_weighting", "adak.routing.top_p_weighting",
       "routing.top_p_weighting: unknown top-p weighting 'softmax' (accepted: model, raw)"},
      {"null experts not loaded", [](auto* r) { r->mutable_routing()->set_policy("null"); },
       BaseBody({{"adak", {{"routing", {{"policy", "null"}}}}}}), "routing", "adak.routing",
       "routing: routing policy 'null' needs a null-experts file"},
  };
  const ServiceContext& context = serving_.context;
  for (const BadField& c : cases) {
    SCOPED_TRACE(c.name);
    adak::v1::GenerateRequest proto = Base();
    c.grpc_edit(&proto);
    const absl::StatusOr<scheduler::GenerationRequest> from_grpc = BuildRequest(ApiRequestFromProto(proto), context);
    absl::StatusOr<CompletionCall> call = ParseCompletionRequest(c.http_body.dump(), context);
    ASSERT_TRUE(call.ok()) << call.status();  // the JSON types are fine: the values are admission's to refuse
    const absl::StatusOr<scheduler::GenerationRequest> from_http = BuildRequest(CandidateRequest(*call, 0), context);

    ASSERT_THAT(from_grpc, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
    ASSERT_THAT(from_http, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
    EXPECT_EQ(from_grpc.status().message(), from_http.status().message());
    EXPECT_EQ(ErrorField(from_grpc.status()), c.field);
    EXPECT_EQ(ErrorField(from_http.status()), c.field);
    EXPECT_EQ(GrpcField(from_grpc.status()), c.field);
    EXPECT_EQ(ErrorParam(from_http.status()), c.http_param);
    EXPECT_EQ(Json::parse(OpenAiErrorBody(from_http.status()))["error"]["param"], c.http_param);
  }
}

TEST_F(AdmissionTest, PromptRefusalsCarryThePromptField) {
  ApiRequest neither;
  EXPECT_THAT(BuildRequest(neither, serving_.context),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt: empty")));
  EXPECT_EQ(ErrorField(BuildRequest(neither, serving_.context).status()), "prompt");
  ApiRequest both;
  both.text = "abc";
  both.token_ids = std::vector<int32_t>{1, 2};
  const absl::Status status = BuildRequest(both, serving_.context).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one of text and token_ids")));
  EXPECT_EQ(ErrorField(status), "prompt");
}

TEST_F(AdmissionTest, AValidRequestGetsTheDefaults) {
  ApiRequest api;
  api.text = "abc";
  absl::StatusOr<scheduler::GenerationRequest> request = BuildRequest(api, serving_.context);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->prompt_ids, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(request->max_tokens, 16);
  EXPECT_FLOAT_EQ(request->sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(request->sampling.top_p, 1.0f);
  EXPECT_EQ(request->routing.policy, engine::RoutingPolicy::kTopK);
  // Scoring allows max_tokens 0.
  api.allow_zero_max_tokens = true;
  api.prompt_logprobs = true;
  request = BuildRequest(api, serving_.context);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->max_tokens, 0);
}

TEST_F(AdmissionTest, CheckServingSaysWhyNot) {
  ServiceContext& context = serving_.context;
  EXPECT_THAT(CheckServing(context), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("not ready yet")));
  serving_.state.SetPhase(ServingPhase::kServing);
  EXPECT_THAT(CheckServing(context), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no scheduler")));
  serving_.state.MarkEngineFailed();
  EXPECT_THAT(CheckServing(context), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("engine failed")));
  serving_.state.SetPhase(ServingPhase::kDraining);
  EXPECT_THAT(CheckServing(context), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("draining")));
  // Refusals before the scheduler carry no field.
  EXPECT_EQ(ErrorField(CheckServing(context)), "");
}

}  // namespace
}  // namespace adak::server
