/* conv2d, max_pool2d, embedding and layer_norm: gradients of every input
 * against FP64 finite differences on odd shapes; the autocast policy (output
 * dtypes, bit equality with inputs cast by hand, 16-bit activation gradients
 * and F32 weight gradients); errors; bits independent of the thread count. */
#include "gradcheck.h"

#include <stdio.h>
#include <string.h>

/* ---- forward functions and FP64 references ---- */

typedef struct conv_arg {
  int64_t sh, sw, ph, pw;
} conv_arg;

static amp_tensor *f_conv(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  const conv_arg *a = arg;
  return amp_conv2d(ctx, in[0], in[1], in[2], a->sh, a->sw, a->ph, a->pw);
}
static void r_conv(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  const conv_arg *a = arg;
  int64_t n = in[0]->shape[0], c = in[0]->shape[1], h = in[0]->shape[2], w = in[0]->shape[3];
  int64_t o = in[1]->shape[0], kh = in[1]->shape[2], kw = in[1]->shape[3];
  int64_t oh = (h + 2 * a->ph - kh) / a->sh + 1, ow = (w + 2 * a->pw - kw) / a->sw + 1;
  for (int64_t b = 0; b < n; b++)
    for (int64_t q = 0; q < o; q++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
          double s = in[2] ? v[2][q] : 0;
          for (int64_t ci = 0; ci < c; ci++)
            for (int64_t ki = 0; ki < kh; ki++)
              for (int64_t kj = 0; kj < kw; kj++) {
                int64_t y = i * a->sh - a->ph + ki, x = j * a->sw - a->pw + kj;
                if (y < 0 || y >= h || x < 0 || x >= w) continue;
                s +=
                    v[0][((b * c + ci) * h + y) * w + x] * v[1][((q * c + ci) * kh + ki) * kw + kj];
              }
          out[((b * o + q) * oh + i) * ow + j] = s;
        }
}

typedef struct pool_arg {
  int64_t kh, kw, sh, sw;
} pool_arg;

static amp_tensor *f_pool(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  const pool_arg *a = arg;
  return amp_max_pool2d(ctx, in[0], a->kh, a->kw, a->sh, a->sw);
}
static void r_pool(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  const pool_arg *a = arg;
  int64_t planes = in[0]->shape[0] * in[0]->shape[1], h = in[0]->shape[2], w = in[0]->shape[3];
  int64_t oh = (h - a->kh) / a->sh + 1, ow = (w - a->kw) / a->sw + 1;
  for (int64_t p = 0; p < planes; p++)
    for (int64_t i = 0; i < oh; i++)
      for (int64_t j = 0; j < ow; j++) {
        double m = -INFINITY;
        for (int64_t ki = 0; ki < a->kh; ki++)
          for (int64_t kj = 0; kj < a->kw; kj++)
            m = fmax(m, v[0][(p * h + i * a->sh + ki) * w + j * a->sw + kj]);
        out[(p * oh + i) * ow + j] = m;
      }
}

static amp_tensor *f_emb(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  (void)arg;
  return amp_embedding(ctx, in[0], in[1]);
}
static void r_emb(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  int64_t d = in[0]->shape[1];
  const int32_t *idx = in[1]->data;
  for (int64_t i = 0; i < in[1]->numel; i++)
    for (int64_t j = 0; j < d; j++) out[i * d + j] = v[0][idx[i] * d + j];
}

static amp_tensor *f_ln(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  return amp_layer_norm(ctx, in[0], in[1], in[2], *(const float *)arg);
}
static void r_ln(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  double eps = *(const float *)arg;
  int64_t d = in[0]->shape[in[0]->ndim - 1], rows = in[0]->numel / d;
  for (int64_t r = 0; r < rows; r++) {
    const double *x = v[0] + r * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; j++) mean += x[j];
    mean /= (double)d;
    for (int64_t j = 0; j < d; j++) var += (x[j] - mean) * (x[j] - mean);
    var /= (double)d;
    for (int64_t j = 0; j < d; j++) {
      double y = (x[j] - mean) / sqrt(var + eps);
      if (in[1]) y *= v[1][j];
      if (in[2]) y += v[2][j];
      out[r * d + j] = y;
    }
  }
}

/* ---- gradients ---- */

