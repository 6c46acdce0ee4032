#include "testing/make_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "engine/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace adak::testing {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::ReadFile;
using ::adak::testing::StatusIs;
using ::adak::testing::TempDir;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr engine::Architecture kAllArchitectures[] = {engine::Architecture::kMixtral, engine::Architecture::kQwen2Moe,
                                                      engine::Architecture::kDeepseek, engine::Architecture::kOlmoe,
                                                      engine::Architecture::kQwen3Moe};

float ElementAsF32(const engine::TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::kBF16: return Bf16ToF32(reinterpret_cast<const uint16_t*>(t.data)[i]);
    case DType::kF16: return F16ToF32(reinterpret_cast<const uint16_t*>(t.data)[i]);
    default: return reinterpret_cast<const float*>(t.data)[i];
  }
}

class MakeModelArchTest : public ::testing::TestWithParam<engine::Architecture> {};

TEST_P(MakeModelArchTest, WritesACheckpointEveryLoaderAccepts) {
  TempDir dir;
  MakeModelParams params;
  params.arch = GetParam();
  params.seed = 7;
  ASSERT_THAT(MakeModel(params, dir.path()), IsOk());
  for (const char* f :
       {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.path() / f)) << f;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "model.safetensors.partial"));

  auto config = engine::LoadModelConfig(dir.path());
  ASSERT_THAT(config, IsOk());
  auto expected = MakeModelConfig(params);
  ASSERT_THAT(expected, IsOk());
  EXPECT_TRUE(*config == *expected) << engine::DescribeModelConfig(*config);
  EXPECT_EQ(config->arch, GetParam());
  EXPECT_EQ(config->hidden_size, 256);
  EXPECT_EQ(config->num_layers, 4);
  EXPECT_EQ(config->num_experts, 8);
  EXPECT_EQ(config->num_experts_per_tok, 2);
  EXPECT_EQ(config->vocab_size, 512);
  EXPECT_EQ(config->max_position_embeddings, 2048);
  EXPECT_EQ(config->bos_token_id, kMakeModelEndOfTextId);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(kMakeModelEndOfTextId));
  // config.json is in the architecture's own format and round-trips.
  auto again = engine::ParseModelConfig(engine::ModelConfigToJson(*config));
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(*again == *config);

  auto store = engine::WeightStore::Open(dir.path());
  ASSERT_THAT(store, IsOk());
  std::shared_ptr<const engine::WeightStore> shared_store = *std::move(store);
  auto weights = BindModelWeights(*config, shared_store);
  ASSERT_THAT(weights, IsOk());
  ASSERT_EQ(weights->layers.size(), 4u);

  // Every tensor in the file is one the binder needs: count the views it bound.
  size_t bound = 3;  // embed, final norm, lm_head
  for (const engine::LayerWeights& l : weights->layers) {
    bound += 6 + (l.q_bias.present() ? 3 : 0) + (l.q_norm.present() ? 2 : 0);
    if (l.is_moe) {
      bound +=
          1 + 3 * l.experts.size() + (l.shared_expert.present() ? 3 : 0) + (l.shared_expert_gate.present() ? 1 : 0);
    } else {
      bound += 3;
    }
  }
  EXPECT_EQ(shared_store->files()[0]->tensors().size(), bound);

  // N(0, 0.02) weights, norms exactly 1.
  const engine::TensorView& e = weights->embed_tokens;
  EXPECT_EQ(e.dtype, DType::kBF16);
  double sum = 0, sum_sq = 0;
  for (int64_t i = 0; i < e.numel(); ++i) {
    const double x = ElementAsF32(e, i);
    sum += x;
    sum_sq += x * x;
  }
  const double mean = sum / static_cast<double>(e.numel());
  const double stddev = std::sqrt(sum_sq / static_cast<double>(e.numel()) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(stddev, 0.02, 1e-3);
  for (int64_t i = 0; i < weights->final_norm.numel(); ++i) ASSERT_EQ(ElementAsF32(weights->final_norm, i), 1.0f);
  for (const engine::LayerWeights& l : weights->layers) {
    for (int64_t i = 0; i < l.input_norm.numel(); ++i) ASSERT_EQ(ElementAsF32(l.input_norm, i), 1.0f);
    if (l.q_norm.present()) {
      EXPECT_EQ(ElementAsF32(l.q_norm, 0), 1.0f);
    }
  }
}

