/* Optimizers: SGD (momentum, dampening, Nesterov, weight decay), Adam and
 * AdamW against torch.optim's formulas computed in double; the AVX2 update
 * against the scalar reference bit for bit; the 16-bit working copies
 * (nearest and stochastic rounding); pure 16-bit weights without masters;
 * gradient clipping; thread-count independence; parameter re-pointing; LR
 * schedules; bad settings. */
#include "ampc.h"
#include "check.h"
#include "optim/optim_internal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Relative tolerance: a few F32 ulps of the magnitude of the terms. */
#define ULP (FLT_EPSILON / 2) /* 2^-24, unit roundoff */

static amp_ctx *new_ctx(int threads) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_ctx_set_threads(ctx, threads);
  return ctx;
}

/* A deterministic gradient value whose magnitude spans 1e-3..1. */
static float grad_value(amp_rng *r) {
  float u = amp_rng_uniform(r, -1.0f, 1.0f);
  int k = (int)(amp_rng_next(r) % 4);
  return u * powf(10.0f, (float)-k);
}

typedef struct config {
  const char *name;
  amp_optim_kind kind;
  float lr, momentum, dampening, wd, beta1, beta2, eps;
  int nesterov;
} config;

/* ---- 3 steps against torch.optim's formulas in double ---- */
static void test_formulas(void) {
  static const config cfgs[] = {
      {"sgd", AMP_OPTIM_SGD, 0.1f, 0, 0, 0, 0, 0, 0, 0},
      {"sgd wd", AMP_OPTIM_SGD, 0.1f, 0, 0, 0.05f, 0, 0, 0, 0},
      {"sgd momentum", AMP_OPTIM_SGD, 0.1f, 0.9f, 0, 0, 0, 0, 0, 0},
      {"sgd dampening", AMP_OPTIM_SGD, 0.1f, 0.9f, 0.3f, 0, 0, 0, 0, 0},
      {"sgd nesterov", AMP_OPTIM_SGD, 0.1f, 0.9f, 0, 0, 0, 0, 0, 1},
      {"sgd momentum wd", AMP_OPTIM_SGD, 0.1f, 0.8f, 0.1f, 0.05f, 0, 0, 0, 0},
      {"sgd nesterov wd", AMP_OPTIM_SGD, 0.1f, 0.9f, 0, 0.05f, 0, 0, 0, 1},
      {"adam", AMP_OPTIM_ADAM, 0.05f, 0, 0, 0, 0.8f, 0.95f, 1e-3f, 0},
      {"adam eps 1e-8", AMP_OPTIM_ADAM, 0.05f, 0, 0, 0, 0.9f, 0.999f, 1e-8f, 0},
      {"adam wd", AMP_OPTIM_ADAM, 0.05f, 0, 0, 0.1f, 0.8f, 0.95f, 1e-3f, 0},
      {"adamw", AMP_OPTIM_ADAMW, 0.05f, 0, 0, 0.1f, 0.8f, 0.95f, 1e-3f, 0},
      {"adamw wd 0", AMP_OPTIM_ADAMW, 0.05f, 0, 0, 0, 0.9f, 0.999f, 1e-8f, 0},
  };
  for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
    const config *cf = &cfgs[c];
    amp_ctx *ctx = new_ctx(1);
    amp_rng rng;
    amp_rng_seed(&rng, 42 + c);
    amp_module *model = amp_nn_linear(ctx, &rng, 7, 5, 1); /* 40 values */
    amp_optim_params p = amp_optim_defaults(cf->kind);
    p.lr = cf->lr;
    p.momentum = cf->momentum;
    p.dampening = cf->dampening;
    p.nesterov = cf->nesterov;
    p.weight_decay = cf->wd;
    if (cf->kind != AMP_OPTIM_SGD) {
      p.beta1 = cf->beta1;
      p.beta2 = cf->beta2;
      p.eps = cf->eps;
    }
    amp_optim *o = amp_optim_create(ctx, model, &p);
    CHECK(o != NULL, "%s: create: %s", cf->name, amp_ctx_error(ctx));
    if (!o) {
      amp_ctx_free(ctx);
      continue;
    }
    int64_t n = amp_optim_numel(o);
    CHECK(n == 40, "%s: numel %lld", cf->name, (long long)n);
    double *ep = malloc(sizeof(double) * (size_t)n), *em = calloc((size_t)n, sizeof(double));
    double *ev = calloc((size_t)n, sizeof(double)), *mag = calloc((size_t)n, sizeof(double));
    double *magm = calloc((size_t)n, sizeof(double)), *magv = calloc((size_t)n, sizeof(double));
    float *master = amp_optim_master_buffer(o), *grad = amp_optim_grad_buffer(o);
    for (int64_t i = 0; i < n; i++) {
      ep[i] = master[i];
      mag[i] = fabs(ep[i]);
    }
    const double lr = cf->lr, mom = cf->momentum, damp = cf->dampening, wd = cf->wd;
    const double b1 = cf->beta1, b2 = cf->beta2, eps = cf->eps;
    amp_rng gr;
    amp_rng_seed(&gr, 7 + c);
    for (int t = 1; t <= 3; t++) {
      for (int64_t i = 0; i < n; i++) grad[i] = grad_value(&gr);
      for (int64_t i = 0; i < n; i++) {
        double g = grad[i], x = ep[i];
        if (cf->kind == AMP_OPTIM_SGD) {
          double d = g + wd * x;
          if (mom > 0) {
            em[i] = t == 1 ? d : mom * em[i] + (1 - damp) * d;
            magm[i] = fmax(magm[i], fabs(mom * em[i]) + fabs(d));
            d = cf->nesterov ? d + mom * em[i] : em[i];
          }
          ep[i] = x - lr * d;
          mag[i] = fmax(mag[i], fabs(x) + fabs(lr * d) + fabs(lr * wd * x));
        } else {
          double d = g;
          if (cf->kind == AMP_OPTIM_ADAMW)
            x *= 1 - lr * wd;
          else
            d += wd * x;
          em[i] = em[i] + (1 - b1) * (d - em[i]);
          ev[i] = b2 * ev[i] + (1 - b2) * d * d;
          magm[i] = fmax(magm[i], fabs(em[i]) + fabs(d));
          magv[i] = fmax(magv[i], ev[i] + d * d);
          double step_size = lr / (1 - pow(b1, t));
          double denom = sqrt(ev[i]) / sqrt(1 - pow(b2, t)) + eps;
          double upd = step_size * em[i] / denom;
          ep[i] = x - upd;
          mag[i] = fmax(mag[i], fabs(x) + fabs(upd) + fabs(lr * wd * ep[i]));
        }
      }
      CHECK(amp_optim_step(o) == AMP_OK, "%s: step", cf->name);
      CHECK(amp_optim_steps(o) == t, "%s: step count", cf->name);
    }
    int64_t *stp;
    float *m, *v;
    amp_optim_state(o, &stp, &m, &v);
    CHECK(stp && *stp == 3, "%s: state step", cf->name);
    int bad_p = 0, bad_m = 0, bad_v = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
      double e = fabs(master[i] - ep[i]) / (mag[i] * ULP);
      if (e > worst) worst = e;
      if (e > 8) bad_p++;
      if (cf->kind == AMP_OPTIM_SGD && cf->momentum == 0) continue;
      if (!m || fabs(m[i] - em[i]) > 8 * ULP * magm[i]) bad_m++;
      if (cf->kind != AMP_OPTIM_SGD && (!v || fabs(v[i] - ev[i]) > 8 * ULP * magv[i])) bad_v++;
    }
    CHECK(bad_p == 0, "%s: %d parameters differ from torch.optim (worst %.1f ulps)", cf->name,
          bad_p, worst);
    CHECK(bad_m == 0, "%s: %d first moments / momentum buffers differ", cf->name, bad_m);
    CHECK(bad_v == 0, "%s: %d second moments differ", cf->name, bad_v);
    if (cf->kind == AMP_OPTIM_SGD) {
      CHECK(v == NULL, "%s: SGD has no v", cf->name);
      CHECK((m != NULL) == (cf->momentum > 0), "%s: momentum buffer iff momentum", cf->name);
    }
    /* A wrong formula would be far outside the tolerance: the update itself
       is much larger than it. */
    double moved = 0;
    for (int64_t i = 0; i < n; i++) moved = fmax(moved, fabs(master[i] - ep[i]));
    CHECK(moved < 1e-5, "%s: max abs error %g", cf->name, moved);
    free(ep);
    free(em);
    free(ev);
    free(mag);
    free(magm);
    free(magv);
    amp_ctx_free(ctx);
  }
}

