// What adak-loadtest measured: one RequestRecord per request, and the summary per arm and overall.
//
// Definitions (as `vllm bench serve` and genai-perf use them): TTFT = first streamed token - request sent;
// ITL = the gaps between consecutive streamed tokens (a message carrying n tokens counts as n gaps of 1/n
// of its gap; the first message's extra tokens as gaps of 0); TPOT per request = (E2E - TTFT) /
// (output tokens - 1); E2E = last byte - sent. Throughput is over the measured wall time (first send to
// last completion). A request is "good" when it succeeded and meets every SLO bound given (its TTFT, its
// TPOT, its largest ITL, its E2E); goodput = good requests / wall time. Percentiles interpolate linearly
// between order statistics. Mean k and the FLOP savings come from the server's own usage, weighted by the
// tokens each request forwarded (mean k) and summed (FLOPs). Pure functions; thread-compatible.
#ifndef ADAK_LOADTEST_REPORT_H_
#define ADAK_LOADTEST_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "loadtest/workload.h"
#include "nlohmann/json.hpp"

namespace adak::loadtest {

struct RequestRecord {
  int64_t index = 0;
  size_t arm = 0;
  bool ok = false;
  std::string error_code;  // gRPC code name or "http_<status>" or "transport"; empty when ok
  std::string error_message;
  double sent_s = 0.0;   // offset from the run's start
  double ttft_s = -1.0;  // < 0: no token arrived
  double e2e_s = 0.0;
  std::vector<double> itl_s;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  // From the server's usage (0 when it reported none).
  double mean_k = 0.0;
  double expert_flops = 0.0;
  double expert_flops_saved = 0.0;
};

// p in [0, 100]; 0 for no values.
[[nodiscard]] double Percentile(std::vector<double> values, double p);

// Whether `r` meets every bound of `slo` (an empty SLO: every successful request).
[[nodiscard]] bool MeetsSlo(const RequestRecord& r, const Slo& slo);

// The JSON summary of `records` over `wall_s` seconds: {"requests", "errors", "errors_by_code",
// "request_throughput", "output_throughput", "ttft_ms"/"itl_ms"/"tpot_ms"/"e2e_ms": {"mean","p50","p90",
// "p99"}, "good_requests", "goodput", "mean_k", "expert_flops", "expert_flops_saved", "flop_savings_ratio",
// "prompt_tokens", "output_tokens"}.
[[nodiscard]] nlohmann::json Summarize(const std::vector<RequestRecord>& records, double wall_s, const Slo& slo);

// The whole report: {"config": config, "wall_seconds", "overall": Summarize(all), "arms": [{"arm": name,
// ...Summarize(its records)}]}.
[[nodiscard]] nlohmann::json Report(const std::vector<RequestRecord>& records, const std::vector<Arm>& arms,
                                    double wall_s, const Slo& slo, nlohmann::json config);

// The human-readable table of a Report(): one row per arm and one for all.
[[nodiscard]] std::string ReportTable(const nlohmann::json& report);

}  // namespace adak::loadtest

#endif  // ADAK_LOADTEST_REPORT_H_
