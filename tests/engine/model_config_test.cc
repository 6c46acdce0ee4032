#include "engine/model_config.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::adak::testing::TempDir;
using ::adak::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Abridged copies of the published config.json files.
constexpr const char* kMixtral8x7b = R"({
  "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32,
  "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8,
  "output_router_logits": false, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02,
  "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 32000})";

constexpr const char* kQwen15MoeA27b = R"({
  "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 5632, "max_position_embeddings": 8192, "max_window_layers": 21, "model_type": "qwen2_moe",
  "num_attention_heads": 16, "num_hidden_layers": 24, "num_key_value_heads": 16, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936, "decoder_sparse_step": 1,
  "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632, "num_experts_per_tok": 4,
  "num_experts": 60, "norm_topk_prob": false, "output_router_logits": false, "router_aux_loss_coef": 0.001})";

constexpr const char* kDeepseekMoe16b = R"({
  "architectures": ["DeepseekForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekConfig"}, "aux_loss_alpha": 0.001,
  "bos_token_id": 100000, "eos_token_id": 100001, "first_k_dense_replace": 1, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 10944, "max_position_embeddings": 4096,
  "model_type": "deepseek", "moe_intermediate_size": 1408, "moe_layer_freq": 1, "n_routed_experts": 64,
  "n_shared_experts": 2, "norm_topk_prob": false, "num_attention_heads": 16, "num_experts_per_tok": 6,
  "num_hidden_layers": 28, "num_key_value_heads": 16, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 10000, "scoring_func": "softmax", "seq_aux": true,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 102400})";

constexpr const char* kOlmoe1b7b = R"({
  "architectures": ["OlmoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "clip_qkv": null,
  "eos_token_id": 50279, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 1024, "max_position_embeddings": 4096, "model_type": "olmoe", "norm_topk_prob": false,
  "num_attention_heads": 16, "num_experts": 64, "num_experts_per_tok": 8, "num_hidden_layers": 16,
  "num_key_value_heads": 16, "output_router_logits": false, "pad_token_id": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": null, "rope_theta": 10000.0, "router_aux_loss_coef": 0.01, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 50304})";

constexpr const char* kQwen3_30bA3b = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144,
  "max_position_embeddings": 40960, "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe",
  "moe_intermediate_size": 768, "norm_topk_prob": true, "num_attention_heads": 32, "num_experts": 128,
  "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": false,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
  "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

// `base` with `patch` merged in (null values delete keys).
std::string Patched(const char* base, const std::string& patch) {
  nlohmann::json j = nlohmann::json::parse(base);
  j.merge_patch(nlohmann::json::parse(patch));
  return j.dump();
}

void ExpectRoundTrips(const ModelConfig& c) {
  const std::string json = ModelConfigToJson(c);
  auto again = ParseModelConfig(json);
  ASSERT_THAT(again, IsOk()) << json;
  EXPECT_TRUE(*again == c) << "written:\n"
                           << json << "\noriginal: " << DescribeModelConfig(c)
                           << "\nparsed:   " << DescribeModelConfig(*again);
  const std::string arch(ArchitectureName(c.arch));
  EXPECT_THAT(json, HasSubstr("\"" + arch + "\""));
}

TEST(ArchitectureTest, ParsesClassNamesAndShortForms) {
  for (auto arch : {Architecture::kMixtral, Architecture::kQwen2Moe, Architecture::kDeepseek, Architecture::kOlmoe,
                    Architecture::kQwen3Moe}) {
    EXPECT_THAT(ParseArchitecture(ArchitectureName(arch)), IsOk());
    EXPECT_EQ(*ParseArchitecture(ArchitectureName(arch)), arch);
    EXPECT_EQ(*ParseArchitecture(ArchitectureModelType(arch)), arch);
  }
  EXPECT_EQ(ArchitectureName(Architecture::kQwen2Moe), "Qwen2MoeForCausalLM");
  EXPECT_EQ(*ParseArchitecture("deepseek"), Architecture::kDeepseek);
  EXPECT_THAT(ParseArchitecture("llama"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'llama'"), HasSubstr("olmoe"), HasSubstr("MixtralForCausalLM"))));
}

TEST(ModelConfigTest, ParsesMixtral) {
  auto c = ParseModelConfig(kMixtral8x7b);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->arch, Architecture::kMixtral);
  EXPECT_EQ(c->model_type, "mixtral");
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->num_layers, 32);
  EXPECT_EQ(c->num_attention_heads, 32);
  EXPECT_EQ(c->num_key_value_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->max_position_embeddings, 32768);
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->qk_norm, QkNorm::kNone);
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_EQ(c->moe_intermediate_size, 14336);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->num_shared_experts, 0);
  EXPECT_FALSE(c->shared_expert_gate);
  EXPECT_EQ(c->num_moe_layers(), 32);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(2));
  EXPECT_EQ(c->torch_dtype, DType::kBF16);
  EXPECT_EQ(c->q_dim(), 4096);
  EXPECT_EQ(c->kv_dim(), 1024);
  ExpectRoundTrips(*c);
}

