/* Elementwise kernels and full reductions: against FP64, fast path against
 * the scalar reference bit for bit, thread invariance, unscale_check's
 * detection, in-place use and argument errors. */
#include "check.h"

#include "ampc.h"
#include "core/internal.h"
#include "dtype/dtype_inline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const amp_dtype DTS[3] = {AMP_F32, AMP_F16, AMP_BF16};
static const size_t SIZES[5] = {1, 7, 33, 257, 1000003};

static amp_ctx *ref_ctx, *fast1, *fast2; /* scalar; SIMD with 1 and 2 threads */

/* Unit roundoff of the output dtype, and its smallest subnormal. */
static double unit(amp_dtype dt) {
  return dt == AMP_F16 ? 0x1p-11 : dt == AMP_BF16 ? 0x1p-8 : 0x1p-24;
}
static double tiny(amp_dtype dt) { return dt == AMP_F16 ? 0x1p-24 : 0x1p-126; }
static size_t esz(amp_dtype dt) { return amp_dtype_size(dt); }

static uint64_t rng = 88172645463325252ull;
static double urand(void) { /* uniform in [0, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1p-53;
}

/* A buffer of n elements (+1 spare so that callers can offset it), filled
 * with values uniform in [lo, hi) rounded to dt. */
static void *fill(amp_dtype dt, size_t n, double lo, double hi) {
  void *p = malloc((n + 1) * esz(dt));
  for (size_t i = 0; i < n + 1; i++) amp__store_f32(p, dt, i, (float)(lo + (hi - lo) * urand()));
  return p;
}

static double ld(const void *p, amp_dtype dt, size_t i) { return amp__load_f32(p, dt, i); }

static void *dup(const void *p, amp_dtype dt, size_t n) {
  void *q = malloc((n + 1) * esz(dt));
  memcpy(q, p, (n + 1) * esz(dt));
  return q;
}

typedef enum { ADD, MUL, SCALE, RELU, RELU_BWD, GELU, GELU_BWD, NOPS } op_t;
static const char *OPN[NOPS] = {"add", "mul", "scale", "relu", "relu_bwd", "gelu", "gelu_bwd"};

static amp_status run_op(amp_ctx *c, op_t op, amp_dtype dt, size_t n, const void *a, const void *b,
                         void *y) {
  switch (op) {
  case ADD: return amp_vec_add(c, dt, n, a, b, y);
  case MUL: return amp_vec_mul(c, dt, n, a, b, y);
  case SCALE: return amp_vec_scale(c, dt, n, 0.37f, a, y);
  case RELU: return amp_vec_relu(c, dt, n, a, y);
  case RELU_BWD: return amp_vec_relu_backward(c, dt, n, a, b, y);
  case GELU: return amp_vec_gelu(c, dt, n, a, y);
  default: return amp_vec_gelu_backward(c, dt, n, a, b, y);
  }
}

/* The FP64 value of an op, and the error allowed beyond rounding. */
static double ref_op(op_t op, double a, double b, double *extra) {
  *extra = 0;
  switch (op) {
  case ADD: return a + b;
  case MUL: return a * b;
  case SCALE: return (double)0.37f * a;
  case RELU: return a > 0 ? a : 0;
  case RELU_BWD: return a > 0 ? b : 0;
  case GELU: *extra = 8 * 0x1p-24 * (1 + fabs(a)); return 0.5 * a * (1 + erf(a / sqrt(2.0)));
  default: {
    double d = 0.5 * (1 + erf(a / sqrt(2.0))) + a * exp(-0.5 * a * a) * 0.3989422804014327;
    *extra = 16 * 0x1p-24 * fabs(b) * (1 + fabs(a));
    return b * d;
  }
  }
}

static int same_bits(const void *x, const void *y, amp_dtype dt, size_t n) {
  return memcmp(x, y, n * esz(dt)) == 0;
}

static void test_ops(void) {
  for (int o = 0; o < NOPS; o++)
    for (int d = 0; d < 3; d++)
      for (int s = 0; s < 5; s++) {
        amp_dtype dt = DTS[d];
        size_t n = SIZES[s];
        if ((o == GELU || o == GELU_BWD) && n > 1000) n = 4099; /* libm-bound: keep it short */
        void *a = fill(dt, n, -4, 4), *b = fill(dt, n, -4, 4);
        void *yr = fill(dt, n, 0, 1), *y1 = dup(yr, dt, n), *y2 = dup(yr, dt, n);
        CHECK(run_op(ref_ctx, (op_t)o, dt, n, a, b, yr) == AMP_OK, "%s ref", OPN[o]);
        CHECK(run_op(fast1, (op_t)o, dt, n, a, b, y1) == AMP_OK, "%s fast", OPN[o]);
        CHECK(run_op(fast2, (op_t)o, dt, n, a, b, y2) == AMP_OK, "%s fast 2 threads", OPN[o]);
        CHECK(same_bits(yr, y1, dt, n), "%s dt=%d n=%zu: fast != reference", OPN[o], dt, n);
        CHECK(same_bits(yr, y2, dt, n), "%s dt=%d n=%zu: 2 threads differ", OPN[o], dt, n);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
          double extra, r = ref_op((op_t)o, ld(a, dt, i), ld(b, dt, i), &extra);
          double tol = (unit(dt) + 0x1p-24) * fabs(r) + extra + tiny(dt);
          if (!(fabs(ld(yr, dt, i) - r) <= tol) && bad++ < 3)
            CHECK(0, "%s dt=%d i=%zu: got %.9g want %.9g", OPN[o], dt, i, ld(yr, dt, i), r);
        }
        CHECK(bad == 0, "%s dt=%d n=%zu: %zu elements off", OPN[o], dt, n, bad);
        /* Unaligned pointers (one element in) and in place (y == a). */
        if (n > 1) {
          memcpy(y1, a, (n + 1) * esz(dt));
          CHECK(run_op(ref_ctx, (op_t)o, dt, n, (char *)a + esz(dt), (char *)b + esz(dt), yr) ==
                    AMP_OK,
                "unaligned ref");
          CHECK(run_op(fast2, (op_t)o, dt, n, (char *)y1 + esz(dt), (char *)b + esz(dt),
                       (char *)y1 + esz(dt)) == AMP_OK,
                "unaligned in place");
          CHECK(same_bits(yr, (char *)y1 + esz(dt), dt, n), "%s dt=%d n=%zu unaligned in place",
                OPN[o], dt, n);
        }
        free(a), free(b), free(yr), free(y1), free(y2);
      }
}

