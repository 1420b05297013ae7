/* AVX-512 GEMM micro-kernels, run by the packed driver of gemm_avx2.c (its
 * packing, task grid and K blocking), chosen at run time by the
 * AVX-512 kernel table (backend/kernels_avx2.c, which holds both x86 tables):
 *
 *   F32 FMA: a 6 × 32 tile (12 ZMM accumulators over two packed B slivers,
 *   6 × 16 for a last odd sliver). Every element is still one FMA chain over
 *   k in order from 0, so the bits are the scalar reference's whatever the
 *   thread count or blocking. B in F16 is widened to F32 as it is packed.
 *
 *   The epilogue (alpha, beta, bias, ReLU, the store in C's dtype) of whole
 *   tiles runs 16 columns at a time with the operations of amp__gemm_finish
 *   (finish512); partial tiles use the driver's.
 *
 *   BF16 dot (A and B both BF16, AVX512-BF16, g->bf16_dot): vdpbf16ps over
 *   packed pairs (k, k + 1). Error model: the product of two BF16 values
 *   (8-bit significands) is exact in F32, so each lane's result is a sum of
 *   the k exact products with at most k roundings to nearest even (two
 *   additions per pair, in the instruction's order); subnormal inputs,
 *   products and sums are flushed to zero (the instruction's DAZ/FTZ). Hence
 *   |result - exact| <= gamma_k·sum|a·b| + 2^-126·(k + sum(|a| + |b|)),
 *   gamma_k = k·u / (1 - k·u), u = 2^-24 (tests/test_gemm.c checks this
 *   against FP64). The pairing is fixed by the packing (pairs start at even
 *   k, K blocks have even length), never by threads or the blocking, so the
 *   result is independent of both; only its bits differ from the F32 FMA
 *   chain's. AMPC_BF16_DOT=0 or amp_ctx_params.bf16_dot < 0 turns it off. */
#include "gemm_internal.h"

#include "../dtype/simd_avx512.h"

#include <immintrin.h>

enum { MR = AMP__GEMM_MR, NR = AMP__GEMM_NR };
enum { F32 = 0, F16 = 1, DOT = 2 }; /* what the packed B holds */

/* B slivers' row p (of k, or of pairs) widened to F32 (or as BF16 pairs). */
static inline __attribute__((always_inline)) __m512 load_b(const int mode, const void *pb,
                                                           int64_t p) {
  if (mode == F16)
    return _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)((const uint16_t *)pb + p * NR)));
  return _mm512_load_ps((const float *)pb + p * NR); /* F32, or NR words of BF16 pairs */
}

#define KLOAD(r)                                                                                   \
  __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();                             \
  if (load && rows > (r)) {                                                                        \
    c##r##0 = _mm512_load_ps(tile + (r)*NR);                                                       \
    if (wide) c##r##1 = _mm512_load_ps(tile + MR * NR + (r)*NR);                                   \
  }
#define KROW(r)                                                                                    \
  if (rows > (r)) {                                                                                \
    if (mode == DOT) {                                                                             \
      const __m512bh a = (__m512bh)_mm512_set1_epi32(((const int *)pa)[r]);                        \
      c##r##0 = _mm512_dpbf16_ps(c##r##0, a, (__m512bh)b0);                                        \
      if (wide) c##r##1 = _mm512_dpbf16_ps(c##r##1, a, (__m512bh)b1);                              \
    } else {                                                                                       \
      const __m512 a = _mm512_set1_ps(pa[r]);                                                      \
      c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                                                   \
      if (wide) c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                                         \
    }                                                                                              \
  }