static void test_conv_gradients(amp_ctx *ctx) {
  /* N, C, H, W, O, kh, kw, sh, sw, ph, pw, bias */
  static const int64_t cases[][12] = {
      {2, 3, 7, 5, 4, 3, 3, 1, 1, 0, 0, 1}, {2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 0},
      {2, 3, 7, 5, 4, 3, 3, 2, 2, 0, 0, 1}, {2, 3, 7, 5, 4, 3, 3, 2, 2, 1, 1, 1},
      {2, 3, 7, 5, 4, 1, 1, 1, 1, 0, 0, 1}, /* 1×1: the image is its own im2col */
      {2, 3, 7, 5, 4, 1, 1, 2, 2, 0, 0, 0}, {1, 2, 6, 9, 3, 2, 3, 2, 1, 1, 0, 1},
      {3, 1, 5, 5, 1, 5, 5, 1, 1, 0, 0, 1}, {2, 2, 4, 3, 5, 3, 2, 1, 2, 2, 1, 1},
  };
  for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    const int64_t *k = cases[t];
    conv_arg a = {k[7], k[8], k[9], k[10]};
    amp_tensor *in[3] = {gc_leaf(ctx, 4, (int64_t[]){k[0], k[1], k[2], k[3]}, -1, 1),
                         gc_leaf(ctx, 4, (int64_t[]){k[4], k[1], k[5], k[6]}, -1, 1),
                         k[11] ? gc_leaf(ctx, 1, (int64_t[]){k[4]}, -1, 1) : NULL};
    char name[64];
    snprintf(name, sizeof name, "conv2d case %zu", t);
    gradcheck(ctx, name, f_conv, r_conv, 3, in, &a, 1e-4);
    amp_ctx_step_reset(ctx);
  }
}

static void test_pool_gradients(amp_ctx *ctx) {
  static const pool_arg cases[] = {
      {2, 2, 2, 2}, {3, 2, 1, 2}, {3, 3, 2, 2}, {1, 1, 1, 1}, {7, 5, 1, 1}};
  for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    amp_tensor *in[1] = {gc_leaf(ctx, 4, (int64_t[]){2, 3, 7, 5}, -1, 1)};
    char name[64];
    snprintf(name, sizeof name, "max_pool2d case %zu", t);
    gradcheck(ctx, name, f_pool, r_pool, 1, in, &cases[t], 1e-5);
    amp_ctx_step_reset(ctx);
  }
  /* Ties: the gradient goes to the first maximum in row-major window order. */
  amp_tensor *x = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 4, (int64_t[]){1, 1, 3, 3});
  amp_tensor_set_requires_grad(ctx, x, 1);
  float *xd = x->data;
  xd[1] = xd[3] = xd[4] = 2.0f; /* window (0,0) of a 2×2/1 pool: max 2 at 1, 3, 4 */
  amp_tensor *y = amp_max_pool2d(ctx, x, 2, 2, 1, 1);
  float seed[4] = {1, 10, 100, 1000};
  CHECK(y && amp__backward_seeded(ctx, y, seed, AMP_F32) == AMP_OK, "pool ties backward");
  const float *g = x->grad->data;
  /* windows: (0,0)→1, (0,1)→1 (xd[1] first), (1,0)→3, (1,1)→4 */
  CHECK(g[1] == 11 && g[3] == 100 && g[4] == 1000 && g[0] == 0 && g[2] == 0 && g[5] == 0,
        "pool ties: grad %g %g %g %g %g", g[0], g[1], g[2], g[3], g[4]);
  amp_ctx_step_reset(ctx);
}

static void test_embedding_gradients(amp_ctx *ctx) {
  static const int64_t shapes[][3] = {{1, 9, 0}, {2, 2, 3}, {3, 1, 2}};
  for (int t = 0; t < 3; t++) {
    int nd = (int)shapes[t][0];
    int64_t ishape[3] = {shapes[t][1], shapes[t][2], 2};
    amp_tensor *in[2] = {gc_leaf(ctx, 2, (int64_t[]){5, 7}, -1, 1),
                         gc_labels(ctx, nd, ishape, 5)}; /* 9 or 6 lookups of 5 rows: repeats */
    char name[64];
    snprintf(name, sizeof name, "embedding case %d", t);
    gradcheck(ctx, name, f_emb, r_emb, 2, in, NULL, 1e-6);
    amp_tensor *y = amp_embedding(ctx, in[0], in[1]);
    CHECK(y && y->ndim == nd + 1 && y->shape[nd] == 7, "embedding output shape");
    amp_ctx_step_reset(ctx);
  }
}

static void test_layer_norm_gradients(amp_ctx *ctx) {
  static const int64_t shapes[][3] = {{4, 9, 3}, {3, 5, 7}, {1, 1, 33}, {6, 1, 2}};
  for (int t = 0; t < 4; t++)
    for (int wb = 0; wb < 4; wb++) {
      int64_t d = shapes[t][2];
      float eps = t == 3 ? 1e-2f : 1e-5f;
      amp_tensor *in[3] = {gc_leaf(ctx, 3, shapes[t], -2, 2),
                           wb & 1 ? gc_leaf(ctx, 1, &d, 0.5, 1.5) : NULL,
                           wb & 2 ? gc_leaf(ctx, 1, &d, -1, 1) : NULL};
      char name[64];
      snprintf(name, sizeof name, "layer_norm case %d (w %d, b %d)", t, wb & 1, wb >> 1);
      gradcheck(ctx, name, f_ln, r_ln, 3, in, &eps, 1e-4);
      amp_ctx_step_reset(ctx);
    }
}

/* ---- autocast ---- */

