/* Layer normalisation over the last dimension, category norm: its inputs
 * are read in their own dtypes (no casts: an F32 residual is not copied to
 * 16 bits, nor a 16-bit input to F32), the row statistics are always
 * computed in F32 (mean, then the biased variance about it, in two passes,
 * each sum in the 16-lane order of kernels/norm_internal.h, which also gives
 * the formulas) and saved as [rows, 2] = (mean, 1/sqrt(var + eps)) for backward, and the
 * result is stored in the compute dtype: the autocast dtype in a region,
 * else the widest input dtype. */
#include "../kernels/norm_internal.h"
#include "op_util.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Forward (bwd = 0) or backward dx of all rows: each thread takes one
 * contiguous range of rows (rows are independent: the same bits with any
 * thread count); small problems stay on the calling thread. */
static void ln_rows(amp_ctx *ctx, const amp__ln_args *a, int64_t rows, int bwd) {
  const amp__kernels *k = amp__kernels_of(ctx);
  int nt = amp__threads(ctx);
  if ((int64_t)a->d * rows < 32768 || rows < nt) nt = 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int id = omp_get_thread_num(), n = omp_get_num_threads();
    int64_t r0 = rows * id / n, r1 = rows * (id + 1) / n;
    (bwd ? k->ln_bwd : k->ln_fwd)(a, r0, r1);
  }
}

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
  amp__ln_args a = {.d = (size_t)d,
                    .xdt = xt,
                    .ydt = dt,
                    .wdt = wt,
                    .bdt = bt,
                    .eps = eps,
                    .x = xd,
                    .w = wd,
                    .b = bd,
                    .y = y->data,
                    .stat = stats->data};
  ln_rows(ctx, &a, rows, 0);
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
    amp__ln_args a = {.d = (size_t)d,
                      .xdt = xt,
                      .wdt = wt,
                      .gdt = dt,
                      .dxdt = gt,
                      .acc = acc,
                      .x = xd,
                      .w = wd,
                      .g = g,
                      .dx = dx,
                      .stat = (float *)st};
    ln_rows(ctx, &a, rows, 1);
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
  amp__ln_args a = {.d = (size_t)d,
                    .xdt = xt,
                    .gdt = dt,
                    .x = xd,
                    .g = g,
                    .stat = (float *)st,
                    .dw = need_w ? dw : NULL,
                    .db = need_b ? db : NULL};
  amp__kernels_of(ctx)->ln_wb(&a, rows);
  if (need_w) s = amp__grad_add(ctx, w, dw, AMP_F32);
  if (s == AMP_OK && need_b) s = amp__grad_add(ctx, b, db, AMP_F32);
  return s;
}
