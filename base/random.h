// SplitMix64 (Steele, Lea & Flood 2014): the one 64-bit mixing function of the project, for seeding
// generators (testing/make_model.cc) and for keyed, reproducible draws (kernels/cpu/moe_routing.cc).
// Pure functions; safe from any thread.
#ifndef ADAK_BASE_RANDOM_H_
#define ADAK_BASE_RANDOM_H_

#include <cstdint>

namespace adak {

inline constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ull;

// The SplitMix64 output for the state `x` before its increment: a bijection of x, so distinct keys give
// distinct, well-mixed values.
[[nodiscard]] constexpr uint64_t SplitMix64(uint64_t x) {
  x += kGoldenGamma;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The generator form: returns the next output and advances `state`.
[[nodiscard]] constexpr uint64_t SplitMix64Next(uint64_t& state) {
  const uint64_t out = SplitMix64(state);
  state += kGoldenGamma;
  return out;
}

}  // namespace adak

#endif  // ADAK_BASE_RANDOM_H_
