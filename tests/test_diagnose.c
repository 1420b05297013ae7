/* What `ampc diagnose` computes with: the formats' ranges
 * (amp_dtype_range_of), the classification of a value (diag_class) at the
 * exact boundaries where round-to-nearest-even ties, checked against the
 * conversions themselves; the log2 bins; the histogram counts and the
 * loss-scale recommendation against hand-computed values; and the module
 * observer and child accessors the tool walks a model with. */
#include "check.h"
#include "diag_stats.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static float p2(int e) { return ldexpf(1.0f, e); }

static void test_ranges(void) {
  static const struct {
    amp_dtype dt;
    float min_sub, min_norm, max, zero_max, normal_min_round, overflow_min;
  } want[] = {
      {AMP_F16, 0x1p-24f, 0x1p-14f, 65504.0f, 0x1p-25f, 0x1p-14f - 0x1p-25f, 65520.0f},
      {AMP_BF16, 0x1p-133f, 0x1p-126f, 0x1.fep127f, 0x1p-134f, 0x1p-126f - 0x1p-134f, 0x1.ffp127f},
      {AMP_E4M3, 0x1p-9f, 0x1p-6f, 448.0f, 0x1p-10f, 0x1p-6f - 0x1p-10f, 0x1.d00002p8f},
      {AMP_E5M2, 0x1p-16f, 0x1p-14f, 57344.0f, 0x1p-17f, 0x1p-14f - 0x1p-17f, 61440.0f},
      {AMP_F32, 0x1p-149f, 0x1p-126f, FLT_MAX, 0.0f, 0x1p-126f, INFINITY},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    amp_dtype_range r;
    CHECK(amp_dtype_range_of(want[i].dt, &r) == AMP_OK, "%s", amp_dtype_name(want[i].dt));
    const char *n = amp_dtype_name(want[i].dt);
    CHECK(r.min_subnormal == want[i].min_sub, "%s min_subnormal %a", n, (double)r.min_subnormal);
    CHECK(r.min_normal == want[i].min_norm, "%s min_normal %a", n, (double)r.min_normal);
    CHECK(r.max == want[i].max, "%s max %a", n, (double)r.max);
    CHECK(r.zero_max == want[i].zero_max, "%s zero_max %a", n, (double)r.zero_max);
    CHECK(r.normal_min_round == want[i].normal_min_round, "%s normal_min_round %a", n,
          (double)r.normal_min_round);
    CHECK(r.overflow_min == want[i].overflow_min, "%s overflow_min %a", n, (double)r.overflow_min);
  }
  amp_dtype_range r;
  CHECK(amp_dtype_range_of(AMP_I32, &r) == AMP_ERR_UNSUPPORTED, "i32 has no range");
  CHECK(amp_dtype_range_of(AMP_U8, &r) == AMP_ERR_UNSUPPORTED, "u8 has no range");
  CHECK(amp_dtype_range_of(AMP_F16, NULL) == AMP_ERR_UNSUPPORTED, "NULL out");
}

/* The class of ax as the conversion itself rounds it. */
static int converted_class(amp_dtype dt, const amp_dtype_range *r, float ax) {
  unsigned char buf[4];
  float back;
  amp_convert(buf, dt, &ax, AMP_F32, 1);
  amp_convert(&back, AMP_F32, buf, dt, 1);
  if (back == 0) return DIAG_ZERO;
  if (isinf(back) || isnan(back)) return DIAG_OVERFLOW;
  return back < r->min_normal ? DIAG_SUBNORMAL : DIAG_NORMAL;
}

/* Every boundary, one F32 ulp either side, and a sweep over the range:
 * diag_class agrees with the conversion. */
