#include "server/grpc/service.h"

#include <string>
#include <utility>

#include "base/error_field.h"
#include "base/strings.h"
#include "engine/model.h"
#include "server/admission.h"
#include "server/auth.h"
#include "server/grpc/generate.h"
#include "server/grpc/score.h"
#include "server/status_mapping.h"

namespace adak::server {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* call, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

absl::Status Authenticate(const grpc::CallbackServerContext& call, const ServiceContext& context) {
  if (context.api_keys == nullptr || !context.api_keys->enabled()) return absl::OkStatus();
  const auto& metadata = call.client_metadata();
  auto it = metadata.find("authorization");
  const std::string_view value =
      it == metadata.end() ? std::string_view() : std::string_view(it->second.data(), it->second.size());
  absl::Status status = context.api_keys->Check(value);
  if (!status.ok()) return Reject(context, std::move(status));
  return status;
}

adak::v1::ModelInfo MakeModelInfo(const ServiceContext& context) {
  const engine::ModelConfig& config = context.model->config;
  adak::v1::ModelInfo info;
  info.set_name(context.model_name);
  info.set_architecture(std::string(engine::ArchitectureName(config.arch)));
  info.set_num_layers(static_cast<int32_t>(config.num_layers));
  info.set_num_moe_layers(static_cast<int32_t>(config.num_moe_layers()));
  info.set_num_experts(static_cast<int32_t>(config.num_experts));
  info.set_num_experts_per_tok(static_cast<int32_t>(config.num_experts_per_tok));
  info.set_hidden_size(static_cast<int32_t>(config.hidden_size));
  info.set_vocab_size(static_cast<int32_t>(config.vocab_size));
  info.set_max_context(static_cast<int32_t>(LimitsFor(context).max_context));
  info.add_routing_policies(std::string(engine::RoutingPolicyName(engine::RoutingPolicy::kTopK)));
  if (context.routing_weights->has_allocator()) {
    info.add_routing_policies(std::string(engine::RoutingPolicyName(engine::RoutingPolicy::kAdaK)));
  }
  if (context.routing_weights->has_null_experts()) {
    info.add_routing_policies(std::string(engine::RoutingPolicyName(engine::RoutingPolicy::kNull)));
  }
  info.add_routing_policies(std::string(engine::RoutingPolicyName(engine::RoutingPolicy::kTopP)));
  info.add_routing_policies(std::string(engine::RoutingPolicyName(engine::RoutingPolicy::kThreshold)));
  info.set_default_routing(std::string(engine::RoutingPolicyName(context.default_routing.policy)));
  for (int32_t id : context.model->tokenizer->eos_token_ids()) info.add_eos_token_ids(id);
  info.set_total_parameters(engine::CountParameters(config).total);
  for (const engine::AllocatorProfile& profile : context.routing_weights->allocators) {
    adak::v1::AllocatorProfile* out = info.add_allocator_profiles();
    out->set_name(profile.name);
    if (auto mean_k = profile.measured_mean_k(); mean_k.has_value()) out->set_measured_mean_k(*mean_k);
    if (auto delta = profile.measured_ppl_delta(); delta.has_value()) out->set_measured_ppl_delta(*delta);
    if (auto on = profile.metadata.find("measured_on"); on != profile.metadata.end()) out->set_measured_on(on->second);
  }
  return info;
}

absl::StatusOr<adak::v1::TokenizeResponse> TokenizeText(const ServiceContext& context, const std::string& text) {
  const tokenizer::Tokenizer& tokenizer = *context.model->tokenizer;
  // No more than the model's context: refused by size before tokenizing, so an oversized text costs nothing
  // (and never builds a response over the message limit).
  absl::StatusOr<std::vector<int32_t>> ids =
      TokenizeBounded(context, text, "text", LimitsFor(context).max_context, /*add_special_tokens=*/true);
  if (!ids.ok()) return ids.status();
  adak::v1::TokenizeResponse response;
  for (int32_t id : *ids) {
    response.add_token_ids(id);
    response.add_tokens(tokenizer.IdToToken(id));
  }
  return response;
}

grpc::ServerUnaryReactor* GenerationService::Generate(grpc::CallbackServerContext* call,
                                                      const adak::v1::GenerateRequest* request,
                                                      adak::v1::GenerateResponse* response) {
  if (absl::Status auth = Authenticate(*call, *context_); !auth.ok()) return FinishNow(call, auth);
  return StartGenerate(call, request, response, context_);
}

grpc::ServerWriteReactor<adak::v1::GenerateStreamResponse>* GenerationService::GenerateStream(
    grpc::CallbackServerContext* call, const adak::v1::GenerateRequest* request) {
  if (absl::Status auth = Authenticate(*call, *context_); !auth.ok()) {
    // A write reactor that finishes at once (the default reactor is unary only).
    class Refused final : public grpc::ServerWriteReactor<adak::v1::GenerateStreamResponse> {
     public:
      explicit Refused(const grpc::Status& status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    return new Refused(ToGrpcStatus(auth));
  }
  return StartGenerateStream(call, request, context_);
}

grpc::ServerUnaryReactor* GenerationService::Score(grpc::CallbackServerContext* call,
                                                   const adak::v1::ScoreRequest* request,
                                                   adak::v1::ScoreResponse* response) {
  if (absl::Status auth = Authenticate(*call, *context_); !auth.ok()) return FinishNow(call, auth);
  return StartScore(call, request, response, context_);
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* call,
                                                      const adak::v1::TokenizeRequest* request,
                                                      adak::v1::TokenizeResponse* response) {
  if (absl::Status auth = Authenticate(*call, *context_); !auth.ok()) return FinishNow(call, auth);
  if (absl::Status serving = CheckServing(*context_); !serving.ok()) {
    return FinishNow(call, Reject(*context_, std::move(serving)));
  }
  absl::StatusOr<adak::v1::TokenizeResponse> result = TokenizeText(*context_, request->text());
  if (!result.ok()) return FinishNow(call, Reject(*context_, result.status()));
  *response = *std::move(result);
  return FinishNow(call, absl::OkStatus());
}

grpc::ServerUnaryReactor* GenerationService::GetModelInfo(grpc::CallbackServerContext* call,
                                                          const adak::v1::GetModelInfoRequest* /*request*/,
                                                          adak::v1::ModelInfo* response) {
  if (absl::Status auth = Authenticate(*call, *context_); !auth.ok()) return FinishNow(call, auth);
  if (absl::Status serving = CheckServing(*context_); !serving.ok()) {
    return FinishNow(call, Reject(*context_, std::move(serving)));
  }
  *response = MakeModelInfo(*context_);
  return FinishNow(call, absl::OkStatus());
}

}  // namespace adak::server
