#include "training/allocator_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "absl/strings/numbers.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "engine/cpu_backend.h"
#include "engine/safetensors.h"
#include "kernels/cpu/norm.h"

namespace adak::training {
namespace {

constexpr int64_t kBlockSize = 16;

// log softmax(row)[target], in double.
double LogProb(const float* row, int64_t vocab, int32_t target) {
  double mx = row[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(row[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - mx);
  return row[target] - mx - std::log(sum);
}

std::span<const std::byte> Bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const std::byte*>(v.data()), v.size() * sizeof(float)};
}

}  // namespace

absl::Status ValidateTrainAllocatorOptions(const TrainAllocatorOptions& o, const engine::ModelConfig& c,
                                           int64_t data_tokens) {
  auto bad = [](std::string_view what) { return absl::InvalidArgumentError(std::string(what)); };
  if (o.steps < 0) return bad(StrCatStd("--steps must be >= 0, got ", o.steps));
  if (o.batch < 1 || o.batch > 4096) return bad(StrCatStd("--batch must be in [1, 4096], got ", o.batch));
  if (o.seq_len < 2 || o.seq_len > c.max_position_embeddings) {
    return bad(StrCatStd("--seq-len must be in [2, ", c.max_position_embeddings, "], got ", o.seq_len));
  }
  if (data_tokens < o.seq_len) {
    return bad(StrCatStd("--data has ", data_tokens, " tokens, fewer than --seq-len ", o.seq_len));
  }
  if (!(o.lr > 0.0) || !(o.lambda >= 0.0) || !(o.clip > 0.0 && o.clip < 1.0)) {
    return bad(StrCatStd("need --lr > 0 (got ", o.lr, "), --lambda >= 0 (got ", o.lambda, "), --clip in (0, 1) (got ",
                         o.clip, ")"));
  }
  if (o.ppo_epochs < 1 || o.ppo_epochs > 100)
    return bad(StrCatStd("--ppo-epochs must be in [1, 100], got ", o.ppo_epochs));
  if (!(o.reward_gamma >= 0.0 && o.reward_gamma <= 1.0)) {
    return bad(StrCatStd("--reward-gamma must be in [0, 1], got ", o.reward_gamma));
  }
  if (o.lambda_warmup < 0) return bad(StrCatStd("--lambda-warmup must be >= 0, got ", o.lambda_warmup));
  if (o.warm_start_p && !(*o.warm_start_p > 0.0 && *o.warm_start_p <= 1.0)) {
    return bad(StrCatStd("--warm-start-p must be 'auto' or in (0, 1], got ", *o.warm_start_p));
  }
  if (o.version != 1 && o.version != 2) return bad(StrCatStd("--allocator-version must be 1 or 2, got ", o.version));
  if (o.init_threshold && (o.version != 2 || !(*o.init_threshold > 0.0 && *o.init_threshold <= 1.0))) {
    return bad(
        StrCatStd("--init-threshold needs --allocator-version 2 and a value in (0, 1], got ", *o.init_threshold));
  }
  if (c.num_moe_layers() == 0) return bad("the model has no MoE layer to train an allocator for");
  return absl::OkStatus();
}

std::string_view RolloutModeName(RolloutMode mode) { return mode == RolloutMode::kPerLayer ? "per-layer" : "joint"; }

absl::StatusOr<RolloutMode> ParseRolloutMode(std::string_view name) {
  for (RolloutMode m : {RolloutMode::kJoint, RolloutMode::kPerLayer}) {
    if (name == RolloutModeName(m)) return m;
  }
  return absl::InvalidArgumentError(StrCatStd("--rollout must be joint or per-layer, got '", name, "'"));
}

AllocatorTrainer::AllocatorTrainer(const engine::Model& model, std::vector<int32_t> data,
                                   const TrainAllocatorOptions& options)
    : model_(model), data_(std::move(data)), options_(options), rng_(options.seed) {}

absl::StatusOr<std::unique_ptr<AllocatorTrainer>> AllocatorTrainer::Create(const engine::Model& model,
                                                                           std::vector<int32_t> data,
                                                                           const TrainAllocatorOptions& options) {
  const engine::ModelConfig& c = model.config;
  RETURN_IF_ERROR(ValidateTrainAllocatorOptions(options, c, static_cast<int64_t>(data.size())));
  std::unique_ptr<AllocatorTrainer> t(new AllocatorTrainer(model, std::move(data), options));
  const int64_t e = c.num_experts, h = c.hidden_size;
  const auto layers = static_cast<size_t>(c.num_layers);
  engine::AllocatorProfile& profile = t->weights_.allocators.emplace_back();
  profile.name = "default";
  profile.version = options.version;
  profile.layers.assign(layers, {});
  if (options.version == 2) {
    profile.router_weight.assign(layers, {});
    profile.bias.assign(layers, {});
  }
  t->state_dim_ = options.version == 2 ? h + e + 1 : h;
  t->policy_.assign(layers, {});
  AdamW::Options adam;
  adam.lr = options.lr;
  adam.weight_decay = options.weight_decay;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (!c.moe_layers[static_cast<size_t>(l)]) {
      t->optimizers_.push_back(nullptr);
      continue;
    }
    const auto layer = static_cast<size_t>(l);
    profile.layers[layer].assign(static_cast<size_t>(e * h), 0.0f);  // uniform policy
    if (options.version == 2) {
      profile.router_weight[layer].assign(static_cast<size_t>(e * e), 0.0f);
      profile.bias[layer].assign(static_cast<size_t>(e), 0.0f);
    }
    t->policy_[layer].assign(static_cast<size_t>(e * t->state_dim_), 0.0f);
    if (options.init_threshold) t->InitThresholdRule(layer, *options.init_threshold);
    t->optimizers_.push_back(std::make_unique<AdamW>(t->policy_[layer].size(), adam));
  }
  ASSIGN_OR_RETURN(t->backend_,
                   engine::CreateBackend(options.device.backend, {.num_threads = options.num_threads,
                                                                  .dot_precision = kernels::DotPrecision::kFp32,
                                                                  .device_index = options.device.index}));
  const int64_t blocks = options.batch * engine::BlocksFor(options.seq_len, kBlockSize);
  ASSIGN_OR_RETURN(t->cache_, engine::KvCache::Create(t->backend_.get(), c, blocks, kBlockSize));
  ASSIGN_OR_RETURN(t->runner_,
                   engine::ModelRunner::Create(c, model.weights, t->weights_, t->backend_.get(), t->cache_.get()));
  RETURN_IF_ERROR(t->PushAllocators());
  return t;
}

