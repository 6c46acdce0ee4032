// AVX-512 vector math shared by the AVX-512 kernels (moe_experts_avx512.cc's SwiGLU, paged_attention.cc's
// softmax). Include only from translation units whose AVX-512 code runs after a runtime CPU check: every
// function here carries the AVX-512 target attribute. Stateless.
#ifndef ADAK_KERNELS_CPU_AVX512_MATH_H_
#define ADAK_KERNELS_CPU_AVX512_MATH_H_

#include <immintrin.h>

#include "kernels/cpu/avx512_weights.h"  // ADAK_AVX512

namespace adak::kernels::internal::avx512 {

// exp(x) to ~1 ulp (Cephes expf: Cody-Waite reduction by ln 2, degree-6 polynomial, scalef); exact 0 and inf
// at the ends of the range, NaN stays NaN.
ADAK_AVX512 inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), x));  // NaN passes
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

}  // namespace adak::kernels::internal::avx512

#endif  // ADAK_KERNELS_CPU_AVX512_MATH_H_