TEST(ModelConfigTest, MixtralAlwaysRenormalisesTopK) {
  auto c = ParseModelConfig(Patched(kMixtral8x7b, R"({"norm_topk_prob": false})"));
  ASSERT_THAT(c, IsOk());
  EXPECT_TRUE(c->norm_topk_prob);
}

TEST(ModelConfigTest, ParsesQwen2Moe) {
  auto c = ParseModelConfig(kQwen15MoeA27b);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->arch, Architecture::kQwen2Moe);
  EXPECT_TRUE(c->attention_bias) << "Qwen2-MoE always has q/k/v biases";
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_experts, 60);
  EXPECT_EQ(c->num_experts_per_tok, 4);
  EXPECT_EQ(c->moe_intermediate_size, 1408);
  EXPECT_FALSE(c->norm_topk_prob);
  EXPECT_EQ(c->num_shared_experts, 1);
  EXPECT_EQ(c->shared_expert_intermediate_size, 5632);
  EXPECT_TRUE(c->shared_expert_gate);
  EXPECT_EQ(c->intermediate_size, 5632);
  EXPECT_EQ(c->num_moe_layers(), 24);
  EXPECT_EQ(c->max_position_embeddings, 8192);
  EXPECT_EQ(c->rms_norm_eps, 1e-6f);
  ExpectRoundTrips(*c);
}

TEST(ModelConfigTest, QwenLayerLayoutFollowsSparseStepAndMlpOnlyLayers) {
  // MoE iff (l not in mlp_only_layers) and (l + 1) % decoder_sparse_step == 0.
  auto c = ParseModelConfig(
      Patched(kQwen15MoeA27b, R"({"num_hidden_layers": 6, "decoder_sparse_step": 2, "mlp_only_layers": [3]})"));
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->moe_layers, ElementsAre(false, true, false, false, false, true));
  ExpectRoundTrips(*c);
  auto q3 = ParseModelConfig(Patched(kQwen3_30bA3b, R"({"num_hidden_layers": 4, "mlp_only_layers": [0, 2]})"));
  ASSERT_THAT(q3, IsOk());
  EXPECT_THAT(q3->moe_layers, ElementsAre(false, true, false, true));
  ExpectRoundTrips(*q3);
}

TEST(ModelConfigTest, Qwen2MoeDefaultsAndOptionalSharedExpert) {
  // Keys left out take the Qwen2MoeConfig defaults.
  auto c =
      ParseModelConfig(Patched(kQwen15MoeA27b, R"({"shared_expert_intermediate_size": null, "decoder_sparse_step": null,
                                  "rms_norm_eps": null, "rope_theta": null, "norm_topk_prob": null})"));
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->shared_expert_intermediate_size, 5632);
  EXPECT_EQ(c->rms_norm_eps, 1e-6f);
  EXPECT_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->norm_topk_prob);
  auto none = ParseModelConfig(Patched(kQwen15MoeA27b, R"({"shared_expert_intermediate_size": 0})"));
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(none->num_shared_experts, 0);
  EXPECT_FALSE(none->shared_expert_gate);
  ExpectRoundTrips(*none);
  auto no_bias = ParseModelConfig(Patched(kQwen15MoeA27b, R"({"qkv_bias": false})"));
  ASSERT_THAT(no_bias, IsOk());
  EXPECT_FALSE(no_bias->attention_bias);
  ExpectRoundTrips(*no_bias);
}