std::vector<std::vector<int32_t>> AllocatorTrainer::SampleWindows() {
  // Keyed by (seed, step) so a resumed run draws the same windows.
  std::mt19937_64 rng(options_.seed * 1000003u + static_cast<uint64_t>(step_) + 1);
  const uint64_t starts = data_.size() - static_cast<size_t>(options_.seq_len) + 1;
  std::vector<std::vector<int32_t>> windows;
  for (int64_t b = 0; b < options_.batch; ++b) {
    const size_t start = static_cast<size_t>(rng() % starts);
    windows.emplace_back(data_.begin() + static_cast<std::ptrdiff_t>(start),
                         data_.begin() + static_cast<std::ptrdiff_t>(start + static_cast<size_t>(options_.seq_len)));
  }
  return windows;
}

absl::Status AllocatorTrainer::Forward(const std::vector<std::vector<int32_t>>& windows,
                                       const engine::RoutingParams& routing, const engine::ForwardOptions& options,
                                       engine::ForwardResult* result, std::vector<double>* logp) {
  const int64_t bps = engine::BlocksFor(options_.seq_len, kBlockSize);
  std::vector<std::vector<int32_t>> tables(windows.size());
  std::vector<engine::SequenceInput> batch(windows.size());
  for (size_t b = 0; b < windows.size(); ++b) {
    for (int64_t i = 0; i < bps; ++i) tables[b].push_back(static_cast<int32_t>(static_cast<int64_t>(b) * bps + i));
    batch[b].tokens = windows[b];
    batch[b].block_table = tables[b];
    batch[b].all_logits = true;
    batch[b].routing = routing;
    batch[b].routing.seed = routing.seed + b * 0x632be59bd9b4e019ull;
  }
  RETURN_IF_ERROR(runner_->Forward(batch, options, result));
  const int64_t vocab = result->vocab_size, len = options_.seq_len;
  logp->clear();
  for (size_t b = 0; b < windows.size(); ++b) {
    for (int64_t i = 0; i + 1 < len; ++i) {
      const float* row = result->logits.data() + (static_cast<int64_t>(b) * len + i) * vocab;
      logp->push_back(LogProb(row, vocab, windows[b][static_cast<size_t>(i + 1)]));
    }
  }
  return absl::OkStatus();
}

