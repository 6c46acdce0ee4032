// Conversions between the adak.v1 protos and the server's own types, for the gRPC service only (the HTTP
// gateway has its JSON twin). Pure functions; thread-safe.
#ifndef ADAK_SERVER_GRPC_CONVERT_H_
#define ADAK_SERVER_GRPC_CONVERT_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "adak/v1/generation.pb.h"
#include "engine/model_config.h"
#include "scheduler/request.h"
#include "server/admission.h"
#include "tokenizer/tokenizer.h"

namespace adak::server {

// Every field of the proto, unset optionals left unset (BuildRequest applies the defaults). An empty
// `text` counts as unset, so "text and token_ids both set" and "empty prompt" are BuildRequest's to refuse.
[[nodiscard]] ApiRequest ApiRequestFromProto(const adak::v1::GenerateRequest& request);
[[nodiscard]] ApiRouting ApiRoutingFromProto(const adak::v1::RoutingOptions& routing);

// A gRPC call deadline (CallbackServerContext::deadline()) as an absl::Time; "no deadline" (the far
// future gRPC reports) is absl::InfiniteFuture().
[[nodiscard]] absl::Time DeadlineFromGrpc(std::chrono::system_clock::time_point deadline);

// Usage with mean_k = native K x expert_flops / (expert_flops + expert_flops_saved), i.e. the mean routed
// k over the tokens the FLOPs were counted on (0 when nothing ran).
void FillUsage(const scheduler::Usage& usage, const engine::ModelConfig& config, adak::v1::Usage* out);
// Adds `from` to `to` (Score sums its continuations); mean_k_per_layer is averaged by the caller.
void AddUsage(const scheduler::Usage& from, scheduler::Usage* to);

// The text of one token as the decoder renders it alone (a partial UTF-8 byte becomes U+FFFD).
[[nodiscard]] std::string TokenText(const tokenizer::Tokenizer& tokenizer, int32_t id);

// One generated token's logprob entry, token strings as TokenText renders them.
void FillTokenLogprob(const scheduler::TokenOutput& token, const tokenizer::Tokenizer& tokenizer,
                      adak::v1::TokenLogprob* out);

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_CONVERT_H_
