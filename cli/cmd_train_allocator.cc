// `adak train-allocator`: PPO training of Ada-K allocators on a frozen model (training/allocator_trainer.h).
//
// Progress goes to stderr (one rewritten line: step, reward, advantage, mean k per layer, tok/s, ETA), every
// step to a JSON-lines log (--log, default OUT.log.jsonl), a resumable checkpoint to OUT.ckpt every 25 steps
// and at the end (--resume continues from it), and the allocator file to --out.
//
// The defaults are the paper's recipe; `adak train-allocator --help` lists every option with its meaning
// and default (the options beyond the recipe: training/allocator_policy.h, measured in docs/results.md).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <cmath>
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"

#include "cli/commands.h"
#include "cli/flags.h"
#include "nlohmann/json.hpp"
#include "training/allocator_trainer.h"

namespace adak::cli {
namespace {

constexpr int64_t kCheckpointEvery = 25;

std::string Duration(double seconds) {
  const int64_t s = std::llround(seconds);
  return s >= 3600 ? absl::StrFormat("%dh%02dm", s / 3600, s / 60 % 60) : absl::StrFormat("%dm%02ds", s / 60, s % 60);
}

struct TrainFlags {
  std::string model;
  std::string data;
  std::string out;
  training::TrainAllocatorOptions options;
  std::string warm_start_p = "auto";
  std::string log;
  bool resume = false;
  std::string advantage_norm = "none";
  std::string lr_schedule = "constant";
  std::string rollout = "joint";
  std::string device = "cpu";
  int64_t seed = 0;
  double init_threshold = 0.0;
  CLI::Option* init_threshold_option = nullptr;
};

absl::Status Train(const TrainFlags& flags) {
  const std::string& dir = flags.model;
  const std::string& data_path = flags.data;
  const std::string& out = flags.out;
  training::TrainAllocatorOptions o = flags.options;
  o.seed = static_cast<uint64_t>(flags.seed);
  ASSIGN_OR_RETURN(o.advantage_norm, training::ParseAdvantageNorm(flags.advantage_norm));
  ASSIGN_OR_RETURN(o.lr_schedule, training::ParseLrSchedule(flags.lr_schedule));
  ASSIGN_OR_RETURN(o.rollout, training::ParseRolloutMode(flags.rollout));
  ASSIGN_OR_RETURN(o.device, ParseDeviceFlag(flags.device));
  const std::string& warm = flags.warm_start_p;
  if (warm == "none") {
    o.warm_start = false;
  } else if (warm != "auto") {
    double p = 0.0;
    if (!absl::SimpleAtod(warm, &p) || !(p > 0.0 && p <= 1.0)) {
      return absl::InvalidArgumentError(
          StrCatStd("--warm-start-p must be auto, none or a number in (0, 1], got '", warm, "'"));
    }
    o.warm_start_p = p;
  }
  if (Given(flags.init_threshold_option)) {
    if (o.version != 2) return absl::InvalidArgumentError("--init-threshold needs --allocator-version 2");
    o.init_threshold = flags.init_threshold;
    o.warm_start = false;  // the rule is the start
  }
  const std::string log_path = flags.log.empty() ? out + ".log.jsonl" : flags.log;
  const std::string ckpt_path = out + ".ckpt";

  ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model, engine::LoadModel(dir));
  std::string text;
  RETURN_IF_ERROR(ReadDataFile(data_path, &text));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, model->tokenizer->Encode(text, /*add_special_tokens=*/false));
  const int64_t data_tokens = static_cast<int64_t>(ids.size());
  ASSIGN_OR_RETURN(auto trainer, training::AllocatorTrainer::Create(*model, std::move(ids), o));

