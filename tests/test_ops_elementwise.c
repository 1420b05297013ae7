/* Elementwise, reduction and shape ops: add, sub, mul (with broadcasting),
 * gelu, dropout, exp, log, softmax, log_softmax, mse, sum, mean, reshape,
 * flatten. Gradients against FP64 finite differences; the autocast policy
 * (output dtypes per category, bit equality with hand-cast inputs); dtypes
 * outside autocast; errors. */
#include "dtype/dtype_inline.h"
#include "gradcheck.h"

#include <stdio.h>
#include <string.h>

static const int64_t ODD[] = {1, 7, 33};

/* ---- forward functions and FP64 references ---- */

enum { K_ADD, K_SUB, K_MUL };
static const char *const KNAME[] = {"add", "sub", "mul"};

static amp_tensor *f_binary(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  int k = *(const int *)arg;
  return k == K_ADD   ? amp_add(ctx, in[0], in[1])
         : k == K_SUB ? amp_sub(ctx, in[0], in[1])
                      : amp_mul(ctx, in[0], in[1]);
}
static void r_binary(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  int k = *(const int *)arg;
  int64_t n = in[0]->numel, nb = in[1]->numel;
  for (int64_t i = 0; i < n; i++) {
    double a = v[0][i], b = v[1][nb == n ? i : i % nb]; /* [C] rows or one element */
    out[i] = k == K_ADD ? a + b : k == K_SUB ? a - b : a * b;
  }
}
/* A wrong reference (a + 2b) the harness must reject. */
static void r_add_wrong(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  for (int64_t i = 0; i < in[0]->numel; i++) out[i] = v[0][i] + 2 * v[1][i % in[1]->numel];
}

typedef enum { U_GELU, U_EXP, U_LOG, U_SOFTMAX, U_LOG_SOFTMAX, U_SUM, U_MEAN, U_FLATTEN } unary;
static const char *const UNAME[] = {"gelu",        "exp", "log",  "softmax",
                                    "log_softmax", "sum", "mean", "flatten"};

static amp_tensor *run_unary(amp_ctx *ctx, unary u, amp_tensor *x) {
  switch (u) {
  case U_GELU: return amp_gelu(ctx, x);
  case U_EXP: return amp_exp(ctx, x);
  case U_LOG: return amp_log(ctx, x);
  case U_SOFTMAX: return amp_softmax(ctx, x);
  case U_LOG_SOFTMAX: return amp_log_softmax(ctx, x);
  case U_SUM: return amp_sum(ctx, x);
  case U_MEAN: return amp_mean(ctx, x);
  case U_FLATTEN: return amp_flatten(ctx, x);
  }
  return NULL;
}
static amp_tensor *f_unary(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  return run_unary(ctx, *(const unary *)arg, in[0]);
}
static void r_unary(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  unary u = *(const unary *)arg;
  const double *x = v[0];
  int64_t n = in[0]->numel, cols = in[0]->shape[in[0]->ndim - 1];
  if (u == U_SUM || u == U_MEAN) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    out[0] = u == U_SUM ? s : s / (double)n;
    return;
  }
  if (u == U_SOFTMAX || u == U_LOG_SOFTMAX) {
    for (int64_t r = 0; r < n / cols; r++) {
      const double *xr = x + r * cols;
      double mx = -INFINITY, s = 0;
      for (int64_t j = 0; j < cols; j++) mx = fmax(mx, xr[j]);
      for (int64_t j = 0; j < cols; j++) s += exp(xr[j] - mx);
      for (int64_t j = 0; j < cols; j++)
        out[r * cols + j] = u == U_SOFTMAX ? exp(xr[j] - mx) / s : xr[j] - mx - log(s);
    }
    return;
  }
  for (int64_t i = 0; i < n; i++)
    out[i] = u == U_GELU  ? 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)))
             : u == U_EXP ? exp(x[i])
             : u == U_LOG ? log(x[i])
                          : x[i]; /* flatten */
}

typedef struct {
  int ndim;
  int64_t shape[AMP_MAX_DIMS];
} reshape_arg;
static amp_tensor *f_reshape(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  const reshape_arg *r = arg;
  return amp_reshape(ctx, in[0], r->ndim, r->shape);
}
static void r_ident(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  for (int64_t i = 0; i < in[0]->numel; i++) out[i] = v[0][i];
}

