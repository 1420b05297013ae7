/* Row kernels: row/column sums, softmax and log-softmax against FP64, fast
 * path against the scalar reference, thread invariance, in place, large
 * inputs and argument errors. */
#include "check.h"

#include "ampc.h"
#include "core/internal.h"
#include "dtype/dtype_inline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const amp_dtype DTS[3] = {AMP_F32, AMP_F16, AMP_BF16};
static const int64_t SHAPES[][2] = {{1, 1}, {1, 7}, {3, 33}, {7, 257}, {5, 40000}, {1000, 33}};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])

static amp_ctx *ref_ctx, *fast1, *fast2;

static double unit(amp_dtype dt) {
  return dt == AMP_F16 ? 0x1p-11 : dt == AMP_BF16 ? 0x1p-8 : 0x1p-24;
}
static double tiny(amp_dtype dt) { return dt == AMP_F16 ? 0x1p-24 : 0x1p-126; }
static size_t esz(amp_dtype dt) { return amp_dtype_size(dt); }

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1p-53;
}

static void *fill(amp_dtype dt, size_t n, double lo, double hi) {
  void *p = malloc(n * esz(dt));
  for (size_t i = 0; i < n; i++) amp__store_f32(p, dt, i, (float)(lo + (hi - lo) * urand()));
  return p;
}

static double ld(const void *p, amp_dtype dt, size_t i) { return amp__load_f32(p, dt, i); }

static void test_sums(void) {
  for (int d = 0; d < 3; d++)
    for (size_t s = 0; s < NSHAPES; s++) {
      amp_dtype dt = DTS[d];
      int64_t R = SHAPES[s][0], C = SHAPES[s][1];
      void *x = fill(dt, (size_t)(R * C), -1, 2);
      float *rr = malloc((size_t)R * 4), *r1 = malloc((size_t)R * 4), *r2 = malloc((size_t)R * 4);
      CHECK(amp_sum_rows(ref_ctx, dt, R, C, x, rr) == AMP_OK, "sum_rows ref");
      CHECK(amp_sum_rows(fast1, dt, R, C, x, r1) == AMP_OK, "sum_rows fast");
      CHECK(amp_sum_rows(fast2, dt, R, C, x, r2) == AMP_OK, "sum_rows 2 threads");
      CHECK(!memcmp(rr, r1, (size_t)R * 4) && !memcmp(rr, r2, (size_t)R * 4),
            "sum_rows bits dt=%d %lldx%lld", dt, (long long)R, (long long)C);
      for (int64_t r = 0; r < R; r++) {
        double ex = 0, ab = 0;
        for (int64_t c = 0; c < C; c++) {
          double v = ld(x, dt, (size_t)(r * C + c));
          ex += v, ab += fabs(v);
        }
        float whole;
        amp_vec_sum(fast2, dt, (size_t)C, (const char *)x + (size_t)(r * C) * esz(dt), &whole);
        CHECK(whole == rr[r], "sum_rows row %lld == amp_vec_sum of the row", (long long)r);
        CHECK(fabs(rr[r] - ex) <= (double)C * 0x1p-24 * ab, "sum_rows dt=%d row %lld", dt,
              (long long)r);
      }
      /* Column sums, plain and accumulating into existing values. */
      float *cr = malloc((size_t)C * 4), *c1 = malloc((size_t)C * 4), *c2 = malloc((size_t)C * 4);
      for (int64_t c = 0; c < C; c++) cr[c] = c1[c] = c2[c] = (float)c;
      CHECK(amp_sum_cols(ref_ctx, dt, R, C, x, cr, 1) == AMP_OK, "sum_cols ref");
      CHECK(amp_sum_cols(fast1, dt, R, C, x, c1, 1) == AMP_OK, "sum_cols fast");
      CHECK(amp_sum_cols(fast2, dt, R, C, x, c2, 1) == AMP_OK, "sum_cols 2 threads");
      CHECK(!memcmp(cr, c1, (size_t)C * 4) && !memcmp(cr, c2, (size_t)C * 4),
            "sum_cols bits dt=%d %lldx%lld", dt, (long long)R, (long long)C);
      size_t bad = 0;
      for (int64_t c = 0; c < C; c++) {
        double ex = (double)c, ab = (double)c;
        for (int64_t r = 0; r < R; r++) {
          double v = ld(x, dt, (size_t)(r * C + c));
          ex += v, ab += fabs(v);
        }
        bad += !(fabs(cr[c] - ex) <= (double)(R + 1) * 0x1p-24 * ab);
      }
      CHECK(bad == 0, "sum_cols accumulate dt=%d: %zu off", dt, bad);
      amp_sum_cols(fast2, dt, R, C, x, c1, 0);
      for (int64_t c = 0; c < C; c++) c2[c] = 0;
      amp_sum_cols(fast2, dt, R, C, x, c2, 1);
      CHECK(!memcmp(c1, c2, (size_t)C * 4), "sum_cols without accumulate overwrites");
      free(x), free(rr), free(r1), free(r2), free(cr), free(c1), free(c2);
    }
}