  const bool resume = flags.resume && std::filesystem::exists(ckpt_path);
  std::ofstream log(log_path, resume ? std::ios::app : std::ios::trunc);
  if (!log) return absl::InternalError(StrCatStd("cannot write --log ", log_path));
  const auto t_start = std::chrono::steady_clock::now();
  if (resume) {
    RETURN_IF_ERROR(trainer->Resume(ckpt_path));
    std::fprintf(stderr, "resumed from %s at step %lld\n", ckpt_path.c_str(),
                 static_cast<long long>(trainer->steps_done()));
  } else if (o.warm_start && o.warm_start_steps > 0) {
    ASSIGN_OR_RETURN(training::WarmStartStats w, trainer->WarmStart());
    std::fprintf(stderr, "warm start: p=%.4f mean label %.3f, cross-entropy %.4f -> %.4f over %lld steps\n", w.p,
                 w.mean_label, w.first_loss, w.last_loss, static_cast<long long>(w.steps));
    log << nlohmann::json{{"warm_start",
                           {{"p", w.p},
                            {"mean_label", w.mean_label},
                            {"first_loss", w.first_loss},
                            {"last_loss", w.last_loss},
                            {"steps", w.steps}}}}
               .dump()
        << "\n";
  }
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  int64_t tokens_total = 0, steps_here = 0;
  double train_seconds = 0.0;
  while (trainer->steps_done() < o.steps) {
    ASSIGN_OR_RETURN(training::TrainStepStats s, trainer->Step());
    // Baseline + rollout forwards (per-layer: one rollout per MoE layer).
    const int64_t forwards = o.rollout == training::RolloutMode::kJoint ? 2 : 1 + model->config.num_moe_layers();
    tokens_total += forwards * o.batch * o.seq_len;
    train_seconds += s.seconds;
    std::string ks, gks;
    for (size_t l = 0; l < s.mean_k.size(); ++l) {
      if (!model->config.moe_layers[l]) continue;
      ks += absl::StrFormat("%s%.2f", ks.empty() ? "" : " ", s.mean_k[l]);
      gks += absl::StrFormat("%s%.2f", gks.empty() ? "" : " ", s.greedy_k[l]);
    }
    const double tok_s = static_cast<double>(tokens_total) / std::max(1e-9, train_seconds);
    ++steps_here;
    const double eta = static_cast<double>(o.steps - s.step) * train_seconds / static_cast<double>(steps_here);
    std::fprintf(stderr,
                 "%s[step %lld/%lld] reward %.4f adv %+.4f E[k] %.3f mean k [%s] argmax k [%s] %.0f tok/s ETA %s%s",
                 tty ? "\r" : "", static_cast<long long>(s.step), static_cast<long long>(o.steps), s.reward,
                 s.advantage, s.expected_k, ks.c_str(), gks.c_str(), tok_s, Duration(eta).c_str(), tty ? "   " : "\n");
    log << nlohmann::json{{"step", s.step},
                          {"reward", s.reward},
                          {"baseline_reward", s.baseline_reward},
                          {"advantage", s.advantage},
                          {"loss", s.loss},
                          {"expected_k", s.expected_k},
                          {"clipped_fraction", s.clipped_fraction},
                          {"mean_k", s.mean_k},
                          {"greedy_k", s.greedy_k},
                          {"advantage_std", s.advantage_std},
                          {"lr", s.lr},
                          {"lambda", s.lambda},
                          {"tokens", s.tokens},
                          {"seconds", s.seconds}}
               .dump()
        << "\n";
    log.flush();
    if (s.step % kCheckpointEvery == 0 || s.step == o.steps) RETURN_IF_ERROR(trainer->SaveCheckpoint(ckpt_path));
  }
  if (tty) std::fputc('\n', stderr);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  RETURN_IF_ERROR(trainer->Save(out, {{"model", std::filesystem::path(dir).filename().string()},
                                      {"data", std::filesystem::path(data_path).filename().string()},
                                      {"data_tokens", StrCatStd(data_tokens)},
                                      {"train_seconds", absl::StrFormat("%.1f", wall)}}));
  std::printf("wrote %s (%lld steps, %lld forward tokens, %.1f s)\n", out.c_str(),
              static_cast<long long>(trainer->steps_done()), static_cast<long long>(tokens_total), wall);
  return absl::OkStatus();
}

}  // namespace

CommandFn SetUpTrainAllocator(CLI::App* command) {
  command->description("train Ada-K allocators with PPO on a frozen model and write them to --out");
  auto flags = std::make_shared<TrainFlags>();
  training::TrainAllocatorOptions& o = flags->options;
  AddString(command, "model", &flags->model, "Hugging Face model directory (frozen)", "DIR")->required();
  AddString(command, "data", &flags->data, "training text file", "FILE")->required();
  AddString(command, "out", &flags->out, "allocator safetensors file to write (checkpoint: OUT.ckpt)", "FILE")
      ->required();
  AddDouble(command, "lambda", &o.lambda, "weight of the expected-k penalty", 0.0, 100.0);
  AddInt(command, "steps", &o.steps, "PPO steps", 0, 10'000'000);
  AddInt(command, "batch", &o.batch, "windows per step", 1, 4096);
  AddInt(command, "seq-len", &o.seq_len, "tokens per window", 2, 1 << 20);
  AddDouble(command, "lr", &o.lr, "AdamW learning rate", 1e-9, 10.0);
  AddInt(command, "ppo-epochs", &o.ppo_epochs, "PPO epochs per batch", 1, 100);
  AddDouble(command, "clip", &o.clip, "PPO clip range", 1e-6, 0.999);
  AddString(command, "warm-start-p", &flags->warm_start_p,
            "top-p of the warm start's pseudo-labels: auto (mean label = native K), none (no warm start) or P "
            "in (0, 1]");
  AddInt(command, "warm-start-steps", &o.warm_start_steps, "cross-entropy warm-start steps", 0, 1'000'000);
  AddInt(command, "seed", &flags->seed, "sampling and data-order seed", 0, kNoMax);
  AddString(command, "log", &flags->log, "JSON-lines log of every step", "FILE")->default_str("OUT.log.jsonl");
  AddFlag(command, "resume", &flags->resume, "continue from OUT.ckpt when it exists");
  AddInt(command, "threads", &o.num_threads, "engine worker threads; 0 = all hardware threads", 0, 1024);
  AddString(command, "device", &flags->device, "compute backend: cpu, cuda (the first GPU) or cuda:N (GPU N)",
            "DEVICE");
  AddString(command, "advantage-norm", &flags->advantage_norm,
            "per-batch transform of the advantages: none, center or standardize");
  AddString(command, "lr-schedule", &flags->lr_schedule, "constant, or cosine (decays --lr to 0 over --steps)");
  AddInt(command, "lambda-warmup", &o.lambda_warmup, "PPO steps over which lambda rises linearly; 0 = none", 0,
         10'000'000);
  AddString(command, "rollout", &flags->rollout,
            "joint, or per-layer (one rollout per MoE layer, the other layers at their argmax)");
  AddDouble(command, "reward-gamma", &o.reward_gamma,
            "also credit a token with the later tokens' advantages in its window, discounted by G; 0 = its own only",
            0.0, 1.0);
  AddInt(command, "allocator-version", &o.version,
         "1: the paper's allocator (W x); 2: W x + U f + b over the router's sorted log probabilities "
         "(engine/routing_weights.h)",
         1, 2);
  flags->init_threshold_option =
      AddDouble(command, "init-threshold", &flags->init_threshold,
                "--allocator-version 2: start from the threshold rule at T (no P-Warm warm start)", 1e-6, 1.0);
  return [flags] { return Train(*flags); };
}

}  // namespace adak::cli
