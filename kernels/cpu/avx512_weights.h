// AVX-512 weight-block loaders shared by the AVX-512 kernels (matmul_avx512.cc, moe_experts_avx512.cc).
//
// Weights are read in blocks of 32 elements of one row and widened exactly to fp32 as two vectors, lo and hi,
// in the order the kernels pair them with their packed activations: for BF16 the even and the odd elements
// (one bit operation per half of a single 64-byte load; the activations are de-interleaved to match,
// kDeinterleave), for F16/F32 the first and the second 16 elements. The *Tail variants read only `rem`
// (0 < rem < 32) elements and zero the rest. RowSource/LoadShifted read rows that start off a 64-byte
// boundary from two aligned loads and one permute: such rows make every unaligned 64-byte load straddle two
// cache lines (~15% slower from memory, measured), and mmapped checkpoint tensors are only 8-byte aligned.
//
// Include only from translation units whose AVX-512 code runs after a runtime CPU check: every function here
// carries the AVX-512 target attribute. Stateless.
#ifndef ADAK_KERNELS_CPU_AVX512_WEIGHTS_H_
#define ADAK_KERNELS_CPU_AVX512_WEIGHTS_H_

#include <immintrin.h>

#include <cstdint>

#define ADAK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace adak::kernels::internal::avx512 {

// Mask with the low `rem` bits set, 0 < rem < 32.
ADAK_AVX512 inline __mmask32 TailMask(int64_t rem) { return static_cast<__mmask32>((1u << rem) - 1u); }

// Where a matrix's rows are read from. When all rows share the same offset from a 64-byte boundary (a whole
// number of lines per row) and it is a multiple of 4 bytes, blocks are assembled from aligned loads:
// `shift_bytes` is that offset and idx selects 32-bit lanes shift .. shift + 15 of two concatenated vectors.
struct RowSource {
  bool shifted = false;
  int64_t shift_bytes = 0;
  __m512i idx;
};

ADAK_AVX512 inline RowSource SourceFor(const void* w, int64_t row_bytes) {
  RowSource s;
  const auto offset = static_cast<int64_t>(reinterpret_cast<uintptr_t>(w) % 64);
  s.shifted = offset != 0 && offset % 4 == 0 && row_bytes % 64 == 0;
  s.shift_bytes = s.shifted ? offset : 0;
  s.idx = _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(static_cast<int>(offset / 4)));
  return s;
}

// The 64 bytes at aligned + shift, from the two aligned lines at `aligned`.
ADAK_AVX512 inline __m512i ShiftedLoad(const char* aligned, __m512i idx) {
  return _mm512_permutex2var_epi32(_mm512_load_si512(aligned), idx, _mm512_load_si512(aligned + 64));
}

struct Bf16Weights {
  using Elem = uint16_t;
  static constexpr bool kDeinterleave = true;
  ADAK_AVX512 static inline __m512 Lo(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
  ADAK_AVX512 static inline __m512 Hi(__m512i v) {
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  ADAK_AVX512 static inline __m512 Lo(const Elem* p) { return Lo(_mm512_loadu_si512(p)); }
  ADAK_AVX512 static inline __m512 Hi(const Elem* p) { return Hi(_mm512_loadu_si512(p)); }
  ADAK_AVX512 static inline void Load(const Elem* p, __m512& lo, __m512& hi) {
    const __m512i v = _mm512_loadu_si512(p);
    lo = Lo(v);
    hi = Hi(v);
  }
  // `a` = the block's address minus the row source's shift (64-byte aligned).
  ADAK_AVX512 static inline void LoadShifted(const char* a, __m512i idx, __m512& lo, __m512& hi) {
    const __m512i v = ShiftedLoad(a, idx);
    lo = Lo(v);
    hi = Hi(v);
  }
  ADAK_AVX512 static inline __m512 LoTail(const Elem* p, int64_t rem) {
    return Lo(_mm512_maskz_loadu_epi16(TailMask(rem), p));
  }
  ADAK_AVX512 static inline __m512 HiTail(const Elem* p, int64_t rem) {
    return Hi(_mm512_maskz_loadu_epi16(TailMask(rem), p));
  }
};

struct F16Weights {
  using Elem = uint16_t;
  static constexpr bool kDeinterleave = false;
  ADAK_AVX512 static inline void Widen(__m512i v, __m512& lo, __m512& hi) {
    lo = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
    hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
  }
  ADAK_AVX512 static inline __m512 Lo(const Elem* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  ADAK_AVX512 static inline __m512 Hi(const Elem* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
  }
  ADAK_AVX512 static inline void Load(const Elem* p, __m512& lo, __m512& hi) { Widen(_mm512_loadu_si512(p), lo, hi); }
  ADAK_AVX512 static inline void LoadShifted(const char* a, __m512i idx, __m512& lo, __m512& hi) {
    Widen(ShiftedLoad(a, idx), lo, hi);
  }
  ADAK_AVX512 static inline __m512 LoTail(const Elem* p, int64_t rem) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(static_cast<__mmask16>(TailMask(rem)), p));
  }
  ADAK_AVX512 static inline __m512 HiTail(const Elem* p, int64_t rem) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(static_cast<__mmask16>(TailMask(rem) >> 16), p + 16));
  }
};

struct F32Weights {
  using Elem = float;
  static constexpr bool kDeinterleave = false;
  ADAK_AVX512 static inline __m512 Lo(const Elem* p) { return _mm512_loadu_ps(p); }
  ADAK_AVX512 static inline __m512 Hi(const Elem* p) { return _mm512_loadu_ps(p + 16); }
  ADAK_AVX512 static inline void Load(const Elem* p, __m512& lo, __m512& hi) {
    lo = Lo(p);
    hi = Hi(p);
  }
  ADAK_AVX512 static inline void LoadShifted(const char* a, __m512i idx, __m512& lo, __m512& hi) {
    const __m512i mid = _mm512_load_si512(a + 64);
    lo = _mm512_castsi512_ps(_mm512_permutex2var_epi32(_mm512_load_si512(a), idx, mid));
    hi = _mm512_castsi512_ps(_mm512_permutex2var_epi32(mid, idx, _mm512_load_si512(a + 128)));
  }
  ADAK_AVX512 static inline __m512 LoTail(const Elem* p, int64_t rem) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>(TailMask(rem)), p);
  }
  ADAK_AVX512 static inline __m512 HiTail(const Elem* p, int64_t rem) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>(TailMask(rem) >> 16), p + 16);
  }
};

}  // namespace adak::kernels::internal::avx512

#endif  // ADAK_KERNELS_CPU_AVX512_WEIGHTS_H_