static void test_autocast(amp_ctx *ctx) {
  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_dtype dt = dts[d];
    const char *dn = amp_dtype_name(dt);
    amp_tensor *w = amp_param_new(ctx, 4, (int64_t[]){4, 3, 3, 3});
    amp_tensor *b = amp_param_new(ctx, 1, (int64_t[]){4});
    amp_tensor *lw = amp_param_new(ctx, 1, (int64_t[]){5});
    amp_tensor *lb = amp_param_new(ctx, 1, (int64_t[]){5});
    amp_tensor *emb = amp_param_new(ctx, 2, (int64_t[]){6, 5});
    gc_fill(w, -1, 1);
    gc_fill(b, -1, 1);
    gc_fill(lw, 0.5, 1.5);
    gc_fill(lb, -1, 1);
    gc_fill(emb, -1, 1);
    amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 4, (int64_t[]){2, 3, 7, 5});
    gc_fill(x, -1, 1);
    amp_tensor *idx = gc_labels(ctx, 2, (int64_t[]){2, 3}, 6);
    amp_tensor *emb16 = amp_tensor_cast(ctx, AMP_ARENA_STEP, emb, dt);

    CHECK(amp_autocast_begin(ctx, dt) == AMP_OK, "begin");
    amp_tensor *y = amp_conv2d(ctx, x, w, b, 1, 1, 1, 1); /* [2,4,7,5] */
    amp_tensor *p = amp_max_pool2d(ctx, y, 2, 2, 2, 1);   /* [2,4,3,4] */
    amp_tensor *pf = amp_max_pool2d(ctx, x, 3, 2, 2, 2);  /* f32 input */
    amp_tensor *e = amp_embedding(ctx, emb, idx);
    amp_tensor *e16 = amp_embedding(ctx, emb16, idx);
    amp_tensor *ln = amp_layer_norm(ctx, y, lw, lb, 1e-5f); /* y is [...,5] */
    amp_tensor *ln16 = amp_layer_norm(ctx, e16, NULL, NULL, 1e-5f);
    CHECK(amp_autocast_end(ctx) == AMP_OK, "end");

    CHECK(y && y->dtype == dt, "conv2d (lower) runs in %s", dn);
    CHECK(p && p->dtype == dt, "max_pool2d (same) keeps %s", dn);
    CHECK(pf && pf->dtype == AMP_F32, "max_pool2d (same) keeps f32");
    CHECK(e && e->dtype == AMP_F32, "embedding (same): an f32 weight stays f32");
    CHECK(e16 && e16->dtype == dt, "embedding (same) keeps the weight's %s", dn);
    CHECK(ln && ln->dtype == dt && ln16 && ln16->dtype == dt,
          "layer_norm (norm) returns %s (statistics in f32)", dn);

    /* The same ops outside autocast on inputs cast by hand: the same bits. */
    amp_tensor *xh = amp_tensor_cast(ctx, AMP_ARENA_STEP, x, dt);
    amp_tensor *wh = amp_tensor_cast(ctx, AMP_ARENA_STEP, w, dt);
    amp_tensor *bh = amp_tensor_cast(ctx, AMP_ARENA_STEP, b, dt);
    amp_tensor *yh = amp_conv2d(ctx, xh, wh, bh, 1, 1, 1, 1);
    CHECK(gc_same_bits(yh, y), "conv2d bits (%s)", dn);
    CHECK(gc_same_bits(amp_max_pool2d(ctx, yh, 2, 2, 2, 1), p), "max_pool2d bits (%s)", dn);
    CHECK(gc_same_bits(amp_max_pool2d(ctx, x, 3, 2, 2, 2), pf), "max_pool2d f32 bits");
    CHECK(gc_same_bits(amp_embedding(ctx, emb, idx), e), "embedding f32 bits");
    CHECK(gc_same_bits(amp_embedding(ctx, emb16, idx), e16), "embedding bits (%s)", dn);
    /* layer_norm: the F32 layer norm of the upcast input, rounded once */
    amp_tensor *ya = amp_tensor_cast(ctx, AMP_ARENA_STEP, yh, AMP_F32);
    amp_tensor *lnr = amp_layer_norm(ctx, ya, lw, lb, 1e-5f);
    CHECK(lnr && gc_same_bits(amp_tensor_cast(ctx, AMP_ARENA_STEP, lnr, dt), ln),
          "layer_norm bits (%s)", dn);
    amp_tensor *ea = amp_tensor_cast(ctx, AMP_ARENA_STEP, e16, AMP_F32);
    amp_tensor *lnr16 = amp_layer_norm(ctx, ea, NULL, NULL, 1e-5f);
    CHECK(lnr16 && gc_same_bits(amp_tensor_cast(ctx, AMP_ARENA_STEP, lnr16, dt), ln16),
          "layer_norm bits (%s)", dn);
    /* ... and the conv without a bias, stride 2: the same bits too. */
    CHECK(amp_autocast_begin(ctx, dt) == AMP_OK, "begin");
    amp_tensor *y2 = amp_conv2d(ctx, x, w, NULL, 2, 2, 0, 0);
    amp_autocast_end(ctx);
    CHECK(gc_same_bits(amp_conv2d(ctx, xh, wh, NULL, 2, 2, 0, 0), y2), "conv2d no bias bits (%s)",
          dn);
    amp_ctx_step_reset(ctx);
  }
}