static void test_class_vs_conversion(void) {
  amp_dtype_range rs[DIAG_NFMT];
  CHECK(diag_ranges(rs) == 0, "ranges");
  for (int f = 0; f < DIAG_NFMT; f++) {
    const amp_dtype_range *r = &rs[f];
    amp_dtype dt = diag_formats[f];
    float edges[] = {r->min_subnormal,    r->min_normal,   r->max,         r->zero_max,
                     r->normal_min_round, r->overflow_min, 3 * r->zero_max};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
      float xs[3] = {nextafterf(edges[i], 0), edges[i], nextafterf(edges[i], INFINITY)};
      for (int k = 0; k < 3; k++)
        CHECK(diag_class(r, xs[k]) == converted_class(dt, r, xs[k]), "%s: %a: class %d, convert %d",
              amp_dtype_name(dt), (double)xs[k], diag_class(r, xs[k]),
              converted_class(dt, r, xs[k]));
    }
    uint32_t s = 12345u;
    int bad = 0;
    for (int i = 0; i < 200000; i++) { /* log-uniform over 2^-140 .. 2^130 */
      s = s * 1664525u + 1013904223u;
      float ax = ldexpf(1.0f + (float)(s >> 9) / 8388608.0f, (int)(s % 270) - 140);
      if (isinf(ax)) continue;
      bad += diag_class(r, ax) != converted_class(dt, r, ax);
    }
    CHECK(bad == 0, "%s: %d of 200000 random magnitudes classified unlike the conversion",
          amp_dtype_name(dt), bad);
    CHECK(diag_class(r, INFINITY) == DIAG_OVERFLOW, "inf overflows");
  }
  /* The ties, by hand. F16: 2^-25 is half the smallest subnormal: the tie
   * goes to the even neighbour, zero. 2^-14 - 2^-25 lies halfway between
   * the largest subnormal and 2^-14, whose mantissa is even: normal. 65520
   * is halfway between 65504 (odd mantissa) and 2^16 (inf): overflow. E4M3:
   * 464 is halfway between 448 (even) and 480 (the NaN code): 448. */
  const amp_dtype_range *h = &rs[0], *e4 = &rs[2], *e5 = &rs[3], *b = &rs[1];
  CHECK(diag_class(h, p2(-25)) == DIAG_ZERO, "f16 2^-25");
  CHECK(diag_class(h, nextafterf(p2(-25), 1)) == DIAG_SUBNORMAL, "f16 2^-25+");
  CHECK(diag_class(h, p2(-24)) == DIAG_SUBNORMAL, "f16 2^-24");
  CHECK(diag_class(h, p2(-14) - p2(-25)) == DIAG_NORMAL, "f16 tie below 2^-14");
  CHECK(diag_class(h, nextafterf(p2(-14) - p2(-25), 0)) == DIAG_SUBNORMAL, "f16 below the tie");
  CHECK(diag_class(h, 65504) == DIAG_NORMAL, "f16 max");
  CHECK(diag_class(h, nextafterf(65520, 0)) == DIAG_NORMAL, "f16 below 65520");
  CHECK(diag_class(h, 65520) == DIAG_OVERFLOW, "f16 65520");
  CHECK(diag_class(e4, 464) == DIAG_NORMAL, "e4m3 464 rounds to 448");
  CHECK(diag_class(e4, nextafterf(464, 1000)) == DIAG_OVERFLOW, "e4m3 past 464");
  CHECK(diag_class(e4, p2(-10)) == DIAG_ZERO, "e4m3 2^-10");
  CHECK(diag_class(e5, 61440) == DIAG_OVERFLOW, "e5m2 61440");
  CHECK(diag_class(e5, p2(-17)) == DIAG_ZERO, "e5m2 2^-17");
  CHECK(diag_class(b, p2(-134)) == DIAG_ZERO && diag_class(b, p2(-133)) == DIAG_SUBNORMAL,
        "bf16 2^-134 / 2^-133");
}

static void test_log2(void) {
  CHECK(diag_log2_floor(1) == 0, "1");
  CHECK(diag_log2_floor(1.999f) == 0, "1.999");
  CHECK(diag_log2_floor(2) == 1, "2");
  CHECK(diag_log2_floor(0.75f) == -1, "0.75");
  CHECK(diag_log2_floor(p2(-126)) == -126, "2^-126");
  CHECK(diag_log2_floor(nextafterf(p2(-126), 0)) == -127, "largest F32 subnormal");
  CHECK(diag_log2_floor(p2(-149)) == -149, "2^-149");
  CHECK(diag_log2_floor(3 * p2(-149)) == -148, "3*2^-149");
  CHECK(diag_log2_floor(FLT_MAX) == 127, "FLT_MAX");
}