/* Softmax/log-softmax of every row against FP64; x in [lo, lo + span). */
static void check_softmax(amp_dtype dt, int64_t R, int64_t C, double lo, double span) {
  size_t n = (size_t)(R * C), bytes = n * esz(dt);
  void *x = fill(dt, n, lo, lo + span);
  void *yr = malloc(bytes), *y1 = malloc(bytes), *y2 = malloc(bytes);
  void *lr = malloc(bytes), *l1 = malloc(bytes), *ip = malloc(bytes);
  CHECK(amp_softmax_rows(ref_ctx, dt, R, C, x, yr) == AMP_OK, "softmax ref");
  CHECK(amp_softmax_rows(fast1, dt, R, C, x, y1) == AMP_OK, "softmax fast");
  CHECK(amp_softmax_rows(fast2, dt, R, C, x, y2) == AMP_OK, "softmax 2 threads");
  CHECK(!memcmp(yr, y1, bytes) && !memcmp(yr, y2, bytes), "softmax bits dt=%d", dt);
  CHECK(amp_log_softmax_rows(ref_ctx, dt, R, C, x, lr) == AMP_OK, "log_softmax ref");
  CHECK(amp_log_softmax_rows(fast2, dt, R, C, x, l1) == AMP_OK, "log_softmax fast");
  CHECK(!memcmp(lr, l1, bytes), "log_softmax bits dt=%d", dt);
  memcpy(ip, x, bytes);
  amp_softmax_rows(fast2, dt, R, C, ip, ip);
  CHECK(!memcmp(ip, yr, bytes), "softmax in place");
  memcpy(ip, x, bytes);
  amp_log_softmax_rows(fast2, dt, R, C, ip, ip);
  CHECK(!memcmp(ip, lr, bytes), "log_softmax in place");
  /* F32 error: exp of (x - max), rounded, and a C-term sum; then one
   * rounding to dt. */
  double e32 = (double)(C + 64) * 0x1p-24 * (1 + span);
  size_t bad = 0;
  for (int64_t r = 0; r < R; r++) {
    const size_t o = (size_t)(r * C);
    double m = -INFINITY, s = 0, tot = 0;
    for (int64_t c = 0; c < C; c++) m = fmax(m, ld(x, dt, o + (size_t)c));
    for (int64_t c = 0; c < C; c++) s += exp(ld(x, dt, o + (size_t)c) - m);
    for (int64_t c = 0; c < C; c++) {
      double v = ld(x, dt, o + (size_t)c), p = exp(v - m) / s, lp = v - m - log(s);
      double y = ld(yr, dt, o + (size_t)c), l = ld(lr, dt, o + (size_t)c);
      tot += y;
      bad += !(fabs(y - p) <= (unit(dt) + e32) * p + tiny(dt));
      bad += !(fabs(l - lp) <= unit(dt) * fabs(lp) + e32);
      bad += !isfinite(y) || !isfinite(l);
    }
    bad += !(fabs(tot - 1) <= unit(dt) + e32);
  }
  CHECK(bad == 0, "softmax dt=%d %lldx%lld in [%g, %g): %zu off", dt, (long long)R, (long long)C,
        lo, lo + span, bad);
  free(x), free(yr), free(y1), free(y2), free(lr), free(l1), free(ip);
}

static void test_softmax(void) {
  for (int d = 0; d < 3; d++) {
    check_softmax(DTS[d], 1, 1, -1, 2);
    check_softmax(DTS[d], 3, 7, -5, 10);
    check_softmax(DTS[d], 33, 257, -8, 16);
    check_softmax(DTS[d], 2, 5000, -3, 6);
    check_softmax(DTS[d], 4, 100, 1e4, 20); /* exp(1e4) would overflow */
    check_softmax(DTS[d], 4, 100, -1e4, 20);
  }
  /* A row of -inf except one: a one-hot result. */
  float x[4] = {-INFINITY, 3.0f, -INFINITY, -INFINITY}, y[4];
  amp_softmax_rows(NULL, AMP_F32, 1, 4, x, y);
  CHECK(y[0] == 0 && y[1] == 1 && y[2] == 0 && y[3] == 0, "one-hot softmax");
}

static void test_errors(void) {
  amp_ctx *c = amp_ctx_create(NULL);
  float x[4] = {0}, y[4];
  CHECK(amp_sum_rows(c, AMP_F32, 0, 4, x, y) == AMP_ERR_INVALID_ARG, "rows 0");
  CHECK(strstr(amp_ctx_error(c), "amp_sum_rows") != NULL, "message: %s", amp_ctx_error(c));
  amp_ctx_clear_error(c);
  CHECK(amp_sum_cols(c, AMP_F32, 4, -1, x, y, 0) == AMP_ERR_INVALID_ARG, "cols < 0");
  CHECK(strstr(amp_ctx_error(c), "amp_sum_cols") != NULL, "message: %s", amp_ctx_error(c));
  amp_ctx_clear_error(c);
  CHECK(amp_softmax_rows(c, AMP_F32, 1, 4, NULL, y) == AMP_ERR_INVALID_ARG, "NULL x");
  CHECK(strstr(amp_ctx_error(c), "amp_softmax_rows") != NULL, "message: %s", amp_ctx_error(c));
  amp_ctx_clear_error(c);
  CHECK(amp_log_softmax_rows(c, AMP_I32, 1, 4, x, y) == AMP_ERR_UNSUPPORTED, "I32");
  CHECK(strstr(amp_ctx_error(c), "amp_log_softmax_rows") != NULL, "message: %s", amp_ctx_error(c));
  CHECK(amp_sum_rows(NULL, AMP_F16, 1, 4, x, NULL) == AMP_ERR_INVALID_ARG, "NULL out, NULL ctx");
  amp_ctx_free(c);
}

int main(void) {
  ref_ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  CHECK(amp__ctx_set_kernels(ref_ctx, &amp__kernels_scalar), "the scalar kernel table");
  fast1 = amp_ctx_create(&(amp_ctx_params){.threads = 1});
  fast2 = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  test_sums();
  test_softmax();
  test_errors();
  amp_ctx_free(ref_ctx), amp_ctx_free(fast1), amp_ctx_free(fast2);
  TEST_MAIN_END();
}
