// The server's own live dashboard on the HTTP port: GET /dashboard serves one self-contained page
// (server/http/dashboard.html, compiled into the binary; no external assets) that polls GET /dashboard/data,
// the JSON built here from Metrics::Snapshot(), so the page shows the same observations as /metrics.
//
// /dashboard/data: {"model", "num_experts", "native_k", "policies": [every routing policy name], "time" (unix
// seconds), "layers": [per MoE layer: {"layer", "tokens", "sum_k", "mean_k", "k_counts" [E + 1],
// "expert_tokens" [E], "mean_k_by_policy" {policy: mean k, only policies that ran there}}], "flops":
// {"executed", "saved", "savings_ratio"}, "tokens": {"prompt", "generation"}, "requests": {"finished",
// "running", "waiting"}, "kv_cache_usage", "routing_tokens" {policy: tokens}, "rates":
// {"forwarded_tokens_per_second", "decode_tokens_per_second", "flops_saved_per_second"} over the last
// kRateWindow}. Pure functions.
#ifndef ADAK_SERVER_HTTP_DASHBOARD_H_
#define ADAK_SERVER_HTTP_DASHBOARD_H_

#include <string>
#include <string_view>

#include "engine/model_config.h"
#include "server/metrics.h"

namespace adak::server {

// The page (HTML with its CSS and script inline).
[[nodiscard]] std::string_view DashboardPage();

// The JSON of /dashboard/data. `unix_seconds` is the snapshot's time.
[[nodiscard]] std::string DashboardData(const MetricsSnapshot& snapshot, const engine::ModelConfig& config,
                                        std::string_view model_name, double unix_seconds);

}  // namespace adak::server

#endif  // ADAK_SERVER_HTTP_DASHBOARD_H_
