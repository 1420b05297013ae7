/* ampc's own tanh and the kernels built on it (tanh, GELU-tanh and their
 * backward; kernels/tanh_internal.h), and the layer norm and masked softmax
 * row kernels (kernels/norm_internal.h): the scalar reference's accuracy
 * against double, every SIMD table against the scalar reference bit for bit
 * (odd lengths, NaN, ±inf, ±0, subnormals), and 1 against 2 threads. */
#include "check.h"

#include "ampc.h"
#include "core/internal.h"
#include "core/kernels.h"
#include "kernels/kernels_internal.h"
#include "kernels/norm_internal.h"
#include "kernels/tanh_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The measured maximum error of amp__tanh_ref over every F32 (1.33 ulp, at
 * x = 0x1.41b1cap-1, just above the 0.625 switch), with a little margin. */
#define AMP__TANH_MAX_ULP 1.34

static const amp_dtype DTS[3] = {AMP_F32, AMP_F16, AMP_BF16};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}
static float urand(float lo, float hi) { return lo + (hi - lo) * (float)(rnd32() >> 8) * 0x1p-24f; }

/* Error of got against want in units of the last place of want in F32. */
static double ulp_err(float got, double want) {
  double aw = fabs(want);
  int e;
  frexp(aw, &e);
  double u = aw < 0x1p-126 ? 0x1p-149 : ldexp(1.0, e - 24);
  return fabs((double)got - want) / u;
}

static int same_bits(float a, float b) { return amp__f32_bits(a) == amp__f32_bits(b); }

static void test_tanh_accuracy(void) {
  double mx = 0;
  float at = 0;
  /* a strided sweep of every non-negative F32, and every F32 in [0.5, 1]
   * (the two ranges meet at 0.625, where the error peaks) */
  for (uint64_t b = 0; b <= 0x7f800000u; b += 997) {
    float x = amp__bits_f32((uint32_t)b);
    double e = ulp_err(amp__tanh_ref(x), tanh((double)x));
    if (e > mx) mx = e, at = x;
  }
  for (uint32_t b = 0x3f000000u; b <= 0x3f800000u; b++) {
    float x = amp__bits_f32(b);
    double e = ulp_err(amp__tanh_ref(x), tanh((double)x));
    if (e > mx) mx = e, at = x;
  }
  printf("tanh: max error %.3f ulp (at %a) against tanh in double\n", mx, (double)at);
  CHECK(mx <= AMP__TANH_MAX_ULP, "tanh error %.3f ulp at %a", mx, (double)at);
  for (uint32_t b = 0; b < 0x7f800000u; b += 0x10001u) { /* odd: tanh(-x) = -tanh(x) */
    float x = amp__bits_f32(b);
    CHECK(amp__f32_bits(amp__tanh_ref(-x)) == (amp__f32_bits(amp__tanh_ref(x)) | 0x80000000u),
          "tanh(-%a)", (double)x);
  }
  CHECK(amp__f32_bits(amp__tanh_ref(-0.0f)) == 0x80000000u, "tanh(-0) = -0");
  CHECK(amp__f32_bits(amp__tanh_ref(0.0f)) == 0, "tanh(+0) = +0");
  CHECK(amp__tanh_ref(INFINITY) == 1.0f && amp__tanh_ref(-INFINITY) == -1.0f, "tanh(±inf)");
  CHECK(amp__tanh_ref(9.1f) == 1.0f && amp__tanh_ref(-1e30f) == -1.0f, "flush to ±1");
  CHECK(amp__tanh_ref(0x1p-140f) == 0x1p-140f, "subnormal: tanh(x) = x");
  float nan = amp__bits_f32(0x7f800123u); /* signalling, with a payload */
  CHECK(amp__f32_bits(amp__tanh_ref(nan)) == 0x7fc00123u, "NaN quieted, payload kept");
  /* GELU against the tanh formula in double */
  double ge = 0, de = 0;
  for (int i = 0; i < 200000; i++) {
    float x = urand(-8.0f, 8.0f);
    double xd = x, t = tanh(0.7978845608028654 * (xd + 0.044715 * xd * xd * xd));
    double g = 0.5 * xd * (1 + t);
    double d =
        0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * xd * xd);
    /* t near -1 holds an absolute error of about 2^-25, which x/2·(1 + t)
     * and 1 − t² carry over: errors are relative to |gelu| + |x|/2 and to
     * max(|gelu'|, 1) */
    ge = fmax(ge, fabs(amp__gelu_ref(x) - g) / (fabs(g) + 0.5 * fabs(xd)));
    de = fmax(de, fabs(amp__gelu_d_ref(x) - d) / fmax(fabs(d), 1.0));
  }
  printf("gelu_tanh on [-8, 8]: max error %.3g (forward, relative to |gelu| + |x|/2), %.3g "
         "(derivative, relative to max(|gelu'|, 1))\n",
         ge, de);
  CHECK(ge < 3e-7 && de < 1e-6, "gelu errors %g %g", ge, de);
  CHECK(amp__gelu_d_ref(INFINITY) == 1.0f && amp__gelu_d_ref(-INFINITY) == 0.0f, "gelu'(±inf)");
  CHECK(amp__gelu_ref(1e30f) == 1e30f && amp__gelu_ref(-30.0f) == 0.0f, "gelu tails");
}