/* The working copy's rounding on values an update leaves as they are (lr =
 * 0): ties to even both ways for BF16 and F16, NaN (quieted, payload kept),
 * infinities, the largest float, subnormals; the fast table's copy equals
 * the scalar reference's for every kind of update. */
static void test_simd_work_copy_specials(const amp__kernels *fast) {
  enum { N = 1003 };
  static float p0[N], g[N], pa[N], pb[N], ma[N], mb[N], va[N], vb[N];
  static uint16_t wa[N], wb[N];
  const uint32_t special[] = {0x7fc01234u, 0xffa00001u, 0x7f800000u, 0xff800000u, 0x7f7fffffu,
                              0x00000001u, 0x80400000u, 0x3f808000u, 0x3f818000u, 0xbf818000u,
                              0x3f801000u, 0x3f803000u, 0x477ff000u, 0x477fefffu};
  const int ns = (int)(sizeof special / sizeof special[0]);
  amp_rng r;
  amp_rng_seed(&r, 7);
  for (int i = 0; i < N; i++) {
    /* Random upper halves with a tie or a near-tie in the lower half. */
    uint32_t u = (amp_rng_next(&r) & 0xffff0000u) | (i % 3 == 0   ? 0x8000u
                                                     : i % 3 == 1 ? 0x7fffu
                                                                  : 0x8001u);
    if (i % 7 == 0) u = special[(i / 7) % ns];
    memcpy(&p0[i], &u, sizeof u);
    g[i] = amp_rng_uniform(&r, -1, 1);
  }
  amp_optim_hyper h;
  memset(&h, 0, sizeof h);
  h.gmul = 1.0f, h.beta1 = 0.9f, h.beta2 = 0.999f, h.eps = 1e-8f, h.bc1 = 0.1f, h.bc2_sqrt = 0.03f;
  for (int kind = 0; kind <= AMP_OPTIM_ADAMW; kind++)
    for (int w = 0; w < 2; w++) {
      const amp_dtype wdt = w ? AMP_BF16 : AMP_F16;
      memcpy(pa, p0, sizeof p0), memcpy(pb, p0, sizeof p0);
      memset(ma, 0, sizeof ma), memset(mb, 0, sizeof mb);
      memset(va, 0, sizeof va), memset(vb, 0, sizeof vb);
      fast->optim_update((amp_optim_kind)kind, &h, N, pa, g, ma, va, wa, wdt);
      amp__kernels_scalar.optim_update((amp_optim_kind)kind, &h, N, pb, g, mb, vb, wb, wdt);
      CHECK(memcmp(wa, wb, sizeof wa) == 0, "%s: %s copy of specials differs", fast->name,
            amp_dtype_name(wdt));
      CHECK(memcmp(pa, pb, sizeof pa) == 0, "%s: lr = 0 params differ", fast->name);
    }
}

