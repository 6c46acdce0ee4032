#include "server/grpc/score.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "base/error_field.h"
#include "base/strings.h"
#include "grpcpp/server_context.h"
#include "server/admission.h"
#include "server/grpc/call_cancellation.h"
#include "server/grpc/convert.h"
#include "server/grpc/unary_reactor.h"
#include "server/status_mapping.h"

namespace adak::server {
namespace {

using adak::v1::ScoreRequest;
using adak::v1::ScoreResponse;

struct Part {
  std::vector<int32_t> continuation;  // the scored tokens
  int64_t context_tokens = 0;         // tokens before them
};

// The prompt and the continuations as token ids. InvalidArgument naming the field and carrying it
// (prompt, continuations, continuation_token_ids).
absl::StatusOr<std::vector<Part>> TokenizeParts(const ScoreRequest& request, const ServiceContext& context,
                                                std::vector<int32_t>* prompt) {
  const int64_t max_context = LimitsFor(context).max_context;
  const bool has_text = !request.prompt().empty();
  const bool has_ids = request.prompt_token_ids_size() > 0;
  if (has_text && has_ids) {
    return InvalidFieldError("prompt", "prompt: set exactly one of prompt and prompt_token_ids, not both");
  }
  if (!has_text && !has_ids) {
    return InvalidFieldError("prompt", "prompt: empty (set prompt or prompt_token_ids to at least one token)");
  }
  if (has_text) {
    absl::StatusOr<std::vector<int32_t>> ids =
        TokenizeBounded(context, request.prompt(), "prompt", max_context, /*add_special_tokens=*/true);
    if (!ids.ok()) return ids.status();
    if (ids->empty()) return InvalidFieldError("prompt", "prompt: the text encodes to no tokens");
    *prompt = *std::move(ids);
  } else {
    prompt->assign(request.prompt_token_ids().begin(), request.prompt_token_ids().end());
  }

  const int64_t texts = request.continuations_size();
  const int64_t id_lists = request.continuation_token_ids_size();
  if (texts > 0 && id_lists > 0) {
    return InvalidFieldError("continuations",
                             "continuations: set exactly one of continuations and continuation_token_ids, not both");
  }
  const int64_t count = texts + id_lists;
  if (count < 1 || count > kMaxScoreContinuations) {
    return InvalidFieldError("continuations", StrCatStd("continuations: between 1 and ", kMaxScoreContinuations,
                                                        " continuations per call, got ", count));
  }
  std::vector<Part> parts(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    Part& part = parts[static_cast<size_t>(i)];
    part.context_tokens = static_cast<int64_t>(prompt->size());
    if (texts > 0) {
      absl::StatusOr<std::vector<int32_t>> ids =
          TokenizeBounded(context, request.continuations(static_cast<int>(i)), StrCatStd("continuations[", i, "]"),
                          max_context, /*add_special_tokens=*/false);
      if (!ids.ok()) return WithErrorField(ids.status(), "continuations");
      part.continuation = *std::move(ids);
    } else {
      const adak::v1::TokenIds& ids = request.continuation_token_ids(static_cast<int>(i));
      part.continuation.assign(ids.ids().begin(), ids.ids().end());
    }
    const char* field = texts > 0 ? "continuations" : "continuation_token_ids";
    if (part.continuation.empty()) {
      return InvalidFieldError(field, StrCatStd(field, "[", i, "]: empty (at least one token to score)"));
    }
    // Score's own words for the context check (BuildRequest would name max_tokens, which Score has not).
    const int64_t total = part.context_tokens + static_cast<int64_t>(part.continuation.size());
    if (total > max_context) {
      return InvalidFieldError(
          field, StrCatStd("prompt + ", field, "[", i, "] = ", part.context_tokens, " + ", part.continuation.size(),
                           " = ", total, " tokens exceeds the model's context length of ", max_context));
    }
  }
  return parts;
}

// One scheduler request per part: prompt + continuation, scored, nothing generated.
absl::StatusOr<std::vector<scheduler::GenerationRequest>> BuildPartRequests(const std::vector<Part>& parts,
                                                                            const std::vector<int32_t>& prompt,
                                                                            const adak::v1::RoutingOptions& routing,
                                                                            absl::Time deadline,
                                                                            const ServiceContext& context) {
  std::vector<scheduler::GenerationRequest> requests;
  for (const Part& part : parts) {
    ApiRequest api;
    std::vector<int32_t> ids = prompt;
    ids.insert(ids.end(), part.continuation.begin(), part.continuation.end());
    api.token_ids = std::move(ids);
    api.allow_zero_max_tokens = true;
    api.prompt_logprobs = true;
    api.logprobs = 1;
    api.temperature = 0.0;
    api.routing = ApiRoutingFromProto(routing);
    api.deadline = deadline;
    absl::StatusOr<scheduler::GenerationRequest> request = BuildRequest(api, context);
    if (!request.ok()) return request.status();
    requests.push_back(*std::move(request));
  }
  return requests;
}

class ScoreState final : public std::enable_shared_from_this<ScoreState> {
 public:
  ScoreState(ServiceContext* context, grpc::ServerUnaryReactor* reactor, ScoreResponse* response, absl::Time deadline)
      : context_(context), reactor_(reactor), response_(response), deadline_(deadline) {}