/* Specials: NaN, inf, -0 and values that overflow F16 must match too. */
static void test_specials(void) {
  static const float v[] = {NAN,     -NAN,     INFINITY, -INFINITY, -0.0f, 0.0f, 65504.0f, 65520.0f,
                            3.4e38f, -3.4e38f, 1e-8f,    -1e-8f,    6e-5f, 1.0f, -1.0f,    2.5f};
  const size_t n = 16 * 16;
  float a32[256], b32[256];
  for (size_t i = 0; i < n; i++) a32[i] = v[i % 16], b32[i] = v[i / 16];
  for (int d = 0; d < 3; d++) {
    amp_dtype dt = DTS[d];
    void *a = malloc(n * 4), *b = malloc(n * 4), *yr = malloc(n * 4), *yf = malloc(n * 4);
    amp_convert(a, dt, a32, AMP_F32, n);
    amp_convert(b, dt, b32, AMP_F32, n);
    for (int o = 0; o < GELU; o++) {
      run_op(ref_ctx, (op_t)o, dt, n, a, b, yr);
      run_op(fast1, (op_t)o, dt, n, a, b, yf);
      CHECK(same_bits(yr, yf, dt, n), "specials %s dt=%d", OPN[o], dt);
    }
    /* A NaN scale (scale and unscale_check) gives the same NaN on both paths. */
    amp_vec_scale(ref_ctx, dt, n, -NAN, a, yr);
    amp_vec_scale(fast1, dt, n, -NAN, a, yf);
    CHECK(same_bits(yr, yf, dt, n) && isnan(ld(yf, dt, 5)), "NaN scale dt=%d", dt);
    int fr = 0, ff = 0;
    amp_vec_unscale_check(ref_ctx, dt, n, yr, NAN, &fr);
    amp_vec_unscale_check(fast1, dt, n, yf, NAN, &ff);
    CHECK(same_bits(yr, yf, dt, n) && fr == 1 && ff == 1, "NaN inv_scale dt=%d", dt);
    /* relu keeps NaN; relu_backward zeroes where x is NaN. */
    amp_vec_relu(fast1, dt, n, a, yf);
    CHECK(isnan(ld(yf, dt, 0)) && ld(yf, dt, 3) == 0 && ld(yf, dt, 2) == INFINITY, "relu specials");
    free(a), free(b), free(yr), free(yf);
  }
}