void AllocatorTrainer::InitThresholdRule(size_t l, double t) {
  const int64_t e = model_.config.num_experts, h = model_.config.hidden_size, d = state_dim_;
  std::vector<float> u(static_cast<size_t>(e * e)), b(static_cast<size_t>(e));
  kernels::ThresholdRuleExtras(e, model_.config.num_experts_per_tok, t, u.data(), b.data());
  for (int64_t a = 0; a < e; ++a) {  // the row [W = 0 | U_a | b_a]
    float* row = policy_[l].data() + a * d;
    std::copy(u.begin() + a * e, u.begin() + (a + 1) * e, row + h);
    row[h + e] = b[static_cast<size_t>(a)];
  }
}

absl::Status AllocatorTrainer::PushAllocators() {
  const int64_t e = model_.config.num_experts, h = model_.config.hidden_size, d = state_dim_;
  engine::AllocatorProfile& profile = weights_.allocators[0];
  for (size_t l = 0; l < profile.layers.size(); ++l) {
    if (profile.layers[l].empty()) continue;
    // The policy's rows are [W | U | b] (version 2) or W.
    for (int64_t a = 0; a < e; ++a) {
      const float* row = policy_[l].data() + a * d;
      std::copy(row, row + h, profile.layers[l].begin() + a * h);
      if (options_.version == 2) {
        std::copy(row + h, row + h + e, profile.router_weight[l].begin() + a * e);
        profile.bias[l][static_cast<size_t>(a)] = row[h + e];
      }
    }
    RETURN_IF_ERROR(runner_->SetAllocator(0, static_cast<int64_t>(l), profile.layers[l]));
    if (options_.version == 2) {
      RETURN_IF_ERROR(
          runner_->SetAllocatorExtras(0, static_cast<int64_t>(l), profile.router_weight[l], profile.bias[l]));
    }
  }
  return absl::OkStatus();
}

std::vector<float> AllocatorTrainer::States(size_t l, const std::vector<float>& x) const {
  if (options_.version != 2) return x;
  const int64_t e = model_.config.num_experts, h = model_.config.hidden_size, d = state_dim_;
  const int64_t t = static_cast<int64_t>(x.size()) / h;
  const std::vector<float> probs = RouterProbs(l, x);
  std::vector<float> out(static_cast<size_t>(t * d));
  for (int64_t i = 0; i < t; ++i) {
    float* row = out.data() + i * d;
    std::copy(x.begin() + i * h, x.begin() + (i + 1) * h, row);
    kernels::RouterFeatures(probs.data() + i * e, e, row + h);
    row[h + e] = 1.0f;
  }
  return out;
}

