/* 2-D batch normalisation, category norm: x, w and b are read in their own
 * dtypes (no casts) and the result is stored in the compute dtype (the
 * autocast dtype in a region, so a 16-bit convolution's output stays 16-bit
 * through the norm, the ReLU and the pooling). Per channel (over N·H·W), in
 * training mode the batch mean and the biased variance about it are computed
 * in F32, in two passes, and the running statistics (F32 [C]) are updated as
 * PyTorch does: r = (1 - momentum)·r + momentum·s, with the unbiased variance
 * for running_var. In eval mode the running statistics normalise and nothing
 * is updated. Saved for backward: [C, 2] = (mean, 1/sqrt(var + eps)).
 *
 * The order of every per-channel sum (Σx, Σ(x - mean)², and backward's Σg,
 * Σg·x̂) is fixed: element q of each image's H·W plane goes to F32 partial
 * sum q % 32, images in order, and the 32 partials are combined in a fixed
 * pairwise tree (kernels/spatial_internal.h). The kernels (bn_sum, bn_apply,
 * bn_bwd_sums, bn_bwd_apply of the kernel table) give the same bits in the
 * scalar reference and the SIMD paths. Channels are independent and each is
 * reduced by one thread: the same bits for any thread count. */
#include "../dtype/dtype_inline.h"
#include "../kernels/spatial_internal.h"
#include "op_util.h"

#include <math.h>
#include <string.h>

/* Checks the running statistics: NULL or F32 [C]. */
static int stats_ok(const amp_tensor *t, int64_t ch) {
  return !t || (t->dtype == AMP_F32 && t->ndim == 1 && t->shape[0] == ch);
}

/* Batch mean and biased variance of channel k of x [N, C, HW] (F32 sums). */
static void channel_stats(const amp__kernels *kt, const void *xd, amp_dtype dt, int64_t n,
                          int64_t ch, int64_t hw, int64_t k, float *mean, float *var) {
  const void *xk = (const char *)xd + (size_t)(k * hw) * amp_dtype_size(dt);
  float cnt = (float)(n * hw);
  float m = kt->bn_sum(dt, n, hw, ch * hw, xk, 0.0f, 0) / cnt;
  *mean = m;
  *var = kt->bn_sum(dt, n, hw, ch * hw, xk, m, 1) / cnt;
}

amp_tensor *amp_batch_norm2d(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b,
                             amp_tensor *running_mean, amp_tensor *running_var, int training,
                             float momentum, float eps) {
  amp_tensor *in[3] = {x, w, b}, *c[3];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_BATCH_NORM2D, 3, in, c, AMP__OPTIONAL(1) | AMP__OPTIONAL(2),
                      &dt))
    return NULL;
  char sx[64];
  int64_t ch = c[0]->ndim == 4 ? c[0]->shape[1] : 0;
  int ok = ch > 0 && amp_dtype_is_float(c[0]->dtype);
  for (int i = 1; i < 3; i++) ok = ok && (!c[i] || (c[i]->ndim == 1 && c[i]->shape[0] == ch));
  ok = ok && stats_ok(running_mean, ch) && stats_ok(running_var, ch) &&
       (training || (running_mean && running_var)) && !(running_mean && !running_var) &&
       !(!running_mean && running_var);
  int64_t n = ok ? c[0]->shape[0] : 0, hw = ok ? c[0]->shape[2] * c[0]->shape[3] : 0;
  if (!ok || (training && n * hw < 2) || !(eps >= 0.0f) || isinf(eps) ||
      !(momentum >= 0.0f && momentum <= 1.0f)) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "batch_norm2d: input %s (floats [N,C,H,W], more than one value per channel in "
               "training), weight and bias NULL or [C], running mean and variance both NULL or "
               "both F32 [C] (required in eval), momentum %g in [0,1], eps %g >= 0",
               amp__shape_str(x, sx, sizeof sx), (double)momentum, (double)eps);
    return NULL;
  }
  amp_tensor *y = amp__op_result(ctx, dt, 4, c[0]->shape);
  amp_tensor *st = amp__op_result(ctx, AMP_F32, 2, (int64_t[]){ch, 2});
  if (!y || !st) return NULL;
  const void *xd = c[0]->data, *wd = c[1] ? c[1]->data : NULL, *bd = c[2] ? c[2]->data : NULL;
  float *s = st->data, *rm = running_mean ? running_mean->data : NULL;
  float *rv = running_var ? running_var->data : NULL;
  void *yd = y->data;
  amp_dtype xt = c[0]->dtype, wt = c[1] ? c[1]->dtype : dt, bt = c[2] ? c[2]->dtype : dt;
  const amp__kernels *kt = amp__kernels_of(ctx);
  size_t xes = amp_dtype_size(xt), yes = amp_dtype_size(dt);
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (c[0]->numel > 65536)
  for (int64_t k = 0; k < ch; k++) {
    float mean, var;
    if (training) {
      channel_stats(kt, xd, xt, n, ch, hw, k, &mean, &var);
      if (rm) {
        float unbiased = var * (float)(n * hw) / (float)(n * hw - 1);
        rm[k] = (1.0f - momentum) * rm[k] + momentum * mean;
        rv[k] = (1.0f - momentum) * rv[k] + momentum * unbiased;
      }
    } else {
      mean = rm[k];
      var = rv[k];
    }
    float rstd = 1.0f / sqrtf(var + eps);
    float wk = wd ? amp__load_f32(wd, wt, (size_t)k) : 1.0f;
    float bk = bd ? amp__load_f32(bd, bt, (size_t)k) : 0.0f;
    s[2 * k] = mean;
    s[2 * k + 1] = rstd;
    size_t at = (size_t)(k * hw);
    kt->bn_apply(xt, dt, n, hw, ch * hw, (const char *)xd + at * xes, (char *)yd + at * yes, mean,
                 rstd, wk, bk);
  }
  amp__node *nd = amp__record(ctx, AMP__OP_BATCH_NORM2D, y, 3, c);
  if (nd) {
    nd->saved = st;
    nd->iarg[0] = training;
  }
  return y;
}

