#include "server/metrics.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/strings.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/text_serializer.h"
#include "server/status_mapping.h"

namespace adak::server {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Latency buckets in seconds (vLLM's, extended down to 1 ms for a small model on a CPU).
const Histogram::BucketBoundaries& TtftBuckets() {
  static const Histogram::BucketBoundaries buckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
                                                      0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
  return buckets;
}
const Histogram::BucketBoundaries& InterTokenBuckets() {
  static const Histogram::BucketBoundaries buckets = {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
                                                      0.075, 0.1,    0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1.0,  2.5};
  return buckets;
}
const Histogram::BucketBoundaries& RequestBuckets() {
  static const Histogram::BucketBoundaries buckets = {0.01, 0.025, 0.05, 0.1,  0.25, 0.5,  1.0,   2.5,  5.0,
                                                      10.0, 15.0,  20.0, 30.0, 40.0, 60.0, 120.0, 300.0};
  return buckets;
}
const Histogram::BucketBoundaries& StepBuckets() {
  static const Histogram::BucketBoundaries buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1.0,   2.5,  5.0};
  return buckets;
}
// Powers of two 1 .. 8192 (tokens per batch, rows per expert GEMM).
Histogram::BucketBoundaries PowersOfTwo() {
  Histogram::BucketBoundaries buckets;
  for (double b = 1; b <= 8192; b *= 2) buckets.push_back(b);
  return buckets;
}

constexpr size_t kPolicies = std::size(engine::kRoutingPolicies);

}  // namespace

