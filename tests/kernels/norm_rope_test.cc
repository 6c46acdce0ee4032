#include <cmath>
#include <random>
#include <vector>

#include "base/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"

namespace adak::kernels {
namespace {

TEST(RmsNorm, MatchesReferenceAndKnownValue) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 2.0f);
  const int64_t rows = 7, dim = 37;
  std::vector<float> x(static_cast<size_t>(rows * dim));
  for (float& v : x) v = d(rng);
  std::vector<uint16_t> w(static_cast<size_t>(dim));
  for (auto& v : w) v = F32ToBf16(d(rng));
  RmsNormParams p{x.data(), rows, dim, dim, w.data(), DType::kBF16, 1e-5f, nullptr, dim};
  std::vector<float> got(x.size()), want(x.size());
  p.out = got.data();
  ThreadPool pool(2);
  RmsNorm(p, &pool);
  p.out = want.data();
  RmsNormReference(p);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i])));

  // [3, 4] with unit weights: rms = sqrt(12.5).
  const std::vector<float> x2 = {3, 4};
  const std::vector<float> w2 = {1, 1};
  std::vector<float> out(2);
  RmsNormReference({x2.data(), 1, 2, 2, w2.data(), DType::kF32, 0.0f, out.data(), 2});
  EXPECT_NEAR(out[0], 3 / std::sqrt(12.5f), 1e-6);
  EXPECT_NEAR(out[1], 4 / std::sqrt(12.5f), 1e-6);
}

TEST(Rope, PositionZeroIsIdentityAndRotationPreservesPairNorms) {
  const int64_t heads = 2, hd = 8;
  std::vector<float> x(static_cast<size_t>(2 * heads * hd));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.1f - 1.0f;
  const std::vector<float> orig = x;
  const std::vector<int32_t> pos = {0, 5};
  ThreadPool pool(2);
  ApplyRope({x.data(), 2, heads, hd, heads * hd, pos.data(), 10000.0}, &pool);
  for (int64_t i = 0; i < heads * hd; ++i) EXPECT_EQ(x[static_cast<size_t>(i)], orig[static_cast<size_t>(i)]);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const size_t a = static_cast<size_t>(heads * hd + h * hd + i), b = a + hd / 2;
      EXPECT_NEAR(x[a] * x[a] + x[b] * x[b], orig[a] * orig[a] + orig[b] * orig[b], 1e-5);
    }
  }
  // Pair 0 rotates by exactly 5 radians (inv_freq_0 = 1).
  const size_t a = static_cast<size_t>(heads * hd), b = a + hd / 2;
  EXPECT_NEAR(x[a], orig[a] * std::cos(5.0f) - orig[b] * std::sin(5.0f), 1e-5);
  EXPECT_NEAR(x[b], orig[b] * std::cos(5.0f) + orig[a] * std::sin(5.0f), 1e-5);
}

}  // namespace
}  // namespace adak::kernels
