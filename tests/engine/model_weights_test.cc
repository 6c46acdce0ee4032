#include "engine/model_weights.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "engine/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/make_model.h"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::adak::testing::TempDir;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Checkpoint {
  ModelConfig config;
  std::shared_ptr<const WeightStore> store;
};

Checkpoint Load(const std::filesystem::path& dir) {
  Checkpoint c;
  auto config = LoadModelConfig(dir);
  EXPECT_THAT(config, IsOk());
  if (config.ok()) c.config = *config;
  auto store = WeightStore::Open(dir);
  EXPECT_THAT(store, IsOk());
  if (store.ok()) c.store = *std::move(store);
  return c;
}

// Copies model.safetensors of `from` to `to`, dropping `drop` and giving `reshape` the shape `new_shape`
// (same byte count, so the file stays valid).
void RewriteCheckpoint(const std::filesystem::path& from, const std::filesystem::path& to, const std::string& drop,
                       const std::string& reshape = "", const std::vector<int64_t>& new_shape = {}) {
  std::filesystem::create_directories(to);
  std::filesystem::copy_file(from / "config.json", to / "config.json");
  auto file = SafetensorsFile::Open(from / "model.safetensors");
  ASSERT_THAT(file, IsOk());
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, view] : (*file)->tensors()) {
    if (name == drop) continue;
    tensors.push_back({name, view.dtype, name == reshape ? new_shape : view.shape, {view.data, view.nbytes()}});
  }
  ASSERT_THAT(WriteSafetensors(to / "model.safetensors", tensors), IsOk());
}

TEST(BindModelWeightsTest, BindsStoriesMixtral) {
  ADAK_REQUIRE_SHARED(shared);
  const Checkpoint c = Load(shared / "models/stories-mixtral");
  ASSERT_NE(c.store, nullptr);
  auto w = BindModelWeights(c.config, c.store);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ(w->store, c.store);
  std::vector<const TensorView*> views = {&w->embed_tokens, &w->final_norm, &w->lm_head};
  for (const LayerWeights& l : w->layers) {
    EXPECT_TRUE(l.is_moe);
    for (const TensorView* t :
         {&l.input_norm, &l.post_attention_norm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.router}) {
      views.push_back(t);
    }
    EXPECT_FALSE(l.q_bias.present());
    EXPECT_FALSE(l.q_norm.present());
    EXPECT_FALSE(l.shared_expert.present());
    EXPECT_FALSE(l.shared_expert_gate.present());
    EXPECT_FALSE(l.mlp.present());
    ASSERT_EQ(l.experts.size(), 8u);
    for (const MlpWeights& e : l.experts) {
      views.push_back(&e.gate);
      views.push_back(&e.up);
      views.push_back(&e.down);
    }
  }
  ASSERT_EQ(views.size(), 127u);
  for (const TensorView* t : views) {
    ASSERT_TRUE(t->present()) << t->name;
    EXPECT_EQ(t->dtype, DType::kBF16) << t->name;
  }
  EXPECT_NE(w->lm_head.data, w->embed_tokens.data) << "stories-mixtral is untied";
  EXPECT_EQ(w->lm_head.name, "lm_head.weight");
  EXPECT_THAT(w->embed_tokens.shape, ElementsAre(4096, 256));
  const LayerWeights& l2 = w->layers[2];
  EXPECT_THAT(l2.q_proj.shape, ElementsAre(256, 256));
  EXPECT_THAT(l2.k_proj.shape, ElementsAre(128, 256));
  EXPECT_THAT(l2.o_proj.shape, ElementsAre(256, 256));
  EXPECT_THAT(l2.router.shape, ElementsAre(8, 256));
  // w1 = gate, w3 = up, w2 = down.
  EXPECT_EQ(l2.experts[5].gate.name, "model.layers.2.block_sparse_moe.experts.5.w1.weight");
  EXPECT_EQ(l2.experts[5].up.name, "model.layers.2.block_sparse_moe.experts.5.w3.weight");
  EXPECT_EQ(l2.experts[5].down.name, "model.layers.2.block_sparse_moe.experts.5.w2.weight");
  EXPECT_THAT(l2.experts[5].down.shape, ElementsAre(256, 512));
}

TEST(BindModelWeightsTest, MisShapedExpertNamesTensorFileAndShapes) {
  TempDir dir;
  testing::MakeModelParams params;
  params.arch = Architecture::kMixtral;
  ASSERT_THAT(testing::MakeModel(params, dir.path() / "good"), IsOk());
  const std::string bad_name = "model.layers.1.block_sparse_moe.experts.3.w2.weight";  // [256, 512]
  RewriteCheckpoint(dir.path() / "good", dir.path() / "bad", "", bad_name, {512, 256});
  const Checkpoint c = Load(dir.path() / "bad");
  ASSERT_NE(c.store, nullptr);
  EXPECT_THAT(BindModelWeights(c.config, c.store),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(bad_name), HasSubstr((dir.path() / "bad" / "model.safetensors").string()),
                             HasSubstr("has shape [512, 256]"), HasSubstr("expected [256, 512]"))));
}

