// Log-probabilities of tokens from one row of fp32 logits (log-softmax of the raw model output, before
// any sampling transform, as OpenAI and vLLM report them). Stateless apart from the reusable scratch;
// one instance per thread.
#ifndef ADAK_SCHEDULER_LOGPROBS_H_
#define ADAK_SCHEDULER_LOGPROBS_H_

#include <cstdint>
#include <span>
#include <vector>

#include "scheduler/request.h"

namespace adak::scheduler {

class LogprobCalculator {
 public:
  // Sets the row the next calls read: logits [V]. REQUIRES: V >= 1; `logits` stays valid until the next Row.
  void Row(std::span<const float> logits);
  // log p(id) under the current row. REQUIRES: id in [0, V).
  [[nodiscard]] float Logprob(int32_t id) const;
  // The `n` most likely tokens, descending (ties: lower id first). n is clamped to V.
  [[nodiscard]] std::vector<TopLogprob> Top(int32_t n);

 private:
  std::span<const float> logits_;
  double log_norm_ = 0.0;  // max + log(sum(exp(x - max)))
  std::vector<int32_t> order_;
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_LOGPROBS_H_
