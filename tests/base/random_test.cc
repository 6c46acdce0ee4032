// base/random.h: SplitMix64 against the reference implementation's published outputs for seed 0.
#include "base/random.h"

#include "gtest/gtest.h"

namespace adak {
namespace {

TEST(SplitMix64, GeneratorMatchesTheReferenceSequenceFromSeedZero) {
  uint64_t state = 0;
  EXPECT_EQ(SplitMix64Next(state), 0xe220a8397b1dcdafull);
  EXPECT_EQ(SplitMix64Next(state), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(SplitMix64Next(state), 0x06c45d188009454full);
  EXPECT_EQ(state, 3 * kGoldenGamma);
}

TEST(SplitMix64, PureFormIsTheGeneratorsOutputForThatState) {
  uint64_t state = 12345;
  const uint64_t expected = SplitMix64(12345);
  EXPECT_EQ(SplitMix64Next(state), expected);
  EXPECT_NE(SplitMix64(1), SplitMix64(2));
}

}  // namespace
}  // namespace adak
