/* Every op of the op list (src/ops/ops.def) in every precision: one case row
 * per op, run with inputs in F32, F16 and BF16, each with autocast off and
 * inside F16 and BF16 regions (9 modes). Each run checks the result's dtype
 * against the op's autocast category, its values against an FP64 reference
 * and every floating input's gradient against FP64 central finite
 * differences of that reference (tests/gradcheck.h).
 *
 * The first check fails when an op of the list has no case row: the rows are
 * indexed by the op enum made from ops.def, so a new line there leaves an
 * empty row here.
 *
 * Inputs. Every floating input is an F32 leaf whose values lie on the BF16
 * grid with magnitudes in [2^-4, 4], so they are exact in F32, F16 and BF16:
 * casting them to the op's dtype (by hand for the 16-bit modes, by autocast
 * in a region) adds no error, and the FP64 reference sees exactly the values
 * the op sees. max_pool2d gets distinct values (no ties).
 *
 * Tolerance. The error of a floating-point sum of K terms is bounded by
 * gamma_K · sum|terms| with gamma_K = K·u / (1 - K·u) ~ K·u (Higham, Accuracy
 * and Stability of Numerical Algorithms, 2002, §3.1), u the unit roundoff of
 * the dtype the work is done or stored in: 2^-24 for F32, 2^-11 for F16,
 * 2^-8 for BF16. Each output or gradient element of these ops is such a sum
 * (K = 1 for elementwise ops) followed by a few more roundings (the result's
 * store, the cast of a gradient to its input's dtype, the seed's cast), and
 * the terms are O(max|y|) for the small, well-scaled inputs used here. So
 *
 *   tol = C · u · K,   relative to max|y| (forward) or max|grad| (backward),
 *
 * with K the longest sum behind one output or gradient element (the case
 * row's `k`, forward and backward), u the unit roundoff of the coarser of
 * the input dtype and the op's compute dtype, and C = TOL_C covering the
 * extra roundings and the ratio sum|terms| / max|y|. The kernels accumulate
 * in F32, so in 16 bits the measured errors are well below the bound; C was
 * set from the worst measured ratio err / (u·K) over all ops and modes
 * (1.6, gelu's gradient in F32) with a margin of 2.5. One check shows that
 * this is tight enough to reject a plausible bug: the tanh form of GELU
 * (1e-3 off) in place of the erf form. The finite differences themselves
 * are exact to about 1e-10 (FP64, h = 1e-6·|x|), below every tolerance
 * here. */
#include "gradcheck.h"

#include <stdio.h>
#include <string.h>

#define TOL_C 4.0

enum { IN_NONE, IN_FLOAT, IN_INDEX };

typedef struct in_spec {
  int kind; /* IN_FLOAT or IN_INDEX (I32 in 0..classes-1); IN_NONE ends the list */
  int ndim;
  int64_t shape[4];
  int classes;
} in_spec;

struct run;

/* One test case: the op on its inputs x[] (already in the mode's dtype),
 * its FP64 reference, the inputs, their value range and K (see above). */
typedef struct op_case {
  amp_tensor *(*op)(amp_ctx *ctx, amp_tensor **x, const struct run *r);
  void (*ref)(double *const *v, amp_tensor *const *in, double *out, const struct run *r);
  in_spec in[3];
  int64_t k;
  double lo, hi;
  int64_t ia[4]; /* op arguments: strides, padding, window, shape */
  double fa;     /* op argument: eps, scale, p */
} op_case;

/* One run of a case: the inputs' dtype and the autocast region's (F32: off). */
typedef struct run {
  const op_case *c;
  amp_dtype in_dt, ac;
  amp_dtype *got;      /* the result's dtype, written by the forward */
  unsigned char *mask; /* dropout: which outputs were kept */
} run;

/* ---- ops and FP64 references ---- */

static int64_t last_dim(const amp_tensor *t) { return t->shape[t->ndim - 1]; }

static amp_tensor *o_matmul(amp_ctx *ctx, amp_tensor **x, const run *r) {
  (void)r;
  return amp_matmul(ctx, x[0], x[1]);
}
static amp_tensor *o_bmm(amp_ctx *ctx, amp_tensor **x, const run *r) {
  (void)r;
  return amp_bmm(ctx, x[0], x[1]);
}
/* [B,m,k]·[B,k,n] (B = 1 for 2-D inputs). */
static void r_matmul(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  int nd = in[0]->ndim;
  int64_t bs = nd == 3 ? in[0]->shape[0] : 1, m = in[0]->shape[nd - 2], k = in[0]->shape[nd - 1];
  int64_t n = in[1]->shape[nd - 1];
  for (int64_t b = 0; b < bs; b++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t p = 0; p < k; p++) s += v[0][(b * m + i) * k + p] * v[1][(b * k + p) * n + j];
        out[(b * m + i) * n + j] = s;
      }
}