/* n values: mostly uniform in [-lo, lo], with specials sprinkled in. */
static void fill_specials(float *x, size_t n, float lo) {
  static const uint32_t sp[] = {0x7fc00000u, 0xff800001u, 0x7f800000u, 0xff800000u,
                                0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu,
                                0x3f200000u, 0x41100000u, 0xc1200000u, 0x7f7fffffu};
  for (size_t i = 0; i < n; i++)
    x[i] = rnd32() % 7 == 0 ? amp__bits_f32(sp[rnd32() % 12]) : urand(-lo, lo);
}

static void *as_dt(const float *x, amp_dtype dt, size_t n) {
  void *p = malloc(n * 4 + 64);
  for (size_t i = 0; i < n; i++) amp__store_f32(p, dt, i, x[i]);
  return p;
}

static int bits_equal(const void *a, const void *b, amp_dtype dt, size_t n) {
  return memcmp(a, b, n * amp_dtype_size(dt)) == 0;
}

/* The SIMD tables this CPU can run (none in a build without SIMD). */
static const amp__kernels *simd_tables(int i) {
#ifdef AMPC_HAVE_X86_SIMD
  const amp__kernels *t[2] = {&amp__kernels_avx2, &amp__kernels_avx512};
  if (i < 2 && amp__kernels_usable(t[i])) return t[i];
#else
  (void)i;
#endif
  return NULL;
}

static void test_tanh_tables(void) {
  static const size_t sizes[] = {1, 7, 8, 9, 31, 33, 1000, 4099};
  int tables = 0;
  for (int ti = 0; ti < 2; ti++) {
    const amp__kernels *k = simd_tables(ti);
    if (!k) continue;
    tables++;
    for (int di = 0; di < 3; di++)
      for (int op = AMP__TANH_FWD; op <= AMP__GELU_BWD; op++)
        for (int gf = 0; gf < 2; gf++)
          for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            amp_dtype dt = DTS[di], gdt = gf ? AMP_F32 : dt;
            if (op <= AMP__GELU_FWD && gf) continue;
            size_t n = sizes[si];
            float *x = malloc(n * 4), *g = malloc(n * 4);
            fill_specials(x, n, op == AMP__TANH_BWD ? 1.2f : 12.0f);
            fill_specials(g, n, 3.0f);
            void *xd = as_dt(x, dt, n), *gd = as_dt(g, dt, n);
            amp_dtype ydt = op <= AMP__GELU_FWD ? dt : gdt;
            void *y0 = calloc(n + 16, 4), *y1 = calloc(n + 16, 4);
            const void *gp = op <= AMP__GELU_FWD ? NULL : gd;
            amp__kernels_scalar.tanh_act(op, dt, gdt, n, xd, gp, y0);
            k->tanh_act(op, dt, gdt, n, xd, gp, y1);
            CHECK(bits_equal(y0, y1, ydt, n), "%s: op %d, %s -> %s, n = %zu", k->name, op,
                  amp_dtype_name(dt), amp_dtype_name(ydt), n);
            free(x), free(g), free(xd), free(gd), free(y0), free(y1);
          }
  }
  printf("tanh kernels: %d SIMD table(s) against the scalar reference\n", tables);
}

