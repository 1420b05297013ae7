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
 * image that is rounded once into x's gradient.
 *
 * Threads: the forward and dX split the images (each thread runs whole
 * images with a one-thread GEMM and its own buffers); dW splits the columns
 * of dW (or its rows when there are few columns), each thread running the
 * images in order with beta = 1 GEMMs over its part. No element's sum
 * changes order, so any thread count gives the same bits, and a layer costs
 * one parallel region per pass instead of one or two per image. */
#include "../dtype/dtype_inline.h"
#include "../kernels/spatial_internal.h"
#include "ops_internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int thread_id(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/* Threads for a pass of `fmas` multiply-adds split in `parts` parts: one
 * below about a million (the GEMM then threads itself, as it sees fit). */
static int pass_threads(amp_ctx *ctx, int64_t parts, double fmas) {
  int t = amp__threads(ctx);
  if (t > parts) t = (int)parts;
  return fmas < 1048576.0 || t < 1 ? 1 : t;
}

/* A per-thread buffer of `bytes` (64-byte multiples) from the step arena. */
static char *per_thread(amp_ctx *ctx, int threads, size_t bytes, size_t *stride) {
  *stride = (bytes + 63) / 64 * 64;
  if (*stride == 0) *stride = 64;
  return amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)threads * *stride);
}

/* The sizes of one convolution. */
typedef struct conv_plan {
  amp_conv_geom g;
  int64_t nb, o, kk, p, img_n;
  amp_dtype dt;
  size_t es;
  int direct;
} conv_plan;

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

/* Image n of the forward: y[n] = W·col(x[n]) (+ bias per row, in F32). col
 * and acc are the calling thread's buffers; acc is used for a 16-bit result
 * with a bias (without one, the GEMM rounds its F32 sums once into y). */
static amp_status conv_image(amp_ctx *ctx, const conv_plan *cp, const amp_tensor *x,
                             const amp_tensor *w, const amp_tensor *b, amp_tensor *y, int64_t n,
                             void *col, float *acc) {
  const char *img = (const char *)x->data + (size_t)(n * cp->img_n) * cp->es;
  char *yn = (char *)y->data + (size_t)(n * cp->o * cp->p) * cp->es;
  const int int16_bias = b && cp->dt != AMP_F32;
  if (!cp->direct) amp__im2col_rows(cp->dt, &cp->g, img, 0, cp->kk, col);
  void *dst = int16_bias ? (void *)acc : yn;
  amp_status s = amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, cp->o, cp->p, cp->kk, 1.0f, w->data,
                          cp->dt, cp->kk, cp->direct ? (const void *)img : col, cp->dt, cp->p, 0.0f,
                          dst, b ? AMP_F32 : cp->dt, cp->p, NULL);
  if (s != AMP_OK || !b) return s;
  float *f = int16_bias ? acc : (float *)yn;
  for (int64_t r = 0; r < cp->o; r++) { /* the bias, per output channel (row), in F32 */
    float bias = amp__load_f32(b->data, cp->dt, (size_t)r);
    for (int64_t q = 0; q < cp->p; q++) f[r * cp->p + q] += bias;
  }
  return int16_bias ? amp__convert(ctx, yn, cp->dt, acc, AMP_F32, (size_t)(cp->o * cp->p), NULL)
                    : AMP_OK;
}

