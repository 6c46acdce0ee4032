#include "server/metrics.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "engine/model_config.h"
#include "engine/model_runner.h"
#include "engine/routing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/observer.h"

namespace adak::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Two MoE layers of four experts, native top-2, and a leading dense layer.
engine::ModelConfig SmallConfig() {
  engine::ModelConfig config;
  config.num_layers = 3;
  config.num_experts = 4;
  config.num_experts_per_tok = 2;
  config.moe_layers = {false, true, true};
  return config;
}

// A step of three tokens: layer 1 routes them to {0}, {0, 1}, {0, 1, 2} (k = 1, 2, 3); layer 2 to
// {3, 2}, {3, 2}, {} (k = 2, 2, 0, a token that picked only null experts).
struct SyntheticStep {
  engine::ForwardResult forward;
  std::vector<engine::RoutingPolicy> policies = {engine::RoutingPolicy::kAdaK, engine::RoutingPolicy::kThreshold,
                                                 engine::RoutingPolicy::kTopK};
  scheduler::StepStats stats;

  SyntheticStep() {
    forward.routed_k = {{0, 0, 0}, {1, 2, 3}, {2, 2, 0}};
    forward.routed_ids = {{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
                          {0, -1, -1, -1, 0, 1, -1, -1, 0, 1, 2, -1},
                          {3, 2, -1, -1, 3, 2, -1, -1, -1, -1, -1, -1}};
    stats.num_sequences = 2;
    stats.prefill_tokens = 2;
    stats.decode_tokens = 1;
    stats.batch_tokens = 3;
    stats.duration = absl::Milliseconds(3);
    stats.forward = &forward;
    stats.token_policy = policies;
    stats.expert_flops = 600.0;  // 10 activations x 60
    stats.expert_flops_saved = 120.0;
    stats.running = 2;
    stats.waiting = 1;
    stats.kv_cache_usage = 0.25;
  }
};

TEST(Metrics, ActivatedExpertsHistogramPerMoeLayer) {
  Metrics metrics(SmallConfig());
  SyntheticStep step;
  metrics.OnStep(step.stats);
  const std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE adak_layer_activated_experts histogram\n"));
  // Layer 1: k = 1, 2, 3 -> cumulative buckets le=0:0, 1:1, 2:2, 3:3, 4:3.
  EXPECT_THAT(text, HasSubstr("adak_layer_activated_experts_bucket{layer=\"1\",le=\"0\"} 0\n"
                              "adak_layer_activated_experts_bucket{layer=\"1\",le=\"1\"} 1\n"
                              "adak_layer_activated_experts_bucket{layer=\"1\",le=\"2\"} 2\n"
                              "adak_layer_activated_experts_bucket{layer=\"1\",le=\"3\"} 3\n"
                              "adak_layer_activated_experts_bucket{layer=\"1\",le=\"4\"} 3\n"
                              "adak_layer_activated_experts_bucket{layer=\"1\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("adak_layer_activated_experts_sum{layer=\"1\"} 6\n"));
  // Layer 2: k = 2, 2, 0.
  EXPECT_THAT(text, HasSubstr("adak_layer_activated_experts_bucket{layer=\"2\",le=\"0\"} 1\n"
                              "adak_layer_activated_experts_bucket{layer=\"2\",le=\"1\"} 1\n"
                              "adak_layer_activated_experts_bucket{layer=\"2\",le=\"2\"} 3\n"));
  // The dense layer has no series.
  EXPECT_THAT(text, Not(HasSubstr("layer=\"0\"")));
  EXPECT_THAT(text, HasSubstr("adak_layer_tokens_total{layer=\"1\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("adak_layer_expert_assignments_total{layer=\"1\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("adak_layer_expert_assignments_total{layer=\"2\"} 4\n"));
}

TEST(Metrics, ValuesMoveWithEveryStep) {
  Metrics metrics(SmallConfig());
  SyntheticStep step;
  metrics.OnStep(step.stats);
  metrics.OnStep(step.stats);
  const std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("adak_layer_activated_experts_count{layer=\"1\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("adak_layer_tokens_total{layer=\"2\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("adak_expert_flops_total 1200\n"));
  EXPECT_THAT(text, HasSubstr("adak_expert_flops_saved_total 240\n"));
  // 240 / (1200 + 240).
  EXPECT_THAT(text, HasSubstr("adak_flop_savings_ratio 0.1666666666666"));
  EXPECT_THAT(text, HasSubstr("adak_routing_tokens_total{policy=\"adak\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_routing_tokens_total{policy=\"threshold\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_routing_tokens_total{policy=\"topk\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_routing_tokens_total{policy=\"null\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("adak_routing_tokens_total{policy=\"topp\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("adak_batch_tokens_count 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_batch_tokens_sum 6\n"));
  EXPECT_THAT(text, HasSubstr("adak_step_duration_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_requests_running 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_requests_waiting 1\n"));
  EXPECT_THAT(text, HasSubstr("adak_kv_cache_usage_ratio 0.25\n"));
}

TEST(Metrics, ExpertGemmRowsAndPerExpertTokens) {
  Metrics metrics(SmallConfig());
  SyntheticStep step;
  metrics.OnStep(step.stats);
  const std::string text = metrics.Serialize();
  // Layer 1 runs expert 0 on 3 rows, expert 1 on 2, expert 2 on 1: buckets le=1:1, le=2:2, le=4:3.
  EXPECT_THAT(text, HasSubstr("adak_expert_gemm_rows_bucket{layer=\"1\",le=\"1\"} 1\n"
                              "adak_expert_gemm_rows_bucket{layer=\"1\",le=\"2\"} 2\n"
                              "adak_expert_gemm_rows_bucket{layer=\"1\",le=\"4\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("adak_expert_gemm_rows_sum{layer=\"1\"} 6\n"));
  // Layer 2 runs experts 2 and 3 on 2 rows each.
  EXPECT_THAT(text, HasSubstr("adak_expert_gemm_rows_bucket{layer=\"2\",le=\"1\"} 0\n"
                              "adak_expert_gemm_rows_bucket{layer=\"2\",le=\"2\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_expert_tokens_total{expert=\"0\",layer=\"1\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("adak_expert_tokens_total{expert=\"3\",layer=\"2\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_expert_tokens_total{expert=\"0\",layer=\"2\"} 0\n"));
}

TEST(Metrics, PerExpertSeriesFollowTheCardinalityLimit) {
  engine::ModelConfig big = SmallConfig();
  big.num_layers = 32;
  big.num_experts = 64;
  big.moe_layers.assign(32, true);  // 32 x 64 = 2048 > 512
  EXPECT_THAT(Metrics(big).Serialize(), Not(HasSubstr("adak_expert_tokens_total")));
  EXPECT_THAT(Metrics(big, MetricsOptions{.per_expert = true, .allocator_profiles = {}}).Serialize(),
              HasSubstr("adak_expert_tokens_total{expert=\"63\",layer=\"31\"} 0\n"));
  EXPECT_THAT(Metrics(SmallConfig(), MetricsOptions{.per_expert = false, .allocator_profiles = {}}).Serialize(),
              Not(HasSubstr("adak_expert_tokens_total")));
  EXPECT_THAT(Metrics(SmallConfig()).Serialize(), HasSubstr("adak_expert_tokens_total{"));
}

TEST(Metrics, NegativeSavingsLowerTheRatioButNotTheCounter) {
  Metrics metrics(SmallConfig());
  SyntheticStep step;
  step.stats.expert_flops = 800.0;
  step.stats.expert_flops_saved = -200.0;  // a policy ran more experts than native top-K
  metrics.OnStep(step.stats);
  const std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("adak_expert_flops_saved_total 0\n"));
  EXPECT_THAT(text, HasSubstr("adak_flop_savings_ratio -0.3333333333333"));
}

TEST(Metrics, RequestsLatenciesAndErrors) {
  Metrics metrics(SmallConfig());
  metrics.OnFirstToken(absl::Milliseconds(30));
  metrics.OnInterToken(absl::Milliseconds(4));
  metrics.OnInterToken(absl::Milliseconds(6));
  scheduler::RequestStats done;
  done.reason = scheduler::FinishReason::kStop;
  done.prompt_tokens = 7;
  done.generation_tokens = 5;
  done.queue_time = absl::Milliseconds(2);
  done.e2e = absl::Milliseconds(80);
  metrics.OnRequestFinished(done);
  scheduler::RequestStats cancelled = done;
  cancelled.reason = scheduler::FinishReason::kCancelled;
  cancelled.code = absl::StatusCode::kCancelled;
  metrics.OnRequestFinished(cancelled);
  metrics.RecordRejected(absl::StatusCode::kInvalidArgument);
  metrics.RecordRejected(absl::StatusCode::kInvalidArgument);
  metrics.RecordRejected(absl::StatusCode::kResourceExhausted);
  const std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("adak_requests_total{finished_reason=\"stop\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("adak_requests_total{finished_reason=\"cancelled\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("adak_requests_total{finished_reason=\"length\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("adak_request_errors_total{code=\"invalid_argument\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_request_errors_total{code=\"resource_exhausted\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("adak_request_errors_total{code=\"cancelled\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("adak_prompt_tokens_total 14\n"));
  EXPECT_THAT(text, HasSubstr("adak_generation_tokens_total 10\n"));
  EXPECT_THAT(text, HasSubstr("adak_time_to_first_token_seconds_bucket{le=\"0.02\"} 0\n"
                              "adak_time_to_first_token_seconds_bucket{le=\"0.04\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("adak_inter_token_latency_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_inter_token_latency_seconds_bucket{le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("adak_e2e_request_latency_seconds_bucket{le=\"0.05\"} 0\n"
                              "adak_e2e_request_latency_seconds_bucket{le=\"0.1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_request_queue_time_seconds_count 2\n"));
}

TEST(Metrics, EveryArchitectureMetricIsExposed) {
  const std::string text = Metrics(SmallConfig()).Serialize();
  for (const char* name : {"adak_requests_running",
                           "adak_requests_waiting",
                           "adak_kv_cache_usage_ratio",
                           "adak_requests_total",
                           "adak_request_errors_total",
                           "adak_prompt_tokens_total",
                           "adak_generation_tokens_total",
                           "adak_time_to_first_token_seconds",
                           "adak_inter_token_latency_seconds",
                           "adak_e2e_request_latency_seconds",
                           "adak_request_queue_time_seconds",
                           "adak_batch_tokens",
                           "adak_step_duration_seconds",
                           "adak_preemptions_total",
                           "adak_layer_activated_experts",
                           "adak_layer_tokens_total",
                           "adak_layer_expert_assignments_total",
                           "adak_expert_tokens_total",
                           "adak_expert_flops_total",
                           "adak_expert_flops_saved_total",
                           "adak_flop_savings_ratio",
                           "adak_expert_gemm_rows",
                           "adak_routing_tokens_total"}) {
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + name + " ")) << name;
  }
}

TEST(Metrics, SchedulerGaugesAndPreemptions) {
  Metrics metrics(SmallConfig());
  SyntheticStep step;
  step.stats.preempted = 2;
  step.stats.forward = nullptr;  // a step without routing records only the serving series
  metrics.OnStep(step.stats);
  metrics.SetSchedulerGauges(5, 0, 0.5);
  const std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("adak_preemptions_total 2\n"));
  EXPECT_THAT(text, HasSubstr("adak_requests_running 5\n"));
  EXPECT_THAT(text, HasSubstr("adak_requests_waiting 0\n"));
  EXPECT_THAT(text, HasSubstr("adak_kv_cache_usage_ratio 0.5\n"));
  EXPECT_THAT(text, HasSubstr("adak_layer_tokens_total{layer=\"1\"} 0\n"));
}

}  // namespace
}  // namespace adak::server