TEST_P(MakeModelArchTest, WritesTheConfigInTheArchitecturesOwnKeys) {
  TempDir dir;
  MakeModelParams params;
  params.arch = GetParam();
  ASSERT_THAT(MakeModel(params, dir.path()), IsOk());
  const nlohmann::json j = nlohmann::json::parse(ReadFile(dir.path() / "config.json"));
  EXPECT_EQ(j["architectures"][0], std::string(ArchitectureName(GetParam())));
  EXPECT_EQ(j["model_type"], std::string(ArchitectureModelType(GetParam())));
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  switch (GetParam()) {
    case engine::Architecture::kMixtral: EXPECT_EQ(j["num_local_experts"], 8); break;
    case engine::Architecture::kDeepseek:
      EXPECT_EQ(j["n_routed_experts"], 8);
      EXPECT_EQ(j["first_k_dense_replace"], 1);
      break;
    default: EXPECT_EQ(j["num_experts"], 8); break;
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, MakeModelArchTest, ::testing::ValuesIn(kAllArchitectures),
                         [](const ::testing::TestParamInfo<engine::Architecture>& info) {
                           return std::string(ArchitectureModelType(info.param));
                         });

TEST(MakeModelTest, SameSeedGivesIdenticalWeightsAndOtherSeedsDiffer) {
  TempDir a, b, c;
  MakeModelParams params;
  params.arch = engine::Architecture::kOlmoe;
  params.seed = 1234;
  ASSERT_THAT(MakeModel(params, a.path()), IsOk());
  ASSERT_THAT(MakeModel(params, b.path()), IsOk());
  params.seed = 1235;
  ASSERT_THAT(MakeModel(params, c.path()), IsOk());
  const std::string wa = ReadFile(a.path() / "model.safetensors");
  EXPECT_EQ(wa, ReadFile(b.path() / "model.safetensors"));
  EXPECT_NE(wa, ReadFile(c.path() / "model.safetensors"));
}

TEST(MakeModelTest, AppliesOverrides) {
  MakeModelParams params;
  params.arch = engine::Architecture::kQwen3Moe;
  params.overrides = {{"hidden_size", "512"},       {"num_hidden_layers", "3"},  {"num_experts", "4"},
                      {"num_experts_per_tok", "1"}, {"vocab_size", "300"},       {"torch_dtype", "float32"},
                      {"mlp_only_layers", "[1]"},   {"norm_topk_prob", "false"}, {"rope_theta", "10000"}};
  auto c = MakeModelConfig(params);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->hidden_size, 512);
  EXPECT_EQ(c->num_attention_heads, 8) << "heads rescale to head_dim 64";
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->num_layers, 3);
  EXPECT_EQ(c->num_experts, 4);
  EXPECT_EQ(c->num_experts_per_tok, 1);
  EXPECT_EQ(c->vocab_size, 300);
  EXPECT_EQ(c->torch_dtype, DType::kF32);
  EXPECT_THAT(c->moe_layers, ElementsAre(true, false, true));
  EXPECT_FALSE(c->norm_topk_prob);
  EXPECT_EQ(c->rope_theta, 10000.0);

  TempDir dir;
  ASSERT_THAT(MakeModel(params, dir.path()), IsOk());
  auto loaded = engine::LoadModelConfig(dir.path());
  ASSERT_THAT(loaded, IsOk());
  EXPECT_TRUE(*loaded == *c);
  auto store = engine::WeightStore::Open(dir.path());
  ASSERT_THAT(store, IsOk());
  auto weights = BindModelWeights(*loaded, *std::move(store));
  ASSERT_THAT(weights, IsOk());
  EXPECT_EQ(weights->embed_tokens.dtype, DType::kF32);
  EXPECT_FALSE(weights->layers[1].is_moe);
  EXPECT_EQ(weights->layers[1].mlp.gate.dim(0), c->intermediate_size);
}