static void test_unscale(void) {
  for (int d = 0; d < 3; d++)
    for (int s = 0; s < 5; s++) {
      amp_dtype dt = DTS[d];
      size_t n = SIZES[s];
      void *g = fill(dt, n, -100, 100);
      void *gr = dup(g, dt, n), *gf = dup(g, dt, n);
      int fr = -1, ff = -1;
      CHECK(amp_vec_unscale_check(ref_ctx, dt, n, gr, 0.125f, &fr) == AMP_OK, "unscale ref");
      CHECK(amp_vec_unscale_check(fast2, dt, n, gf, 0.125f, &ff) == AMP_OK, "unscale fast");
      CHECK(fr == 0 && ff == 0, "finite data flagged dt=%d n=%zu", dt, n);
      CHECK(same_bits(gr, gf, dt, n), "unscale fast != ref dt=%d n=%zu", dt, n);
      size_t bad = 0;
      for (size_t i = 0; i < n; i++) {
        double r = ld(g, dt, i) * 0.125;
        bad += !(fabs(ld(gf, dt, i) - r) <= unit(dt) * fabs(r) + tiny(dt));
      }
      CHECK(bad == 0, "unscale values dt=%d n=%zu", dt, n);
      /* inv_scale == 1: nothing written, still checked. */
      CHECK(amp_vec_unscale_check(fast1, dt, n, gf, 1.0f, &ff) == AMP_OK && ff == 0, "scale 1");
      CHECK(same_bits(gr, gf, dt, n), "scale 1 must not change data");
      /* One inf or NaN anywhere is found, by both paths, with both scales. */
      size_t pos[5] = {0, n - 1, n / 2, n > 3 ? n - 3 : 0, n / 3}; /* n - 3: SIMD tail */
      for (int p = 0; p < 5; p++)
        for (int k = 0; k < 2; k++) {
          memcpy(gr, g, n * esz(dt));
          memcpy(gf, g, n * esz(dt));
          amp__store_f32(gr, dt, pos[p], k ? NAN : -INFINITY);
          amp__store_f32(gf, dt, pos[p], k ? NAN : -INFINITY);
          float sc = k ? 1.0f : 0.5f;
          fr = ff = -1;
          amp_vec_unscale_check(ref_ctx, dt, n, gr, sc, &fr);
          amp_vec_unscale_check(fast2, dt, n, gf, sc, &ff);
          CHECK(fr == 1 && ff == 1, "missed %s at %zu dt=%d n=%zu", k ? "NaN" : "inf", pos[p], dt,
                n);
          CHECK(same_bits(gr, gf, dt, n), "unscale with inf fast != ref");
        }
      /* Finite values that overflow when unscaled (or rounded to dt) count. */
      memcpy(gf, g, n * esz(dt));
      amp__store_f32(gf, dt, n / 3, 1e4f);
      amp_vec_unscale_check(fast1, dt, n, gf, dt == AMP_F16 ? 8.0f : 1e35f, &ff);
      CHECK(ff == 1, "overflow on unscale not flagged dt=%d", dt);
      free(g), free(gr), free(gf);
    }
}

/* The largest finite values are not flagged; past them (after the multiply
 * and rounding to dt) they are. */
static void test_unscale_edges(void) {
  for (int d = 0; d < 3; d++) {
    amp_dtype dt = DTS[d];
    const float big = dt == AMP_F16 ? 65504.0f : dt == AMP_BF16 ? 0x1.fep127f : 0x1.fffffep127f;
    uint16_t g16[40];
    float g32[40];
    void *g = dt == AMP_F32 ? (void *)g32 : (void *)g16;
    for (int path = 0; path < 2; path++) {
      amp_ctx *c = path ? fast1 : ref_ctx;
      for (int i = 0; i < 40; i++) amp__store_f32(g, dt, (size_t)i, i % 3 ? big : -big);
      int f = -1;
      amp_vec_unscale_check(c, dt, 40, g, 1.0f, &f);
      CHECK(f == 0, "max finite flagged dt=%d path=%d", dt, path);
      amp_vec_unscale_check(c, dt, 40, g, 0.5f, &f);
      CHECK(f == 0, "half max flagged dt=%d path=%d", dt, path);
      amp_vec_unscale_check(c, dt, 40, g, 2.0f, &f); /* back to max: finite */
      CHECK(f == 0, "max again flagged dt=%d path=%d", dt, path);
      amp_vec_unscale_check(c, dt, 40, g, 1.00390625f, &f); /* past max in every dtype */
      CHECK(f == 1, "overflow missed dt=%d path=%d", dt, path);
    }
  }
}

