/* AVX2/F16C max pooling of a 2×2 window with stride 2 (CNNs' usual pool),
 * eight outputs at a time; other windows take the scalar reference. The
 * window is scanned in the reference's order with its rule (a candidate
 * wins when it is greater, or NaN where the best is not), so the same
 * input is chosen; the output copies its bits. A row's last ow % 8 outputs
 * go through zero-padded copies of the two input rows. */
#include "spatial_internal.h"

#include "../dtype/dtype_inline.h"
#include "../dtype/simd_avx2.h"

/* Elements 2j..2j+15 of a row as F32: the even ones (*e) and the odd ones
 * (*o), outputs j..j+7 in order. */
static inline void pairs(int dt, const void *r, int64_t j, __m256 *e, __m256 *o) {
  if (dt == AMP_F32) {
    const float *p = (const float *)r + 2 * j;
    __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    /* a0 a2 b0 b2 a4 a6 b4 b6 → a0 a2 a4 a6 b0 b2 b4 b6 */
    *e = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
    *o = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
    return;
  }
  __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)r + 2 * j));
  if (dt == AMP_BF16) {
    *e = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    *o = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
    return;
  }
  __m256i h = _mm256_packus_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)),
                                  _mm256_srli_epi32(v, 16)); /* e0-3 o0-3 | e4-7 o4-7 */
  __m256 lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
  __m256 hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
  *e = _mm256_permute2f128_ps(lo, hi, 0x20);
  *o = _mm256_permute2f128_ps(lo, hi, 0x31);
}

static inline void pick(__m256 v, __m256i off, __m256 *bv, __m256i *bi) {
  __m256 take = _mm256_or_ps(
      _mm256_cmp_ps(v, *bv, _CMP_GT_OQ),
      _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(*bv, *bv, _CMP_ORD_Q)));
  *bv = _mm256_blendv_ps(*bv, v, take);
  *bi = _mm256_blendv_epi8(*bi, off, _mm256_castps_si256(take));
}

/* Outputs j..j+7 of rows r0, r1 (r1 is w elements after r0 in the plane). */
static inline __m256 pool8(int dt, int64_t w, const void *r0, const void *r1, int64_t j,
                           __m256i *idx) {
  __m256 e0, o0, e1, o1;
  pairs(dt, r0, j, &e0, &o0);
  pairs(dt, r1, j, &e1, &o1);
  __m256 bv = e0;
  __m256i bi = _mm256_setzero_si256();
  pick(o0, _mm256_set1_epi32(1), &bv, &bi);
  pick(e1, _mm256_set1_epi32((int)w), &bv, &bi);
  pick(o1, _mm256_set1_epi32((int)w + 1), &bv, &bi);
  *idx = bi;
  return bv;
}

static inline void pool2x2_row(int dt, int64_t w, int64_t ow, const void *x, void *y, int32_t *arg,
                               int32_t base) {
  const size_t es = dt == AMP_F32 ? 4 : 2;
  const char *r1 = (const char *)x + (size_t)w * es;
  const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  int64_t j = 0;
  for (; j + 8 <= ow; j += 8) {
    __m256i bi;
    __m256 bv = pool8(dt, w, x, r1, j, &bi);
    __m256i at = _mm256_add_epi32(_mm256_add_epi32(bi, lane2), _mm256_set1_epi32((int)(2 * j)));
    _mm256_storeu_si256((__m256i *)(arg + j), _mm256_add_epi32(at, _mm256_set1_epi32(base)));
    if (dt == AMP_F32) { /* the blends moved the chosen bits */
      _mm256_storeu_ps((float *)y + j, bv);
    } else {
      int32_t a[8];
      _mm256_storeu_si256((__m256i *)a, at);
      for (int k = 0; k < 8; k++) ((uint16_t *)y)[j + k] = ((const uint16_t *)x)[a[k]];
    }
  }
  if (j < ow) { /* the tail: zero-padded copies of the rows' 2·(ow - j) elements */
    int64_t r = ow - j;
    uint32_t b0[16] = {0}, b1[16] = {0};
    memcpy(b0, (const char *)x + (size_t)(2 * j) * es, (size_t)(2 * r) * es);
    memcpy(b1, r1 + (size_t)(2 * j) * es, (size_t)(2 * r) * es);
    __m256i bi;
    (void)pool8(dt, w, b0, b1, 0, &bi);
    int32_t a[8];
    _mm256_storeu_si256((__m256i *)a, _mm256_add_epi32(bi, lane2));
    for (int64_t k = 0; k < r; k++) {
      int64_t at = 2 * (j + k) + a[k] - 2 * k; /* offset in the window + its start */
      arg[j + k] = base + (int32_t)at;
      if (dt == AMP_F32)
        ((uint32_t *)y)[j + k] = ((const uint32_t *)x)[at];
      else
        ((uint16_t *)y)[j + k] = ((const uint16_t *)x)[at];
    }
  }
}

void amp__max_pool_row_avx2(int dt, int64_t w, int64_t kh, int64_t kw, int64_t sw, int64_t ow,
                            const void *x, void *y, int32_t *arg, int32_t base) {
  if (kh != 2 || kw != 2 || sw != 2 || w > (INT32_MAX - 16) / 2) {
    amp__max_pool_row_scalar(dt, w, kh, kw, sw, ow, x, y, arg, base);
    return;
  }
  switch (dt) {
  case AMP_F16: pool2x2_row(AMP_F16, w, ow, x, y, arg, base); break;
  case AMP_BF16: pool2x2_row(AMP_BF16, w, ow, x, y, arg, base); break;
  default: pool2x2_row(AMP_F32, w, ow, x, y, arg, base); break;
  }
}