class Metrics::Impl {
 public:
  Impl(const engine::ModelConfig& config, const MetricsOptions& options)
      : num_experts_(config.num_experts), registry_(std::make_shared<prometheus::Registry>()) {
    auto& reg = *registry_;
    // Serving.
    running_ = &prometheus::BuildGauge()
                    .Name("adak_requests_running")
                    .Help("Requests holding KV blocks (prefilling or decoding)")
                    .Register(reg)
                    .Add({});
    waiting_ = &prometheus::BuildGauge()
                    .Name("adak_requests_waiting")
                    .Help("Requests admitted and waiting to be scheduled")
                    .Register(reg)
                    .Add({});
    kv_usage_ = &prometheus::BuildGauge()
                     .Name("adak_kv_cache_usage_ratio")
                     .Help("Used KV cache blocks / total blocks")
                     .Register(reg)
                     .Add({});
    requests_ = &prometheus::BuildCounter()
                     .Name("adak_requests_total")
                     .Help("Finished requests by finish reason")
                     .Register(reg);
    for (auto reason :
         {scheduler::FinishReason::kLength, scheduler::FinishReason::kStop, scheduler::FinishReason::kCancelled,
          scheduler::FinishReason::kDeadline, scheduler::FinishReason::kError}) {
      requests_by_reason_[static_cast<int>(reason)] =
          &requests_->Add({{"finished_reason", scheduler::FinishReasonName(reason)}});
    }
    errors_ = &prometheus::BuildCounter()
                   .Name("adak_request_errors_total")
                   .Help("Requests refused or ended with an error, by status code")
                   .Register(reg);
    // The codes a client can cause or see, present from the start so rate() works on the first error.
    for (absl::StatusCode code :
         {absl::StatusCode::kInvalidArgument, absl::StatusCode::kResourceExhausted, absl::StatusCode::kUnavailable,
          absl::StatusCode::kCancelled, absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kInternal}) {
      RecordError(code, /*increment=*/false);
    }
    prompt_tokens_ = &prometheus::BuildCounter()
                          .Name("adak_prompt_tokens_total")
                          .Help("Prompt tokens of finished requests")
                          .Register(reg)
                          .Add({});
    generation_tokens_ = &prometheus::BuildCounter()
                              .Name("adak_generation_tokens_total")
                              .Help("Generated tokens of finished requests")
                              .Register(reg)
                              .Add({});
    ttft_ = &prometheus::BuildHistogram()
                 .Name("adak_time_to_first_token_seconds")
                 .Help("Submit to first generated token")
                 .Register(reg)
                 .Add({}, TtftBuckets());
    inter_token_ = &prometheus::BuildHistogram()
                        .Name("adak_inter_token_latency_seconds")
                        .Help("Time between consecutive generated tokens of a request")
                        .Register(reg)
                        .Add({}, InterTokenBuckets());
    e2e_ = &prometheus::BuildHistogram()
                .Name("adak_e2e_request_latency_seconds")
                .Help("Submit to finish")
                .Register(reg)
                .Add({}, RequestBuckets());
    queue_time_ = &prometheus::BuildHistogram()
                       .Name("adak_request_queue_time_seconds")
                       .Help("Submit to first scheduled")
                       .Register(reg)
                       .Add({}, RequestBuckets());
    batch_tokens_ = &prometheus::BuildHistogram()
                         .Name("adak_batch_tokens")
                         .Help("Tokens per engine step (prefill + decode)")
                         .Register(reg)
                         .Add({}, PowersOfTwo());
    step_duration_ = &prometheus::BuildHistogram()
                          .Name("adak_step_duration_seconds")
                          .Help("Duration of one engine step (planning, forward, sampling)")
                          .Register(reg)
                          .Add({}, StepBuckets());
    preemptions_ = &prometheus::BuildCounter()
                        .Name("adak_preemptions_total")
                        .Help("Sequences preempted for lack of KV blocks (recomputed later)")
                        .Register(reg)
                        .Add({});

    // Experts.
    auto& activated = prometheus::BuildHistogram()
                          .Name("adak_layer_activated_experts")
                          .Help("Routed experts activated per token, per MoE layer")
                          .Register(reg);
    auto& layer_tokens = prometheus::BuildCounter()
                             .Name("adak_layer_tokens_total")
                             .Help("Tokens routed through each MoE layer")
                             .Register(reg);
    auto& assignments = prometheus::BuildCounter()
                            .Name("adak_layer_expert_assignments_total")
                            .Help("(token, expert) assignments per MoE layer: the sum of k")
                            .Register(reg);
    auto& gemm_rows = prometheus::BuildHistogram()
                          .Name("adak_expert_gemm_rows")
                          .Help("Rows (tokens) per active expert GEMM per step, per MoE layer")
                          .Register(reg);
    Histogram::BucketBoundaries k_buckets;
    for (int64_t k = 0; k <= num_experts_; ++k) k_buckets.push_back(static_cast<double>(k));
    const int64_t num_layers = config.num_layers;
    per_expert_ = options.per_expert.value_or(config.num_moe_layers() * num_experts_ <= 512);
    Family<Counter>* expert_tokens = nullptr;
    if (per_expert_) {
      expert_tokens = &prometheus::BuildCounter()
                           .Name("adak_expert_tokens_total")
                           .Help("Tokens routed to each expert of each MoE layer")
                           .Register(reg);
    }
    layers_.resize(static_cast<size_t>(num_layers));
    {
      absl::MutexLock lock(&mu_);
      totals_.resize(static_cast<size_t>(num_layers));
    }
    for (int64_t l = 0; l < num_layers; ++l) {
      if (static_cast<size_t>(l) >= config.moe_layers.size() || !config.moe_layers[static_cast<size_t>(l)]) continue;
      {
        absl::MutexLock lock(&mu_);
        LayerRoutingTotals& totals = totals_[static_cast<size_t>(l)];
        totals.moe = true;
        totals.k_counts.assign(static_cast<size_t>(num_experts_) + 1, 0);
        totals.expert_tokens.assign(static_cast<size_t>(num_experts_), 0);
        totals.policy_tokens.assign(kPolicies, 0);
        totals.policy_sum_k.assign(kPolicies, 0);
      }
      LayerSeries& s = layers_[static_cast<size_t>(l)];
      const std::string label = absl::StrCat(l);
      s.moe = true;
      s.activated = &activated.Add({{"layer", label}}, k_buckets);
      s.tokens = &layer_tokens.Add({{"layer", label}});
      s.assignments = &assignments.Add({{"layer", label}});
      s.gemm_rows = &gemm_rows.Add({{"layer", label}}, PowersOfTwo());
      if (expert_tokens != nullptr) {
        for (int64_t e = 0; e < num_experts_; ++e) {
          s.experts.push_back(&expert_tokens->Add({{"layer", label}, {"expert", absl::StrCat(e)}}));
        }
      }
    }
    expert_flops_ = &prometheus::BuildCounter()
                         .Name("adak_expert_flops_total")
                         .Help("Routed-expert FLOPs executed")
                         .Register(reg)
                         .Add({});
    expert_flops_saved_ = &prometheus::BuildCounter()
                               .Name("adak_expert_flops_saved_total")
                               .Help(
                                   "Routed-expert FLOPs saved against the model's native top-K on the same "
                                   "tokens (only positive savings are counted here; see the ratio)")
                               .Register(reg)
                               .Add({});
    savings_ratio_ = &prometheus::BuildGauge()
                          .Name("adak_flop_savings_ratio")
                          .Help(
                              "Cumulative routed-expert FLOPs saved / native top-K FLOPs (negative when "
                              "policies ran more experts than native)")
                          .Register(reg)
                          .Add({});
    auto& routing = prometheus::BuildCounter()
                        .Name("adak_routing_tokens_total")
                        .Help("Tokens forwarded, by routing policy (and allocator profile for adak)")
                        .Register(reg);
    auto& routing_assignments =
        prometheus::BuildCounter()
            .Name("adak_routing_expert_assignments_total")
            .Help(
                "(token, expert) assignments summed over the MoE layers, by routing policy (and allocator profile "
                "for adak): divided by adak_routing_tokens_total and the MoE layer count it is the mean k")
            .Register(reg);
    // One route per policy; adak has one per allocator profile instead when the server names them.
    num_profiles_ = options.allocator_profiles.size();
    for (engine::RoutingPolicy policy : engine::kRoutingPolicies) {
      const std::string name(engine::RoutingPolicyName(policy));
      const bool by_profile = policy == engine::RoutingPolicy::kAdaK && num_profiles_ > 0;
      for (size_t p = 0; p < (by_profile ? num_profiles_ : 1); ++p) {
        std::map<std::string, std::string> labels = {{"policy", name}};
        if (by_profile) labels["profile"] = options.allocator_profiles[p];
        routes_.push_back({policy, &routing.Add(labels), &routing_assignments.Add(labels)});
      }
    }
  }

