/* The AVX2 INT8 GEMM block (see qgemm_internal.h): tiles of 4 rows of A ×
 * 2 rows of B in dot-product form over k, 16 bytes at a time widened to
 * int16 and multiplied pairwise into int32 by vpmaddwd (no saturation: a
 * pair sums to at most 2 · 255 · 128 = 65280 in magnitude); the int32
 * lanes are added at the end, then the k % 16 tail in scalar code. Exact
 * integer arithmetic: the same bits as the scalar reference. */
#include "qgemm_internal.h"

#include <immintrin.h>

static inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

/* One R × C tile of C (R <= 4, C <= 2, constants after inlining). */
static inline __attribute__((always_inline)) void tile(const int R, const int C, int64_t k,
                                                       const uint8_t *a, int64_t lda,
                                                       const int8_t *b, int64_t ldb, int32_t *c,
                                                       int64_t ldc) {
  __m256i acc[4][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int q = 0; q < C; q++) acc[r][q] = _mm256_setzero_si256();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    __m256i bv[2];
#pragma GCC unroll 4
    for (int q = 0; q < C; q++)
      bv[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + q * ldb + p)));
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const __m256i av = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + r * lda + p)));
#pragma GCC unroll 4
      for (int q = 0; q < C; q++)
        acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(av, bv[q]));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int q = 0; q < C; q++) {
      int32_t s = hsum_epi32(acc[r][q]);
      for (int64_t t = p; t < k; t++) s += (int32_t)a[r * lda + t] * (int32_t)b[q * ldb + t];
      c[r * ldc + q] = s;
    }
}

void amp__qgemm_avx2(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                     const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc) {
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
      tile(4, 2, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
    for (; i < m; i++) tile(1, 2, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
  }
  for (; j < n; j++) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
      tile(4, 1, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
    for (; i < m; i++) tile(1, 1, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
  }
}
