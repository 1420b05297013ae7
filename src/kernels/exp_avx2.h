/* ampc's own exp (tanh_internal.h: amp__exp_ref's operation sequence) on
 * eight AVX2/FMA lanes, FMA for fmaf: the scalar reference's bits for
 * arguments in its range (the callers clamp or blend the rest). Shared by
 * the tanh kernels and the softmax rows. Internal. */
#ifndef AMPC_EXP_AVX2_H
#define AMPC_EXP_AVX2_H

#include "tanh_internal.h"

#include "../dtype/simd_avx2.h"

static inline __m256 amp__exp8_avx2(__m256 w) {
#define S1 _mm256_set1_ps
  __m256 k =
      _mm256_sub_ps(_mm256_fmadd_ps(w, S1(AMP__EXP_LOG2E), S1(AMP__EXP_MAGIC)), S1(AMP__EXP_MAGIC));
  __m256 r = _mm256_fnmadd_ps(k, S1(AMP__EXP_LN2_HI), w);
  r = _mm256_fnmadd_ps(k, S1(AMP__EXP_LN2_LO), r);
  __m256 p = _mm256_fmadd_ps(S1(AMP__EXP_E0), r, S1(AMP__EXP_E1));
  p = _mm256_fmadd_ps(p, r, S1(AMP__EXP_E2));
  p = _mm256_fmadd_ps(p, r, S1(AMP__EXP_E3));
  p = _mm256_fmadd_ps(p, r, S1(AMP__EXP_E4));
  p = _mm256_fmadd_ps(p, r, S1(AMP__EXP_E5));
  __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), S1(1.0f));
  __m256i sh = _mm256_slli_epi32(_mm256_cvtps_epi32(k), 23);
  return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(e), sh));
#undef S1
}

#endif
