// `adak generate`: continue a prompt, streaming the text to stdout; stats on stderr. The request runs
// through the serving path in-process (engine stack + scheduler::Scheduler, as `adak serve` builds them), so
// the command prints exactly what the server returns for the same prompt and sampling params.
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "scheduler/executor.h"
#include "scheduler/request.h"
#include "scheduler/scheduler.h"

namespace adak::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  std::string prompt;
  int64_t max_tokens = 64;
  double temperature = 0.0;
  int64_t seed = 0;
  int64_t sample_top_k = 0;
  double sample_top_p = 1.0;
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  bool ignore_eos = false;
  CLI::Option* seed_option = nullptr;
};

// Streams each token's text to stdout as the scheduler thread reports it, and notes when the first
// token came (the end of the prefill) and when the request finished.
class StdoutSink final : public scheduler::RequestSink {
 public:
  void OnTokens(std::vector<scheduler::TokenOutput> tokens) override {
    {
      absl::MutexLock lock(&mu_);
      if (first_token_ == absl::InfiniteFuture()) first_token_ = absl::Now();
    }
    for (const scheduler::TokenOutput& token : tokens) std::fwrite(token.text.data(), 1, token.text.size(), stdout);
    std::fflush(stdout);
  }
  void OnFinish(scheduler::FinalOutput final) override {
    absl::MutexLock lock(&mu_);
    final_ = std::move(final);
    finished_ = absl::Now();
    done_.Notify();
  }

  struct Result {
    scheduler::FinalOutput final;
    absl::Time first_token;
    absl::Time finished;
  };
  [[nodiscard]] Result Wait() {
    done_.WaitForNotification();
    absl::MutexLock lock(&mu_);
    return {std::move(final_), first_token_ == absl::InfiniteFuture() ? finished_ : first_token_, finished_};
  }

 private:
  absl::Notification done_;
  absl::Mutex mu_;
  scheduler::FinalOutput final_ ABSL_GUARDED_BY(mu_);
  absl::Time first_token_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time finished_ ABSL_GUARDED_BY(mu_);
};

// "mean_k=... expert_activations=... expert_flops=... savings=..%" of a request's usage.
std::string UsageSummary(const scheduler::Usage& u, const engine::ModelConfig& config) {
  double k_sum = 0.0;
  for (size_t l = 0; l < u.mean_k_per_layer.size(); ++l) {
    if (config.moe_layers[l]) k_sum += u.mean_k_per_layer[l];
  }
  const int64_t moe_layers = config.num_moe_layers();
  const double native = u.expert_flops + u.expert_flops_saved;
  return absl::StrFormat(
      "mean_k=%.4f expert_activations=%d expert_flops=%.0f expert_flops_native=%.0f "
      "expert_flops_saved=%.0f savings=%.2f%%",
      moe_layers > 0 ? k_sum / static_cast<double>(moe_layers) : 0.0, u.expert_activations, u.expert_flops, native,
      u.expert_flops_saved, native > 0.0 ? 100.0 * u.expert_flops_saved / native : 0.0);
}

