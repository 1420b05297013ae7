/* AVX2/F16C max pooling of a 2×2 window with stride 2 (CNNs' usual pool),
 * eight outputs at a time; other windows take the scalar reference. The
 * window is scanned in the reference's order with its rule (a candidate
 * wins when it is greater, or NaN where the best is not), so the same
 * input is chosen, and the output is its bits (blended alongside). A row's
 * last ow % 8 outputs use masked loads and stores. */
#include "spatial_internal.h"

#include "../dtype/dtype_inline.h"
#include "../dtype/simd_avx2.h"

/* Lanes below n set (n in 0..8). */
static inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Elements 2j..2j+2n-1 of a row (n <= 8 outputs; the rest read as 0, never
 * touched in memory) as F32: the even ones (*e) and the odd ones (*o),
 * outputs j..j+7 in order; *re, *ro: their bits (16-bit dtypes: the raw
 * element zero-extended, F32: the value's bits). */
static inline void pairs(int dt, const void *r, int64_t j, int64_t n, __m256 *e, __m256 *o,
                         __m256i *re, __m256i *ro) {
  if (dt == AMP_F32) {
    const float *p = (const float *)r + 2 * j;
    __m256 a = n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first_lanes(2 * n));
    __m256 b = n == 8 ? _mm256_loadu_ps(p + 8) : _mm256_maskload_ps(p + 8, first_lanes(2 * n - 8));
    /* a0 a2 b0 b2 a4 a6 b4 b6 → a0 a2 a4 a6 b0 b2 b4 b6 */
    *e = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
    *o = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
    *re = _mm256_castps_si256(*e);
    *ro = _mm256_castps_si256(*o);
    return;
  }
  const int *q = (const int *)(const void *)((const uint16_t *)r + 2 * j);
  __m256i v = n == 8 ? _mm256_loadu_si256((const __m256i *)(const void *)q)
                     : _mm256_maskload_epi32(q, first_lanes(n));
  *re = _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
  *ro = _mm256_srli_epi32(v, 16);
  if (dt == AMP_BF16) {
    *e = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    *o = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
    return;
  }
  __m256i h = _mm256_packus_epi32(*re, *ro); /* e0-3 o0-3 | e4-7 o4-7 */
  __m256 lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
  __m256 hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
  *e = _mm256_permute2f128_ps(lo, hi, 0x20);
  *o = _mm256_permute2f128_ps(lo, hi, 0x31);
}

/* The reference's step: v (bits rv, window offset off) replaces the best
 * when greater, or NaN where the best is not. */
static inline void pick(__m256 v, __m256i rv, __m256i off, __m256 *bv, __m256i *bi, __m256i *bb) {
  __m256 take = _mm256_or_ps(
      _mm256_cmp_ps(v, *bv, _CMP_GT_OQ),
      _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(*bv, *bv, _CMP_ORD_Q)));
  *bv = _mm256_blendv_ps(*bv, v, take);
  *bi = _mm256_blendv_epi8(*bi, off, _mm256_castps_si256(take));
  *bb = _mm256_blendv_epi8(*bb, rv, _mm256_castps_si256(take));
}

/* Outputs j..j+n-1 (n <= 8) of rows r0, r1 (r1 is w elements after r0 in the
 * plane): stores their bits in y and their indices + base in arg. */
static inline void pool8(int dt, int64_t w, const void *r0, const void *r1, int64_t j, int64_t n,
                         void *y, int32_t *arg, int32_t base) {
  __m256 e0, o0, e1, o1;
  __m256i re0, ro0, re1, ro1;
  pairs(dt, r0, j, n, &e0, &o0, &re0, &ro0);
  pairs(dt, r1, j, n, &e1, &o1, &re1, &ro1);
  __m256 bv = e0;
  __m256i bi = _mm256_setzero_si256(), bb = re0;
  pick(o0, ro0, _mm256_set1_epi32(1), &bv, &bi, &bb);
  pick(e1, re1, _mm256_set1_epi32((int)w), &bv, &bi, &bb);
  pick(o1, ro1, _mm256_set1_epi32((int)w + 1), &bv, &bi, &bb);
  const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  __m256i at =
      _mm256_add_epi32(_mm256_add_epi32(bi, lane2), _mm256_set1_epi32((int)(2 * j) + base));
  if (n == 8) {
    _mm256_storeu_si256((__m256i *)(void *)(arg + j), at);
    if (dt == AMP_F32)
      _mm256_storeu_si256((__m256i *)(void *)((float *)y + j), bb);
    else
      _mm_storeu_si128(
          (__m128i *)(void *)((uint16_t *)y + j),
          _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(bb, bb), 0x08)));
    return;
  }
  __m256i m = first_lanes(n);
  _mm256_maskstore_epi32((int *)(arg + j), m, at);
  if (dt == AMP_F32) {
    _mm256_maskstore_epi32((int *)(void *)((float *)y + j), m, bb);
  } else {
    uint16_t t[8];
    _mm_storeu_si128((__m128i *)(void *)t, _mm256_castsi256_si128(_mm256_permute4x64_epi64(
                                               _mm256_packus_epi32(bb, bb), 0x08)));
    memcpy((uint16_t *)y + j, t, (size_t)n * 2);
  }
}

static inline void pool2x2_row(int dt, int64_t w, int64_t ow, const void *x, void *y, int32_t *arg,
                               int32_t base) {
  const char *r1 = (const char *)x + (size_t)w * (dt == AMP_F32 ? 4 : 2);
  for (int64_t j = 0; j < ow; j += 8) pool8(dt, w, x, r1, j, ow - j < 8 ? ow - j : 8, y, arg, base);
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
