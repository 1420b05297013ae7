/* Loss scaling: PyTorch GradScaler defaults and update rule (growth after
 * exactly growth_interval clean steps, finite-only growth, backoff and skip on
 * inf/NaN), the unscale/step/update state machine, min/max clamps,
 * hysteresis, static and disabled modes, state round trips, gradient
 * accumulation (bit-identical to unscaled training for a power-of-two
 * scale), and a small model trained under F16 autocast. */
#include "ampc.h"
#include "check.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct rig {
  amp_ctx *ctx;
  amp_module *model;
  amp_optim *opt;
  int64_t n;
} rig;

static rig make_rig(void) {
  rig r;
  r.ctx = amp_ctx_create(NULL);
  amp_ctx_set_threads(r.ctx, 1);
  amp_rng rng;
  amp_rng_seed(&rng, 4);
  r.model = amp_nn_linear(r.ctx, &rng, 9, 5, 1); /* 50 values */
  amp_optim_params p = amp_optim_defaults(AMP_OPTIM_SGD);
  p.lr = 0.1f;
  r.opt = amp_optim_create(r.ctx, r.model, &p);
  r.n = amp_optim_numel(r.opt);
  return r;
}

/* Finite gradients (already "scaled"), optionally one non-finite value. */
static void set_grads(rig *r, uint64_t seed, int64_t bad_at, float bad) {
  amp_rng g;
  amp_rng_seed(&g, seed);
  float *gb = amp_optim_grad_buffer(r->opt);
  for (int64_t i = 0; i < r->n; i++) gb[i] = amp_rng_uniform(&g, -100, 100);
  if (bad_at >= 0) gb[bad_at] = bad;
}

/* One full iteration: gradients, step, update. Returns what step returned. */
static int iterate(rig *r, amp_scaler *sc, int overflow, uint64_t seed) {
  set_grads(r, seed, overflow ? r->n / 2 : -1, INFINITY);
  int s = amp_scaler_step(sc, r->opt);
  amp_scaler_update(sc);
  return s;
}

static amp_scaler *make_scaler(rig *r, float init, int64_t interval) {
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  p.init_scale = init;
  p.growth_interval = interval;
  return amp_scaler_create(r->ctx, &p);
}

static void test_defaults(void) {
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  CHECK(p.mode == AMP_SCALER_DYNAMIC, "mode");
  CHECK(p.init_scale == 65536.0f, "init_scale %g", p.init_scale);
  CHECK(p.growth_factor == 2.0f, "growth_factor %g", p.growth_factor);
  CHECK(p.backoff_factor == 0.5f, "backoff_factor %g", p.backoff_factor);
  CHECK(p.growth_interval == 2000, "growth_interval %lld", (long long)p.growth_interval);
  CHECK(p.hysteresis == 1, "hysteresis %d", p.hysteresis);
  CHECK(p.min_scale == 0 && p.max_scale == 0, "no clamps by default");
  rig r = make_rig();
  amp_scaler *sc = amp_scaler_create(r.ctx, &p);
  CHECK(sc && amp_scaler_get_scale(sc) == 65536.0f, "initial scale");
  amp_scaler_state st = amp_scaler_get_state(sc);
  CHECK(st.growth_tracker == 0 && st.hysteresis_left == 1 && st.skipped == 0, "initial state");
  /* Bad settings. */
  for (int c = 0; c < 9; c++) {
    amp_scaler_params q = p;
    if (c == 5) q.min_scale = 1e6f; /* init_scale below the floor */
    if (c == 6) q.max_scale = 1024; /* init_scale above the ceiling */
    if (c == 7) q.min_scale = -1;
    if (c == 8) {
      q.min_scale = 100;
      q.max_scale = 10;
    }
    if (c == 0) q.init_scale = -1;
    if (c == 1) q.growth_factor = 1;
    if (c == 2) q.backoff_factor = 1;
    if (c == 3) q.growth_interval = 0;
    if (c == 4) q.hysteresis = 0;
    amp_ctx_clear_error(r.ctx);
    CHECK(amp_scaler_create(r.ctx, &q) == NULL, "bad setting %d rejected", c);
    CHECK(amp_ctx_status(r.ctx) == AMP_ERR_INVALID_ARG && amp_ctx_error(r.ctx)[0],
          "bad setting %d: message", c);
  }
  amp_ctx_free(r.ctx);
}

static void test_growth(void) {
  rig r = make_rig();
  amp_scaler *sc = make_scaler(&r, 1024, 3);
  const float want[7] = {1024, 1024, 2048, 2048, 2048, 4096, 4096};
  for (int i = 0; i < 7; i++) {
    CHECK(iterate(&r, sc, 0, 10 + i) == 1, "clean step %d steps", i);
    CHECK(amp_scaler_get_scale(sc) == want[i], "after clean step %d: scale %g want %g", i + 1,
          amp_scaler_get_scale(sc), want[i]);
    CHECK(amp_scaler_get_state(sc).growth_tracker == (i + 1) % 3, "tracker after %d: %lld", i + 1,
          (long long)amp_scaler_get_state(sc).growth_tracker);
  }
  CHECK(amp_optim_steps(r.opt) == 7, "7 updates");
  /* Growth only to a finite scale. */
  amp_scaler *big = make_scaler(&r, 0x1p127f, 1);
  CHECK(iterate(&r, big, 0, 50) == 1, "steps at 2^127");
  CHECK(amp_scaler_get_scale(big) == 0x1p127f, "2^127 does not grow to inf: %g",
        amp_scaler_get_scale(big));
  CHECK(amp_scaler_get_state(big).growth_tracker == 0, "refused growth resets the tracker");
  amp_scaler *near = make_scaler(&r, 0x1p126f, 1);
  iterate(&r, near, 0, 51);
  CHECK(amp_scaler_get_scale(near) == 0x1p127f, "2^126 grows to 2^127");
  iterate(&r, near, 0, 52);
  CHECK(amp_scaler_get_scale(near) == 0x1p127f && isfinite(amp_scaler_get_scale(near)),
        "then stays finite");
  amp_ctx_free(r.ctx);
}

static void test_skip(void) {
  const float bads[2] = {INFINITY, NAN};
  for (int b = 0; b < 2; b++)
    for (int pos = 0; pos < 3; pos++) {
      rig r = make_rig();
      amp_scaler *sc = make_scaler(&r, 4096, 3);
      iterate(&r, sc, 0, 1);
      iterate(&r, sc, 0, 2);
      CHECK(amp_scaler_get_state(sc).growth_tracker == 2, "two clean steps counted");
      int64_t at = pos == 0 ? 0 : pos == 1 ? r.n / 2 : r.n - 1;
      set_grads(&r, 3, at, bads[b]);
      float *before = malloc((size_t)r.n * sizeof(float));
      memcpy(before, amp_optim_master_buffer(r.opt), (size_t)r.n * sizeof(float));
      int s = amp_scaler_step(sc, r.opt);
      CHECK(s == 0, "%s at %lld: step skipped (returned %d)", b ? "nan" : "inf", (long long)at, s);
      CHECK(amp_scaler_found_inf(sc), "found_inf");
      CHECK(memcmp(before, amp_optim_master_buffer(r.opt), (size_t)r.n * sizeof(float)) == 0,
            "%s at %lld: parameters unchanged", b ? "nan" : "inf", (long long)at);
      CHECK(amp_optim_steps(r.opt) == 2, "skipped step not counted by the optimizer");
      CHECK(amp_scaler_get_scale(sc) == 4096, "scale unchanged before update");
      amp_scaler_update(sc);
      amp_scaler_state st = amp_scaler_get_state(sc);
      CHECK(st.scale == 2048, "%s at %lld: scale halves: %g", b ? "nan" : "inf", (long long)at,
            st.scale);
      CHECK(st.growth_tracker == 0, "tracker reset");
      CHECK(st.skipped == 1, "skipped count");
      CHECK(!amp_scaler_found_inf(sc), "found_inf forgotten after update");
      CHECK(iterate(&r, sc, 0, 4) == 1, "a clean step after it steps");
      CHECK(memcmp(before, amp_optim_master_buffer(r.opt), (size_t)r.n * sizeof(float)) != 0,
            "parameters change");
      CHECK(amp_scaler_get_state(sc).growth_tracker == 1, "count restarts");
      free(before);
      amp_ctx_free(r.ctx);
    }
}

