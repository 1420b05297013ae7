/* Layer normalisation over the last dimension, category norm: its inputs
 * are read in their own dtypes (no casts: an F32 residual is not copied to
 * 16 bits, nor a 16-bit input to F32), the row statistics are always
 * computed in F32 (mean, then the biased variance about it, in two passes)
 * and saved as [rows, 2] = (mean, 1/sqrt(var + eps)) for backward, and the
 * result is stored in the compute dtype: the autocast dtype in a region,
 * else the widest input dtype. */
#include "../dtype/dtype_inline.h"
#include "op_util.h"

#include <math.h>
#include <string.h>

amp_tensor *amp_layer_norm(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b, float eps) {
  amp_tensor *in[3] = {x, w, b}, *c[3];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_LAYER_NORM, 3, in, c, AMP__OPTIONAL(1) | AMP__OPTIONAL(2), &dt))
    return NULL;
  char sx[64], sw[64], sb[64];
  for (int i = 0; i < 3; i++)
    if (c[i] && !amp_dtype_is_float(c[i]->dtype)) {
      amp__error(ctx, AMP_ERR_UNSUPPORTED, "layer_norm: input %d has dtype %s; ops take floats", i,
                 amp_dtype_name(c[i]->dtype));
      return NULL;
    }
  int64_t d = c[0]->shape[c[0]->ndim - 1];
  if ((c[1] && (c[1]->ndim != 1 || c[1]->shape[0] != d)) ||
      (c[2] && (c[2]->ndim != 1 || c[2]->shape[0] != d))) {
    amp__error(ctx, AMP_ERR_SHAPE,
               "layer_norm: input %s, weight %s, bias %s do not fit ([...,D], [D], [D])",
               amp__shape_str(x, sx, sizeof sx), amp__shape_str(w, sw, sizeof sw),
               amp__shape_str(b, sb, sizeof sb));
    return NULL;
  }
  if (!(eps >= 0.0f) || isinf(eps)) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "layer_norm: eps %g must be finite and >= 0", (double)eps);
    return NULL;
  }
  int64_t rows = c[0]->numel / d;
  amp_tensor *y = amp__op_result(ctx, dt, c[0]->ndim, c[0]->shape);
  amp_tensor *stats = amp__op_result(ctx, AMP_F32, 2, (int64_t[]){rows, 2});
  if (!y || !stats) return NULL;
  const void *xd = c[0]->data, *wd = c[1] ? c[1]->data : NULL, *bd = c[2] ? c[2]->data : NULL;
  amp_dtype xt = c[0]->dtype, wt = c[1] ? c[1]->dtype : dt, bt = c[2] ? c[2]->dtype : dt;
  float *st = stats->data;
  /* Rows are independent: any thread count gives the same bits. */
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (c[0]->numel > 65536)
  for (int64_t r = 0; r < rows; r++) {
    size_t o = (size_t)(r * d);
    float sum = 0.0f;
    for (int64_t j = 0; j < d; j++) sum += amp__load_f32(xd, xt, o + (size_t)j);
    float mean = sum / (float)d, ss = 0.0f;
    for (int64_t j = 0; j < d; j++) {
      float t = amp__load_f32(xd, xt, o + (size_t)j) - mean;
      ss += t * t;
    }
    float rstd = 1.0f / sqrtf(ss / (float)d + eps);
    st[2 * r] = mean;
    st[2 * r + 1] = rstd;
    for (int64_t j = 0; j < d; j++) {
      float v = (amp__load_f32(xd, xt, o + (size_t)j) - mean) * rstd;
      if (wd) v *= amp__load_f32(wd, wt, (size_t)j);
      if (bd) v += amp__load_f32(bd, bt, (size_t)j);
      amp__store_f32(y->data, dt, o + (size_t)j, v);
    }
  }
  amp__node *nd = amp__record(ctx, AMP__OP_LAYER_NORM, y, 3, c);
  if (nd) {
    nd->saved = stats;
    nd->farg[0] = eps;
  }
  return y;
}

amp_status amp__layer_norm_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *gy) {
  amp_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
  amp_dtype dt = gy->dtype; /* the result's dtype */
  amp_dtype xt = x->dtype, wt = w ? w->dtype : dt;
  int64_t d = x->shape[x->ndim - 1], rows = x->numel / d;
  const float *st = nd->saved->data;
  const void *xd = x->data, *g = gy->data, *wd = w ? w->data : NULL;
  amp_status s = AMP_OK;
  if (x->requires_grad) {
    amp_dtype gt = amp__grad_dtype(x);
    int acc; /* an F32 gradient that holds a value (an F32 residual's): added in place */
    void *dx = amp__grad_begin_acc(ctx, x, gt, &acc);
    if (!dx) return amp_ctx_status(ctx);
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (x->numel > 65536)
    for (int64_t r = 0; r < rows; r++) {
      size_t o = (size_t)(r * d);
      float mean = st[2 * r], rstd = st[2 * r + 1], m1 = 0.0f, m2 = 0.0f;
      for (int64_t j = 0; j < d; j++) {
        float xh = (amp__load_f32(xd, xt, o + (size_t)j) - mean) * rstd;
        float gh = amp__load_f32(g, dt, o + (size_t)j);
        if (wd) gh *= amp__load_f32(wd, wt, (size_t)j);
        m1 += gh;
        m2 += gh * xh;
      }
      m1 /= (float)d;
      m2 /= (float)d;
      for (int64_t j = 0; j < d; j++) {
        float xh = (amp__load_f32(xd, xt, o + (size_t)j) - mean) * rstd;
        float gh = amp__load_f32(g, dt, o + (size_t)j);
        if (wd) gh *= amp__load_f32(wd, wt, (size_t)j);
        float v = rstd * (gh - m1 - xh * m2);
        amp__store_f32(dx, gt, o + (size_t)j, acc ? ((float *)dx)[o + (size_t)j] + v : v);
      }
    }
    s = amp__grad_done(ctx, x, dx, gt);
    if (s != AMP_OK) return s;
  }
  int need_w = w && w->requires_grad, need_b = b && b->requires_grad;
  if (!need_w && !need_b) return AMP_OK;
  /* dw = Σ_rows dy·x̂, db = Σ_rows dy, in F32, rows added in order. */
  float *dw = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)d * 4);
  float *db = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)d * 4);
  if (!dw || !db) return amp_ctx_status(ctx);
  memset(dw, 0, (size_t)d * 4);
  memset(db, 0, (size_t)d * 4);
  for (int64_t r = 0; r < rows; r++) {
    size_t o = (size_t)(r * d);
    float mean = st[2 * r], rstd = st[2 * r + 1];
    for (int64_t j = 0; j < d; j++) {
      float gv = amp__load_f32(g, dt, o + (size_t)j);
      dw[j] += gv * ((amp__load_f32(xd, xt, o + (size_t)j) - mean) * rstd);
      db[j] += gv;
    }
  }
  if (need_w) s = amp__grad_add(ctx, w, dw, AMP_F32);
  if (s == AMP_OK && need_b) s = amp__grad_add(ctx, b, db, AMP_F32);
  return s;
}
