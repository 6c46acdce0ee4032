#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace adak::engine {

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0 and finite, got ", p.temperature));
  }
  if (p.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0 (0 = off), got ", p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1], got ", p.min_p));
  }
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty)) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty must be > 0 and finite, got ", p.repetition_penalty));
  }
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("presence_penalty must be in [-2, 2], got ", p.presence_penalty));
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("frequency_penalty must be in [-2, 2], got ", p.frequency_penalty));
  }
  if (p.logit_bias.size() > kMaxLogitBias) {
    return absl::InvalidArgumentError(
        absl::StrCat("logit_bias: at most ", kMaxLogitBias, " entries, got ", p.logit_bias.size()));
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (!(bias >= -100.0f && bias <= 100.0f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("logit_bias for token ", id, " must be in [-100, 100], got ", bias));
    }
  }
  return absl::OkStatus();
}

int32_t Argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed.has_value() ? *params.seed : std::random_device{}()) {}

int32_t Sampler::Sample(std::span<const float> logits, std::span<const int32_t> context, size_t generated_from) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  work_.assign(logits.begin(), logits.end());
  // The repetition penalty applies once per distinct id, recognising an id already penalised by comparing
  // with the logits before it: the biased ones when there is a bias.
  std::span<const float> before_penalty = logits;
  if (!params_.logit_bias.empty()) {
    for (const auto& [id, bias] : params_.logit_bias) {
      if (id >= 0 && id < vocab) work_[static_cast<size_t>(id)] += bias;
    }
    biased_.assign(work_.begin(), work_.end());
    before_penalty = biased_;
  }
  if (params_.repetition_penalty != 1.0f) {
    for (int32_t id : context) {
      if (id < 0 || id >= vocab) continue;
      float& l = work_[static_cast<size_t>(id)];
      // Applied once per distinct id: mark by checking the original value.
      if (l != before_penalty[static_cast<size_t>(id)]) continue;
      l = l > 0.0f ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if ((params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) && generated_from < context.size()) {
    const std::span<const int32_t> generated = context.subspan(generated_from);
    counts_.assign(static_cast<size_t>(vocab), 0);
    for (int32_t id : generated) {
      if (id >= 0 && id < vocab) ++counts_[static_cast<size_t>(id)];
    }
    for (int32_t id : generated) {
      if (id < 0 || id >= vocab) continue;
      int32_t& n = counts_[static_cast<size_t>(id)];
      if (n == 0) continue;  // this id's penalty is applied already
      work_[static_cast<size_t>(id)] -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(n);
      n = 0;
    }
  }
  if (params_.temperature == 0.0f) return Argmax(work_);

  for (float& l : work_) l /= params_.temperature;
  // Candidates sorted by descending logit (ties: lower id).
  order_.resize(static_cast<size_t>(vocab));
  std::iota(order_.begin(), order_.end(), 0);
  int64_t keep = vocab;
  if (params_.top_k > 0) keep = std::min(keep, params_.top_k);
  auto cmp = [&](int32_t a, int32_t b) {
    const float la = work_[static_cast<size_t>(a)], lb = work_[static_cast<size_t>(b)];
    return la != lb ? la > lb : a < b;
  };
  if (keep < vocab) {
    std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), cmp);
  } else {
    std::sort(order_.begin(), order_.end(), cmp);
  }
  order_.resize(static_cast<size_t>(keep));

  // Softmax over the kept candidates, in double.
  const double mx = work_[static_cast<size_t>(order_[0])];
  std::vector<double> probs(order_.size());
  double sum = 0.0;
  for (size_t i = 0; i < order_.size(); ++i) sum += probs[i] = std::exp(work_[static_cast<size_t>(order_[i])] - mx);
  for (double& p : probs) p /= sum;

  size_t n = probs.size();
  if (params_.top_p < 1.0f) {  // smallest prefix with mass >= top_p
    double mass = 0.0;
    for (size_t i = 0; i < n; ++i) {
      mass += probs[i];
      if (mass >= params_.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {
    const double threshold = params_.min_p * probs[0];
    size_t m = 1;
    while (m < n && probs[m] >= threshold) ++m;
    n = m;
  }
  const double total = std::accumulate(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(n), 0.0);
  const double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) {
    acc += probs[i];
    if (u < acc) return order_[i];
  }
  return order_[n - 1];
}

}  // namespace adak::engine
