// AVX2 weight-block loaders shared by the AVX2 kernels (matmul_avx2.cc, moe_experts_avx2.cc): blocks of 16
// elements of one row widened exactly to fp32 as two 8-lane vectors, for BF16 the even and the odd elements
// (the activations are de-interleaved to match, kDeinterleave), for F16/F32 the first and the second 8.
// Include only from translation units whose AVX2 code runs after a runtime CPU check: every function here
// carries the AVX2 target attribute. Stateless.
#ifndef ADAK_KERNELS_CPU_AVX2_WEIGHTS_H_
#define ADAK_KERNELS_CPU_AVX2_WEIGHTS_H_

#include <immintrin.h>

#include <cstdint>

#define ADAK_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace adak::kernels::internal::avx2 {

// Weight loaders: Lo/Hi give the fp32 values of the first/second 8 elements of a 16-element block as the
// kernel pairs them with the packed activations (for BF16: the even/odd elements).
struct Bf16Weights {
  using Elem = uint16_t;
  static constexpr bool kDeinterleave = true;
  ADAK_AVX2 static inline __m256i Raw(const Elem* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  ADAK_AVX2 static inline __m256 Lo(const Elem* p) { return _mm256_castsi256_ps(_mm256_slli_epi32(Raw(p), 16)); }
  ADAK_AVX2 static inline __m256 Hi(const Elem* p) {
    return _mm256_castsi256_ps(_mm256_and_si256(Raw(p), _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
};

struct F16Weights {
  using Elem = uint16_t;
  static constexpr bool kDeinterleave = false;
  ADAK_AVX2 static inline __m256 Lo(const Elem* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  ADAK_AVX2 static inline __m256 Hi(const Elem* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  }
};

struct F32Weights {
  using Elem = float;
  static constexpr bool kDeinterleave = false;
  ADAK_AVX2 static inline __m256 Lo(const Elem* p) { return _mm256_loadu_ps(p); }
  ADAK_AVX2 static inline __m256 Hi(const Elem* p) { return _mm256_loadu_ps(p + 8); }
};

}  // namespace adak::kernels::internal::avx2

#endif  // ADAK_KERNELS_CPU_AVX2_WEIGHTS_H_
