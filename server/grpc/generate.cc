#include "server/grpc/generate.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server_context.h"
#include "server/admission.h"
#include "server/grpc/call_cancellation.h"
#include "server/grpc/convert.h"
#include "server/grpc/unary_reactor.h"
#include "server/status_mapping.h"

namespace adak::server {
namespace {

using adak::v1::GenerateRequest;
using adak::v1::GenerateResponse;
using adak::v1::GenerateStreamResponse;

const grpc::Status& CancelledByClient() {
  static const grpc::Status* status = new grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
  return *status;
}

// The call's request as the shared admission path takes it: the proto's fields and the call's deadline.
ApiRequest ApiRequestFromCall(grpc::CallbackServerContext* call, const GenerateRequest& proto) {
  ApiRequest api = ApiRequestFromProto(proto);
  api.deadline = DeadlineFromGrpc(call->deadline());
  return api;
}

// ---------------------------------------------------------------------------------------------------
// Generate (unary): tokens accumulate into the response; OnFinish (or OnCancel) finishes the call.

class UnaryState final : public scheduler::RequestSink {
 public:
  UnaryState(ServiceContext* context, grpc::ServerUnaryReactor* reactor, GenerateResponse* response, bool logprobs,
             absl::Time deadline)
      : context_(context), reactor_(reactor), response_(response), logprobs_(logprobs), deadline_(deadline) {}

  void OnTokens(std::vector<scheduler::TokenOutput> tokens) override {
    absl::MutexLock lock(&mu_);
    if (done_) return;
    for (const scheduler::TokenOutput& token : tokens) {
      response_->add_token_ids(token.id);
      text_ += token.text;
      if (logprobs_) FillTokenLogprob(token, *context_->model->tokenizer, response_->add_logprobs());
    }
  }

  void OnFinish(scheduler::FinalOutput final) override {
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      done_ = true;
      if (final.status.ok()) {
        response_->set_text(std::move(text_));
        response_->set_finish_reason(scheduler::FinishReasonName(final.reason));
        response_->set_matched_stop(final.matched_stop);
        FillUsage(final.usage, context_->model->config, response_->mutable_usage());
      }
    }
    // The reactor lives until Finish (it is deleted in OnDone, after it); nothing touches it afterwards.
    reactor_->Finish(ToGrpcStatus(final.status));
  }

  // Records the scheduler id; cancels the request when the call was cancelled meanwhile.
  void SetId(uint64_t id) { cancellation_.SetIds({id}); }

  void Cancel() {
    cancellation_.Cancel();
    FinishOnce(CancelledByClient());
  }

  void FinishOnce(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      done_ = true;
    }
    reactor_->Finish(status);
  }

 private:
  ServiceContext* const context_;
  grpc::ServerUnaryReactor* const reactor_;  // valid until done_ is set and Finish called
  GenerateResponse* const response_;         // owned by gRPC, valid until Finish
  const bool logprobs_;
  const absl::Time deadline_;
  absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  CallCancellation cancellation_{CancelIn(context_->scheduler), deadline_};
};

// ---------------------------------------------------------------------------------------------------
// GenerateStream: tokens queue up under the mutex; Pump starts the one write (or the Finish) the state
// calls for, outside the lock, and runs after every event (tokens, finish, cancel, write done).

class StreamState final : public scheduler::RequestSink {
 public:
  using Reactor = grpc::ServerWriteReactor<GenerateStreamResponse>;

  StreamState(ServiceContext* context, Reactor* reactor, bool logprobs, absl::Time deadline)
      : context_(context), reactor_(reactor), logprobs_(logprobs), deadline_(deadline) {}

  void OnTokens(std::vector<scheduler::TokenOutput> tokens) override {
    {
      absl::MutexLock lock(&mu_);
      if (finish_started_) return;
      for (scheduler::TokenOutput& token : tokens) pending_.push_back(std::move(token));
    }
    Pump();
  }

  void OnFinish(scheduler::FinalOutput final) override {
    {
      absl::MutexLock lock(&mu_);
      if (finish_started_ || final_.has_value()) return;
      final_ = std::move(final);
    }
    Pump();
  }

  // Records the scheduler id; cancels the request when the call was cancelled meanwhile.
  void SetId(uint64_t id) { cancellation_.SetIds({id}); }

  void Cancel() {
    cancellation_.Cancel();
    Pump();
  }

