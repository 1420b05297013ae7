/* The BatchNorm2d and pooling kernels of every kernel table this CPU can run
 * against the scalar reference, bit for bit: odd sizes (segments shorter
 * than, equal to and longer than the 32 partial sums, with tails), every
 * dtype and mixed dtypes, NaN and infinities; the sum order against an
 * FP64 sum; batch_norm2d's forward and backward with 1 and 2 threads and
 * with the scalar and SIMD tables. */
#include "check.h"

#include "core/kernels.h"
#include "ops/ops_internal.h"
#include "dtype/dtype_inline.h"
#include "kernels/spatial_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const amp_dtype DTS[3] = {AMP_F32, AMP_F16, AMP_BF16};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1p-53;
}

static double uniform(double lo, double hi) { return lo + (hi - lo) * urand(); }

/* A new F32 leaf (step arena) requiring gradients, uniform in [lo, hi). */
static amp_tensor *leaf(amp_ctx *ctx, int ndim, const int64_t *shape, double lo, double hi) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, ndim, shape);
  if (!t) return NULL;
  for (int64_t i = 0; i < t->numel; i++) ((float *)t->data)[i] = (float)uniform(lo, hi);
  amp_tensor_set_requires_grad(ctx, t, 1);
  return t;
}

/* n elements of dt uniform in [lo, hi) (with a few specials when special). */
static void *fill(amp_dtype dt, size_t n, double lo, double hi, int special) {
  void *p = malloc(n * amp_dtype_size(dt) + 64);
  for (size_t i = 0; i < n; i++) {
    float v = (float)(lo + (hi - lo) * urand());
    if (special && urand() < 0.01) v = urand() < 0.5 ? -0.0f : 0.0f;
    amp__store_f32(p, dt, i, v);
  }
  return p;
}

/* The tables to compare with the scalar one (those this CPU can run). */
static int fast_tables(const amp__kernels **t) {
  int n = 0;
  (void)t;
#ifdef AMPC_HAVE_X86_SIMD
  if (amp__kernels_usable(&amp__kernels_avx2)) t[n++] = &amp__kernels_avx2;
  if (amp__kernels_usable(&amp__kernels_avx512)) t[n++] = &amp__kernels_avx512;
#endif
  return n;
}

static int same_f(float a, float b) { return amp__f32_bits(a) == amp__f32_bits(b); }

/* One geometry: n segments of hw, ld apart (ld >= hw). */
static void bn_case(const amp__kernels *k, int64_t n, int64_t hw, int64_t ld, amp_dtype xt,
                    amp_dtype gt, amp_dtype yt, int nan) {
  const amp__kernels *s = &amp__kernels_scalar;
  size_t tot = (size_t)(n * ld);
  void *x = fill(xt, tot, -3, 5, 1), *g = fill(gt, tot, -1, 1, 1);
  if (nan) { /* one NaN (the default NaN: every NaN result then has its bits) */
    amp__store_f32(x, xt, (size_t)((n - 1) * ld + hw - 1), amp__bits_f32(0xffc00000u));
    amp__store_f32(g, gt, 0, amp__bits_f32(0xffc00000u));
  }
  const char *what = amp_dtype_name(xt);
  for (int sq = 0; sq < 2; sq++) {
    float a = s->bn_sum(xt, n, hw, ld, x, 0.75f, sq), b = k->bn_sum(xt, n, hw, ld, x, 0.75f, sq);
    CHECK(same_f(a, b), "%s bn_sum sq=%d n=%lld hw=%lld %s: %a vs %a", k->name, sq, (long long)n,
          (long long)hw, what, (double)a, (double)b);
  }
  float sg0, sgx0, sg1, sgx1;
  s->bn_bwd_sums(gt, xt, n, hw, ld, g, x, 0.5f, 1.25f, &sg0, &sgx0);
  k->bn_bwd_sums(gt, xt, n, hw, ld, g, x, 0.5f, 1.25f, &sg1, &sgx1);
  CHECK(same_f(sg0, sg1) && same_f(sgx0, sgx1), "%s bn_bwd_sums hw=%lld %s/%s", k->name,
        (long long)hw, what, amp_dtype_name(gt));
  size_t bytes = tot * amp_dtype_size(yt) + 64;
  char *y0 = calloc(1, bytes), *y1 = calloc(1, bytes);
  s->bn_apply(xt, yt, n, hw, ld, x, y0, 0.5f, 1.25f, -0.75f, 0.125f);
  k->bn_apply(xt, yt, n, hw, ld, x, y1, 0.5f, 1.25f, -0.75f, 0.125f);
  CHECK(memcmp(y0, y1, bytes) == 0, "%s bn_apply hw=%lld %s->%s", k->name, (long long)hw, what,
        amp_dtype_name(yt));
  for (int tr = 0; tr < 2; tr++) {
    amp__bn_bwd_consts c = {0.5f, 1.25f, -0.9f, 0.0625f, -0.3f, tr};
    memset(y0, 0, bytes), memset(y1, 0, bytes);
    s->bn_bwd_apply(gt, xt, yt, n, hw, ld, g, x, y0, &c);
    k->bn_bwd_apply(gt, xt, yt, n, hw, ld, g, x, y1, &c);
    CHECK(memcmp(y0, y1, bytes) == 0, "%s bn_bwd_apply training=%d hw=%lld %s/%s->%s", k->name, tr,
          (long long)hw, what, amp_dtype_name(gt), amp_dtype_name(yt));
  }
  free(x), free(g), free(y0), free(y1);
}