static amp_tensor *o_linear(amp_ctx *ctx, amp_tensor **x, const run *r) {
  (void)r;
  return amp_linear(ctx, x[0], x[1], x[2]);
}
static void r_linear(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  int64_t n = in[0]->shape[0], k = in[0]->shape[1], o = in[1]->shape[0];
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < o; j++) {
      double s = v[2][j];
      for (int64_t p = 0; p < k; p++) s += v[0][i * k + p] * v[1][j * k + p];
      out[i * o + j] = s;
    }
}

static amp_tensor *o_conv2d(amp_ctx *ctx, amp_tensor **x, const run *r) {
  const int64_t *a = r->c->ia;
  return amp_conv2d(ctx, x[0], x[1], x[2], a[0], a[1], a[2], a[3]);
}
static void r_conv2d(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  const int64_t *a = r->c->ia; /* sh, sw, ph, pw */
  int64_t n = in[0]->shape[0], c = in[0]->shape[1], h = in[0]->shape[2], w = in[0]->shape[3];
  int64_t o = in[1]->shape[0], kh = in[1]->shape[2], kw = in[1]->shape[3];
  int64_t oh = (h + 2 * a[2] - kh) / a[0] + 1, ow = (w + 2 * a[3] - kw) / a[1] + 1;
  for (int64_t b = 0; b < n; b++)
    for (int64_t q = 0; q < o; q++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
          double s = v[2][q];
          for (int64_t ci = 0; ci < c; ci++)
            for (int64_t ki = 0; ki < kh; ki++)
              for (int64_t kj = 0; kj < kw; kj++) {
                int64_t y = i * a[0] - a[2] + ki, xx = j * a[1] - a[3] + kj;
                if (y < 0 || y >= h || xx < 0 || xx >= w) continue;
                s += v[0][((b * c + ci) * h + y) * w + xx] *
                     v[1][((q * c + ci) * kh + ki) * kw + kj];
              }
          out[((b * o + q) * oh + i) * ow + j] = s;
        }
}

/* Row-wise log-sum-exp of [rows, cols]. */
static double lse(const double *x, int64_t cols) {
  double mx = -INFINITY, s = 0;
  for (int64_t j = 0; j < cols; j++) mx = fmax(mx, x[j]);
  for (int64_t j = 0; j < cols; j++) s += exp(x[j] - mx);
  return mx + log(s);
}
static amp_tensor *o_softmax(amp_ctx *ctx, amp_tensor **x, const run *r) {
  (void)r;
  return amp_softmax(ctx, x[0]);
}
static amp_tensor *o_log_softmax(amp_ctx *ctx, amp_tensor **x, const run *r) {
  (void)r;
  return amp_log_softmax(ctx, x[0]);
}
static void r_softmax(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  int64_t cols = last_dim(in[0]), rows = in[0]->numel / cols;
  int logs = r->c->op == o_log_softmax;
  for (int64_t i = 0; i < rows; i++) {
    double l = lse(v[0] + i * cols, cols);
    for (int64_t j = 0; j < cols; j++)
      out[i * cols + j] = logs ? v[0][i * cols + j] - l : exp(v[0][i * cols + j] - l);
  }
}

static amp_tensor *o_cross_entropy(amp_ctx *ctx, amp_tensor **x, const run *r) {
  (void)r;
  return amp_cross_entropy(ctx, x[0], x[1]);
}
static void r_cross_entropy(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  int64_t n = in[0]->shape[0], c = in[0]->shape[1];
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += lse(v[0] + i * c, c) - v[0][i * c + (int64_t)v[1][i]];
  out[0] = s / (double)n;
}

static amp_tensor *o_mse(amp_ctx *ctx, amp_tensor **x, const run *r) {
  (void)r;
  return amp_mse(ctx, x[0], x[1]);
}
static void r_mse(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  double s = 0;
  for (int64_t i = 0; i < in[0]->numel; i++) s += (v[0][i] - v[1][i]) * (v[0][i] - v[1][i]);
  out[0] = s / (double)in[0]->numel;
}

