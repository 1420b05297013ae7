/* AVX2 versions of the FP8 kernels (kernels/fp8.c has the references):
 * eight values at a time with the reference's integer rounding (normal
 * results) and a magic-number addition that rounds to the subnormal
 * quantum in the hardware's round-to-nearest-even; tails run the scalar
 * code. The same bits as the references (tests/test_fp8.c). */
#include "fp8_internal.h"

#include "fp8_avx2.h"

#include <immintrin.h>

/* Eight source values as F32. */
static inline __attribute__((always_inline)) __m256 load8(int sdt, const void *src, size_t i) {
  if (sdt == AMP_BF16) {
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)src + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  return _mm256_loadu_ps((const float *)src + i);
}

static inline __m256 abs8(__m256 v) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

/* Horizontal max of eight non-NaN values (exact in any order). */
static inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

float amp__fp8_amax_avx2(int sdt, size_t n, const void *src) {
  __m256 vm = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(abs8(load8(sdt, src, i)), vm); /* NaN: keeps vm */
  float m = hmax8(vm);
  float t = amp__fp8_amax_scalar(sdt, n - i,
                                 sdt == AMP_BF16 ? (const void *)((const uint16_t *)src + i)
                                                 : (const void *)((const float *)src + i));
  return t > m ? t : m;
}

/* Eight F32 values to FP8 codes in 32-bit lanes (saturating, as
 * amp__f32_to_e4m3/e5m2 with saturate = 1). */
static inline __attribute__((always_inline)) __m256i encode8(int fmt, __m256 y) {
  const int e4 = fmt == AMP_E4M3;
  const uint32_t mbits = e4 ? 3 : 2, bias = e4 ? 7 : 15;
  const __m256i over = _mm256_set1_epi32(e4 ? 0x7e : 0x7b),
                nan = _mm256_set1_epi32(e4 ? 0x7f : 0x7e);
  __m256i x = _mm256_castps_si256(y);
  __m256i sign = _mm256_and_si256(_mm256_srli_epi32(x, 24), _mm256_set1_epi32(0x80));
  __m256i ax = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
  /* normal: the reference's integer round to nearest even */
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(ax, (int)(23 - mbits)), _mm256_set1_epi32(1));
  __m256i r =
      _mm256_add_epi32(_mm256_add_epi32(ax, _mm256_set1_epi32((1 << (22 - mbits)) - 1)), lsb);
  __m256i norm = _mm256_srli_epi32(
      _mm256_sub_epi32(r, _mm256_set1_epi32((int)((127 - bias) << 23))), (int)(23 - mbits));
  /* subnormal: |y| + 2^(23 + qexp) rounds |y| to the quantum 2^qexp */
  const float magic = e4 ? 16384.0f : 128.0f; /* 2^14 = 2^(23-9), 2^7 = 2^(23-16) */
  __m256 sum = _mm256_add_ps(_mm256_castsi256_ps(ax), _mm256_set1_ps(magic));
  __m256i sub =
      _mm256_sub_epi32(_mm256_castps_si256(sum), _mm256_castps_si256(_mm256_set1_ps(magic)));
  __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)((128 - bias) << 23)), ax);
  __m256i mag = _mm256_blendv_epi8(norm, sub, is_sub);
  /* overflow (inf included) saturates; the unsigned min keeps huge codes in range */
  mag = _mm256_min_epu32(mag, over);
  __m256i is_nan = _mm256_cmpgt_epi32(ax, _mm256_set1_epi32(0x7f800000));
  mag = _mm256_blendv_epi8(mag, nan, is_nan);
  return _mm256_or_si256(mag, sign);
}

static inline void store8(uint8_t *dst, __m256i codes) {
  __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1));
  _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(p, p));
}

/* The vector body for one (format, source) pair, so that the constants
 * fold and nothing is decided per iteration. */
#define QUANT_BODY(FMT, SDT)                                                                       \
  for (; i + 8 <= n; i += 8) {                                                                     \
    __m256 x = load8(SDT, src, i);                                                                 \
    vm = _mm256_max_ps(abs8(x), vm);                                                               \
    store8(dst + i, encode8(FMT, _mm256_mul_ps(x, vs)));                                           \
  }