static void test_unscale_state(void) {
  rig r = make_rig();
  amp_scaler *sc = make_scaler(&r, 1024, 2000);
  set_grads(&r, 9, -1, 0);
  float *g0 = malloc((size_t)r.n * sizeof(float));
  memcpy(g0, amp_optim_grad_buffer(r.opt), (size_t)r.n * sizeof(float));
  CHECK(amp_scaler_unscale(sc, r.opt) == AMP_OK, "unscale");
  int exact = 1;
  for (int64_t i = 0; i < r.n; i++) exact &= amp_optim_grad_buffer(r.opt)[i] == g0[i] / 1024.0f;
  CHECK(exact, "gradients multiplied by 1/S exactly, in the buffer");
  CHECK(amp_optim_grad_factor(r.opt) == 1.0f, "no factor left pending");
  amp_ctx_clear_error(r.ctx);
  CHECK(amp_scaler_unscale(sc, r.opt) == AMP_ERR_STATE, "unscale twice");
  CHECK(amp_ctx_status(r.ctx) == AMP_ERR_STATE, "recorded");
  exact = 1;
  for (int64_t i = 0; i < r.n; i++) exact &= amp_optim_grad_buffer(r.opt)[i] == g0[i] / 1024.0f;
  CHECK(exact, "a refused second unscale leaves the gradients alone");
  amp_ctx_clear_error(r.ctx);
  CHECK(amp_scaler_step(sc, r.opt) == 1, "step after an explicit unscale");
  CHECK(amp_scaler_unscale(sc, r.opt) == AMP_ERR_STATE, "unscale after step");
  CHECK(amp_scaler_step(sc, r.opt) == -1, "step twice before update");
  CHECK(amp_optim_steps(r.opt) == 1, "only one update");
  amp_ctx_clear_error(r.ctx);
  CHECK(amp_scaler_update(sc) == AMP_OK, "update");
  set_grads(&r, 10, -1, 0);
  CHECK(amp_scaler_unscale(sc, r.opt) == AMP_OK, "unscale allowed after update");
  CHECK(amp_scaler_step(sc, r.opt) == 1, "step allowed after update");
  CHECK(amp_scaler_update(sc) == AMP_OK, "update");
  CHECK(amp_scaler_step(sc, r.opt) == 1, "step without explicit unscale");
  CHECK(amp_scaler_update(sc) == AMP_OK, "update");
  CHECK(amp_ctx_status(r.ctx) == AMP_OK, "no error recorded by legal use");
  /* A non-power-of-two scale: 1/S rounded once from the FP64 reciprocal. */
  amp_scaler *odd = make_scaler(&r, 3.0f, 2000);
  set_grads(&r, 11, -1, 0);
  memcpy(g0, amp_optim_grad_buffer(r.opt), (size_t)r.n * sizeof(float));
  amp_scaler_unscale(odd, r.opt);
  const float inv = (float)(1.0 / 3.0);
  exact = 1;
  CHECK(amp_optim_grad_factor(r.opt) == 1.0f, "no factor left pending");
  for (int64_t i = 0; i < r.n; i++) exact &= amp_optim_grad_buffer(r.opt)[i] == g0[i] * inv;
  CHECK(exact, "the gradients are g * fp32(1/fp64(S))");
  amp_scaler_update(odd);
  free(g0);
  amp_ctx_free(r.ctx);
}

/* A clip factor set for gradients that the scaler then discards does not
   leak into the next step. */
static void test_skip_drops_clip(void) {
  rig a = make_rig(), b = make_rig();
  amp_scaler_params sp = amp_scaler_defaults(AMP_SCALER_STATIC);
  sp.init_scale = 1;
  amp_scaler *sa = amp_scaler_create(a.ctx, &sp), *sb = amp_scaler_create(b.ctx, &sp);
  set_grads(&a, 1, -1, 0);
  float norm = 0;
  amp_optim_clip_grad_norm(a.opt, 1.0f, &norm);
  CHECK(norm > 1.0f, "the clip sets a factor");
  amp_optim_grad_buffer(a.opt)[7] = INFINITY; /* e.g. a late micro-batch */
  CHECK(amp_scaler_step(sa, a.opt) == 0, "skipped");
  amp_scaler_update(sa);
  set_grads(&a, 2, -1, 0);
  set_grads(&b, 2, -1, 0);
  CHECK(amp_scaler_step(sa, a.opt) == 1 && amp_scaler_step(sb, b.opt) == 1, "both step");
  CHECK(memcmp(amp_optim_master_buffer(a.opt), amp_optim_master_buffer(b.opt),
               (size_t)a.n * sizeof(float)) == 0,
        "the discarded step's clip factor is not applied to the next one");
  amp_ctx_free(a.ctx);
  amp_ctx_free(b.ctx);
}

static void test_clamps_hysteresis(void) {
  rig r = make_rig();
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  p.init_scale = 512;
  p.min_scale = 256;
  p.growth_interval = 1;
  amp_scaler *lo = amp_scaler_create(r.ctx, &p);
  iterate(&r, lo, 1, 1);
  CHECK(amp_scaler_get_scale(lo) == 256, "backoff to the floor: %g", amp_scaler_get_scale(lo));
  iterate(&r, lo, 1, 2);
  CHECK(amp_scaler_get_scale(lo) == 256, "not below min_scale: %g", amp_scaler_get_scale(lo));
  p.min_scale = 300; /* a floor that is not a power of two */
  amp_scaler *lo2 = amp_scaler_create(r.ctx, &p);
  iterate(&r, lo2, 1, 3);
  CHECK(amp_scaler_get_scale(lo2) == 300, "clamped to 300: %g", amp_scaler_get_scale(lo2));
  p.min_scale = 0;
  p.max_scale = 1000;
  amp_scaler *hi = amp_scaler_create(r.ctx, &p);
  iterate(&r, hi, 0, 4);
  CHECK(amp_scaler_get_scale(hi) == 1000, "growth capped at max_scale: %g",
        amp_scaler_get_scale(hi));
  iterate(&r, hi, 0, 5);
  CHECK(amp_scaler_get_scale(hi) == 1000, "stays at max_scale");

  /* Hysteresis 2 (DeepSpeed, refilled when the scale grows). */
  p = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  p.init_scale = 1024;
  p.growth_interval = 3;
  p.hysteresis = 2;
  amp_scaler *h = amp_scaler_create(r.ctx, &p);
  CHECK(amp_scaler_get_state(h).hysteresis_left == 2, "allowance 2");
  CHECK(iterate(&r, h, 1, 6) == 0, "first overflow skips");
  CHECK(amp_scaler_get_scale(h) == 1024, "first overflow does not back off: %g",
        amp_scaler_get_scale(h));
  CHECK(amp_scaler_get_state(h).hysteresis_left == 1, "allowance used");
  CHECK(iterate(&r, h, 1, 7) == 0, "second overflow skips");
  CHECK(amp_scaler_get_scale(h) == 512, "second overflow backs off: %g", amp_scaler_get_scale(h));
  CHECK(iterate(&r, h, 1, 8) == 0, "third overflow skips");
  CHECK(amp_scaler_get_scale(h) == 256, "exhausted: every overflow backs off: %g",
        amp_scaler_get_scale(h));
  for (int i = 0; i < 3; i++) CHECK(iterate(&r, h, 0, 9 + i) == 1, "clean");
  CHECK(amp_scaler_get_scale(h) == 512, "grows after 3 clean steps");
  CHECK(amp_scaler_get_state(h).hysteresis_left == 2, "growth restores the allowance");
  iterate(&r, h, 1, 12);
  CHECK(amp_scaler_get_scale(h) == 512, "an overflow after growth only skips");
  CHECK(amp_scaler_get_state(h).skipped == 4, "4 skipped: %lld",
        (long long)amp_scaler_get_state(h).skipped);
  amp_ctx_free(r.ctx);
}

