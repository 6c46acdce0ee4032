// The Prometheus metrics of docs/architecture.md ("Metrics"), fed by the scheduler's observer events
// and by the front ends' rejections, exposed in the text format on the HTTP gateway's /metrics.
//
// Names and labels are fixed there (bounded cardinality): per-layer series for L layers, per-expert
// series (adak_expert_tokens_total{layer,expert}) only while L x E <= 512 unless forced on. Thread-safe:
// observer callbacks come from the scheduler thread, RecordRejected and Serialize from front-end threads.
#ifndef ADAK_SERVER_METRICS_H_
#define ADAK_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/model_config.h"
#include "prometheus/registry.h"
#include "scheduler/observer.h"

namespace adak::server {

// The totals behind the routing series, for the server's own dashboard (server/http/dashboard.h): the same
// observations as the Prometheus series, kept as plain numbers. Layers without experts have empty vectors.
struct LayerRoutingTotals {
  bool moe = false;
  int64_t tokens = 0;                  // adak_layer_tokens_total
  int64_t sum_k = 0;                   // adak_layer_activated_experts_sum
  std::vector<int64_t> k_counts;       // [E + 1]: tokens that activated exactly k experts
  std::vector<int64_t> expert_tokens;  // [E]: tokens routed to each expert
  std::vector<int64_t> policy_tokens;  // [policies] by RoutingPolicy value
  std::vector<int64_t> policy_sum_k;   // [policies]
};
struct MetricsSnapshot {
  std::vector<LayerRoutingTotals> layers;                     // [L]
  double expert_flops = 0.0;                                  // adak_expert_flops_total
  double expert_flops_saved = 0.0;                            // adak_expert_flops_saved_total (steps that saved)
  double flop_savings_ratio = 0.0;                            // adak_flop_savings_ratio (signed, cumulative)
  double prompt_tokens = 0.0;                                 // adak_prompt_tokens_total
  double generation_tokens = 0.0;                             // adak_generation_tokens_total
  double requests_finished = 0.0;                             // adak_requests_total, every reason
  double running = 0.0, waiting = 0.0, kv_cache_usage = 0.0;  // the gauges
  std::vector<int64_t> routing_tokens;                        // [policies]: adak_routing_tokens_total
  // Rates over the last kRateWindow of engine steps (0 when idle that long): tokens forwarded (prefill +
  // decode), tokens decoded, routed-expert FLOPs saved, per second.
  double forwarded_tokens_per_second = 0.0;
  double decode_tokens_per_second = 0.0;
  double flops_saved_per_second = 0.0;
};
inline constexpr absl::Duration kRateWindow = absl::Seconds(5);

struct MetricsOptions {
  // Per-expert token counters: nullopt = on while layers x experts <= 512.
  std::optional<bool> per_expert;
  // The allocator profiles' names in index order: the adak routing series carry a `profile` label when given.
  std::vector<std::string> allocator_profiles;
};

class Metrics final : public scheduler::SchedulerObserver {
 public:
  explicit Metrics(const engine::ModelConfig& config, const MetricsOptions& options = {});
  ~Metrics() override;

  void OnStep(const scheduler::StepStats& step) override;
  void OnFirstToken(absl::Duration time_to_first_token) override;
  void OnInterToken(absl::Duration latency) override;
  void OnRequestFinished(const scheduler::RequestStats& request) override;

  // A call refused before it reached the scheduler (validation, queue full, draining):
  // adak_request_errors_total{code}.
  void RecordRejected(absl::StatusCode code);
  // Sets the running/waiting/KV gauges from a scheduler snapshot (e.g. just before a scrape).
  void SetSchedulerGauges(int64_t running, int64_t waiting, double kv_cache_usage);

  // The routing totals and the serving counters and gauges, consistent with Serialize().
  [[nodiscard]] MetricsSnapshot Snapshot() const;

  // Every metric in the Prometheus text exposition format (version 0.0.4).
  [[nodiscard]] std::string Serialize() const;
  [[nodiscard]] std::shared_ptr<prometheus::Registry> registry() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace adak::server

#endif  // ADAK_SERVER_METRICS_H_
