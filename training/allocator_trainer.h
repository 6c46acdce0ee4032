// Training Ada-K allocators with PPO on a frozen model (docs/architecture.md, "The method the engine reproduces").
//
// Each Step draws `batch` windows of `seq_len` tokens from the training ids and runs two forwards over the
// same tokens: a rollout where every MoE layer samples each token's k from softmax(W_alloc x) (recording
// the states x and the actions), and a baseline with the model's native top-K. The reward of a token is
// log p(next token); its advantage is the rollout's minus the baseline's (no critic), shared by the token's
// decisions in every layer (RolloutMode::kJoint; kPerLayer is the lower-variance variant below). Then `ppo_epochs`
// full-batch PPO-clip updates per layer with the expected-k penalty lambda * E[k], AdamW. Deviations from the paper's
// recipe, each off by default: advantage normalisation per batch, a cosine learning-rate schedule and a linear lambda
// warm-up (allocator_policy.h). WarmStart (P-Warm) first fits the allocators by cross-entropy to the top-p pseudo label
// n(p), p chosen so the mean label equals the native K ("auto") or given. Only the allocators change. Not thread-safe;
// one trainer drives its own backend and KV cache.
#ifndef ADAK_TRAINING_ALLOCATOR_TRAINER_H_
#define ADAK_TRAINING_ALLOCATOR_TRAINER_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/device.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/model_runner.h"
#include "engine/routing_weights.h"
#include "training/allocator_policy.h"

