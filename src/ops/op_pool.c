/* 2-D max pooling without padding (category same: it moves values, so the
 * output keeps the input's dtype and bits). The forward saves, per output,
 * the index in its H×W plane of the first maximum of the window (row-major
 * window order; a NaN counts as the maximum, as in PyTorch); backward
 * scatters dY there, accumulating overlapping windows in F32. The forward
 * runs the kernel table's max_pool_row (a 2×2, stride-2 SIMD path; the
 * scalar reference elsewhere), a row of outputs per call. */
#include "../dtype/dtype_inline.h"
#include "ops_internal.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

amp_tensor *amp_max_pool2d(amp_ctx *ctx, amp_tensor *x, int64_t kh, int64_t kw, int64_t stride_h,
                           int64_t stride_w) {
  amp_tensor *c[1];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_MAX_POOL2D, 1, &x, c, 0, &dt)) return NULL;
  char sx[64];
  if (!amp_dtype_is_float(c[0]->dtype)) {
    amp__error(ctx, AMP_ERR_UNSUPPORTED, "max_pool2d: input %s: ops take floats",
               amp__shape_str(x, sx, sizeof sx));
    return NULL;
  }
  if (kh < 1 || kw < 1 || stride_h < 1 || stride_w < 1) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "max_pool2d: window %lldx%lld and stride %lldx%lld must be >= 1", (long long)kh,
               (long long)kw, (long long)stride_h, (long long)stride_w);
    return NULL;
  }
  if (c[0]->ndim != 4 || c[0]->shape[2] < kh || c[0]->shape[3] < kw ||
      c[0]->shape[2] * c[0]->shape[3] > INT32_MAX) {
    amp__error(ctx, AMP_ERR_SHAPE,
               "max_pool2d: input %s does not fit a %lldx%lld window ([N,C,H,W])",
               amp__shape_str(x, sx, sizeof sx), (long long)kh, (long long)kw);
    return NULL;
  }
  int64_t planes = c[0]->shape[0] * c[0]->shape[1], h = c[0]->shape[2], w = c[0]->shape[3];
  int64_t oh = (h - kh) / stride_h + 1, ow = (w - kw) / stride_w + 1;
  int64_t shape[4] = {c[0]->shape[0], c[0]->shape[1], oh, ow};
  amp_tensor *y = amp__op_result(ctx, dt, 4, shape);
  amp_tensor *arg = amp__op_result(ctx, AMP_I32, 4, shape);
  if (!y || !arg) return NULL;
  size_t es = amp_dtype_size(dt);
  const char *xd = c[0]->data;
  char *yd = y->data;
  int32_t *ad = arg->data;
  const amp__kernels *kt = amp__kernels_of(ctx);
  /* Planes are independent: any thread count gives the same bits. */
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (planes * h * w > 65536)
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t i = 0; i < oh; i++) {
      size_t out = (size_t)((pl * oh + i) * ow);
      kt->max_pool_row(dt, w, kh, kw, stride_w, ow, xd + (size_t)((pl * h + i * stride_h) * w) * es,
                       yd + out * es, ad + out, (int32_t)(i * stride_h * w));
    }
  amp__node *nd = amp__record(ctx, AMP__OP_MAX_POOL2D, y, 1, c);
  if (nd) {
    nd->saved = arg;
    nd->iarg[0] = kh;
    nd->iarg[1] = kw;
    nd->iarg[2] = stride_h;
    nd->iarg[3] = stride_w;
  }
  return y;
}

/* One plane of the non-overlapping backward: dY's values added (acc) or
 * stored at their saved indices, with gt (dY) and t (the target) constants
 * in each instance; zero: the plane is cleared first (a target that was not
 * zeroed, whose every element the windows cover). */
