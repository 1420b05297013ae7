/* Loss scaling with PyTorch GradScaler semantics, plus a static mode, a
 * disabled mode, min/max scale and DeepSpeed-style hysteresis. Unscaling and
 * the inf/NaN check are one fused pass over the optimizer's gradient buffer.
 * The scaler keeps its per-optimizer bookkeeping itself and reaches the
 * optimizer only through src/optim/optim_scaler.h. */
#include "../core/internal.h"
#include "../optim/optim_scaler.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Where an optimizer stands in the current step (PyTorch's OptState). */
enum { READY = 0, UNSCALED = 1, STEPPED = 2 };

/* One optimizer seen since the last update. */
typedef struct opt_record {
  amp_optim *o;
  int stage;
  int found_inf;
} opt_record;

struct amp_scaler {
  amp_ctx *ctx;
  amp_scaler_state st;
  int found_inf; /* any optimizer since the last update */
  /* Optimizers seen since the last update; grown by doubling in the
     persistent arena (the old array is left there), so any number of
     optimizers may share a step. */
  opt_record *rec;
  int nrec, cap;
};

amp_scaler_params amp_scaler_defaults(amp_scaler_mode mode) {
  amp_scaler_params p;
  memset(&p, 0, sizeof p);
  p.mode = mode;
  p.init_scale = mode == AMP_SCALER_NONE ? 1.0f : 65536.0f;
  p.growth_factor = 2.0f;
  p.backoff_factor = 0.5f;
  p.growth_interval = 2000;
  p.hysteresis = 1;
  return p;
}

/* The least scale a scaler may hold: min_scale when set, otherwise the
 * default floor (AMP_SCALER_FLOOR, dynamic mode) or the least normal float
 * (static mode), so that 1/S is always finite and S never underflows. */
static float scale_floor(const amp_scaler_params *p) {
  if (p->min_scale > 0) return p->min_scale;
  return p->mode == AMP_SCALER_DYNAMIC ? AMP_SCALER_FLOOR : FLT_MIN;
}

static const char *params_problem(const amp_scaler_params *p) {
  if ((unsigned)p->mode > AMP_SCALER_NONE) return "unknown mode";
  if (!(p->init_scale > 0) || !isfinite(p->init_scale)) return "init_scale must be finite and > 0";
  if (!(p->growth_factor > 1) || !isfinite(p->growth_factor)) return "growth_factor must be > 1";
  if (!(p->backoff_factor > 0 && p->backoff_factor < 1)) return "backoff_factor must be in (0, 1)";
  if (p->growth_interval < 1) return "growth_interval must be >= 1";
  if (p->hysteresis < 1) return "hysteresis must be >= 1";
  if (!(p->min_scale >= 0) || !(p->max_scale >= 0)) return "min_scale/max_scale must be >= 0";
  if (p->min_scale > 0 && !(p->min_scale >= FLT_MIN))
    return "min_scale must be 0 (the default floor) or a normal float (>= FLT_MIN)";
  if (p->mode != AMP_SCALER_NONE && p->init_scale < scale_floor(p))
    return "init_scale below the least scale (min_scale, or the default floor AMP_SCALER_FLOOR)";
  if (p->max_scale > 0 && p->min_scale > p->max_scale) return "min_scale > max_scale";
  /* A scale outside the clamps would make a backoff raise it (to min_scale)
     or a growth lower it (to max_scale). */
  if (p->init_scale < p->min_scale || (p->max_scale > 0 && p->init_scale > p->max_scale))
    return "init_scale outside [min_scale, max_scale]";
  return NULL;
}

amp_scaler *amp_scaler_create(amp_ctx *ctx, const amp_scaler_params *p) {
  if (!ctx) return NULL;
  if (!p) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_scaler_create: NULL params");
    return NULL;
  }
  const char *bad = params_problem(p);
  if (bad) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_scaler_create: %s", bad);
    return NULL;
  }
  amp_scaler *sc = amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, sizeof *sc);
  if (!sc) return NULL;
  memset(sc, 0, sizeof *sc);
  sc->ctx = ctx;
  sc->st.params = *p;
  sc->st.scale = p->mode == AMP_SCALER_NONE ? 1.0f : p->init_scale;
  sc->st.hysteresis_left = p->hysteresis;
  return sc;
}