static amp_tensor *f_mse(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  (void)arg;
  return amp_mse(ctx, in[0], in[1]);
}
static void r_mse(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  double s = 0;
  for (int64_t i = 0; i < in[0]->numel; i++) s += (v[0][i] - v[1][i]) * (v[0][i] - v[1][i]);
  out[0] = s / (double)in[0]->numel;
}

/* Dropout: the forward records which outputs it zeroed (the mask), and the
 * reference applies that mask. */
typedef struct {
  float p;
  uint64_t seed;
  unsigned char *mask; /* filled by f_dropout */
} dropout_arg;
static amp_tensor *f_dropout(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  const dropout_arg *d = arg;
  amp_tensor *y = amp_dropout(ctx, in[0], d->p, d->seed);
  if (y)
    for (int64_t i = 0; i < y->numel; i++) d->mask[i] = ((float *)y->data)[i] != 0.0f;
  return y;
}
static void r_dropout(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  const dropout_arg *d = arg;
  double scale = 1.0 / (1.0 - (double)d->p);
  for (int64_t i = 0; i < in[0]->numel; i++) out[i] = d->mask[i] ? v[0][i] * scale : 0;
}

/* ---- gradients ---- */

static void test_binary_gradients(amp_ctx *ctx) {
  char name[96];
  for (int k = 0; k < 3; k++)
    for (int a = 0; a < 3; a++)
      for (int c = 0; c < 3; c++) {
        int64_t rows = ODD[a], cols = ODD[c];
        int64_t as[2] = {rows, cols};
        /* b: same shape, [C], [1,C], [1], [1,1]; and a 1-D, 3-D a */
        struct {
          int nda, ndb;
          int64_t sa[3], sb[2];
        } forms[] = {
            {2, 2, {rows, cols}, {rows, cols}}, {2, 1, {rows, cols}, {cols}},
            {2, 2, {rows, cols}, {1, cols}},    {2, 1, {rows, cols}, {1}},
            {2, 2, {rows, cols}, {1, 1}},       {1, 1, {cols}, {cols}},
            {1, 2, {cols}, {1, cols}},          {3, 1, {2, rows, cols}, {cols}},
            {3, 1, {2, rows, cols}, {1}},
        };
        (void)as;
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
          amp_tensor *in[2] = {gc_leaf(ctx, forms[f].nda, forms[f].sa, -2, 2),
                               gc_leaf(ctx, forms[f].ndb, forms[f].sb, -2, 2)};
          char s0[64], s1[64];
          snprintf(name, sizeof name, "%s %s %s", KNAME[k], amp__shape_str(in[0], s0, sizeof s0),
                   amp__shape_str(in[1], s1, sizeof s1));
          gradcheck(ctx, name, f_binary, r_binary, 2, in, &k, 1e-5);
        }
        amp_ctx_step_reset(ctx);
      }
  /* The same tolerance rejects a wrong gradient of the broadcast operand. */
  int before = check_failed_, k = K_ADD;
  amp_tensor *in[2] = {gc_leaf(ctx, 2, (int64_t[]){7, 33}, -1, 1),
                       gc_leaf(ctx, 1, (int64_t[]){33}, -1, 1)};
  double rel = gradcheck(ctx, "add vs a wrong reference (expected to fail)", f_binary, r_add_wrong,
                         2, in, &k, 1e-5);
  int caught = check_failed_ > before;
  check_failed_ = before;
  CHECK(caught && rel > 1e-5, "the harness accepted a wrong broadcast gradient (rel %.3g)", rel);
  amp_ctx_step_reset(ctx);
}

