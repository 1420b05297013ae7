/* Lower-precision ops: matmul, batched matmul and linear. Under autocast
 * their operands are F16/BF16, products accumulate in F32 inside amp_gemm,
 * and the result is rounded once to the compute dtype. Weight gradients go
 * straight into the leaves' F32 gradients with beta = 1 GEMMs. */
#include "ops_internal.h"

#include <string.h>

/* C (+)= op(A)·op(B) into the gradient of `t` (any dtype), m×n. */
static amp_status gemm_into_grad(amp_ctx *ctx, amp_tensor *t, amp_trans ta, amp_trans tb, int64_t m,
                                 int64_t n, int64_t k, const void *a, int64_t lda, const void *b,
                                 int64_t ldb, amp_dtype dt, int64_t offset) {
  int acc;
  /* A GEMM that covers all of a fresh target overwrites it (beta = 0). */
  amp_tensor *g = offset == 0 && m * n == t->numel ? amp__grad_of_overwrite(ctx, t, &acc)
                                                   : amp__grad_of(ctx, t, &acc);
  if (!g) return amp_ctx_status(ctx);
  char *c = (char *)g->data + (size_t)offset * amp_dtype_size(g->dtype);
  /* A leaf's whole gradient: the GEMM checks what it stores (the scaler may
     then skip its own pass over these values). */
  int nonfinite = 0, whole = offset == 0 && m * n == t->numel && amp__grad_is_leaf(t);
  amp_epilogue ep = {.nonfinite = &nonfinite};
  amp_status s = amp_gemm(ctx, ta, tb, m, n, k, 1.0f, a, dt, lda, b, dt, ldb, acc ? 1.0f : 0.0f, c,
                          g->dtype, n, whole ? &ep : NULL);
  if (s == AMP_OK && whole) amp__grad_witness(t, nonfinite);
  return s;
}

amp_tensor *amp_matmul(amp_ctx *ctx, amp_tensor *a, amp_tensor *b) {
  amp_tensor *in[2] = {a, b}, *c[2];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_MATMUL, 2, in, c, 0, &dt)) return NULL;
  if (c[0]->ndim != 2 || c[1]->ndim != 2 || c[0]->shape[1] != c[1]->shape[0]) {
    char sa[64], sb[64];
    amp__error(ctx, AMP_ERR_SHAPE, "matmul: shapes %s and %s do not multiply ([m,k]·[k,n])",
               amp__shape_str(a, sa, sizeof sa), amp__shape_str(b, sb, sizeof sb));
    return NULL;
  }
  int64_t m = c[0]->shape[0], k = c[0]->shape[1], n = c[1]->shape[1];
  amp_tensor *y = amp__op_result(ctx, dt, 2, (int64_t[]){m, n});
  if (!y) return NULL;
  if (amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, m, n, k, 1.0f, c[0]->data, dt, k, c[1]->data, dt, n,
               0.0f, y->data, dt, n, NULL) != AMP_OK)
    return NULL;
  amp__record(ctx, AMP__OP_MATMUL, y, 2, c);
  return y;
}

amp_status amp__matmul_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *g) {
  amp_tensor *a = nd->in[0], *b = nd->in[1];
  int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
  amp_dtype dt = g->dtype;
  amp_status s = AMP_OK;
  if (a->requires_grad) /* dA = dC·Bᵀ */
    s = gemm_into_grad(ctx, a, AMP_NO_TRANS, AMP_TRANS, m, k, n, g->data, n, b->data, n, dt, 0);
  if (s == AMP_OK && b->requires_grad) /* dB = Aᵀ·dC */
    s = gemm_into_grad(ctx, b, AMP_TRANS, AMP_NO_TRANS, k, n, m, a->data, k, g->data, n, dt, 0);
  return s;
}

amp_tensor *amp_bmm(amp_ctx *ctx, amp_tensor *a, amp_tensor *b) {
  amp_tensor *in[2] = {a, b}, *c[2];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_BMM, 2, in, c, 0, &dt)) return NULL;
  if (c[0]->ndim != 3 || c[1]->ndim != 3 || c[0]->shape[0] != c[1]->shape[0] ||
      c[0]->shape[2] != c[1]->shape[1]) {
    char sa[64], sb[64];
    amp__error(ctx, AMP_ERR_SHAPE, "bmm: shapes %s and %s do not multiply ([B,m,k]·[B,k,n])",
               amp__shape_str(a, sa, sizeof sa), amp__shape_str(b, sb, sizeof sb));
    return NULL;
  }
  int64_t bs = c[0]->shape[0], m = c[0]->shape[1], k = c[0]->shape[2], n = c[1]->shape[2];
  amp_tensor *y = amp__op_result(ctx, dt, 3, (int64_t[]){bs, m, n});
  if (!y) return NULL;
  size_t es = amp_dtype_size(dt);
  for (int64_t i = 0; i < bs; i++)
    if (amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, m, n, k, 1.0f,
                 (char *)c[0]->data + (size_t)(i * m * k) * es, dt, k,
                 (char *)c[1]->data + (size_t)(i * k * n) * es, dt, n, 0.0f,
                 (char *)y->data + (size_t)(i * m * n) * es, dt, n, NULL) != AMP_OK)
      return NULL;
  amp__record(ctx, AMP__OP_BMM, y, 2, c);
  return y;
}