  // The index into routes_ of a token's policy and profile.
  size_t RouteIndex(engine::RoutingPolicy policy, int32_t profile) const {
    const auto p = static_cast<size_t>(policy);
    const size_t adak = static_cast<size_t>(engine::RoutingPolicy::kAdaK);
    const size_t profiles = std::max<size_t>(num_profiles_, 1);
    if (p < adak) return p;
    if (p == adak) return adak + std::min(static_cast<size_t>(std::max(profile, 0)), profiles - 1);
    return p + profiles - 1;
  }

  void OnStep(const scheduler::StepStats& step) {
    batch_tokens_->Observe(static_cast<double>(step.batch_tokens));
    step_duration_->Observe(absl::ToDoubleSeconds(step.duration));
    running_->Set(static_cast<double>(step.running));
    waiting_->Set(static_cast<double>(step.waiting));
    kv_usage_->Set(step.kv_cache_usage);
    if (step.preempted > 0) preemptions_->Increment(static_cast<double>(step.preempted));

    // Policies and profiles: tokens, and the sum of k over the MoE layers.
    std::vector<int64_t> route_tokens(routes_.size(), 0), route_k(routes_.size(), 0);
    for (size_t t = 0; t < step.token_policy.size(); ++t) {
      if (static_cast<size_t>(step.token_policy[t]) >= kPolicies) continue;
      const size_t r = RouteIndex(step.token_policy[t], t < step.token_profile.size() ? step.token_profile[t] : 0);
      ++route_tokens[r];
      if (step.forward == nullptr) continue;
      for (const std::vector<int32_t>& ks : step.forward->routed_k) {
        if (t < ks.size()) route_k[r] += ks[t];
      }
    }
    for (size_t r = 0; r < routes_.size(); ++r) {
      if (route_tokens[r] > 0) routes_[r].tokens->Increment(static_cast<double>(route_tokens[r]));
      if (route_k[r] > 0) routes_[r].assignments->Increment(static_cast<double>(route_k[r]));
    }

    // FLOPs: the counters only go up; the ratio keeps the sign of the cumulative savings.
    {
      absl::MutexLock lock(&mu_);
      cumulative_flops_ += step.expert_flops;
      cumulative_saved_ += step.expert_flops_saved;
      const double native = cumulative_flops_ + cumulative_saved_;
      savings_ratio_->Set(native > 0.0 ? cumulative_saved_ / native : 0.0);
      RecordRateSample(step);
    }
    if (step.expert_flops > 0.0) expert_flops_->Increment(step.expert_flops);
    if (step.expert_flops_saved > 0.0) expert_flops_saved_->Increment(step.expert_flops_saved);

    if (step.forward != nullptr) RecordRouting(*step.forward, step.token_policy);
  }