static void test_unary_gradients(amp_ctx *ctx) {
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 1, 1}, {1, 7, 1}, {7, 33, 1}, {33, 7, 1}, {2, 3, 5}};
  const int ndims[] = {1, 1, 2, 2, 2, 3};
  char name[96];
  for (int u = U_GELU; u <= U_FLATTEN; u++)
    for (size_t s = 0; s < sizeof ndims / sizeof ndims[0]; s++) {
      unary op = (unary)u;
      double lo = op == U_LOG ? 0.2 : -3, hi = op == U_LOG ? 4 : 3;
      amp_tensor *in[1] = {gc_leaf(ctx, ndims[s], shapes[s], lo, hi)};
      char sx[64];
      snprintf(name, sizeof name, "%s %s", UNAME[op], amp__shape_str(in[0], sx, sizeof sx));
      gradcheck(ctx, name, f_unary, r_unary, 1, in, &op, 1e-5);
      amp_ctx_step_reset(ctx);
    }
  { /* flatten is a view of [N, rest] */
    amp_tensor *x = gc_leaf(ctx, 4, (int64_t[]){3, 2, 5, 1}, -1, 1);
    amp_tensor *y = amp_flatten(ctx, x);
    CHECK(y && y->ndim == 2 && y->shape[0] == 3 && y->shape[1] == 10 && y->data == x->data,
          "flatten [3,2,5,1] → [3,10] view");
  }
  { /* reshape: explicit and inferred sizes, a view */
    reshape_arg r[] = {{2, {3, 10}}, {3, {-1, 5, 2}}, {1, {-1}}, {4, {1, 30, 1, 1}}};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
      amp_tensor *in[1] = {gc_leaf(ctx, 3, (int64_t[]){2, 3, 5}, -1, 1)};
      gradcheck(ctx, "reshape", f_reshape, r_ident, 1, in, &r[i], 1e-6);
      amp_tensor *y = amp_reshape(ctx, in[0], r[i].ndim, r[i].shape);
      CHECK(y && y->data == in[0]->data && y->ndim == r[i].ndim && y->numel == 30 &&
                y->shape[0] == (i == 1   ? 3
                                : i == 2 ? 30
                                         : r[i].shape[0]),
            "reshape %zu is a view with the right shape", i);
    }
    amp_ctx_step_reset(ctx);
  }
  for (int a = 0; a < 3; a++)
    for (int c = 0; c < 3; c++) {
      int64_t sh[2] = {ODD[a], ODD[c] + 1};
      amp_tensor *in[2] = {gc_leaf(ctx, 2, sh, -2, 2), gc_leaf(ctx, 2, sh, -2, 2)};
      gradcheck(ctx, "mse", f_mse, r_mse, 2, in, NULL, 1e-5);
      amp_ctx_step_reset(ctx);
    }
  const float ps[] = {0.1f, 0.5f, 0.9f};
  for (int a = 0; a < 3; a++)
    for (int q = 0; q < 3; q++) {
      int64_t sh[2] = {ODD[a], 33};
      unsigned char mask[33 * 33];
      dropout_arg d = {ps[q], 1000u + (uint64_t)a, mask};
      amp_tensor *in[1] = {gc_leaf(ctx, 2, sh, -2, 2)};
      gradcheck(ctx, "dropout", f_dropout, r_dropout, 1, in, &d, 1e-5);
      amp_ctx_step_reset(ctx);
    }
}

/* x·x: both operands are the same tensor, an F16 leaf; its F32 gradient
 * must get 2·g·x without rounding the products to 16 bits. */
static void test_aliasing_and_f32_accumulation(amp_ctx *ctx) {
  amp_tensor *x32 = gc_leaf(ctx, 1, (int64_t[]){33}, -2, 2);
  amp_tensor *x = amp_tensor_cast(ctx, AMP_ARENA_STEP, x32, AMP_F16);
  CHECK(amp_tensor_set_requires_grad(ctx, x, 1) == AMP_OK, "f16 leaf");
  amp_tensor *y = amp_mul(ctx, x, x);
  CHECK(y && y->dtype == AMP_F16, "f16·f16 → f16");
  uint16_t seed[33];
  for (int i = 0; i < 33; i++) seed[i] = amp_f32_to_f16((float)gc_uniform(-1, 1)).bits;
  CHECK(amp__backward_seeded(ctx, y, seed, AMP_F16) == AMP_OK, "backward");
  double worst = 0;
  for (int i = 0; i < 33; i++) {
    double g = amp_f16_to_f32((amp_f16){seed[i]});
    double xv = amp_f16_to_f32((amp_f16){((uint16_t *)x->data)[i]});
    double want = 2 * g * xv, got = ((float *)x->grad->data)[i];
    worst = fmax(worst, fabs(got - want) / fmax(fabs(want), 1e-3));
  }
  CHECK(x->grad->dtype == AMP_F32 && worst < 1e-6, "x·x gradient in f32: rel error %.3g", worst);
  amp_ctx_step_reset(ctx);
}

/* ---- dropout: statistics, reproducibility ---- */