/* Through the op driver: 1 and 2 threads, the native and the scalar table. */
static void test_tanh_threads(void) {
  amp_ctx *c1 = amp_ctx_create(&(amp_ctx_params){.threads = 1});
  amp_ctx *c2 = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  amp_ctx *cs = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  CHECK(amp__ctx_set_kernels(cs, &amp__kernels_scalar), "scalar table");
  size_t n = 100003;
  float *x = malloc(n * 4), *g = malloc(n * 4);
  fill_specials(x, n, 10.0f);
  fill_specials(g, n, 2.0f);
  for (int op = AMP__TANH_FWD; op <= AMP__GELU_BWD; op++) {
    float *y[3];
    amp_ctx *cs3[3] = {c1, c2, cs};
    for (int i = 0; i < 3; i++) {
      y[i] = malloc(n * 4);
      amp__tanh_act(cs3[i], op, AMP_F32, AMP_F32, n, x, op <= AMP__GELU_FWD ? NULL : g, y[i]);
    }
    CHECK(bits_equal(y[0], y[1], AMP_F32, n), "op %d: 1 and 2 threads", op);
    CHECK(bits_equal(y[0], y[2], AMP_F32, n), "op %d: native and scalar", op);
    for (int i = 0; i < 3; i++) free(y[i]);
  }
  free(x), free(g);
  amp_ctx_free(c1), amp_ctx_free(c2), amp_ctx_free(cs);
}

/* Layer norm rows: every SIMD table against the scalar reference. */
static void test_ln_tables(void) {
  static const size_t ds[] = {1, 5, 16, 17, 31, 128, 200};
  const int rows = 5;
  for (int ti = 0; ti < 2; ti++) {
    const amp__kernels *k = simd_tables(ti);
    if (!k) continue;
    for (size_t di = 0; di < sizeof ds / sizeof *ds; di++)
      for (int xi = 0; xi < 3; xi++)
        for (int yi = 0; yi < 3; yi++)
          for (int wb = 0; wb < 4; wb++) {
            size_t d = ds[di], n = d * (size_t)rows;
            amp_dtype xt = DTS[xi], yt = DTS[yi];
            float *x = malloc(n * 4), *g = malloc(n * 4), *w = malloc(d * 4), *b = malloc(d * 4);
            for (size_t i = 0; i < n; i++)
              x[i] = urand(-3, 3) + (float)(i % 3), g[i] = urand(-1, 1);
            for (size_t i = 0; i < d; i++) w[i] = urand(0.5f, 1.5f), b[i] = urand(-1, 1);
            if (d > 3 && wb == 3) x[n - 2] = NAN, g[1] = INFINITY, x[0] = -0.0f, x[2] = 0x1p-140f;
            void *xd = as_dt(x, xt, n), *gd = as_dt(g, yt, n);
            float st[2][2 * 5], dw[2][200], db[2][200];
            void *y[2], *dx[2];
            for (int v = 0; v < 2; v++) {
              const amp__kernels *kv = v ? k : &amp__kernels_scalar;
              y[v] = calloc(n, 4), dx[v] = calloc(n, 4);
              amp__ln_args a = {.d = d,
                                .xdt = xt,
                                .ydt = yt,
                                .wdt = AMP_F32,
                                .bdt = AMP_F32,
                                .gdt = yt,
                                .dxdt = AMP_F32,
                                .acc = wb == 2,
                                .eps = 1e-5f,
                                .x = xd,
                                .w = wb & 1 ? w : NULL,
                                .b = wb & 2 ? b : NULL,
                                .g = gd,
                                .y = y[v],
                                .dx = dx[v],
                                .stat = st[v],
                                .dw = dw[v],
                                .db = db[v]};
              for (size_t i = 0; i < n; i++) ((float *)dx[v])[i] = 0.25f * (float)i;
              memset(dw[v], 0, sizeof dw[v]), memset(db[v], 0, sizeof db[v]);
              kv->ln_fwd(&a, 0, rows);
              kv->ln_bwd(&a, 0, rows);
              kv->ln_wb(&a, rows);
            }
            CHECK(bits_equal(st[0], st[1], AMP_F32, 2 * rows) && bits_equal(y[0], y[1], yt, n) &&
                      bits_equal(dx[0], dx[1], AMP_F32, n) &&
                      bits_equal(dw[0], dw[1], AMP_F32, d) && bits_equal(db[0], db[1], AMP_F32, d),
                  "%s layer norm: d = %zu, x %s, y %s, case %d", k->name, d, amp_dtype_name(xt),
                  amp_dtype_name(yt), wb);
            free(x), free(g), free(w), free(b), free(xd), free(gd);
            for (int v = 0; v < 2; v++) free(y[v]), free(dx[v]);
          }
  }
}