amp_status amp__bmm_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *g) {
  amp_tensor *a = nd->in[0], *b = nd->in[1];
  int64_t bs = a->shape[0], m = a->shape[1], k = a->shape[2], n = b->shape[2];
  amp_dtype dt = g->dtype;
  size_t es = amp_dtype_size(dt);
  amp_status s = AMP_OK;
  /* Take both gradient targets once, so that every batch accumulates (or
     overwrites) consistently. */
  int acc_a = 0, acc_b = 0;
  amp_tensor *ga = a->requires_grad ? amp__grad_of(ctx, a, &acc_a) : NULL;
  amp_tensor *gb = b->requires_grad ? amp__grad_of(ctx, b, &acc_b) : NULL;
  if ((a->requires_grad && !ga) || (b->requires_grad && !gb)) return amp_ctx_status(ctx);
  for (int64_t i = 0; i < bs && s == AMP_OK; i++) {
    const char *gi = (const char *)g->data + (size_t)(i * m * n) * es;
    const char *ai = (const char *)a->data + (size_t)(i * m * k) * es;
    const char *bi = (const char *)b->data + (size_t)(i * k * n) * es;
    if (ga)
      s = amp_gemm(
          ctx, AMP_NO_TRANS, AMP_TRANS, m, k, n, 1.0f, gi, dt, n, bi, dt, n, acc_a ? 1.0f : 0.0f,
          (char *)ga->data + (size_t)(i * m * k) * amp_dtype_size(ga->dtype), ga->dtype, k, NULL);
    if (s == AMP_OK && gb)
      s = amp_gemm(
          ctx, AMP_TRANS, AMP_NO_TRANS, k, n, m, 1.0f, ai, dt, k, gi, dt, n, acc_b ? 1.0f : 0.0f,
          (char *)gb->data + (size_t)(i * k * n) * amp_dtype_size(gb->dtype), gb->dtype, n, NULL);
  }
  return s;
}

amp_tensor *amp_linear(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b) {
  amp_tensor *in[3] = {x, w, b}, *c[3];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_LINEAR, 3, in, c, AMP__OPTIONAL(2), &dt)) return NULL;
  int64_t din = c[0]->shape[c[0]->ndim - 1];
  if (c[0]->ndim < 2 || c[1]->ndim != 2 || c[1]->shape[1] != din ||
      (c[2] && (c[2]->ndim != 1 || c[2]->shape[0] != c[1]->shape[0]))) {
    char sx[64], sw[64], sb[64];
    amp__error(ctx, AMP_ERR_SHAPE,
               "linear: input %s, weight %s, bias %s do not fit ([N,in], [out,in], [out])",
               amp__shape_str(x, sx, sizeof sx), amp__shape_str(w, sw, sizeof sw),
               amp__shape_str(b, sb, sizeof sb));
    return NULL;
  }
  int64_t dout = c[1]->shape[0], rows = c[0]->numel / din;
  int64_t shape[AMP_MAX_DIMS];
  memcpy(shape, c[0]->shape, sizeof shape);
  shape[c[0]->ndim - 1] = dout;
  if (ctx->fp8_active) return amp__linear_fp8(ctx, c, dt, c[0]->ndim, shape);
  amp_tensor *y = amp__op_result(ctx, dt, c[0]->ndim, shape);
  if (!y) return NULL;
  amp_epilogue ep = {.bias = c[2] ? c[2]->data : NULL, .bias_dtype = dt};
  if (amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, rows, dout, din, 1.0f, c[0]->data, dt, din, c[1]->data,
               dt, din, 0.0f, y->data, dt, dout, &ep) != AMP_OK)
    return NULL;
  amp__record(ctx, AMP__OP_LINEAR, y, c[2] ? 3 : 2, c);
  return y;
}

amp_status amp__linear_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *g) {
  amp_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->nin > 2 ? nd->in[2] : NULL;
  int64_t dout = w->shape[0], din = w->shape[1], rows = x->numel / din;
  amp_dtype dt = g->dtype;
  amp_status s = AMP_OK;
  if (nd->aux) /* FP8: dX and dW from the quantised operands */
    s = amp__linear_fp8_backward(ctx, nd, g);
  else if (x->requires_grad) /* dX = dY·W */
    s = gemm_into_grad(ctx, x, AMP_NO_TRANS, AMP_NO_TRANS, rows, din, dout, g->data, dout, w->data,
                       din, dt, 0);
  if (s == AMP_OK && !nd->aux && w->requires_grad) /* dW (+)= dYᵀ·X */
    s = gemm_into_grad(ctx, w, AMP_TRANS, AMP_NO_TRANS, dout, din, rows, g->data, dout, x->data,
                       din, dt, 0);
  if (s == AMP_OK && b && b->requires_grad) { /* db (+)= column sums of dY, in F32 */
    int acc;
    amp_tensor *gb = amp__grad_of(ctx, b, &acc);
    if (!gb) return amp_ctx_status(ctx);
    if (gb->dtype == AMP_F32) return amp_sum_cols(ctx, dt, rows, dout, g->data, gb->data, acc);
    float *tmp = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)dout * sizeof(float));
    if (!tmp) return amp_ctx_status(ctx);
    s = amp_sum_cols(ctx, dt, rows, dout, g->data, tmp, 0);
    if (s == AMP_OK) {
      if (!acc) memset(gb->data, 0, amp_tensor_bytes(gb));
      s = amp__grad_add(ctx, b, tmp, AMP_F32);
    }
  }
  return s;
}