namespace adak::training {

// How a step's rollouts are drawn and what their advantages are measured against.
//   kJoint (the paper): one rollout where every MoE layer samples its k; advantage = log p(next | sampled)
//     - log p(next | native top-K), shared by the token's decisions in all layers. Two forwards per step.
//   kPerLayer: one rollout per MoE layer l where only layer l samples and every other layer takes its
//     allocator's argmax (what inference runs); advantage = log p(next | rollout l) - log p(next | every
//     layer's argmax). A layer's decisions are then no longer credited with the other layers' random draws
//     (lower variance), and the states they see are the argmax policy's. L + 1 forwards per step (L MoE
//     layers). Rollout l samples through RoutingParams::sample_layers = {l}; the other layers take their
//     exact argmax (with an all-zero allocator, no warm start: k = 1, as the baseline).
enum class RolloutMode { kJoint, kPerLayer };
// "joint", "per-layer".
[[nodiscard]] std::string_view RolloutModeName(RolloutMode mode);
// InvalidArgument listing the accepted names.
[[nodiscard]] absl::StatusOr<RolloutMode> ParseRolloutMode(std::string_view name);

struct TrainAllocatorOptions {
  double lambda = 3e-3;
  int64_t steps = 200;
  int64_t batch = 8;
  int64_t seq_len = 128;
  double lr = 1e-3;
  double weight_decay = 0.1;
  int64_t ppo_epochs = 2;
  double clip = 0.2;
  bool warm_start = true;
  std::optional<double> warm_start_p;  // nullopt: auto (mean label == native K)
  int64_t warm_start_steps = 30;
  double warm_start_lr = 1e-2;
  uint64_t seed = 0;
  int num_threads = 0;
  engine::DeviceSpec device;  // the backend the forwards run on (engine/device.h); CPU by default
  // Beyond the recipe (the defaults are the paper's): see allocator_policy.h.
  AdvantageNorm advantage_norm = AdvantageNorm::kNone;
  LrSchedule lr_schedule = LrSchedule::kConstant;  // over `steps` PPO steps
  int64_t lambda_warmup = 0;                       // PPO steps of linear lambda warm-up; 0 = none
  RolloutMode rollout = RolloutMode::kJoint;
  // Discount of the later tokens' advantages credited to a token (DiscountWithinSegments over each
  // window, before normalisation); 0 = the paper's per-token advantage.
  double reward_gamma = 0.0;
  // Allocator format: 1 = the paper's W x; 2 = W x + U f + b over the router's sorted log probabilities
  // (engine/routing_weights.h), which can express the threshold rule exactly.
  int version = 1;
  // Version 2: start from the threshold rule at this t (W = 0) instead of zeros; the P-Warm warm start then
  // does not run.
  std::optional<double> init_threshold;
};

// InvalidArgument naming the option and its range.
[[nodiscard]] absl::Status ValidateTrainAllocatorOptions(const TrainAllocatorOptions& options,
                                                         const engine::ModelConfig& config, int64_t data_tokens);

struct TrainStepStats {
  int64_t step = 0;              // 1-based PPO step
  int64_t tokens = 0;            // scored tokens this step
  double reward = 0.0;           // mean log p(next | sampled routing) (per-layer: mean over rollouts)
  double baseline_reward = 0.0;  // mean log p(next | native top-K) (per-layer: | every layer's argmax)
  double advantage = 0.0;        // mean advantage (before any normalisation)
  double advantage_std = 0.0;    // standard deviation over the batch's tokens of the advantages fed
                                 // to PPO, before normalisation (after --reward-gamma; per-layer
                                 // rollouts: the mean over the rollouts)
  double lr = 0.0;               // learning rate and lambda this step used (after the schedules)
  double lambda = 0.0;
  double loss = 0.0;        // PPO loss (surrogate + lambda * E[k]) of the last epoch, mean over layers
  double expected_k = 0.0;  // mean over MoE layers of E_pi[k]
  double clipped_fraction = 0.0;
  std::vector<double> mean_k;    // [L] sampled mean k per layer (0 for dense layers)
  std::vector<double> greedy_k;  // [L] mean argmax k (what inference runs) on the same states, before
                                 // the update (0 for dense layers)
  double seconds = 0.0;
};

struct WarmStartStats {
  double p = 0.0;           // the top-p threshold of the labels
  double mean_label = 0.0;  // mean n(p) over the warm-start tokens and layers
  double first_loss = 0.0, last_loss = 0.0;
  int64_t steps = 0;
};

class AllocatorTrainer {
 public:
  // `data` are token ids of the training text. Errors: ValidateTrainAllocatorOptions; CreateBackend's for
  // options.device (InvalidArgument for a backend not compiled in, FailedPrecondition when it has no device
  // here); allocation.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<AllocatorTrainer>> Create(const engine::Model& model,
                                                                                std::vector<int32_t> data,
                                                                                const TrainAllocatorOptions& options);

  [[nodiscard]] absl::StatusOr<WarmStartStats> WarmStart();
  [[nodiscard]] absl::StatusOr<TrainStepStats> Step();

  // The allocators ([E * H] fp32 per MoE layer, empty for dense layers).
  [[nodiscard]] const engine::RoutingWeights& allocators() const { return weights_; }
  [[nodiscard]] int64_t steps_done() const { return step_; }

  // Writes the allocator file (format=adak-allocator, version=1, the training settings as metadata).
  [[nodiscard]] absl::Status Save(const std::filesystem::path& path,
                                  const std::map<std::string, std::string>& extra_metadata) const;
  // Checkpoint with the optimizer state and step counter; Resume restores it. Errors: file errors;
  // InvalidArgument when the checkpoint does not match the model.
  [[nodiscard]] absl::Status SaveCheckpoint(const std::filesystem::path& path) const;
  [[nodiscard]] absl::Status Resume(const std::filesystem::path& path);