static void test_bn_kernels(void) {
  const amp__kernels *t[4];
  int nt = fast_tables(t);
  const int64_t hws[] = {1, 5, 8, 31, 32, 33, 49, 63, 196, 784};
  for (int i = 0; i < nt; i++)
    for (size_t h = 0; h < sizeof hws / sizeof hws[0]; h++)
      for (int d = 0; d < 3; d++) {
        bn_case(t[i], 3, hws[h], hws[h] * 3 + 1, DTS[d], DTS[d], DTS[d], 0);
        bn_case(t[i], 2, hws[h], hws[h], DTS[d], DTS[d], DTS[d], 1);
        bn_case(t[i], 2, hws[h], hws[h] + 7, DTS[d], DTS[(d + 1) % 3], DTS[(d + 2) % 3], 0);
      }
  if (nt == 0) printf("bn kernels: no SIMD table on this CPU or build (scalar only)\n");
}

/* The fixed order against FP64: the sum of 7 segments of 100 is close. */
static void test_bn_order(void) {
  const amp__kernels *k = amp__kernels_native();
  float *x = fill(AMP_F32, 700, 0.5, 1.5, 0);
  double s = 0, ss = 0;
  for (int i = 0; i < 700; i++) s += x[i];
  for (int i = 0; i < 700; i++) ss += ((double)x[i] - 1.0) * ((double)x[i] - 1.0);
  float a = k->bn_sum(AMP_F32, 7, 100, 100, x, 0.0f, 0),
        b = k->bn_sum(AMP_F32, 7, 100, 100, x, 1.0f, 1);
  CHECK(fabs(a - s) <= 1e-6 * s && fabs(b - ss) <= 1e-6 * ss, "bn sums against FP64: %g %g, %g %g",
        (double)a, s, (double)b, ss);
  /* the partial sums: element q of each segment to partial q % 32 */
  float p[AMP__LANES] = {0};
  for (int i = 0; i < 7; i++)
    for (int q = 0; q < 100; q++) p[q % AMP__LANES] += x[i * 100 + q];
  CHECK(same_f(amp__lane_tree(p, 0), a), "bn_sum is the documented order");
  free(x);
}

/* batch_norm2d forward (y, running statistics) and backward (dx, dw, db). */
static float *run_bn(amp_ctx *ctx, int threads, const amp__kernels *k, amp_dtype dt, size_t *len) {
  amp_ctx_set_threads(ctx, threads);
  CHECK(amp__ctx_set_kernels(ctx, k), "kernel table");
  rng = 99;
  amp_tensor *x = leaf(ctx, 4, (int64_t[]){6, 5, 50, 47}, -2, 3);
  amp_tensor *w = leaf(ctx, 1, (int64_t[]){5}, 0.5, 1.5);
  amp_tensor *b = leaf(ctx, 1, (int64_t[]){5}, -1, 1);
  int64_t five = 5;
  amp_tensor *rm = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 1, &five);
  amp_tensor *rv = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 1, &five);
  amp_autocast_begin(ctx, dt);
  amp_tensor *y = amp_batch_norm2d(ctx, x, w, b, rm, rv, 1, 0.1f, 1e-5f);
  amp_autocast_end(ctx);
  *len = 0;
  CHECK(y != NULL, "batch_norm2d: %s", amp_ctx_error(ctx));
  if (!y) return NULL;
  size_t n = (size_t)(2 * x->numel + 20);
  float *r = calloc(n, sizeof(float)), *seed = malloc(sizeof(float) * (size_t)y->numel);
  for (int64_t i = 0; i < y->numel; i++) seed[i] = (float)uniform(-1, 1);
  amp_convert(r, AMP_F32, y->data, y->dtype, (size_t)y->numel);
  CHECK(amp__backward_seeded(ctx, y, seed, AMP_F32) == AMP_OK, "backward");
  amp_convert(r + x->numel, AMP_F32, x->grad->data, x->grad->dtype, (size_t)x->numel);
  memcpy(r + 2 * x->numel, w->grad->data, 20);
  memcpy(r + 2 * x->numel + 5, b->grad->data, 20);
  memcpy(r + 2 * x->numel + 10, rm->data, 20);
  memcpy(r + 2 * x->numel + 15, rv->data, 20);
  free(seed);
  *len = n;
  amp_ctx_step_reset(ctx);
  return r;
}