std::vector<float> AllocatorTrainer::RouterProbs(size_t l, const std::vector<float>& states) const {
  const int64_t e = model_.config.num_experts, h = model_.config.hidden_size;
  const int64_t t = static_cast<int64_t>(states.size()) / h;
  const engine::TensorView& router = model_.weights.layers[l].router;
  std::vector<float> probs(static_cast<size_t>(t * e));
  std::vector<double> z(static_cast<size_t>(e));
  for (int64_t i = 0; i < t; ++i) {
    const float* x = states.data() + i * h;
    float* p = probs.data() + i * e;
    double mx = -1e300;
    for (int64_t j = 0; j < e; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < h; ++k)
        acc += static_cast<double>(kernels::LoadAsF32(router.data, router.dtype, j * h + k)) * x[k];
      z[static_cast<size_t>(j)] = acc;
      mx = std::max(mx, acc);
    }
    double sum = 0.0;
    for (double& v : z) sum += (v = std::exp(v - mx));
    for (int64_t j = 0; j < e; ++j) p[j] = static_cast<float>(z[static_cast<size_t>(j)] / sum);
  }
  return probs;
}

absl::StatusOr<WarmStartStats> AllocatorTrainer::WarmStart() {
  const engine::ModelConfig& c = model_.config;
  const int64_t e = c.num_experts, d = state_dim_;
  WarmStartStats stats;
  AdamW::Options adam;
  adam.lr = options_.warm_start_lr;
  adam.weight_decay = 0.0;
  std::vector<std::unique_ptr<AdamW>> opt(weights_.allocators[0].layers.size());
  for (size_t l = 0; l < opt.size(); ++l) {
    if (!policy_[l].empty()) opt[l] = std::make_unique<AdamW>(policy_[l].size(), adam);
  }
  engine::ForwardOptions fopts;
  fopts.record_router_inputs = true;
  engine::ForwardResult result;
  std::vector<double> logp;
  const engine::RoutingParams native;
  for (int64_t s = 0; s < options_.warm_start_steps; ++s) {
    const auto windows = SampleWindows();
    ++step_;  // distinct windows per warm-start step; reset below
    RETURN_IF_ERROR(Forward(windows, native, fopts, &result, &logp));
    const int64_t t = static_cast<int64_t>(windows.size()) * options_.seq_len;
    // Router probabilities per layer and token, on the host from the recorded states.
    std::vector<std::vector<float>> probs(weights_.allocators[0].layers.size());
    std::vector<std::vector<float>> states(probs.size());
    for (size_t l = 0; l < probs.size(); ++l) {
      if (weights_.allocators[0].layers[l].empty()) continue;
      probs[l] = RouterProbs(l, result.router_inputs[l]);
      states[l] = States(l, result.router_inputs[l]);
    }
    if (s == 0) {
      if (options_.warm_start_p) {
        warm_start_p_ = *options_.warm_start_p;
      } else {
        std::vector<float> all;
        for (const auto& p : probs) all.insert(all.end(), p.begin(), p.end());
        warm_start_p_ = FindWarmStartP(all, e, static_cast<double>(c.num_experts_per_tok));
      }
      stats.p = warm_start_p_;
    }
    double loss = 0.0, label_sum = 0.0;
    int64_t layers = 0, labels = 0;
    for (size_t l = 0; l < probs.size(); ++l) {
      if (probs[l].empty()) continue;
      std::vector<LabeledState> samples;
      for (int64_t i = 0; i < t; ++i) {
        const int32_t label =
            TopPLabel(std::span<const float>(probs[l]).subspan(static_cast<size_t>(i * e), static_cast<size_t>(e)),
                      warm_start_p_) -
            1;
        label_sum += label + 1;
        ++labels;
        samples.push_back(
            {std::span<const float>(states[l]).subspan(static_cast<size_t>(i * d), static_cast<size_t>(d)), label});
      }
      std::vector<float> grad(policy_[l].size(), 0.0f);
      loss += CrossEntropyLossAndGradient(policy_[l], e, samples, grad);
      opt[l]->Step(policy_[l], grad);
      ++layers;
    }
    loss /= static_cast<double>(layers);
    if (s == 0) stats.first_loss = loss;
    stats.last_loss = loss;
    stats.mean_label = label_sum / static_cast<double>(labels);
    stats.steps = s + 1;
  }
  step_ = 0;
  RETURN_IF_ERROR(PushAllocators());
  return stats;
}

