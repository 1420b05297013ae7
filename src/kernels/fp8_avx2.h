/* AVX2/F16C widening of FP8 codes, shared by the FP8 kernels
 * (kernels/fp8_avx2.c) and the GEMM packers that widen FP8 operands
 * (kernels/gemm_avx2.c). Include it only from files built with -mavx2
 * -mfma -mf16c. Exactly amp__e4m3_to_f32 / amp__e5m2_to_f32, lane by lane. */
#ifndef AMPC_FP8_AVX2_H
#define AMPC_FP8_AVX2_H

#include "ampc.h"

#include <immintrin.h>
#include <stdint.h>

/* Eight FP8 codes (in 32-bit lanes) to F32, exactly as the scalar
 * conversions (fmt AMP_E4M3 or AMP_E5M2, a constant where it is inlined). */
static inline __attribute__((always_inline)) __m256 amp__avx2_fp8_decode8(int fmt, __m256i v) {
  __m256i sign = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x80)), 24);
  __m256i mag = _mm256_and_si256(v, _mm256_set1_epi32(0x7f));
  if (fmt == AMP_E5M2) { /* E5M2 is the top byte of an F16 */
    __m256i h = _mm256_slli_epi32(v, 8);
    __m128i h16 = _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    return _mm256_cvtph_ps(h16);
  }
  /* E4M3: normal e >= 1: (e + 120) << 23 | m << 20, i.e. (mag << 20) + (120 << 23) */
  __m256i norm = _mm256_add_epi32(_mm256_slli_epi32(mag, 20), _mm256_set1_epi32(120 << 23));
  __m256 sub = _mm256_mul_ps(_mm256_cvtepi32_ps(mag), _mm256_set1_ps(0x1p-9f)); /* e == 0 */
  __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(8), mag);
  __m256i bits = _mm256_blendv_epi8(norm, _mm256_castps_si256(sub), is_sub);
  __m256i is_nan = _mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7f));
  bits = _mm256_blendv_epi8(bits, _mm256_set1_epi32(0x7fc00000), is_nan);
  return _mm256_castsi256_ps(_mm256_or_si256(bits, sign));
}

/* Eight consecutive FP8 codes from p, widened to F32. */
static inline __attribute__((always_inline)) __m256 amp__avx2_fp8_load8(int fmt, const uint8_t *p) {
  return amp__avx2_fp8_decode8(fmt, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

#endif