/* Backward under autocast: conv → conv, the first conv's output is a 16-bit
 * intermediate activation; its gradient is 16-bit, weight gradients F32. */
static void test_autocast_backward(amp_ctx *ctx) {
  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_dtype dt = dts[d];
    const char *dn = amp_dtype_name(dt);
    amp_tensor *x = gc_leaf(ctx, 4, (int64_t[]){2, 3, 7, 5}, -1, 1);
    amp_tensor *w1 = amp_param_new(ctx, 4, (int64_t[]){4, 3, 3, 3});
    amp_tensor *w2 = amp_param_new(ctx, 4, (int64_t[]){2, 4, 3, 2});
    amp_tensor *b2 = amp_param_new(ctx, 1, (int64_t[]){2});
    gc_fill(w1, -0.5, 0.5);
    gc_fill(w2, -0.5, 0.5);
    gc_fill(b2, -1, 1);
    CHECK(amp_autocast_begin(ctx, dt) == AMP_OK, "begin");
    amp_tensor *h = amp_conv2d(ctx, x, w1, NULL, 1, 1, 1, 1); /* [2,4,7,5] */
    amp_tensor *y = amp_conv2d(ctx, h, w2, b2, 2, 1, 0, 1);   /* [2,2,3,6] */
    amp_autocast_end(ctx);
    CHECK(h && y && h->dtype == dt && y->dtype == dt, "conv outputs in %s", dn);
    if (!h || !y) continue;
    float seed[72];
    for (int i = 0; i < 72; i++) /* values exact in both 16-bit formats */
      seed[i] = (float)((int)gc_uniform(-64, 64)) / 64.0f;
    CHECK(y->numel == 72, "output size");
    CHECK(amp__backward_seeded(ctx, y, seed, AMP_F32) == AMP_OK, "backward: %s",
          amp_ctx_error(ctx));
    CHECK(h->grad && h->grad->dtype == dt, "the activation gradient is %s", dn);
    CHECK(w1->grad->dtype == AMP_F32 && w2->grad->dtype == AMP_F32 && b2->grad->dtype == AMP_F32,
          "weight gradients are f32");
    CHECK(x->grad->dtype == AMP_F32, "the f32 leaf input gets an f32 gradient");
    /* dW2 and db2 against FP64 sums over the 16-bit operands actually used. */
    int64_t n = 2, c = 4, hh = 7, ww = 5, o = 2, kh = 3, kw = 2, oh = 3, ow = 6;
    double err = 0, mx = 0;
    for (int64_t q = 0; q < o; q++)
      for (int64_t ci = 0; ci < c; ci++)
        for (int64_t ki = 0; ki < kh; ki++)
          for (int64_t kj = 0; kj < kw; kj++) {
            double s = 0;
            for (int64_t b = 0; b < n; b++)
              for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                  int64_t yy = i * 2 + ki, xx = j - 1 + kj;
                  if (xx < 0 || xx >= ww) continue;
                  float hv;
                  amp_convert(&hv, AMP_F32,
                              (const char *)h->data +
                                  2 * (size_t)(((b * c + ci) * hh + yy) * ww + xx),
                              dt, 1);
                  s += seed[((b * o + q) * oh + i) * ow + j] * hv;
                }
            double gv = ((float *)w2->grad->data)[((q * c + ci) * kh + ki) * kw + kj];
            err = fmax(err, fabs(gv - s));
            mx = fmax(mx, fabs(s));
          }
    CHECK(err <= 1e-5 * mx, "dW2 accumulated in f32 (%s): err %.3g of %.3g", dn, err, mx);
    for (int64_t q = 0; q < o; q++) {
      double s = 0;
      for (int64_t i = 0; i < n * oh * ow; i++)
        s += seed[(i / (oh * ow) * o + q) * oh * ow + i % (oh * ow)];
      CHECK(fabs(((float *)b2->grad->data)[q] - s) <= 1e-5 * fmax(1, fabs(s)), "db2 (%s)", dn);
    }
    float wsum = 0, xsum = 0;
    for (int64_t i = 0; i < w1->numel; i++) wsum += fabsf(((float *)w1->grad->data)[i]);
    for (int64_t i = 0; i < x->numel; i++) xsum += fabsf(((float *)x->grad->data)[i]);
    CHECK(wsum > 0 && xsum > 0, "gradients reach w1 and x");
    /* A second backward accumulates the weight gradient (beta = 1 GEMMs, one
       per image, so twice the value up to F32 rounding). */
    float before[48];
    memcpy(before, w2->grad->data, sizeof before);
    CHECK(amp__backward_seeded(ctx, y, seed, AMP_F32) == AMP_OK, "second backward");
    int doubled = 1;
    for (int i = 0; i < 48; i++)
      doubled &= fabsf(((float *)w2->grad->data)[i] - 2 * before[i]) <= 1e-6f * (float)mx;
    CHECK(doubled, "conv weight gradients accumulate across backward calls (%s)", dn);
    amp_ctx_step_reset(ctx);
  }
}