// One MoE layer's decisions to learn from: the states [batch * len, H], the routed k [batch * len] and the
// advantages of the scored tokens [batch * (len - 1)].
struct AllocatorTrainer::LayerRollout {
  std::vector<float> x;
  std::vector<int32_t> k;
  std::vector<double> advantage;
};

absl::StatusOr<TrainStepStats> AllocatorTrainer::Step() {
  const auto t0 = std::chrono::steady_clock::now();
  const auto windows = SampleWindows();
  ++step_;
  TrainStepStats stats;
  stats.step = step_;
  stats.mean_k.assign(static_cast<size_t>(model_.config.num_layers), 0.0);
  stats.greedy_k.assign(static_cast<size_t>(model_.config.num_layers), 0.0);
  std::vector<LayerRollout> rollouts(weights_.allocators[0].layers.size());
  std::vector<double> logp_base;
  if (options_.rollout == RolloutMode::kJoint) {
    RETURN_IF_ERROR(RunJointRollout(windows, &rollouts, &logp_base, &stats));
  } else {
    RETURN_IF_ERROR(RunPerLayerRollouts(windows, &rollouts, &logp_base, &stats));
  }
  SummariseRewards(logp_base, &stats);
  for (size_t l = 0; l < rollouts.size() && options_.version == 2; ++l) {
    if (!rollouts[l].x.empty()) rollouts[l].x = States(l, rollouts[l].x);
  }

  PpoParams ppo;
  ppo.clip = options_.clip;
  ppo.lambda = ScheduledLambda(options_.lambda, step_, options_.lambda_warmup);
  stats.lambda = ppo.lambda;
  stats.lr = ScheduledLr(options_.lr, options_.lr_schedule, step_, options_.steps);
  for (size_t l = 0; l < weights_.allocators[0].layers.size(); ++l) {
    if (!weights_.allocators[0].layers[l].empty()) UpdateAllocator(l, rollouts[l], windows.size(), ppo, &stats);
  }
  const double layers = static_cast<double>(num_allocator_layers());
  stats.loss /= layers;
  stats.expected_k /= layers;
  stats.clipped_fraction /= layers;
  RETURN_IF_ERROR(PushAllocators());
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

int64_t AllocatorTrainer::num_allocator_layers() const {
  return std::count_if(weights_.allocators[0].layers.begin(), weights_.allocators[0].layers.end(),
                       [](const std::vector<float>& a) { return !a.empty(); });
}

absl::Status AllocatorTrainer::RunJointRollout(const std::vector<std::vector<int32_t>>& windows,
                                               std::vector<LayerRollout>* rollouts, std::vector<double>* logp_base,
                                               TrainStepStats* stats) {
  // The paper: every layer samples in one rollout; the baseline is native top-K.
  engine::ForwardResult base, roll;
  std::vector<double> logp_roll;
  RETURN_IF_ERROR(Forward(windows, engine::RoutingParams{}, {}, &base, logp_base));
  engine::RoutingParams rollout = SampledRouting();
  rollout.seed = options_.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(step_);
  RETURN_IF_ERROR(Forward(windows, rollout, RolloutForwardOptions(), &roll, &logp_roll));
  std::vector<double> advantage;
  AddAdvantages(*logp_base, logp_roll, &advantage, stats);
  for (size_t l = 0; l < weights_.allocators[0].layers.size(); ++l) {
    if (!weights_.allocators[0].layers[l].empty())
      (*rollouts)[l] = {roll.router_inputs[l], roll.routed_k[l], advantage};
  }
  return absl::OkStatus();
}

absl::Status AllocatorTrainer::RunPerLayerRollouts(const std::vector<std::vector<int32_t>>& windows,
                                                   std::vector<LayerRollout>* rollouts, std::vector<double>* logp_base,
                                                   TrainStepStats* stats) {
  // One rollout per MoE layer: only that layer samples (its bit alone in the sampling mask), the others take
  // their argmax, against the baseline of every layer's argmax.
  engine::ForwardResult base, roll;
  std::vector<double> logp_roll;
  engine::RoutingParams greedy;
  greedy.policy = engine::RoutingPolicy::kAdaK;
  RETURN_IF_ERROR(Forward(windows, greedy, {}, &base, logp_base));
  engine::RoutingParams rollout = SampledRouting();
  for (size_t l = 0; l < weights_.allocators[0].layers.size(); ++l) {
    if (weights_.allocators[0].layers[l].empty()) continue;
    rollout.sample_layers.reset();
    rollout.sample_layers.set(l);
    rollout.seed = (options_.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(step_)) ^
                   (static_cast<uint64_t>(l) + 1) * 0xbf58476d1ce4e5b9ull;
    RETURN_IF_ERROR(Forward(windows, rollout, RolloutForwardOptions(), &roll, &logp_roll));
    LayerRollout& r = (*rollouts)[l];
    r.x = roll.router_inputs[l];
    r.k = roll.routed_k[l];
    AddAdvantages(*logp_base, logp_roll, &r.advantage, stats);
  }
  return absl::OkStatus();
}

engine::RoutingParams AllocatorTrainer::SampledRouting() {
  engine::RoutingParams rollout;
  rollout.policy = engine::RoutingPolicy::kAdaK;
  rollout.sample = true;
  return rollout;
}

engine::ForwardOptions AllocatorTrainer::RolloutForwardOptions() {
  engine::ForwardOptions options;
  options.record_router_inputs = true;
  return options;
}

void AllocatorTrainer::AddAdvantages(const std::vector<double>& logp_base, const std::vector<double>& logp_roll,
                                     std::vector<double>* out, TrainStepStats* stats) const {
  const size_t n = logp_base.size();
  out->resize(n);
  double reward = 0.0;
  for (size_t i = 0; i < n; ++i) {
    (*out)[i] = logp_roll[i] - logp_base[i];
    reward += logp_roll[i] / static_cast<double>(n);
  }
  stats->reward += reward;
  DiscountWithinSegments(*out, options_.seq_len - 1, options_.reward_gamma);
  stats->advantage_std += NormalizeAdvantages(*out, options_.advantage_norm).stddev;
}

void AllocatorTrainer::SummariseRewards(const std::vector<double>& logp_base, TrainStepStats* stats) const {
  const int64_t scored = static_cast<int64_t>(logp_base.size());
  for (double v : logp_base) stats->baseline_reward += v / static_cast<double>(scored);
  const double rollouts_run =
      options_.rollout == RolloutMode::kJoint ? 1.0 : static_cast<double>(num_allocator_layers());
  stats->reward /= rollouts_run;
  stats->advantage_std /= rollouts_run;
  stats->advantage = stats->reward - stats->baseline_reward;
  stats->tokens = scored;
}

std::vector<PolicySample> AllocatorTrainer::PolicySamples(size_t l, const LayerRollout& r, size_t num_windows,
                                                          TrainStepStats* stats) const {
  const int64_t e = model_.config.num_experts, h = state_dim_, len = options_.seq_len;
  const int64_t scored = stats->tokens;
  std::vector<double> logp(static_cast<size_t>(e));
  std::vector<PolicySample> samples;
  samples.reserve(static_cast<size_t>(scored));
  int64_t sampled_sum = 0, greedy_sum = 0;  // of k over the samples (exact, then one division)
  for (size_t b = 0; b < num_windows; ++b) {
    for (int64_t i = 0; i + 1 < len; ++i) {
      const int64_t t = static_cast<int64_t>(b) * len + i;
      PolicySample s;
      s.x = std::span<const float>(r.x).subspan(static_cast<size_t>(t * h), static_cast<size_t>(h));
      s.action = r.k[static_cast<size_t>(t)] - 1;
      PolicyLogProbs(policy_[l], e, s.x, logp);
      s.old_log_prob = logp[static_cast<size_t>(s.action)];
      const auto greedy = std::max_element(logp.begin(), logp.end());  // first maximum: ties go to fewer experts
      greedy_sum += greedy - logp.begin() + 1;
      s.advantage = r.advantage[static_cast<size_t>(static_cast<int64_t>(b) * (len - 1) + i)];
      sampled_sum += s.action + 1;
      samples.push_back(s);
    }
  }
  stats->mean_k[l] = static_cast<double>(sampled_sum) / static_cast<double>(scored);
  stats->greedy_k[l] = static_cast<double>(greedy_sum) / static_cast<double>(scored);
  return samples;
}

void AllocatorTrainer::UpdateAllocator(size_t l, const LayerRollout& r, size_t num_windows, const PpoParams& ppo,
                                       TrainStepStats* stats) {
  const std::vector<PolicySample> samples = PolicySamples(l, r, num_windows, stats);
  const int64_t e = model_.config.num_experts;
  PpoLoss loss;
  optimizers_[l]->set_lr(stats->lr);
  for (int64_t epoch = 0; epoch < options_.ppo_epochs; ++epoch) {
    std::vector<float> grad(policy_[l].size(), 0.0f);
    loss = PpoLossAndGradient(policy_[l], e, samples, ppo, grad);
    optimizers_[l]->Step(policy_[l], grad);
  }
  stats->loss += loss.total(ppo.lambda);
  stats->expected_k += loss.expected_k;
  stats->clipped_fraction += loss.clipped_fraction;
}

absl::Status AllocatorTrainer::Save(const std::filesystem::path& path,
                                    const std::map<std::string, std::string>& extra_metadata) const {
  const engine::ModelConfig& c = model_.config;
  std::vector<engine::TensorToWrite> tensors;
  for (size_t l = 0; l < weights_.allocators[0].layers.size(); ++l) {
    if (weights_.allocators[0].layers[l].empty()) continue;
    tensors.push_back({StrCatStd("layers.", l, ".allocator.weight"),
                       DType::kF32,
                       {c.num_experts, c.hidden_size},
                       Bytes(weights_.allocators[0].layers[l])});
    if (options_.version == 2) {
      tensors.push_back({StrCatStd("layers.", l, ".allocator.router_weight"),
                         DType::kF32,
                         {c.num_experts, c.num_experts},
                         Bytes(weights_.allocators[0].router_weight[l])});
      tensors.push_back({StrCatStd("layers.", l, ".allocator.bias"),
                         DType::kF32,
                         {c.num_experts},
                         Bytes(weights_.allocators[0].bias[l])});
    }
  }
  // Built with insert_or_assign on a fresh map (GCC 12 -O3 reports a false -Wrestrict for operator[] = "...").
  std::map<std::string, std::string> meta(extra_metadata);
  const std::pair<const char*, std::string> settings[] = {
      {"format", "adak-allocator"},
      {"version", StrCatStd(options_.version)},
      {"init_threshold", options_.init_threshold ? StrCatStd(*options_.init_threshold) : std::string("none")},
      {"lambda", StrCatStd(options_.lambda)},
      {"steps", StrCatStd(step_)},
      {"batch", StrCatStd(options_.batch)},
      {"seq_len", StrCatStd(options_.seq_len)},
      {"lr", StrCatStd(options_.lr)},
      {"weight_decay", StrCatStd(options_.weight_decay)},
      {"ppo_epochs", StrCatStd(options_.ppo_epochs)},
      {"clip", StrCatStd(options_.clip)},
      {"warm_start_p", options_.warm_start ? StrCatStd(warm_start_p_) : std::string("none")},
      {"seed", StrCatStd(options_.seed)},
      {"advantage_norm", std::string(AdvantageNormName(options_.advantage_norm))},
      {"lr_schedule", std::string(LrScheduleName(options_.lr_schedule))},
      {"lambda_warmup", StrCatStd(options_.lambda_warmup)},
      {"rollout", std::string(RolloutModeName(options_.rollout))},
      {"reward_gamma", StrCatStd(options_.reward_gamma)},
  };
  for (const auto& [key, value] : settings) meta.insert_or_assign(key, value);
  return WriteSafetensors(path, tensors, meta);
}

absl::Status AllocatorTrainer::SaveCheckpoint(const std::filesystem::path& path) const {
  const engine::ModelConfig& c = model_.config;
  std::vector<std::vector<float>> moments;
  std::vector<engine::TensorToWrite> tensors;
  moments.reserve(2 * weights_.allocators[0].layers.size());
  for (size_t l = 0; l < weights_.allocators[0].layers.size(); ++l) {
    if (weights_.allocators[0].layers[l].empty()) continue;
    const std::vector<int64_t> shape = {c.num_experts, state_dim_};
    tensors.push_back({StrCatStd("layers.", l, ".allocator.weight"), DType::kF32, shape, Bytes(policy_[l])});
    for (const char* which : {"m", "v"}) {
      const std::vector<double>& src = which[0] == 'm' ? optimizers_[l]->m() : optimizers_[l]->v();
      moments.emplace_back(src.begin(), src.end());
      tensors.push_back({StrCatStd("layers.", l, ".adam_", which), DType::kF32, shape, Bytes(moments.back())});
    }
  }
  std::map<std::string, std::string> meta = {
      {"format", "adak-allocator-checkpoint"}, {"step", StrCatStd(step_)}, {"warm_start_p", StrCatStd(warm_start_p_)}};
  return WriteSafetensors(path, tensors, meta);
}

absl::Status AllocatorTrainer::Resume(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<engine::SafetensorsFile> file, engine::SafetensorsFile::Open(path));
  const auto& meta = file->metadata();
  auto it = meta.find("step");
  int64_t step = 0;
  if (meta.find("format") == meta.end() || meta.find("format")->second != "adak-allocator-checkpoint" ||
      it == meta.end() || !absl::SimpleAtoi(it->second, &step) || step < 0) {
    return absl::InvalidArgumentError(StrCatStd(path.string(), ": not an allocator training checkpoint"));
  }
  for (size_t l = 0; l < weights_.allocators[0].layers.size(); ++l) {
    if (weights_.allocators[0].layers[l].empty()) continue;
    const std::string names[3] = {StrCatStd("layers.", l, ".allocator.weight"), StrCatStd("layers.", l, ".adam_m"),
                                  StrCatStd("layers.", l, ".adam_v")};
    for (int which = 0; which < 3; ++which) {
      const engine::TensorView* v = file->Find(names[which]);
      if (v == nullptr || v->dtype != DType::kF32 || static_cast<size_t>(v->numel()) != policy_[l].size()) {
        return absl::InvalidArgumentError(
            StrCatStd(path.string(), ": tensor '", names[which], "' is missing or does not match the model"));
      }
      const float* src = reinterpret_cast<const float*>(v->data);
      if (which == 0) {
        std::copy(src, src + v->numel(), policy_[l].begin());
      } else {
        std::vector<double>& dst = which == 1 ? optimizers_[l]->m() : optimizers_[l]->v();
        std::copy(src, src + v->numel(), dst.begin());
      }
    }
    optimizers_[l]->set_steps(step * options_.ppo_epochs);
  }
  if (auto p = meta.find("warm_start_p"); p != meta.end()) (void)absl::SimpleAtod(p->second, &warm_start_p_);
  step_ = step;
  return PushAllocators();
}

}  // namespace adak::training