static amp_tensor *o_layer_norm(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_layer_norm(ctx, x[0], x[1], x[2], (float)r->c->fa);
}
static void r_layer_norm(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  int64_t d = last_dim(in[0]), rows = in[0]->numel / d;
  for (int64_t i = 0; i < rows; i++) {
    const double *x = v[0] + i * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; j++) mean += x[j] / (double)d;
    for (int64_t j = 0; j < d; j++) var += (x[j] - mean) * (x[j] - mean) / (double)d;
    for (int64_t j = 0; j < d; j++)
      out[i * d + j] = (x[j] - mean) / sqrt(var + (double)(float)r->c->fa) * v[1][j] + v[2][j];
  }
}

/* An op without arguments beyond its inputs. */
#define PLAIN_OP(name, call)                                                                       \
  static amp_tensor *o_##name(amp_ctx *ctx, amp_tensor **x, const run *r) {                        \
    (void)r;                                                                                       \
    return call;                                                                                   \
  }
PLAIN_OP(exp, amp_exp(ctx, x[0]))
PLAIN_OP(log, amp_log(ctx, x[0]))
PLAIN_OP(sum, amp_sum(ctx, x[0]))
PLAIN_OP(mean, amp_mean(ctx, x[0]))
PLAIN_OP(relu, amp_relu(ctx, x[0]))
PLAIN_OP(gelu, amp_gelu(ctx, x[0]))
PLAIN_OP(flatten, amp_flatten(ctx, x[0]))
PLAIN_OP(add, amp_add(ctx, x[0], x[1]))
PLAIN_OP(sub, amp_sub(ctx, x[0], x[1]))
PLAIN_OP(mul, amp_mul(ctx, x[0], x[1]))
PLAIN_OP(embedding, amp_embedding(ctx, x[0], x[1]))

/* Elementwise references: out[i] = f(x[i]) or f(a[i], b[i mod |b|]). */
static void r_elementwise(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  const op_case *c = r->c;
  int64_t nb = in[1] ? in[1]->numel : 1;
  for (int64_t i = 0; i < in[0]->numel; i++) {
    double x = v[0][i], b = in[1] ? v[1][i % nb] : 0;
    out[i] = c->op == o_exp           ? exp(x)
             : c->op == o_log         ? log(x)
             : c->op == o_relu        ? fmax(x, 0)
             : c->op == o_gelu        ? 0.5 * x * (1 + erf(x / sqrt(2.0)))
             : c->op == o_add         ? x + b
             : c->op == o_sub         ? x - b
             : c->op == o_mul         ? x * b
             : r->mask && !r->mask[i] ? 0 /* dropout */
             : r->mask                ? x / (1 - (double)(float)c->fa)
                                      : x * (double)(float)c->fa; /* mul_scalar */
  }
}
static void r_sum(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  double s = 0;
  for (int64_t i = 0; i < in[0]->numel; i++) s += v[0][i];
  out[0] = r->c->op == o_mean ? s / (double)in[0]->numel : s;
}
/* reshape, flatten, cast: the values unchanged. */
static void r_same(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  memcpy(out, v[0], sizeof(double) * (size_t)in[0]->numel);
}

static amp_tensor *o_mul_scalar(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_mul_scalar(ctx, x[0], (float)r->c->fa);
}
static amp_tensor *o_dropout(amp_ctx *ctx, amp_tensor **x, const run *r) {
  amp_tensor *y = amp_dropout(ctx, x[0], (float)r->c->fa, 77);
  for (int64_t i = 0; y && i < y->numel; i++) { /* the inputs are never 0 */
    float f;
    amp_convert(&f, AMP_F32, (const char *)y->data + i * (int64_t)amp_dtype_size(y->dtype),
                y->dtype, 1);
    r->mask[i] = f != 0.0f;
  }
  return y;
}
static amp_tensor *o_reshape(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_reshape(ctx, x[0], 3, r->c->ia);
}
/* To F32 from 16 bits, to BF16 from F32. */
static amp_dtype cast_target(amp_dtype in) { return in == AMP_F32 ? AMP_BF16 : AMP_F32; }
static amp_tensor *o_cast(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_cast(ctx, x[0], cast_target(r->in_dt));
}

static amp_tensor *o_max_pool2d(amp_ctx *ctx, amp_tensor **x, const run *r) {
  const int64_t *a = r->c->ia;
  return amp_max_pool2d(ctx, x[0], a[0], a[1], a[2], a[3]);
}
static void r_max_pool2d(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  const int64_t *a = r->c->ia; /* kh, kw, sh, sw */
  int64_t planes = in[0]->shape[0] * in[0]->shape[1], h = in[0]->shape[2], w = in[0]->shape[3];
  int64_t oh = (h - a[0]) / a[2] + 1, ow = (w - a[1]) / a[3] + 1;
  for (int64_t p = 0; p < planes; p++)
    for (int64_t i = 0; i < oh; i++)
      for (int64_t j = 0; j < ow; j++) {
        double m = -INFINITY;
        for (int64_t ki = 0; ki < a[0]; ki++)
          for (int64_t kj = 0; kj < a[1]; kj++)
            m = fmax(m, v[0][(p * h + i * a[2] + ki) * w + j * a[3] + kj]);
        out[(p * oh + i) * ow + j] = m;
      }
}