/* ---- a SIMD table's update equals the scalar reference bit for bit ---- */
static void test_simd_matches_ref(const amp__kernels *fast) {
  const int64_t n = 1003; /* 125 vectors + 3 */
  float *p0 = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
  float *m0 = malloc(n * sizeof(float)), *v0 = malloc(n * sizeof(float));
  float *pa = malloc(n * sizeof(float)), *ma = malloc(n * sizeof(float));
  float *va = malloc(n * sizeof(float)), *pb = malloc(n * sizeof(float));
  float *mb = malloc(n * sizeof(float)), *vb = malloc(n * sizeof(float));
  amp_rng r;
  amp_rng_seed(&r, 99);
  int cases = 0;
  for (int kind = 0; kind <= AMP_OPTIM_ADAMW; kind++)
    for (int opt = 0; opt < 32; opt++) {
      int first = opt & 1, wd = (opt >> 1) & 1, mom = (opt >> 2) & 1, nest = (opt >> 3) & 1;
      int damp = (opt >> 4) & 1, gm = (opt >> 2) & 1;
      if (kind != AMP_OPTIM_SGD && (nest || damp)) continue;
      if (nest && (!mom || damp)) continue;
      for (int64_t i = 0; i < n; i++) {
        p0[i] = amp_rng_uniform(&r, -2, 2);
        g[i] = grad_value(&r);
        m0[i] = amp_rng_uniform(&r, -0.5f, 0.5f);
        v0[i] = amp_rng_uniform(&r, 0, 0.3f);
      }
      amp_optim_hyper h;
      memset(&h, 0, sizeof h);
      h.lr = 0.0123f;
      h.gmul = kind == AMP_OPTIM_SGD ? 1.0f : (gm ? 0.37f : 1.0f);
      if (kind == AMP_OPTIM_SGD && opt & 32) h.gmul = 0.5f;
      h.wd = wd ? 0.031f : 0.0f;
      h.momentum = mom ? 0.87f : 0.0f;
      h.dampening = damp ? 0.2f : 0.0f;
      h.nesterov = nest;
      h.first = first;
      h.beta1 = 0.85f;
      h.beta2 = 0.995f;
      h.eps = 1e-6f;
      h.bc1 = 1.0f - (float)pow(0.85, first ? 1 : 5);
      h.bc2_sqrt = (float)sqrt(1.0 - pow(0.995, first ? 1 : 5));
      int use_m = kind != AMP_OPTIM_SGD || mom, use_v = kind != AMP_OPTIM_SGD;
      /* The working copy written in the same pass: F16, then BF16. */
      for (int w = 0; w < 2; w++) {
        const amp_dtype wdt = w ? AMP_BF16 : AMP_F16;
        memcpy(pa, p0, n * sizeof(float));
        memcpy(pb, p0, n * sizeof(float));
        memcpy(ma, m0, n * sizeof(float));
        memcpy(mb, m0, n * sizeof(float));
        memcpy(va, v0, n * sizeof(float));
        memcpy(vb, v0, n * sizeof(float));
        uint16_t *wa = malloc(n * sizeof(uint16_t)), *wb = malloc(n * sizeof(uint16_t));
        fast->optim_update((amp_optim_kind)kind, &h, n, pa, g, use_m ? ma : NULL, use_v ? va : NULL,
                           wa, wdt);
        amp__kernels_scalar.optim_update((amp_optim_kind)kind, &h, n, pb, g, use_m ? mb : NULL,
                                         use_v ? vb : NULL, NULL, wdt);
        CHECK(memcmp(pa, pb, n * sizeof(float)) == 0, "simd params differ: kind %d opt %d", kind,
              opt);
        CHECK(memcmp(ma, mb, n * sizeof(float)) == 0, "simd m differ: kind %d opt %d", kind, opt);
        CHECK(memcmp(va, vb, n * sizeof(float)) == 0, "simd v differ: kind %d opt %d", kind, opt);
        CHECK(memcmp(pa, p0, n * sizeof(float)) != 0, "the update changed nothing: kind %d opt %d",
              kind, opt);
        /* The copy written in the same pass equals converting afterwards. */
        amp_convert(wb, wdt, pb, AMP_F32, n);
        CHECK(memcmp(wa, wb, n * sizeof(uint16_t)) == 0, "fused %s copy differs: kind %d opt %d",
              amp_dtype_name(wdt), kind, opt);
        free(wa);
        free(wb);
      }
      cases++;
    }
  CHECK(cases >= 20, "simd cases %d", cases);
  free(p0);
  free(g);
  free(m0);
  free(v0);
  free(pa);
  free(ma);
  free(va);
  free(pb);
  free(mb);
  free(vb);
}

/* Element i of the working copy equals the rounding of master i. */
static int work_matches(amp_optim *o, amp_module *model, amp_dtype dt, const amp_convert_opts *op,
                        int64_t step0) {
  int bad = 0;
  int64_t off = 0, n = amp_optim_numel(o);
  for (int i = 0; i < amp_module_param_count(model); i++) {
    amp_tensor *t = amp_module_param(model, i, NULL);
    const amp_tensor *w = amp_param_work(t);
    if (!w || w->dtype != dt || amp__master(w) != t || w->numel != t->numel || w->ndim != t->ndim) {
      bad++;
      continue;
    }
    uint16_t *want = malloc((size_t)t->numel * 2);
    amp_convert_opts opts = {AMP_ROUND_NEAREST_EVEN, 0, 0, 0};
    if (op) {
      opts = *op;
      opts.offset = (uint64_t)step0 * (uint64_t)n + (uint64_t)off;
    }
    if (op)
      amp_convert_ex(want, dt, t->data, AMP_F32, (size_t)t->numel, &opts);
    else
      amp_convert(want, dt, t->data, AMP_F32, (size_t)t->numel);
    if (memcmp(want, amp_param_work(t)->data, (size_t)t->numel * 2) != 0) bad++;
    free(want);
    off += t->numel;
  }
  return bad;
}