  // One point of the rate window per step: cumulative totals at the step's end. Keeps the points of the last
  // kRateWindow and the one just before it (the base of the rates).
  void RecordRateSample(const scheduler::StepStats& step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RateSample next = rate_samples_.empty() ? RateSample{} : rate_samples_.back();
    next.time = absl::Now();
    next.forwarded += static_cast<double>(step.batch_tokens);
    next.decoded += static_cast<double>(step.decode_tokens);
    next.saved += step.expert_flops_saved;
    if (rate_samples_.empty()) rate_samples_.push_back(RateSample{.time = next.time - step.duration});
    rate_samples_.push_back(next);
    while (rate_samples_.size() > 2 && rate_samples_[1].time < next.time - kRateWindow) rate_samples_.pop_front();
  }

  void RecordRouting(const engine::ForwardResult& forward, std::span<const engine::RoutingPolicy> token_policy) {
    absl::MutexLock lock(&mu_);
    const size_t num_layers = std::min(layers_.size(), forward.routed_k.size());
    const auto experts = static_cast<size_t>(num_experts_);
    std::vector<double> k_counts(experts + 2);
    std::vector<int64_t> rows(experts);
    const size_t row_buckets = PowersOfTwo().size() + 1;
    std::vector<double> row_counts(row_buckets);
    for (size_t l = 0; l < num_layers; ++l) {
      LayerSeries& s = layers_[l];
      if (!s.moe) continue;
      const std::vector<int32_t>& ks = forward.routed_k[l];
      std::fill(k_counts.begin(), k_counts.end(), 0.0);
      int64_t sum_k = 0;
      for (int32_t k : ks) {
        const size_t bucket = std::min(static_cast<size_t>(std::max(k, 0)), experts + 1);
        k_counts[bucket] += 1.0;
        sum_k += k;
      }
      if (ks.empty()) continue;
      s.activated->ObserveMultiple(k_counts, static_cast<double>(sum_k));
      LayerRoutingTotals& totals = totals_[l];
      totals.tokens += static_cast<int64_t>(ks.size());
      totals.sum_k += sum_k;
      for (size_t k = 0; k < totals.k_counts.size(); ++k) totals.k_counts[k] += static_cast<int64_t>(k_counts[k]);
      for (size_t t = 0; t < ks.size() && t < token_policy.size(); ++t) {
        const auto p = static_cast<size_t>(token_policy[t]);
        if (p >= kPolicies) continue;
        ++totals.policy_tokens[p];
        totals.policy_sum_k[p] += ks[t];
      }
      s.tokens->Increment(static_cast<double>(ks.size()));
      if (sum_k > 0) s.assignments->Increment(static_cast<double>(sum_k));

      // Rows per expert GEMM of this step, from the routed ids ([T, E], -1 past k).
      if (l >= forward.routed_ids.size()) continue;
      std::fill(rows.begin(), rows.end(), 0);
      for (int32_t id : forward.routed_ids[l]) {
        if (id >= 0 && static_cast<size_t>(id) < experts) ++rows[static_cast<size_t>(id)];
      }
      std::fill(row_counts.begin(), row_counts.end(), 0.0);
      double row_sum = 0.0;
      for (size_t e = 0; e < experts; ++e) {
        if (rows[e] == 0) continue;
        if (!s.experts.empty()) s.experts[e]->Increment(static_cast<double>(rows[e]));
        totals.expert_tokens[e] += rows[e];
        // Bucket i has the upper bound 2^i; the last one is +Inf.
        size_t bucket = 0;
        while (bucket + 1 < row_buckets && (int64_t{1} << bucket) < rows[e]) ++bucket;
        row_counts[bucket] += 1.0;
        row_sum += static_cast<double>(rows[e]);
      }
      if (row_sum > 0.0) s.gemm_rows->ObserveMultiple(row_counts, row_sum);
    }
  }

