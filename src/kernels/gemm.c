/* GEMM driver: argument checks, the scalar reference (the scalar kernel
 * table's entry), and one call to the context's kernel table. */
#include "gemm_internal.h"

#include <math.h>
#include <stdlib.h>

static int gemm_dtype_ok(amp_dtype t) { return amp__dtype(t)->is_compute; }

/* The reference: per element, one fmaf chain over k in order from 0. The
 * fast path performs the same chain, so the two agree bit for bit. */
static void gemm_ref(const amp__gemm_args *g) {
  const int64_t m = g->m, n = g->n, k = g->k;
  const size_t sai = g->ta ? 1 : (size_t)g->lda, sap = g->ta ? (size_t)g->lda : 1;
  const size_t sbp = g->tb ? 1 : (size_t)g->ldb, sbj = g->tb ? (size_t)g->ldb : 1;
#pragma omp parallel for num_threads(g->threads) schedule(static)
  for (int64_t i = 0; i < m; i++) {
    for (int64_t j = 0; j < n; j++) {
      float acc = 0.0f;
      for (int64_t p = 0; p < k; p++) {
        float av = amp__load_f32(g->a, g->a_type, (size_t)i * sai + (size_t)p * sap);
        float bv = amp__load_f32(g->b, g->b_type, (size_t)p * sbp + (size_t)j * sbj);
        acc = fmaf(av, bv, acc);
      }
      amp__gemm_finish(g, i, j, acc);
    }
  }
}

/* An FP8 operand (rows × cols stored, leading dimension *ld) widened to
 * F32 (amp__gemm_fp8_at), packed: *p, *dt and *ld then describe the copy.
 * Returns the copy to free, or NULL when out of memory. */
static float *widen_fp8(const void **p, int *dt, int64_t *ld, const amp__gemm_scales *f,
                        int64_t rows, int64_t cols) {
  float *w = malloc(sizeof(float) * (size_t)(rows * cols));
  for (int64_t r = 0; w && r < rows; r++)
    for (int64_t c = 0; c < cols; c++) w[r * cols + c] = amp__gemm_fp8_at(*p, *dt, *ld, f, r, c);
  *p = w, *dt = AMP_F32, *ld = cols;
  return w;
}

/* FP8 operands are widened (code · block scale) into F32 copies first: the
 * value of every element, as the packers of the fast paths compute it. */
amp_status amp__gemm_scalar(amp_ctx *ctx, const amp__gemm_args *g) {
  if (!amp__gemm_is_fp8(g->a_type) && !amp__gemm_is_fp8(g->b_type)) {
    gemm_ref(g);
    return AMP_OK;
  }
  amp__gemm_args w = *g;
  float *wa = NULL, *wb = NULL;
  int ok = 1;
  if (amp__gemm_is_fp8(g->a_type))
    ok = (wa = widen_fp8(&w.a, &w.a_type, &w.lda, &g->a8, g->ta ? g->k : g->m,
                         g->ta ? g->m : g->k)) != NULL;
  if (ok && amp__gemm_is_fp8(g->b_type))
    ok = (wb = widen_fp8(&w.b, &w.b_type, &w.ldb, &g->b8, g->tb ? g->n : g->k,
                         g->tb ? g->k : g->n)) != NULL;
  if (ok) gemm_ref(&w);
  free(wa);
  free(wb);
  return ok ? AMP_OK : amp__error(ctx, AMP_ERR_NOMEM, "amp_gemm_fp8: out of memory");
}

/* k == 0: there are no products, so C = beta·C (then the epilogue). */
static void gemm_scale_only(const amp__gemm_args *g) {
  for (int64_t i = 0; i < g->m; i++) {
    for (int64_t j = 0; j < g->n; j++) {
      size_t ci = (size_t)i * (size_t)g->ldc + (size_t)j;
      float v = g->beta != 0.0f ? g->beta * amp__load_f32(g->c, g->c_type, ci) : 0.0f;
      if (g->bias) v = v + amp__load_f32(g->bias, g->bias_type, (size_t)j);
      if (g->relu) v = v < 0.0f ? 0.0f : v;
      amp__gemm_store(g, ci, v);
    }
  }
}

