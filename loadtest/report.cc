#include "loadtest/report.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_format.h"

namespace adak::loadtest {
namespace {

double Tpot(const RequestRecord& r) {
  if (r.output_tokens < 2 || r.ttft_s < 0) return -1.0;
  return (r.e2e_s - r.ttft_s) / static_cast<double>(r.output_tokens - 1);
}

nlohmann::json Distribution(const std::vector<double>& ms) {
  double sum = 0.0;
  for (double v : ms) sum += v;
  return {{"mean", ms.empty() ? 0.0 : sum / static_cast<double>(ms.size())},
          {"p50", Percentile(ms, 50)},
          {"p90", Percentile(ms, 90)},
          {"p99", Percentile(ms, 99)},
          {"count", ms.size()}};
}

}  // namespace

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(rank);
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

bool MeetsSlo(const RequestRecord& r, const Slo& slo) {
  if (!r.ok) return false;
  if (slo.ttft_ms && (r.ttft_s < 0 || r.ttft_s * 1e3 > *slo.ttft_ms)) return false;
  if (slo.e2e_ms && r.e2e_s * 1e3 > *slo.e2e_ms) return false;
  if (slo.tpot_ms && Tpot(r) * 1e3 > *slo.tpot_ms) return false;
  if (slo.itl_ms) {
    for (double gap : r.itl_s) {
      if (gap * 1e3 > *slo.itl_ms) return false;
    }
  }
  return true;
}

nlohmann::json Summarize(const std::vector<RequestRecord>& records, double wall_s, const Slo& slo) {
  std::vector<double> ttft, itl, tpot, e2e;
  std::map<std::string, int64_t> errors;
  int64_t ok = 0, good = 0, prompt_tokens = 0, output_tokens = 0;
  double k_weighted = 0.0, k_weight = 0.0, flops = 0.0, saved = 0.0;
  for (const RequestRecord& r : records) {
    if (!r.ok) {
      ++errors[r.error_code];
      continue;
    }
    ++ok;
    if (MeetsSlo(r, slo)) ++good;
    if (r.ttft_s >= 0) ttft.push_back(r.ttft_s * 1e3);
    for (double gap : r.itl_s) itl.push_back(gap * 1e3);
    if (const double t = Tpot(r); t >= 0) tpot.push_back(t * 1e3);
    e2e.push_back(r.e2e_s * 1e3);
    prompt_tokens += r.prompt_tokens;
    output_tokens += r.output_tokens;
    // Mean k per forwarded token: prompt and output tokens both went through the experts.
    const double forwarded = static_cast<double>(r.prompt_tokens + r.output_tokens);
    if (r.mean_k > 0 && forwarded > 0) {
      k_weighted += r.mean_k * forwarded;
      k_weight += forwarded;
    }
    flops += r.expert_flops;
    saved += r.expert_flops_saved;
  }
  const double wall = wall_s > 0 ? wall_s : 0.0;
  const auto per_s = [&](double n) { return wall > 0 ? n / wall : 0.0; };
  int64_t error_count = 0;
  for (const auto& [code, n] : errors) error_count += n;
  return {{"requests", static_cast<int64_t>(records.size())},
          {"succeeded", ok},
          {"errors", error_count},
          {"errors_by_code", errors},
          {"request_throughput", per_s(static_cast<double>(ok))},
          {"output_throughput", per_s(static_cast<double>(output_tokens))},
          {"prompt_tokens", prompt_tokens},
          {"output_tokens", output_tokens},
          {"ttft_ms", Distribution(ttft)},
          {"itl_ms", Distribution(itl)},
          {"tpot_ms", Distribution(tpot)},
          {"e2e_ms", Distribution(e2e)},
          {"good_requests", good},
          {"goodput", per_s(static_cast<double>(good))},
          {"mean_k", k_weight > 0 ? k_weighted / k_weight : 0.0},
          {"expert_flops", flops},
          {"expert_flops_saved", saved},
          {"flop_savings_ratio", flops + saved > 0 ? saved / (flops + saved) : 0.0}};
}

nlohmann::json Report(const std::vector<RequestRecord>& records, const std::vector<Arm>& arms, double wall_s,
                      const Slo& slo, nlohmann::json config) {
  nlohmann::json report;
  report["config"] = std::move(config);
  report["wall_seconds"] = wall_s;
  report["overall"] = Summarize(records, wall_s, slo);
  nlohmann::json per_arm = nlohmann::json::array();
  for (size_t a = 0; a < arms.size(); ++a) {
    std::vector<RequestRecord> mine;
    for (const RequestRecord& r : records) {
      if (r.arm == a) mine.push_back(r);
    }
    nlohmann::json s = Summarize(mine, wall_s, slo);
    s["arm"] = arms[a].name;
    s["weight"] = arms[a].weight;
    per_arm.push_back(std::move(s));
  }
  report["arms"] = std::move(per_arm);
  return report;
}

std::string ReportTable(const nlohmann::json& report) {
  std::string out = absl::StrFormat("%-16s %8s %6s %9s %9s %9s %9s %9s %9s %9s %9s %9s %7s %8s\n", "arm", "requests",
                                    "errors", "req/s", "tok/s", "ttft p50", "ttft p99", "itl p50", "itl p99",
                                    "tpot p50", "e2e p99", "goodput", "mean k", "flops -");
  auto row = [&](const std::string& name, const nlohmann::json& s) {
    out += absl::StrFormat(
        "%-16s %8d %6d %9.2f %9.1f %9.1f %9.1f %9.2f %9.2f %9.2f %9.1f %9.2f %7.3f %7.1f%%\n", name,
        s["requests"].get<int64_t>(), s["errors"].get<int64_t>(), s["request_throughput"].get<double>(),
        s["output_throughput"].get<double>(), s["ttft_ms"]["p50"].get<double>(), s["ttft_ms"]["p99"].get<double>(),
        s["itl_ms"]["p50"].get<double>(), s["itl_ms"]["p99"].get<double>(), s["tpot_ms"]["p50"].get<double>(),
        s["e2e_ms"]["p99"].get<double>(), s["goodput"].get<double>(), s["mean_k"].get<double>(),
        100.0 * s["flop_savings_ratio"].get<double>());
  };
  if (report["arms"].size() > 1) {
    for (const nlohmann::json& arm : report["arms"]) row(arm["arm"].get<std::string>(), arm);
  }
  row("all", report["overall"]);
  out += absl::StrFormat("(latencies in ms; wall %.2f s; goodput = requests/s meeting the SLO)\n",
                         report["wall_seconds"].get<double>());
  for (const auto& [code, n] : report["overall"]["errors_by_code"].items()) {
    out += absl::StrFormat("errors %s: %d\n", code, n.get<int64_t>());
  }
  return out;
}

}  // namespace adak::loadtest
