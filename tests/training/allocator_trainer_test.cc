// End-to-end allocator training on a tiny random model: the penalised reward improves, the warm start
// fits its labels, checkpoints resume, and the written file loads as an allocator.
#include "training/allocator_trainer.h"

#include <random>

#include "engine/routing_weights.h"
#include "engine/safetensors.h"
#include "engine/session.h"
#include "testing/make_model.h"
#include "tests/test_util.h"

namespace adak::training {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::testing::HasSubstr;

class AllocatorTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeModelParams params;
    params.arch = engine::Architecture::kMixtral;
    params.seed = 21;
    params.overrides = {{"num_hidden_layers", "2"}, {"hidden_size", "64"}, {"intermediate_size", "64"}};
    ASSERT_THAT(testing::MakeModel(params, tmp_.path() / "model"), IsOk());
    auto model = engine::LoadModel(tmp_.path() / "model");
    ASSERT_THAT(model.status(), IsOk());
    model_ = *std::move(model);
    std::mt19937 rng(4);
    for (int i = 0; i < 4000; ++i) data_.push_back(static_cast<int32_t>(rng() % 200));
    options_.batch = 4;
    options_.seq_len = 32;
    options_.num_threads = 2;
    options_.warm_start_steps = 5;
  }

  // Runs options_.steps PPO steps, checking each and every layer's sampled mean k (in [1, E]); the penalised
  // reward (advantage - lambda * E[k]) averaged over the first and the last 5 steps into first / last.
  void TrainSteps(AllocatorTrainer* trainer, double* first, double* last) {
    *first = *last = 0.0;
    for (int64_t s = 0; s < options_.steps; ++s) {
      auto stats = trainer->Step();
      ASSERT_THAT(stats.status(), IsOk());
      const double r = stats->advantage - options_.lambda * stats->expected_k;
      if (s < 5) *first += r / 5;
      if (s >= options_.steps - 5) *last += r / 5;
      for (size_t l = 0; l < stats->mean_k.size(); ++l) {
        EXPECT_GE(stats->mean_k[l], 1.0);
        EXPECT_LE(stats->mean_k[l], static_cast<double>(model_->config.num_experts));
      }
    }
  }

  ::adak::testing::TempDir tmp_;
  std::unique_ptr<engine::Model> model_;
  std::vector<int32_t> data_;
  TrainAllocatorOptions options_;
};

class AllocatorTrainerRolloutTest : public AllocatorTrainerTest, public ::testing::WithParamInterface<RolloutMode> {};

TEST_P(AllocatorTrainerRolloutTest, PenalisedRewardImproves) {
  options_.lambda = 0.05;
  options_.lr = 2e-2;
  options_.steps = 40;
  options_.rollout = GetParam();
  auto trainer = AllocatorTrainer::Create(*model_, data_, options_);
  ASSERT_THAT(trainer.status(), IsOk());
  auto warm = (*trainer)->WarmStart();
  ASSERT_THAT(warm.status(), IsOk());
  EXPECT_LT(warm->last_loss, warm->first_loss);
  EXPECT_NEAR(warm->mean_label, 2.0, 0.5) << "auto p makes the mean label the native K";
  double first = 0.0, last = 0.0;
  TrainSteps(trainer->get(), &first, &last);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_GT(last, first + 0.01) << "first " << first << " last " << last;

  const auto path = tmp_.path() / "alloc.safetensors";
  ASSERT_THAT((*trainer)->Save(path, {{"model", "tiny"}}), IsOk());
  engine::RoutingWeights loaded;
  ASSERT_THAT(LoadAllocator(path, model_->config, &loaded), IsOk());
  EXPECT_EQ(loaded.allocators[0].metadata.at("format"), "adak-allocator");
  EXPECT_EQ(loaded.allocators[0].metadata.at("lambda"), "0.05");
  EXPECT_EQ(loaded.allocators[0].metadata.at("steps"), "40");
  EXPECT_EQ(loaded.allocators[0].metadata.at("rollout"), RolloutModeName(GetParam()));
  EXPECT_EQ(loaded.allocators[0].layers, (*trainer)->allocators().allocators[0].layers);
}

