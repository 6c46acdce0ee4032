// adak-loadgen: a closed-loop load generator for adak.v1.Generation/GenerateStream.
//
// `--concurrency C` client threads each send streaming requests back to back until `--requests N` are
// done (after `--warmup W` unmeasured ones). Prompts are the first `--prompt-words` words of successive
// stories of `--prompts FILE` (separated by blank lines or `<|endoftext|>` lines), so each request differs
// (prompts repeat only when the file has fewer stories than requests). Reports generated
// tokens/s over the measured wall time, time to first token and inter-token latency percentiles (the gap
// between consecutive streamed messages, per token), and the mean k the server reported in usage.
//
//   adak-loadgen --target 127.0.0.1:50051 --prompts ../shared/data/stories/valid.txt
//       --concurrency 8 --requests 64 --max-tokens 64 --routing adak [--json]
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adak/v1/generation.grpc.pb.h"
#include "base/guarded_main.h"
#include "cli/app.h"
#include "cli/flags.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"

namespace {

struct Sample {
  std::vector<double> ttft_ms;
  std::vector<double> itl_ms;
  int64_t completion_tokens = 0;
  int64_t prompt_tokens = 0;
  double mean_k_sum = 0.0;
  int64_t requests = 0;
  int64_t errors = 0;
  std::string first_error;
};

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(rank);
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

std::vector<std::string> ReadPrompts(const std::string& path, int64_t words, int64_t count) {
  std::ifstream in(path);
  std::vector<std::string> prompts;
  std::string line, paragraph;
  auto flush = [&] {
    std::istringstream split(paragraph);
    std::string word, prompt;
    for (int64_t i = 0; i < words && split >> word; ++i) prompt += (i > 0 ? " " : "") + word;
    if (!prompt.empty()) prompts.push_back(prompt);
    paragraph.clear();
  };
  while (static_cast<int64_t>(prompts.size()) < count && std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos || line.find("<|endoftext|>") != std::string::npos) {
      flush();
    } else {
      paragraph += line + " ";
    }
  }
  if (static_cast<int64_t>(prompts.size()) < count) flush();
  return prompts;
}

int Fail(const std::string& message) {
  std::cerr << "adak-loadgen: " << message << "\n";
  return 2;
}