TEST(ModelConfigTest, ParsesDeepseekMoe) {
  auto c = ParseModelConfig(kDeepseekMoe16b);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->arch, Architecture::kDeepseek);
  EXPECT_EQ(c->num_experts, 64);
  EXPECT_EQ(c->num_experts_per_tok, 6);
  EXPECT_EQ(c->moe_intermediate_size, 1408);
  EXPECT_EQ(c->num_shared_experts, 2);
  EXPECT_EQ(c->shared_expert_intermediate_size, 2816);
  EXPECT_FALSE(c->shared_expert_gate);
  EXPECT_EQ(c->intermediate_size, 10944);
  EXPECT_FALSE(c->norm_topk_prob);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->head_dim, 128);
  ASSERT_EQ(c->moe_layers.size(), 28u);
  EXPECT_FALSE(c->moe_layers[0]);
  EXPECT_EQ(c->num_moe_layers(), 27);
  EXPECT_EQ(c->bos_token_id, 100000);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(100001));
  ExpectRoundTrips(*c);
}

TEST(ModelConfigTest, DeepseekLayerLayoutFollowsFirstKDenseAndFrequency) {
  auto c = ParseModelConfig(
      Patched(kDeepseekMoe16b, R"({"num_hidden_layers": 7, "first_k_dense_replace": 2, "moe_layer_freq": 2})"));
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->moe_layers, ElementsAre(false, false, true, false, true, false, true));
  ExpectRoundTrips(*c);
  auto dense = ParseModelConfig(Patched(kDeepseekMoe16b, R"({"n_routed_experts": null, "num_hidden_layers": 2})"));
  ASSERT_THAT(dense, IsOk());
  EXPECT_EQ(dense->num_moe_layers(), 0);
  EXPECT_EQ(dense->num_experts, 0);
  ExpectRoundTrips(*dense);
  auto no_shared = ParseModelConfig(Patched(kDeepseekMoe16b, R"({"n_shared_experts": null})"));
  ASSERT_THAT(no_shared, IsOk());
  EXPECT_EQ(no_shared->num_shared_experts, 0);
  EXPECT_EQ(no_shared->shared_expert_intermediate_size, 0);
  ExpectRoundTrips(*no_shared);
}

// Hugging Face's DeepSeek gate: `if self.top_k > 1 and self.norm_topk_prob` -- a single expert keeps its
// softmax weight (the engine used to weight it 1.0).
TEST(ModelConfigTest, DeepseekTopOneNeverRenormalises) {
  auto top1 = ParseModelConfig(Patched(kDeepseekMoe16b, R"({"num_experts_per_tok": 1, "norm_topk_prob": true})"));
  ASSERT_THAT(top1, IsOk());
  EXPECT_FALSE(top1->norm_topk_prob);
  auto top2 = ParseModelConfig(Patched(kDeepseekMoe16b, R"({"num_experts_per_tok": 2, "norm_topk_prob": true})"));
  ASSERT_THAT(top2, IsOk());
  EXPECT_TRUE(top2->norm_topk_prob);
}

TEST(ModelConfigTest, RefusesAnOddHeadDim) {
  EXPECT_THAT(
      ParseModelConfig(Patched(kMixtral8x7b, R"({"head_dim": 127})")),
      StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("head_dim = 127 is odd"), HasSubstr("RoPE"))));
  // hidden / heads odd (DeepSeek derives head_dim): 2050 / 2 = 1025.
  EXPECT_THAT(ParseModelConfig(Patched(kDeepseekMoe16b, R"({"hidden_size": 2050, "num_attention_heads": 2,
      "num_key_value_heads": 2})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("head_dim = 1025 is odd")));
}