/* Masked softmax rows: SIMD against scalar, and against double. */
static void test_softmax_tables(void) {
  static const size_t ts[] = {1, 3, 16, 17, 33, 64, 100};
  double worst = 0;
  for (size_t ti = 0; ti < sizeof ts / sizeof *ts; ti++)
    for (size_t lim = 1; lim <= ts[ti]; lim += lim < 20 ? 1 : 7)
      for (int sp = 0; sp < 4; sp++) {
        size_t t = ts[ti];
        float x[100], r0[100], r1[100];
        for (size_t j = 0; j < t; j++) x[j] = urand(-20, 20);
        if (sp == 1) x[lim - 1] = -INFINITY;
        if (sp == 2) x[lim / 2] = NAN;
        if (sp == 3) x[0] = -200.0f, x[lim - 1] = INFINITY;
        memcpy(r0, x, sizeof x);
        amp__kernels_scalar.softmax_row(r0, lim, t);
        if (sp == 0) {
          double m = -INFINITY, s = 0;
          for (size_t j = 0; j < lim; j++) m = fmax(m, x[j]);
          for (size_t j = 0; j < lim; j++) s += exp((double)x[j] - m);
          for (size_t j = 0; j < lim; j++)
            worst = fmax(worst, fabs(r0[j] - exp((double)x[j] - m) / s) /
                                    (exp((double)x[j] - m) / s + 1e-30));
        }
        int zeros = 1;
        for (size_t j = lim; j < t; j++) zeros &= same_bits(r0[j], 0.0f);
        CHECK(zeros, "masked entries are +0 (t %zu, lim %zu)", t, lim);
        for (int k = 0; k < 2; k++) {
          const amp__kernels *kt = simd_tables(k);
          if (!kt) continue;
          memcpy(r1, x, sizeof x);
          kt->softmax_row(r1, lim, t);
          CHECK(bits_equal(r0, r1, AMP_F32, t), "%s softmax row: t %zu, lim %zu, case %d", kt->name,
                t, lim, sp);
        }
      }
  printf("masked softmax: max relative error %.3g against double (entries above 1e-30)\n", worst);
  CHECK(worst < 1e-5, "softmax error %g", worst);
}

/* Layer norm (forward and backward, with a weight and a bias, F32 and
 * under BF16 autocast) and GELU-tanh on 1 and 2 threads: the same bits. */
static int ln_run(amp_ctx *c, amp_dtype dt, amp_tensor **out) {
  rng = 12345;
  amp_tensor *x = amp_tensor_new(c, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){600, 130});
  amp_tensor *w = amp_tensor_new(c, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){130});
  amp_tensor *b = amp_tensor_new(c, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){130});
  if (!x || !w || !b) return 0;
  for (int64_t i = 0; i < x->numel; i++) ((float *)x->data)[i] = urand(-2, 2) + (float)(i % 5);
  for (int64_t i = 0; i < 130; i++)
    ((float *)w->data)[i] = urand(0.5f, 1.5f), ((float *)b->data)[i] = urand(-1, 1);
  amp_tensor_set_requires_grad(c, x, 1), amp_tensor_set_requires_grad(c, w, 1);
  amp_tensor_set_requires_grad(c, b, 1);
  if (dt != AMP_F32) amp_autocast_begin(c, dt);
  amp_tensor *y = amp_gelu_tanh(c, amp_layer_norm(c, x, w, b, 1e-5f));
  if (dt != AMP_F32) amp_autocast_end(c);
  amp_tensor *l = y ? amp_mean(c, amp_mul(c, y, y)) : NULL;
  if (!l || amp_backward(c, l) != AMP_OK) return 0;
  out[0] = y, out[1] = x->grad, out[2] = w->grad, out[3] = b->grad;
  return 1;
}

static void test_ops_threads(void) {
  static const amp_dtype dts[2] = {AMP_F32, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_ctx *c1 = amp_ctx_create(&(amp_ctx_params){.threads = 1});
    amp_ctx *c2 = amp_ctx_create(&(amp_ctx_params){.threads = 2});
    amp_tensor *o1[4] = {0}, *o2[4] = {0};
    int ok = ln_run(c1, dts[d], o1) && ln_run(c2, dts[d], o2);
    CHECK(ok, "layer norm in %s: %s %s", amp_dtype_name(dts[d]), amp_ctx_error(c1),
          amp_ctx_error(c2));
    for (int i = 0; ok && i < 4; i++)
      CHECK(o1[i] && o2[i] && memcmp(o1[i]->data, o2[i]->data, amp_tensor_bytes(o1[i])) == 0,
            "%s: layer norm result %d differs between 1 and 2 threads", amp_dtype_name(dts[d]), i);
    amp_ctx_free(c1);
    amp_ctx_free(c2);
  }
}

int main(void) {
  test_tanh_accuracy();
  test_tanh_tables();
  test_tanh_threads();
  test_ln_tables();
  test_softmax_tables();
  test_ops_threads();
  TEST_MAIN_END();
}