#define KSTORE(r)                                                                                  \
  if (rows > (r)) {                                                                                \
    _mm512_store_ps(tile + (r)*NR, c##r##0);                                                       \
    if (wide) _mm512_store_ps(tile + MR * NR + (r)*NR, c##r##1);                                   \
  }

/* tile = [tile if load] + pa·pb over kc steps for `rows` rows and one or two
 * (wide) B slivers; rows, wide and mode are constants in each instance. */
static inline __attribute__((always_inline)) void
kernel_rows(const int rows, const int wide, const int mode, int64_t kc, const float *pa,
            const void *pb0, const void *pb1, float *tile, int load) {
  KLOAD(0)
  KLOAD(1)
  KLOAD(2)
  KLOAD(3)
  KLOAD(4)
  KLOAD(5)
  for (int64_t p = 0; p < kc; p++, pa += MR) {
    const __m512 b0 = load_b(mode, pb0, p);
    const __m512 b1 = wide ? load_b(mode, pb1, p) : b0;
    KROW(0)
    KROW(1)
    KROW(2)
    KROW(3)
    KROW(4)
    KROW(5)
  }
  KSTORE(0)
  KSTORE(1)
  KSTORE(2)
  KSTORE(3)
  KSTORE(4)
  KSTORE(5)
}
#undef KLOAD
#undef KROW
#undef KSTORE

/* The epilogue of whole tiles, 16 columns at a time, C of dtype cdt (a
 * constant in each instance): v = alpha·acc [+ beta·C] [+ bias] [max(0,
 * v)], the operations of amp__gemm_finish. A multiplication by 1 is exact
 * (acc is never a signalling NaN; a signalling NaN in C is quieted by the
 * addition either way, with the same payload), so alpha = 1 and beta = 1
 * skip it. */
static inline __attribute__((always_inline)) void finish_c(const amp__gemm_args *g,
                                                           const float *tile, int64_t i0,
                                                           int64_t rows, int64_t j0, int64_t cols,
                                                           const int cdt) {
  const __m512 alpha = _mm512_set1_ps(g->alpha), beta = _mm512_set1_ps(g->beta);
  const __m512 zero = _mm512_setzero_ps();
  const int mul_a = g->alpha != 1.0f, has_beta = g->beta != 0.0f, mul_b = g->beta != 1.0f;
  const int relu = g->relu, bdt = g->bias_type;
  const void *bias = g->bias;
  const size_t ldc = (size_t)g->ldc;
  void *const c = g->c;
  for (int64_t s = 0; s < cols / NR; s++) {
    const float *ts = tile + s * MR * NR;
    const size_t j = (size_t)(j0 + s * NR);
    const __m512 b = !bias            ? zero
                     : bdt == AMP_F32 ? amp__avx512_load16(bias, AMP_F32, j)
                     : bdt == AMP_F16 ? amp__avx512_load16(bias, AMP_F16, j)
                                      : amp__avx512_load16(bias, AMP_BF16, j);
    for (int64_t r = 0; r < rows; r++) {
      const size_t ci = (size_t)(i0 + r) * ldc + j;
      __m512 v = _mm512_load_ps(ts + r * NR);
      if (mul_a) v = _mm512_mul_ps(alpha, v);
      if (has_beta) {
        __m512 cv = amp__avx512_load16(c, cdt, ci);
        if (mul_b) cv = _mm512_mul_ps(beta, cv);
        v = _mm512_add_ps(v, cv);
      }
      if (bias) v = _mm512_add_ps(v, b);
      if (relu) v = _mm512_max_ps(zero, v);
      amp__avx512_store16(c, cdt, ci, v);
    }
  }
}

/* The amp__gemm_finisher of the AVX-512 kernels: whole tiles only. */
static int finish512(const amp__gemm_args *g, const float *tile, int64_t i0, int64_t rows,
                     int64_t j0, int64_t cols) {
  if (j0 + cols > g->n) return 0;
  switch (g->c_type) {
  case AMP_F16: finish_c(g, tile, i0, rows, j0, cols, AMP_F16); break;
  case AMP_BF16: finish_c(g, tile, i0, rows, j0, cols, AMP_BF16); break;
  default: finish_c(g, tile, i0, rows, j0, cols, AMP_F32); break;
  }
  return 1;
}

#define KERNEL(rows, wide, mode, name)                                                             \
  static __attribute__((noinline)) void name(int64_t kc, const float *pa, const void *pb0,         \
                                             const void *pb1, float *tile, int load) {             \
    kernel_rows(rows, wide, mode, kc, pa, pb0, pb1, tile, load);                                   \
  }
#define KERNELS(mode, sfx)                                                                         \
  KERNEL(6, 1, mode, k6w##sfx)                                                                     \
  KERNEL(4, 1, mode, k4w##sfx)                                                                     \
  KERNEL(2, 1, mode, k2w##sfx)                                                                     \
  KERNEL(6, 0, mode, k6##sfx)                                                                      \
  KERNEL(4, 0, mode, k4##sfx)                                                                      \
  KERNEL(2, 0, mode, k2##sfx)                                                                      \
  static const amp__gemm_ukernels uk##sfx = {                                                      \
      1,                                                                                           \
      mode == DOT,                                                                                 \
      0,                                                                                           \
      {{k6##sfx, k4##sfx, k2##sfx}, {k6w##sfx, k4w##sfx, k2w##sfx}},                               \
      finish512};
KERNELS(F32, _f32)
/* F16 B is widened to F32 as it is packed, for the F32 kernels: on Zen 4
 * converting in the micro-kernel (vcvtph2ps on the FMA pipes) ran 8-16%
 * slower at the reference shapes. */
static const amp__gemm_ukernels uk_f32_widen = {
    1, 0, 1, {{k6_f32, k4_f32, k2_f32}, {k6w_f32, k4w_f32, k2w_f32}}, finish512};

/* The dot kernels need AVX512-BF16 on top of AVX-512F (the file is built
 * with both; only these use BF16 instructions), and are called only when
 * the CPU has it (amp__gemm_avx512). */
KERNELS(DOT, _dot)
#undef KERNELS
#undef KERNEL

amp_status amp__gemm_avx512(amp_ctx *ctx, const amp__gemm_args *g) {
  if (g->bf16_dot && g->a_type == AMP_BF16 && g->b_type == AMP_BF16 &&
      (amp_cpu_features() & AMP_CPU_AVX512BF16))
    return amp__gemm_avx_driver(ctx, g, &uk_dot);
  return amp__gemm_avx_driver(ctx, g, g->b_type == AMP_F16 ? &uk_f32_widen : &uk_f32);
}
