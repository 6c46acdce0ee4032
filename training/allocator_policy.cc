#include "training/allocator_policy.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numbers>
#include <string>

#include "absl/status/status.h"
#include "base/strings.h"

namespace adak::training {

void PolicyLogProbs(std::span<const float> w, int64_t actions, std::span<const float> x, std::span<double> out) {
  const size_t h = x.size();
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t a = 0; a < actions; ++a) {
    double z = 0.0;
    const float* row = w.data() + static_cast<size_t>(a) * h;
    for (size_t i = 0; i < h; ++i) z += static_cast<double>(row[i]) * x[i];
    out[static_cast<size_t>(a)] = z;
    mx = std::max(mx, z);
  }
  double sum = 0.0;
  for (int64_t a = 0; a < actions; ++a) sum += std::exp(out[static_cast<size_t>(a)] - mx);
  const double lse = mx + std::log(sum);
  for (int64_t a = 0; a < actions; ++a) out[static_cast<size_t>(a)] -= lse;
}

namespace {

// grad[j, :] += scale * dz[j] * x for every action j.
void AddOuter(std::span<float> grad, std::span<const double> dz, std::span<const float> x, double scale) {
  const size_t h = x.size();
  for (size_t j = 0; j < dz.size(); ++j) {
    const double c = dz[j] * scale;
    if (c == 0.0) continue;
    float* row = grad.data() + j * h;
    for (size_t i = 0; i < h; ++i) row[i] += static_cast<float>(c * x[i]);
  }
}

}  // namespace

PpoLoss PpoLossAndGradient(std::span<const float> w, int64_t actions, std::span<const PolicySample> samples,
                           const PpoParams& params, std::span<float> grad) {
  PpoLoss loss;
  if (samples.empty()) return loss;
  const double inv_n = 1.0 / static_cast<double>(samples.size());
  std::vector<double> logp(static_cast<size_t>(actions)), dz(static_cast<size_t>(actions));
  int64_t clipped = 0;
  for (const PolicySample& s : samples) {
    PolicyLogProbs(w, actions, s.x, logp);
    const double ratio = std::exp(logp[static_cast<size_t>(s.action)] - s.old_log_prob);
    const double clipped_ratio = std::clamp(ratio, 1.0 - params.clip, 1.0 + params.clip);
    const double unclipped_term = ratio * s.advantage, clipped_term = clipped_ratio * s.advantage;
    loss.surrogate -= std::min(unclipped_term, clipped_term) * inv_n;
    // d surrogate / d log pi(a): -A r where the unclipped term is the minimum or the ratio is inside the
    // clip range; zero where the clipped (constant) term is the minimum.
    const bool outside = ratio < 1.0 - params.clip || ratio > 1.0 + params.clip;
    const bool clipped_active = clipped_term < unclipped_term && outside;
    if (clipped_active) ++clipped;
    const double g_logp = clipped_active ? 0.0 : -s.advantage * ratio;
    double expected_k = 0.0;
    for (int64_t a = 0; a < actions; ++a)
      expected_k += static_cast<double>(a + 1) * std::exp(logp[static_cast<size_t>(a)]);
    loss.expected_k += expected_k * inv_n;
    if (grad.empty()) continue;
    for (int64_t j = 0; j < actions; ++j) {
      const double pj = std::exp(logp[static_cast<size_t>(j)]);
      const double d_logp = (j == s.action ? 1.0 : 0.0) - pj;
      dz[static_cast<size_t>(j)] = g_logp * d_logp + params.lambda * pj * (static_cast<double>(j + 1) - expected_k);
    }
    AddOuter(grad, dz, s.x, inv_n);
  }
  loss.clipped_fraction = static_cast<double>(clipped) * inv_n;
  return loss;
}

double CrossEntropyLossAndGradient(std::span<const float> w, int64_t actions, std::span<const LabeledState> samples,
                                   std::span<float> grad) {
  if (samples.empty()) return 0.0;
  const double inv_n = 1.0 / static_cast<double>(samples.size());
  std::vector<double> logp(static_cast<size_t>(actions)), dz(static_cast<size_t>(actions));
  double loss = 0.0;
  for (const LabeledState& s : samples) {
    PolicyLogProbs(w, actions, s.x, logp);
    loss -= logp[static_cast<size_t>(s.label)] * inv_n;
    if (grad.empty()) continue;
    for (int64_t j = 0; j < actions; ++j) {
      dz[static_cast<size_t>(j)] = std::exp(logp[static_cast<size_t>(j)]) - (j == s.label ? 1.0 : 0.0);
    }
    AddOuter(grad, dz, s.x, inv_n);
  }
  return loss;
}

int32_t TopPLabel(std::span<const float> probs, double p) {
  std::vector<float> sorted(probs.begin(), probs.end());
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  double mass = 0.0;
  for (size_t k = 0; k < sorted.size(); ++k) {
    mass += sorted[k];
    if (mass >= p) return static_cast<int32_t>(k + 1);
  }
  return static_cast<int32_t>(sorted.size());
}