static inline void scatter_plane(int gt, int t, int acc, int zero, int64_t per, int64_t hw,
                                 const void *gy, const int32_t *ad, void *gx, int64_t pl) {
  if (zero)
    memset((char *)gx + (size_t)(pl * hw) * amp_dtype_size(t), 0, (size_t)hw * amp_dtype_size(t));
  if (gt == t && !acc && t != AMP_F32) { /* store(load(h)): h, NaN quieted */
    const uint16_t *g16 = gy, quiet = t == AMP_F16 ? 0x200 : 0x40,
                   inf = t == AMP_F16 ? 0x7c00 : 0x7f80;
    for (int64_t q = 0; q < per; q++) {
      size_t out = (size_t)(pl * per + q);
      uint16_t h = g16[out];
      ((uint16_t *)gx)[pl * hw + ad[out]] = (h & 0x7fff) > inf ? (uint16_t)(h | quiet) : h;
    }
    return;
  }
  for (int64_t q = 0; q < per; q++) {
    size_t out = (size_t)(pl * per + q), at = (size_t)(pl * hw + ad[out]);
    float v = amp__load_f32(gy, gt, out);
    amp__store_f32(gx, t, at, acc ? amp__load_f32(gx, t, at) + v : v);
  }
}

#define SCATTER(GT, T)                                                                             \
  for (int64_t pl = p0; pl < p1; pl++) scatter_plane(GT, T, acc, zero, per, hw, gy, ad, gx, pl)

static void scatter_planes(int gt, int t, int acc, int zero, int64_t per, int64_t hw,
                           const void *gy, const int32_t *ad, void *gx, int64_t p0, int64_t p1) {
  if (gt == AMP_F32 && t == AMP_F32)
    SCATTER(AMP_F32, AMP_F32);
  else if (gt == AMP_F16 && t == AMP_F16)
    SCATTER(AMP_F16, AMP_F16);
  else if (gt == AMP_BF16 && t == AMP_BF16)
    SCATTER(AMP_BF16, AMP_BF16);
  else
    SCATTER(gt, t);
}
#undef SCATTER

amp_status amp__max_pool2d_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *gy) {
  amp_tensor *x = nd->in[0];
  if (!x->requires_grad) return AMP_OK;
  int64_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
  int64_t per = gy->shape[2] * gy->shape[3];
  const int32_t *ad = nd->saved->data;
  amp_dtype gdt = gy->dtype;
  int64_t kh = nd->iarg[0], kw = nd->iarg[1], sh = nd->iarg[2], sw = nd->iarg[3];
  if (kh <= sh && kw <= sw) {
    /* Windows that do not overlap: each input receives at most one value,
       added straight into x's gradient in its dtype (the same bits as a sum
       in F32 rounded once, without an F32 image of x). Windows that tile
       the input exactly let each plane clear its part of a fresh target in
       cache instead of a separate pass over all of it. */
    int tiles = kh == sh && kw == sw && x->shape[2] == gy->shape[2] * sh &&
                x->shape[3] == gy->shape[3] * sw;
    int acc;
    amp_tensor *gx = tiles ? amp__grad_of_overwrite(ctx, x, &acc) : amp__grad_of(ctx, x, &acc);
    if (!gx) return amp_ctx_status(ctx);
    int t = gx->dtype, zero = tiles && !acc;
#pragma omp parallel num_threads(amp__threads(ctx)) if (x->numel > 65536)
    {
#ifdef _OPENMP
      int64_t me = omp_get_thread_num(), nt = omp_get_num_threads();
#else
      int64_t me = 0, nt = 1;
#endif
      scatter_planes(gdt, t, acc, zero, per, hw, gy->data, ad, gx->data, planes * me / nt,
                     planes * (me + 1) / nt);
    }
    return AMP_OK;
  }
  float *dx = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)x->numel * sizeof(float));
  if (!dx) return amp_ctx_status(ctx);
  memset(dx, 0, (size_t)x->numel * sizeof(float));
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (x->numel > 65536)
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t q = 0; q < per; q++) { /* in output order: deterministic sums */
      size_t out = (size_t)(pl * per + q);
      dx[pl * hw + ad[out]] += amp__load_f32(gy->data, gdt, out);
    }
  return amp__grad_add(ctx, x, dx, AMP_F32);
}

/* 2-D average pooling without padding (category same): each output is the
 * F32 sum of its window in row-major order divided by kh·kw, rounded once to
 * the input's dtype. Backward spreads dY/(kh·kw) over each window in F32,
 * planes in parallel, outputs of a plane in order (the same bits for any
 * thread count). */