/* ---- working copies in F16 and BF16, nearest and stochastic ---- */
static void test_work_copies(void) {
  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_ctx *ctx = new_ctx(1);
    amp_rng rng;
    amp_rng_seed(&rng, 5);
    amp_module *ch[3] = {amp_nn_linear(ctx, &rng, 37, 21, 1), amp_nn_relu(ctx),
                         amp_nn_linear(ctx, &rng, 21, 3, 1)};
    amp_module *model = amp_nn_sequential(ctx, 3, ch);
    amp_optim_params p = amp_optim_defaults(AMP_OPTIM_ADAMW);
    p.work_dtype = dts[d];
    p.lr = 0.01f;
    amp_optim *o = amp_optim_create(ctx, model, &p);
    CHECK(o != NULL, "create with work copies");
    if (!o) continue;
    CHECK(work_matches(o, model, dts[d], NULL, 0) == 0, "work copies after create (%s)",
          amp_dtype_name(dts[d]));
    CHECK(amp_optim_bytes(o) == (size_t)amp_optim_numel(o) * (4 * 4 + 2), "bytes %zu",
          amp_optim_bytes(o));
    amp_rng gr;
    amp_rng_seed(&gr, 11);
    for (int s = 0; s < 5; s++) {
      float *g = amp_optim_grad_buffer(o);
      for (int64_t i = 0; i < amp_optim_numel(o); i++) g[i] = grad_value(&gr);
      amp_optim_step(o);
      CHECK(work_matches(o, model, dts[d], NULL, 0) == 0, "work copies after step %d (%s)", s,
            amp_dtype_name(dts[d]));
    }
    /* After masters are rewritten, sync_work brings the copies back. */
    amp_optim_master_buffer(o)[3] = 1.2345f;
    CHECK(work_matches(o, model, dts[d], NULL, 0) != 0, "a changed master is noticed");
    CHECK(amp_optim_sync_work(o) == AMP_OK, "sync_work");
    CHECK(work_matches(o, model, dts[d], NULL, 0) == 0, "sync_work rewrites the copies");
    amp_ctx_free(ctx);
  }

  /* Stochastic rounding: reproducible for a seed, different for another,
     each value one of its two neighbours, unbiased on average. */
  for (int d = 0; d < 2; d++) {
    uint16_t *snap[3];
    int64_t n = 0;
    const uint64_t seeds[3] = {1234, 1234, 999};
    for (int run = 0; run < 3; run++) {
      amp_ctx *ctx = new_ctx(1);
      amp_rng rng;
      amp_rng_seed(&rng, 8);
      amp_module *model = amp_nn_linear(ctx, &rng, 64, 64, 1); /* 4160 values */
      amp_optim_params p = amp_optim_defaults(AMP_OPTIM_SGD);
      p.lr = 0; /* the masters stay; every step re-rounds them */
      p.work_dtype = dts[d];
      p.rounding = AMP_ROUND_STOCHASTIC;
      p.seed = seeds[run];
      amp_optim *o = amp_optim_create(ctx, model, &p);
      n = amp_optim_numel(o);
      float *master = amp_optim_master_buffer(o);
      /* x = 1 + 0.3 ulp of the work format */
      const float ulp = dts[d] == AMP_F16 ? 0x1p-10f : 0x1p-7f;
      const float x = 1.0f + 0.3f * ulp;
      for (int64_t i = 0; i < n; i++) master[i] = x;
      amp_optim_sync_work(o);
      double sum = 0;
      int64_t count = 0, wrong = 0;
      amp_convert_opts sr = {AMP_ROUND_STOCHASTIC, 0, seeds[run], 0};
      for (int s = 0; s < 8; s++) {
        amp_optim_step(o);
        CHECK(work_matches(o, model, dts[d], &sr, s) == 0,
              "SR work copy = amp_convert_ex(seed, offset step*n + i), step %d", s);
        float *w = malloc((size_t)n * sizeof(float));
        amp_tensor *t0 = amp_module_param(model, 0, NULL);
        amp_convert(w, AMP_F32, amp_param_work(t0)->data, dts[d], (size_t)n);
        for (int64_t i = 0; i < n; i++) {
          if (w[i] != 1.0f && w[i] != 1.0f + ulp) wrong++;
          sum += w[i];
          count++;
        }
        free(w);
        if (s == 0) {
          snap[run] = malloc((size_t)n * 2);
          memcpy(snap[run], amp_param_work(t0)->data, (size_t)n * 2);
        }
      }
      CHECK(wrong == 0, "SR gives one of the two neighbours (%lld wrong)", (long long)wrong);
      double mean_ulps = (sum / (double)count - 1.0) / ulp;
      double sigma = sqrt(0.3 * 0.7 / (double)count);
      CHECK(fabs(mean_ulps - 0.3) < 5 * sigma, "SR mean %.4f ulps, want 0.3 +- %.4f (%s)",
            mean_ulps, 5 * sigma, amp_dtype_name(dts[d]));
      amp_ctx_free(ctx);
    }
    CHECK(memcmp(snap[0], snap[1], (size_t)n * 2) == 0, "SR reproducible for a seed");
    CHECK(memcmp(snap[0], snap[2], (size_t)n * 2) != 0, "SR differs for another seed");
    for (int run = 0; run < 3; run++) free(snap[run]);
  }
}