  void OnRequestFinished(const scheduler::RequestStats& request) {
    const auto reason = static_cast<size_t>(request.reason);
    if (reason < std::size(requests_by_reason_)) requests_by_reason_[reason]->Increment();
    if (request.code != absl::StatusCode::kOk) RecordError(request.code);
    if (request.prompt_tokens > 0) prompt_tokens_->Increment(static_cast<double>(request.prompt_tokens));
    if (request.generation_tokens > 0) {
      generation_tokens_->Increment(static_cast<double>(request.generation_tokens));
    }
    e2e_->Observe(absl::ToDoubleSeconds(request.e2e));
    queue_time_->Observe(absl::ToDoubleSeconds(request.queue_time));
  }

  void RecordError(absl::StatusCode code, bool increment = true) {
    absl::MutexLock lock(&mu_);
    auto it = errors_by_code_.find(static_cast<int>(code));
    if (it == errors_by_code_.end()) {
      it = errors_by_code_.emplace(static_cast<int>(code), &errors_->Add({{"code", StatusCodeLabel(code)}})).first;
    }
    if (increment) it->second->Increment();
  }

  struct LayerSeries {
    bool moe = false;
    Histogram* activated = nullptr;
    Counter* tokens = nullptr;
    Counter* assignments = nullptr;
    Histogram* gemm_rows = nullptr;
    std::vector<Counter*> experts;  // [E] when per-expert series are on
  };

  const int64_t num_experts_;
  std::shared_ptr<prometheus::Registry> registry_;
  bool per_expert_ = false;
  Gauge* running_ = nullptr;
  Gauge* waiting_ = nullptr;
  Gauge* kv_usage_ = nullptr;
  Family<Counter>* requests_ = nullptr;
  Counter* requests_by_reason_[5] = {};
  Family<Counter>* errors_ = nullptr;
  Counter* prompt_tokens_ = nullptr;
  Counter* generation_tokens_ = nullptr;
  Histogram* ttft_ = nullptr;
  Histogram* inter_token_ = nullptr;
  Histogram* e2e_ = nullptr;
  Histogram* queue_time_ = nullptr;
  Histogram* batch_tokens_ = nullptr;
  Histogram* step_duration_ = nullptr;
  Counter* preemptions_ = nullptr;
  std::vector<LayerSeries> layers_;  // [L]; only MoE layers have series
  Counter* expert_flops_ = nullptr;
  Counter* expert_flops_saved_ = nullptr;
  Gauge* savings_ratio_ = nullptr;
  struct RouteSeries {
    engine::RoutingPolicy policy = engine::RoutingPolicy::kTopK;
    Counter* tokens = nullptr;       // adak_routing_tokens_total
    Counter* assignments = nullptr;  // adak_routing_expert_assignments_total
  };
  std::vector<RouteSeries> routes_;  // by policy, adak split by profile (RouteIndex)
  size_t num_profiles_ = 0;