static void test_dropout(amp_ctx *ctx) {
  const int64_t n = 1 << 20;
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){1024, 1024});
  for (int64_t i = 0; i < n; i++) ((float *)x->data)[i] = 1.0f;
  const float ps[] = {0.1f, 0.3f, 0.5f, 0.8f};
  for (int q = 0; q < 4; q++) {
    float p = ps[q];
    amp_tensor *y = amp_dropout(ctx, x, p, 42);
    amp_tensor *y2 = amp_dropout(ctx, x, p, 42);
    amp_tensor *y3 = amp_dropout(ctx, x, p, 43);
    if (!y || !y2 || !y3) {
      CHECK(0, "dropout failed: %s", amp_ctx_error(ctx));
      return;
    }
    int64_t kept = 0, bad = 0;
    float scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) {
      float v = ((float *)y->data)[i];
      kept += v != 0;
      bad += v != 0 && v != scale;
    }
    double frac = (double)kept / (double)n, sd = sqrt((double)p * (1 - p) / (double)n);
    CHECK(fabs(frac - (1 - p)) < 5 * sd, "p %.1f: kept %.5f, expected %.5f ± %.5f", (double)p, frac,
          1 - (double)p, 5 * sd);
    CHECK(bad == 0, "kept values are scaled by 1/(1-p)");
    CHECK(memcmp(y->data, y2->data, amp_tensor_bytes(y)) == 0, "the same seed, the same mask");
    CHECK(memcmp(y->data, y3->data, amp_tensor_bytes(y)) != 0, "another seed, another mask");
  }
  /* The mask depends on (seed, i) only: the first elements of a small tensor
     match those of the large one. */
  amp_tensor *xs = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){100});
  for (int i = 0; i < 100; i++) ((float *)xs->data)[i] = 1.0f;
  amp_tensor *ys = amp_dropout(ctx, xs, 0.5f, 7), *yl = amp_dropout(ctx, x, 0.5f, 7);
  CHECK(ys && yl && memcmp(ys->data, yl->data, 400) == 0, "mask of element i depends on i only");
  CHECK(amp_dropout(ctx, x, 0.0f, 1) == x, "p == 0 returns x itself");
  amp_tensor *h = amp_tensor_cast(ctx, AMP_ARENA_STEP, x, AMP_BF16);
  amp_tensor *yh = amp_dropout(ctx, h, 0.5f, 42);
  amp_tensor *yf = amp_dropout(ctx, x, 0.5f, 42);
  int same = yh && yf && yh->dtype == AMP_BF16;
  for (int64_t i = 0; same && i < n; i++)
    same = amp_bf16_to_f32((amp_bf16){((uint16_t *)yh->data)[i]}) == ((float *)yf->data)[i];
  CHECK(same, "bf16 dropout: the same mask, in bf16");
  amp_ctx_step_reset(ctx);
}

/* ---- autocast and dtypes ---- */

static amp_tensor *rand_f32(amp_ctx *ctx, int ndim, const int64_t *shape, double lo, double hi) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, ndim, shape);
  if (t) gc_fill(t, lo, hi);
  return t;
}
static amp_tensor *cast(amp_ctx *ctx, amp_tensor *t, amp_dtype dt) {
  return amp_tensor_cast(ctx, AMP_ARENA_STEP, t, dt);
}
/* Every op under autocast, against the same op outside autocast on inputs
 * cast by hand to the dtype the policy prescribes. */
