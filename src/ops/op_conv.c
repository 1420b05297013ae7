/* 2-D convolution (cross-correlation, NCHW), a lower-precision op: per
 * image, im2col into a step-arena buffer in the compute dtype, then one GEMM
 * W[O, C·kh·kw] · col[C·kh·kw, OH·OW] with F32 accumulation. The GEMM writes
 * an F32 scratch, the per-channel bias is added in F32, and the sum is
 * rounded once to the compute dtype.
 *
 * Backward recomputes the im2col buffers instead of keeping them (they are
 * kh·kw times the size of the input): dW accumulates Σ_n dY[n]·col[n]ᵀ with
 * beta = 1 GEMMs straight into the weight's F32 gradient, db sums dY over
 * images and pixels in F32, and dX = col2im(Wᵀ·dY[n]) accumulates in an F32
 * image that is rounded once into x's gradient. */
#include "../dtype/dtype_inline.h"
#include "ops_internal.h"

#include <string.h>

static amp_conv_geom geom_of(const amp_tensor *x, const amp_tensor *w, const int64_t *iarg) {
  amp_conv_geom g = {x->shape[1], x->shape[2], x->shape[3], w->shape[2], w->shape[3],
                     iarg[0],     iarg[1],     iarg[2],     iarg[3]};
  return g;
}

/* A 1×1, stride-1, unpadded convolution's im2col is the image itself. */
static int col_is_image(const amp_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_h == 0 &&
         g->pad_w == 0;
}

static int is_float_op_dtype(amp_dtype d) { return amp__dtype(d)->is_compute; }

amp_tensor *amp_conv2d(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b, int64_t stride_h,
                       int64_t stride_w, int64_t pad_h, int64_t pad_w) {
  amp_tensor *in[3] = {x, w, b}, *c[3];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_CONV2D, 3, in, c, AMP__OPTIONAL(2), &dt)) return NULL;
  char sx[64], sw[64], sb[64];
  if (!is_float_op_dtype(c[0]->dtype) || !is_float_op_dtype(c[1]->dtype) ||
      (c[2] && !is_float_op_dtype(c[2]->dtype))) {
    amp__error(ctx, AMP_ERR_UNSUPPORTED, "conv2d: input %s, weight %s, bias %s: ops take floats",
               amp__shape_str(x, sx, sizeof sx), amp__shape_str(w, sw, sizeof sw),
               amp__shape_str(b, sb, sizeof sb));
    return NULL;
  }
  if (stride_h < 1 || stride_w < 1 || pad_h < 0 || pad_w < 0) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "conv2d: stride %lldx%lld and padding %lldx%lld (strides >= 1, padding >= 0)",
               (long long)stride_h, (long long)stride_w, (long long)pad_h, (long long)pad_w);
    return NULL;
  }
  int64_t oh = 0, ow = 0;
  amp_conv_geom g = {0};
  int ok = c[0]->ndim == 4 && c[1]->ndim == 4 && c[0]->shape[1] == c[1]->shape[1] &&
           (!c[2] || (c[2]->ndim == 1 && c[2]->shape[0] == c[1]->shape[0]));
  if (ok) {
    g = geom_of(c[0], c[1], (int64_t[]){stride_h, stride_w, pad_h, pad_w});
    amp_conv_out_size(&g, &oh, &ow);
    ok = oh > 0 && ow > 0;
  }
  if (!ok) {
    amp__error(ctx, AMP_ERR_SHAPE,
               "conv2d: input %s, weight %s, bias %s with padding %lldx%lld do not fit "
               "([N,C,H,W], [O,C,kh,kw] with the kernel within the padded input, [O])",
               amp__shape_str(x, sx, sizeof sx), amp__shape_str(w, sw, sizeof sw),
               amp__shape_str(b, sb, sizeof sb), (long long)pad_h, (long long)pad_w);
    return NULL;
  }
  int64_t nb = c[0]->shape[0], o = c[1]->shape[0], kk = g.c * g.kh * g.kw, p = oh * ow;
  amp_tensor *y = amp__op_result(ctx, dt, 4, (int64_t[]){nb, o, oh, ow});
  if (!y) return NULL;
  size_t es = amp_dtype_size(dt);
  int direct = col_is_image(&g);
  void *col = direct ? NULL : amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)(kk * p) * es);
  /* F32 results go straight into y; 16-bit ones through an F32 scratch. */
  float *acc = dt == AMP_F32 ? NULL : amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)(o * p) * 4);
  if ((!direct && !col) || (dt != AMP_F32 && !acc)) return NULL;
  for (int64_t n = 0; n < nb; n++) {
    const char *img = (const char *)c[0]->data + (size_t)(n * g.c * g.h * g.w) * es;
    char *yn = (char *)y->data + (size_t)(n * o * p) * es;
    float *dst = acc ? acc : (float *)yn;
    if (!direct && amp_im2col(ctx, dt, &g, img, col) != AMP_OK) return NULL;
    if (amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, o, p, kk, 1.0f, c[1]->data, dt, kk,
                 direct ? (const void *)img : col, dt, p, 0.0f, dst, AMP_F32, p, NULL) != AMP_OK)
      return NULL;
    if (c[2]) { /* the bias, per output channel (row), in F32 */
      for (int64_t r = 0; r < o; r++) {
        float bias = amp__load_f32(c[2]->data, dt, (size_t)r);
        for (int64_t q = 0; q < p; q++) dst[r * p + q] += bias;
      }
    }
    if (acc && amp__convert(ctx, yn, dt, acc, AMP_F32, (size_t)(o * p), NULL) != AMP_OK)
      return NULL;
  }
  amp__node *nd = amp__record(ctx, AMP__OP_CONV2D, y, c[2] ? 3 : 2, c);
  if (nd) {
    nd->iarg[0] = stride_h;
    nd->iarg[1] = stride_w;
    nd->iarg[2] = pad_h;
    nd->iarg[3] = pad_w;
  }
  return y;
}