/* ---- why master weights matter ---- */
static void test_master_weights(void) {
  for (int mw = 0; mw < 2; mw++) {
    amp_ctx *ctx = new_ctx(1);
    amp_rng rng;
    amp_rng_seed(&rng, 3);
    amp_module *model = amp_nn_linear(ctx, &rng, 6, 2, 1); /* 14 values */
    amp_optim_params p = amp_optim_defaults(AMP_OPTIM_SGD);
    p.lr = 0x1p-13f; /* a quarter of F16's ulp at 1 */
    p.work_dtype = AMP_F16;
    p.master_weights = mw;
    amp_optim *o = amp_optim_create(ctx, model, &p);
    CHECK(o != NULL, "create master_weights=%d", mw);
    if (!o) continue;
    int64_t n = amp_optim_numel(o);
    float *master = amp_optim_master_buffer(o), *g = amp_optim_grad_buffer(o);
    /* Without masters the initial weights are already 16-bit values. */
    amp_rng_seed(&rng, 3);
    amp_module *twin = amp_nn_linear(ctx, &rng, 6, 2, 1);
    int not16 = 0, same = 1;
    for (int i = 0, off = 0; i < amp_module_param_count(twin); i++) {
      amp_tensor *t = amp_module_param(twin, i, NULL);
      for (int64_t j = 0; j < t->numel; j++) {
        float f = ((float *)t->data)[j];
        float r = amp_f16_to_f32(amp_f32_to_f16(f));
        if (master[off + j] != r) not16++;
        if (master[off + j] != f) same = 0;
      }
      off += (int)t->numel;
    }
    if (mw)
      CHECK(same, "with masters the initial values are kept exactly");
    else
      CHECK(not16 == 0, "without masters the weights start as F16 values");
    for (int64_t i = 0; i < n; i++) master[i] = 1.0f;
    amp_optim_sync_work(o);
    const amp_tensor *w0 = amp_param_work(amp_module_param(model, 0, NULL));
    const amp_f16 *w = w0->data;
    for (int64_t i = 0; i < n; i++) g[i] = -1.0f; /* each step adds 2^-13 */
    amp_optim_step(o);
    if (mw) {
      CHECK(master[0] == 1.0f + 0x1p-13f, "with masters the master moves: %.9g", master[0]);
      CHECK(amp_f16_to_f32(w[0]) == 1.0f, "the working copy does not move yet");
    } else {
      CHECK(master[0] == 1.0f, "without masters the update is lost: %.9g", master[0]);
      CHECK(amp_f16_to_f32(w[0]) == 1.0f, "working copy unchanged");
    }
    for (int s = 1; s < 8; s++) amp_optim_step(o);
    int moved = 0, kept = 0;
    for (int64_t i = 0; i < n; i++) {
      float wi = amp_f16_to_f32(((const amp_f16 *)w0->data)[i]);
      if (master[i] == 1.0f + 8 * 0x1p-13f && wi == 1.0f + 0x1p-10f) moved++;
      if (master[i] == 1.0f && wi == 1.0f) kept++;
    }
    /* Only the first parameter's copy is read through w0; the rest of the
       buffer is contiguous with it (one allocation per role). */
    if (mw)
      CHECK(moved == n, "with masters 8 small steps move the copy by one ulp (%d)", moved);
    else
      CHECK(kept == n, "without masters 8 small steps are all lost (%d)", kept);
    amp_ctx_free(ctx);
  }
}

/* Fills a model's gradient buffer with the stream of `seed`. */
static void fill_grads(amp_optim *o, uint64_t seed, float mul) {
  amp_rng r;
  amp_rng_seed(&r, seed);
  float *g = amp_optim_grad_buffer(o);
  for (int64_t i = 0; i < amp_optim_numel(o); i++) g[i] = mul * amp_rng_uniform(&r, -1, 1);
}

static amp_optim *make_opt(amp_ctx *ctx, amp_optim_kind kind, int64_t in, int64_t out,
                           amp_dtype work, amp_rounding rnd) {
  amp_rng rng;
  amp_rng_seed(&rng, 21);
  amp_module *model = amp_nn_linear(ctx, &rng, in, out, 1);
  amp_optim_params p = amp_optim_defaults(kind);
  p.momentum = kind == AMP_OPTIM_SGD ? 0.9f : 0.0f;
  p.work_dtype = work;
  p.rounding = rnd;
  p.seed = 77;
  return amp_optim_create(ctx, model, &p);
}