static void r_embedding(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  int64_t d = in[0]->shape[1];
  for (int64_t i = 0; i < in[1]->numel; i++)
    for (int64_t j = 0; j < d; j++) out[i * d + j] = v[0][(int64_t)v[1][i] * d + j];
}

/* ---- ops of the models (issue 13) ---- */

static amp_tensor *o_transpose(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_transpose(ctx, x[0], (int)r->c->ia[0], (int)r->c->ia[1]);
}
/* out[..., j at d0, ..., i at d1, ...] = x[..., i at d0, ..., j at d1, ...] */
static void r_transpose(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  const amp_tensor *x = in[0];
  int d0 = (int)r->c->ia[0], d1 = (int)r->c->ia[1], nd = x->ndim;
  int64_t os[4], idx[4];
  for (int d = 0; d < nd; d++) os[d] = x->shape[d];
  os[d0] = x->shape[d1];
  os[d1] = x->shape[d0];
  for (int64_t o = 0; o < x->numel; o++) {
    int64_t rem = o, at = 0;
    for (int d = nd - 1; d >= 0; d--) {
      idx[d] = rem % os[d];
      rem /= os[d];
    }
    int64_t t = idx[d0];
    idx[d0] = idx[d1];
    idx[d1] = t;
    for (int d = 0; d < nd; d++) at = at * x->shape[d] + idx[d];
    out[o] = v[0][at];
  }
}

/* Inner sizes around `axis`: [outer, n, inner]. */
static void around(const amp_tensor *t, int axis, int64_t *outer, int64_t *inner) {
  *outer = *inner = 1;
  for (int d = 0; d < t->ndim; d++) {
    if (d < axis) *outer *= t->shape[d];
    if (d > axis) *inner *= t->shape[d];
  }
}
static amp_tensor *o_slice(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_slice(ctx, x[0], (int)r->c->ia[0], r->c->ia[1], r->c->ia[2]);
}
static void r_slice(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  int axis = (int)r->c->ia[0];
  int64_t start = r->c->ia[1], len = r->c->ia[2], outer, inner, n = in[0]->shape[axis], o = 0;
  around(in[0], axis, &outer, &inner);
  for (int64_t a = 0; a < outer; a++)
    for (int64_t i = start; i < start + len; i++)
      for (int64_t j = 0; j < inner; j++) out[o++] = v[0][(a * n + i) * inner + j];
}
static amp_tensor *o_concat(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_concat(ctx, 3, x, (int)r->c->ia[0]);
}
static void r_concat(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  int axis = (int)r->c->ia[0];
  int64_t outer, inner, o = 0;
  around(in[0], axis, &outer, &inner);
  for (int64_t a = 0; a < outer; a++)
    for (int k = 0; k < 3; k++)
      for (int64_t i = 0; i < in[k]->shape[axis] * inner; i++)
        out[o++] = v[k][a * in[k]->shape[axis] * inner + i];
}

/* Attention over [B,H,T,D]; ia[0]: causal. */
static amp_tensor *o_attention(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_attention(ctx, x[0], x[1], x[2], (int)r->c->ia[0]);
}
static void r_attention(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  int64_t bh = in[0]->shape[0] * in[0]->shape[1], t = in[0]->shape[2], d = in[0]->shape[3];
  double sc[64], scale = 1 / sqrt((double)d);
  for (int64_t b = 0; b < bh; b++)
    for (int64_t i = 0; i < t; i++) {
      const double *q = v[0] + (b * t + i) * d;
      int64_t lim = r->c->ia[0] ? i + 1 : t;
      for (int64_t j = 0; j < lim; j++) {
        sc[j] = 0;
        for (int64_t p = 0; p < d; p++) sc[j] += q[p] * v[1][(b * t + j) * d + p] * scale;
      }
      double l = lse(sc, lim);
      for (int64_t p = 0; p < d; p++) {
        double s = 0;
        for (int64_t j = 0; j < lim; j++) s += exp(sc[j] - l) * v[2][(b * t + j) * d + p];
        out[(b * t + i) * d + p] = s;
      }
    }
}