  // The sink of part `index`.
  class PartSink final : public scheduler::RequestSink {
   public:
    PartSink(std::shared_ptr<ScoreState> state, size_t index) : state_(std::move(state)), index_(index) {}
    void OnTokens(std::vector<scheduler::TokenOutput> /*tokens*/) override {}
    void OnFinish(scheduler::FinalOutput final) override { state_->PartDone(index_, std::move(final)); }

   private:
    std::shared_ptr<ScoreState> state_;
    size_t index_;
  };

  void SetParts(std::vector<Part> parts) {
    absl::MutexLock lock(&mu_);
    parts_ = std::move(parts);
    results_.resize(parts_.size());
    remaining_ = parts_.size();
  }

  // Submits every part's request; on a refusal cancels those already queued and finishes with it.
  void SubmitAll(std::vector<scheduler::GenerationRequest> requests) {
    std::vector<uint64_t> submitted;
    for (size_t i = 0; i < requests.size(); ++i) {
      absl::StatusOr<uint64_t> id =
          Submit(*context_, std::move(requests[i]), std::make_shared<PartSink>(shared_from_this(), i));
      if (!id.ok()) {
        for (uint64_t done : submitted) context_->scheduler->Cancel(done);
        FinishOnce(ToGrpcStatus(id.status()));
        return;
      }
      submitted.push_back(*id);
    }
    cancellation_.SetIds(submitted);
  }

  void Cancel() {
    cancellation_.Cancel();
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"));
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
  void PartDone(size_t index, scheduler::FinalOutput final) {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      if (!final.status.ok()) {
        done_ = true;
        status = ToGrpcStatus(final.status);
      } else {
        results_[index] = std::move(final);
        if (--remaining_ > 0) return;
        done_ = true;
        FillResponse();
      }
    }
    reactor_->Finish(status);
  }

  void FillResponse() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    scheduler::Usage total;
    for (size_t i = 0; i < parts_.size(); ++i) {
      const Part& part = parts_[i];
      const scheduler::FinalOutput& result = *results_[i];
      adak::v1::ContinuationScore* score = response_->add_scores();
      double sum = 0.0;
      bool greedy = true;
      for (size_t j = 0; j < part.continuation.size(); ++j) {
        // prompt_logprobs[p - 1] is the logprob of prompt token p given the tokens before it.
        const size_t row = static_cast<size_t>(part.context_tokens) + j - 1;
        const int32_t id = part.continuation[j];
        const float logprob = row < result.prompt_logprobs.size() ? result.prompt_logprobs[row] : 0.0f;
        sum += logprob;
        if (row < result.prompt_top_logprobs.size() && !result.prompt_top_logprobs[row].empty()) {
          const scheduler::TopLogprob& best = result.prompt_top_logprobs[row].front();
          if (best.id != id && best.logprob > logprob) greedy = false;
        }
        score->add_token_logprobs(logprob);
        score->add_token_ids(id);
      }
      score->set_logprob(sum);
      score->set_is_greedy(greedy);
      AddUsage(result.usage, &total);
    }
    total.mean_k_per_layer.clear();
    FillUsage(total, context_->model->config, response_->mutable_usage());
  }

  ServiceContext* const context_;
  grpc::ServerUnaryReactor* const reactor_;  // valid until done_ is set and Finish called
  ScoreResponse* const response_;
  const absl::Time deadline_;
  absl::Mutex mu_;
  std::vector<Part> parts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::optional<scheduler::FinalOutput>> results_ ABSL_GUARDED_BY(mu_);
  size_t remaining_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  CallCancellation cancellation_{CancelIn(context_->scheduler), deadline_};
};

}  // namespace

grpc::ServerUnaryReactor* StartScore(grpc::CallbackServerContext* call, const ScoreRequest* request,
                                     ScoreResponse* response, ServiceContext* context) {
  auto* reactor = new UnaryCallReactor<ScoreState>();
  auto state = std::make_shared<ScoreState>(context, reactor, response, DeadlineFromGrpc(call->deadline()));
  reactor->set_state(state);
  if (absl::Status serving = CheckServing(*context); !serving.ok()) {
    state->FinishOnce(ToGrpcStatus(Reject(*context, std::move(serving))));
    return reactor;
  }
  std::vector<int32_t> prompt;
  absl::StatusOr<std::vector<Part>> parts = TokenizeParts(*request, *context, &prompt);
  if (!parts.ok()) {
    state->FinishOnce(ToGrpcStatus(Reject(*context, parts.status())));
    return reactor;
  }
  absl::StatusOr<std::vector<scheduler::GenerationRequest>> requests =
      BuildPartRequests(*parts, prompt, request->routing(), DeadlineFromGrpc(call->deadline()), *context);
  if (!requests.ok()) {
    state->FinishOnce(ToGrpcStatus(Reject(*context, requests.status())));
    return reactor;
  }
  state->SetParts(*std::move(parts));
  state->SubmitAll(*std::move(requests));
  return reactor;
}

}  // namespace adak::server