static void test_static_none(void) {
  rig r = make_rig();
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_STATIC);
  p.init_scale = 128;
  p.growth_interval = 1;
  amp_scaler *st = amp_scaler_create(r.ctx, &p);
  CHECK(iterate(&r, st, 0, 1) == 1, "static: clean steps");
  CHECK(iterate(&r, st, 0, 2) == 1, "static: clean steps");
  CHECK(amp_scaler_get_scale(st) == 128, "static: never grows");
  CHECK(iterate(&r, st, 1, 3) == 0, "static: overflow skipped");
  CHECK(amp_scaler_get_scale(st) == 128, "static: never backs off");
  CHECK(amp_scaler_get_state(st).skipped == 1, "static: skip counted");

  amp_scaler *no =
      amp_scaler_create(r.ctx, (amp_scaler_params[]){amp_scaler_defaults(AMP_SCALER_NONE)});
  CHECK(no != NULL, "none mode");
  CHECK(amp_scaler_get_scale(no) == 1.0f, "none: scale 1");
  amp_tensor *loss = amp_tensor_zeros(r.ctx, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){1});
  CHECK(amp_scaler_scale(no, loss) == loss, "none: scale returns the loss itself");
  amp_tensor *ls = amp_scaler_scale(st, loss);
  CHECK(ls && ls != loss && ls->numel == 1, "static: a new scaled tensor");
  set_grads(&r, 4, 3, NAN);
  float g5 = amp_optim_grad_buffer(r.opt)[5];
  int64_t before = amp_optim_steps(r.opt);
  CHECK(amp_scaler_step(no, r.opt) == 1, "none: steps even with NaN");
  CHECK(amp_optim_grad_buffer(r.opt)[5] == g5, "none: gradients not unscaled");
  CHECK(amp_optim_steps(r.opt) == before + 1, "none: the optimizer stepped");
  amp_scaler_update(no);
  CHECK(amp_scaler_get_scale(no) == 1.0f && amp_scaler_get_state(no).skipped == 0,
        "none: nothing changes");
  amp_ctx_free(r.ctx);
}

static int states_equal(amp_scaler_state a, amp_scaler_state b) {
  return a.scale == b.scale && a.growth_tracker == b.growth_tracker &&
         a.hysteresis_left == b.hysteresis_left && a.skipped == b.skipped &&
         a.params.mode == b.params.mode && a.params.init_scale == b.params.init_scale &&
         a.params.growth_factor == b.params.growth_factor &&
         a.params.backoff_factor == b.params.backoff_factor &&
         a.params.growth_interval == b.params.growth_interval &&
         a.params.min_scale == b.params.min_scale && a.params.max_scale == b.params.max_scale &&
         a.params.hysteresis == b.params.hysteresis;
}

static void test_state(void) {
  rig ra = make_rig(), rb = make_rig();
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  p.init_scale = 1 << 20;
  p.growth_interval = 4;
  p.hysteresis = 2;
  p.min_scale = 8;
  amp_scaler *a = amp_scaler_create(ra.ctx, &p);
  amp_scaler *b = make_scaler(&rb, 7, 100); /* different everything */
  amp_rng coin;
  amp_rng_seed(&coin, 123);
  for (int i = 0; i < 13; i++) iterate(&ra, a, amp_rng_next(&coin) % 3 == 0, i);
  amp_scaler_state sa = amp_scaler_get_state(a);
  CHECK(amp_scaler_set_state(b, &sa) == AMP_OK, "set_state");
  CHECK(states_equal(amp_scaler_get_state(b), sa), "round trip");
  int same = 1;
  for (int i = 0; i < 60; i++) {
    int ov = amp_rng_next(&coin) % 4 == 0;
    int s1 = iterate(&ra, a, ov, 100 + i), s2 = iterate(&rb, b, ov, 100 + i);
    same &= s1 == s2 && amp_scaler_get_scale(a) == amp_scaler_get_scale(b) &&
            states_equal(amp_scaler_get_state(a), amp_scaler_get_state(b));
  }
  CHECK(same, "two scalers after a state copy behave identically");
  /* Invalid states are rejected, the scaler unchanged. */
  amp_scaler_state before = amp_scaler_get_state(b);
  for (int c = 0; c < 6; c++) {
    amp_scaler_state bad = before;
    if (c == 5) bad.scale = bad.params.min_scale / 2; /* below the floor */
    if (c == 0) bad.scale = -1;
    if (c == 1) bad.growth_tracker = bad.params.growth_interval;
    if (c == 2) bad.scale = INFINITY;
    if (c == 3) bad.hysteresis_left = 0;
    if (c == 4) bad.params.growth_factor = 0.5f;
    amp_ctx_clear_error(rb.ctx);
    CHECK(amp_scaler_set_state(b, &bad) == AMP_ERR_INVALID_ARG, "bad state %d rejected", c);
    CHECK(amp_ctx_status(rb.ctx) == AMP_ERR_INVALID_ARG, "bad state %d recorded", c);
    CHECK(states_equal(amp_scaler_get_state(b), before), "bad state %d: scaler unchanged", c);
  }
  amp_ctx_free(ra.ctx);
  amp_ctx_free(rb.ctx);
}

/* ---- a tiny MLP on fixed data ---- */
typedef struct data {
  float x[64 * 8];
  int32_t y[64];
} data;

static void make_data(data *d) {
  amp_rng r;
  amp_rng_seed(&r, 2024);
  float w[4][8];
  for (int c = 0; c < 4; c++)
    for (int j = 0; j < 8; j++) w[c][j] = amp_rng_normal(&r);
  for (int i = 0; i < 64; i++) {
    float best = -INFINITY;
    for (int j = 0; j < 8; j++) d->x[i * 8 + j] = amp_rng_normal(&r);
    for (int c = 0; c < 4; c++) {
      float s = 0;
      for (int j = 0; j < 8; j++) s += w[c][j] * d->x[i * 8 + j];
      if (s > best) {
        best = s;
        d->y[i] = c;
      }
    }
  }
}

static amp_module *mlp(amp_ctx *ctx) {
  amp_rng rng;
  amp_rng_seed(&rng, 31);
  amp_module *ch[3] = {amp_nn_linear(ctx, &rng, 8, 16, 1), amp_nn_relu(ctx),
                       amp_nn_linear(ctx, &rng, 16, 4, 1)};
  return amp_nn_sequential(ctx, 3, ch);
}

/* Loss of rows [r0, r0+rows) of the data. */
static amp_tensor *batch_loss(amp_ctx *ctx, amp_module *m, const data *d, int r0, int rows) {
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){rows, 8});
  amp_tensor *y = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_I32, 1, (int64_t[]){rows});
  if (!x || !y) return NULL;
  memcpy(x->data, d->x + r0 * 8, sizeof(float) * 8 * (size_t)rows);
  memcpy(y->data, d->y + r0, sizeof(int32_t) * (size_t)rows);
  return amp_cross_entropy(ctx, amp_module_forward(ctx, m, x), y);
}