static void test_bn_op(amp_ctx *ctx) {
  const amp__kernels *t[4];
  int nt = fast_tables(t);
  for (int d = 0; d < 3; d++) {
    size_t n0, n1;
    float *r0 = run_bn(ctx, 1, &amp__kernels_scalar, DTS[d], &n0);
    float *r1 = run_bn(ctx, 2, &amp__kernels_scalar, DTS[d], &n1);
    CHECK(r0 && r1 && n0 == n1 && memcmp(r0, r1, n0 * 4) == 0,
          "batch_norm2d (%s): 1 and 2 threads give the same bits", amp_dtype_name(DTS[d]));
    for (int i = 0; i < nt; i++) {
      float *r2 = run_bn(ctx, 2, t[i], DTS[d], &n1);
      CHECK(r0 && r2 && n0 == n1 && memcmp(r0, r2, n0 * 4) == 0,
            "batch_norm2d (%s): %s table gives the scalar bits", amp_dtype_name(DTS[d]),
            t[i]->name);
      free(r2);
    }
    free(r0), free(r1);
  }
  amp__ctx_set_kernels(ctx, NULL);
  amp_ctx_set_threads(ctx, 2);
}

/* The original definition of the pooling rule: scan the window in
 * row-major order; a greater value or a NaN replaces the best, the first
 * NaN ends the scan. Returns the chosen index. */
static int64_t pool_ref(amp_dtype dt, const void *x, int64_t w, int64_t kh, int64_t kw,
                        int64_t start) {
  int64_t best = start;
  float bv = amp__load_f32(x, dt, (size_t)best);
  for (int64_t a = 0; a < kh && bv == bv; a++)
    for (int64_t b = 0; b < kw; b++) {
      int64_t at = start + a * w + b;
      float v = amp__load_f32(x, dt, (size_t)at);
      if (v > bv || v != v) {
        bv = v;
        best = at;
        if (v != v) break;
      }
    }
  return best;
}

/* Values drawn from a small set (ties), with ±0, ±inf and NaNs (quiet and
 * signalling, different payloads) when special. */
static void *pool_fill(amp_dtype dt, size_t n, int special) {
  void *p = malloc(n * amp_dtype_size(dt) + 64);
  const uint32_t nans[3] = {0x7fc00001u, 0xffc00000u, 0x7fa00000u};
  for (size_t i = 0; i < n; i++) {
    float v = (float)((int)(urand() * 9) - 4) * 0.5f;
    double u = urand();
    if (special && u < 0.05) v = u < 0.025 ? -0.0f : 0.0f;
    if (special && u > 0.97) v = u > 0.985 ? INFINITY : -INFINITY;
    if (dt == AMP_F32) {
      ((float *)p)[i] = v;
      if (special && urand() < 0.02) ((uint32_t *)p)[i] = nans[i % 3];
    } else {
      amp__store_f32(p, dt, i, v);
      if (special && urand() < 0.02) ((uint16_t *)p)[i] = (uint16_t)(nans[i % 3] >> 16 | 1u);
    }
  }
  return p;
}

