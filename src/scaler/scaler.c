/* Loss scaling with PyTorch GradScaler semantics, plus a static mode, a
 * disabled mode, min/max scale and DeepSpeed-style hysteresis. Unscaling and
 * the inf/NaN check are one fused pass over the optimizer's gradient buffer. */
#include "../optim/optim_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define MAX_OPTIMS 8

struct amp_scaler {
  amp_ctx *ctx;
  amp_scaler_state st;
  int found_inf; /* any optimizer this step */
  amp_optim *seen[MAX_OPTIMS];
  int nseen;
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

static const char *params_problem(const amp_scaler_params *p) {
  if ((unsigned)p->mode > AMP_SCALER_NONE) return "unknown mode";
  if (!(p->init_scale > 0) || !isfinite(p->init_scale)) return "init_scale must be finite and > 0";
  if (!(p->growth_factor > 1) || !isfinite(p->growth_factor)) return "growth_factor must be > 1";
  if (!(p->backoff_factor > 0 && p->backoff_factor < 1)) return "backoff_factor must be in (0, 1)";
  if (p->growth_interval < 1) return "growth_interval must be >= 1";
  if (p->hysteresis < 1) return "hysteresis must be >= 1";
  if (!(p->min_scale >= 0) || !(p->max_scale >= 0)) return "min_scale/max_scale must be >= 0";
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

/* With S >= 1 the multiply by 1/S cannot overflow, so unscaling only checks
 * for inf/NaN and 1/S joins the optimizer's gradient factor, which the
 * update multiplies by in its own pass (the design's one fused optimizer
 * pass). A scale below 1 could turn a finite gradient into inf: then the
 * gradients are multiplied in place and checked. */
static int unscale_is_check_only(const amp_scaler *sc) {
  return sc->st.params.mode != AMP_SCALER_NONE && inv_scale(sc) <= 1.0f;
}

static int remember(amp_scaler *sc, amp_optim *o) {
  for (int i = 0; i < sc->nseen; i++)
    if (sc->seen[i] == o) return 1;
  if (sc->nseen == MAX_OPTIMS) {
    amp__error(sc->ctx, AMP_ERR_STATE, "amp_scaler: more than %d optimizers in one step",
               MAX_OPTIMS);
    return 0;
  }
  sc->seen[sc->nseen++] = o;
  return 1;
}

amp_status amp_scaler_unscale(amp_scaler *sc, amp_optim *o) {
  if (!sc || !o) return AMP_ERR_INVALID_ARG;
  if (o->scaler_stage == 1)
    return amp__error(sc->ctx, AMP_ERR_STATE,
                      "amp_scaler_unscale: already called for this optimizer since the last "
                      "update");
  if (o->scaler_stage == 2)
    return amp__error(sc->ctx, AMP_ERR_STATE,
                      "amp_scaler_unscale: called after amp_scaler_step for this optimizer");
  if (!remember(sc, o)) return AMP_ERR_STATE;
  int found = 0;
  if (sc->st.params.mode != AMP_SCALER_NONE) {
    const int check_only = unscale_is_check_only(sc);
    amp_status s = amp_vec_unscale_check(sc->ctx, AMP_F32, (size_t)o->n, o->grad,
                                         check_only ? 1.0f : inv_scale(sc), &found);
    if (s != AMP_OK) return s;
    if (check_only) o->grad_factor *= inv_scale(sc);
  }
  o->found_inf = found;
  sc->found_inf |= found;
  o->scaler_stage = 1;
  return AMP_OK;
}

int amp_scaler_step(amp_scaler *sc, amp_optim *o) {
  if (!sc || !o) return -1;
  if (o->scaler_stage == 2) {
    amp__error(sc->ctx, AMP_ERR_STATE,
               "amp_scaler_step: already called for this optimizer since the last update");
    return -1;
  }
  if (o->scaler_stage == 0 && unscale_is_check_only(sc)) {
    /* No explicit unscale: the check and the update share one pass (the
       same result as amp_scaler_unscale followed by amp_optim_step). */
    if (!remember(sc, o)) return -1;
    o->grad_factor *= inv_scale(sc);
    o->found_inf = amp__optim_step_if_finite(o);
    sc->found_inf |= o->found_inf;
    o->scaler_stage = 2;
    if (!o->found_inf) return 1;
  } else {
    if (o->scaler_stage == 0 && amp_scaler_unscale(sc, o) != AMP_OK) return -1;
    o->scaler_stage = 2;
    if (!o->found_inf) return amp_optim_step(o) == AMP_OK ? 1 : -1;
  }
  /* Skipped: the step's gradients are discarded, and with them a pending
     clip factor (which belonged to them, not to the next step's). */
  o->grad_factor = 1.0f;
  return 0;
}

amp_status amp_scaler_update(amp_scaler *sc) {
  if (!sc) return AMP_ERR_INVALID_ARG;
  amp_scaler_state *st = &sc->st;
  const amp_scaler_params *p = &st->params;
  if (sc->found_inf) st->skipped++;
  if (p->mode == AMP_SCALER_DYNAMIC) {
    if (sc->found_inf) {
      /* DeepSpeed's hysteresis: the first hysteresis-1 overflows only use up
         the allowance; it is restored when the scale grows again. */
      st->growth_tracker = 0;
      if (st->hysteresis_left > 1) {
        st->hysteresis_left--;
      } else {
        float s = st->scale * p->backoff_factor;
        if (p->min_scale > 0 && s < p->min_scale) s = p->min_scale;
        st->scale = s;
      }
    } else if (++st->growth_tracker == p->growth_interval) {
      float s = st->scale * p->growth_factor;
      if (p->max_scale > 0 && s > p->max_scale) s = p->max_scale;
      if (isfinite(s)) st->scale = s;
      st->growth_tracker = 0;
      st->hysteresis_left = p->hysteresis;
    }
  }
  for (int i = 0; i < sc->nseen; i++) {
    sc->seen[i]->scaler_stage = 0;
    sc->seen[i]->found_inf = 0;
  }
  sc->nseen = 0;
  sc->found_inf = 0;
  return AMP_OK;
}

float amp_scaler_get_scale(const amp_scaler *sc) { return sc ? sc->st.scale : 1.0f; }

int amp_scaler_found_inf(const amp_scaler *sc) { return sc ? sc->found_inf : 0; }

amp_scaler_state amp_scaler_get_state(const amp_scaler *sc) {
  amp_scaler_state st;
  memset(&st, 0, sizeof st);
  if (sc) st = sc->st;
  return st;
}

amp_status amp_scaler_set_state(amp_scaler *sc, const amp_scaler_state *st) {
  if (!sc || !st) return AMP_ERR_INVALID_ARG;
  const char *bad = params_problem(&st->params);
  if (!bad && (!(st->scale > 0) || !isfinite(st->scale))) bad = "scale must be finite and > 0";
  if (!bad && (st->scale < st->params.min_scale ||
               (st->params.max_scale > 0 && st->scale > st->params.max_scale)))
    bad = "scale outside [min_scale, max_scale]";
  if (!bad && (st->growth_tracker < 0 || st->growth_tracker >= st->params.growth_interval))
    bad = "growth_tracker out of range";
  if (!bad && (st->hysteresis_left < 1 || st->hysteresis_left > st->params.hysteresis))
    bad = "hysteresis_left out of range";
  if (!bad && st->skipped < 0) bad = "negative skipped count";
  if (bad) return amp__error(sc->ctx, AMP_ERR_INVALID_ARG, "amp_scaler_set_state: %s", bad);
  sc->st = *st;
  return AMP_OK;
}