/* grads_checked_in_backward: the one-pass step takes the weight-gradient
 * GEMMs' verdicts instead of reading those gradients. Three twins: k = 0
 * without the setting, k = 1 with it (and zero_grad_in_step), k = 2 with it
 * and biases (gradients no GEMM checks, sharing 4096-value blocks with the
 * weights'). Over clean steps k = 0 and 1 keep the same bits; an inf in the
 * input reaches every gradient through the GEMMs alone (k = 1 reads none)
 * and all skip; the step right after, on zeroed gradients without a
 * backward, must not trust the stale verdict. An inf written behind the
 * library's back into a weight gradient is found where its block holds an
 * unchecked bias gradient, and not where it holds only checked ones (the
 * setting's documented contract), which shows the pass is really gone. */
static void test_backward_checks(void) {
  static data d;
  make_data(&d);
  amp_ctx *ctx[3];
  amp_module *m[3];
  amp_optim *o[3];
  amp_scaler *sc[3];
  for (int k = 0; k < 3; k++) {
    ctx[k] = amp_ctx_create(NULL);
    amp_ctx_set_threads(ctx[k], 2);
    amp_rng rng;
    amp_rng_seed(&rng, 77);
    /* 8·4500 = 36000 weights, then (k = 2) 4500 biases from 36000: block 8
       (32768..36863) holds both */
    amp_module *ch[3] = {amp_nn_linear(ctx[k], &rng, 8, 4500, k == 2), amp_nn_relu(ctx[k]),
                         amp_nn_linear(ctx[k], &rng, 4500, 4, k == 2)};
    m[k] = amp_nn_sequential(ctx[k], 3, ch);
    amp_optim_params p = amp_optim_defaults(AMP_OPTIM_ADAM);
    p.work_dtype = AMP_F16;
    p.grads_checked_in_backward = k > 0;
    p.zero_grad_in_step = k == 1;
    o[k] = amp_optim_create(ctx[k], m[k], &p);
    sc[k] = make_scaler(&(rig){ctx[k], m[k], o[k], 0}, 1024.0f, 2000);
  }
  const int64_t n = amp_optim_numel(o[0]);
  /* Per iteration: 0 clean, 1 inf input, 2 no backward, 3 clean, 4 inf at
     weight 33000 (block 8: found by k = 2 only), 5 inf at weight 1000 and
     (k = 2, which skipped step 4) at the last bias. k = 1 took step 4 with
     the inf, so its weights are NaN from then on and it skips step 5. */
  const int want[3][6] = {{1, 0, 1, 1, 0, 0}, {1, 0, 1, 1, 1, 0}, {1, 0, 1, 1, 0, 0}};
  for (int it = 0; it < 6; it++) {
    for (int k = 0; k < 3; k++) {
      amp_ctx_step_reset(ctx[k]);
      if (it != 2) {
        static data dd;
        dd = d;
        if (it == 1) dd.x[3] = INFINITY;
        amp_autocast_begin(ctx[k], AMP_F16);
        amp_tensor *loss = batch_loss(ctx[k], m[k], &dd, 0, 64);
        amp_autocast_end(ctx[k]);
        CHECK(loss && amp_backward(ctx[k], amp_scaler_scale(sc[k], loss)) == AMP_OK,
              "iteration %d: backward", it);
      }
      float *gw = (float *)amp_module_param(m[k], 0, NULL)->grad->data;
      if (it == 4) gw[33000] = INFINITY;
      if (it == 5) {
        gw[1000] = INFINITY;
        if (k == 2) amp_optim_grad_buffer(o[k])[amp_optim_numel(o[k]) - 1] = INFINITY;
      }
      const int stepped = amp_scaler_step(sc[k], o[k]);
      CHECK(stepped == want[k][it], "twin %d, iteration %d: stepped %d, want %d", k, it, stepped,
            want[k][it]);
      amp_scaler_update(sc[k]);
      if (k != 1) amp_optim_zero_grad(o[k]);
    }
    if (it < 4)
      CHECK(memcmp(amp_optim_master_buffer(o[0]), amp_optim_master_buffer(o[1]),
                   (size_t)n * sizeof(float)) == 0,
            "iteration %d: the verdicts changed the masters", it);
  }
  for (int k = 0; k < 3; k++) amp_ctx_free(ctx[k]);
}

static void test_accumulation(void) {
  static data d;
  make_data(&d);
  amp_ctx *ca = amp_ctx_create(NULL), *cb = amp_ctx_create(NULL);
  amp_module *ma = mlp(ca), *mb = mlp(cb);
  amp_optim_params p = amp_optim_defaults(AMP_OPTIM_ADAM);
  p.lr = 0.01f;
  amp_optim *oa = amp_optim_create(ca, ma, &p), *ob = amp_optim_create(cb, mb, &p);
  amp_scaler *sc = make_scaler(&(rig){ca, ma, oa, 0}, 0x1p12f, 2000);
  int64_t n = amp_optim_numel(oa);
  float *ga = malloc((size_t)n * sizeof(float));
  int all_equal = 1, grads_equal = 1, stepped = 1;
  for (int it = 0; it < 3; it++) {
    amp_optim_zero_grad(oa);
    amp_optim_zero_grad(ob);
    for (int mb_i = 0; mb_i < 4; mb_i++) {
      amp_tensor *la = amp_scaler_scale(sc, batch_loss(ca, ma, &d, mb_i * 16, 16));
      CHECK(amp_backward(ca, la) == AMP_OK, "backward scaled: %s", amp_ctx_error(ca));
      amp_ctx_step_reset(ca);
      amp_tensor *lb = batch_loss(cb, mb, &d, mb_i * 16, 16);
      CHECK(amp_backward(cb, lb) == AMP_OK, "backward unscaled: %s", amp_ctx_error(cb));
      amp_ctx_step_reset(cb);
    }
    /* The scaled gradients are exactly S times the unscaled ones. */
    const float *gsa = amp_optim_grad_buffer(oa), *gsb = amp_optim_grad_buffer(ob);
    for (int64_t i = 0; i < n; i++) grads_equal &= gsa[i] == gsb[i] * 0x1p12f;
    stepped &= amp_scaler_step(sc, oa) == 1;
    memcpy(ga, gsa, (size_t)n * sizeof(float));
    amp_scaler_update(sc);
    amp_optim_step(ob);
    /* The step applied 1/S exactly and left the buffer unscaled. */
    for (int64_t i = 0; i < n; i++) all_equal &= ga[i] == gsb[i];
    all_equal &=
        memcmp(amp_optim_master_buffer(oa), amp_optim_master_buffer(ob), n * sizeof(float)) == 0;
  }
  CHECK(stepped, "accumulated steps were taken");
  CHECK(grads_equal, "accumulated scaled gradients = S x unscaled, exactly");
  CHECK(all_equal, "4 micro-batches with scale 2^12 = the same with scale 1, bit for bit");
  CHECK(amp_optim_steps(oa) == 3, "3 updates");
  free(ga);
  amp_ctx_free(ca);
  amp_ctx_free(cb);
}