 private:
  AllocatorTrainer(const engine::Model& model, std::vector<int32_t> data, const TrainAllocatorOptions& options);
  // Random windows for one step: [batch][seq_len] ids.
  std::vector<std::vector<int32_t>> SampleWindows();
  // One forward over the windows; per window, log p(next) of tokens 0..L-2 into `logp` [batch * (L-1)].
  [[nodiscard]] absl::Status Forward(const std::vector<std::vector<int32_t>>& windows,
                                     const engine::RoutingParams& routing, const engine::ForwardOptions& options,
                                     engine::ForwardResult* result, std::vector<double>* logp);
  // Splits each layer's policy into the allocator (W; version 2: U and b) and uploads it to the runner.
  [[nodiscard]] absl::Status PushAllocators();
  // Version 2: layer l's policy set to the threshold rule at t (kernels::ThresholdRuleExtras, W = 0).
  void InitThresholdRule(size_t l, double t);
  // The policy's states for layer l from the router inputs x [T, H]: x itself (version 1) or [x | f | 1]
  // [T, H + E + 1] (version 2, f = kernels::RouterFeatures of the router's probabilities).
  [[nodiscard]] std::vector<float> States(size_t l, const std::vector<float>& x) const;
  // softmax(W_router x) [T, E] of layer l, in double then rounded.
  [[nodiscard]] std::vector<float> RouterProbs(size_t l, const std::vector<float>& x) const;

  // The steps of Step: the rollouts of the step's rollout mode (states, actions, advantages per MoE layer;
  // the baseline's log p(next) into logp_base), the rewards, then one PPO update per allocator.
  struct LayerRollout;
  [[nodiscard]] absl::Status RunJointRollout(const std::vector<std::vector<int32_t>>& windows,
                                             std::vector<LayerRollout>* rollouts, std::vector<double>* logp_base,
                                             TrainStepStats* stats);
  [[nodiscard]] absl::Status RunPerLayerRollouts(const std::vector<std::vector<int32_t>>& windows,
                                                 std::vector<LayerRollout>* rollouts, std::vector<double>* logp_base,
                                                 TrainStepStats* stats);
  // Ada-K with sampled k in every layer.
  [[nodiscard]] static engine::RoutingParams SampledRouting();
  [[nodiscard]] static engine::ForwardOptions RolloutForwardOptions();
  // A rollout's advantages against the baseline, discounted and normalised as the options ask; its mean
  // reward and advantage spread added to `stats`.
  void AddAdvantages(const std::vector<double>& logp_base, const std::vector<double>& logp_roll,
                     std::vector<double>* out, TrainStepStats* stats) const;
  // Baseline reward, mean reward and advantage over the rollouts run, scored tokens.
  void SummariseRewards(const std::vector<double>& logp_base, TrainStepStats* stats) const;
  // Layer l's PPO samples (every token that has a next token); its sampled and argmax mean k into `stats`.
  [[nodiscard]] std::vector<PolicySample> PolicySamples(size_t l, const LayerRollout& r, size_t num_windows,
                                                        TrainStepStats* stats) const;
  // `ppo_epochs` PPO-clip updates of layer l's allocator; its loss, E[k] and clipped fraction added to `stats`.
  void UpdateAllocator(size_t l, const LayerRollout& r, size_t num_windows, const PpoParams& ppo,
                       TrainStepStats* stats);
  [[nodiscard]] int64_t num_allocator_layers() const;

  const engine::Model& model_;
  std::vector<int32_t> data_;
  TrainAllocatorOptions options_;
  engine::RoutingWeights weights_;
  std::unique_ptr<engine::Backend> backend_;
  std::unique_ptr<engine::KvCache> cache_;
  std::unique_ptr<engine::ModelRunner> runner_;
  std::vector<std::unique_ptr<AdamW>> optimizers_;  // per layer (null for dense layers)
  // Per layer: the policy's weights [E, state_dim_] (empty for dense layers): W, or [W | U | b] for version 2.
  std::vector<std::vector<float>> policy_;
  int64_t state_dim_ = 0;
  std::mt19937_64 rng_;
  int64_t step_ = 0;
  double warm_start_p_ = 0.0;
};

}  // namespace adak::training

#endif  // ADAK_TRAINING_ALLOCATOR_TRAINER_H_