  void WriteDone(bool ok) {
    // A broken stream (client gone) stops generating. Marked before writing_ clears, so no Pump in between
    // starts another write on it.
    if (!ok) cancellation_.Cancel();
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
    }
    Pump();
  }

  // Finishes a call that never reached the scheduler.
  void FinishEarly(const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_started_ || final_.has_value()) return;
      final_.emplace();
      final_->status = status;
    }
    Pump();
  }

 private:
  enum class Action { kNone, kWrite, kWriteAndFinish, kFinish };

  void TakePending() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    message_.Clear();
    std::string text;
    for (const scheduler::TokenOutput& token : pending_) {
      text += token.text;
      message_.add_token_ids(token.id);
      if (logprobs_) FillTokenLogprob(token, *context_->model->tokenizer, message_.add_logprobs());
    }
    message_.set_text(std::move(text));
    pending_.clear();
  }

  void Pump() {
    Action action = Action::kNone;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finish_started_) return;
      const bool final_ok = final_.has_value() && final_->status.ok();
      if (cancellation_.cancelled()) {
        finish_started_ = true;
        action = Action::kFinish;
        status = CancelledByClient();
      } else if (!pending_.empty() && !final_ok) {
        TakePending();
        writing_ = true;
        action = Action::kWrite;
      } else if (final_ok) {
        TakePending();
        message_.set_finish_reason(scheduler::FinishReasonName(final_->reason));
        message_.set_matched_stop(final_->matched_stop);
        FillUsage(final_->usage, context_->model->config, message_.mutable_usage());
        finish_started_ = true;
        action = Action::kWriteAndFinish;
      } else if (final_.has_value()) {
        finish_started_ = true;
        action = Action::kFinish;
        status = ToGrpcStatus(final_->status);
      }
    }
    // The reactor is alive here: it is deleted only in OnDone, after the Finish that only this function
    // starts, once (finish_started_); message_ is only touched by whoever set writing_/finish_started_.
    switch (action) {
      case Action::kNone: break;
      case Action::kWrite: reactor_->StartWrite(&message_); break;
      case Action::kWriteAndFinish:
        reactor_->StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
        break;
      case Action::kFinish: reactor_->Finish(status); break;
    }
  }

  ServiceContext* const context_;
  Reactor* const reactor_;
  const bool logprobs_;
  const absl::Time deadline_;
  absl::Mutex mu_;
  std::vector<scheduler::TokenOutput> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<scheduler::FinalOutput> final_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  CallCancellation cancellation_{CancelIn(context_->scheduler), deadline_};  // its lock nests inside mu_ (in Pump)
  GenerateStreamResponse message_;  // the write in flight; lives until OnDone (the state outlives the reactor)
};

class StreamReactor final : public grpc::ServerWriteReactor<GenerateStreamResponse> {
 public:
  void set_state(std::shared_ptr<StreamState> state) { state_ = std::move(state); }
  void OnWriteDone(bool ok) override { state_->WriteDone(ok); }
  void OnCancel() override { state_->Cancel(); }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<StreamState> state_;
};

}  // namespace

grpc::ServerUnaryReactor* StartGenerate(grpc::CallbackServerContext* call, const GenerateRequest* request,
                                        GenerateResponse* response, ServiceContext* context) {
  auto* reactor = new UnaryCallReactor<UnaryState>();
  auto state = std::make_shared<UnaryState>(context, reactor, response, request->has_logprobs(),
                                            DeadlineFromGrpc(call->deadline()));
  reactor->set_state(state);
  absl::StatusOr<Admitted> admitted = Admit(*context, ApiRequestFromCall(call, *request), state);
  if (!admitted.ok()) {
    state->FinishOnce(ToGrpcStatus(admitted.status()));
    return reactor;
  }
  state->SetId(admitted->id);
  return reactor;
}

grpc::ServerWriteReactor<GenerateStreamResponse>* StartGenerateStream(grpc::CallbackServerContext* call,
                                                                      const GenerateRequest* request,
                                                                      ServiceContext* context) {
  auto* reactor = new StreamReactor();
  auto state =
      std::make_shared<StreamState>(context, reactor, request->has_logprobs(), DeadlineFromGrpc(call->deadline()));
  reactor->set_state(state);
  absl::StatusOr<Admitted> admitted = Admit(*context, ApiRequestFromCall(call, *request), state);
  if (!admitted.ok()) {
    state->FinishEarly(admitted.status());
    return reactor;
  }
  state->SetId(admitted->id);
  return reactor;
}

}  // namespace adak::server