/* 16-bit intermediates everywhere: a 16-bit conv output through max_pool2d
 * (16-bit gradients) into layer_norm (16-bit result, F32 statistics, under
 * autocast); a 16-bit weight
 * that is an op's result (an explicit cast of a parameter) in embedding and
 * conv2d, whose gradient is rounded once to 16 bits and reaches the F32
 * parameter through the cast. */
static void test_intermediates(amp_ctx *ctx) {
  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_dtype dt = dts[d];
    const char *dn = amp_dtype_name(dt);
    amp_tensor *x = gc_leaf(ctx, 4, (int64_t[]){2, 3, 6, 5}, -1, 1);
    amp_tensor *w1 = gc_leaf(ctx, 4, (int64_t[]){4, 3, 3, 3}, -0.5, 0.5);
    amp_tensor *lw = gc_leaf(ctx, 1, (int64_t[]){5}, 0.5, 1.5);
    amp_tensor *lb = gc_leaf(ctx, 1, (int64_t[]){5}, -1, 1);
    CHECK(amp_autocast_begin(ctx, dt) == AMP_OK, "begin");
    amp_tensor *h = amp_conv2d(ctx, x, w1, NULL, 1, 1, 1, 1); /* [2,4,6,5] */
    amp_tensor *p = amp_max_pool2d(ctx, h, 2, 1, 2, 1);       /* [2,4,3,5] */
    amp_tensor *ln = amp_layer_norm(ctx, p, lw, lb, 1e-5f);
    amp_autocast_end(ctx);
    CHECK(h && p && ln && p->dtype == dt && ln->dtype == dt, "dtypes (%s)", dn);
    if (!h || !p || !ln) continue;
    float *seed = malloc(sizeof(float) * (size_t)ln->numel);
    for (int64_t i = 0; i < ln->numel; i++) seed[i] = (float)gc_uniform(-1, 1);
    CHECK(amp__backward_seeded(ctx, ln, seed, AMP_F32) == AMP_OK, "backward: %s",
          amp_ctx_error(ctx));
    free(seed);
    CHECK(p->grad && p->grad->dtype == dt && h->grad && h->grad->dtype == dt,
          "pool input and output gradients in %s", dn);
    float s[4] = {0};
    for (int64_t i = 0; i < 5; i++) s[0] += fabsf(((float *)lw->grad->data)[i]);
    for (int64_t i = 0; i < 5; i++) s[1] += fabsf(((float *)lb->grad->data)[i]);
    for (int64_t i = 0; i < w1->numel; i++) s[2] += fabsf(((float *)w1->grad->data)[i]);
    for (int64_t i = 0; i < x->numel; i++) s[3] += fabsf(((float *)x->grad->data)[i]);
    CHECK(s[0] > 0 && s[1] > 0 && s[2] > 0 && s[3] > 0, "gradients reach every leaf (%s)", dn);
    /* h's gradient is zero except at each window's maximum. */
    int64_t nz = 0;
    for (int64_t i = 0; i < h->numel; i++) {
      float v;
      amp_convert(&v, AMP_F32, (const char *)h->grad->data + 2 * i, dt, 1);
      nz += v != 0;
    }
    CHECK(nz > 0 && nz <= p->numel, "max_pool2d sends %lld gradients to %lld outputs",
          (long long)nz, (long long)p->numel);

    /* Embedding of a 16-bit weight that is an op's result. */
    amp_tensor *emb = gc_leaf(ctx, 2, (int64_t[]){6, 5}, -1, 1);
    amp_tensor *idx = gc_labels(ctx, 2, (int64_t[]){3, 4}, 6);
    amp_tensor *e16 = amp_cast(ctx, emb, dt);
    amp_tensor *e = amp_embedding(ctx, e16, idx);
    CHECK(e && e->dtype == dt && amp__node_of(e16), "embedding of a cast weight (%s)", dn);
    if (!e) continue;
    float es[80];
    for (int i = 0; i < 80; i++) es[i] = (float)((int)gc_uniform(-64, 64)) / 64.0f;
    CHECK(amp__backward_seeded(ctx, e, es, AMP_F32) == AMP_OK, "embedding backward");
    CHECK(e16->grad && e16->grad->dtype == dt, "the cast weight's gradient is %s", dn);
    float ref[30] = {0}, ref16[30];
    const int32_t *ix = idx->data;
    for (int i = 0; i < 12; i++)
      for (int j = 0; j < 5; j++) ref[ix[i] * 5 + j] += es[i * 5 + j]; /* exact */
    uint16_t r16[30];
    amp_convert(r16, dt, ref, AMP_F32, 30);
    amp_convert(ref16, AMP_F32, r16, dt, 30);
    CHECK(memcmp(ref16, emb->grad->data, sizeof ref16) == 0,
          "embedding gradient rounded once to %s, then to the f32 parameter", dn);

    /* conv2d with a 16-bit weight that is an op's result. */
    amp_tensor *x16 = amp_tensor_cast(ctx, AMP_ARENA_STEP, x, dt);
    amp_tensor *wc = amp_cast(ctx, w1, dt);
    amp_tensor_zero_grad(w1);
    amp_tensor *y = amp_conv2d(ctx, x16, wc, NULL, 2, 1, 0, 1); /* [2,4,2,5] */
    CHECK(y && y->dtype == dt && y->numel == 80, "conv with a cast weight (%s)", dn);
    if (!y) continue;
    CHECK(amp__backward_seeded(ctx, y, es, AMP_F32) == AMP_OK, "conv backward");
    CHECK(wc->grad && wc->grad->dtype == dt, "the cast weight's gradient is %s", dn);
    /* Against FP64 over the 16-bit values (one rounding to dt: 2^-8 relative). */
    double err = 0, mx = 0;
    for (int64_t q = 0; q < 4; q++)
      for (int64_t c = 0; c < 3; c++)
        for (int64_t ki = 0; ki < 3; ki++)
          for (int64_t kj = 0; kj < 3; kj++) {
            double acc = 0;
            for (int64_t b = 0; b < 2; b++)
              for (int64_t i = 0; i < 2; i++)
                for (int64_t j = 0; j < 5; j++) {
                  int64_t yy = 2 * i + ki, xx = j - 1 + kj;
                  if (xx < 0 || xx >= 5) continue;
                  float xv;
                  amp_convert(&xv, AMP_F32,
                              (const char *)x16->data + 2 * (((b * 3 + c) * 6 + yy) * 5 + xx), dt,
                              1);
                  acc += (double)es[((b * 4 + q) * 2 + i) * 5 + j] * xv;
                }
            double g = ((float *)w1->grad->data)[((q * 3 + c) * 3 + ki) * 3 + kj];
            err = fmax(err, fabs(g - acc));
            mx = fmax(mx, fabs(acc));
          }
    CHECK(err <= 0x1p-8 * mx, "conv weight gradient through a 16-bit weight (%s): err %.3g of %.3g",
          dn, err, mx);
    amp_ctx_step_reset(ctx);
  }
}

