#include "engine/kv_cache.h"

#include <set>
#include <string>

#include "engine/cpu_backend.h"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::testing::HasSubstr;

ModelConfig SmallConfig() {
  ModelConfig c;
  c.num_layers = 3;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  return c;
}

TEST(KvCache, BytesPerBlockCountsKAndVOfEveryLayer) {
  // 2 (K, V) x 3 layers x 16 positions x (2 x 8) floats x 4 bytes.
  EXPECT_EQ(KvCache::BytesPerBlock(SmallConfig(), 16), 2 * 3 * 16 * 16 * 4);
}

TEST(KvCache, CreatesPerLayerStorageAndRefusesBadSizes) {
  CpuBackend backend(1);
  auto cache = KvCache::Create(&backend, SmallConfig(), 4, 16);
  ASSERT_THAT(cache.status(), IsOk());
  EXPECT_EQ((*cache)->num_blocks(), 4);
  EXPECT_EQ((*cache)->block_size(), 16);
  EXPECT_EQ((*cache)->dtype(), DType::kF32);
  std::set<void*> distinct;
  for (int64_t l = 0; l < 3; ++l) {
    distinct.insert((*cache)->k(l));
    distinct.insert((*cache)->v(l));
  }
  EXPECT_EQ(distinct.size(), 6u);
  EXPECT_THAT(KvCache::Create(&backend, SmallConfig(), 0, 16).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_blocks (0)")));
  EXPECT_THAT(KvCache::Create(&backend, SmallConfig(), 4, -1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("block_size (-1)")));
}

TEST(KvCache, Bf16HalvesTheBytesAndOtherTypesAreRefused) {
  EXPECT_EQ(KvCache::BytesPerBlock(SmallConfig(), 16, DType::kBF16), 2 * 3 * 16 * 16 * 2);
  CpuBackend backend(1);
  auto cache = KvCache::Create(&backend, SmallConfig(), 4, 16, DType::kBF16);
  ASSERT_THAT(cache.status(), IsOk());
  EXPECT_EQ((*cache)->dtype(), DType::kBF16);
  EXPECT_THAT(KvCache::Create(&backend, SmallConfig(), 4, 16, DType::kF16).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("element type F16 is not supported")));
}

TEST(KvCache, ParsesTheDTypeSpellings) {
  for (const char* name : {"f32", "fp32", "float32"}) EXPECT_EQ(*ParseKvCacheDType(name), DType::kF32) << name;
  for (const char* name : {"bf16", "bfloat16"}) EXPECT_EQ(*ParseKvCacheDType(name), DType::kBF16) << name;
  EXPECT_EQ(KvCacheDTypeName(DType::kBF16), "bf16");
  EXPECT_EQ(KvCacheDTypeName(DType::kF32), "f32");
  EXPECT_THAT(ParseKvCacheDType("fp8").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'fp8' is not one of f32, bf16")));
  EXPECT_THAT(ParseKvCacheDType(std::string(1000, 'x')).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'" + std::string(32, 'x') + "' is")));
}

TEST(DotPrecision, ParsesTheMatMulPrecisionSpellings) {
  for (const char* name : {"fp32", "f32", "float32"}) {
    EXPECT_EQ(*ParseDotPrecision(name), kernels::DotPrecision::kFp32) << name;
  }
  for (const char* name : {"bf16", "bfloat16"})
    EXPECT_EQ(*ParseDotPrecision(name), kernels::DotPrecision::kBf16) << name;
  EXPECT_EQ(DotPrecisionName(kernels::DotPrecision::kBf16), "bf16");
  EXPECT_EQ(DotPrecisionName(kernels::DotPrecision::kFp32), "fp32");
  EXPECT_THAT(
      ParseDotPrecision("fp16").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("matmul precision 'fp16' is not one of fp32, bf16")));
  EXPECT_THAT(ParseDotPrecision("").status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'' is not")));
  EXPECT_THAT(ParseDotPrecision(std::string(1000, 'x')).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'" + std::string(32, 'x') + "' is")));
}

TEST(BlocksFor, RoundsUpToWholeBlocks) {
  EXPECT_EQ(BlocksFor(0, 16), 0);
  EXPECT_EQ(BlocksFor(16, 16), 1);
  EXPECT_EQ(BlocksFor(17, 16), 2);
}

}  // namespace
}  // namespace adak::engine
