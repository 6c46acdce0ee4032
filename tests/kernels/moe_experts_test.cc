#include "kernels/cpu/moe_experts.h"

#include <cmath>
#include <random>
#include <vector>

#include "base/dtype.h"
#include "gtest/gtest.h"

namespace adak::kernels {
namespace {

std::vector<uint16_t> RandomBf16(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 0.1f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = F32ToBf16(d(rng));
  return v;
}

// MoeExperts over a random plan (mixed k, an expert without rows) equals the per-token reference.
TEST(MoeExperts, MatchesReference) {
  const uint32_t seed = 7;
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const int64_t t = 5, h = 40, inter = 24, e = 4;
  std::vector<std::vector<uint16_t>> gate, up, down;
  std::vector<ExpertWeightPtrs> ptrs;
  for (int64_t i = 0; i < e; ++i) {
    gate.push_back(RandomBf16(static_cast<size_t>(inter * h), rng));
    up.push_back(RandomBf16(static_cast<size_t>(inter * h), rng));
    down.push_back(RandomBf16(static_cast<size_t>(h * inter), rng));
  }
  for (int64_t i = 0; i < e; ++i) ptrs.push_back({gate[i].data(), up[i].data(), down[i].data()});
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(t * h));
  for (float& v : x) v = d(rng);
  // Expert 3 gets no rows; token 4 has k = 0.
  const std::vector<int32_t> k = {2, 1, 3, 1, 0};
  const std::vector<int32_t> ids = {0, 1, -1, 2, -1, -1, 1, 0, 2, 0, -1, -1, -1, -1, -1};
  const std::vector<float> w = {0.6f, 0.4f, 0, 1.0f, 0, 0, 0.5f, 0.3f, 0.2f, 1.0f, 0, 0, 0, 0, 0};
  DispatchPlan plan;
  BuildDispatchPlan(k.data(), ids.data(), w.data(), t, 3, e, &plan);
  ASSERT_EQ(plan.num_rows(), 7);

  MoeExpertsParams p;
  p.x = x.data();
  p.hidden = h;
  p.intermediate = inter;
  p.dtype = DType::kBF16;
  p.experts = ptrs.data();
  p.plan = &plan;
  std::vector<float> got(static_cast<size_t>(t * h), 0.5f), want(got.size(), 0.5f);
  p.out = got.data();
  MoeScratch scratch;
  ThreadPool pool(2);
  MoeExperts(p, &scratch, &pool);
  p.out = want.data();
  MoeExpertsReference(p);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i]));
    ASSERT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i]))) << i;
  }
  // Token 4 (k = 0) is untouched.
  for (int64_t i = 0; i < h; ++i) EXPECT_EQ(got[static_cast<size_t>(4 * h + i)], 0.5f);
}

}  // namespace
}  // namespace adak::kernels
