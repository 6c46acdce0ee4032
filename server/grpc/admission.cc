#include "server/grpc/admission.h"

#include <utility>

#include "server/metrics.h"

namespace adak::server {

absl::Status CheckServing(const ServiceContext& context) {
  switch (context.state != nullptr ? context.state->phase() : ServingPhase::kServing) {
    case ServingPhase::kServing: return absl::OkStatus();
    case ServingPhase::kNotReady: return absl::UnavailableError("the server is not ready yet (loading)");
    case ServingPhase::kDraining: return absl::UnavailableError("the server is draining (shutting down)");
  }
  return absl::UnavailableError("the server is not serving");
}

absl::Status Reject(const ServiceContext& context, absl::Status status) {
  if (context.metrics != nullptr) context.metrics->RecordRejected(status.code());
  return status;
}

absl::StatusOr<uint64_t> Admit(const ServiceContext& context, scheduler::GenerationRequest request,
                               std::shared_ptr<scheduler::RequestSink> sink) {
  if (absl::Status serving = CheckServing(context); !serving.ok()) return Reject(context, std::move(serving));
  absl::StatusOr<uint64_t> id = context.scheduler->Submit(std::move(request), std::move(sink));
  if (!id.ok()) return Reject(context, id.status());
  return id;
}

}  // namespace adak::server