TEST(MakeModelTest, AcceptsGenericKeySpellingsAndExplicitHeads) {
  MakeModelParams params;
  params.arch = engine::Architecture::kOlmoe;
  params.overrides = {{"hidden_size", "1024"}, {"num_attention_heads", "8"},    {"num_key_value_heads", "8"},
                      {"num_experts", "16"},   {"moe_intermediate_size", "96"}, {"dtype", "float16"},
                      {"clip_qkv", "8.0"}};
  auto c = MakeModelConfig(params);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->num_attention_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_experts, 16);
  EXPECT_EQ(c->moe_intermediate_size, 96);
  EXPECT_EQ(c->torch_dtype, DType::kF16);
  EXPECT_EQ(c->clip_qkv, 8.0f);

  MakeModelParams mixtral;
  mixtral.arch = engine::Architecture::kMixtral;
  mixtral.overrides = {
      {"num_experts", "4"}, {"moe_intermediate_size", "64"}, {"head_dim", "32"}, {"tie_word_embeddings", "true"}};
  auto m = MakeModelConfig(mixtral);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->num_experts, 4);
  EXPECT_EQ(m->moe_intermediate_size, 64);
  EXPECT_EQ(m->head_dim, 32);
  EXPECT_TRUE(m->tie_word_embeddings);
  TempDir dir;
  ASSERT_THAT(MakeModel(mixtral, dir.path()), IsOk());
  auto store = engine::WeightStore::Open(dir.path());
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ((*store)->Find("lm_head.weight"), nullptr);
  auto weights = BindModelWeights(*m, *std::move(store));
  ASSERT_THAT(weights, IsOk());
  EXPECT_EQ(weights->lm_head.data, weights->embed_tokens.data);

  MakeModelParams deepseek;
  deepseek.arch = engine::Architecture::kDeepseek;
  deepseek.overrides = {{"num_experts", "6"}, {"num_shared_experts", "1"}, {"first_k_dense_replace", "2"}};
  auto d = MakeModelConfig(deepseek);
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->num_experts, 6);
  EXPECT_EQ(d->num_shared_experts, 1);
  EXPECT_EQ(d->shared_expert_intermediate_size, d->moe_intermediate_size);
  EXPECT_THAT(d->moe_layers, ElementsAre(false, false, true, true));
}