PLAIN_OP(gelu_tanh, amp_gelu_tanh(ctx, x[0]))
PLAIN_OP(tanh, amp_tanh(ctx, x[0]))
static void r_tanh(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  for (int64_t i = 0; i < in[0]->numel; i++) out[i] = tanh(v[0][i]);
}

/* Batch norm in training mode (batch statistics), no running statistics. */
static amp_tensor *o_batch_norm2d(amp_ctx *ctx, amp_tensor **x, const run *r) {
  return amp_batch_norm2d(ctx, x[0], x[1], x[2], NULL, NULL, 1, 0.1f, (float)r->c->fa);
}
static void r_batch_norm2d(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  int64_t n = in[0]->shape[0], ch = in[0]->shape[1], hw = in[0]->shape[2] * in[0]->shape[3];
  for (int64_t k = 0; k < ch; k++) {
    double mean = 0, var = 0, cnt = (double)(n * hw);
    for (int64_t i = 0; i < n; i++)
      for (int64_t p = 0; p < hw; p++) mean += v[0][(i * ch + k) * hw + p] / cnt;
    for (int64_t i = 0; i < n; i++)
      for (int64_t p = 0; p < hw; p++) {
        double t = v[0][(i * ch + k) * hw + p] - mean;
        var += t * t / cnt;
      }
    double rstd = 1 / sqrt(var + (double)(float)r->c->fa);
    for (int64_t i = 0; i < n; i++)
      for (int64_t p = 0; p < hw; p++) {
        int64_t at = (i * ch + k) * hw + p;
        out[at] = (v[0][at] - mean) * rstd * v[1][k] + v[2][k];
      }
  }
}

static amp_tensor *o_avg_pool2d(amp_ctx *ctx, amp_tensor **x, const run *r) {
  const int64_t *a = r->c->ia;
  return amp_avg_pool2d(ctx, x[0], a[0], a[1], a[2], a[3]);
}
static void r_avg_pool2d(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  const int64_t *a = r->c->ia; /* kh, kw, sh, sw */
  int64_t planes = in[0]->shape[0] * in[0]->shape[1], h = in[0]->shape[2], w = in[0]->shape[3];
  int64_t oh = (h - a[0]) / a[2] + 1, ow = (w - a[1]) / a[3] + 1;
  for (int64_t p = 0; p < planes; p++)
    for (int64_t i = 0; i < oh; i++)
      for (int64_t j = 0; j < ow; j++) {
        double s = 0;
        for (int64_t ki = 0; ki < a[0]; ki++)
          for (int64_t kj = 0; kj < a[1]; kj++)
            s += v[0][(p * h + i * a[2] + ki) * w + j * a[3] + kj];
        out[(p * oh + i) * ow + j] = s / (double)(a[0] * a[1]);
      }
}

static void r_gelu_tanh(double *const *v, amp_tensor *const *in, double *out, const run *r);

/* ---- the case rows, one per op of ops.def ---- */

/* fake_quant, per channel along axis 0 (3 rows), scale 2^-11 and range
 * [-4096, 4096] with zero points 100, 1, -50. The inputs lie on the BF16
 * grid with magnitudes >= 2^-4, i.e. on multiples of 2^-11: inside the range
 * the fake quantization returns them unchanged, outside it clamps them to
 * (qmax - zp)·s or (qmin - zp)·s (neither of which is on the BF16 grid, so
 * no input sits on a boundary). The reference is that function, which is
 * also the straight-through estimator's surrogate (identity inside, constant
 * outside): its finite differences are the STE's gradient. */
static const float FQ_SCALE[3] = {0x1p-11f, 0x1p-11f, 0x1p-11f};
static const int32_t FQ_ZP[3] = {100, 1, -50};
enum { FQ_QMIN = -4096, FQ_QMAX = 4096 };
static amp_tensor *o_fake_quant(amp_ctx *ctx, amp_tensor **x, const run *r) {
  (void)r;
  return amp_fake_quant(ctx, x[0], 3, FQ_SCALE, FQ_ZP, FQ_QMIN, FQ_QMAX);
}
static void r_fake_quant(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  const int64_t per = in[0]->numel / 3;
  for (int64_t i = 0; i < in[0]->numel; i++) {
    const double s = FQ_SCALE[i / per], z = FQ_ZP[i / per];
    const double lo = (FQ_QMIN - z) * s, hi = (FQ_QMAX - z) * s;
    out[i] = v[0][i] < lo ? lo : v[0][i] > hi ? hi : v[0][i];
  }
}

#define F(...)                                                                                     \
  { IN_FLOAT, sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}, 0 }
#define IDX(classes, ...)                                                                          \
  { IN_INDEX, sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}, classes }