amp_tensor *amp_scaler_scale(amp_scaler *sc, amp_tensor *loss) {
  if (!sc || !loss) return NULL;
  if (sc->st.params.mode == AMP_SCALER_NONE) return loss;
  return amp_mul_scalar(sc->ctx, loss, sc->st.scale);
}

/* 1/S as PyTorch computes it: the reciprocal in FP64, rounded once to FP32. */
static float inv_scale(const amp_scaler *sc) { return (float)(1.0 / (double)sc->st.scale); }

/* A step without an explicit unscale may check and update in one pass, 1/S
 * joining the optimizer's pending gradient factor (the design's one fused
 * optimizer pass), when S >= 1: then multiplying by 1/S cannot overflow, so
 * checking the scaled gradients is checking the unscaled ones. A scale below
 * 1 could turn a finite gradient into inf: then the gradients are unscaled
 * in place and checked first. */
static int one_pass_step(const amp_scaler *sc) {
  return sc->st.params.mode != AMP_SCALER_NONE && inv_scale(sc) <= 1.0f;
}

/* The index of o's record, or -1. */
static int find(const amp_scaler *sc, const amp_optim *o) {
  for (int i = 0; i < sc->nrec; i++)
    if (sc->rec[i].o == o) return i;
  return -1;
}

/* o's record, made (READY) when it has none; -1 when out of memory. */
static int record(amp_scaler *sc, amp_optim *o) {
  int i = find(sc, o);
  if (i >= 0) return i;
  if (sc->nrec == sc->cap) {
    int cap = sc->cap ? sc->cap * 2 : 4;
    opt_record *r = amp_arena_alloc(sc->ctx, AMP_ARENA_PERSISTENT, sizeof *r * (size_t)cap);
    if (!r) return -1;
    if (sc->nrec) memcpy(r, sc->rec, sizeof *r * (size_t)sc->nrec);
    sc->rec = r;
    sc->cap = cap;
  }
  sc->rec[sc->nrec] = (opt_record){o, READY, 0};
  return sc->nrec++;
}

static int stage_of(const amp_scaler *sc, const amp_optim *o) {
  int i = find(sc, o);
  return i < 0 ? READY : sc->rec[i].stage;
}

/* Records the result of o's inf/NaN check and its new stage. */
static void checked(amp_scaler *sc, int i, int found, int stage) {
  sc->rec[i].found_inf = found;
  sc->rec[i].stage = stage;
  sc->found_inf |= found;
}

amp_status amp_scaler_unscale(amp_scaler *sc, amp_optim *o) {
  if (!sc || !o) return AMP_ERR_INVALID_ARG;
  if (sc->st.params.mode == AMP_SCALER_NONE) return AMP_OK; /* disabled: no state at all */
  const int stage = stage_of(sc, o);
  if (stage == UNSCALED)
    return amp__error(sc->ctx, AMP_ERR_STATE,
                      "amp_scaler_unscale: already called for this optimizer since the last "
                      "update");
  if (stage == STEPPED)
    return amp__error(sc->ctx, AMP_ERR_STATE,
                      "amp_scaler_unscale: called after amp_scaler_step for this optimizer");
  /* The gradients themselves become g · fp32(1/S), as PyTorch's unscale_
     writes them: what clipping and every reader then see. With S = 1 the
     pass only checks. The check counts (for update) only once it ran. */
  int found = 0;
  float *g;
  int64_t n;
  amp__optim_grads(o, &g, &n);
  amp_status s = amp_vec_unscale_check(sc->ctx, AMP_F32, (size_t)n, g, inv_scale(sc), &found);
  if (s != AMP_OK) return s;
  amp__optim_forget_checks(o); /* 1/S > 1 can overflow what backward checked */
  const int i = record(sc, o);
  if (i < 0) return AMP_ERR_NOMEM;
  checked(sc, i, found, UNSCALED);
  return AMP_OK;
}