static void test_autocast(amp_ctx *ctx) {
  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_dtype dt = dts[d];
    const char *dn = amp_dtype_name(dt);
    amp_tensor *x32 = rand_f32(ctx, 2, (int64_t[]){7, 33}, -3, 3);
    amp_tensor *pos32 = rand_f32(ctx, 2, (int64_t[]){7, 33}, 0.1, 5);
    amp_tensor *row32 = rand_f32(ctx, 1, (int64_t[]){33}, -1, 1);
    amp_tensor *x = cast(ctx, x32, dt), *pos = cast(ctx, pos32, dt), *row = cast(ctx, row32, dt);
    amp_tensor *x2 = cast(ctx, rand_f32(ctx, 2, (int64_t[]){7, 33}, -3, 3), dt);

    CHECK(amp_autocast_begin(ctx, dt) == AMP_OK, "begin");
    amp_tensor *add_mixed = amp_add(ctx, x, x32), *add_low = amp_add(ctx, x, x2);
    amp_tensor *sub_row = amp_sub(ctx, x, row32), *mul_row = amp_mul(ctx, x, row);
    amp_tensor *mul_mixed = amp_mul(ctx, x32, row);
    amp_tensor *u[8];
    for (int k = U_GELU; k <= U_FLATTEN; k++) u[k] = run_unary(ctx, (unary)k, k == U_LOG ? pos : x);
    amp_tensor *mse = amp_mse(ctx, x, x2), *mse_mixed = amp_mse(ctx, x, x32);
    amp_tensor *drop = amp_dropout(ctx, x, 0.25f, 9);
    amp_tensor *resh = amp_reshape(ctx, x, 3, (int64_t[]){-1, 3, 11});
    amp_tensor *gelu32 = amp_gelu(ctx, x32), *sm32 = amp_softmax(ctx, x32);
    CHECK(amp_autocast_end(ctx) == AMP_OK, "end");

    /* Output dtypes per category. */
    CHECK(add_mixed && add_mixed->dtype == AMP_F32, "add %s + f32 → f32", dn);
    CHECK(add_low && add_low->dtype == dt, "add %s + %s → %s", dn, dn, dn);
    CHECK(sub_row && sub_row->dtype == AMP_F32, "sub %s - f32 row → f32", dn);
    CHECK(mul_row && mul_row->dtype == dt, "mul %s · %s row → %s", dn, dn, dn);
    CHECK(mul_mixed && mul_mixed->dtype == AMP_F32, "mul f32 · %s → f32", dn);
    for (int k = U_GELU; k <= U_FLATTEN; k++) {
      amp_dtype want = k == U_GELU || k == U_FLATTEN ? dt : AMP_F32;
      CHECK(u[k] && u[k]->dtype == want, "%s of %s under autocast → %s", UNAME[k], dn,
            amp_dtype_name(want));
    }
    CHECK(mse && mse->dtype == AMP_F32 && mse_mixed && mse_mixed->dtype == AMP_F32, "mse → f32");
    CHECK(drop && drop->dtype == dt, "dropout keeps %s", dn);
    CHECK(resh && resh->dtype == dt && resh->data == x->data, "reshape keeps %s (a view)", dn);
    CHECK(gelu32 && gelu32->dtype == AMP_F32, "gelu of f32 under autocast stays f32");
    CHECK(sm32 && sm32->dtype == AMP_F32, "softmax of f32 under autocast → f32");

    /* Bits equal to the ops outside autocast on hand-cast inputs. */
    amp_tensor *xf = cast(ctx, x, AMP_F32), *posf = cast(ctx, pos, AMP_F32);
    amp_tensor *x2f = cast(ctx, x2, AMP_F32), *rowf = cast(ctx, row, AMP_F32);
    CHECK(gc_same_bits(add_mixed, amp_add(ctx, xf, x32)), "add %s+f32 bits", dn);
    CHECK(gc_same_bits(add_low, amp_add(ctx, x, x2)), "add %s+%s bits", dn, dn);
    CHECK(gc_same_bits(sub_row, amp_sub(ctx, xf, row32)), "sub row bits (%s)", dn);
    CHECK(gc_same_bits(mul_row, amp_mul(ctx, x, row)), "mul row bits (%s)", dn);
    CHECK(gc_same_bits(mul_mixed, amp_mul(ctx, x32, rowf)), "mul f32·%s bits", dn);
    for (int k = U_GELU; k <= U_FLATTEN; k++) {
      amp_tensor *in = k == U_GELU || k == U_FLATTEN ? x : k == U_LOG ? posf : xf;
      CHECK(gc_same_bits(u[k], run_unary(ctx, (unary)k, in)), "%s bits (%s)", UNAME[k], dn);
    }
    CHECK(gc_same_bits(mse, amp_mse(ctx, xf, x2f)), "mse bits (%s)", dn);
    CHECK(gc_same_bits(mse_mixed, amp_mse(ctx, xf, x32)), "mse mixed bits (%s)", dn);
    CHECK(gc_same_bits(drop, amp_dropout(ctx, x, 0.25f, 9)), "dropout bits (%s)", dn);
    amp_ctx_step_reset(ctx);
  }
}

/* A chain of every op with parameters, under autocast: it back-propagates,
 * parameter gradients are F32 and close to the F32 run's. */