static void test_training(void) {
  static data d;
  make_data(&d);
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_module *m = mlp(ctx);
  amp_optim_params p = amp_optim_defaults(AMP_OPTIM_ADAM);
  p.lr = 0.02f;
  p.work_dtype = AMP_F16;
  amp_optim *o = amp_optim_create(ctx, m, &p);
  amp_scaler_params sp = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  sp.growth_interval = 10;
  amp_scaler *sc = amp_scaler_create(ctx, &sp);
  float first = 0, last = 0;
  int stepped = 0, ok = 1;
  for (int it = 0; it < 60; it++) {
    amp_ctx_step_reset(ctx);
    amp_optim_zero_grad(o);
    amp_autocast_begin(ctx, AMP_F16);
    amp_tensor *loss = batch_loss(ctx, m, &d, 0, 64);
    amp_autocast_end(ctx);
    if (!loss || loss->dtype != AMP_F32) {
      ok = 0;
      break;
    }
    float lv = *(float *)loss->data;
    if (it == 0) first = lv;
    last = lv;
    ok &= amp_backward(ctx, amp_scaler_scale(sc, loss)) == AMP_OK;
    int s = amp_scaler_step(sc, o);
    ok &= s >= 0;
    stepped += s == 1;
    amp_scaler_update(sc);
  }
  CHECK(ok, "training loop ran: %s", amp_ctx_error(ctx));
  CHECK(stepped >= 50, "most steps were taken: %d", stepped);
  CHECK(isfinite(last) && last < 0.5f * first, "loss %g -> %g", first, last);
  printf("test_scaler: F16 training: loss %.4f -> %.4f, %d/60 steps, scale %g\n", first, last,
         stepped, amp_scaler_get_scale(sc));
  amp_ctx_free(ctx);
}

/* A step without an explicit unscale checks and updates in one parallel
 * region; it must give the bits of unscale followed by step, with two
 * threads and many blocks, and change nothing when the only inf/NaN is in
 * either thread's share (the other thread's blocks are checked clean). */
static void test_fused_step(void) {
  amp_ctx *ctx[2];
  amp_optim *opt[2];
  amp_scaler *sc[2];
  amp_module *model[2];
  int64_t n = 0;
  for (int k = 0; k < 2; k++) {
    ctx[k] = amp_ctx_create(NULL);
    amp_ctx_set_threads(ctx[k], 2);
    amp_rng rng;
    amp_rng_seed(&rng, 11);
    model[k] = amp_nn_linear(ctx[k], &rng, 300, 200, 1); /* 60200 values */
    amp_optim_params p = amp_optim_defaults(AMP_OPTIM_ADAM);
    p.work_dtype = AMP_F16;
    opt[k] = amp_optim_create(ctx[k], model[k], &p);
    amp_scaler_params sp = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
    sp.init_scale = 1024;
    sc[k] = amp_scaler_create(ctx[k], &sp);
    n = amp_optim_numel(opt[k]);
  }
  float *before = malloc((size_t)n * sizeof(float));
  for (int it = 0; it < 6; it++) {
    for (int k = 0; k < 2; k++) {
      amp_rng g;
      amp_rng_seed(&g, 100 + (uint64_t)it);
      float *gb = amp_optim_grad_buffer(opt[k]);
      for (int64_t i = 0; i < n; i++) gb[i] = amp_rng_uniform(&g, -50, 50);
      if (it == 2) gb[n - 1] = INFINITY; /* in the second thread's share */
      if (it == 4) gb[0] = NAN;          /* in the first thread's share */
      if (k == 0) memcpy(before, amp_optim_master_buffer(opt[k]), (size_t)n * sizeof(float));
      if (k == 1) CHECK(amp_scaler_unscale(sc[k], opt[k]) == AMP_OK, "unscale");
      int stepped = amp_scaler_step(sc[k], opt[k]);
      CHECK(stepped == (it != 2 && it != 4), "iteration %d, %s: step returned %d", it,
            k ? "unscale" : "fused", stepped);
      if (!stepped) CHECK(amp_optim_grad_factor(opt[k]) == 1.0f, "a skip drops the 1/S factor");
      amp_scaler_update(sc[k]);
    }
    CHECK(memcmp(amp_optim_master_buffer(opt[0]), amp_optim_master_buffer(opt[1]),
                 (size_t)n * sizeof(float)) == 0,
          "iteration %d: fused and unscale-then-step masters differ", it);
    for (int i = 0; i < 2; i++) {
      const amp_tensor *w0 = amp_param_work(amp_module_param(model[0], i, NULL));
      const amp_tensor *w1 = amp_param_work(amp_module_param(model[1], i, NULL));
      CHECK(memcmp(w0->data, w1->data, (size_t)w0->numel * 2) == 0,
            "iteration %d: working copies of parameter %d differ", it, i);
    }
    if (it == 2 || it == 4)
      CHECK(memcmp(before, amp_optim_master_buffer(opt[0]), (size_t)n * sizeof(float)) == 0,
            "iteration %d: an inf/NaN in one block leaves every parameter unchanged", it);
    CHECK(amp_scaler_get_scale(sc[0]) == amp_scaler_get_scale(sc[1]), "scales agree");
  }
  CHECK(amp_optim_steps(opt[0]) == 4 && amp_optim_steps(opt[1]) == 4, "four steps taken");
  free(before);
  for (int k = 0; k < 2; k++) amp_ctx_free(ctx[k]);
}

/* zero_grad_in_step: every step (one-pass, unscale-then-step, a plain
 * optimizer step; taken or skipped) leaves all gradients zero, and the
 * masters and working copies keep the bits of a step followed by
 * amp_optim_zero_grad(). Stochastic rounding takes the second-pass working
 * copy, SGD with momentum another update rule. */
static void test_zero_in_step(void) {
  for (int variant = 0; variant < 4; variant++) {
    amp_ctx *ctx[2];
    amp_optim *opt[2];
    amp_scaler *sc[2];
    amp_module *model[2];
    int64_t n = 0;
    for (int k = 0; k < 2; k++) { /* k = 1 zeroes in the step */
      ctx[k] = amp_ctx_create(NULL);
      amp_ctx_set_threads(ctx[k], 2);
      amp_rng rng;
      amp_rng_seed(&rng, 12);
      model[k] = amp_nn_linear(ctx[k], &rng, 300, 200, 1); /* 60200 values */
      amp_optim_params p = amp_optim_defaults(variant == 3 ? AMP_OPTIM_SGD : AMP_OPTIM_ADAM);
      if (variant == 3) p.momentum = 0.9f;
      p.work_dtype = AMP_F16;
      if (variant == 2) {
        p.rounding = AMP_ROUND_STOCHASTIC;
        p.seed = 5;
      }
      p.zero_grad_in_step = k;
      opt[k] = amp_optim_create(ctx[k], model[k], &p);
      sc[k] = make_scaler(&(rig){ctx[k], model[k], opt[k], 0}, 1024.0f, 2000);
      n = amp_optim_numel(opt[k]);
    }
    for (int it = 0; it < 5; it++) {
      for (int k = 0; k < 2; k++) {
        amp_rng g;
        amp_rng_seed(&g, 200 + (uint64_t)it);
        float *gb = amp_optim_grad_buffer(opt[k]);
        for (int64_t i = 0; i < n; i++) gb[i] += amp_rng_uniform(&g, -50, 50);
        if (it == 2) gb[n - 1] = INFINITY;
        int stepped;
        if (variant == 1 || it == 4) { /* unscale, then step (clip's order) */
          CHECK(amp_scaler_unscale(sc[k], opt[k]) == AMP_OK, "unscale");
          stepped = amp_scaler_step(sc[k], opt[k]);
        } else if (variant == 3 && it == 3) { /* no scaler at all */
          stepped = amp_optim_step(opt[k]) == AMP_OK;
        } else {
          stepped = amp_scaler_step(sc[k], opt[k]);
        }
        CHECK(stepped == (it != 2), "variant %d iteration %d: step returned %d", variant, it,
              stepped);
        amp_scaler_update(sc[k]);
        if (k == 0) amp_optim_zero_grad(opt[k]);
        int zero = 1;
        for (int64_t i = 0; i < n; i++) zero &= gb[i] == 0.0f && !signbit(gb[i]);
        CHECK(zero, "variant %d iteration %d, %s: all gradients +0 after the step", variant, it,
              k ? "zeroed in the step" : "zero_grad");
        CHECK(amp_optim_grad_factor(opt[k]) == 1.0f, "no pending factor");
      }
      CHECK(memcmp(amp_optim_master_buffer(opt[0]), amp_optim_master_buffer(opt[1]),
                   (size_t)n * sizeof(float)) == 0,
            "variant %d iteration %d: masters differ with zero_grad_in_step", variant, it);
      for (int i = 0; i < 2; i++) {
        const amp_tensor *w0 = amp_param_work(amp_module_param(model[0], i, NULL));
        const amp_tensor *w1 = amp_param_work(amp_module_param(model[1], i, NULL));
        CHECK(memcmp(w0->data, w1->data, (size_t)w0->numel * 2) == 0,
              "variant %d iteration %d: working copies of parameter %d differ", variant, it, i);
      }
    }
    CHECK(amp_optim_steps(opt[1]) == 4, "variant %d: four steps taken", variant);
    for (int k = 0; k < 2; k++) amp_ctx_free(ctx[k]);
  }
}