amp_tensor *amp_avg_pool2d(amp_ctx *ctx, amp_tensor *x, int64_t kh, int64_t kw, int64_t stride_h,
                           int64_t stride_w) {
  amp_tensor *c[1];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_AVG_POOL2D, 1, &x, c, 0, &dt)) return NULL;
  char sx[64];
  if (!amp_dtype_is_float(c[0]->dtype) || kh < 1 || kw < 1 || stride_h < 1 || stride_w < 1 ||
      c[0]->ndim != 4 || c[0]->shape[2] < kh || c[0]->shape[3] < kw) {
    amp__error(ctx, AMP_ERR_SHAPE,
               "avg_pool2d: input %s does not fit a %lldx%lld window with stride %lldx%lld "
               "(floats [N,C,H,W], window and stride >= 1)",
               amp__shape_str(x, sx, sizeof sx), (long long)kh, (long long)kw, (long long)stride_h,
               (long long)stride_w);
    return NULL;
  }
  int64_t planes = c[0]->shape[0] * c[0]->shape[1], h = c[0]->shape[2], w = c[0]->shape[3];
  int64_t oh = (h - kh) / stride_h + 1, ow = (w - kw) / stride_w + 1;
  amp_tensor *y = amp__op_result(ctx, dt, 4, (int64_t[]){c[0]->shape[0], c[0]->shape[1], oh, ow});
  if (!y) return NULL;
  const void *xd = c[0]->data;
  void *yd = y->data;
  float inv = 1.0f / (float)(kh * kw);
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (planes * h * w > 65536)
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t i = 0; i < oh; i++)
      for (int64_t j = 0; j < ow; j++) {
        float s = 0.0f;
        for (int64_t a = 0; a < kh; a++)
          for (int64_t b = 0; b < kw; b++)
            s +=
                amp__load_f32(xd, dt, (size_t)((pl * h + i * stride_h + a) * w + j * stride_w + b));
        amp__store_f32(yd, dt, (size_t)((pl * oh + i) * ow + j), s * inv);
      }
  amp__node *nd = amp__record(ctx, AMP__OP_AVG_POOL2D, y, 1, c);
  if (nd) {
    nd->iarg[0] = kh;
    nd->iarg[1] = kw;
    nd->iarg[2] = stride_h;
    nd->iarg[3] = stride_w;
  }
  return y;
}

amp_tensor *amp_global_avg_pool2d(amp_ctx *ctx, amp_tensor *x) {
  if (!ctx) return NULL;
  if (!x || x->ndim != 4) {
    char sx[64] = "(null)";
    if (x) amp__shape_str(x, sx, sizeof sx);
    amp__error(ctx, AMP_ERR_SHAPE, "global_avg_pool2d: input %s is not [N,C,H,W]", sx);
    return NULL;
  }
  return amp_avg_pool2d(ctx, x, x->shape[2], x->shape[3], x->shape[2], x->shape[3]);
}

amp_status amp__avg_pool2d_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *gy) {
  amp_tensor *x = nd->in[0];
  if (!x->requires_grad) return AMP_OK;
  int64_t kh = nd->iarg[0], kw = nd->iarg[1], sh = nd->iarg[2], sw = nd->iarg[3];
  int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
  int64_t oh = gy->shape[2], ow = gy->shape[3];
  float *dx = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)x->numel * sizeof(float));
  if (!dx) return amp_ctx_status(ctx);
  memset(dx, 0, (size_t)x->numel * sizeof(float));
  amp_dtype gdt = gy->dtype;
  const void *gd = gy->data;
  float inv = 1.0f / (float)(kh * kw);
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (x->numel > 65536)
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t i = 0; i < oh; i++)
      for (int64_t j = 0; j < ow; j++) {
        float g = amp__load_f32(gd, gdt, (size_t)((pl * oh + i) * ow + j)) * inv;
        for (int64_t a = 0; a < kh; a++)
          for (int64_t b = 0; b < kw; b++) dx[(pl * h + i * sh + a) * w + j * sw + b] += g;
      }
  return amp__grad_add(ctx, x, dx, AMP_F32);
}