static amp_status conv_forward(amp_ctx *ctx, const conv_plan *cp, const amp_tensor *x,
                               const amp_tensor *w, const amp_tensor *b, amp_tensor *y) {
  const int T = pass_threads(ctx, cp->nb, (double)(cp->nb * cp->o) * (double)(cp->kk * cp->p));
  size_t col_b = cp->direct ? 0 : (size_t)(cp->kk * cp->p) * cp->es;
  size_t acc_b = b && cp->dt != AMP_F32 ? (size_t)(cp->o * cp->p) * 4 : 0, stride;
  char *buf = per_thread(ctx, T, col_b + (acc_b + 63) / 64 * 64, &stride);
  if (!buf) return amp_ctx_status(ctx);
  int fail = 0;
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1) reduction(| : fail)
  for (int64_t n = 0; n < cp->nb; n++) {
    char *mine = buf + (size_t)thread_id() * stride;
    fail |= conv_image(ctx, cp, x, w, b, y, n, mine, (float *)(mine + (col_b + 63) / 64 * 64)) !=
            AMP_OK;
  }
  return fail ? (amp_ctx_status(ctx) != AMP_OK ? amp_ctx_status(ctx) : AMP_ERR_NOMEM) : AMP_OK;
}

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
  conv_plan cp = {g, nb, o, kk, p, g.c * g.h * g.w, dt, amp_dtype_size(dt), col_is_image(&g)};
  if (conv_forward(ctx, &cp, c[0], c[1], c[2], y) != AMP_OK) return NULL;
  amp__node *nd = amp__record(ctx, AMP__OP_CONV2D, y, c[2] ? 3 : 2, c);
  if (nd) {
    nd->iarg[0] = stride_h;
    nd->iarg[1] = stride_w;
    nd->iarg[2] = pad_h;
    nd->iarg[3] = pad_w;
  }
  return y;
}

/* dW (+)= Σ_n dY[n]·col[n]ᵀ into dw (F32 [o, kk]; beta1: add to what it
 * holds). Thread t owns a block of dW's columns (rows of col, im2col'ed
 * for that block alone) or, with few columns, of its rows; each runs every
 * image in order, so each element's sum is the one-thread chain. */
static amp_status conv_dw(amp_ctx *ctx, const conv_plan *cp, const amp_tensor *x,
                          const amp_tensor *gy, float *dw, int beta1) {
  const double fmas = (double)(cp->nb * cp->o) * (double)(cp->kk * cp->p);
  const int by_cols = cp->kk >= 64 * amp__threads(ctx);
  const int T = pass_threads(ctx, by_cols ? cp->kk / 16 : cp->o, fmas);
  size_t stride;
  char *buf = per_thread(ctx, T, cp->direct ? 0 : (size_t)(cp->kk * cp->p) * cp->es, &stride);
  if (!buf) return amp_ctx_status(ctx);
  int fail = 0;
#pragma omp parallel num_threads(T) if (T > 1) reduction(| : fail)
  {
    const int t = thread_id();
    const int64_t parts = by_cols ? cp->kk : cp->o, unit = by_cols ? 16 : 1;
    int64_t lo = (parts * t / T) / unit * unit, hi = (parts * (t + 1) / T) / unit * unit;
    if (t == T - 1) hi = parts;
    char *col = buf + (size_t)t * stride;
    for (int64_t n = 0; n < cp->nb && hi > lo && !fail; n++) {
      const char *img = (const char *)x->data + (size_t)(n * cp->img_n) * cp->es;
      const char *dy = (const char *)gy->data + (size_t)(n * cp->o * cp->p) * cp->es;
      const void *bm = img + (by_cols ? (size_t)(lo * cp->p) * cp->es : 0);
      if (!cp->direct) {
        amp__im2col_rows(cp->dt, &cp->g, img, by_cols ? lo : 0, by_cols ? hi : cp->kk, col);
        bm = col;
      }
      float beta = n > 0 || beta1 ? 1.0f : 0.0f;
      fail |=
          (by_cols ? amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, cp->o, hi - lo, cp->p, 1.0f, dy, cp->dt,
                              cp->p, bm, cp->dt, cp->p, beta, dw + lo, AMP_F32, cp->kk, NULL)
                   : amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, hi - lo, cp->kk, cp->p, 1.0f,
                              dy + (size_t)(lo * cp->p) * cp->es, cp->dt, cp->p, bm, cp->dt, cp->p,
                              beta, dw + lo * cp->kk, AMP_F32, cp->kk, NULL)) != AMP_OK;
    }
  }
  return fail ? (amp_ctx_status(ctx) != AMP_OK ? amp_ctx_status(ctx) : AMP_ERR_NOMEM) : AMP_OK;
}