int amp_scaler_step(amp_scaler *sc, amp_optim *o) {
  if (!sc || !o) return -1;
  /* Disabled: PyTorch's step is optimizer.step(), with no bookkeeping. */
  if (sc->st.params.mode == AMP_SCALER_NONE) return amp_optim_step(o) == AMP_OK ? 1 : -1;
  const int stage = stage_of(sc, o);
  if (stage == STEPPED) {
    amp__error(sc->ctx, AMP_ERR_STATE,
               "amp_scaler_step: already called for this optimizer since the last update");
    return -1;
  }
  int i, found;
  if (stage == READY && one_pass_step(sc)) {
    /* No explicit unscale: 1/S joins the pending factor, and the check and
       the update share one pass (the same bits as unscale followed by
       step; the pass leaves the gradients unscaled, or zeroed). */
    if ((i = record(sc, o)) < 0) return -1;
    amp__optim_mul_factor(o, inv_scale(sc));
    found = amp__optim_step_if_finite(o);
    checked(sc, i, found, STEPPED);
  } else {
    if (stage == READY && amp_scaler_unscale(sc, o) != AMP_OK) return -1;
    i = find(sc, o);
    found = sc->rec[i].found_inf;
    sc->rec[i].stage = STEPPED;
    if (!found) return amp_optim_step(o) == AMP_OK ? 1 : -1;
    amp__optim_skipped(o);
  }
  if (!found) return 1;
  /* Skipped: the step's gradients are discarded, and with them a pending
     factor (1/S, a clip factor), which belonged to them. */
  amp__optim_drop_factor(o);
  return 0;
}

/* Ends the step's bookkeeping: every optimizer back to READY with no
 * pending factor (an unscale or clip whose step never came must not reach
 * the next step's gradients). */
static void end_step(amp_scaler *sc) {
  for (int i = 0; i < sc->nrec; i++) amp__optim_drop_factor(sc->rec[i].o);
  sc->nrec = 0;
  sc->found_inf = 0;
}

/* PyTorch's _amp_update_scale_: the factors are doubles, the product is
 * formed in double and rounded once to the FP32 scale. */
/* Returns 0, or -1 when the scale is already at the default floor and must
 * back off again (the run cannot go on; the scale stays). */
static int dynamic_update(amp_scaler_state *st, int found_inf) {
  const amp_scaler_params *p = &st->params;
  if (found_inf) {
    /* DeepSpeed's hysteresis: the first hysteresis-1 overflows only use up
       the allowance; it is restored when the scale grows again. */
    st->growth_tracker = 0;
    if (st->hysteresis_left > 1) {
      st->hysteresis_left--;
    } else {
      const float floor_s = scale_floor(p);
      float s = (float)((double)st->scale * p->backoff_factor);
      if (s < floor_s) {
        /* An explicit min_scale clamps (PyTorch-style user choice); the
           default floor is DeepSpeed's min_loss_scale: no way below it. */
        if (p->min_scale <= 0 && st->scale <= floor_s) return -1;
        s = floor_s;
      }
      st->scale = s;
    }
  } else if (++st->growth_tracker == p->growth_interval) {
    float s = (float)((double)st->scale * p->growth_factor);
    if (p->max_scale > 0 && s > p->max_scale) s = p->max_scale;
    if (isfinite(s)) st->scale = s;
    st->growth_tracker = 0;
    st->hysteresis_left = p->hysteresis;
  }
  return 0;
}