/* Counts of a hand-made tensor, by hand. */
static void test_hist(void) {
  amp_dtype_range rs[DIAG_NFMT];
  diag_ranges(rs);
  static diag_hist h;
  diag_hist_init(&h);
  const float x[] = {0.0f,     -0.0f,    1.0f, -3.0f,    0x1p-25f,
                     0x1p-24f, 70000.0f, NAN,  INFINITY, 0x1p-30f};
  diag_hist_add(&h, rs, x, 10, 4.0); /* held values, the loss scale 4 */
  CHECK(h.n == 10 && h.zeros == 2 && h.nans == 1 && diag_nonzero(&h) == 7, "n %lld zeros %lld",
        (long long)h.n, (long long)h.zeros);
  const int bins[] = {0, 1, -25, -24, 16, DIAG_EMAX, -30};
  for (int i = 0; i < 7; i++) {
    CHECK(h.bins[bins[i] - DIAG_EMIN] == 1, "bin %d", bins[i]);
    int ub = bins[i] == DIAG_EMAX ? DIAG_EMAX : bins[i] - 2; /* |x| / 4 */
    CHECK(h.ubins[ub - DIAG_EMIN] == 1, "unscaled bin %d", ub);
  }
  /* F16: 2^-25 (the tie) and 2^-30 flush; 2^-24 is subnormal; 1 and 3
   * normal; 70000 and inf overflow. */
  CHECK(h.cls[0][DIAG_ZERO] == 2 && h.cls[0][DIAG_SUBNORMAL] == 1 && h.cls[0][DIAG_NORMAL] == 2 &&
            h.cls[0][DIAG_OVERFLOW] == 2,
        "f16 classes %lld %lld %lld %lld", (long long)h.cls[0][0], (long long)h.cls[0][1],
        (long long)h.cls[0][2], (long long)h.cls[0][3]);
  CHECK(fabs(diag_frac(&h, 0, DIAG_ZERO) - 2.0 / 7.0) < 1e-15, "zero fraction");
  /* BF16 holds all but inf (overflow) as normals; E4M3 flushes 2^-24 too
   * (below 2^-10) and overflows 70000. */
  CHECK(h.cls[1][DIAG_NORMAL] == 6 && h.cls[1][DIAG_OVERFLOW] == 1, "bf16");
  CHECK(h.cls[2][DIAG_ZERO] == 3 && h.cls[2][DIAG_OVERFLOW] == 2, "e4m3");
  CHECK(h.max_abs == INFINITY && h.min_nonzero == 0x1p-30f, "max/min");
  /* A scale that is not a power of two: the unscaled bins of 3/3 and 1/3. */
  static diag_hist g;
  diag_hist_init(&g);
  const float y[] = {3.0f, 1.0f};
  diag_hist_add(&g, rs, y, 2, 3.0);
  CHECK(g.ubins[0 - DIAG_EMIN] == 1 && g.ubins[-2 - DIAG_EMIN] == 1, "scale 3");
}

static void test_recommend(void) {
  amp_dtype_range rs[DIAG_NFMT];
  diag_ranges(rs);
  static diag_hist h;
  diag_hist_init(&h);
  float x[20];
  for (int i = 0; i < 20; i++) x[i] = i < 10 ? 0x1p-30f : 0x1p-3f;
  diag_hist_add(&h, rs, x, 20, 1.0);
  const diag_hist *hs[1] = {&h};
  diag_rec r;
  /* F16: max|g| = 1/8, room 65504/8 = 8188: 2^15 * 1/8 = 4096 <= 8188 <
   * 2^16 * 1/8. At 1, half the values (2^-30) flush; at 2^15 they are
   * 2^-15: subnormal, not flushed. */
  diag_recommend(hs, 1, &rs[0], &r);
  CHECK(r.needed && r.scale == 32768, "f16 scale %g", r.scale);
  CHECK(r.flush_1 == 0.5 && r.flush_s == 0 && r.under_s == 0.5, "f16 %g %g %g", r.flush_1,
        r.flush_s, r.under_s);
  diag_recommend(hs, 1, &rs[1], &r); /* BF16: nothing flushes at 1 */
  CHECK(!r.needed && r.scale == 1 && r.flush_1 == 0, "bf16 %g", r.scale);
  /* E4M3: max 448, room 56: 2^8/8 = 32 <= 56; 2^-30 * 2^8 = 2^-22 still
   * flushes (<= 2^-10). */
  diag_recommend(hs, 1, &rs[2], &r);
  CHECK(r.needed && r.scale == 256 && r.flush_s == 0.5, "e4m3 %g %g", r.scale, r.flush_s);
  /* Largest value too large for F16 at scale 1: a scale below 1. */
  static diag_hist big;
  diag_hist_init(&big);
  float z[2] = {1e5f, 1.0f};
  diag_hist_add(&big, rs, z, 2, 1.0);
  const diag_hist *bs[1] = {&big};
  diag_recommend(bs, 1, &rs[0], &r);
  CHECK(r.needed && r.scale == 0.0625, "f16 big %g", r.scale); /* 1e5/16 = 6250 <= 8188 */
}

