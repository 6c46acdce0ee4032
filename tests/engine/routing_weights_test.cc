// Allocator and null-expert files: validated against the model, with errors naming the tensor; and the
// policies that use them, end to end on a random model.
#include "engine/routing_weights.h"

#include <cstring>
#include <random>

#include "base/strings.h"
#include "engine/model.h"
#include "engine/routing.h"
#include "engine/safetensors.h"
#include "engine/session.h"
#include "testing/make_model.h"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::testing::HasSubstr;

struct FileTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::kF32;
};

// Writes `tensors` with N(0, scale) values (bf16/f32) and the given metadata.
void WriteFile(const std::filesystem::path& path, const std::vector<FileTensor>& tensors,
               const std::map<std::string, std::string>& metadata, float scale = 0.1f) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<std::vector<std::byte>> storage;
  std::vector<TensorToWrite> out;
  for (const FileTensor& t : tensors) {
    int64_t n = 1;
    for (int64_t s : t.shape) n *= s;
    std::vector<std::byte> bytes(static_cast<size_t>(n) * DTypeSize(t.dtype));
    for (int64_t i = 0; i < n; ++i) {
      const float v = d(rng);
      if (t.dtype == DType::kBF16) {
        const uint16_t b = F32ToBf16(v);
        std::memcpy(bytes.data() + 2 * i, &b, 2);
      } else if (t.dtype == DType::kF32) {
        std::memcpy(bytes.data() + 4 * i, &v, 4);
      }
    }
    storage.push_back(std::move(bytes));
    out.push_back({t.name, t.dtype, t.shape, storage.back()});
  }
  ASSERT_THAT(WriteSafetensors(path, out, metadata), IsOk());
}

class RoutingWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeModelParams params;
    params.arch = Architecture::kDeepseek;  // layer 0 dense, layers 1..2 MoE, 8 experts top-2, raw weights
    params.seed = 3;
    params.overrides = {{"num_hidden_layers", "3"}, {"hidden_size", "64"}};
    ASSERT_THAT(testing::MakeModel(params, tmp_.path() / "model"), IsOk());
    auto model = LoadModel(tmp_.path() / "model");
    ASSERT_THAT(model.status(), IsOk());
    model_ = *std::move(model);
    e_ = model_->config.num_experts;
    h_ = model_->config.hidden_size;
    ASSERT_FALSE(model_->config.moe_layers[0]);
  }

  std::filesystem::path Path(const std::string& name) const { return tmp_.path() / name; }

  ::adak::testing::TempDir tmp_;
  std::unique_ptr<Model> model_;
  int64_t e_ = 0, h_ = 0;
};

TEST_F(RoutingWeightsTest, LoadsAllocatorAndNullExperts) {
  WriteFile(Path("alloc.safetensors"),
            {{"layers.1.allocator.weight", {e_, h_}, DType::kBF16}, {"layers.2.allocator.weight", {e_, h_}}},
            {{"format", "adak-allocator"}, {"version", "1"}});
  RoutingWeights w;
  ASSERT_THAT(LoadAllocator(Path("alloc.safetensors"), model_->config, &w), IsOk());
  EXPECT_TRUE(w.has_allocator());
  EXPECT_TRUE(w.allocators[0].layers[0].empty());
  EXPECT_EQ(w.allocators[0].layers[1].size(), static_cast<size_t>(e_ * h_));
  EXPECT_EQ(w.allocators[0].metadata.at("version"), "1");

  WriteFile(Path("null.safetensors"), {{"layers.1.null_gate.weight", {3, h_}}, {"layers.2.null_gate.weight", {3, h_}}},
            {{"format", "adak-null-experts"}, {"top_k", "4"}});
  ASSERT_THAT(LoadNullExperts(Path("null.safetensors"), model_->config, &w), IsOk());
  EXPECT_EQ(w.num_null, 3);
  EXPECT_EQ(w.null_top_k, 4);
}