double FindWarmStartP(std::span<const float> probs, int64_t experts, double target_mean_k) {
  const size_t rows = probs.size() / static_cast<size_t>(experts);
  auto mean_label = [&](double p) {
    double sum = 0.0;
    for (size_t r = 0; r < rows; ++r)
      sum += TopPLabel(probs.subspan(r * static_cast<size_t>(experts), static_cast<size_t>(experts)), p);
    return rows == 0 ? 0.0 : sum / static_cast<double>(rows);
  };
  double lo = 0.0, hi = 1.0, best_p = 1.0, best_gap = std::numeric_limits<double>::infinity();
  for (int iter = 0; iter < 40; ++iter) {
    const double mid = 0.5 * (lo + hi);
    const double m = mean_label(mid);
    if (std::fabs(m - target_mean_k) < best_gap) {
      best_gap = std::fabs(m - target_mean_k);
      best_p = mid;
    }
    if (m < target_mean_k) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return best_p;
}

std::string_view AdvantageNormName(AdvantageNorm norm) {
  switch (norm) {
    case AdvantageNorm::kNone: return "none";
    case AdvantageNorm::kCenter: return "center";
    case AdvantageNorm::kStandardize: return "standardize";
  }
  return "none";
}

absl::StatusOr<AdvantageNorm> ParseAdvantageNorm(std::string_view name) {
  for (AdvantageNorm n : {AdvantageNorm::kNone, AdvantageNorm::kCenter, AdvantageNorm::kStandardize}) {
    if (name == AdvantageNormName(n)) return n;
  }
  return absl::InvalidArgumentError(
      StrCatStd("--advantage-norm must be none, center or standardize, got '", name, "'"));
}

AdvantageMoments NormalizeAdvantages(std::span<double> advantages, AdvantageNorm norm) {
  AdvantageMoments m;
  if (advantages.empty()) return m;
  const double n = static_cast<double>(advantages.size());
  for (double a : advantages) m.mean += a / n;
  double var = 0.0;
  for (double a : advantages) var += (a - m.mean) * (a - m.mean) / n;
  m.stddev = std::sqrt(var);
  if (norm == AdvantageNorm::kNone) return m;
  const double scale = norm == AdvantageNorm::kStandardize ? 1.0 / std::max(m.stddev, 1e-8) : 1.0;
  for (double& a : advantages) a = (a - m.mean) * scale;
  return m;
}

void DiscountWithinSegments(std::span<double> values, int64_t segment, double gamma) {
  if (gamma == 0.0 || segment < 1) return;
  const size_t n = static_cast<size_t>(segment);
  for (size_t start = 0; start + n <= values.size(); start += n) {
    for (size_t i = n - 1; i-- > 0;) values[start + i] += gamma * values[start + i + 1];
  }
}

std::string_view LrScheduleName(LrSchedule schedule) { return schedule == LrSchedule::kCosine ? "cosine" : "constant"; }

absl::StatusOr<LrSchedule> ParseLrSchedule(std::string_view name) {
  for (LrSchedule s : {LrSchedule::kConstant, LrSchedule::kCosine}) {
    if (name == LrScheduleName(s)) return s;
  }
  return absl::InvalidArgumentError(StrCatStd("--lr-schedule must be constant or cosine, got '", name, "'"));
}

double ScheduledLr(double base_lr, LrSchedule schedule, int64_t step, int64_t total_steps) {
  if (schedule == LrSchedule::kConstant || total_steps < 1) return base_lr;
  const double s = static_cast<double>(std::clamp<int64_t>(step, 1, total_steps) - 1);
  return base_lr * 0.5 * (1.0 + std::cos(std::numbers::pi * s / static_cast<double>(total_steps)));
}

double ScheduledLambda(double lambda, int64_t step, int64_t warmup_steps) {
  if (warmup_steps <= 0 || step >= warmup_steps) return lambda;
  return lambda * static_cast<double>(std::max<int64_t>(step, 0)) / static_cast<double>(warmup_steps);
}

AdamW::AdamW(size_t size, const Options& options) : options_(options), m_(size, 0.0), v_(size, 0.0) {}

void AdamW::Step(std::span<float> w, std::span<const float> grad) {
  ++t_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(t_)), c2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  for (size_t i = 0; i < w.size(); ++i) {
    m_[i] = b1 * m_[i] + (1.0 - b1) * grad[i];
    v_[i] = b2 * v_[i] + (1.0 - b2) * static_cast<double>(grad[i]) * grad[i];
    const double update = (m_[i] / c1) / (std::sqrt(v_[i] / c2) + options_.eps) + options_.weight_decay * w[i];
    w[i] = static_cast<float>(w[i] - options_.lr * update);
  }
}

}  // namespace adak::training