static amp_tensor *chain(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b, amp_tensor *s,
                         amp_tensor *t) {
  amp_tensor *h = amp_linear(ctx, x, w, NULL);                     /* [6,8] lower */
  h = amp_gelu(ctx, h);                                            /* same */
  h = amp_dropout(ctx, h, 0.2f, 5);                                /* same */
  h = amp_add(ctx, h, b);                                          /* promote, row */
  h = amp_mul(ctx, h, s);                                          /* promote, scalar */
  h = amp_sub(ctx, h, amp_reshape(ctx, t, 2, (int64_t[]){6, -1})); /* promote, same */
  h = amp_log_softmax(ctx, amp_flatten(ctx, amp_reshape(ctx, h, 3, (int64_t[]){6, 2, 4})));
  amp_tensor *e = amp_exp(ctx, h); /* = softmax */
  amp_tensor *l = amp_log(ctx, amp_add(ctx, amp_softmax(ctx, amp_mul(ctx, h, e)), e));
  amp_tensor *loss = amp_add(ctx, amp_mean(ctx, l), amp_sum(ctx, amp_mul(ctx, e, e)));
  return amp_add(ctx, loss, amp_mse(ctx, e, amp_softmax(ctx, t)));
}
static void test_autocast_backward(amp_ctx *ctx) {
  amp_tensor *w = amp_param_new(ctx, 2, (int64_t[]){8, 5});
  amp_tensor *b = amp_param_new(ctx, 1, (int64_t[]){8});
  amp_tensor *s = amp_param_new(ctx, 1, (int64_t[]){1});
  amp_tensor *t = amp_param_new(ctx, 2, (int64_t[]){6, 8});
  gc_fill(w, -1, 1);
  gc_fill(b, -1, 1);
  gc_fill(s, 0.5, 2);
  gc_fill(t, -1, 1);
  amp_tensor *p[4] = {w, b, s, t};
  float ref[4][48];
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 2, (int64_t[]){6, 5});
  gc_fill(x, -1, 1);
  amp_tensor *loss = chain(ctx, x, w, b, s, t);
  CHECK(loss && amp_backward(ctx, loss) == AMP_OK, "f32 chain: %s", amp_ctx_error(ctx));
  for (int i = 0; i < 4; i++) {
    memcpy(ref[i], p[i]->grad->data, amp_tensor_bytes(p[i]->grad));
    amp_tensor_zero_grad(p[i]);
  }
  amp_ctx_step_reset(ctx);
  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_autocast_begin(ctx, dts[d]);
    loss = chain(ctx, x, w, b, s, t);
    amp_autocast_end(ctx);
    CHECK(loss && loss->dtype == AMP_F32, "loss in f32");
    CHECK(loss && amp_backward(ctx, loss) == AMP_OK, "%s chain backward: %s",
          amp_dtype_name(dts[d]), amp_ctx_error(ctx));
    for (int i = 0; i < 4; i++) {
      const float *g = p[i]->grad->data;
      double mx = 1e-30, err = 0;
      for (int64_t j = 0; j < p[i]->numel; j++) {
        mx = fmax(mx, fabs(ref[i][j]));
        err = fmax(err, fabs(g[j] - ref[i][j]));
      }
      CHECK(p[i]->grad->dtype == AMP_F32 && err <= 0.02 * mx,
            "%s: parameter %d gradient off by %.3g (max %.3g)", amp_dtype_name(dts[d]), i, err, mx);
      amp_tensor_zero_grad(p[i]);
    }
    amp_ctx_step_reset(ctx);
  }
}