TEST(ModelConfigTest, DeepseekRejectsSigmoidScoring) {
  EXPECT_THAT(ParseModelConfig(Patched(kDeepseekMoe16b, R"({"scoring_func": "sigmoid"})")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("scoring_func"), HasSubstr("sigmoid"))));
}

TEST(ModelConfigTest, ParsesOlmoe) {
  auto c = ParseModelConfig(kOlmoe1b7b);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->arch, Architecture::kOlmoe);
  EXPECT_EQ(c->qk_norm, QkNorm::kFull);
  EXPECT_EQ(c->clip_qkv, 0.0f);
  EXPECT_EQ(c->num_experts, 64);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->moe_intermediate_size, 1024);
  EXPECT_FALSE(c->norm_topk_prob);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_moe_layers(), 16);
  EXPECT_EQ(c->bos_token_id, -1);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(50279));
  EXPECT_EQ(c->rms_norm_eps, 1e-5f);
  ExpectRoundTrips(*c);

  auto clipped = ParseModelConfig(Patched(kOlmoe1b7b, R"({"clip_qkv": 8.0, "num_key_value_heads": null})"));
  ASSERT_THAT(clipped, IsOk());
  EXPECT_EQ(clipped->clip_qkv, 8.0f);
  EXPECT_EQ(clipped->num_key_value_heads, 16) << "OLMoE defaults kv heads to the attention heads";
  ExpectRoundTrips(*clipped);
}

TEST(ModelConfigTest, ParsesQwen3Moe) {
  auto c = ParseModelConfig(kQwen3_30bA3b);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->arch, Architecture::kQwen3Moe);
  EXPECT_EQ(c->qk_norm, QkNorm::kPerHead);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->q_dim(), 4096) << "head_dim is explicit, not hidden / heads";
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->num_experts, 128);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->moe_intermediate_size, 768);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->num_shared_experts, 0);
  EXPECT_EQ(c->num_moe_layers(), 48);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(151645));
  ExpectRoundTrips(*c);
  // norm_topk_prob defaults to false (Qwen3MoeConfig).
  auto d = ParseModelConfig(Patched(kQwen3_30bA3b, R"({"norm_topk_prob": null})"));
  ASSERT_THAT(d, IsOk());
  EXPECT_FALSE(d->norm_topk_prob);
}

TEST(ModelConfigTest, AcceptsNewerTransformersSpellings) {
  auto c = ParseModelConfig(Patched(kOlmoe1b7b, R"({"torch_dtype": null, "dtype": "float16", "rope_theta": null,
      "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}, "eos_token_id": [7, 8]})"));
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->torch_dtype, DType::kF16);
  EXPECT_EQ(c->rope_theta, 500000.0);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(7, 8));
  ExpectRoundTrips(*c);
}

TEST(ModelConfigTest, LoadsStoriesMixtral) {
  ADAK_REQUIRE_SHARED(shared);
  auto c = LoadModelConfig(shared / "models/stories-mixtral");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->arch, Architecture::kMixtral);
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->num_layers, 4);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_EQ(c->moe_intermediate_size, 512);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->vocab_size, 4096);
  EXPECT_EQ(c->max_position_embeddings, 512);
  EXPECT_EQ(c->bos_token_id, 4095);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(4095));
  EXPECT_EQ(c->torch_dtype, DType::kBF16);
  EXPECT_EQ(c->num_moe_layers(), 4);
  ExpectRoundTrips(*c);
  EXPECT_THAT(DescribeModelConfig(*c), AllOf(HasSubstr("MixtralForCausalLM"), HasSubstr("E=8 K=2")));
}

// --- errors -------------------------------------------------------------------------------------