static const op_case CASES[AMP__OP_COUNT] = {
    /* K: matmul sums k = 5 (forward), n = 4 (dA), m = 3 (dB) terms */
    [AMP__OP_MATMUL] = {o_matmul, r_matmul, {F(3, 5), F(5, 4)}, 5, -2, 2, {0}, 0},
    [AMP__OP_BMM] = {o_bmm, r_matmul, {F(2, 3, 5), F(2, 5, 4)}, 5, -2, 2, {0}, 0},
    /* linear: 5 terms + bias forward; db sums the 3 rows */
    [AMP__OP_LINEAR] = {o_linear, r_linear, {F(3, 5), F(4, 5), F(4)}, 6, -2, 2, {0}, 0},
    /* conv2d 2x2, C = 2: 8 terms + bias; dw and db sum N·OH·OW = 8 positions */
    [AMP__OP_CONV2D] =
        {o_conv2d, r_conv2d, {F(1, 2, 3, 4), F(2, 2, 2, 2), F(2)}, 9, -2, 2, {1, 2, 1, 0}, 0},
    [AMP__OP_SOFTMAX] = {o_softmax, r_softmax, {F(3, 7)}, 7, -2, 2, {0}, 0},
    [AMP__OP_LOG_SOFTMAX] = {o_log_softmax, r_softmax, {F(3, 7)}, 7, -2, 2, {0}, 0},
    /* cross_entropy: log-sum-exp of 5 classes, mean of 4 rows */
    [AMP__OP_CROSS_ENTROPY] =
        {o_cross_entropy, r_cross_entropy, {F(4, 5), IDX(5, 4)}, 9, -2, 2, {0}, 0},
    [AMP__OP_MSE] = {o_mse, r_mse, {F(2, 4), F(2, 4)}, 8, -2, 2, {0}, 0},
    /* layer_norm: mean and variance of 6; dx sums 6, dw and db sum 3 rows */
    [AMP__OP_LAYER_NORM] = {o_layer_norm, r_layer_norm, {F(3, 6), F(6), F(6)}, 6, -2, 2, {0}, 1e-5},
    [AMP__OP_EXP] = {o_exp, r_elementwise, {F(3, 5)}, 1, -2, 2, {0}, 0},
    [AMP__OP_LOG] = {o_log, r_elementwise, {F(3, 5)}, 1, 0.25, 4, {0}, 0},
    [AMP__OP_SUM] = {o_sum, r_sum, {F(2, 4)}, 8, -2, 2, {0}, 0},
    [AMP__OP_MEAN] = {o_mean, r_sum, {F(2, 4)}, 8, -2, 2, {0}, 0},
    /* binary ops with b broadcast over 3 rows: db sums 3 */
    [AMP__OP_ADD] = {o_add, r_elementwise, {F(3, 5), F(5)}, 3, -2, 2, {0}, 0},
    [AMP__OP_SUB] = {o_sub, r_elementwise, {F(3, 5), F(5)}, 3, -2, 2, {0}, 0},
    [AMP__OP_MUL] = {o_mul, r_elementwise, {F(3, 5), F(5)}, 3, -2, 2, {0}, 0},
    [AMP__OP_MUL_SCALAR] = {o_mul_scalar, r_elementwise, {F(3, 5)}, 1, -2, 2, {0}, -1.75},
    [AMP__OP_RELU] = {o_relu, r_elementwise, {F(3, 5)}, 1, -2, 2, {0}, 0},
    [AMP__OP_GELU] = {o_gelu, r_elementwise, {F(3, 5)}, 1, -3, 3, {0}, 0},
    [AMP__OP_DROPOUT] = {o_dropout, r_elementwise, {F(4, 5)}, 1, -2, 2, {0}, 0.25},
    [AMP__OP_RESHAPE] = {o_reshape, r_same, {F(2, 3, 4)}, 1, -2, 2, {4, -1, 2}, 0},
    [AMP__OP_FLATTEN] = {o_flatten, r_same, {F(2, 3, 2, 2)}, 1, -2, 2, {0}, 0},
    [AMP__OP_MAX_POOL2D] = {o_max_pool2d, r_max_pool2d, {F(2, 2, 5, 4)}, 1, -2, 2, {2, 2, 1, 2}, 0},
    [AMP__OP_CAST] = {o_cast, r_same, {F(3, 5)}, 1, -2, 2, {0}, 0},
    /* embedding: dweight sums the repeats of an index among 7 */
    [AMP__OP_EMBEDDING] = {o_embedding, r_embedding, {F(5, 3), IDX(5, 7)}, 7, -2, 2, {0}, 0},
    [AMP__OP_TRANSPOSE] = {o_transpose, r_transpose, {F(2, 3, 4)}, 1, -2, 2, {2, 0}, 0},
    [AMP__OP_SLICE] = {o_slice, r_slice, {F(2, 5, 3)}, 1, -2, 2, {1, 1, 3}, 0},
    [AMP__OP_CONCAT] = {o_concat, r_concat, {F(2, 3, 4), F(2, 2, 4), F(2, 1, 4)}, 1, -2, 2, {1}, 0},
    /* attention, causal, T = 4, D = 3: scores sum D, the softmax and P·V sum
       T, dQ and dK sum T, dV sums T; plus P's and dS's roundings to 16 bits */
    [AMP__OP_ATTENTION] =
        {o_attention, r_attention, {F(1, 2, 4, 3), F(1, 2, 4, 3), F(1, 2, 4, 3)}, 8, -2, 2, {1}, 0},
    [AMP__OP_GELU_TANH] = {o_gelu_tanh, r_gelu_tanh, {F(3, 5)}, 1, -3, 3, {0}, 0},
    [AMP__OP_TANH] = {o_tanh, r_tanh, {F(3, 5)}, 1, -2, 2, {0}, 0},
    /* batch_norm2d: statistics over N·H·W = 8 per channel; dw, db, dx sum 8 */
    [AMP__OP_BATCH_NORM2D] =
        {o_batch_norm2d, r_batch_norm2d, {F(2, 3, 2, 2), F(3), F(3)}, 8, -2, 2, {0}, 1e-5},
    /* avg_pool2d 2x2 stride (1, 2): 4 terms forward, overlapping windows back */
    [AMP__OP_AVG_POOL2D] = {o_avg_pool2d, r_avg_pool2d, {F(2, 2, 5, 4)}, 4, -2, 2, {2, 2, 1, 2}, 0},
    /* fake_quant: elementwise (K = 1), inputs in [-3, 3) so that some clamp */
    [AMP__OP_FAKE_QUANT] = {o_fake_quant, r_fake_quant, {F(3, 5)}, 1, -3, 3, {0}, 0},
};

