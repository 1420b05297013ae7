/* AVX2/F16C loads and stores of F32, F16 and BF16 elements, shared by every
 * *_avx2.c file (include it only from those: they are the ones built with
 * -mavx2 -mfma -mf16c). Loads widen exactly; stores round to nearest even
 * exactly as amp__store_f32 in dtype_inline.h does (F16C for F16, integer
 * rounding with NaN quieting for BF16), so vector and scalar code agree bit
 * for bit. dt is AMP_F32, AMP_F16 or AMP_BF16; callers pass constants, so
 * the switches fold. */
#ifndef AMPC_SIMD_AVX2_H
#define AMPC_SIMD_AVX2_H

#include "ampc.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/* 8 BF16 bit patterns (zero-extended, one per 32-bit lane) → 8 F32. */
static inline __m256 amp__avx2_bf16_widen(__m256i h) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

/* Eight consecutive elements of a buffer of dtype dt from index i, as F32. */
static inline __m256 amp__avx2_load8(const void *p, int dt, size_t i) {
  if (dt == AMP_F32) return _mm256_loadu_ps((const float *)p + i);
  __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
  if (dt == AMP_F16) return _mm256_cvtph_ps(h);
  return amp__avx2_bf16_widen(_mm256_cvtepu16_epi32(h));
}

/* 8 F32 (as bits) → 8 BF16 in the low 16 bits of each 32-bit lane (the high
 * 16 are zero): round to nearest even, NaN quieted (bit 22 set) and its
 * payload otherwise kept, as amp__f32_to_bf16. */
static inline __m256i amp__avx2_bf16_round(__m256i x) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000);
  __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), inf);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  __m256i rne = _mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb);
  __m256i quiet = _mm256_or_si256(x, _mm256_set1_epi32(0x400000));
  return _mm256_srli_epi32(_mm256_blendv_epi8(rne, quiet, nan), 16);
}

/* 8 F32 → 8 F16 or BF16 bit patterns, in order. */
static inline __m128i amp__avx2_narrow8(int dt, __m256 v) {
  if (dt == AMP_F16) return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
  __m256i r = amp__avx2_bf16_round(_mm256_castps_si256(v));
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));
}

/* 16 F32 (a then b) → 16 BF16 bit patterns, in order. */
static inline __m256i amp__avx2_bf16_narrow16(__m256 a, __m256 b) {
  __m256i ra = amp__avx2_bf16_round(_mm256_castps_si256(a));
  __m256i rb = amp__avx2_bf16_round(_mm256_castps_si256(b));
  /* packus interleaves 128-bit lanes: a0-3 b0-3 a4-7 b4-7; reorder. */
  return _mm256_permute4x64_epi64(_mm256_packus_epi32(ra, rb), 0xd8);
}

/* Stores eight F32 values at index i of a buffer of dtype dt. */
static inline void amp__avx2_store8(void *p, int dt, size_t i, __m256 v) {
  if (dt == AMP_F32)
    _mm256_storeu_ps((float *)p + i, v);
  else
    _mm_storeu_si128((__m128i *)((uint16_t *)p + i), amp__avx2_narrow8(dt, v));
}

#endif
