// FLOP accounting (engine/flops.h) against numbers computed by hand for a small config with a dense layer, a
// gated shared expert and GQA attention.
#include "engine/flops.h"

#include <vector>

#include "engine/model_config.h"
#include "gtest/gtest.h"

namespace adak::engine {
namespace {

// H 16, 4 query heads and 2 KV heads of dim 4 (q_dim 16, kv_dim 8), V 100, three layers: dense (I_dense 24),
// then two MoE layers (E 8, native K 2, I 6, shared expert I_s 10 with a sigmoid gate).
ModelConfig SmallConfig() {
  ModelConfig c;
  c.vocab_size = 100;
  c.hidden_size = 16;
  c.num_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 6;
  c.num_shared_experts = 1;
  c.shared_expert_intermediate_size = 10;
  c.shared_expert_gate = true;
  c.intermediate_size = 24;
  c.moe_layers = {false, true, true};
  return c;
}

TEST(Flops, PerActivationAndLmHead) {
  const ModelConfig c = SmallConfig();
  EXPECT_EQ(ExpertActivationFlops(c), 576);  // 3 * 2 * 16 * 6
  EXPECT_EQ(LmHeadFlops(c), 3200);           // 2 * 16 * 100
}

TEST(Flops, DenseLayerCountsAttentionAndTheMlpOnly) {
  const ModelConfig c = SmallConfig();
  const LayerFlops f = TokenLayerFlops(c, 0, /*k=*/5, /*position=*/0, /*allocator=*/true);
  // Projections 2*16*(16 + 2*8) + 2*16*16 = 1536, scores and values 2*2*16*1 = 64.
  EXPECT_EQ(f.attention, 1600);
  EXPECT_EQ(f.dense_mlp, 2304);  // 3 * 2 * 16 * 24
  EXPECT_EQ(f.router, 0);
  EXPECT_EQ(f.allocator, 0);
  EXPECT_EQ(f.routed_experts, 0);
  EXPECT_EQ(f.shared_experts, 0);
  EXPECT_EQ(f.total(), 3904);
}

TEST(Flops, MoeLayerWithAllocatorAndGatedSharedExpert) {
  const ModelConfig c = SmallConfig();
  const LayerFlops f = TokenLayerFlops(c, 1, /*k=*/3, /*position=*/9, /*allocator=*/true);
  EXPECT_EQ(f.attention, 2176);       // 1536 + 2*2*16*10
  EXPECT_EQ(f.router, 256);           // 2 * 8 * 16
  EXPECT_EQ(f.allocator, 256);        // 2 * 8 * 16
  EXPECT_EQ(f.routed_experts, 1728);  // 3 * 576
  EXPECT_EQ(f.shared_experts, 992);   // 3*2*16*10 + 2*16 (gate)
  EXPECT_EQ(f.dense_mlp, 0);
  EXPECT_EQ(f.total(), 5408);
}

TEST(Flops, MoeLayerWithoutAllocatorAndNoExpertsRun) {
  ModelConfig c = SmallConfig();
  c.shared_expert_gate = false;
  const LayerFlops f = TokenLayerFlops(c, 2, /*k=*/0, /*position=*/0, /*allocator=*/false);
  EXPECT_EQ(f.allocator, 0);
  EXPECT_EQ(f.routed_experts, 0);
  EXPECT_EQ(f.shared_experts, 960);  // no gate term
  EXPECT_EQ(f.total(), 1600 + 256 + 960);
}

TEST(FlopCounter, SumsMoeLayersOnlyAndComparesWithNativeTopK) {
  const ModelConfig c = SmallConfig();
  FlopCounter counter(c);
  EXPECT_EQ(counter.savings_ratio(), 0.0);
  EXPECT_EQ(counter.mean_k(), 0.0);
  // Two tokens; the dense layer's entries are ignored.
  counter.Add({{5, 5}, {1, 3}, {2, 0}});
  EXPECT_EQ(counter.tokens(), 2);
  EXPECT_EQ(counter.layer_sum_k(), (std::vector<int64_t>{0, 4, 2}));
  EXPECT_DOUBLE_EQ(counter.mean_k(0), 0.0);
  EXPECT_DOUBLE_EQ(counter.mean_k(1), 2.0);
  EXPECT_DOUBLE_EQ(counter.mean_k(2), 1.0);
  EXPECT_DOUBLE_EQ(counter.mean_k(), 1.5);  // 6 activations / (2 tokens * 2 MoE layers)
  EXPECT_EQ(counter.expert_activations(), 6);
  EXPECT_EQ(counter.native_expert_activations(), 8);  // 2 tokens * 2 layers * K 2
  EXPECT_EQ(counter.expert_flops(), 3456);            // 6 * 576
  EXPECT_EQ(counter.native_expert_flops(), 4608);     // 8 * 576
  EXPECT_EQ(counter.expert_flops_saved(), 1152);
  EXPECT_DOUBLE_EQ(counter.savings_ratio(), 0.25);

  // A third token that runs 4 experts per layer: more than native, so the savings turn negative.
  counter.Add({{0}, {4}, {4}});
  EXPECT_EQ(counter.tokens(), 3);
  EXPECT_EQ(counter.expert_activations(), 14);
  EXPECT_EQ(counter.native_expert_activations(), 12);
  EXPECT_EQ(counter.expert_flops_saved(), -1152);
  EXPECT_DOUBLE_EQ(counter.savings_ratio(), -1152.0 / 6912.0);
}

}  // namespace
}  // namespace adak::engine
