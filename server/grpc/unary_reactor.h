// UnaryCallReactor: the reactor of a unary callback call whose work lives in a shared State (the scheduler
// holds the state's sinks, which may outlive the reactor). It forwards the client's cancel to
// State::Cancel() and deletes itself once gRPC is done with the call (OnDone, after Finish).
#ifndef ADAK_SERVER_GRPC_UNARY_REACTOR_H_
#define ADAK_SERVER_GRPC_UNARY_REACTOR_H_

#include <memory>
#include <utility>

#include "grpcpp/support/server_callback.h"

namespace adak::server {

template <typename State>
class UnaryCallReactor final : public grpc::ServerUnaryReactor {
 public:
  // Call once, right after construction and before the reactor is returned to gRPC.
  void set_state(std::shared_ptr<State> state) { state_ = std::move(state); }
  void OnCancel() override { state_->Cancel(); }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace adak::server

#endif  // ADAK_SERVER_GRPC_UNARY_REACTOR_H_