// A tensor no module uses loads (as in Hugging Face) but is named, so a checkpoint/config mismatch is visible.
TEST(BindModelWeightsTest, UnusedTensorIsNamed) {
  TempDir dir;
  ASSERT_THAT(testing::MakeModel(testing::MakeModelParams{}, dir.path() / "good"), IsOk());
  const Checkpoint good = Load(dir.path() / "good");
  auto clean = BindModelWeights(good.config, good.store);
  ASSERT_THAT(clean, IsOk());
  EXPECT_TRUE(clean->unused_tensors.empty());

  std::filesystem::create_directories(dir.path() / "extra");
  std::filesystem::copy_file(dir.path() / "good/config.json", dir.path() / "extra/config.json");
  auto file = SafetensorsFile::Open(dir.path() / "good/model.safetensors");
  ASSERT_THAT(file, IsOk());
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, view] : (*file)->tensors())
    tensors.push_back({name, view.dtype, view.shape, {view.data, view.nbytes()}});
  const float extra[2] = {1.0f, 2.0f};
  tensors.push_back({"model.layers.0.mlp.unexpected.weight", DType::kF32, {2}, std::as_bytes(std::span(extra))});
  tensors.push_back(
      {"model.layers.0.self_attn.rotary_emb.inv_freq", DType::kF32, {2}, std::as_bytes(std::span(extra))});
  ASSERT_THAT(WriteSafetensors(dir.path() / "extra/model.safetensors", tensors), IsOk());
  const Checkpoint extra_ckpt = Load(dir.path() / "extra");
  auto bound = BindModelWeights(extra_ckpt.config, extra_ckpt.store);
  ASSERT_THAT(bound, IsOk());
  EXPECT_THAT(bound->unused_tensors, ElementsAre("model.layers.0.mlp.unexpected.weight"));
}

TEST(BindModelWeightsTest, MissingTensorIsNotFound) {
  TempDir dir;
  testing::MakeModelParams params;
  params.arch = Architecture::kQwen2Moe;
  ASSERT_THAT(testing::MakeModel(params, dir.path() / "good"), IsOk());
  const std::string missing = "model.layers.2.mlp.shared_expert_gate.weight";
  RewriteCheckpoint(dir.path() / "good", dir.path() / "bad", missing);
  const Checkpoint c = Load(dir.path() / "bad");
  ASSERT_NE(c.store, nullptr);
  EXPECT_THAT(
      BindModelWeights(c.config, c.store),
      StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("'" + missing + "'"), HasSubstr("model.safetensors"))));
}