/* ---- GradScaler semantics (issue 10, part B) ---- */

/* Case 1: an unscale (and a clip) whose step never came leaves no factor
 * behind: update and zero_grad drop it, so the next iteration's step is the
 * one a fresh optimizer takes. */
static void test_stale_unscale(void) {
  for (int clip = 0; clip < 2; clip++) {
    rig a = make_rig(), b = make_rig();
    amp_scaler *sa = make_scaler(&a, 1024, 2000), *sb = make_scaler(&b, 1024, 2000);
    set_grads(&a, 1, -1, 0);
    CHECK(amp_scaler_unscale(sa, a.opt) == AMP_OK, "unscale");
    if (clip) amp_optim_clip_grad_norm(a.opt, 1e-3f, NULL);
    /* The loop decides not to step (e.g. a bad loss), updates and moves on. */
    CHECK(amp_scaler_update(sa) == AMP_OK, "update after an unscale without a step");
    CHECK(amp_optim_grad_factor(a.opt) == 1.0f, "%s: update leaves no factor: %g",
          clip ? "unscale+clip" : "unscale", amp_optim_grad_factor(a.opt));
    amp_optim_zero_grad(a.opt);
    set_grads(&a, 2, -1, 0);
    set_grads(&b, 2, -1, 0);
    CHECK(amp_scaler_step(sa, a.opt) == 1 && amp_scaler_step(sb, b.opt) == 1, "both step");
    CHECK(memcmp(amp_optim_master_buffer(a.opt), amp_optim_master_buffer(b.opt),
                 (size_t)a.n * sizeof(float)) == 0,
          "%s without a step: the next step is unaffected", clip ? "unscale+clip" : "unscale");
    amp_ctx_free(a.ctx);
    amp_ctx_free(b.ctx);
  }
  /* The clip writes its coefficient into the gradients (as PyTorch's
     clip_grad_norm_), leaving no factor pending. */
  rig r = make_rig();
  set_grads(&r, 3, -1, 0);
  float *g0 = malloc((size_t)r.n * sizeof(float));
  memcpy(g0, amp_optim_grad_buffer(r.opt), (size_t)r.n * sizeof(float));
  float norm = 0;
  amp_optim_clip_grad_norm(r.opt, 1e-3f, &norm);
  const float c = 1e-3f / (norm + 1e-6f);
  int exact = 1;
  for (int64_t i = 0; i < r.n; i++) exact &= amp_optim_grad_buffer(r.opt)[i] == g0[i] * c;
  CHECK(exact && amp_optim_grad_factor(r.opt) == 1.0f,
        "the clip leaves g * c in the buffer and no pending factor");
  free(g0);
  amp_ctx_free(r.ctx);
}

/* Case 2: after unscale, the gradients themselves are unscaled (as PyTorch's
 * .grad after unscale_), through the buffer and through a parameter's grad;
 * clipping then follows PyTorch's order exactly: g' = g * fp32(1/S), the
 * norm of g', g'' = g' * c, the update from g''. */
static void test_unscaled_grads(void) {
  const float scales[2] = {3.0f, 1024.0f};
  for (int k = 0; k < 2; k++) {
    rig r = make_rig();
    amp_scaler *sc = make_scaler(&r, scales[k], 2000);
    set_grads(&r, 5, -1, 0);
    float *g0 = malloc((size_t)r.n * sizeof(float)), *p0 = malloc((size_t)r.n * sizeof(float));
    memcpy(g0, amp_optim_grad_buffer(r.opt), (size_t)r.n * sizeof(float));
    memcpy(p0, amp_optim_master_buffer(r.opt), (size_t)r.n * sizeof(float));
    const float inv = (float)(1.0 / (double)scales[k]);
    CHECK(amp_scaler_unscale(sc, r.opt) == AMP_OK, "unscale");
    int exact = 1;
    for (int64_t i = 0; i < r.n; i++) exact &= amp_optim_grad_buffer(r.opt)[i] == g0[i] * inv;
    CHECK(exact, "S = %g: the gradient buffer holds g * fp32(1/S)", scales[k]);
    const amp_tensor *w = amp_module_param(r.model, 0, NULL);
    CHECK(((const float *)w->grad->data)[3] == g0[3] * inv, "S = %g: a parameter's grad too",
          scales[k]);
    double ss = 0;
    for (int64_t i = 0; i < r.n; i++) ss += (double)(g0[i] * inv) * (double)(g0[i] * inv);
    float norm = 0, want = (float)sqrt(ss);
    amp_optim_clip_grad_norm(r.opt, 0.1f, &norm);
    CHECK(norm == want, "S = %g: the clip measures the unscaled norm: %.9g want %.9g", scales[k],
          norm, want);
    CHECK(want > 0.1f, "the norm %g is clipped", want);
    const float c = 0.1f / (want + 1e-6f); /* torch.nn.utils.clip_grad_norm_ */
    CHECK(amp_scaler_step(sc, r.opt) == 1, "step");
    exact = 1;
    for (int64_t i = 0; i < r.n; i++) {
      float g = (g0[i] * inv) * c; /* SGD, no momentum or decay: p - lr g */
      exact &= amp_optim_master_buffer(r.opt)[i] == p0[i] + (-0.1f) * g;
    }
    CHECK(exact, "S = %g: unscale, clip, step = PyTorch's unscale_, clip_grad_norm_, step",
          scales[k]);
    amp_scaler_update(sc);
    free(g0);
    free(p0);
    amp_ctx_free(r.ctx);
  }
}

/* Case 2, continued: a step without an explicit unscale (the fused
 * check-and-update pass) also leaves g * fp32(1/S) in the buffer, whether it
 * stepped or skipped, as PyTorch's step (which unscales first) does. */
static void test_fused_step_unscales(void) {
  for (int skip = 0; skip < 2; skip++) {
    rig r = make_rig();
    amp_scaler *sc = make_scaler(&r, 1024.0f, 2000);
    set_grads(&r, 9, skip ? r.n / 3 : -1, INFINITY);
    float *g0 = malloc((size_t)r.n * sizeof(float));
    memcpy(g0, amp_optim_grad_buffer(r.opt), (size_t)r.n * sizeof(float));
    const float inv = (float)(1.0 / 1024.0);
    CHECK(amp_scaler_step(sc, r.opt) == !skip, "%s", skip ? "skipped" : "stepped");
    int exact = 1;
    for (int64_t i = 0; i < r.n; i++) {
      const float got = amp_optim_grad_buffer(r.opt)[i], want = g0[i] * inv;
      exact &= isinf(want) ? isinf(got) : got == want;
    }
    CHECK(exact, "%s: the gradient buffer holds g * fp32(1/S) after a fused step",
          skip ? "skipped" : "stepped");
    CHECK(amp_scaler_update(sc) == AMP_OK, "update");
    free(g0);
    amp_ctx_free(r.ctx);
  }
}