TEST(ModelConfigErrorTest, RejectsUnknownArchitecture) {
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"architectures": ["LlamaForCausalLM"]})")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'LlamaForCausalLM'"), HasSubstr("MixtralForCausalLM"),
                             HasSubstr("Qwen2MoeForCausalLM"), HasSubstr("DeepseekForCausalLM"),
                             HasSubstr("OlmoeForCausalLM"), HasSubstr("Qwen3MoeForCausalLM"))));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"architectures": null})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'architectures'")));
}

TEST(ModelConfigErrorTest, RejectsMissingRequiredField) {
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"hidden_size": null})")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'hidden_size'"), HasSubstr("missing"), HasSubstr("MixtralForCausalLM"))));
  EXPECT_THAT(ParseModelConfig(Patched(kOlmoe1b7b, R"({"num_experts": null})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'num_experts'")));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"num_local_experts": null})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'num_local_experts'")));
  EXPECT_THAT(ParseModelConfig(Patched(kQwen3_30bA3b, R"({"moe_intermediate_size": null})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'moe_intermediate_size'")));
  // Dense layers need intermediate_size.
  EXPECT_THAT(
      ParseModelConfig(Patched(kDeepseekMoe16b, R"({"intermediate_size": null})")),
      StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'intermediate_size'"), HasSubstr("layer 0"))));
}

TEST(ModelConfigErrorTest, RejectsWrongTypesAndRanges) {
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"hidden_size": "4096"})")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'hidden_size'"), HasSubstr("integer"))));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"vocab_size": 0})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'vocab_size'")));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"num_experts_per_tok": 9})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'num_experts_per_tok'")));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"num_key_value_heads": 5})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'num_key_value_heads'")));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"tie_word_embeddings": 1})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'tie_word_embeddings'")));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"rms_norm_eps": -1})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'rms_norm_eps'")));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"torch_dtype": "int8"})")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'torch_dtype'"), HasSubstr("int8"))));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"hidden_act": "gelu"})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'hidden_act'")));
  EXPECT_THAT(ParseModelConfig(Patched(kOlmoe1b7b, R"({"head_dim": 64})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'head_dim'")));
  EXPECT_THAT(ParseModelConfig(Patched(kQwen15MoeA27b, R"({"mlp_only_layers": ["a"]})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'mlp_only_layers'")));
}

TEST(ModelConfigErrorTest, RejectsFeaturesTheEngineDoesNotImplement) {
  EXPECT_THAT(ParseModelConfig(Patched(kQwen3_30bA3b, R"({"attention_bias": true})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'attention_bias'")));
  EXPECT_THAT(ParseModelConfig(Patched(kOlmoe1b7b, R"({"rope_scaling": {"type": "linear", "factor": 2.0}})")),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'rope_scaling'"), HasSubstr("linear"))));
  EXPECT_THAT(ParseModelConfig(Patched(kQwen15MoeA27b, R"({"use_sliding_window": true})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'use_sliding_window'")));
  EXPECT_THAT(ParseModelConfig(Patched(kMixtral8x7b, R"({"sliding_window": 4096})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'sliding_window'")));
}

TEST(ModelConfigErrorTest, RejectsNonJson) {
  EXPECT_THAT(ParseModelConfig("{\"architectures\": [\"MixtralForCausalLM\"],"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid JSON")));
  EXPECT_THAT(ParseModelConfig("[1, 2]"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON object")));
}

TEST(ModelConfigErrorTest, LoadNamesThePath) {
  TempDir dir;
  EXPECT_THAT(LoadModelConfig(dir.path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr((dir.path() / "config.json").string())));
  WriteFile(dir.path() / "config.json", Patched(kMixtral8x7b, R"({"hidden_size": null})"));
  EXPECT_THAT(LoadModelConfig(dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr((dir.path() / "config.json").string()), HasSubstr("'hidden_size'"))));
  WriteFile(dir.path() / "config.json", kMixtral8x7b);
  EXPECT_THAT(LoadModelConfig(dir.path()), IsOk());
}

}  // namespace
}  // namespace adak::engine