/* ---- errors ---- */

static int error_names(amp_ctx *ctx, amp_status want, const char *a, const char *b, const char *c) {
  const char *m = amp_ctx_error(ctx);
  int ok =
      amp_ctx_status(ctx) == want && strstr(m, a) && (!b || strstr(m, b)) && (!c || strstr(m, c));
  if (!ok) fprintf(stderr, "  message: %s\n", m);
  amp_ctx_clear_error(ctx);
  return ok;
}

static void test_errors(amp_ctx *ctx) {
  amp_tensor *x = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 4, (int64_t[]){2, 3, 7, 5});
  amp_tensor *w = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 4, (int64_t[]){4, 2, 3, 3});
  amp_tensor *w3 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 4, (int64_t[]){4, 3, 3, 3});
  amp_tensor *b5 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){5});
  amp_tensor *big = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 4, (int64_t[]){4, 3, 9, 3});
  amp_tensor *x3 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 3, (int64_t[]){3, 7, 5});

  CHECK(!amp_conv2d(ctx, x, w, NULL, 1, 1, 0, 0) &&
            error_names(ctx, AMP_ERR_SHAPE, "conv2d", "[2,3,7,5]", "[4,2,3,3]"),
        "conv2d: channel mismatch");
  CHECK(!amp_conv2d(ctx, x, w3, b5, 1, 1, 0, 0) &&
            error_names(ctx, AMP_ERR_SHAPE, "conv2d", "[5]", NULL),
        "conv2d: bias size");
  CHECK(!amp_conv2d(ctx, x, big, NULL, 1, 1, 0, 0) &&
            error_names(ctx, AMP_ERR_SHAPE, "conv2d", "[4,3,9,3]", NULL),
        "conv2d: kernel larger than the input");
  CHECK(amp_conv2d(ctx, x, big, NULL, 1, 1, 1, 0) != NULL, "conv2d: fits with padding");
  CHECK(!amp_conv2d(ctx, x3, w3, NULL, 1, 1, 0, 0) &&
            error_names(ctx, AMP_ERR_SHAPE, "conv2d", "[3,7,5]", NULL),
        "conv2d: 3-D input");
  CHECK(!amp_conv2d(ctx, x, w3, NULL, 0, 1, 0, 0) &&
            error_names(ctx, AMP_ERR_INVALID_ARG, "conv2d", "stride", NULL),
        "conv2d: stride 0");
  CHECK(!amp_conv2d(ctx, NULL, w3, NULL, 1, 1, 0, 0) &&
            error_names(ctx, AMP_ERR_INVALID_ARG, "conv2d", NULL, NULL),
        "conv2d: NULL input");
  CHECK(!amp_conv2d(ctx, x, NULL, NULL, 1, 1, 0, 0), "conv2d: NULL weight");
  amp_ctx_clear_error(ctx);

  CHECK(!amp_max_pool2d(ctx, x3, 2, 2, 2, 2) &&
            error_names(ctx, AMP_ERR_SHAPE, "max_pool2d", "[3,7,5]", NULL),
        "max_pool2d: 3-D input");
  CHECK(!amp_max_pool2d(ctx, x, 3, 6, 1, 1) &&
            error_names(ctx, AMP_ERR_SHAPE, "max_pool2d", "[2,3,7,5]", NULL),
        "max_pool2d: window wider than the input");
  CHECK(!amp_max_pool2d(ctx, x, 2, 2, 0, 2) &&
            error_names(ctx, AMP_ERR_INVALID_ARG, "max_pool2d", NULL, NULL),
        "max_pool2d: stride 0");
  CHECK(!amp_max_pool2d(ctx, NULL, 2, 2, 2, 2), "max_pool2d: NULL input");
  amp_ctx_clear_error(ctx);

  amp_tensor *emb = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){6, 4});
  amp_tensor *idx = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_I32, 2, (int64_t[]){2, 3});
  ((int32_t *)idx->data)[4] = 6;
  CHECK(!amp_embedding(ctx, emb, idx) &&
            error_names(ctx, AMP_ERR_INVALID_ARG, "embedding", "index 6", "position 4"),
        "embedding: index out of range");
  ((int32_t *)idx->data)[4] = -1;
  CHECK(!amp_embedding(ctx, emb, idx) &&
            error_names(ctx, AMP_ERR_INVALID_ARG, "embedding", "index -1", "position 4"),
        "embedding: negative index");
  ((int32_t *)idx->data)[4] = 5;
  CHECK(amp_embedding(ctx, emb, idx) != NULL, "embedding: last row");
  CHECK(!amp_embedding(ctx, emb, b5) &&
            error_names(ctx, AMP_ERR_SHAPE, "embedding", "[6,4] f32", "[5] f32"),
        "embedding: f32 indices");
  CHECK(!amp_embedding(ctx, x3, idx) &&
            error_names(ctx, AMP_ERR_SHAPE, "embedding", "[3,7,5]", NULL),
        "embedding: 3-D weight");
  CHECK(!amp_embedding(ctx, emb, NULL), "embedding: NULL indices");
  amp_ctx_clear_error(ctx);

  amp_tensor *b4 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){4});
  CHECK(!amp_layer_norm(ctx, x, b4, NULL, 1e-5f) &&
            error_names(ctx, AMP_ERR_SHAPE, "layer_norm", "[2,3,7,5]", "[4]"),
        "layer_norm: weight size");
  CHECK(!amp_layer_norm(ctx, x3, NULL, b4, 1e-5f) &&
            error_names(ctx, AMP_ERR_SHAPE, "layer_norm", "[3,7,5]", "[4]"),
        "layer_norm: bias size");
  CHECK(amp_layer_norm(ctx, x3, b5, NULL, 1e-5f) != NULL, "layer_norm: weight only");
  CHECK(!amp_layer_norm(ctx, NULL, NULL, NULL, 1e-5f), "layer_norm: NULL input");
  amp_ctx_clear_error(ctx);
  CHECK(amp_ctx_status(ctx) == AMP_OK, "errors cleared");
  amp_ctx_step_reset(ctx);
}