float amp__fp8_quant_avx2(int fmt, int sdt, size_t n, const void *src, float scale, uint8_t *dst) {
  __m256 vm = _mm256_setzero_ps(), vs = _mm256_set1_ps(scale);
  size_t i = 0;
  if (fmt == AMP_E4M3 && sdt == AMP_BF16)
    QUANT_BODY(AMP_E4M3, AMP_BF16)
  else if (fmt == AMP_E4M3)
    QUANT_BODY(AMP_E4M3, AMP_F32)
  else if (sdt == AMP_BF16)
    QUANT_BODY(AMP_E5M2, AMP_BF16)
  else
    QUANT_BODY(AMP_E5M2, AMP_F32)
  float m = hmax8(vm);
  float t = amp__fp8_quant_scalar(fmt, sdt, n - i,
                                  sdt == AMP_BF16 ? (const void *)((const uint16_t *)src + i)
                                                  : (const void *)((const float *)src + i),
                                  scale, dst + i);
  return t > m ? t : m;
}

void amp__fp8_dequant_avx2(int fmt, size_t n, const uint8_t *src, float scale_inv, float *dst) {
  __m256 vs = _mm256_set1_ps(scale_inv);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_mul_ps(amp__avx2_fp8_load8(fmt, src + i), vs));
  }
  amp__fp8_dequant_scalar(fmt, n - i, src + i, scale_inv, dst + i);
}

/* ---- Block scaling: a row of 1 × bc tiles ----------------------------------- */

/* A source pointer advanced by i elements. */
static inline const void *at(int sdt, const void *src, size_t i) {
  return sdt == AMP_BF16 ? (const void *)((const uint16_t *)src + i)
                         : (const void *)((const float *)src + i);
}

#define ROW_AMAX_BODY(SDT)                                                                         \
  for (size_t c0 = 0, t = 0; c0 < cols; c0 += bc, t++) {                                           \
    size_t len = c0 + bc < cols ? bc : cols - c0, i = 0;                                           \
    const void *s = at(SDT, src, c0);                                                              \
    __m256 vm = _mm256_setzero_ps();                                                               \
    for (; i + 8 <= len; i += 8) vm = _mm256_max_ps(abs8(load8(SDT, s, i)), vm);                   \
    float m = hmax8(vm);                                                                           \
    if (i < len) {                                                                                 \
      float r = amp__fp8_amax_scalar(SDT, len - i, at(SDT, s, i));                                 \
      if (r > m) m = r;                                                                            \
    }                                                                                              \
    if (m > amax[t]) amax[t] = m;                                                                  \
  }

void amp__fp8_row_amax_avx2(int sdt, size_t cols, size_t bc, const void *src, float *amax) {
  if (sdt == AMP_BF16)
    ROW_AMAX_BODY(AMP_BF16)
  else
    ROW_AMAX_BODY(AMP_F32)
}

#define ROW_QUANT_BODY(FMT, SDT)                                                                   \
  for (size_t c0 = 0, t = 0; c0 < cols; c0 += bc, t++) {                                           \
    size_t len = c0 + bc < cols ? bc : cols - c0, i = 0;                                           \
    const void *s = at(SDT, src, c0);                                                              \
    uint8_t *d = dst + c0;                                                                         \
    __m256 vs = _mm256_set1_ps(scale[t]);                                                          \
    for (; i + 8 <= len; i += 8) store8(d + i, encode8(FMT, _mm256_mul_ps(load8(SDT, s, i), vs))); \
    if (i < len) amp__fp8_quant_scalar(FMT, SDT, len - i, at(SDT, s, i), scale[t], d + i);         \
  }

void amp__fp8_row_quant_avx2(int fmt, int sdt, size_t cols, size_t bc, const void *src,
                             const float *scale, uint8_t *dst) {
  if (fmt == AMP_E4M3 && sdt == AMP_BF16)
    ROW_QUANT_BODY(AMP_E4M3, AMP_BF16)
  else if (fmt == AMP_E4M3)
    ROW_QUANT_BODY(AMP_E4M3, AMP_F32)
  else if (sdt == AMP_BF16)
    ROW_QUANT_BODY(AMP_E5M2, AMP_BF16)
  else
    ROW_QUANT_BODY(AMP_E5M2, AMP_F32)
}