amp_status amp_scaler_update(amp_scaler *sc) {
  if (!sc) return AMP_ERR_INVALID_ARG;
  amp_scaler_state *st = &sc->st;
  if (st->params.mode != AMP_SCALER_NONE && sc->nrec == 0)
    return amp__error(sc->ctx, AMP_ERR_STATE,
                      "amp_scaler_update: no inf/NaN check was recorded since the last update "
                      "(call amp_scaler_unscale or amp_scaler_step for an optimizer first)");
  if (sc->found_inf && st->skipped < INT64_MAX) st->skipped++;
  int stuck = st->params.mode == AMP_SCALER_DYNAMIC && dynamic_update(st, sc->found_inf) != 0;
  end_step(sc);
  if (stuck)
    return amp__error(sc->ctx, AMP_ERR_STATE,
                      "amp_scaler_update: the loss scale is at its floor (%g) and the gradients "
                      "still overflow: the run cannot go on (the loss or the model diverges)",
                      (double)st->scale);
  return AMP_OK;
}

/* Why `scale` cannot be the scale of `p`, or NULL. */
static const char *scale_problem(const amp_scaler_params *p, float scale) {
  if (!(scale > 0) || !isfinite(scale)) return "scale must be finite and > 0";
  if (p->mode != AMP_SCALER_NONE && scale < scale_floor(p))
    return "scale below the least scale (min_scale, or the default floor AMP_SCALER_FLOOR)";
  if (scale < p->min_scale || (p->max_scale > 0 && scale > p->max_scale))
    return "scale outside [min_scale, max_scale]";
  return NULL;
}

amp_status amp_scaler_update_to(amp_scaler *sc, float new_scale) {
  if (!sc) return AMP_ERR_INVALID_ARG;
  if (sc->st.params.mode == AMP_SCALER_NONE) {
    end_step(sc);
    return AMP_OK;
  }
  const char *bad = scale_problem(&sc->st.params, new_scale);
  if (bad) return amp__error(sc->ctx, AMP_ERR_INVALID_ARG, "amp_scaler_update_to: %s", bad);
  if (sc->found_inf && sc->st.skipped < INT64_MAX) sc->st.skipped++;
  sc->st.scale = new_scale;
  end_step(sc);
  return AMP_OK;
}

float amp_scaler_get_scale(const amp_scaler *sc) { return sc ? sc->st.scale : 1.0f; }

int amp_scaler_found_inf(const amp_scaler *sc) { return sc ? sc->found_inf : 0; }

int amp_scaler_is_enabled(const amp_scaler *sc) {
  return sc && sc->st.params.mode != AMP_SCALER_NONE;
}

double amp_scaler_get_growth_factor(const amp_scaler *sc) {
  return sc ? sc->st.params.growth_factor : 0.0;
}

double amp_scaler_get_backoff_factor(const amp_scaler *sc) {
  return sc ? sc->st.params.backoff_factor : 0.0;
}

int64_t amp_scaler_get_growth_interval(const amp_scaler *sc) {
  return sc ? sc->st.params.growth_interval : 0;
}

amp_scaler_state amp_scaler_get_state(const amp_scaler *sc) {
  amp_scaler_state st;
  memset(&st, 0, sizeof st);
  if (sc) st = sc->st;
  return st;
}

amp_status amp_scaler_set_state(amp_scaler *sc, const amp_scaler_state *st) {
  if (!sc || !st) return AMP_ERR_INVALID_ARG;
  /* PyTorch: load_state_dict on a disabled scaler does nothing. */
  if (sc->st.params.mode == AMP_SCALER_NONE) return AMP_OK;
  const char *bad = params_problem(&st->params);
  if (!bad && st->params.mode == AMP_SCALER_NONE)
    bad = "the state is a disabled scaler's (mode none) and this scaler is enabled";
  if (!bad) bad = scale_problem(&st->params, st->scale);
  if (!bad && (st->growth_tracker < 0 || st->growth_tracker >= st->params.growth_interval))
    bad = "growth_tracker out of range";
  if (!bad && (st->hysteresis_left < 1 || st->hysteresis_left > st->params.hysteresis))
    bad = "hysteresis_left out of range";
  if (!bad && st->skipped < 0) bad = "negative skipped count";
  if (bad) return amp__error(sc->ctx, AMP_ERR_INVALID_ARG, "amp_scaler_set_state: %s", bad);
  sc->st = *st;
  return AMP_OK;
}
