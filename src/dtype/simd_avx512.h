/* Loads and stores of sixteen F32 lanes from and to F32, F16 and BF16
 * arrays, for the AVX-512F kernels (compiled with -mavx512f): widening is
 * exact, narrowing rounds to nearest even as amp__store_f32 does (F16:
 * vcvtps2ph; BF16: the integer rounding of amp__f32_to_bf16, NaN quieted
 * with its payload kept), the same bits as dtype/simd_avx2.h on eight
 * lanes. Internal. */
#ifndef AMPC_SIMD_AVX512_H
#define AMPC_SIMD_AVX512_H

#include "ampc.h"

#include <immintrin.h>

/* 16 consecutive values of dtype dt from index i, as F32 (exact). */
static inline __attribute__((always_inline)) __m512 amp__avx512_load16(const void *p, const int dt,
                                                                       size_t i) {
  if (dt == AMP_F32) return _mm512_loadu_ps((const float *)p + i);
  const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
  if (dt == AMP_F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Stores 16 F32 values as dtype dt at index i, rounded to nearest even. */
static inline __attribute__((always_inline)) void amp__avx512_store16(void *p, const int dt,
                                                                      size_t i, __m512 v) {
  if (dt == AMP_F32) {
    _mm512_storeu_ps((float *)p + i, v);
    return;
  }
  __m256i h;
  if (dt == AMP_F16) {
    h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
  } else {
    const __m512i x = _mm512_castps_si512(v);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(
        _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i rne = _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb);
    const __m512i quiet = _mm512_or_si512(x, _mm512_set1_epi32(0x400000));
    h = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_mask_blend_epi32(nan, rne, quiet), 16));
  }
  _mm256_storeu_si256((__m256i *)((uint16_t *)p + i), h);
}

#endif