typedef struct seen {
  const amp_module *m[16];
  const amp_tensor *out[16];
  int n;
} seen;

static void record(void *user, const amp_module *m, const amp_tensor *out) {
  seen *s = user;
  if (s->n < 16) {
    s->m[s->n] = m;
    s->out[s->n] = out;
  }
  s->n++;
}

/* The observer sees every module's output, innermost first; the outputs'
 * gradients are there after backward; the bits do not change. */
static void test_observer(void) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 1});
  amp_rng rng;
  amp_rng_seed(&rng, 3);
  amp_module *layers[3] = {amp_nn_linear(ctx, &rng, 5, 7, 1), amp_nn_relu(ctx),
                           amp_nn_linear(ctx, &rng, 7, 3, 1)};
  amp_module *mlp = amp_nn_sequential(ctx, 3, layers);
  CHECK(amp_module_child_count(mlp) == 3 && amp_module_child_count(layers[0]) == 0, "children");
  const char *name = NULL;
  CHECK(amp_module_child(mlp, 2, &name) == layers[2] && strcmp(name, "2") == 0, "child 2");
  CHECK(amp_module_child(mlp, 3, &name) == NULL && amp_module_child(NULL, 0, NULL) == NULL,
        "out of range");
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 2, (int64_t[]){4, 5});
  amp_tensor *y = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_I32, 1, (int64_t[]){4});
  for (int i = 0; i < 20; i++) ((float *)x->data)[i] = (float)(i % 7) - 3.0f;
  for (int i = 0; i < 4; i++) ((int32_t *)y->data)[i] = i % 3;
  float loss_v[2], grad0[2];
  for (int pass = 0; pass < 2; pass++) {
    seen s = {{0}, {0}, 0};
    amp_ctx_set_module_observer(ctx, pass ? record : NULL, &s);
    amp_tensor *loss = amp_cross_entropy(ctx, amp_module_forward(ctx, mlp, x), y);
    amp_ctx_set_module_observer(ctx, NULL, NULL);
    CHECK(amp_backward(ctx, loss) == AMP_OK, "backward");
    loss_v[pass] = *(float *)loss->data;
    grad0[pass] = ((float *)amp_module_param(mlp, 0, NULL)->grad->data)[0];
    if (pass) {
      CHECK(s.n == 4, "4 outputs seen, not %d", s.n);
      for (int i = 0; i < 3; i++)
        CHECK(s.m[i] == layers[i] && s.out[i]->grad != NULL, "layer %d and its gradient", i);
      CHECK(s.m[3] == mlp && s.out[3] == s.out[2], "the Sequential last, with its last output");
    }
    for (int i = 0; i < amp_module_param_count(mlp); i++)
      amp_tensor_zero_grad(amp_module_param(mlp, i, NULL));
    amp_ctx_step_reset(ctx);
  }
  CHECK(memcmp(&loss_v[0], &loss_v[1], sizeof(float)) == 0 &&
            memcmp(&grad0[0], &grad0[1], sizeof(float)) == 0,
        "the same bits with the observer");
  amp_ctx_free(ctx);
}

int main(void) {
  test_ranges();
  test_class_vs_conversion();
  test_log2();
  test_hist();
  test_recommend();
  test_observer();
  TEST_MAIN_END();
}