/* A disabled scaler (AMP_SCALER_NONE) keeps no state, as PyTorch's
 * GradScaler(enabled=False): unscale and update do nothing, step is the
 * optimizer's step, in any order and any number of times. */
static void test_disabled_no_state(void) {
  rig r = make_rig();
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_NONE);
  amp_scaler *sc = amp_scaler_create(r.ctx, &p);
  set_grads(&r, 4, -1, 0);
  float *g0 = malloc((size_t)r.n * sizeof(float));
  memcpy(g0, amp_optim_grad_buffer(r.opt), (size_t)r.n * sizeof(float));
  CHECK(amp_scaler_unscale(sc, r.opt) == AMP_OK && amp_scaler_unscale(sc, r.opt) == AMP_OK,
        "disabled: unscale twice is fine");
  CHECK(memcmp(g0, amp_optim_grad_buffer(r.opt), (size_t)r.n * sizeof(float)) == 0,
        "disabled: unscale changes nothing");
  int ok = 1;
  for (int it = 0; it < 3; it++) {
    ok &= amp_scaler_step(sc, r.opt) == 1;
    ok &= amp_scaler_step(sc, r.opt) == 1; /* a second step before update */
    ok &= amp_scaler_update_to(sc, 8.0f) == AMP_OK;
  }
  CHECK(ok, "disabled: step, step, update_to in a loop: every call succeeds (%s)",
        amp_ctx_error(r.ctx));
  CHECK(amp_optim_steps(r.opt) == 6, "disabled: every step is the optimizer's (%lld)",
        (long long)amp_optim_steps(r.opt));
  CHECK(amp_scaler_update(sc) == AMP_OK && amp_scaler_get_scale(sc) == 1.0f,
        "disabled: update is a no-op");
  free(g0);
  amp_ctx_free(r.ctx);
}

/* Case 3: update without an inf/NaN check since the last update is an
 * error (PyTorch asserts "No inf checks were recorded prior to update"). */
static void test_update_needs_check(void) {
  rig r = make_rig();
  amp_scaler *sc = make_scaler(&r, 8, 2);
  for (int i = 0; i < 2; i++) {
    amp_ctx_clear_error(r.ctx);
    CHECK(amp_scaler_update(sc) == AMP_ERR_STATE, "update %d without a check refused", i);
    CHECK(amp_ctx_status(r.ctx) == AMP_ERR_STATE && strstr(amp_ctx_error(r.ctx), "update"),
          "with a message: %s", amp_ctx_error(r.ctx));
  }
  amp_scaler_state st = amp_scaler_get_state(sc);
  CHECK(st.scale == 8 && st.growth_tracker == 0 && st.skipped == 0,
        "no clean step counted: scale %g tracker %lld", st.scale, (long long)st.growth_tracker);
  amp_ctx_clear_error(r.ctx);
  CHECK(iterate(&r, sc, 0, 1) == 1 && amp_scaler_get_state(sc).growth_tracker == 1,
        "a real step counts");
  set_grads(&r, 2, -1, 0);
  CHECK(amp_scaler_unscale(sc, r.opt) == AMP_OK && amp_scaler_update(sc) == AMP_OK,
        "an unscale is a check");
  CHECK(amp_scaler_get_scale(sc) == 16, "grows after 2 checked steps: %g",
        amp_scaler_get_scale(sc));
  amp_scaler *no =
      amp_scaler_create(r.ctx, (amp_scaler_params[]){amp_scaler_defaults(AMP_SCALER_NONE)});
  CHECK(amp_scaler_update(no) == AMP_OK, "disabled: update is a no-op");
  CHECK(amp_ctx_status(r.ctx) == AMP_OK, "no error from legal use");
  amp_ctx_free(r.ctx);
}

/* Case 4: any number of optimizers share a step (no fixed limit). */
static void test_many_optimizers(void) {
  enum { K = 20 };
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_optim *o[K];
  for (int k = 0; k < K; k++) {
    amp_rng rng;
    amp_rng_seed(&rng, (uint64_t)k);
    amp_optim_params p = amp_optim_defaults(AMP_OPTIM_SGD);
    o[k] = amp_optim_create(ctx, amp_nn_linear(ctx, &rng, 3, 2, 1), &p);
  }
  rig r = {ctx, NULL, NULL, 0};
  amp_scaler *sc = make_scaler(&r, 256, 2000);
  for (int it = 0; it < 2; it++) {
    int stepped = 0, skipped = 0;
    for (int k = 0; k < K; k++) {
      float *g = amp_optim_grad_buffer(o[k]);
      for (int64_t i = 0; i < amp_optim_numel(o[k]); i++) g[i] = 1.0f;
      if (it == 1 && k == K - 2) g[0] = NAN;
      if (k % 3 == 0) CHECK(amp_scaler_unscale(sc, o[k]) == AMP_OK, "unscale %d", k);
      int s = amp_scaler_step(sc, o[k]);
      stepped += s == 1;
      skipped += s == 0;
    }
    CHECK(stepped == K - it && skipped == it, "iteration %d: %d stepped, %d skipped", it, stepped,
          skipped);
    CHECK(amp_scaler_update(sc) == AMP_OK, "update");
  }
  CHECK(amp_scaler_get_scale(sc) == 128, "one backoff for the step: %g", amp_scaler_get_scale(sc));
  CHECK(amp_scaler_get_state(sc).skipped == 1, "one skipped step");
  CHECK(amp_ctx_status(ctx) == AMP_OK, "no error: %s", amp_ctx_error(ctx));
  amp_ctx_free(ctx);
}

/* Case 5: state across enabled and disabled scalers, as PyTorch's
 * load_state_dict. */
static void test_state_disabled(void) {
  rig r = make_rig();
  amp_scaler *on = make_scaler(&r, 4096, 7);
  amp_scaler *off =
      amp_scaler_create(r.ctx, (amp_scaler_params[]){amp_scaler_defaults(AMP_SCALER_NONE)});
  amp_scaler_state son = amp_scaler_get_state(on), soff = amp_scaler_get_state(off);
  CHECK(amp_scaler_set_state(off, &son) == AMP_OK, "disabled: set_state is a no-op");
  CHECK(states_equal(amp_scaler_get_state(off), soff), "disabled: still disabled, scale 1");
  CHECK(amp_scaler_get_scale(off) == 1.0f, "disabled: scale 1");
  amp_ctx_clear_error(r.ctx);
  CHECK(amp_scaler_set_state(on, &soff) == AMP_ERR_INVALID_ARG,
        "a disabled scaler's state into an enabled one is refused");
  CHECK(amp_ctx_status(r.ctx) == AMP_ERR_INVALID_ARG && strstr(amp_ctx_error(r.ctx), "disabled"),
        "with a message: %s", amp_ctx_error(r.ctx));
  CHECK(states_equal(amp_scaler_get_state(on), son), "enabled scaler unchanged");
  amp_ctx_free(r.ctx);
}

/* Case 6: growth and backoff are fp32(S * factor) with the factor and the
 * product in double (PyTorch's _amp_update_scale_); powers of two are
 * exact either way. */