INSTANTIATE_TEST_SUITE_P(Rollouts, AllocatorTrainerRolloutTest,
                         ::testing::Values(RolloutMode::kJoint, RolloutMode::kPerLayer),
                         [](const ::testing::TestParamInfo<RolloutMode>& info) {
                           return info.param == RolloutMode::kJoint ? std::string("Joint") : std::string("PerLayer");
                         });

TEST(AllocatorTrainerOptions, RolloutModeNames) {
  for (RolloutMode m : {RolloutMode::kJoint, RolloutMode::kPerLayer}) {
    auto parsed = ParseRolloutMode(RolloutModeName(m));
    ASSERT_THAT(parsed.status(), IsOk());
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_THAT(ParseRolloutMode("layerwise").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("joint or per-layer, got 'layerwise'")));
}

TEST_F(AllocatorTrainerTest, PerLayerBaselineIsTheArgmaxPolicy) {
  // Two trainers that differ only in the rollout mode draw the same windows. The joint baseline is native
  // top-K; the per-layer baseline is every layer's argmax, which for an all-zero allocator is k = 1
  // everywhere (ties go to the first action), so the two baselines differ.
  options_.steps = 1;
  options_.warm_start = false;
  auto joint = AllocatorTrainer::Create(*model_, data_, options_);
  options_.rollout = RolloutMode::kPerLayer;
  auto per_layer = AllocatorTrainer::Create(*model_, data_, options_);
  ASSERT_THAT(joint.status(), IsOk());
  ASSERT_THAT(per_layer.status(), IsOk());
  auto a = (*joint)->Step();
  auto b = (*per_layer)->Step();
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->baseline_reward, b->baseline_reward);
  for (size_t l = 0; l < b->greedy_k.size(); ++l) EXPECT_EQ(b->greedy_k[l], 1.0) << "layer " << l;
}