/* dst (+)= d, n elements into a gradient of dtype dt, rounded once. */
static void add_into(const amp__kernels *kt, void *dst, amp_dtype dt, int acc, const float *d,
                     size_t n) {
  if (!acc && dt == AMP_F32) {
    memcpy(dst, d, n * 4);
  } else if (!acc && kt->from_f32[dt]) {
    kt->from_f32[dt](dst, d, n, 0);
  } else {
    for (size_t i = 0; i < n; i++)
      amp__store_f32(dst, dt, i, acc ? amp__load_f32(dst, dt, i) + d[i] : d[i]);
  }
}

/* dX (+)= col2im(Wᵀ·dY[n]) per image, images split over the threads, each
 * image in F32 (dcol, dxn: the thread's buffers) rounded once into gx. */
static amp_status conv_dx(amp_ctx *ctx, const conv_plan *cp, const amp_tensor *w,
                          const amp_tensor *gy, amp_tensor *gx, int acc) {
  const int T = pass_threads(ctx, cp->nb, (double)(cp->nb * cp->o) * (double)(cp->kk * cp->p));
  size_t dcol_b = cp->direct ? 0 : (size_t)(cp->kk * cp->p) * 4, stride;
  dcol_b = (dcol_b + 63) / 64 * 64;
  char *buf = per_thread(ctx, T, dcol_b + (size_t)cp->img_n * 4, &stride);
  if (!buf) return amp_ctx_status(ctx);
  const amp__kernels *kt = amp__kernels_of(ctx);
  const size_t ges = amp_dtype_size(gx->dtype);
  int fail = 0;
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1) reduction(| : fail)
  for (int64_t n = 0; n < cp->nb; n++) {
    char *mine = buf + (size_t)thread_id() * stride;
    float *dcol = (float *)mine, *dxn = (float *)(mine + dcol_b);
    if (!cp->direct) memset(dxn, 0, (size_t)cp->img_n * 4);
    amp_status s =
        amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, cp->kk, cp->p, cp->o, 1.0f, w->data, cp->dt, cp->kk,
                 (const char *)gy->data + (size_t)(n * cp->o * cp->p) * cp->es, cp->dt, cp->p, 0.0f,
                 cp->direct ? dxn : dcol, AMP_F32, cp->p, NULL);
    if (s == AMP_OK && !cp->direct) s = amp_col2im(ctx, AMP_F32, &cp->g, dcol, dxn);
    if (s == AMP_OK)
      add_into(kt, (char *)gx->data + (size_t)(n * cp->img_n) * ges, gx->dtype, acc, dxn,
               (size_t)cp->img_n);
    fail |= s != AMP_OK;
  }
  return fail ? (amp_ctx_status(ctx) != AMP_OK ? amp_ctx_status(ctx) : AMP_ERR_NOMEM) : AMP_OK;
}

amp_status amp__conv2d_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *gy) {
  amp_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->nin > 2 ? nd->in[2] : NULL;
  amp_conv_geom g = geom_of(x, w, nd->iarg);
  int64_t oh, ow;
  amp_conv_out_size(&g, &oh, &ow);
  int64_t nb = x->shape[0], o = w->shape[0], kk = g.c * g.kh * g.kw, p = oh * ow;
  amp_dtype dt = gy->dtype; /* == x->dtype == w->dtype: the compute dtype */
  conv_plan cp = {g, nb, o, kk, p, g.c * g.h * g.w, dt, amp_dtype_size(dt), col_is_image(&g)};
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
    if (!dw) return amp_ctx_status(ctx);
    s = conv_dw(ctx, &cp, x, gy, dw, f32 && acc);
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
       an F32 copy of one image per thread, not of the batch */
    int acc;
    amp_tensor *gx = amp__grad_of(ctx, x, &acc);
    if (!gx) return amp_ctx_status(ctx);
    s = conv_dx(ctx, &cp, w, gy, gx, acc);
  }
  return s;
}