static void test_reductions(void) {
  for (int d = 0; d < 3; d++)
    for (int s = 0; s < 5; s++) {
      amp_dtype dt = DTS[d];
      size_t n = SIZES[s];
      void *x = fill(dt, n, -1, 3);
      for (int off = 0; off < 2; off++) {
        const void *xo = (const char *)x + (size_t)off * esz(dt);
        float sr, s1, s2, mr, m1, m2;
        amp_vec_sum(ref_ctx, dt, n, xo, &sr);
        amp_vec_sum(fast1, dt, n, xo, &s1);
        amp_vec_sum(fast2, dt, n, xo, &s2);
        amp_vec_max(ref_ctx, dt, n, xo, &mr);
        amp_vec_max(fast1, dt, n, xo, &m1);
        amp_vec_max(fast2, dt, n, xo, &m2);
        CHECK(memcmp(&sr, &s1, 4) == 0 && memcmp(&sr, &s2, 4) == 0,
              "sum dt=%d n=%zu: ref %a fast %a 2thr %a", dt, n, sr, s1, s2);
        CHECK(memcmp(&mr, &m1, 4) == 0 && memcmp(&mr, &m2, 4) == 0, "max bits dt=%d n=%zu", dt, n);
        double ex = 0, ab = 0, mx = -INFINITY;
        for (size_t i = 0; i < n; i++) {
          double v = ld(xo, dt, i);
          ex += v, ab += fabs(v), mx = v > mx ? v : mx;
        }
        CHECK(fabs(sr - ex) <= (double)n * 0x1p-24 * ab, "sum dt=%d n=%zu: %.9g vs %.9g", dt, n, sr,
              ex);
        CHECK(mr == mx, "max dt=%d n=%zu: %g vs %g", dt, n, mr, mx);
      }
      /* NaN anywhere makes max (and sum) NaN. */
      if (n > 2) {
        amp__store_f32(x, dt, n - 2, NAN);
        float m, sm;
        amp_vec_max(fast2, dt, n, x, &m);
        amp_vec_sum(fast2, dt, n, x, &sm);
        CHECK(isnan(m) && isnan(sm), "NaN must propagate dt=%d n=%zu", dt, n);
        amp_vec_max(ref_ctx, dt, n, x, &m);
        CHECK(isnan(m), "NaN must propagate (ref)");
      }
      free(x);
    }
  /* All -inf, and a single element. */
  float ninf[3] = {-INFINITY, -INFINITY, -INFINITY}, m, one = 2.5f;
  amp_vec_max(fast1, AMP_F32, 3, ninf, &m);
  CHECK(m == -INFINITY, "max of -inf");
  amp_vec_sum(NULL, AMP_F32, 1, &one, &m);
  CHECK(m == 2.5f, "sum of one element, NULL ctx");
}

static void test_errors(void) {
  amp_ctx *c = amp_ctx_create(NULL);
  float x[4] = {0}, y[4], out;
  int f;
  CHECK(amp_vec_add(c, AMP_F32, 0, x, x, y) == AMP_ERR_INVALID_ARG, "n == 0");
  CHECK(strstr(amp_ctx_error(c), "amp_vec_add") != NULL, "message names the function: %s",
        amp_ctx_error(c));
  amp_ctx_clear_error(c);
  CHECK(amp_vec_mul(c, AMP_F32, 4, x, NULL, y) == AMP_ERR_INVALID_ARG, "NULL b");
  CHECK(strstr(amp_ctx_error(c), "amp_vec_mul") != NULL, "message: %s", amp_ctx_error(c));
  amp_ctx_clear_error(c);
  CHECK(amp_vec_relu(c, AMP_I32, 4, x, y) == AMP_ERR_UNSUPPORTED, "I32");
  CHECK(strstr(amp_ctx_error(c), "amp_vec_relu") != NULL, "message: %s", amp_ctx_error(c));
  amp_ctx_clear_error(c);
  CHECK(amp_vec_unscale_check(c, AMP_F32, 4, x, 1.0f, NULL) == AMP_ERR_INVALID_ARG, "NULL found");
  CHECK(amp_vec_unscale_check(NULL, AMP_F16, 0, x, 1.0f, &f) == AMP_ERR_INVALID_ARG, "NULL ctx");
  CHECK(amp_vec_sum(NULL, AMP_F32, 4, NULL, &out) == AMP_ERR_INVALID_ARG, "sum NULL x");
  CHECK(amp_vec_max(NULL, AMP_E4M3, 4, x, &out) == AMP_ERR_UNSUPPORTED, "max E4M3");
  CHECK(amp_vec_scale(NULL, AMP_F32, 4, 2.0f, x, NULL) == AMP_ERR_INVALID_ARG, "scale NULL y");
  CHECK(amp_vec_gelu(NULL, AMP_F32, 0, x, y) == AMP_ERR_INVALID_ARG, "gelu n == 0");
  CHECK(amp_vec_gelu_backward(NULL, AMP_U8, 4, x, x, y) == AMP_ERR_UNSUPPORTED, "gelu_bwd U8");
  amp_ctx_free(c);
}

int main(void) {
  ref_ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  CHECK(amp__ctx_set_kernels(ref_ctx, &amp__kernels_scalar), "the scalar kernel table");
  fast1 = amp_ctx_create(&(amp_ctx_params){.threads = 1});
  fast2 = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  test_ops();
  test_specials();
  test_unscale();
  test_unscale_edges();
  test_reductions();
  test_errors();
  amp_ctx_free(ref_ctx), amp_ctx_free(fast1), amp_ctx_free(fast2);
  TEST_MAIN_END();
}