TEST_F(RoutingWeightsTest, RefusesMismatchedFilesNamingTheTensor) {
  RoutingWeights w;
  WriteFile(Path("shape.safetensors"), {{"layers.1.allocator.weight", {e_ - 1, h_}}}, {});
  EXPECT_THAT(LoadAllocator(Path("shape.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor 'layers.1.allocator.weight' has shape [7, 64], expected [8, 64]")));
  WriteFile(Path("hidden.safetensors"), {{"layers.1.allocator.weight", {e_, h_ + 1}}}, {});
  EXPECT_THAT(LoadAllocator(Path("hidden.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected [8, 64]")));
  WriteFile(Path("layer.safetensors"), {{"layers.3.allocator.weight", {e_, h_}}}, {});
  EXPECT_THAT(LoadAllocator(Path("layer.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names layer 3, which is not an MoE layer")));
  WriteFile(Path("dense.safetensors"), {{"layers.0.allocator.weight", {e_, h_}}}, {});
  EXPECT_THAT(LoadAllocator(Path("dense.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'layers.0.allocator.weight' names layer 0")));
  WriteFile(Path("name.safetensors"), {{"layers.1.router.weight", {e_, h_}}}, {});
  EXPECT_THAT(LoadAllocator(Path("name.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected tensor 'layers.1.router.weight'")));
  WriteFile(Path("dtype.safetensors"), {{"layers.1.allocator.weight", {e_, h_}, DType::kI32}}, {});
  EXPECT_THAT(LoadAllocator(Path("dtype.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has dtype I32")));
  WriteFile(Path("format.safetensors"), {{"layers.1.allocator.weight", {e_, h_}}}, {{"format", "adak-null-experts"}});
  EXPECT_THAT(LoadAllocator(Path("format.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metadata format is 'adak-null-experts'")));
  WriteFile(Path("m.safetensors"), {{"layers.1.null_gate.weight", {2, h_}}, {"layers.2.null_gate.weight", {3, h_}}},
            {});
  EXPECT_THAT(LoadNullExperts(Path("m.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has shape [3, 64], expected [2, 64]")));
  WriteFile(Path("topk.safetensors"), {{"layers.1.null_gate.weight", {2, h_}}}, {{"top_k", "11"}});
  EXPECT_THAT(
      LoadNullExperts(Path("topk.safetensors"), model_->config, &w),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metadata top_k '11' must be an integer in [1, 10]")));
  EXPECT_THAT(LoadAllocator(Path("missing.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.safetensors")));
  EXPECT_FALSE(w.has_allocator());
}

TEST_F(RoutingWeightsTest, ValidatesRoutingParams) {
  RoutingWeights none;
  RoutingParams p;
  p.policy = RoutingPolicy::kAdaK;
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, none),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs an allocator file")));
  p.policy = RoutingPolicy::kNull;
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, none),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a null-experts file")));
  p.policy = RoutingPolicy::kTopP;
  p.top_p = 1.5f;
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, none),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_p must be in (0, 1], got 1.5")));
  p = {};
  p.top_k = 9;
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, none),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_k must be in [0, 8]")));
  p = {};
  p.min_k = 5;
  p.max_k = 3;
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, none),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_k (5) must not exceed max_k (3)")));
  p = {.policy = RoutingPolicy::kThreshold, .threshold = -0.1f};
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, none),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("threshold must be in [0, 1], got -0.1")));
  p.threshold = 0.5f;
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, none), IsOk());
  p.min_k = 3;  // native K is 2
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, none),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("min_k for policy 'threshold' must be in [0, 2] (the native K), got 3")));
  EXPECT_THAT(ParseRoutingPolicy("bogus"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("topk, adak, null, topp, threshold")));
  for (RoutingPolicy policy : kRoutingPolicies) EXPECT_EQ(*ParseRoutingPolicy(RoutingPolicyName(policy)), policy);
  for (TopPWeighting w : {TopPWeighting::kModel, TopPWeighting::kRaw}) {
    EXPECT_EQ(*ParseTopPWeighting(TopPWeightingName(w)), w);
  }
  EXPECT_THAT(ParseTopPWeighting("renormalised"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown top-p weighting 'renormalised'")));
}

// Allocator profiles: names (given, from the metadata, "default"), refusals, the measured metadata, and each
// token routed by its own profile in one batch of the engine.
TEST_F(RoutingWeightsTest, LoadsNamedProfilesAndRoutesEachByItsOwn) {
  WriteFile(Path("eco.safetensors"), {{"layers.1.allocator.weight", {e_, h_}}, {"layers.2.allocator.weight", {e_, h_}}},
            {{"profile", "eco"}, {"measured_mean_k", "1.25"}, {"measured_ppl_delta", "0.031"}, {"measured_on", "x"}});
  WriteFile(Path("layer2.safetensors"), {{"layers.2.allocator.weight", {e_, h_}}}, {}, /*scale=*/2.0f);
  RoutingWeights w;
  ASSERT_THAT(LoadAllocator(Path("eco.safetensors"), model_->config, &w), IsOk());
  ASSERT_THAT(LoadAllocator(Path("layer2.safetensors"), model_->config, &w), IsOk());
  ASSERT_THAT(LoadAllocator(Path("eco.safetensors"), model_->config, &w, "again"), IsOk());
  EXPECT_EQ(w.ProfileNames(), "eco, default, again");
  EXPECT_EQ(w.FindProfile("default"), 1);
  EXPECT_EQ(w.FindProfile("nope"), -1);
  EXPECT_EQ(w.allocators[0].measured_mean_k(), 1.25);
  EXPECT_EQ(w.allocators[0].measured_ppl_delta(), 0.031);
  EXPECT_EQ(w.allocators[1].measured_mean_k(), std::nullopt);
  EXPECT_THAT(LoadAllocator(Path("eco.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("profile 'eco' is already loaded")));
  EXPECT_THAT(LoadAllocator(Path("eco.safetensors"), model_->config, &w, "no spaces"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be 1 to 32 characters of [A-Za-z0-9_.-]")));
  RoutingWeights full;
  for (int i = 0; i < 16; ++i) {
    ASSERT_THAT(LoadAllocator(Path("eco.safetensors"), model_->config, &full, StrCatStd("p", i)), IsOk());
  }
  EXPECT_THAT(LoadAllocator(Path("eco.safetensors"), model_->config, &full, "p16"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 16 allocator profiles")));

  RoutingParams p{.policy = RoutingPolicy::kAdaK, .profile = 3};
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, w),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("profile index 3 is not loaded (3 profiles: eco, default, again)")));
  p = {.policy = RoutingPolicy::kTopK, .profile = 1};
  EXPECT_THAT(ValidateRoutingParams(p, model_->config, w),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("profile applies to policy 'adak' only")));

  // One engine over the three profiles: "again" routes as "eco" (the same file); "default" has no allocator in
  // layer 1, which then keeps the native k = 2, and its own rows in layer 2.
  auto session = Session::Create(*model_, SessionOptions{}, w);
  ASSERT_THAT(session.status(), IsOk());
  std::vector<int32_t> tokens(24);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(7 + 13 * i);
  auto run = [&](int32_t profile) {
    (*session)->Reset();
    AppendOptions options;
    options.routing = {.policy = RoutingPolicy::kAdaK, .profile = profile};
    AppendResult out;
    EXPECT_THAT((*session)->Append(tokens, options, &out), IsOk());
    return out.routed_k;
  };
  const auto eco = run(0), layer2 = run(1), again = run(2);
  EXPECT_EQ(eco, again);
  for (int32_t k : layer2[1]) EXPECT_EQ(k, 2);
  EXPECT_NE(eco[2], layer2[2]);
  auto single = Session::Create(*model_, SessionOptions{}, [&] {
    RoutingWeights one;
    EXPECT_THAT(LoadAllocator(Path("layer2.safetensors"), model_->config, &one), IsOk());
    return one;
  }());
  ASSERT_THAT(single.status(), IsOk());
  AppendOptions options;
  options.routing.policy = RoutingPolicy::kAdaK;
  AppendResult alone;
  ASSERT_THAT((*single)->Append(tokens, options, &alone), IsOk());
  EXPECT_EQ(alone.routed_k, layer2);  // a profile routes as its file loaded alone
}

// Version 2: W, U [E, E] and b [E] in every layer with an allocator; a layer with only some of them is refused.
TEST_F(RoutingWeightsTest, LoadsVersionTwoAllocatorsAndRefusesPartialOnes) {
  WriteFile(Path("v2.safetensors"),
            {{"layers.1.allocator.weight", {e_, h_}},
             {"layers.1.allocator.router_weight", {e_, e_}},
             {"layers.1.allocator.bias", {e_}}},
            {{"version", "2"}});
  RoutingWeights w;
  ASSERT_THAT(LoadAllocator(Path("v2.safetensors"), model_->config, &w), IsOk());
  EXPECT_EQ(w.allocators[0].version, 2);
  EXPECT_EQ(w.allocators[0].router_weight[1].size(), static_cast<size_t>(e_ * e_));
  EXPECT_EQ(w.allocators[0].bias[1].size(), static_cast<size_t>(e_));
  EXPECT_TRUE(w.allocators[0].bias[2].empty());
  auto session = Session::Create(*model_, SessionOptions{}, w);
  ASSERT_THAT(session.status(), IsOk());
  AppendOptions options;
  options.routing.policy = RoutingPolicy::kAdaK;
  AppendResult out;
  ASSERT_THAT((*session)->Append(std::vector<int32_t>{3, 8, 13}, options, &out), IsOk());

  WriteFile(Path("partial.safetensors"), {{"layers.1.allocator.weight", {e_, h_}}, {"layers.1.allocator.bias", {e_}}},
            {});
  EXPECT_THAT(LoadAllocator(Path("partial.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("layer 1 must have all of layers.{i}.allocator.weight, .allocator.router_weight")));
  WriteFile(Path("u.safetensors"),
            {{"layers.1.allocator.weight", {e_, h_}},
             {"layers.1.allocator.router_weight", {e_, e_ + 1}},
             {"layers.1.allocator.bias", {e_}}},
            {});
  EXPECT_THAT(LoadAllocator(Path("u.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'layers.1.allocator.router_weight' has shape [8, 9], expected [8, 8]")));
  WriteFile(Path("b.safetensors"),
            {{"layers.1.allocator.weight", {e_, h_}},
             {"layers.1.allocator.router_weight", {e_, e_}},
             {"layers.1.allocator.bias", {e_, 1}}},
            {});
  EXPECT_THAT(LoadAllocator(Path("b.safetensors"), model_->config, &w),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'layers.1.allocator.bias' has shape [8, 1], expected [8]")));
}

// The measured numbers `adak eval --record` writes land in the file's metadata; its tensors stay as they were.
TEST_F(RoutingWeightsTest, UpdatesTheMetadataOfAnAllocatorFile) {
  WriteFile(Path("a.safetensors"), {{"layers.1.allocator.weight", {e_, h_}, DType::kBF16}}, {{"lambda", "0.03"}});
  RoutingWeights before;
  ASSERT_THAT(LoadAllocator(Path("a.safetensors"), model_->config, &before), IsOk());
  ASSERT_THAT(UpdateSafetensorsMetadata(Path("a.safetensors"), {{"measured_mean_k", "1.5"}, {"profile", "eco"}}),
              IsOk());
  RoutingWeights after;
  ASSERT_THAT(LoadAllocator(Path("a.safetensors"), model_->config, &after), IsOk());
  EXPECT_EQ(after.allocators[0].name, "eco");
  EXPECT_EQ(after.allocators[0].measured_mean_k(), 1.5);
  EXPECT_EQ(after.allocators[0].metadata.at("lambda"), "0.03");
  EXPECT_EQ(after.allocators[0].layers, before.allocators[0].layers);
  EXPECT_FALSE(std::filesystem::exists(Path("a.safetensors.tmp")));
  EXPECT_THAT(UpdateSafetensorsMetadata(Path("missing.safetensors"), {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.safetensors")));
}

// Every policy end to end through the session: k stays in range (0..1 under null experts with k' = 1),
// dense layer 0 reports 0, and the logits stay finite.
TEST_F(RoutingWeightsTest, PoliciesRunEndToEnd) {
  WriteFile(Path("alloc.safetensors"),
            {{"layers.1.allocator.weight", {e_, h_}}, {"layers.2.allocator.weight", {e_, h_}}}, {});
  WriteFile(Path("null.safetensors"), {{"layers.1.null_gate.weight", {2, h_}}, {"layers.2.null_gate.weight", {2, h_}}},
            {{"top_k", "1"}}, /*scale=*/0.0f);
  RoutingWeights w;
  ASSERT_THAT(LoadAllocator(Path("alloc.safetensors"), model_->config, &w), IsOk());
  ASSERT_THAT(LoadNullExperts(Path("null.safetensors"), model_->config, &w), IsOk());
  auto session = Session::Create(*model_, SessionOptions{}, std::move(w));
  ASSERT_THAT(session.status(), IsOk());
  const std::vector<int32_t> tokens = {5, 9, 33, 2, 17, 80, 3};
  for (RoutingPolicy policy : kRoutingPolicies) {
    SCOPED_TRACE(RoutingPolicyName(policy));
    (*session)->Reset();
    AppendOptions options;
    options.routing.policy = policy;
    options.routing.top_p = 0.5f;
    options.routing.threshold = 0.5f;
    AppendResult out;
    ASSERT_THAT((*session)->Append(tokens, options, &out), IsOk());
    for (int32_t k : out.routed_k[0]) EXPECT_EQ(k, 0);
    for (size_t l = 1; l < 3; ++l) {
      for (int32_t k : out.routed_k[l]) {
        EXPECT_GE(k, policy == RoutingPolicy::kNull ? 0 : 1);
        EXPECT_LE(k, policy == RoutingPolicy::kNull ? 1 : e_);
        if (policy == RoutingPolicy::kTopK) {
          EXPECT_EQ(k, 2);
        }
        if (policy == RoutingPolicy::kTopP || policy == RoutingPolicy::kThreshold) {
          EXPECT_LE(k, 2);  // within the native top-2
        }
      }
    }
    for (float v : out.logits) ASSERT_FALSE(std::isnan(v));
  }
}

}  // namespace
}  // namespace adak::engine
