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
#endif

#endif