/* ---- the harness ---- */

static double unit_roundoff(amp_dtype dt) {
  return dt == AMP_F16 ? 0x1p-11 : dt == AMP_BF16 ? 0x1p-8 : 0x1p-24;
}

/* The dtype op `op` must compute in for a run (its result's dtype): from the
 * op's category in the table, as amp__op_inputs() promises; a cast gives
 * its target. */
static amp_dtype expected_dtype(amp__op op, const run *r) {
  if (op == AMP__OP_CAST) return cast_target(r->in_dt);
  amp_op_category cat = amp__ops[op].category;
  if (r->ac != AMP_F32 && (cat == AMP_CAT_LOWER || cat == AMP_CAT_NORM)) return r->ac;
  if (r->ac != AMP_F32 && cat == AMP_CAT_FP32) return AMP_F32;
  return r->in_dt;
}

/* The forward of a run: casts the F32 leaves to the run's dtype (exactly,
 * see the inputs above) and runs the op, inside an autocast region when the
 * run has one. */
static amp_tensor *f_run(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  const run *r = arg;
  amp_tensor *x[3] = {0};
  for (int i = 0; i < 3 && in[i]; i++)
    x[i] = in[i]->dtype == AMP_F32 && r->in_dt != AMP_F32 ? amp_cast(ctx, in[i], r->in_dt) : in[i];
  if (r->ac != AMP_F32) amp_autocast_begin(ctx, r->ac);
  amp_tensor *y = r->c->op(ctx, x, r);
  if (r->ac != AMP_F32) amp_autocast_end(ctx);
  *r->got = y ? y->dtype : AMP_I32;
  return y;
}
static void r_run(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  const run *r = arg;
  r->c->ref(v, in, out, r);
}

/* Puts t's values on the BF16 grid with magnitudes in [2^-4, 4] (or, for
 * `distinct`, a shuffle of n distinct such values). */
static void make_exact(amp_tensor *t, int distinct) {
  float *f = t->data;
  for (int64_t i = 0; i < t->numel; i++) {
    if (distinct) { /* (2i + 1 - n)/32: odd integers below 256 need at most 8 bits */
      f[i] = (float)(2 * i + 1 - t->numel) / 32.0f;
      continue;
    }
    uint16_t b;
    amp_convert(&b, AMP_BF16, &f[i], AMP_F32, 1);
    amp_convert(&f[i], AMP_F32, &b, AMP_BF16, 1);
    if (fabsf(f[i]) < 0x1p-4f) f[i] = f[i] < 0 ? -0x1p-4f : 0x1p-4f;
  }
  for (int64_t i = t->numel - 1; distinct && i > 0; i--) {
    int64_t j = (int64_t)gc_uniform(0, (double)(i + 1));
    float s = f[i];
    f[i] = f[j];
    f[j] = s;
  }
}

