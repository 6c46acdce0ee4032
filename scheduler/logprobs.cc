#include "scheduler/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace adak::scheduler {

void LogprobCalculator::Row(std::span<const float> logits) {
  logits_ = logits;
  float max = -INFINITY;
  for (float x : logits) max = std::max(max, x);
  double sum = 0.0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - static_cast<double>(max));
  log_norm_ = static_cast<double>(max) + std::log(sum);
}

float LogprobCalculator::Logprob(int32_t id) const {
  return static_cast<float>(static_cast<double>(logits_[static_cast<size_t>(id)]) - log_norm_);
}

std::vector<TopLogprob> LogprobCalculator::Top(int32_t n) {
  const size_t count = std::min(static_cast<size_t>(std::max(n, 0)), logits_.size());
  order_.resize(logits_.size());
  std::iota(order_.begin(), order_.end(), 0);
  std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(count), order_.end(),
                    [this](int32_t a, int32_t b) {
                      const float la = logits_[static_cast<size_t>(a)], lb = logits_[static_cast<size_t>(b)];
                      return la > lb || (la == lb && a < b);
                    });
  std::vector<TopLogprob> top(count);
  for (size_t i = 0; i < count; ++i) top[i] = {order_[i], Logprob(order_[i])};
  return top;
}

}  // namespace adak::scheduler
