/* The AVX-512 INT8 GEMM block (see qgemm_internal.h): with AVX512-VNNI,
 * tiles of 4 rows of A × 4 rows of B in dot-product form over k, 64 bytes
 * at a time; vpdpbusd adds four u8 · s8 products into each int32 lane
 * without saturation (the non-saturating form), the k % 64 tail through
 * zero-masked loads (AVX512-BW), and the lanes are added at the end. Exact
 * integer arithmetic: the same bits as the scalar reference. Without VNNI
 * (an AVX-512F CPU before Cascade Lake) the AVX2 block runs. The VNNI code
 * is compiled for its ISA here (the target pragma) and only runs where the
 * CPU reports it (amp_cpu_features). */
#include "qgemm_internal.h"

#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vnni")

/* One R × C tile of C (R, C <= 4, constants after inlining). */
static inline __attribute__((always_inline)) void tile(const int R, const int C, int64_t k,
                                                       const uint8_t *a, int64_t lda,
                                                       const int8_t *b, int64_t ldb, int32_t *c,
                                                       int64_t ldc) {
  __m512i acc[4][4];
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int q = 0; q < C; q++) acc[r][q] = _mm512_setzero_si512();
  int64_t p = 0;
  for (; p + 64 <= k; p += 64) {
    __m512i bv[4];
#pragma GCC unroll 4
    for (int q = 0; q < C; q++) bv[q] = _mm512_loadu_si512((const void *)(b + q * ldb + p));
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const __m512i av = _mm512_loadu_si512((const void *)(a + r * lda + p));
#pragma GCC unroll 4
      for (int q = 0; q < C; q++) acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], av, bv[q]);
    }
  }
  if (p < k) {
    const __mmask64 mk = (__mmask64)(~0ull >> (64 - (k - p)));
    __m512i bv[4];
#pragma GCC unroll 4
    for (int q = 0; q < C; q++) bv[q] = _mm512_maskz_loadu_epi8(mk, b + q * ldb + p);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const __m512i av = _mm512_maskz_loadu_epi8(mk, a + r * lda + p);
#pragma GCC unroll 4
      for (int q = 0; q < C; q++) acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], av, bv[q]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int q = 0; q < C; q++) c[r * ldc + q] = _mm512_reduce_add_epi32(acc[r][q]);
}

static void qgemm_vnni(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                       const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
      tile(4, 4, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
    for (; i < m; i++) tile(1, 4, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
  }
  for (; j < n; j++) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
      tile(4, 1, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
    for (; i < m; i++) tile(1, 1, k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc);
  }
}

#pragma GCC pop_options

void amp__qgemm_avx512(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                       const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc) {
  if (amp_cpu_features() & AMP_CPU_AVX512VNNI)
    qgemm_vnni(m, n, k, a, lda, b, ldb, c, ldc);
  else
    amp__qgemm_avx2(m, n, k, a, lda, b, ldb, c, ldc);
}