int Run(int argc, char** argv) {
  CLI::App app("adak-loadgen: a closed-loop load generator for adak.v1.Generation/GenerateStream", "adak-loadgen");
  adak::cli::ConfigureApp(&app);
  std::string target, prompts_path, routing, label;
  int64_t concurrency = 1, requests = 32, warmup = 0, max_tokens = 64, prompt_words = 32;
  double temperature = 0.0;
  bool json = false;
  adak::cli::AddString(&app, "target", &target, "server address HOST:PORT")->required();
  adak::cli::AddString(&app, "prompts", &prompts_path, "text file whose stories become the prompts")->required();
  adak::cli::AddInt(&app, "concurrency", &concurrency, "client threads, each sending requests back to back", 1, 1024);
  adak::cli::AddInt(&app, "requests", &requests, "measured requests", 1, 1 << 20);
  CLI::Option* warmup_option =
      adak::cli::AddInt(&app, "warmup", &warmup, "unmeasured requests first", 0, 1 << 20)->default_str("concurrency");
  adak::cli::AddInt(&app, "max-tokens", &max_tokens, "tokens per request", 1, 1 << 16);
  adak::cli::AddInt(&app, "prompt-words", &prompt_words, "words of each story used as the prompt", 1, 4096);
  adak::cli::AddString(&app, "routing", &routing,
                       "routing policy of every request (topk, adak, null, topp); "
                       "default: the server's");
  adak::cli::AddDouble(&app, "temperature", &temperature, "sampling temperature; 0 = greedy", 0.0, 100.0);
  adak::cli::AddString(&app, "label", &label, "name of this run in the report")->default_str("the routing");
  adak::cli::AddFlag(&app, "json", &json, "print one JSON object instead of the report");
  if (std::optional<int> exit_code = adak::cli::ParseOrExit(&app, argc, argv)) return *exit_code;
  if (!adak::cli::Given(warmup_option)) warmup = concurrency;
  if (label.empty()) label = routing.empty() ? "default" : routing;

  const int64_t total = warmup + requests;
  std::vector<std::string> prompts = ReadPrompts(prompts_path, prompt_words, total);
  if (prompts.empty()) return Fail("no prompts in " + prompts_path);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    return Fail("cannot connect to " + target);
  }
  auto stub = adak::v1::Generation::NewStub(channel);

  std::atomic<int64_t> next{0};
  std::mutex mu;
  Sample all;
  absl::Time measure_start = absl::InfinitePast();
  std::atomic<int64_t> done_warmup{0};
  absl::Time end = absl::InfinitePast();

  auto worker = [&] {
    Sample mine;
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= total) break;
      const bool measured = i >= warmup;
      adak::v1::GenerateRequest request;
      request.set_text(prompts[static_cast<size_t>(i) % prompts.size()]);
      request.set_max_tokens(static_cast<int32_t>(max_tokens));
      request.set_ignore_eos(true);
      request.mutable_sampling()->set_temperature(static_cast<float>(temperature));
      request.mutable_sampling()->set_seed(static_cast<uint64_t>(i));
      if (!routing.empty()) request.mutable_routing()->set_policy(routing);
      grpc::ClientContext context;
      const absl::Time sent = absl::Now();
      {
        std::lock_guard<std::mutex> lock(mu);
        if (measured && measure_start == absl::InfinitePast()) measure_start = sent;
      }
      auto reader = stub->GenerateStream(&context, request);
      adak::v1::GenerateStreamResponse message;
      absl::Time last = sent;
      bool first = true;
      std::vector<double> ttft, itl;
      int64_t tokens = 0;
      adak::v1::Usage usage;
      while (reader->Read(&message)) {
        const absl::Time now = absl::Now();
        const int n = message.token_ids_size();
        if (n > 0) {
          const double gap_ms = absl::ToDoubleMilliseconds(now - last);
          if (first) {
            ttft.push_back(gap_ms);
            first = false;
            for (int j = 1; j < n; ++j) itl.push_back(0.0);
          } else {
            for (int j = 0; j < n; ++j) itl.push_back(gap_ms / n);
          }
          last = now;
          tokens += n;
        }
        if (message.has_usage()) usage = message.usage();
      }
      grpc::Status status = reader->Finish();
      if (!measured) {
        done_warmup.fetch_add(1);
        continue;
      }
      if (!status.ok()) {
        ++mine.errors;
        if (mine.first_error.empty()) mine.first_error = status.error_message();
        continue;
      }
      ++mine.requests;
      mine.completion_tokens += tokens;
      mine.prompt_tokens += usage.prompt_tokens();
      mine.mean_k_sum += usage.mean_k();
      mine.ttft_ms.insert(mine.ttft_ms.end(), ttft.begin(), ttft.end());
      mine.itl_ms.insert(mine.itl_ms.end(), itl.begin(), itl.end());
    }
    std::lock_guard<std::mutex> lock(mu);
    end = std::max(end, absl::Now());
    all.requests += mine.requests;
    all.errors += mine.errors;
    if (all.first_error.empty()) all.first_error = mine.first_error;
    all.completion_tokens += mine.completion_tokens;
    all.prompt_tokens += mine.prompt_tokens;
    all.mean_k_sum += mine.mean_k_sum;
    all.ttft_ms.insert(all.ttft_ms.end(), mine.ttft_ms.begin(), mine.ttft_ms.end());
    all.itl_ms.insert(all.itl_ms.end(), mine.itl_ms.begin(), mine.itl_ms.end());
  };
  std::vector<std::thread> threads;
  for (int64_t t = 0; t < concurrency; ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();

  const double seconds = absl::ToDoubleSeconds(end - measure_start);
  const double tok_per_s = seconds > 0 ? static_cast<double>(all.completion_tokens) / seconds : 0.0;
  const double mean_k = all.requests > 0 ? all.mean_k_sum / static_cast<double>(all.requests) : 0.0;
  nlohmann::json out = {{"label", label},
                        {"routing", routing},
                        {"concurrency", concurrency},
                        {"requests", all.requests},
                        {"errors", all.errors},
                        {"completion_tokens", all.completion_tokens},
                        {"prompt_tokens", all.prompt_tokens},
                        {"seconds", seconds},
                        {"tokens_per_second", tok_per_s},
                        {"ttft_ms_p50", Percentile(all.ttft_ms, 50)},
                        {"ttft_ms_p99", Percentile(all.ttft_ms, 99)},
                        {"itl_ms_p50", Percentile(all.itl_ms, 50)},
                        {"itl_ms_p99", Percentile(all.itl_ms, 99)},
                        {"mean_k", mean_k}};
  if (json) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << absl::StrFormat(
        "%-8s c=%-3d requests=%d errors=%d tokens=%d in %.2fs: %.1f tok/s  TTFT p50 %.1f ms p99 %.1f ms  "
        "ITL p50 %.2f ms p99 %.2f ms  mean k %.3f\n",
        label, concurrency, all.requests, all.errors, all.completion_tokens, seconds, tok_per_s,
        out["ttft_ms_p50"].get<double>(), out["ttft_ms_p99"].get<double>(), out["itl_ms_p50"].get<double>(),
        out["itl_ms_p99"].get<double>(), mean_k);
  }
  if (all.errors > 0) {
    std::cerr << "adak-loadgen: " << all.errors << " requests failed, first: " << all.first_error << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return adak::GuardedMain("adak-loadgen", [&] { return Run(argc, argv); });
}
