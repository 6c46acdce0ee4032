// The Prometheus metrics of docs/architecture.md ("Metrics"), fed by the scheduler's observer events
// and by the front ends' rejections, exposed in the text format on the HTTP gateway's /metrics.
//
// Names and labels are fixed there (bounded cardinality): per-layer series for L layers, per-expert
// series (adak_expert_tokens_total{layer,expert}) only while L x E <= 512 unless forced on. Thread-safe:
// observer callbacks come from the scheduler thread, RecordRejected and Serialize from front-end threads.
#ifndef ADAK_SERVER_METRICS_H_
#define ADAK_SERVER_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "engine/model_config.h"
#include "prometheus/registry.h"
#include "scheduler/observer.h"

namespace adak::server {

struct MetricsOptions {
  // Per-expert token counters: nullopt = on while layers x experts <= 512.
  std::optional<bool> per_expert;
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

  // Every metric in the Prometheus text exposition format (version 0.0.4).
  [[nodiscard]] std::string Serialize() const;
  [[nodiscard]] std::shared_ptr<prometheus::Registry> registry() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace adak::server

#endif  // ADAK_SERVER_METRICS_H_
