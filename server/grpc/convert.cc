#include "server/grpc/convert.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace adak::server {

ApiRouting ApiRoutingFromProto(const adak::v1::RoutingOptions& routing) {
  ApiRouting out;
  out.policy = routing.policy();
  if (routing.has_top_k()) out.top_k = routing.top_k();
  if (routing.has_top_p()) out.top_p = routing.top_p();
  if (routing.has_min_k()) out.min_k = routing.min_k();
  if (routing.has_max_k()) out.max_k = routing.max_k();
  if (routing.has_threshold()) out.threshold = routing.threshold();
  if (!routing.top_p_weighting().empty()) out.top_p_weighting = routing.top_p_weighting();
  if (!routing.profile().empty()) out.profile = routing.profile();
  return out;
}

ApiRequest ApiRequestFromProto(const adak::v1::GenerateRequest& request) {
  ApiRequest api;
  if (!request.text().empty()) api.text = request.text();
  if (request.token_ids_size() > 0) {
    api.token_ids = std::vector<int32_t>(request.token_ids().begin(), request.token_ids().end());
  }
  if (request.has_max_tokens()) api.max_tokens = request.max_tokens();
  const adak::v1::SamplingParams& sampling = request.sampling();
  if (sampling.has_temperature()) api.temperature = sampling.temperature();
  if (sampling.has_top_p()) api.top_p = sampling.top_p();
  if (sampling.has_top_k()) api.top_k = sampling.top_k();
  if (sampling.has_min_p()) api.min_p = sampling.min_p();
  if (sampling.has_repetition_penalty()) api.repetition_penalty = sampling.repetition_penalty();
  if (sampling.has_presence_penalty()) api.presence_penalty = sampling.presence_penalty();
  if (sampling.has_frequency_penalty()) api.frequency_penalty = sampling.frequency_penalty();
  if (sampling.has_seed()) api.seed = sampling.seed();
  for (const auto& [id, bias] : sampling.logit_bias()) api.logit_bias.emplace_back(id, bias);
  std::sort(api.logit_bias.begin(), api.logit_bias.end());  // a proto map has no order
  api.routing = ApiRoutingFromProto(request.routing());
  api.stop.assign(request.stop().begin(), request.stop().end());
  api.stop_token_ids.assign(request.stop_token_ids().begin(), request.stop_token_ids().end());
  api.ignore_eos = request.ignore_eos();
  if (request.has_logprobs()) api.logprobs = request.logprobs();
  api.return_routing_stats = request.return_routing_stats();
  return api;
}

absl::Time DeadlineFromGrpc(std::chrono::system_clock::time_point deadline) {
  // gRPC reports "no deadline" as time_point::max() (or something close to it): anything more than
  // ten years out is treated as none, which also keeps absl::FromChrono away from overflow.
  const auto now = std::chrono::system_clock::now();
  if (deadline >= now + std::chrono::hours(24 * 365 * 10)) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

void FillUsage(const scheduler::Usage& usage, const engine::ModelConfig& config, adak::v1::Usage* out) {
  out->set_prompt_tokens(usage.prompt_tokens);
  out->set_completion_tokens(usage.completion_tokens);
  out->set_expert_activations(usage.expert_activations);
  out->set_expert_flops(usage.expert_flops);
  out->set_expert_flops_saved(usage.expert_flops_saved);
  const double native = usage.expert_flops + usage.expert_flops_saved;
  out->set_mean_k(native > 0.0 ? static_cast<double>(config.num_experts_per_tok) * usage.expert_flops / native : 0.0);
  out->clear_mean_k_per_layer();
  for (double k : usage.mean_k_per_layer) out->add_mean_k_per_layer(k);
}

void AddUsage(const scheduler::Usage& from, scheduler::Usage* to) {
  to->prompt_tokens += from.prompt_tokens;
  to->completion_tokens += from.completion_tokens;
  to->expert_activations += from.expert_activations;
  to->expert_flops += from.expert_flops;
  to->expert_flops_saved += from.expert_flops_saved;
  if (to->mean_k_per_layer.size() < from.mean_k_per_layer.size()) {
    to->mean_k_per_layer.resize(from.mean_k_per_layer.size(), 0.0);
  }
  for (size_t i = 0; i < from.mean_k_per_layer.size(); ++i) to->mean_k_per_layer[i] += from.mean_k_per_layer[i];
}

std::string TokenText(const tokenizer::Tokenizer& tokenizer, int32_t id) {
  const int32_t ids[1] = {id};
  return tokenizer.Decode(ids);
}

void FillTokenLogprob(const scheduler::TokenOutput& token, const tokenizer::Tokenizer& tokenizer,
                      adak::v1::TokenLogprob* out) {
  out->set_id(token.id);
  out->set_token(TokenText(tokenizer, token.id));
  out->set_logprob(token.logprob);
  for (const scheduler::TopLogprob& top : token.top) {
    adak::v1::TopLogprob* alt = out->add_top();
    alt->set_id(top.id);
    alt->set_token(TokenText(tokenizer, top.id));
    alt->set_logprob(top.logprob);
  }
}

}  // namespace adak::server