  absl::Mutex mu_;
  double cumulative_flops_ ABSL_GUARDED_BY(mu_) = 0.0;
  double cumulative_saved_ ABSL_GUARDED_BY(mu_) = 0.0;
  std::map<int, Counter*> errors_by_code_ ABSL_GUARDED_BY(mu_);
  std::vector<LayerRoutingTotals> totals_ ABSL_GUARDED_BY(mu_);  // [L]
  struct RateSample {
    absl::Time time;
    double forwarded = 0.0, decoded = 0.0, saved = 0.0;  // cumulative
  };
  std::deque<RateSample> rate_samples_ ABSL_GUARDED_BY(mu_);
};

Metrics::Metrics(const engine::ModelConfig& config, const MetricsOptions& options)
    : impl_(std::make_unique<Impl>(config, options)) {}

Metrics::~Metrics() = default;

void Metrics::OnStep(const scheduler::StepStats& step) { impl_->OnStep(step); }

void Metrics::OnFirstToken(absl::Duration time_to_first_token) {
  impl_->ttft_->Observe(absl::ToDoubleSeconds(time_to_first_token));
}

void Metrics::OnInterToken(absl::Duration latency) { impl_->inter_token_->Observe(absl::ToDoubleSeconds(latency)); }

void Metrics::OnRequestFinished(const scheduler::RequestStats& request) { impl_->OnRequestFinished(request); }

void Metrics::RecordRejected(absl::StatusCode code) { impl_->RecordError(code); }

void Metrics::SetSchedulerGauges(int64_t running, int64_t waiting, double kv_cache_usage) {
  impl_->running_->Set(static_cast<double>(running));
  impl_->waiting_->Set(static_cast<double>(waiting));
  impl_->kv_usage_->Set(kv_cache_usage);
}

std::string Metrics::Serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, impl_->registry_->Collect());
  return out.str();
}

MetricsSnapshot Metrics::Snapshot() const {
  Impl& m = *impl_;
  MetricsSnapshot s;
  {
    absl::MutexLock lock(&m.mu_);
    s.layers = m.totals_;
    const double native = m.cumulative_flops_ + m.cumulative_saved_;
    s.flop_savings_ratio = native > 0.0 ? m.cumulative_saved_ / native : 0.0;
    // Rates from the window's base to now; a base older than the window counts from the window's start
    // (no step in between), so the rates fall to 0 once the engine has been idle for the whole window.
    if (m.rate_samples_.size() >= 2) {
      const absl::Time now = absl::Now();
      const Impl::RateSample& base = m.rate_samples_.front();
      const Impl::RateSample& last = m.rate_samples_.back();
      const absl::Time from = std::max(base.time, now - kRateWindow);
      const double seconds = absl::ToDoubleSeconds(now - from);
      if (last.time > from && seconds > 0.0) {
        s.forwarded_tokens_per_second = (last.forwarded - base.forwarded) / seconds;
        s.decode_tokens_per_second = (last.decoded - base.decoded) / seconds;
        s.flops_saved_per_second = (last.saved - base.saved) / seconds;
      }
    }
  }
  s.expert_flops = m.expert_flops_->Value();
  s.expert_flops_saved = m.expert_flops_saved_->Value();
  s.prompt_tokens = m.prompt_tokens_->Value();
  s.generation_tokens = m.generation_tokens_->Value();
  for (const Counter* c : m.requests_by_reason_) s.requests_finished += c->Value();
  s.running = m.running_->Value();
  s.waiting = m.waiting_->Value();
  s.kv_cache_usage = m.kv_usage_->Value();
  s.routing_tokens.assign(kPolicies, 0);
  for (const auto& route : m.routes_) {
    s.routing_tokens[static_cast<size_t>(route.policy)] += static_cast<int64_t>(route.tokens->Value());
  }
  return s;
}

std::shared_ptr<prometheus::Registry> Metrics::registry() const { return impl_->registry_; }

}  // namespace adak::server