TEST(BindModelWeightsTest, UntiedModelNeedsLmHead) {
  TempDir dir;
  ASSERT_THAT(testing::MakeModel(testing::MakeModelParams{}, dir.path() / "good"), IsOk());
  RewriteCheckpoint(dir.path() / "good", dir.path() / "bad", "lm_head.weight");
  const Checkpoint c = Load(dir.path() / "bad");
  ASSERT_NE(c.store, nullptr);
  EXPECT_THAT(BindModelWeights(c.config, c.store),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'lm_head.weight'")));
  ModelConfig tied = c.config;
  tied.tie_word_embeddings = true;
  auto w = BindModelWeights(tied, c.store);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ(w->lm_head.data, w->embed_tokens.data);
}

TEST(BindModelWeightsTest, BindsQwen2MoeBiasesSharedExpertAndGate) {
  TempDir dir;
  testing::MakeModelParams params;
  params.arch = Architecture::kQwen2Moe;
  params.overrides = {{"mlp_only_layers", "[0]"}};
  ASSERT_THAT(testing::MakeModel(params, dir.path()), IsOk());
  const Checkpoint c = Load(dir.path());
  auto w = BindModelWeights(c.config, c.store);
  ASSERT_THAT(w, IsOk());
  const LayerWeights& dense = w->layers[0];
  EXPECT_FALSE(dense.is_moe);
  EXPECT_EQ(dense.mlp.gate.name, "model.layers.0.mlp.gate_proj.weight");
  EXPECT_THAT(dense.mlp.down.shape, ElementsAre(256, c.config.intermediate_size));
  EXPECT_TRUE(dense.experts.empty());
  const LayerWeights& l = w->layers[1];
  EXPECT_TRUE(l.is_moe);
  EXPECT_EQ(l.q_bias.name, "model.layers.1.self_attn.q_proj.bias");
  EXPECT_THAT(l.q_bias.shape, ElementsAre(256));
  EXPECT_THAT(l.k_bias.shape, ElementsAre(128));
  EXPECT_THAT(l.v_bias.shape, ElementsAre(128));
  EXPECT_EQ(l.router.name, "model.layers.1.mlp.gate.weight");
  EXPECT_EQ(l.experts[7].up.name, "model.layers.1.mlp.experts.7.up_proj.weight");
  EXPECT_THAT(l.experts[7].up.shape, ElementsAre(128, 256));
  EXPECT_EQ(l.shared_expert.gate.name, "model.layers.1.mlp.shared_expert.gate_proj.weight");
  EXPECT_THAT(l.shared_expert.down.shape, ElementsAre(256, c.config.shared_expert_intermediate_size));
  EXPECT_EQ(l.shared_expert_gate.name, "model.layers.1.mlp.shared_expert_gate.weight");
  EXPECT_THAT(l.shared_expert_gate.shape, ElementsAre(1, 256));
}

TEST(BindModelWeightsTest, BindsDeepseekDenseLeadingLayerAndSharedExperts) {
  TempDir dir;
  testing::MakeModelParams params;
  params.arch = Architecture::kDeepseek;
  ASSERT_THAT(testing::MakeModel(params, dir.path()), IsOk());
  const Checkpoint c = Load(dir.path());
  auto w = BindModelWeights(c.config, c.store);
  ASSERT_THAT(w, IsOk());
  EXPECT_FALSE(w->layers[0].is_moe);
  EXPECT_THAT(w->layers[0].mlp.gate.shape, ElementsAre(c.config.intermediate_size, 256));
  const LayerWeights& l = w->layers[3];
  EXPECT_TRUE(l.is_moe);
  EXPECT_EQ(l.shared_expert.up.name, "model.layers.3.mlp.shared_experts.up_proj.weight");
  EXPECT_THAT(l.shared_expert.up.shape, ElementsAre(c.config.moe_intermediate_size * 2, 256));
  EXPECT_FALSE(l.shared_expert_gate.present());
  EXPECT_FALSE(l.q_bias.present());
}

TEST(BindModelWeightsTest, BindsOlmoeFullQkNorm) {
  TempDir dir;
  testing::MakeModelParams params;
  params.arch = Architecture::kOlmoe;
  params.overrides = {{"num_key_value_heads", "2"}};
  ASSERT_THAT(testing::MakeModel(params, dir.path()), IsOk());
  const Checkpoint c = Load(dir.path());
  auto w = BindModelWeights(c.config, c.store);
  ASSERT_THAT(w, IsOk());
  const LayerWeights& l = w->layers[0];
  EXPECT_EQ(l.q_norm.name, "model.layers.0.self_attn.q_norm.weight");
  EXPECT_THAT(l.q_norm.shape, ElementsAre(256));  // heads * head_dim
  EXPECT_THAT(l.k_norm.shape, ElementsAre(128));  // kv_heads * head_dim
  EXPECT_EQ(l.experts[0].gate.name, "model.layers.0.mlp.experts.0.gate_proj.weight");
}

TEST(BindModelWeightsTest, BindsQwen3PerHeadQkNorm) {
  TempDir dir;
  testing::MakeModelParams params;
  params.arch = Architecture::kQwen3Moe;
  params.overrides = {{"head_dim", "32"}};
  ASSERT_THAT(testing::MakeModel(params, dir.path()), IsOk());
  const Checkpoint c = Load(dir.path());
  auto w = BindModelWeights(c.config, c.store);
  ASSERT_THAT(w, IsOk());
  const LayerWeights& l = w->layers[1];
  EXPECT_THAT(l.q_norm.shape, ElementsAre(32));
  EXPECT_THAT(l.k_norm.shape, ElementsAre(32));
  EXPECT_THAT(l.q_proj.shape, ElementsAre(4 * 32, 256));
  EXPECT_THAT(l.o_proj.shape, ElementsAre(256, 4 * 32));
}

TEST(BindModelWeightsTest, ConfigMismatchIsReportedOnTheFirstTensor) {
  TempDir dir;
  ASSERT_THAT(testing::MakeModel(testing::MakeModelParams{}, dir.path()), IsOk());
  Checkpoint c = Load(dir.path());
  c.config.vocab_size = 1000;
  EXPECT_THAT(BindModelWeights(c.config, c.store),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("model.embed_tokens.weight"),
                                                                 HasSubstr("[512, 256]"), HasSubstr("[1000, 256]"))));
  EXPECT_THAT(BindModelWeights(c.config, nullptr), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("store")));
}

}  // namespace
}  // namespace adak::engine