/* ---- clip_grad_norm ---- */
static void test_clip(void) {
  for (int kind = 0; kind <= AMP_OPTIM_ADAMW; kind++) {
    amp_ctx *ca = new_ctx(1), *cb = new_ctx(1);
    amp_optim *a = make_opt(ca, (amp_optim_kind)kind, 300, 50, AMP_F16, AMP_ROUND_NEAREST_EVEN);
    amp_optim *b = make_opt(cb, (amp_optim_kind)kind, 300, 50, AMP_F16, AMP_ROUND_NEAREST_EVEN);
    int64_t n = amp_optim_numel(a);
    CHECK(n > 3 * 4096, "several blocks");
    for (int s = 0; s < 3; s++) {
      fill_grads(a, 100 + s, 1.0f);
      const float *g = amp_optim_grad_buffer(a);
      double ss = 0;
      for (int64_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
      float want = (float)sqrt(ss), norm = -1;
      /* s == 0: measure only; 1: max_norm above the norm; 2: clip */
      float max_norm = s == 0 ? 0.0f : s == 1 ? want * 2 : want / 8;
      CHECK(amp_optim_clip_grad_norm(a, max_norm, &norm) == AMP_OK, "clip");
      CHECK(fabsf(norm - want) <= want * FLT_EPSILON, "norm %.9g, FP64 norm %.9g", norm, want);
      float f = s == 2 ? max_norm / (norm + 1e-6f) : 1.0f;
      fill_grads(b, 100 + s, 1.0f);
      float *gb = amp_optim_grad_buffer(b);
      for (int64_t i = 0; i < n; i++) gb[i] = gb[i] * f;
      amp_optim_step(a);
      amp_optim_step(b);
      CHECK(memcmp(amp_optim_master_buffer(a), amp_optim_master_buffer(b), n * sizeof(float)) == 0,
            "kind %d step %d: clipped step = step on pre-scaled gradients", kind, s);
    }
    /* The factor applies to one step only. */
    fill_grads(a, 200, 1.0f);
    fill_grads(b, 200, 1.0f);
    amp_optim_step(a);
    amp_optim_step(b);
    CHECK(memcmp(amp_optim_master_buffer(a), amp_optim_master_buffer(b), n * sizeof(float)) == 0,
          "kind %d: the clip factor is forgotten after the step", kind);
    /* A non-finite norm leaves the factor at 1. */
    fill_grads(a, 300, 1.0f);
    amp_optim_grad_buffer(a)[5] = INFINITY;
    float norm = 0;
    amp_optim_clip_grad_norm(a, 1.0f, &norm);
    CHECK(isinf(norm), "inf norm reported");
    CHECK(a->grad_factor == 1.0f, "inf norm: factor stays 1");
    amp_ctx_free(ca);
    amp_ctx_free(cb);
  }
}

/* ---- same bits with 1 and 2 threads ---- */
static void test_threads(void) {
  for (int kind = 0; kind <= AMP_OPTIM_ADAMW; kind++) {
    amp_ctx *c1 = new_ctx(1), *c2 = new_ctx(2);
    amp_optim *a = make_opt(c1, (amp_optim_kind)kind, 200, 200, AMP_BF16, AMP_ROUND_STOCHASTIC);
    amp_optim *b = make_opt(c2, (amp_optim_kind)kind, 200, 200, AMP_BF16, AMP_ROUND_STOCHASTIC);
    int64_t n = amp_optim_numel(a);
    CHECK(n > 8 * 4096, "big enough for the parallel path: %lld", (long long)n);
    CHECK(amp_ctx_threads(c2) == 2, "2 threads");
    for (int s = 0; s < 4; s++) {
      fill_grads(a, 500 + s, 0.1f);
      fill_grads(b, 500 + s, 0.1f);
      amp_optim_step(a);
      amp_optim_step(b);
    }
    CHECK(memcmp(a->master, b->master, n * sizeof(float)) == 0, "masters: 1 vs 2 threads");
    CHECK(memcmp(a->work, b->work, n * 2) == 0, "working copies: 1 vs 2 threads");
    if (a->m) CHECK(memcmp(a->m, b->m, n * sizeof(float)) == 0, "m: 1 vs 2 threads");
    if (a->v) CHECK(memcmp(a->v, b->v, n * sizeof(float)) == 0, "v: 1 vs 2 threads");
    amp_ctx_free(c1);
    amp_ctx_free(c2);
  }
}

/* ---- parameters are moved into the buffers ---- */
static void test_repoint(void) {
  amp_ctx *ctx = new_ctx(1);
  amp_rng rng;
  amp_rng_seed(&rng, 17);
  amp_module *ch[3] = {amp_nn_linear(ctx, &rng, 9, 13, 1), amp_nn_relu(ctx),
                       amp_nn_linear(ctx, &rng, 13, 4, 0)};
  amp_module *model = amp_nn_sequential(ctx, 3, ch);
  int np = amp_module_param_count(model);
  CHECK(np == 3, "param count %d", np);
  int64_t total = amp_module_param_numel(model);
  float *before = malloc((size_t)total * sizeof(float));
  for (int i = 0, off = 0; i < np; i++) {
    amp_tensor *t = amp_module_param(model, i, NULL);
    memcpy(before + off, t->data, (size_t)t->numel * sizeof(float));
    ((float *)t->grad->data)[0] = 5.0f; /* dirty gradient: must be zeroed */
    off += (int)t->numel;
  }
  amp_optim_params p = amp_optim_defaults(AMP_OPTIM_ADAM);
  amp_optim *o = amp_optim_create(ctx, model, &p);
  CHECK(o != NULL, "create");
  float *mb = amp_optim_master_buffer(o), *gb = amp_optim_grad_buffer(o);
  CHECK(amp_optim_numel(o) == total, "numel");
  int64_t off = 0;
  for (int i = 0; i < np; i++) {
    amp_tensor *t = amp_module_param(model, i, NULL);
    float *d = t->data, *g = t->grad->data;
    CHECK(d == mb + off, "param %d data at its offset in the master buffer", i);
    CHECK(d >= mb && d + t->numel <= mb + total, "param %d inside the master buffer", i);
    CHECK(g == gb + off, "param %d gradient at its offset in the gradient buffer", i);
    CHECK(memcmp(d, before + off, (size_t)t->numel * sizeof(float)) == 0, "param %d values kept",
          i);
    int nz = 0;
    for (int64_t j = 0; j < t->numel; j++) nz += g[j] != 0;
    CHECK(nz == 0, "param %d gradient zeroed", i);
    CHECK(amp_param_work(t) == NULL, "no working copy with work_dtype F32");
    off += t->numel;
  }
  /* zero_grad clears the one buffer. */
  for (int64_t i = 0; i < total; i++) gb[i] = 1;
  amp_optim_zero_grad(o);
  int nz = 0;
  for (int64_t i = 0; i < total; i++) nz += gb[i] != 0;
  CHECK(nz == 0, "zero_grad");
  amp_optim_set_lr(o, 0.5f);
  CHECK(amp_optim_lr(o) == 0.5f, "set_lr");
  amp_optim_set_lr(o, -1.0f);
  CHECK(amp_optim_lr(o) == 0.5f, "a negative lr is ignored");
  free(before);
  amp_ctx_free(ctx);
}

/* ---- LR schedules ---- */
static void test_lr(void) {
  amp_lr_schedule s;
  memset(&s, 0, sizeof s);
  s.kind = AMP_LR_CONSTANT;
  s.base = 0.1f;
  CHECK(amp_lr_at(&s, 0) == 0.1f && amp_lr_at(&s, 12345) == 0.1f, "constant");

  s.kind = AMP_LR_STEP;
  s.step_size = 30;
  s.gamma = 0.5f;
  const int64_t steps[] = {0, 29, 30, 59, 60, 95};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    double want = 0.1 * pow(0.5, (double)(steps[i] / 30));
    float got = amp_lr_at(&s, steps[i]);
    CHECK(fabs(got - want) <= 2 * ULP * want, "step lr at %lld: %.9g want %.9g",
          (long long)steps[i], got, want);
  }
  s.gamma = 0.1f;
  CHECK(fabs(amp_lr_at(&s, 65) - 0.1 * 0.01) <= 1e-6 * 0.001, "step gamma 0.1 at 65: %.9g",
        amp_lr_at(&s, 65));

  s.kind = AMP_LR_COSINE;
  s.base = 0.1f;
  s.min_lr = 0.001f;
  s.warmup = 10;
  s.total = 110;
  const double base = 0.1f, mn = 0.001f;
  CHECK(fabs(amp_lr_at(&s, 0) - base / 10) <= 4 * ULP * base, "warm-up starts at base/warmup: %g",
        amp_lr_at(&s, 0));
  CHECK(fabs(amp_lr_at(&s, 4) - base * 5 / 10) <= 4 * ULP * base, "warm-up is linear: %g",
        amp_lr_at(&s, 4));
  CHECK(fabs(amp_lr_at(&s, 9) - base) <= 4 * ULP * base, "warm-up ends at base: %g",
        amp_lr_at(&s, 9));
  CHECK(fabs(amp_lr_at(&s, 10) - base) <= 4 * ULP * base, "cosine starts at base: %g",
        amp_lr_at(&s, 10));
  CHECK(fabs(amp_lr_at(&s, 60) - (base + mn) / 2) <= 4 * ULP * base, "midpoint: %g",
        amp_lr_at(&s, 60));
  double q = mn + (base - mn) * 0.5 * (1 + cos(3.141592653589793 * 0.25));
  CHECK(fabs(amp_lr_at(&s, 35) - q) <= 4 * ULP * base, "quarter: %g want %g", amp_lr_at(&s, 35), q);
  CHECK(fabs(amp_lr_at(&s, 110) - mn) <= 4 * ULP * mn, "ends at min_lr: %g", amp_lr_at(&s, 110));
  CHECK(fabs(amp_lr_at(&s, 500) - mn) <= 4 * ULP * mn, "stays at min_lr: %g", amp_lr_at(&s, 500));
  int mono = 1;
  for (int64_t k = 11; k <= 110; k++) mono &= amp_lr_at(&s, k) <= amp_lr_at(&s, k - 1);
  CHECK(mono, "cosine decreases");
  CHECK(amp_lr_at(&s, 109) > mn && amp_lr_at(&s, 109) < mn + (base - mn) * 0.01,
        "one step before the end");
}