/* ---- thread count ---- */

typedef struct conv_run {
  float y[2 * 16 * 64 * 65], dx[2 * 8 * 64 * 65], dw[16 * 8 * 9], db[16];
} conv_run;

static void run_conv(amp_ctx *ctx, int threads, amp_dtype dt, conv_run *r) {
  amp_ctx_set_threads(ctx, threads);
  gc_rng_state = 777;
  amp_tensor *x = gc_leaf(ctx, 4, (int64_t[]){2, 8, 64, 65}, -1, 1);
  amp_tensor *w = gc_leaf(ctx, 4, (int64_t[]){16, 8, 3, 3}, -1, 1);
  amp_tensor *b = gc_leaf(ctx, 1, (int64_t[]){16}, -1, 1);
  amp_autocast_begin(ctx, dt);
  amp_tensor *y = amp_conv2d(ctx, x, w, b, 1, 1, 1, 1); /* [2,16,64,65] */
  amp_autocast_end(ctx);
  CHECK(y && y->numel == 2 * 16 * 64 * 65, "conv for the thread test");
  if (!y) return;
  float *seed = malloc(sizeof(float) * (size_t)y->numel);
  for (int64_t i = 0; i < y->numel; i++) seed[i] = (float)gc_uniform(-1, 1);
  amp_convert(r->y, AMP_F32, y->data, y->dtype, (size_t)y->numel);
  CHECK(amp__backward_seeded(ctx, y, seed, AMP_F32) == AMP_OK, "backward");
  memcpy(r->dx, x->grad->data, sizeof r->dx);
  memcpy(r->dw, w->grad->data, sizeof r->dw);
  memcpy(r->db, b->grad->data, sizeof r->db);
  free(seed);
  amp_ctx_step_reset(ctx);
}