static void test_pool_kernels(void) {
  const amp__kernels *t[4];
  int nt = fast_tables(t);
  const int64_t ws[] = {2, 3, 4, 14, 15, 16, 17, 28, 31, 33, 40};
  const int64_t win[][3] = {{2, 2, 2}, {3, 3, 2}, {2, 3, 1}, {1, 1, 1}};
  for (int d = 0; d < 3; d++)
    for (size_t wi = 0; wi < sizeof ws / sizeof ws[0]; wi++)
      for (size_t k = 0; k < sizeof win / sizeof win[0]; k++)
        for (int sp = 0; sp < 2; sp++) {
          int64_t w = ws[wi], kh = win[k][0], kw = win[k][1], sw = win[k][2];
          if (kw > w) continue;
          int64_t ow = (w - kw) / sw + 1;
          amp_dtype dt = DTS[d];
          size_t es = amp_dtype_size(dt);
          void *x = pool_fill(dt, (size_t)(kh * w), sp);
          char *y0 = calloc(1, (size_t)ow * es + 64), *y1 = calloc(1, (size_t)ow * es + 64);
          int32_t *a0 = calloc((size_t)ow, 4), *a1 = calloc((size_t)ow, 4);
          amp__kernels_scalar.max_pool_row(dt, w, kh, kw, sw, ow, x, y0, a0, 1000);
          int ok = 1;
          for (int64_t j = 0; j < ow; j++) {
            int64_t at = pool_ref(dt, x, w, kh, kw, j * sw);
            ok &= a0[j] == 1000 + at && memcmp(y0 + j * es, (char *)x + at * es, es) == 0;
          }
          CHECK(ok, "max_pool_row scalar: the reference rule (%s w=%lld %lldx%lld/%lld)",
                amp_dtype_name(dt), (long long)w, (long long)kh, (long long)kw, (long long)sw);
          for (int i = 0; i < nt; i++) {
            memset(y1, 0, (size_t)ow * es), memset(a1, 0, (size_t)ow * 4);
            t[i]->max_pool_row(dt, w, kh, kw, sw, ow, x, y1, a1, 1000);
            CHECK(memcmp(y0, y1, (size_t)ow * es) == 0 && memcmp(a0, a1, (size_t)ow * 4) == 0,
                  "max_pool_row %s: the scalar bits (%s w=%lld %lldx%lld/%lld special=%d)",
                  t[i]->name, amp_dtype_name(dt), (long long)w, (long long)kh, (long long)kw,
                  (long long)sw, sp);
          }
          free(x), free(y0), free(y1), free(a0), free(a1);
        }
}

/* max_pool2d 2×2/2 forward and backward on a [5, 7, 60, w] input (above
 * the parallel threshold; an even w tiles the input), all as F32 bits. */
static float *run_pool(amp_ctx *ctx, int threads, const amp__kernels *k, amp_dtype dt, int64_t w,
                       size_t *len) {
  amp_ctx_set_threads(ctx, threads);
  CHECK(amp__ctx_set_kernels(ctx, k), "kernel table");
  rng = 7;
  amp_tensor *x = leaf(ctx, 4, (int64_t[]){5, 7, 60, w}, -2, 2);
  for (int64_t i = 0; i < x->numel; i += 97) ((float *)x->data)[i] = NAN;
  amp_autocast_begin(ctx, dt);
  amp_tensor *xr = amp_relu(ctx, x); /* a compute-dtype input with ties at 0 */
  amp_tensor *y = amp_max_pool2d(ctx, xr, 2, 2, 2, 2);
  amp_autocast_end(ctx);
  *len = 0;
  CHECK(y != NULL, "max_pool2d: %s", amp_ctx_error(ctx));
  if (!y) return NULL;
  size_t n = (size_t)(y->numel + x->numel);
  float *r = calloc(n, sizeof(float)), *seed = malloc(sizeof(float) * (size_t)y->numel);
  for (int64_t i = 0; i < y->numel; i++) seed[i] = (float)uniform(-1, 1);
  amp_convert(r, AMP_F32, y->data, y->dtype, (size_t)y->numel);
  CHECK(amp__backward_seeded(ctx, y, seed, AMP_F32) == AMP_OK, "backward");
  amp_convert(r + y->numel, AMP_F32, x->grad->data, x->grad->dtype, (size_t)x->numel);
  free(seed);
  *len = n;
  amp_ctx_step_reset(ctx);
  return r;
}

static void test_pool_op(amp_ctx *ctx) {
  const amp__kernels *t[4];
  int nt = fast_tables(t);
  for (int d = 0; d < 6; d++) {
    size_t n0, n1;
    int64_t w = d < 3 ? 41 : 42;
    float *r0 = run_pool(ctx, 1, &amp__kernels_scalar, DTS[d % 3], w, &n0);
    float *r1 = run_pool(ctx, 2, &amp__kernels_scalar, DTS[d % 3], w, &n1);
    CHECK(r0 && r1 && n0 == n1 && memcmp(r0, r1, n0 * 4) == 0,
          "max_pool2d (%s, w %lld): 1 and 2 threads give the same bits", amp_dtype_name(DTS[d % 3]),
          (long long)w);
    for (int i = 0; i < nt; i++) {
      float *r2 = run_pool(ctx, 2, t[i], DTS[d % 3], w, &n1);
      CHECK(r0 && r2 && n0 == n1 && memcmp(r0, r2, n0 * 4) == 0,
            "max_pool2d (%s, w %lld): %s table gives the scalar bits", amp_dtype_name(DTS[d % 3]),
            (long long)w, t[i]->name);
      free(r2);
    }
    free(r0), free(r1);
  }
  amp__ctx_set_kernels(ctx, NULL);
  amp_ctx_set_threads(ctx, 2);
}

int main(void) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  test_bn_kernels();
  test_bn_order();
  test_bn_op(ctx);
  test_pool_kernels();
  test_pool_op(ctx);
  amp_ctx_free(ctx);
  TEST_MAIN_END();
}