/* ---- bad settings ---- */
static void test_errors(void) {
  amp_ctx *ctx = new_ctx(1);
  amp_rng rng;
  amp_rng_seed(&rng, 1);
  amp_module *model = amp_nn_linear(ctx, &rng, 3, 2, 1);
  for (int c = 0; c < 8; c++) {
    amp_optim_params p = amp_optim_defaults(c < 2 || c == 6 ? AMP_OPTIM_SGD : AMP_OPTIM_ADAM);
    amp_module *m = model;
    const char *what = "";
    switch (c) {
    case 0:
      p.lr = -1;
      what = "negative lr";
      break;
    case 1:
      p.nesterov = 1;
      what = "nesterov without momentum";
      break;
    case 2:
      p.beta1 = 1;
      what = "beta1 = 1";
      break;
    case 3:
      p.work_dtype = AMP_I32;
      what = "work dtype i32";
      break;
    case 4:
      m = NULL;
      what = "NULL model";
      break;
    case 5:
      p.eps = -1;
      what = "negative eps";
      break;
    case 6:
      p.momentum = 0.9f;
      p.nesterov = 1;
      p.dampening = 0.1f;
      what = "nesterov with dampening";
      break;
    case 7:
      p.lr = NAN;
      what = "NaN lr";
      break;
    }
    amp_ctx_clear_error(ctx);
    amp_optim *o = amp_optim_create(ctx, m, &p);
    CHECK(o == NULL, "%s gives NULL", what);
    CHECK(amp_ctx_status(ctx) == AMP_ERR_INVALID_ARG, "%s: status %d", what, amp_ctx_status(ctx));
    CHECK(strstr(amp_ctx_error(ctx), "amp_optim_create") != NULL, "%s: message '%s'", what,
          amp_ctx_error(ctx));
  }
  amp_ctx_clear_error(ctx);
  CHECK(amp_optim_create(ctx, model, NULL) == NULL, "NULL params");
  CHECK(amp_optim_create(NULL, model, NULL) == NULL, "NULL ctx");
  CHECK(amp_optim_step(NULL) == AMP_ERR_INVALID_ARG, "step(NULL)");
  CHECK(amp_optim_clip_grad_norm(NULL, 1, NULL) == AMP_ERR_INVALID_ARG, "clip(NULL)");
  amp_optim_zero_grad(NULL);
  CHECK(amp_optim_numel(NULL) == 0 && amp_optim_grad_buffer(NULL) == NULL, "NULL getters");
  /* The model is still usable after failed attempts. */
  amp_ctx_clear_error(ctx);
  amp_optim_params p = amp_optim_defaults(AMP_OPTIM_SGD);
  CHECK(amp_optim_create(ctx, model, &p) != NULL, "a good optimizer after bad ones");
  amp_ctx_free(ctx);
}