TEST_F(AllocatorTrainerTest, ResumesFromCheckpoint) {
  options_.steps = 6;
  options_.warm_start = false;
  auto straight = AllocatorTrainer::Create(*model_, data_, options_);
  ASSERT_THAT(straight.status(), IsOk());
  for (int i = 0; i < 6; ++i) ASSERT_THAT((*straight)->Step().status(), IsOk());

  auto first = AllocatorTrainer::Create(*model_, data_, options_);
  ASSERT_THAT(first.status(), IsOk());
  for (int i = 0; i < 3; ++i) ASSERT_THAT((*first)->Step().status(), IsOk());
  const auto ckpt = tmp_.path() / "ckpt";
  ASSERT_THAT((*first)->SaveCheckpoint(ckpt), IsOk());
  auto resumed = AllocatorTrainer::Create(*model_, data_, options_);
  ASSERT_THAT(resumed.status(), IsOk());
  ASSERT_THAT((*resumed)->Resume(ckpt), IsOk());
  EXPECT_EQ((*resumed)->steps_done(), 3);
  for (int i = 0; i < 3; ++i) ASSERT_THAT((*resumed)->Step().status(), IsOk());
  const auto& a = (*straight)->allocators().allocators[0].layers;
  const auto& b = (*resumed)->allocators().allocators[0].layers;
  ASSERT_EQ(a.size(), b.size());
  for (size_t l = 0; l < a.size(); ++l) {
    ASSERT_EQ(a[l].size(), b[l].size());
    for (size_t i = 0; i < a[l].size(); ++i) ASSERT_NEAR(a[l][i], b[l][i], 1e-4) << "layer " << l << " entry " << i;
  }
  EXPECT_THAT((*resumed)->Resume(tmp_.path() / "missing"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

TEST_F(AllocatorTrainerTest, RefusesBadOptions) {
  TrainAllocatorOptions o = options_;
  o.seq_len = 1;
  EXPECT_THAT(AllocatorTrainer::Create(*model_, data_, o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--seq-len must be in [2, ")));
  o = options_;
  o.clip = 1.5;
  EXPECT_THAT(AllocatorTrainer::Create(*model_, data_, o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--clip in (0, 1)")));
  o = options_;
  o.reward_gamma = 1.5;
  EXPECT_THAT(AllocatorTrainer::Create(*model_, data_, o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--reward-gamma must be in [0, 1], got 1.5")));
  o = options_;
  o.lambda_warmup = -1;
  EXPECT_THAT(AllocatorTrainer::Create(*model_, data_, o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--lambda-warmup must be >= 0, got -1")));
  o = options_;
  EXPECT_THAT(AllocatorTrainer::Create(*model_, std::vector<int32_t>(10, 1), o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--data has 10 tokens, fewer than --seq-len 32")));
  // The device is CreateBackend's to refuse.
  o = options_;
  o.device = {.backend = "tpu", .index = 0};
  EXPECT_THAT(AllocatorTrainer::Create(*model_, data_, o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("backend 'tpu' is not registered")));
}

TEST_F(AllocatorTrainerTest, SchedulesAndAdvantageNormalisation) {
  options_.steps = 4;
  options_.warm_start = false;
  options_.lambda = 0.04;
  options_.lr = 1e-2;
  options_.lr_schedule = LrSchedule::kCosine;
  options_.lambda_warmup = 2;
  options_.advantage_norm = AdvantageNorm::kStandardize;
  options_.reward_gamma = 0.5;
  auto trainer = AllocatorTrainer::Create(*model_, data_, options_);
  ASSERT_THAT(trainer.status(), IsOk());
  for (int64_t s = 1; s <= options_.steps; ++s) {
    auto stats = (*trainer)->Step();
    ASSERT_THAT(stats.status(), IsOk());
    EXPECT_DOUBLE_EQ(stats->lr, ScheduledLr(1e-2, LrSchedule::kCosine, s, 4)) << "step " << s;
    EXPECT_DOUBLE_EQ(stats->lambda, s == 1 ? 0.02 : 0.04) << "step " << s;
    EXPECT_GT(stats->advantage_std, 0.0);
    ASSERT_EQ(stats->greedy_k.size(), stats->mean_k.size());
    for (size_t l = 0; l < stats->greedy_k.size(); ++l) {
      EXPECT_GE(stats->greedy_k[l], 1.0);
      EXPECT_LE(stats->greedy_k[l], static_cast<double>(model_->config.num_experts));
    }
  }
  const auto path = tmp_.path() / "alloc.safetensors";
  ASSERT_THAT((*trainer)->Save(path, {}), IsOk());
  engine::RoutingWeights loaded;
  ASSERT_THAT(LoadAllocator(path, model_->config, &loaded), IsOk());
  EXPECT_EQ(loaded.allocators[0].metadata.at("advantage_norm"), "standardize");
  EXPECT_EQ(loaded.allocators[0].metadata.at("lr_schedule"), "cosine");
  EXPECT_EQ(loaded.allocators[0].metadata.at("lambda_warmup"), "2");
  EXPECT_EQ(loaded.allocators[0].metadata.at("reward_gamma"), "0.5");
}

TEST_F(AllocatorTrainerTest, GreedyKOfAZeroAllocatorIsOne) {
  // W = 0 gives a uniform policy: every action ties and the argmax takes the first (k = 1), as inference.
  options_.steps = 1;
  options_.warm_start = false;
  auto trainer = AllocatorTrainer::Create(*model_, data_, options_);
  ASSERT_THAT(trainer.status(), IsOk());
  auto stats = (*trainer)->Step();
  ASSERT_THAT(stats.status(), IsOk());
  for (size_t l = 0; l < stats->greedy_k.size(); ++l) EXPECT_EQ(stats->greedy_k[l], 1.0) << "layer " << l;
  EXPECT_EQ(stats->lr, options_.lr);
  EXPECT_EQ(stats->lambda, options_.lambda);
}

// Version 2 from the threshold rule: before any step the written allocator routes as the rule (the same k per
// token and layer through the engine); PPO then trains it, the penalised reward improving, and the file it writes
// is a version-2 allocator (W, U and b per MoE layer) that loads and routes as the trainer's.
TEST_F(AllocatorTrainerTest, VersionTwoStartsAsTheThresholdRuleAndTrains) {
  options_.version = 2;
  options_.init_threshold = 0.9;
  options_.warm_start = false;
  options_.lambda = 0.05;
  options_.lr = 2e-2;
  options_.steps = 40;
  auto trainer = AllocatorTrainer::Create(*model_, data_, options_);
  ASSERT_THAT(trainer.status(), IsOk());
  const std::vector<int32_t> tokens(data_.begin(), data_.begin() + 48);
  auto route = [&](const engine::RoutingWeights& weights, const engine::RoutingParams& routing) {
    auto session = engine::Session::Create(*model_, engine::SessionOptions{}, weights);
    EXPECT_THAT(session.status(), IsOk());
    engine::AppendOptions options;
    options.routing = routing;
    engine::AppendResult out;
    EXPECT_THAT((*session)->Append(tokens, options, &out), IsOk());
    return out.routed_k;
  };
  const auto path = tmp_.path() / "v2.safetensors";
  ASSERT_THAT((*trainer)->Save(path, {}), IsOk());
  engine::RoutingWeights rule_file;
  ASSERT_THAT(LoadAllocator(path, model_->config, &rule_file), IsOk());
  EXPECT_EQ(rule_file.allocators[0].version, 2);
  EXPECT_EQ(rule_file.allocators[0].metadata.at("version"), "2");
  const auto threshold = route({}, {.policy = engine::RoutingPolicy::kThreshold, .threshold = 0.9f});
  EXPECT_EQ(route(rule_file, {.policy = engine::RoutingPolicy::kAdaK}), threshold);
  int64_t ones = 0, twos = 0;
  for (size_t l = 0; l < threshold.size(); ++l) {
    for (int32_t k : threshold[l]) (k == 1 ? ones : twos) += 1;
  }
  EXPECT_GT(ones, 0);
  EXPECT_GT(twos, 0);

  double first = 0.0, last = 0.0;
  TrainSteps(trainer->get(), &first, &last);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_GT(last, first) << "first " << first << " last " << last;
  ASSERT_THAT((*trainer)->Save(path, {}), IsOk());
  engine::RoutingWeights trained;
  ASSERT_THAT(LoadAllocator(path, model_->config, &trained), IsOk());
  EXPECT_EQ(trained.allocators[0].router_weight, (*trainer)->allocators().allocators[0].router_weight);
  EXPECT_EQ(trained.allocators[0].bias, (*trainer)->allocators().allocators[0].bias);
  EXPECT_NE(trained.allocators[0].bias, rule_file.allocators[0].bias);
  EXPECT_EQ(route(trained, {.policy = engine::RoutingPolicy::kAdaK}),
            route((*trainer)->allocators(), {.policy = engine::RoutingPolicy::kAdaK}));

  // The options: version 1 or 2; the rule start only for version 2, t in (0, 1].
  TrainAllocatorOptions bad = options_;
  bad.version = 3;
  EXPECT_THAT(ValidateTrainAllocatorOptions(bad, model_->config, 4000),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--allocator-version must be 1 or 2")));
  bad.version = 1;
  EXPECT_THAT(ValidateTrainAllocatorOptions(bad, model_->config, 4000),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--init-threshold needs --allocator-version 2")));
}

}  // namespace
}  // namespace adak::training