/* Outside autocast ops run in their inputs' dtype; f16 with bf16 → f32. */
static void test_dtypes_outside_autocast(amp_ctx *ctx) {
  amp_tensor *x32 = rand_f32(ctx, 2, (int64_t[]){7, 33}, -3, 3);
  amp_tensor *pos32 = rand_f32(ctx, 2, (int64_t[]){7, 33}, 0.1, 5);
  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_dtype dt = dts[d];
    amp_tensor *x = cast(ctx, x32, dt), *pos = cast(ctx, pos32, dt);
    for (int k = U_GELU; k <= U_FLATTEN; k++) {
      amp_tensor *in = k == U_LOG ? pos : x;
      amp_tensor *y = run_unary(ctx, (unary)k, in);
      amp_tensor *yr = run_unary(ctx, (unary)k, cast(ctx, in, AMP_F32));
      CHECK(y && y->dtype == dt, "%s of %s → %s outside autocast", UNAME[k], amp_dtype_name(dt),
            amp_dtype_name(dt));
      /* close to the f32 result of the same (16-bit) inputs: one rounding */
      double err = 0, mx = 1e-30, u = dt == AMP_F16 ? 0x1p-11 : 0x1p-8;
      for (int64_t i = 0; y && yr && i < y->numel; i++) {
        double a = amp__load_f32(y->data, dt, (size_t)i), r = ((float *)yr->data)[i];
        err = fmax(err, fabs(a - r) / fmax(fabs(r), 1e-3));
        mx = fmax(mx, fabs(r));
      }
      CHECK(err <= 1.01 * u, "%s in %s: relative error %.3g", UNAME[k], amp_dtype_name(dt), err);
    }
    amp_tensor *m = amp_mse(ctx, x, pos);
    CHECK(m && m->dtype == dt, "mse of %s → %s", amp_dtype_name(dt), amp_dtype_name(dt));
  }
  amp_tensor *h = cast(ctx, x32, AMP_F16), *bf = cast(ctx, pos32, AMP_BF16);
  amp_tensor *y[4] = {amp_add(ctx, h, bf), amp_sub(ctx, h, bf), amp_mul(ctx, bf, h),
                      amp_mse(ctx, h, bf)};
  for (int i = 0; i < 4; i++) CHECK(y[i] && y[i]->dtype == AMP_F32, "f16 with bf16 → f32 (%d)", i);
  amp_ctx_step_reset(ctx);
}

/* The same bits with 1 and 4 threads (large reductions and broadcasts). */
static void test_threads(amp_ctx *ctx) {
  amp_tensor *x = rand_f32(ctx, 2, (int64_t[]){600, 700}, -1, 1);
  amp_tensor *b = rand_f32(ctx, 1, (int64_t[]){700}, -1, 1);
  CHECK(amp_tensor_set_requires_grad(ctx, b, 1) == AMP_OK, "b leaf");
  amp_tensor *r[2][3];
  float gb[2][700];
  for (int t = 0; t < 2; t++) {
    amp_ctx_set_threads(ctx, t ? 4 : 1);
    amp_tensor_zero_grad(b);
    amp_tensor *y = amp_mul(ctx, x, b);
    r[t][0] = amp_sum(ctx, y);
    r[t][1] = amp_mean(ctx, amp_softmax(ctx, x));
    r[t][2] = amp_mse(ctx, x, y);
    CHECK(amp_backward(ctx, amp_add(ctx, r[t][0], r[t][2])) == AMP_OK, "backward");
    memcpy(gb[t], b->grad->data, sizeof gb[t]);
  }
  for (int i = 0; i < 3; i++) CHECK(gc_same_bits(r[0][i], r[1][i]), "reduction %d: same bits", i);
  CHECK(memcmp(gb[0], gb[1], sizeof gb[0]) == 0, "broadcast gradient: same bits");
  amp_ctx_set_threads(ctx, 2);
  amp_ctx_step_reset(ctx);
}

/* ---- errors ---- */

static int msg_has(amp_ctx *ctx, const char *a, const char *b, const char *c) {
  const char *m = amp_ctx_error(ctx);
  return strstr(m, a) && (!b || strstr(m, b)) && (!c || strstr(m, c));
}

