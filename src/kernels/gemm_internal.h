/* Shared by the GEMM driver (gemm.c) and its AVX2 fast path (gemm_avx2.c). */
#ifndef AMPC_GEMM_INTERNAL_H
#define AMPC_GEMM_INTERNAL_H

#include "../core/internal.h"
#include "../dtype/dtype_inline.h"

/* A validated amp_gemm call. Dtypes are AMP_F32, AMP_F16 or AMP_BF16. */
typedef struct amp__gemm_args {
  int ta, tb; /* non-zero: the operand is transposed */
  int64_t m, n, k;
  float alpha, beta;
  const void *a;
  int a_type;
  int64_t lda;
  const void *b;
  int b_type;
  int64_t ldb;
  void *c;
  int c_type;
  int64_t ldc;
  const void *bias; /* NULL: no bias */
  int bias_type;
  int relu;
  int threads;
  amp__gemm_blocking blk; /* the context's cache blocking */
  int bf16_dot;           /* 1: BF16 × BF16 may use vdpbf16ps (see amp_gemm) */
} amp__gemm_args;

/* Writes C(i, j) from acc, the F32 sum of products for that element. Both
 * paths finish every element with exactly these operations (SIMD code does
 * the same multiplies, adds and max in vector form), so they agree bit for
 * bit. ReLU keeps NaN and -0, like max(0, v) on x86. */
static inline void amp__gemm_finish(const amp__gemm_args *g, int64_t i, int64_t j, float acc) {
  size_t ci = (size_t)i * (size_t)g->ldc + (size_t)j;
  float v = g->alpha * acc;
  if (g->beta != 0.0f) v = v + g->beta * amp__load_f32(g->c, g->c_type, ci);
  if (g->bias) v = v + amp__load_f32(g->bias, g->bias_type, (size_t)j);
  if (g->relu) v = v < 0.0f ? 0.0f : v;
  amp__store_f32(g->c, g->c_type, ci, v);
}

/* The kernel table entries (k >= 1). The scalar reference: per element, one
 * fmaf chain over k in order from 0, then amp__gemm_finish. */
amp_status amp__gemm_scalar(amp_ctx *ctx, const amp__gemm_args *g);
#ifdef AMPC_HAVE_X86_SIMD
/* The packed, blocked AVX2/FMA path: the same chains, the same bits. Returns
 * AMP_ERR_NOMEM (and records it) when the packing buffers cannot be
 * allocated. */
amp_status amp__gemm_avx2(amp_ctx *ctx, const amp__gemm_args *g);

/* The packed GEMM driver of gemm_avx2.c with a set of micro-kernels, so that
 * wider ISAs (gemm_avx512.c) reuse its packing, task grid and epilogue.
 * Packed A: slivers of AMP__GEMM_MR rows; packed B: slivers of AMP__GEMM_NR
 * columns (F32, or F16 as stored when B is F16). In `pairs` mode both hold
 * BF16 pairs (k, k+1) in 32-bit words, for vdpbf16ps: A as K/2 groups of MR
 * words, B as K/2 rows of NR words. A kernel computes
 *   tile = [tile if load, else 0] + pa·pb
 * over kc steps (kc pairs in pairs mode) for `rows` (6, 4, 2) rows of one
 * sliver of A and one B sliver (tile MR × NR) or, the wide kernels, two
 * adjacent B slivers pb0, pb1 (tile: the two MR × NR tiles one after the
 * other). */
enum { AMP__GEMM_MR = 6, AMP__GEMM_NR = 16 };
typedef void (*amp__gemm_ukernel)(int64_t kc, const float *pa, const void *pb0, const void *pb1,
                                  float *tile, int load);
/* An epilogue for whole tiles (tile: `cols` / NR tiles of MR × NR one after
 * the other, written to C at (i0, j0), `rows` rows): returns 0 when it does
 * not handle this call (then the driver's AVX2 epilogue runs). The same
 * operations as amp__gemm_finish, in vector form. */
typedef int (*amp__gemm_finisher)(const struct amp__gemm_args *g, const float *tile, int64_t i0,
                                  int64_t rows, int64_t j0, int64_t cols);
typedef struct amp__gemm_ukernels {
  int wide;                  /* 1: k[1] takes two B slivers */
  int pairs;                 /* 1: BF16 pair packing (vdpbf16ps kernels) */
  int widen_b;               /* 1: F16 B is widened to F32 as it is packed */
  amp__gemm_ukernel k[2][3]; /* [one or two B slivers][rows 6, 4, 2] */
  amp__gemm_finisher finish; /* NULL: the driver's AVX2 epilogue */
} amp__gemm_ukernels;
amp_status amp__gemm_avx_driver(amp_ctx *ctx, const amp__gemm_args *g,
                                const amp__gemm_ukernels *uk);

/* AVX-512F (and AVX512-BF16 where g->bf16_dot) GEMM (gemm_avx512.c). */
amp_status amp__gemm_avx512(amp_ctx *ctx, const amp__gemm_args *g);
#endif

#endif
