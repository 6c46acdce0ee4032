// adak.v1.Generation/Generate (unary) and /GenerateStream (server streaming) as callback reactors.
//
// A call converts its proto to an ApiRequest and admits it through the shared path (server/admission.h:
// serving check, validation, Scheduler::Submit) with a sink: the per-call state below, shared
// (shared_ptr) between the reactor and the scheduler, so the scheduler thread may report into it after
// the call is gone. The sink only
// queues under a mutex and, for streams, starts the next write when none is in flight; every further
// write starts from OnWriteDone. Each reactor calls Finish exactly once (also when cancelled: OnCancel
// cancels the scheduler request and finishes with CANCELLED) and is deleted only in OnDone. The call's
// deadline goes into the request (DEADLINE_EXCEEDED when it passes).
#ifndef ADAK_SERVER_GRPC_GENERATE_H_
#define ADAK_SERVER_GRPC_GENERATE_H_

#include "adak/v1/generation.pb.h"
#include "grpcpp/support/server_callback.h"
#include "server/service_context.h"

namespace grpc {
class CallbackServerContext;
}  // namespace grpc

namespace adak::server {

// The reactor of one Generate call. REQUIRES: `context` outlives the call.
[[nodiscard]] grpc::ServerUnaryReactor* StartGenerate(grpc::CallbackServerContext* call,
                                                      const adak::v1::GenerateRequest* request,
                                                      adak::v1::GenerateResponse* response, ServiceContext* context);

// The reactor of one GenerateStream call: one message per step that released tokens (several tokens in
// one message when the client reads slower than the model writes), then a final message with
// finish_reason and usage. REQUIRES: `context` outlives the call.
[[nodiscard]] grpc::ServerWriteReactor<adak::v1::GenerateStreamResponse>* StartGenerateStream(
    grpc::CallbackServerContext* call, const adak::v1::GenerateRequest* request, ServiceContext* context);

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_GENERATE_H_