amp_status amp__conv2d_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *gy) {
  amp_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->nin > 2 ? nd->in[2] : NULL;
  amp_conv_geom g = geom_of(x, w, nd->iarg);
  int64_t oh, ow;
  amp_conv_out_size(&g, &oh, &ow);
  int64_t nb = x->shape[0], o = w->shape[0], kk = g.c * g.kh * g.kw, p = oh * ow;
  int64_t img_n = g.c * g.h * g.w;
  amp_dtype dt = gy->dtype; /* == x->dtype == w->dtype: the compute dtype */
  size_t es = amp_dtype_size(dt);
  int direct = col_is_image(&g);
  amp_status s = AMP_OK;

  if (w->requires_grad) { /* dW (+)= Σ_n dY[n]·col[n]ᵀ */
    int acc;
    amp_tensor *gw = amp__grad_of(ctx, w, &acc);
    if (!gw) return amp_ctx_status(ctx);
    /* Accumulate in F32: the leaf's gradient itself, or a scratch when the
       weight is a 16-bit intermediate. */
    int f32 = gw->dtype == AMP_F32;
    /* amp__grad_of() allocated a fresh target: amp__grad_add() below will
       add to it, so it must hold zeros. */
    if (!f32 && !acc) memset(gw->data, 0, amp_tensor_bytes(gw));
    float *dw = f32 ? gw->data : amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)(o * kk) * 4);
    void *col = direct ? NULL : amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)(kk * p) * es);
    if (!dw || (!direct && !col)) return amp_ctx_status(ctx);
    int beta1 = f32 && acc;
    for (int64_t n = 0; n < nb && s == AMP_OK; n++) {
      const char *img = (const char *)x->data + (size_t)(n * img_n) * es;
      if (!direct) s = amp_im2col(ctx, dt, &g, img, col);
      if (s == AMP_OK)
        s = amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, o, kk, p, 1.0f,
                     (const char *)gy->data + (size_t)(n * o * p) * es, dt, p,
                     direct ? (const void *)img : col, dt, p, beta1 ? 1.0f : 0.0f, dw, AMP_F32, kk,
                     NULL);
      beta1 = 1;
    }
    if (s == AMP_OK && !f32) s = amp__grad_add(ctx, w, dw, AMP_F32);
    if (s != AMP_OK) return s;
  }

  if (b && b->requires_grad) { /* db (+)= Σ over images and pixels of dY, in F32 */
    float *rows = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)(nb * o) * 4);
    float *db = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)o * 4);
    if (!rows || !db) return amp_ctx_status(ctx);
    s = amp_sum_rows(ctx, dt, nb * o, p, gy->data, rows);
    if (s != AMP_OK) return s;
    for (int64_t r = 0; r < o; r++) db[r] = 0.0f;
    for (int64_t n = 0; n < nb; n++)
      for (int64_t r = 0; r < o; r++) db[r] += rows[n * o + r];
    s = amp__grad_add(ctx, b, db, AMP_F32);
    if (s != AMP_OK) return s;
  }

  if (x->requires_grad) { /* dX = col2im(Wᵀ·dY[n]), accumulated in F32 */
    /* One image at a time in F32, then added into x's gradient in its dtype
       (rounded once, as a whole-batch F32 image added at the end would be):
       an F32 copy of one image, not of the batch */
    int acc;
    amp_tensor *gx = amp__grad_of(ctx, x, &acc);
    float *dxn = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)img_n * 4);
    float *dcol = direct ? NULL : amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)(kk * p) * 4);
    if (!gx || !dxn || (!direct && !dcol)) return amp_ctx_status(ctx);
    for (int64_t n = 0; n < nb && s == AMP_OK; n++) {
      if (!direct) memset(dxn, 0, (size_t)img_n * 4);
      s = amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, kk, p, o, 1.0f, w->data, dt, kk,
                   (const char *)gy->data + (size_t)(n * o * p) * es, dt, p, 0.0f,
                   direct ? dxn : dcol, AMP_F32, p, NULL);
      if (s == AMP_OK && !direct) s = amp_col2im(ctx, AMP_F32, &g, dcol, dxn);
      for (int64_t i = 0; s == AMP_OK && i < img_n; i++) {
        size_t at = (size_t)(n * img_n + i);
        amp__store_f32(gx->data, gx->dtype, at,
                       acc ? amp__load_f32(gx->data, gx->dtype, at) + dxn[i] : dxn[i]);
      }
    }
  }
  return s;
}