/* The parameter store: parameters created one after another lie back to
 * back from the start, so the optimizer works on them where they are (no
 * copy); their pointers never move when more parameters are created; a
 * model assembled out of creation order is moved into one run of its own,
 * and backward then accumulates into the optimizer's gradient buffer. */
static void test_param_store(void) {
  amp_ctx *ctx = new_ctx(1);
  amp_rng rng;
  amp_rng_seed(&rng, 5);
  amp_module *in_order = amp_nn_linear(ctx, &rng, 7, 3, 1);
  amp_tensor *w = amp_module_param(in_order, 0, NULL), *b = amp_module_param(in_order, 1, NULL);
  float *wd = w->data, w0 = wd[0];
  CHECK((float *)b->data == wd + w->numel, "a module's parameters are carved back to back");
  CHECK((float *)b->grad->data == (float *)w->grad->data + w->numel, "so are their gradients");
  amp_optim_params p = amp_optim_defaults(AMP_OPTIM_SGD);
  p.work_dtype = AMP_F16;
  amp_optim *o = amp_optim_create(ctx, in_order, &p);
  CHECK(o && amp_optim_master_buffer(o) == wd && w->data == wd, "in order: used in place");
  CHECK(amp_optim_grad_buffer(o) == w->grad->data, "in order: the gradients too");
  const amp_tensor *ww = amp_param_work(w), *wb = amp_param_work(b);
  CHECK(ww && wb && ww->dtype == AMP_F16 &&
            (const uint16_t *)wb->data == (const uint16_t *)ww->data + w->numel,
        "the working copies are one 16-bit run");
  /* More parameters than the first slab holds: nothing moves. */
  amp_module *big = amp_nn_linear(ctx, &rng, 1100, 1000, 0);
  CHECK(big && w->data == wd && wd[0] == w0, "parameters never move");

  /* Out of creation order: moved into one run, values kept. */
  amp_module *second = amp_nn_linear(ctx, &rng, 4, 2, 1),
             *first = amp_nn_linear(ctx, &rng, 3, 4, 1);
  amp_module *ch[2] = {first, second};
  amp_module *seq = amp_nn_sequential(ctx, 2, ch);
  int np = amp_module_param_count(seq);
  float vals[64];
  int64_t n = 0;
  for (int i = 0; i < np; i++) {
    amp_tensor *t = amp_module_param(seq, i, NULL);
    memcpy(vals + n, t->data, (size_t)t->numel * sizeof(float));
    n += t->numel;
  }
  amp_optim *o2 = amp_optim_create(ctx, seq, &p);
  CHECK(o2 != NULL, "create: %s", amp_ctx_error(ctx));
  float *mb = amp_optim_master_buffer(o2), *gb = amp_optim_grad_buffer(o2);
  CHECK(memcmp(mb, vals, (size_t)n * sizeof(float)) == 0, "moved: values kept in model order");
  int64_t off = 0;
  for (int i = 0; i < np; i++) {
    amp_tensor *t = amp_module_param(seq, i, NULL);
    CHECK((float *)t->data == mb + off && (float *)t->grad->data == gb + off,
          "param %d re-pointed into the run", i);
    off += t->numel;
  }
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){2, 3});
  for (int i = 0; i < 6; i++) ((float *)x->data)[i] = (float)i - 2.5f;
  amp_tensor *loss = amp_sum(ctx, amp_module_forward(ctx, seq, x));
  CHECK(amp_backward(ctx, loss) == AMP_OK, "backward: %s", amp_ctx_error(ctx));
  int nz = 0;
  for (int64_t i = 0; i < n; i++) nz += gb[i] != 0;
  CHECK(nz > n / 2, "backward accumulates into the optimizer's gradient buffer (%d of %lld)", nz,
        (long long)n);
  CHECK(amp_ctx_status(ctx) == AMP_OK, "no error: %s", amp_ctx_error(ctx));
  amp_ctx_free(ctx);
}

int main(void) {
  test_formulas();
  const amp__kernels *native = amp__kernels_native();
  if (native == &amp__kernels_scalar)
    printf("test_optim: only the scalar kernel table here; the SIMD comparison is skipped\n");
  else
    test_simd_matches_ref(native), test_simd_work_copy_specials(native);
#ifdef AMPC_HAVE_X86_SIMD
  /* The AVX2 table too where the native one is wider (AVX-512). */
  if (native != &amp__kernels_avx2 && native != &amp__kernels_scalar)
    test_simd_matches_ref(&amp__kernels_avx2), test_simd_work_copy_specials(&amp__kernels_avx2);
#endif
  test_work_copies();
  test_master_weights();
  test_clip();
  test_threads();
  test_repoint();
  test_param_store();
  test_lr();
  test_errors();
  TEST_MAIN_END();
}
