/* Losses, computed in F32 under autocast: cross-entropy from logits (which
 * reads 16-bit logits itself, into its F32 log-softmax, instead of on an F32
 * copy: ops.def's reads OWN) and MSE. */
#include "../dtype/dtype_inline.h"
#include "op_util.h"

#include <math.h>
#include <string.h>

amp_tensor *amp_cross_entropy(amp_ctx *ctx, amp_tensor *logits, amp_tensor *labels) {
  amp_tensor *in[2] = {logits, labels}, *c[2];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_CROSS_ENTROPY, 2, in, c, 0, &dt)) return NULL;
  char sl[64], sy[64];
  if (c[0]->ndim != 2 || labels->dtype != AMP_I32 || labels->numel != c[0]->shape[0] ||
      !amp_dtype_is_float(c[0]->dtype)) {
    amp__error(ctx, AMP_ERR_SHAPE,
               "cross_entropy: logits %s and labels %s do not fit ([N,C] float, [N] i32)",
               amp__shape_str(logits, sl, sizeof sl), amp__shape_str(labels, sy, sizeof sy));
    return NULL;
  }
  int64_t rows = c[0]->shape[0], cols = c[0]->shape[1];
  const int32_t *lab = labels->data;
  for (int64_t i = 0; i < rows; i++)
    if (lab[i] < 0 || lab[i] >= cols) {
      amp__error(ctx, AMP_ERR_INVALID_ARG,
                 "cross_entropy: label %d of sample %lld is not a class in 0..%lld", (int)lab[i],
                 (long long)i, (long long)(cols - 1));
      return NULL;
    }
  /* log-softmax rows in F32, kept for backward (its exp is the softmax). */
  amp_tensor *lsm = amp__op_result(ctx, AMP_F32, 2, c[0]->shape);
  amp_tensor *y = amp__op_result(ctx, dt, 1, (int64_t[]){1});
  if (!lsm || !y) return NULL;
  const void *x = c[0]->data; /* in its own dtype (this op reads OWN): no F32 copy of it */
  if (c[0]->dtype != AMP_F32) {
    if (amp__convert(ctx, lsm->data, AMP_F32, x, c[0]->dtype, (size_t)lsm->numel, NULL) != AMP_OK)
      return NULL;
    x = lsm->data;
  }
  if (amp_log_softmax_rows(ctx, AMP_F32, rows, cols, x, lsm->data) != AMP_OK) return NULL;
  const float *l = lsm->data;
  double total = 0; /* in order, in double: exact enough and deterministic */
  for (int64_t i = 0; i < rows; i++) total -= l[i * cols + lab[i]];
  amp__store_f32(y->data, dt, 0, (float)(total / (double)rows));
  amp__node *n = amp__record(ctx, AMP__OP_CROSS_ENTROPY, y, 2, c);
  if (n) n->saved = lsm;
  return y;
}

amp_status amp__cross_entropy_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0], *labels = n->in[1];
  const float *l = n->saved->data;
  const int32_t *lab = labels->data;
  int64_t rows = x->shape[0], cols = x->shape[1];
  float scale = amp__load_f32(g->data, g->dtype, 0) / (float)rows;
  amp_dtype gt = amp__grad_dtype(x);
  void *dx = amp__grad_begin(ctx, x, gt);
  if (!dx) return amp_ctx_status(ctx);
  /* d/dx_ij = (softmax_ij - [j == y_i]) · g / N, in F32, rounded once to the
     gradient's dtype */
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      float p = expf(l[i * cols + j]) - (j == lab[i] ? 1.0f : 0.0f);
      amp__store_f32(dx, gt, (size_t)(i * cols + j), p * scale);
    }
  return amp__grad_done(ctx, x, dx, gt);
}

amp_tensor *amp_mse(amp_ctx *ctx, amp_tensor *a, amp_tensor *b) {
  amp_tensor *in[2] = {a, b}, *c[2];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_MSE, 2, in, c, 0, &dt)) return NULL;
  int same = c[0]->ndim == c[1]->ndim && amp_dtype_is_float(c[0]->dtype) &&
             amp_dtype_is_float(c[1]->dtype);
  for (int i = 0; same && i < c[0]->ndim; i++) same = c[0]->shape[i] == c[1]->shape[i];
  if (!same) {
    char sa[64], sb[64];
    amp__error(ctx, AMP_ERR_SHAPE, "mse: shapes %s and %s differ (or are not float)",
               amp__shape_str(a, sa, sizeof sa), amp__shape_str(b, sb, sizeof sb));
    return NULL;
  }
  size_t cnt = (size_t)c[0]->numel;
  amp_tensor *y = amp__op_result(ctx, dt, 1, (int64_t[]){1});
  float *sq = amp_arena_alloc(ctx, AMP_ARENA_STEP, cnt * sizeof(float));
  if (!y || !sq) return NULL;
  for (size_t i = 0; i < cnt; i++) {
    float d = amp__load_f32(c[0]->data, dt, i) - amp__load_f32(c[1]->data, dt, i);
    sq[i] = d * d;
  }
  float s; /* fixed summation order: the same bits for any thread count */
  if (amp_vec_sum(ctx, AMP_F32, cnt, sq, &s) != AMP_OK) return NULL;
  amp__store_f32(y->data, dt, 0, s / (float)cnt);
  amp__record(ctx, AMP__OP_MSE, y, 2, c);
  return y;
}

/* d/da = 2(a − b)·g/n, d/db = −d/da, in F32, stored in each target's dtype. */
amp_status amp__mse_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *in[2] = {n->in[0], n->in[1]};
  amp_dtype dt = in[0]->dtype;
  size_t cnt = (size_t)in[0]->numel;
  float k = 2.0f * amp__load_f32(g->data, g->dtype, 0) / (float)cnt;
  for (int t = 0; t < 2; t++) {
    if (!in[t]->requires_grad) continue;
    amp_dtype gdt = amp__grad_dtype(in[t]);
    void *d = amp__grad_begin(ctx, in[t], gdt);
    if (!d) return amp_ctx_status(ctx);
    float sign = t == 0 ? k : -k;
    for (size_t i = 0; i < cnt; i++)
      amp__store_f32(d, gdt, i,
                     sign *
                         (amp__load_f32(in[0]->data, dt, i) - amp__load_f32(in[1]->data, dt, i)));
    amp_status s = amp__grad_done(ctx, in[t], d, gdt);
    if (s != AMP_OK) return s;
  }
  return AMP_OK;
}
