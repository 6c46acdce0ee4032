// The Ada-K allocator as a trainable policy: pi(a | x) = softmax(W x)_a with W [A, H] and action a meaning
// k = a + 1 experts. The pieces the PPO trainer needs, written out plainly (no autograd library):
//   - PPO-clip loss and its exact gradient with respect to W, plus the expected-k penalty
//     lambda * sum_a (a + 1) * pi(a | x) (docs/architecture.md, "The method the engine reproduces");
//   - the warm-start cross-entropy towards a fixed label and its gradient;
//   - the top-p pseudo label n(p) = min{k : sum of the k largest router probabilities >= p} and the search
//     for the p whose mean label equals the native K;
//   - AdamW;
//   - options beyond the paper's recipe (off by default): per-batch advantage normalisation, a cosine
//     learning-rate schedule and a linear warm-up of lambda.
// Pure functions over caller-owned buffers, plus the AdamW state object; thread-compatible.
//
// Shape legend: A actions (= E experts), H hidden, N samples.
#ifndef ADAK_TRAINING_ALLOCATOR_POLICY_H_
#define ADAK_TRAINING_ALLOCATOR_POLICY_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace adak::training {

// log softmax(W x) over A actions into `out` [A]. W [A, H], x [H].
void PolicyLogProbs(std::span<const float> w, int64_t actions, std::span<const float> x, std::span<double> out);

// One stored decision of a rollout.
struct PolicySample {
  std::span<const float> x;   // [H] the state (the router's input)
  int32_t action = 0;         // sampled a (k = a + 1)
  double old_log_prob = 0.0;  // log pi_old(a | x) at sampling time
  double advantage = 0.0;     // log p(next | sampled routing) - log p(next | native top-K)
};

struct PpoParams {
  double clip = 0.2;     // epsilon of PPO-clip
  double lambda = 3e-3;  // weight of the expected-k penalty
};

struct PpoLoss {
  double surrogate = 0.0;   // mean over samples of -min(r A, clip(r, 1-eps, 1+eps) A)
  double expected_k = 0.0;  // mean over samples of sum_a (a + 1) pi(a | x)
  double clipped_fraction = 0.0;
  [[nodiscard]] double total(double lambda) const { return surrogate + lambda * expected_k; }
};

// The PPO-clip loss of `samples` under W and, when `grad` is not empty, its gradient added into grad [A, H]
// (d total / d W, averaged over samples). Where the clipped term is the minimum and r is outside
// [1 - eps, 1 + eps], the surrogate contributes no gradient, as in PPO.
PpoLoss PpoLossAndGradient(std::span<const float> w, int64_t actions, std::span<const PolicySample> samples,
                           const PpoParams& params, std::span<float> grad);

// Mean cross-entropy -log pi(label | x) over (x, label) pairs, gradient added into grad [A, H] when not empty.
struct LabeledState {
  std::span<const float> x;
  int32_t label = 0;  // action (k - 1)
};
double CrossEntropyLossAndGradient(std::span<const float> w, int64_t actions, std::span<const LabeledState> samples,
                                   std::span<float> grad);

// n(p) = min{k : sum of the k largest probabilities >= p} (k in 1..probs.size()).
[[nodiscard]] int32_t TopPLabel(std::span<const float> probs, double p);

// The p in (0, 1] whose mean TopPLabel over the rows of `probs` ([rows, E]) is closest to `target_mean_k`
// (bisection; the mean label is non-decreasing in p).
[[nodiscard]] double FindWarmStartP(std::span<const float> probs, int64_t experts, double target_mean_k);

// How the per-token advantages of one batch are transformed before the PPO loss. The paper uses them raw
// (kNone). kCenter subtracts the batch mean (a constant baseline: the policy gradient stays unbiased up to
// the 1/N the token contributes to the mean). kStandardize also divides by the batch standard deviation,
// as common PPO implementations do; that rescales the advantage against lambda, so lambda then counts in
// batch standard deviations of the advantage rather than in nats.
enum class AdvantageNorm { kNone, kCenter, kStandardize };
// "none", "center", "standardize".
[[nodiscard]] std::string_view AdvantageNormName(AdvantageNorm norm);
// InvalidArgument listing the accepted names.
[[nodiscard]] absl::StatusOr<AdvantageNorm> ParseAdvantageNorm(std::string_view name);

struct AdvantageMoments {
  double mean = 0.0;
  double stddev = 0.0;  // population standard deviation
};
// Transforms `advantages` in place and returns their moments before the transform. kStandardize divides
// by max(stddev, 1e-8), so a constant batch becomes all zeros. An empty span is left alone (moments 0).
AdvantageMoments NormalizeAdvantages(std::span<double> advantages, AdvantageNorm norm);

// Credits a token with the discounted advantages of the tokens after it in its window, whose predictions
// its routing also changes (through the KV cache of later layers): within each consecutive segment of
// `segment` values, values[t] += gamma * values[t + 1] computed back to front (a discounted return).
// gamma = 0 leaves the values alone (the paper: a token's own next-token log-likelihood only).
// REQUIRES: segment >= 1 and divides values.size(); 0 <= gamma <= 1.
void DiscountWithinSegments(std::span<double> values, int64_t segment, double gamma);

// Learning-rate schedule over the PPO steps. kConstant: base_lr throughout (the paper). kCosine: step s
// of n (1-based) uses base_lr * 0.5 * (1 + cos(pi * (s - 1) / n)): base_lr at the first step, decaying
// towards 0 at the last.
enum class LrSchedule { kConstant, kCosine };
// "constant", "cosine".
[[nodiscard]] std::string_view LrScheduleName(LrSchedule schedule);
// InvalidArgument listing the accepted names.
[[nodiscard]] absl::StatusOr<LrSchedule> ParseLrSchedule(std::string_view name);
// The learning rate of 1-based PPO step `step` of `total_steps`. REQUIRES: 1 <= step; total_steps >= 1.
// Steps past total_steps use the last step's rate.
[[nodiscard]] double ScheduledLr(double base_lr, LrSchedule schedule, int64_t step, int64_t total_steps);

// lambda at 1-based PPO step `step` with a linear warm-up over `warmup_steps`: lambda * min(1, step /
// warmup_steps); warmup_steps <= 0 gives lambda throughout (the paper).
[[nodiscard]] double ScheduledLambda(double lambda, int64_t step, int64_t warmup_steps);

// AdamW (decoupled weight decay), one state per parameter tensor.
class AdamW {
 public:
  struct Options {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.1;
  };
  AdamW(size_t size, const Options& options);
  // w -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w). REQUIRES: sizes match.
  void Step(std::span<float> w, std::span<const float> grad);
  [[nodiscard]] int64_t steps() const { return t_; }
  // The learning rate of the next steps (a schedule sets it before each step).
  void set_lr(double lr) { options_.lr = lr; }
  [[nodiscard]] double lr() const { return options_.lr; }
  // Moments, for checkpoints.
  [[nodiscard]] std::vector<double>& m() { return m_; }
  [[nodiscard]] std::vector<double>& v() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  Options options_;
  std::vector<double> m_, v_;
  int64_t t_ = 0;
};

}  // namespace adak::training

#endif  // ADAK_TRAINING_ALLOCATOR_POLICY_H_