static void test_threads(amp_ctx *ctx) {
  const amp_dtype dts[3] = {AMP_F32, AMP_F16, AMP_BF16};
  conv_run *r1 = malloc(sizeof *r1), *r2 = malloc(sizeof *r2);
  for (int d = 0; d < 3; d++) {
    memset(r1, 0, sizeof *r1);
    memset(r2, 0, sizeof *r2);
    run_conv(ctx, 1, dts[d], r1);
    run_conv(ctx, 2, dts[d], r2);
    CHECK(memcmp(r1->y, r2->y, sizeof r1->y) == 0, "conv2d forward: 1 and 2 threads (%s)",
          amp_dtype_name(dts[d]));
    CHECK(memcmp(r1->dx, r2->dx, sizeof r1->dx) == 0, "conv2d dx: 1 and 2 threads (%s)",
          amp_dtype_name(dts[d]));
    CHECK(memcmp(r1->dw, r2->dw, sizeof r1->dw) == 0 && memcmp(r1->db, r2->db, sizeof r1->db) == 0,
          "conv2d dw, db: 1 and 2 threads (%s)", amp_dtype_name(dts[d]));
  }
  free(r1);
  free(r2);
  amp_ctx_set_threads(ctx, 2);
}

/* max_pool2d, layer_norm and embedding forward and backward, 1 vs 2 threads,
 * on sizes above the kernels' parallel thresholds. Returns a malloc'ed
 * buffer of all results (F32). */
static float *run_others(amp_ctx *ctx, int threads, size_t *len) {
  amp_ctx_set_threads(ctx, threads);
  gc_rng_state = 4242;
  amp_tensor *x = gc_leaf(ctx, 4, (int64_t[]){4, 16, 40, 41}, -1, 1);
  amp_tensor *lw = gc_leaf(ctx, 1, (int64_t[]){41}, 0.5, 1.5);
  amp_tensor *lb = gc_leaf(ctx, 1, (int64_t[]){41}, -1, 1);
  amp_tensor *emb = gc_leaf(ctx, 2, (int64_t[]){50, 300}, -1, 1);
  amp_tensor *idx = gc_labels(ctx, 2, (int64_t[]){16, 40}, 50);
  amp_tensor *p = amp_max_pool2d(ctx, x, 3, 3, 2, 2);
  amp_tensor *ln = amp_layer_norm(ctx, x, lw, lb, 1e-5f);
  amp_tensor *e = amp_embedding(ctx, emb, idx);
  *len = 0;
  if (!p || !ln || !e) return NULL;
  size_t n = (size_t)(p->numel + ln->numel + e->numel + x->numel * 2 + 82 + emb->numel), o = 0;
  float *r = malloc(n * sizeof(float));
  amp_tensor *outs[3] = {p, ln, e};
  for (int k = 0; k < 3; k++) {
    float *seed = malloc(sizeof(float) * (size_t)outs[k]->numel);
    for (int64_t i = 0; i < outs[k]->numel; i++) seed[i] = (float)gc_uniform(-1, 1);
    CHECK(amp__backward_seeded(ctx, outs[k], seed, AMP_F32) == AMP_OK, "backward");
    free(seed);
    memcpy(r + o, outs[k]->data, amp_tensor_bytes(outs[k]));
    o += (size_t)outs[k]->numel;
    if (k < 2) {
      memcpy(r + o, x->grad->data, amp_tensor_bytes(x->grad));
      o += (size_t)x->numel;
      amp_tensor_zero_grad(x);
    }
  }
  memcpy(r + o, lw->grad->data, 41 * 4);
  memcpy(r + o + 41, lb->grad->data, 41 * 4);
  memcpy(r + o + 82, emb->grad->data, amp_tensor_bytes(emb->grad));
  *len = n;
  amp_ctx_step_reset(ctx);
  return r;
}

static void test_threads_others(amp_ctx *ctx) {
  size_t n1, n2;
  float *r1 = run_others(ctx, 1, &n1), *r2 = run_others(ctx, 2, &n2);
  CHECK(r1 && r2 && n1 == n2 && memcmp(r1, r2, n1 * sizeof(float)) == 0,
        "max_pool2d, layer_norm, embedding: 1 and 2 threads give the same bits");
  free(r1);
  free(r2);
  amp_ctx_set_threads(ctx, 2);
}

int main(void) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  test_conv_gradients(ctx);
  test_pool_gradients(ctx);
  test_embedding_gradients(ctx);
  test_layer_norm_gradients(ctx);
  test_autocast(ctx);
  test_autocast_backward(ctx);
  test_intermediates(ctx);
  test_errors(ctx);
  test_threads(ctx);
  test_threads_others(ctx);
  amp_ctx_free(ctx);
  TEST_MAIN_END();
}