TEST(MakeModelTest, RejectsBadOverrides) {
  MakeModelParams params;
  params.arch = engine::Architecture::kMixtral;
  params.overrides = {{"hiden_size", "512"}};
  EXPECT_THAT(MakeModelConfig(params),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'hiden_size'"), HasSubstr("MixtralForCausalLM"), HasSubstr("hidden_size"))));
  params.overrides = {{"hidden_size", "abc"}};
  EXPECT_THAT(MakeModelConfig(params),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("hidden_size=abc"), HasSubstr("integer"))));
  params.overrides = {{"hidden_size", "2.5"}};
  EXPECT_THAT(MakeModelConfig(params), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hidden_size=2.5")));
  params.overrides = {{"tie_word_embeddings", "yes"}};
  EXPECT_THAT(MakeModelConfig(params),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tie_word_embeddings=yes")));
  params.overrides = {{"torch_dtype", "int8"}};
  EXPECT_THAT(MakeModelConfig(params),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'torch_dtype'"), HasSubstr("int8"))));
  params.overrides = {{"num_experts_per_tok", "9"}};
  EXPECT_THAT(MakeModelConfig(params),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'num_experts_per_tok'")));
  params.overrides = {{"vocab_size", "100"}};
  EXPECT_THAT(MakeModelConfig(params), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vocab_size 100")));
  params.overrides = {{"architectures", "[\"OlmoeForCausalLM\"]"}};
  EXPECT_THAT(MakeModelConfig(params), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'architectures'")));
  params.arch = engine::Architecture::kOlmoe;
  params.overrides = {{"head_dim", "32"}};
  EXPECT_THAT(MakeModelConfig(params), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'head_dim'")));
  TempDir dir;
  EXPECT_THAT(MakeModel(params, dir.path()), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'head_dim'")));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(MakeModelTest, ShardsWhenAskedAndReplacesTheOtherLayout) {
  TempDir dir;
  MakeModelParams params;
  params.arch = engine::Architecture::kQwen2Moe;
  params.max_shard_bytes = 1 << 20;
  uint64_t last_done = 0, total = 0;
  params.progress = [&](uint64_t done, uint64_t all) {
    EXPECT_GE(done, last_done);
    last_done = done;
    total = all;
  };
  ASSERT_THAT(MakeModel(params, dir.path()), IsOk());
  EXPECT_GT(total, 0u);
  EXPECT_EQ(last_done, total);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "model.safetensors"));
  auto config = engine::LoadModelConfig(dir.path());
  ASSERT_THAT(config, IsOk());
  auto store = engine::WeightStore::Open(dir.path());
  ASSERT_THAT(store, IsOk());
  EXPECT_GT((*store)->files().size(), 2u);
  for (const auto& f : (*store)->files()) {
    uint64_t bytes = 0;
    for (const auto& [name, view] : f->tensors()) bytes += view.nbytes();
    EXPECT_TRUE(bytes <= params.max_shard_bytes || f->tensors().size() == 1) << f->path();
  }
  const nlohmann::json index = nlohmann::json::parse(ReadFile(dir.path() / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], total);
  EXPECT_THAT(BindModelWeights(*config, *std::move(store)), IsOk());

  // The same seed gives the same tensors whether sharded or not.
  auto sharded = engine::WeightStore::Open(dir.path());
  ASSERT_THAT(sharded, IsOk());
  const engine::TensorView sharded_expert = *(*sharded)->Find("model.layers.3.mlp.experts.5.down_proj.weight");
  TempDir single_dir;
  params.max_shard_bytes = 0;
  ASSERT_THAT(MakeModel(params, single_dir.path()), IsOk());
  auto single = engine::WeightStore::Open(single_dir.path());
  ASSERT_THAT(single, IsOk());
  const engine::TensorView* single_expert = (*single)->Find("model.layers.3.mlp.experts.5.down_proj.weight");
  ASSERT_NE(single_expert, nullptr);
  EXPECT_EQ(std::memcmp(single_expert->data, sharded_expert.data, single_expert->nbytes()), 0);

  // Rewriting as one file removes the stale index (which would otherwise win).
  ASSERT_THAT(MakeModel(params, dir.path()), IsOk());
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "model.safetensors.index.json"));
  auto rewritten = engine::WeightStore::Open(dir.path());
  ASSERT_THAT(rewritten, IsOk());
  EXPECT_EQ((*rewritten)->files().size(), 1u);
}

TEST(MakeModelTest, WritesAByteLevelTokenizer) {
  TempDir dir;
  MakeModelParams params;
  params.arch = engine::Architecture::kMixtral;
  ASSERT_THAT(MakeModel(params, dir.path()), IsOk());
  const nlohmann::json tok = nlohmann::json::parse(ReadFile(dir.path() / "tokenizer.json"));
  EXPECT_EQ(tok["model"]["type"], "BPE");
  EXPECT_EQ(tok["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(tok["pre_tokenizer"]["add_prefix_space"], false);
  EXPECT_EQ(tok["pre_tokenizer"]["use_regex"], true);
  EXPECT_EQ(tok["decoder"]["type"], "ByteLevel");
  const auto& vocab = tok["model"]["vocab"];
  EXPECT_EQ(static_cast<int64_t>(vocab.size()), kMakeModelTokenizerSize);
  EXPECT_EQ(vocab["!"], 0);
  EXPECT_EQ(vocab["\xC4\xA0"], 220) << "byte 0x20 (space) is U+0120 'Ġ'";
  EXPECT_EQ(vocab["<|endoftext|>"], kMakeModelEndOfTextId);
  ASSERT_EQ(tok["added_tokens"].size(), 1u);
  EXPECT_EQ(tok["added_tokens"][0]["id"], kMakeModelEndOfTextId);
  EXPECT_EQ(tok["added_tokens"][0]["special"], true);
  // Every merge joins two tokens that exist, into a token that exists.
  for (const auto& m : tok["model"]["merges"]) {
    const std::string merge = m.get<std::string>();
    const size_t space = merge.find(' ');
    ASSERT_NE(space, std::string::npos);
    EXPECT_TRUE(vocab.contains(merge.substr(0, space))) << merge;
    EXPECT_TRUE(vocab.contains(merge.substr(space + 1))) << merge;
    EXPECT_TRUE(vocab.contains(merge.substr(0, space) + merge.substr(space + 1))) << merge;
  }
  const nlohmann::json gen = nlohmann::json::parse(ReadFile(dir.path() / "generation_config.json"));
  EXPECT_EQ(gen["eos_token_id"], kMakeModelEndOfTextId);
  EXPECT_EQ(gen["bos_token_id"], kMakeModelEndOfTextId);
  const nlohmann::json tc = nlohmann::json::parse(ReadFile(dir.path() / "tokenizer_config.json"));
  EXPECT_EQ(tc["eos_token"], "<|endoftext|>");
  EXPECT_EQ(tc["model_max_length"], 2048);
}

TEST(MakeModelTest, ByteTokensMatchStoriesMixtral) {
  ADAK_REQUIRE_SHARED(shared);
  TempDir dir;
  ASSERT_THAT(MakeModel(MakeModelParams{}, dir.path()), IsOk());
  const nlohmann::json ours = nlohmann::json::parse(ReadFile(dir.path() / "tokenizer.json"));
  const nlohmann::json theirs = nlohmann::json::parse(ReadFile(shared / "models/stories-mixtral/tokenizer.json"));
  int matched = 0;
  for (auto it = theirs["model"]["vocab"].begin(); it != theirs["model"]["vocab"].end(); ++it) {
    if (it.value().get<int>() < 256) {
      EXPECT_EQ(ours["model"]["vocab"][it.key()], it.value()) << it.key();
      ++matched;
    }
  }
  EXPECT_EQ(matched, 256);
  EXPECT_EQ(ours["pre_tokenizer"], theirs["pre_tokenizer"]);
  EXPECT_EQ(ours["decoder"], theirs["decoder"]);
}

}  // namespace
}  // namespace adak::testing