static void test_double_factors(void) {
  rig r = make_rig();
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  p.growth_factor = 1.1;
  p.backoff_factor = 0.8;
  p.growth_interval = 1;
  amp_scaler *sc = amp_scaler_create(r.ctx, &p);
  amp_scaler_params q = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  q.growth_interval = 1;
  amp_scaler *two = amp_scaler_create(r.ctx, &q);
  float want = 65536.0f, want2 = 65536.0f;
  int same = 1, same2 = 1;
  for (int i = 0; i < 40; i++) {
    const int ov = i % 5 == 4;
    iterate(&r, sc, ov, (uint64_t)i);
    iterate(&r, two, ov, (uint64_t)i);
    want = (float)((double)want * (ov ? 0.8 : 1.1));
    want2 = ov ? want2 * 0.5f : want2 * 2.0f;
    same &= amp_scaler_get_scale(sc) == want;
    same2 &= amp_scaler_get_scale(two) == want2;
    if (!same || !same2) {
      CHECK(0, "update %d: scale %.9g want %.9g (default factors %.9g want %.9g)", i + 1,
            amp_scaler_get_scale(sc), want, amp_scaler_get_scale(two), want2);
      break;
    }
  }
  CHECK(same && same2, "growth 1.1 / backoff 0.8 in double; 2 / 0.5 as in FP32");
  amp_ctx_free(r.ctx);
}

#ifndef TEST_SCALER_OLD_API
/* Case 7: what a PyTorch user porting a loop reaches for. */
static void test_pytorch_api(void) {
  rig r = make_rig();
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  p.init_scale = 1024;
  p.growth_interval = 3;
  p.growth_factor = 1.1;
  p.backoff_factor = 0.8;
  amp_scaler *sc = amp_scaler_create(r.ctx, &p);
  amp_scaler *no =
      amp_scaler_create(r.ctx, (amp_scaler_params[]){amp_scaler_defaults(AMP_SCALER_NONE)});
  CHECK(amp_scaler_is_enabled(sc) && !amp_scaler_is_enabled(no) && !amp_scaler_is_enabled(NULL),
        "is_enabled");
  CHECK(amp_scaler_get_growth_factor(sc) == 1.1 && amp_scaler_get_backoff_factor(sc) == 0.8 &&
            amp_scaler_get_growth_interval(sc) == 3,
        "getters return the settings exactly");
  /* update(new_scale): the scale set, the growth tracker left alone. */
  iterate(&r, sc, 0, 1);
  CHECK(amp_scaler_get_state(sc).growth_tracker == 1, "one clean step");
  set_grads(&r, 2, -1, 0);
  CHECK(amp_scaler_step(sc, r.opt) == 1, "step");
  CHECK(amp_scaler_update_to(sc, 300.0f) == AMP_OK, "update_to");
  amp_scaler_state st = amp_scaler_get_state(sc);
  CHECK(st.scale == 300.0f && st.growth_tracker == 1, "scale 300, tracker untouched (%lld)",
        (long long)st.growth_tracker);
  CHECK(iterate(&r, sc, 0, 3) == 1, "the step state was reset by update_to");
  amp_ctx_clear_error(r.ctx);
  CHECK(amp_scaler_update_to(sc, 0) == AMP_ERR_INVALID_ARG &&
            amp_scaler_update_to(sc, INFINITY) == AMP_ERR_INVALID_ARG,
        "update_to rejects a scale that is not finite and > 0");
  CHECK(amp_scaler_update_to(no, 5) == AMP_OK && amp_scaler_get_scale(no) == 1.0f,
        "disabled: update_to is a no-op");
  /* found_inf is per step: an overflow in one optimizer is reported after
     another optimizer's clean step, until update. */
  rig r2 = make_rig();
  amp_scaler *s2 = make_scaler(&r2, 1024, 2000);
  amp_rng rng;
  amp_rng_seed(&rng, 4);
  amp_optim_params op = amp_optim_defaults(AMP_OPTIM_SGD);
  amp_optim *o2 = amp_optim_create(r2.ctx, amp_nn_linear(r2.ctx, &rng, 4, 4, 1), &op);
  set_grads(&r2, 1, 0, INFINITY);
  CHECK(amp_scaler_step(s2, r2.opt) == 0 && amp_scaler_found_inf(s2), "first optimizer skips");
  CHECK(amp_scaler_step(s2, o2) == 1, "second optimizer steps");
  CHECK(amp_scaler_found_inf(s2), "found_inf: any optimizer in this step");
  amp_scaler_update(s2);
  CHECK(!amp_scaler_found_inf(s2), "cleared by update");
  amp_ctx_free(r2.ctx);
  amp_ctx_free(r.ctx);
}
#endif

/* The default floor (issue 11): a scale never goes below AMP_SCALER_FLOOR
 * (no underflow to 0, 1/S finite); an overflow at the floor fails the
 * update with a message and keeps the scale; a state below the floor, or a
 * subnormal min_scale, is refused. */
static void test_floor(void) {
  rig r = make_rig();
  amp_scaler *sc = make_scaler(&r, 0x1p-22f, 2000);
  CHECK(sc != NULL, "a scale above the floor");
  iterate(&r, sc, 1, 1);
  CHECK(amp_scaler_get_scale(sc) == 0x1p-23f, "backoff: %g", amp_scaler_get_scale(sc));
  iterate(&r, sc, 1, 2);
  CHECK(amp_scaler_get_scale(sc) == AMP_SCALER_FLOOR, "at the floor: %g", amp_scaler_get_scale(sc));
  set_grads(&r, 3, 0, NAN);
  CHECK(amp_scaler_step(sc, r.opt) == 0, "the overflowing step is skipped");
  CHECK(amp_scaler_update(sc) == AMP_ERR_STATE && strstr(amp_ctx_error(r.ctx), "floor"),
        "an overflow at the floor fails the update: %s", amp_ctx_error(r.ctx));
  amp_ctx_clear_error(r.ctx);
  amp_scaler_state st = amp_scaler_get_state(sc);
  CHECK(st.scale == AMP_SCALER_FLOOR && st.skipped == 3, "scale kept (%g), step counted (%lld)",
        (double)st.scale, (long long)st.skipped);
  CHECK(iterate(&r, sc, 0, 4) == 1 && amp_ctx_status(r.ctx) == AMP_OK, "a clean step still runs");
  /* A state below the floor (a crafted checkpoint's 1e-45) is refused. */
  st.scale = 1e-45f;
  st.growth_tracker = 0;
  CHECK(amp_scaler_set_state(sc, &st) == AMP_ERR_INVALID_ARG, "scale 1e-45 refused");
  amp_ctx_clear_error(r.ctx);
  CHECK(make_scaler(&r, 0x1p-25f, 2000) == NULL, "init below the floor refused");
  amp_ctx_clear_error(r.ctx);
  amp_scaler_params p = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  p.min_scale = 1e-40f; /* subnormal: 1/min_scale is inf */
  CHECK(amp_scaler_create(r.ctx, &p) == NULL, "subnormal min_scale refused");
  amp_ctx_clear_error(r.ctx);
  p.mode = AMP_SCALER_STATIC;
  p.min_scale = 0;
  p.init_scale = 1e-30f; /* a static scale may be below the dynamic floor */
  CHECK(amp_scaler_create(r.ctx, &p) != NULL, "static 1e-30 accepted");
  amp_ctx_free(r.ctx);
}

int main(void) {
  test_defaults();
  test_growth();
  test_skip();
  test_unscale_state();
  test_skip_drops_clip();
  test_clamps_hysteresis();
  test_static_none();
  test_state();
  test_accumulation();
  test_training();
  test_fused_step();
  test_zero_in_step();
  test_backward_checks();
  test_stale_unscale();
  test_unscaled_grads();
  test_fused_step_unscales();
  test_disabled_no_state();
  test_update_needs_check();
  test_many_optimizers();
  test_state_disabled();
  test_double_factors();
  test_floor();
#ifndef TEST_SCALER_OLD_API
  test_pytorch_api();
#endif
  TEST_MAIN_END();
}