static void test_errors(amp_ctx *ctx) {
  amp_tensor *a = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){2, 3});
  amp_tensor *b4 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){4});
  amp_tensor *b23 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){3, 2});
  amp_tensor *b13 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){2, 1});
  amp_tensor *lab = gc_labels(ctx, 1, (int64_t[]){6}, 5);
  amp_tensor *bad[3] = {b4, b23, b13};
  const char *bs[3] = {"[4]", "[3,2]", "[2,1]"};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 3; i++) {
      int kk = k;
      amp_tensor *in[2] = {a, bad[i]};
      amp_tensor *y = f_binary(ctx, in, &kk);
      CHECK(y == NULL && amp_ctx_status(ctx) == AMP_ERR_SHAPE &&
                msg_has(ctx, KNAME[k], "[2,3]", bs[i]),
            "%s shape error: %s", KNAME[k], amp_ctx_error(ctx));
      amp_ctx_clear_error(ctx);
    }
  CHECK(amp_mse(ctx, a, b23) == NULL && msg_has(ctx, "mse", "[2,3]", "[3,2]"), "mse: %s",
        amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_reshape(ctx, a, 2, (int64_t[]){4, 2}) == NULL && amp_ctx_status(ctx) == AMP_ERR_SHAPE &&
            msg_has(ctx, "reshape", "[2,3]", "[4,2]"),
        "reshape count: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_reshape(ctx, a, 2, (int64_t[]){-1, -1}) == NULL &&
            msg_has(ctx, "reshape", "[-1,-1]", 0),
        "reshape two -1: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_reshape(ctx, a, 2, (int64_t[]){-1, 4}) == NULL && msg_has(ctx, "reshape", "[-1,4]", 0),
        "reshape -1 not integral: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_reshape(ctx, a, 2, (int64_t[]){0, 6}) == NULL, "reshape size 0");
  amp_ctx_clear_error(ctx);
  CHECK(amp_reshape(ctx, a, 5, (int64_t[]){1, 1, 1, 2, 3}) == NULL, "reshape 5 dims");
  amp_ctx_clear_error(ctx);
  amp_tensor *lr = amp_reshape(ctx, lab, 2, (int64_t[]){2, -1});
  CHECK(lr && lr->dtype == AMP_I32 && lr->shape[1] == 3, "reshape of an i32 tensor");
  const float badp[] = {1.0f, -0.1f, 1.5f, NAN};
  for (int i = 0; i < 4; i++) {
    CHECK(amp_dropout(ctx, a, badp[i], 1) == NULL && amp_ctx_status(ctx) == AMP_ERR_INVALID_ARG &&
              msg_has(ctx, "dropout", "p", 0),
          "dropout p %g: %s", (double)badp[i], amp_ctx_error(ctx));
    amp_ctx_clear_error(ctx);
  }
  CHECK(amp_softmax(ctx, lab) == NULL && amp_ctx_status(ctx) == AMP_ERR_UNSUPPORTED &&
            msg_has(ctx, "softmax", "i32", 0),
        "softmax of i32: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_add(ctx, a, lab) == NULL && msg_has(ctx, "add", "i32", 0), "add of i32: %s",
        amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);

  /* NULL in, NULL out; the first error stays. */
  CHECK(amp_add(ctx, a, b4) == NULL, "make an error");
  int k0 = K_ADD, k1 = K_SUB, k2 = K_MUL;
  amp_tensor *nin[2] = {NULL, a}, *nin2[2] = {a, NULL};
  CHECK(!f_binary(ctx, nin, &k0) && !f_binary(ctx, nin2, &k1) && !f_binary(ctx, nin, &k2),
        "binary NULL");
  for (int k = U_GELU; k <= U_FLATTEN; k++)
    CHECK(run_unary(ctx, (unary)k, NULL) == NULL, "%s NULL", UNAME[k]);
  CHECK(!amp_mse(ctx, NULL, a) && !amp_mse(ctx, a, NULL), "mse NULL");
  CHECK(!amp_dropout(ctx, NULL, 0.5f, 1) && !amp_dropout(ctx, NULL, 0.0f, 1), "dropout NULL");
  CHECK(!amp_reshape(ctx, NULL, 1, (int64_t[]){6}), "reshape NULL");
  CHECK(amp_ctx_status(ctx) == AMP_ERR_SHAPE && msg_has(ctx, "add", "[4]", 0),
        "the first error stays: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_gelu(ctx, NULL) == NULL && amp_ctx_status(ctx) == AMP_ERR_INVALID_ARG &&
            msg_has(ctx, "gelu", "NULL", 0),
        "a NULL without an earlier error is reported: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_op_category_of("mse") == AMP_CAT_FP32 && amp_op_category_of("mul") == AMP_CAT_PROMOTE &&
            amp_op_category_of("dropout") == AMP_CAT_SAME &&
            amp_op_category_of("flatten") == AMP_CAT_SAME,
        "table rows");
  amp_ctx_step_reset(ctx);
}

int main(void) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  test_binary_gradients(ctx);
  test_unary_gradients(ctx);
  test_aliasing_and_f32_accumulation(ctx);
  test_dropout(ctx);
  test_autocast(ctx);
  test_autocast_backward(ctx);
  test_dtypes_outside_autocast(ctx);
  test_threads(ctx);
  test_errors(ctx);
  amp_ctx_free(ctx);
  TEST_MAIN_END();
}
