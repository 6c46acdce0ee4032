// adak.v1.Generation/Score as a callback reactor: the log-likelihood of each continuation after the
// prompt, for evaluation harnesses.
//
// Each continuation becomes one scheduler request over prompt + continuation with prompt_logprobs,
// logprobs 1 and max_tokens 0 (nothing is generated); its score is the sum of the continuation tokens'
// logprobs, is_greedy whether each of them was the argmax. The continuations run concurrently in the
// batch; the call finishes once all have (or with the first error: the others' results are dropped).
// Text continuations are tokenized without special tokens and appended to the tokenized prompt.
// Same reactor contract as server/grpc/generate.h.
#ifndef ADAK_SERVER_GRPC_SCORE_H_
#define ADAK_SERVER_GRPC_SCORE_H_

#include <cstdint>

#include "adak/v1/generation.pb.h"
#include "grpcpp/support/server_callback.h"
#include "server/service_context.h"

namespace grpc {
class CallbackServerContext;
}  // namespace grpc

namespace adak::server {

// At most this many continuations per call (InvalidArgument beyond, naming the field).
inline constexpr int64_t kMaxScoreContinuations = 64;

// REQUIRES: `context` outlives the call.
[[nodiscard]] grpc::ServerUnaryReactor* StartScore(grpc::CallbackServerContext* call,
                                                   const adak::v1::ScoreRequest* request,
                                                   adak::v1::ScoreResponse* response, ServiceContext* context);

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_SCORE_H_
