/* Shared by the GEMM driver (gemm.c) and its AVX2 fast path (gemm_avx2.c). */
#ifndef AMPC_GEMM_INTERNAL_H
#define AMPC_GEMM_INTERNAL_H

#include "../core/internal.h"
#include "../dtype/convert_internal.h"
#include "../dtype/dtype_inline.h"

#include <math.h>
#include <stdatomic.h>

/* The scales of an FP8 operand (amp_gemm_fp8): stored element (r, c) stands
 * for to_f32(code) · scale_inv[(r / br) · nbc + c / bc], one F32
 * multiplication, and every GEMM path widens it with exactly that
 * multiplication while it reads the operand. */
typedef struct amp__gemm_scales {
  const float *scale_inv;
  int64_t br, bc, nbc; /* block rows and columns, blocks per row of blocks */
} amp__gemm_scales;

/* A validated amp_gemm call. Dtypes are AMP_F32, AMP_F16 or AMP_BF16, and
 * for A and B also AMP_E4M3 or AMP_E5M2 (amp_gemm_fp8, scales in a8, b8). */
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
  int *nonfinite;  /* the epilogue's: asked for the inf/NaN check */
  atomic_int *bad; /* set while the call runs (amp__gemm_run): some C is inf/NaN */
  int threads;
  amp__gemm_blocking blk;  /* the context's cache blocking */
  int bf16_dot;            /* 1: BF16 × BF16 may use vdpbf16ps (see amp_gemm) */
  amp__gemm_scales a8, b8; /* the scales of FP8 operands (unused otherwise) */
} amp__gemm_args;

static inline int amp__gemm_is_fp8(int dt) { return dt == AMP_E4M3 || dt == AMP_E5M2; }

/* Stored element (r, c) of an FP8 operand (codes q, leading dimension ld)
 * as the F32 value it stands for (see amp__gemm_scales). */
static inline float amp__gemm_fp8_at(const void *q, int fmt, int64_t ld, const amp__gemm_scales *f,
                                     int64_t r, int64_t c) {
  const uint8_t code = ((const uint8_t *)q)[(size_t)r * (size_t)ld + (size_t)c];
  const float v = fmt == AMP_E4M3 ? amp__e4m3_to_f32(code) : amp__e5m2_to_f32(code);
  return v * f->scale_inv[(r / f->br) * f->nbc + c / f->bc];
}

/* The fields every GEMM entry (amp_gemm, amp_gemm_fp8) fills alike: sizes,
 * transposes, alpha and beta, C and the epilogue (bias, ReLU); the caller
 * adds A and B (and FP8 operands' scales). */
static inline amp__gemm_args amp__gemm_args_for(amp_trans ta, amp_trans tb, int64_t m, int64_t n,
                                                int64_t k, float alpha, float beta, void *c,
                                                amp_dtype c_type, int64_t ldc,
                                                const amp_epilogue *epilogue) {
  const void *bias = epilogue ? epilogue->bias : NULL;
  return (amp__gemm_args){.ta = ta == AMP_TRANS,
                          .tb = tb == AMP_TRANS,
                          .m = m,
                          .n = n,
                          .k = k,
                          .alpha = alpha,
                          .beta = beta,
                          .c = c,
                          .c_type = (int)c_type,
                          .ldc = ldc,
                          .bias = bias,
                          .bias_type = bias ? (int)epilogue->bias_dtype : 0,
                          .relu = epilogue ? epilogue->relu != 0 : 0,
                          .nonfinite = epilogue ? epilogue->nonfinite : NULL};
}

/* Fills in the context's settings (threads, blocking, BF16 dot) and runs
 * the validated call g (m, n >= 1, k >= 0) on the context's kernel table. */
amp_status amp__gemm_run(amp_ctx *ctx, amp__gemm_args *g);

/* amp_gemm's checks of the transpose flags, C and the epilogue, with its
 * messages (amp_gemm_fp8 checks its operands itself). */
amp_status amp__gemm_check_c(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t n, const void *c,
                             amp_dtype c_type, int64_t ldc, const amp_epilogue *epilogue);

/* Stores v as C's element ci and, when the call asked (amp_epilogue's
 * nonfinite), notes an inf or NaN in what was stored. */
static inline void amp__gemm_store(const amp__gemm_args *g, size_t ci, float v) {
  amp__store_f32(g->c, g->c_type, ci, v);
  if (g->bad && !isfinite(amp__load_f32(g->c, g->c_type, ci)))
    atomic_store_explicit(g->bad, 1, memory_order_relaxed);
}

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
  amp__gemm_store(g, ci, v);
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