amp_status amp_gemm(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t m, int64_t n, int64_t k,
                    float alpha, const void *a, amp_dtype a_type, int64_t lda, const void *b,
                    amp_dtype b_type, int64_t ldb, float beta, void *c, amp_dtype c_type,
                    int64_t ldc, const amp_epilogue *epilogue) {
  if (m < 1 || n < 1 || k < 0)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_gemm: bad size m=%lld n=%lld k=%lld (need m, n >= 1 and k >= 0)",
                      (long long)m, (long long)n, (long long)k);
  if ((ta != AMP_NO_TRANS && ta != AMP_TRANS) || (tb != AMP_NO_TRANS && tb != AMP_TRANS))
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm: bad transpose flag ta=%d tb=%d", (int)ta,
                      (int)tb);
  if (!a || !b || !c)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm: NULL buffer (%s is NULL)",
                      !a   ? "a"
                      : !b ? "b"
                           : "c");
  const int64_t a_cols = ta ? m : k, b_cols = tb ? k : n;
  if (lda < a_cols || lda < 1)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm: lda=%lld too small (need >= %lld)",
                      (long long)lda, (long long)(a_cols > 1 ? a_cols : 1));
  if (ldb < b_cols || ldb < 1)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm: ldb=%lld too small (need >= %lld)",
                      (long long)ldb, (long long)(b_cols > 1 ? b_cols : 1));
  if (ldc < n)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm: ldc=%lld too small (need >= %lld)",
                      (long long)ldc, (long long)n);
  if (!gemm_dtype_ok(a_type) || !gemm_dtype_ok(b_type) || !gemm_dtype_ok(c_type))
    return amp__error(ctx, AMP_ERR_UNSUPPORTED,
                      "amp_gemm: unsupported dtype a=%s b=%s c=%s (need f32, f16 or bf16)",
                      amp_dtype_name(a_type), amp_dtype_name(b_type), amp_dtype_name(c_type));
  const void *bias = epilogue ? epilogue->bias : NULL;
  if (bias && !gemm_dtype_ok(epilogue->bias_dtype))
    return amp__error(ctx, AMP_ERR_UNSUPPORTED,
                      "amp_gemm: unsupported epilogue bias_dtype %s (need f32, f16 or bf16)",
                      amp_dtype_name(epilogue->bias_dtype));

  amp__gemm_args g = amp__gemm_args_for(ta, tb, m, n, k, alpha, beta, c, c_type, ldc, epilogue);
  g.a = a, g.a_type = (int)a_type, g.lda = lda;
  g.b = b, g.b_type = (int)b_type, g.ldb = ldb;
  return amp__gemm_run(ctx, &g);
}

amp_status amp__gemm_run(amp_ctx *ctx, amp__gemm_args *g) {
  g->threads = amp__threads(ctx);
  if (ctx) {
    g->blk = ctx->gemm_blk;
    g->bf16_dot = ctx->bf16_dot;
  } else {
    amp__gemm_blocking_for(amp__kernels_of(NULL), &g->blk);
    g->bf16_dot = amp__bf16_dot_enabled(0);
  }
  atomic_int bad;
  atomic_init(&bad, 0);
  g->bad = g->nonfinite ? &bad : NULL;
  amp_status s = AMP_OK;
  if (g->k == 0)
    gemm_scale_only(g);
  else
    s = amp__kernels_of(ctx)->gemm(ctx, g);
  if (g->nonfinite && s == AMP_OK) *g->nonfinite = atomic_load(&bad);
  g->bad = NULL; /* the local is gone */
  return s;
}

amp_status amp__gemm_check_c(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t n, const void *c,
                             amp_dtype c_type, int64_t ldc, const amp_epilogue *epilogue) {
  if ((ta != AMP_NO_TRANS && ta != AMP_TRANS) || (tb != AMP_NO_TRANS && tb != AMP_TRANS))
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm: bad transpose flag ta=%d tb=%d", (int)ta,
                      (int)tb);
  if (!c) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm: NULL buffer (c is NULL)");
  if (ldc < n)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm: ldc=%lld too small (need >= %lld)",
                      (long long)ldc, (long long)n);
  if (!gemm_dtype_ok(c_type))
    return amp__error(ctx, AMP_ERR_UNSUPPORTED,
                      "amp_gemm: unsupported dtype c=%s (need f32, f16 or bf16)",
                      amp_dtype_name(c_type));
  if (epilogue && epilogue->bias && !gemm_dtype_ok(epilogue->bias_dtype))
    return amp__error(ctx, AMP_ERR_UNSUPPORTED,
                      "amp_gemm: unsupported epilogue bias_dtype %s (need f32, f16 or bf16)",
                      amp_dtype_name(epilogue->bias_dtype));
  return AMP_OK;
}