// One request through the same engine stack and scheduler `adak serve` runs (server/server_app.cc), sized
// for one full-context sequence, so `adak generate` and the server cannot drift apart.
absl::Status Generate(const GenerateFlags& flags) {
  const std::string& prompt = flags.prompt;
  ASSIGN_OR_RETURN(LoadedModel m, LoadModelAndRouting(flags.model));
  const engine::ModelConfig& config = m.model->config;
  scheduler::GenerationRequest request;
  ASSIGN_OR_RETURN(request.prompt_ids, m.model->tokenizer->Encode(prompt));
  request.max_tokens = flags.max_tokens;
  request.sampling.top_k = flags.sample_top_k;
  request.sampling.temperature = static_cast<float>(flags.temperature);
  request.sampling.top_p = static_cast<float>(flags.sample_top_p);
  request.sampling.min_p = static_cast<float>(flags.min_p);
  request.sampling.repetition_penalty = static_cast<float>(flags.repetition_penalty);
  if (Given(flags.seed_option)) request.sampling.seed = static_cast<uint64_t>(flags.seed);
  request.ignore_eos = flags.ignore_eos;
  request.routing = m.routing;
  request.return_routing_stats = true;

  constexpr int64_t kBlockSize = 16;
  ASSIGN_OR_RETURN(const DType kv_dtype, KvCacheDType(flags.model));
  ASSIGN_OR_RETURN(const kernels::DotPrecision dot_precision, MatMulPrecision(flags.model));
  ASSIGN_OR_RETURN(const engine::DeviceSpec device, ParseDeviceFlag(flags.model.device));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Backend> backend,
                   engine::CreateBackend(device.backend, {.num_threads = flags.model.threads,
                                                          .dot_precision = dot_precision,
                                                          .device_index = device.index}));
  ASSIGN_OR_RETURN(
      std::unique_ptr<engine::KvCache> cache,
      engine::KvCache::Create(backend.get(), config, engine::BlocksFor(config.max_position_embeddings, kBlockSize),
                              kBlockSize, kv_dtype));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::ModelRunner> runner,
                   engine::ModelRunner::Create(config, m.model->weights, m.weights, backend.get(), cache.get()));
  std::unique_ptr<scheduler::StepExecutor> executor = scheduler::MakeRunnerExecutor(runner.get());
  scheduler::SchedulerOptions options;
  options.max_running_requests = 1;
  options.max_waiting_requests = 1;
  ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Scheduler> scheduler,
                   scheduler::Scheduler::Create(executor.get(), m.model->tokenizer.get(), options,
                                                scheduler::RealClock::Get(), /*observer=*/nullptr));
  auto sink = std::make_shared<StdoutSink>();
  // Queued before the step thread starts: a refused request (prompt + max_tokens over the context length,
  // bad sampling params) prints nothing, and no token is written before the prompt.
  const absl::Time submitted = absl::Now();
  RETURN_IF_ERROR(scheduler->Submit(std::move(request), sink).status());
  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);
  scheduler->Start();
  StdoutSink::Result r = sink->Wait();
  scheduler->Shutdown();
  std::fputc('\n', stdout);
  RETURN_IF_ERROR(r.final.status);
  const scheduler::Usage& u = r.final.usage;
  // A stop token is counted in completion_tokens but adds no text; generated_tokens counts the text's tokens.
  const int64_t generated = u.completion_tokens - (r.final.stop_token.has_value() ? 1 : 0);
  const double prefill_s = absl::ToDoubleSeconds(r.first_token - submitted);
  const double decode_s = absl::ToDoubleSeconds(r.finished - r.first_token);
  std::fprintf(
      stderr, "%s",
      absl::StrFormat(
          "[stats] prompt_tokens=%d generated_tokens=%d finish_reason=%s prefill_tok_s=%.1f "
          "decode_tok_s=%.1f total_s=%.3f routing=%s %s\n",
          u.prompt_tokens, generated, scheduler::FinishReasonName(r.final.reason),
          prefill_s > 0 ? static_cast<double>(u.prompt_tokens) / prefill_s : 0.0,
          u.completion_tokens > 1 && decode_s > 0 ? static_cast<double>(u.completion_tokens - 1) / decode_s : 0.0,
          prefill_s + decode_s, engine::RoutingPolicyName(m.routing.policy), UsageSummary(u, config))
          .c_str());
  return absl::OkStatus();
}

}  // namespace

CommandFn SetUpGenerate(CLI::App* command) {
  command->description("continue a prompt, streaming the text to stdout (stats on stderr)");
  auto flags = std::make_shared<GenerateFlags>();
  flags->model.kv_cache_dtype = "bf16";    // as `adak serve`
  flags->model.matmul_precision = "bf16";  // as `adak serve`
  AddModelFlags(command, &flags->model);
  AddString(command, "prompt", &flags->prompt, "text to continue")->required();
  AddInt(command, "max-tokens", &flags->max_tokens, "new tokens at most", 1, 1 << 20);
  AddDouble(command, "temperature", &flags->temperature, "sampling temperature; 0 = greedy", 0.0, 100.0);
  flags->seed_option = AddInt(command, "seed", &flags->seed, "sampling seed", 0, kNoMax)->default_str("random");
  AddInt(command, "sample-top-k", &flags->sample_top_k, "sample from the K most likely tokens; 0 = all", 0, 1 << 30);
  AddDouble(command, "sample-top-p", &flags->sample_top_p, "nucleus sampling threshold", 1e-9, 1.0);
  AddDouble(command, "min-p", &flags->min_p, "drop tokens below min-p x the top probability", 0.0, 1.0);
  AddDouble(command, "repetition-penalty", &flags->repetition_penalty, "penalty on tokens already in the context", 1e-6,
            100.0);
  AddFlag(command, "ignore-eos", &flags->ignore_eos, "keep generating past the end-of-sequence token");
  return [flags] { return Generate(*flags); };
}

}  // namespace adak::cli
