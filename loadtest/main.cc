// adak-loadtest: the load generator (loadtest/README.md). Closed loop (--concurrency) or open loop (--rate,
// Poisson or Gamma arrivals), against our gRPC API or any OpenAI-compatible /v1/completions; A/B arms in
// one run (--mix); TTFT / ITL / TPOT / E2E percentiles, throughput, goodput against --slo, errors by code,
// the server's mean k and FLOP savings; a table on stdout and a JSON report (--json FILE, "-" = stdout).
//
// Exit codes: 0 every measured request succeeded; 1 some failed (the report is still written); 2 bad usage.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "base/guarded_main.h"
#include "cli/app.h"
#include "cli/flags.h"
#include "loadtest/report.h"
#include "loadtest/runner.h"
#include "loadtest/target.h"
#include "loadtest/workload.h"
#include "nlohmann/json.hpp"

namespace {

using adak::cli::AddDouble;
using adak::cli::AddFlag;
using adak::cli::AddInt;
using adak::cli::AddString;
using adak::cli::Given;

int Usage(const std::string& message) {
  std::cerr << "adak-loadtest: " << message << "\n";
  return 2;
}

int Run(int argc, char** argv) {
  CLI::App app("adak-loadtest: a load generator for adak serve (gRPC) and any OpenAI-compatible server",
               "adak-loadtest");
  adak::cli::ConfigureApp(&app);
  adak::loadtest::TargetOptions target;
  adak::loadtest::RunOptions run;
  std::string prompts, prompt_words = "32", max_tokens = "64", mix, slo_spec, json_path, label;
  double duration_s = 0.0, timeout_s = 600.0;
  int64_t seed = 0;
  bool no_progress = false;
  AddString(&app, "api", &target.api, "grpc (adak.v1.Generation) or openai (POST /v1/completions, streamed)", "API");
  AddString(&app, "target", &target.address,
            "grpc: HOST:PORT; openai: http://HOST:PORT[/PATH] (PATH default /v1/completions)", "ADDRESS")
      ->default_str("127.0.0.1:50051 / http://127.0.0.1:8080");
  AddString(&app, "model", &target.model, "openai: the request's model field; default: omitted", "NAME");
  CLI::Option* concurrency =
      AddInt(&app, "concurrency", &run.concurrency, "closed loop: clients sending back to back", 1, 4096);
  CLI::Option* rate = AddDouble(&app, "rate", &run.rate, "open loop: requests per second (Gamma arrivals)", 1e-6, 1e6);
  AddDouble(&app, "burstiness", &run.burstiness, "open loop: Gamma shape of the gaps; 1 = Poisson, < 1 burstier", 1e-3,
            1e3);
  AddInt(&app, "max-inflight", &run.max_inflight, "open loop: requests in flight at most (client threads)", 1, 4096);
  CLI::Option* requests = AddInt(&app, "requests", &run.requests, "measured requests", 1, 1 << 24);
  CLI::Option* duration =
      AddDouble(&app, "duration", &duration_s, "seconds to send measured requests for", 0.001, 7 * 24 * 3600.0);
  AddInt(&app, "warmup", &run.warmup, "unmeasured requests sent first", 0, 1 << 20);
  AddString(&app, "prompts", &prompts, "text file whose stories become the prompts; default: generated words", "FILE");
  AddString(&app, "prompt-words", &prompt_words, "words per prompt: N or LO:HI (uniform)", "N|LO:HI");
  AddString(&app, "max-tokens", &max_tokens, "output tokens per request: N or LO:HI (uniform)", "N|LO:HI");
  AddString(&app, "mix", &mix,
            "A/B arms: NAME[=VALUE]:WEIGHT,... with NAME default, topk, adak, null, topp or threshold; "
            "default: one arm with the server's routing",
            "ARMS");
  AddString(&app, "slo", &slo_spec, "goodput bounds in ms: ttft=MS,itl=MS,tpot=MS,e2e=MS (any of them)", "SLO");
  AddDouble(&app, "temperature", &target.temperature, "sampling temperature; 0 = greedy", 0.0, 100.0);
  AddInt(&app, "seed", &seed, "seed of the prompts, lengths, arms, arrivals and sampling", 0, INT64_MAX);
  AddInt(&app, "grpc-retries", &target.grpc_retries,
         "grpc: retry a call that ends UNAVAILABLE before any response this many times (a draining replica "
         "behind a balancer); 0 = never",
         0, 4);
  AddDouble(&app, "timeout", &timeout_s, "seconds a request may take before it counts as failed", 0.001, 86400.0);
  AddString(&app, "json", &json_path, "write the JSON report to FILE (- = stdout on one line, then no table)", "FILE");
  AddString(&app, "label", &label, "name of the run in the report", "NAME");
  AddFlag(&app, "no-progress", &no_progress, "no live progress line on stderr (default: on when it is a terminal)");
  if (std::optional<int> exit_code = adak::cli::ParseOrExit(&app, argc, argv)) return *exit_code;

  if (Given(concurrency) == Given(rate)) return Usage("give exactly one of --concurrency (closed loop) and --rate");
  if (!Given(requests) && !Given(duration)) return Usage("give --requests, --duration or both");
  if (!Given(concurrency)) run.concurrency = 0;
  if (target.address.empty()) target.address = target.api == "openai" ? "http://127.0.0.1:8080" : "127.0.0.1:50051";
  if (!Given(duration)) duration_s = 0.0;
  run.duration = duration_s > 0 ? absl::Seconds(duration_s) : absl::InfiniteDuration();
  run.seed = static_cast<uint64_t>(seed);
  target.timeout = absl::Seconds(timeout_s);

  absl::StatusOr<adak::loadtest::Range> words = adak::loadtest::ParseRange(prompt_words, "prompt-words", 1);
  if (!words.ok()) return Usage(std::string(words.status().message()));
  absl::StatusOr<adak::loadtest::Range> outputs = adak::loadtest::ParseRange(max_tokens, "max-tokens", 1);
  if (!outputs.ok()) return Usage(std::string(outputs.status().message()));
  std::vector<adak::loadtest::Arm> arms;
  if (!mix.empty()) {
    absl::StatusOr<std::vector<adak::loadtest::Arm>> parsed = adak::loadtest::ParseMix(mix);
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
    arms = *std::move(parsed);
  }
  adak::loadtest::Slo slo;
  if (!slo_spec.empty()) {
    absl::StatusOr<adak::loadtest::Slo> parsed = adak::loadtest::ParseSlo(slo_spec);
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
    slo = *parsed;
  }
  absl::StatusOr<adak::loadtest::Workload> workload =
      adak::loadtest::Workload::Create(prompts, *words, *outputs, std::move(arms), run.seed);
  if (!workload.ok()) return Usage(std::string(workload.status().message()));
  absl::StatusOr<std::unique_ptr<adak::loadtest::Target>> client = adak::loadtest::MakeTarget(target);
  if (!client.ok()) {
    std::cerr << "adak-loadtest: " << client.status().message() << "\n";
    return absl::IsInvalidArgument(client.status()) ? 2 : 1;
  }
  run.progress = !no_progress && isatty(STDERR_FILENO) ? stderr : nullptr;

  const adak::loadtest::RunResult result = adak::loadtest::Run(**client, *workload, run);

  nlohmann::json config = {{"label", label},
                           {"api", target.api},
                           {"target", target.address},
                           {"mode", run.concurrency > 0 ? "closed" : "open"},
                           {"concurrency", run.concurrency},
                           {"rate", run.rate},
                           {"burstiness", run.burstiness},
                           {"requests", run.requests},
                           {"duration_s", duration_s},
                           {"warmup", run.warmup},
                           {"prompts", prompts},
                           {"prompt_words", prompt_words},
                           {"max_tokens", max_tokens},
                           {"mix", mix},
                           {"slo", slo_spec},
                           {"temperature", target.temperature},
                           {"grpc_retries", target.grpc_retries},
                           {"seed", seed}};
  nlohmann::json report =
      adak::loadtest::Report(result.records, workload->arms(), result.wall_s, slo, std::move(config));
  report["late_requests"] = result.late_requests;
  if (json_path != "-") std::cout << adak::loadtest::ReportTable(report) << std::flush;
  if (!json_path.empty()) {
    if (json_path == "-") {
      std::cout << report.dump() << "\n";  // one line: JSON lines when runs append to one file
    } else {
      std::ofstream out(json_path);
      out << report.dump(2) << "\n";
      if (!out) {
        std::cerr << "adak-loadtest: cannot write " << json_path << "\n";
        return 1;
      }
    }
  }
  const int64_t errors = report["overall"]["errors"].get<int64_t>();
  if (errors > 0) {
    for (const adak::loadtest::RequestRecord& r : result.records) {
      if (!r.ok) {
        std::cerr << "adak-loadtest: " << errors << " requests failed; first: " << r.error_code << ": "
                  << r.error_message << "\n";
        break;
      }
    }
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return adak::GuardedMain("adak-loadtest", [&] { return Run(argc, argv); });
}