static const char *dt_name(amp_dtype dt) { return dt == AMP_F32 ? "off" : amp_dtype_name(dt); }

/* Runs case c of op `op` in one mode; `note` is added to the messages. */
static void run_case(amp_ctx *ctx, amp__op op, const op_case *c, amp_dtype in_dt, amp_dtype ac,
                     const char *note) {
  amp_tensor *in[3] = {0};
  int nin = 0;
  for (; nin < 3 && c->in[nin].kind != IN_NONE; nin++) {
    const in_spec *s = &c->in[nin];
    if (s->kind == IN_INDEX) {
      in[nin] = gc_labels(ctx, s->ndim, s->shape, s->classes);
      continue;
    }
    in[nin] = gc_leaf(ctx, s->ndim, s->shape, c->lo, c->hi);
    if (in[nin]) make_exact(in[nin], op == AMP__OP_MAX_POOL2D);
  }
  unsigned char *mask = op == AMP__OP_DROPOUT ? calloc((size_t)in[0]->numel, 1) : NULL;
  amp_dtype got = AMP_I32;
  run r = {c, in_dt, ac, &got, mask};
  amp_dtype want = expected_dtype(op, &r);
  double u = fmax(unit_roundoff(in_dt), unit_roundoff(want));
  double tol = TOL_C * u * (double)c->k;
  char name[96];
  snprintf(name, sizeof name, "%s in %s, autocast %s%s", amp__ops[op].name, amp_dtype_name(in_dt),
           dt_name(ac), note);
  gradcheck(ctx, name, f_run, r_run, nin, in, &r, tol);
  CHECK(got == want, "%s: result dtype %s, want %s (category %s)", name, amp_dtype_name(got),
        amp_dtype_name(want), amp_op_category_name(amp__ops[op].category));
  CHECK(amp_ctx_status(ctx) == AMP_OK, "%s: %s", name, amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  free(mask);
  amp_ctx_step_reset(ctx);
}

/* GELU's tanh approximation, 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))),
 * is within 1e-3 of the erf form: the F32 tolerance must reject it as a
 * reference for amp_gelu (which computes the erf form). */
static void r_gelu_tanh(double *const *v, amp_tensor *const *in, double *out, const run *r) {
  (void)r;
  for (int64_t i = 0; i < in[0]->numel; i++) {
    double x = v[0][i];
    out[i] = 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
  }
}
static void test_rejects_tanh_gelu(amp_ctx *ctx) {
  op_case bad = CASES[AMP__OP_GELU];
  bad.ref = r_gelu_tanh;
  int before = check_failed_;
  run_case(ctx, AMP__OP_GELU, &bad, AMP_F32, AMP_F32, " vs tanh form (expected to fail)");
  int caught = check_failed_ > before;
  check_failed_ = before;
  CHECK(caught, "the F32 tolerance accepted the tanh form of GELU");
}

int main(void) {
  /* First: every op of the list has a case row, and the table the library
   * exports is the list. */
  CHECK(amp_op_count() == AMP__OP_COUNT, "amp_op_count() %d, the list has %d", amp_op_count(),
        (int)AMP__OP_COUNT);
  for (int op = 0; op < AMP__OP_COUNT; op++) {
    CHECK(CASES[op].op && CASES[op].ref && CASES[op].k >= 1,
          "op %s (AMP__OP %d in ops.def) has no case row in tests/test_ops_table.c",
          amp__ops[op].name, op);
    CHECK(amp_op_name(op) && strcmp(amp_op_name(op), amp__ops[op].name) == 0 &&
              amp_op_category_of(amp__ops[op].name) == (int)amp__ops[op].category,
          "op %d: exported name and category", op);
  }
  if (check_failed_) TEST_MAIN_END();

  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  static const amp_dtype dts[] = {AMP_F32, AMP_F16, AMP_BF16};
  for (int op = 0; op < AMP__OP_COUNT; op++)
    for (int i = 0; i < 3; i++)
      for (int a = 0; a < 3; a++) run_case(ctx, (amp__op)op, &CASES[op], dts[i], dts[a], "");
  test_rejects_tanh_gelu(ctx);
  amp_ctx_free(ctx);
  TEST_MAIN_END();
}