/* Per channel: dw = Σ g·x̂, db = Σ g; dx = rstd·w·(g - mean(g) - x̂·mean(g·x̂))
 * in training (the statistics depend on x), rstd·w·g in eval. */
amp_status amp__batch_norm2d_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *gy) {
  amp_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
  amp_dtype dt = gy->dtype, xt = x->dtype, wt = w ? w->dtype : dt;
  amp_dtype gt = x->requires_grad ? amp__grad_dtype(x) : dt;
  int64_t n = x->shape[0], ch = x->shape[1], hw = x->shape[2] * x->shape[3];
  int training = (int)nd->iarg[0];
  const float *st = nd->saved->data;
  const void *xd = x->data, *g = gy->data, *wd = w ? w->data : NULL;
  float *dw = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)ch * 2 * sizeof(float));
  void *dx = x->requires_grad ? amp__grad_begin(ctx, x, gt) : NULL;
  if (!dw || (x->requires_grad && !dx)) return amp_ctx_status(ctx);
  float *db = dw + ch;
  float cnt = (float)(n * hw);
  const amp__kernels *kt = amp__kernels_of(ctx);
  size_t ges = amp_dtype_size(dt), xes = amp_dtype_size(xt), des = amp_dtype_size(gt);
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (x->numel > 65536)
  for (int64_t k = 0; k < ch; k++) {
    float mean = st[2 * k], rstd = st[2 * k + 1], sg, sgx;
    size_t at = (size_t)(k * hw);
    const char *gk = (const char *)g + at * ges, *xk = (const char *)xd + at * xes;
    kt->bn_bwd_sums(dt, xt, n, hw, ch * hw, gk, xk, mean, rstd, &sg, &sgx);
    dw[k] = sgx;
    db[k] = sg;
    if (!dx) continue;
    float wk = wd ? amp__load_f32(wd, wt, (size_t)k) : 1.0f;
    amp__bn_bwd_consts cs = {mean, rstd, rstd * wk, sg / cnt, sgx / cnt, training};
    kt->bn_bwd_apply(dt, xt, gt, n, hw, ch * hw, gk, xk, (char *)dx + at * des, &cs);
  }
  amp_status s = dx ? amp__grad_done(ctx, x, dx, gt) : AMP_OK;
  if (s == AMP_OK && w && w->requires_grad) s = amp__grad_add(ctx, w, dw, AMP_F32);
  if (s == AMP_OK && b && b->requires_grad) s = amp__grad_add(ctx, b, db, AMP_F32);
  return s;
}
