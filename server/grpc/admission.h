// Admission of a gRPC call: the checks every adak.v1.Generation method runs before it does any work, and
// the one place their refusals are counted (Metrics::RecordRejected). Thread-safe (reads the context).
#ifndef ADAK_SERVER_GRPC_ADMISSION_H_
#define ADAK_SERVER_GRPC_ADMISSION_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/request.h"
#include "server/service_context.h"

namespace adak::server {

// OK while the server is SERVING; Unavailable ("not ready yet" / "draining") otherwise.
[[nodiscard]] absl::Status CheckServing(const ServiceContext& context);

// Counts a call refused before it reached the scheduler (adak_request_errors_total{code}) and returns
// `status` unchanged. REQUIRES: !status.ok().
absl::Status Reject(const ServiceContext& context, absl::Status status);

// CheckServing, then Scheduler::Submit; every refusal is counted through Reject. Returns the request id.
[[nodiscard]] absl::StatusOr<uint64_t> Admit(const ServiceContext& context, scheduler::GenerationRequest request,
                                             std::shared_ptr<scheduler::RequestSink> sink);

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_ADMISSION_H_
