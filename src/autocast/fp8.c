/* FP8 training recipes: the scaling state (amax histories and scales per
 * tensor role per linear), its update at the end of a step, the FP8
 * region, and the quantisation of one operand by the recipe (delayed,
 * current or block scaling; E4M3/E5M2; nearest or stochastic rounding). */
#include "../kernels/fp8_internal.h"
#include "../dtype/convert_internal.h"
#include "fp8_state.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

amp_fp8_params amp_fp8_defaults(amp_fp8_scaling s) {
  return (amp_fp8_params){s, 16, 0, AMP_ROUND_NEAREST_EVEN, 0};
}

amp_status amp__fp8_check_params(amp_ctx *ctx, const amp_fp8_params *p) {
  const char *bad = !p                                             ? "NULL params"
                    : (unsigned)p->scaling > AMP_FP8_BLOCK         ? "unknown scaling"
                    : p->history_len < 1 || p->history_len > 65536 ? "history_len not in 1..65536"
                    : p->margin < 0 || p->margin > 64              ? "margin not in 0..64"
                    : (unsigned)p->grad_rounding > AMP_ROUND_STOCHASTIC ? "unknown rounding"
                                                                        : NULL;
  if (bad) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_fp8_create: %s", bad);
  return AMP_OK;
}

amp_status amp__fp8_attach(amp_ctx *ctx, amp_tensor *const *params, int n, const amp_fp8_params *p,
                           float *hist, float *scale, float *state) {
  if (ctx->fp8) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_fp8_create: ctx has an FP8 state");
  amp__fp8 *f = calloc(1, sizeof *f);
  amp_tensor **ps = malloc(sizeof *ps * (size_t)n);
  struct amp__fp8_wcache *wc = calloc((size_t)n, sizeof *wc);
  if (!f || !ps || !wc) {
    free(f);
    free(ps);
    free(wc);
    return amp__error(ctx, AMP_ERR_NOMEM, "amp_fp8_create: out of memory");
  }
  memcpy(ps, params, sizeof *ps * (size_t)n);
  f->p = *p;
  f->hlen = p->scaling == AMP_FP8_DELAYED ? p->history_len : 1;
  f->nparams = n;
  f->params = ps;
  f->wc = wc;
  f->hist = hist;
  f->scale = scale;
  f->state = state;
  ctx->fp8 = f;
  return AMP_OK;
}

void amp__fp8_free(amp_ctx *ctx) {
  amp__fp8 *f = ctx->fp8;
  if (!f) return;
  for (int i = 0; i < f->nparams; i++) {
    free(f->wc[i].q);
    free(f->wc[i].scale_inv);
  }
  free(f->wc);
  free(f->params);
  free(f);
  ctx->fp8 = NULL;
}

amp_status amp_fp8_begin(amp_ctx *ctx) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (!ctx->fp8 || ctx->fp8_active)
    return amp__error(ctx, AMP_ERR_STATE, "amp_fp8_begin: %s",
                      ctx->fp8 ? "an FP8 region is already open" : "no FP8 state (amp_fp8_create)");
  ctx->fp8_active = 1;
  return AMP_OK;
}

amp_status amp_fp8_end(amp_ctx *ctx) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (!ctx->fp8_active) return amp__error(ctx, AMP_ERR_STATE, "amp_fp8_end: no FP8 region is open");
  ctx->fp8_active = 0;
  return AMP_OK;
}

/* The format of a role under the recipe. */
static amp_dtype role_format(const amp__fp8 *f, int role) {
  return f->p.scaling != AMP_FP8_BLOCK && role == AMP__FP8_GRAD ? AMP_E5M2 : AMP_E4M3;
}

/* Transformer Engine's scale: (fmt_max / amax) / 2^margin; `keep` when
 * amax is 0 or not finite; FLT_MAX for an infinite quotient. */
static float te_scale(float fmax, float amax, int margin, float keep) {
  if (!(amax > 0.0f) || !isfinite(amax)) return keep;
  float s = fmax / amax / ldexpf(1.0f, margin);
  return isfinite(s) ? s : FLT_MAX;
}

void amp_fp8_step_end(amp_ctx *ctx) {
  amp__fp8 *f = ctx ? ctx->fp8 : NULL;
  if (!f) return;
  const int rows = 3 * f->nparams, h = f->hlen;
  for (int r = 0; r < rows; r++) {
    float *hr = f->hist + (size_t)r * (size_t)h, amax = 0.0f;
    for (int j = 0; j < h; j++) amax = hr[j] > amax ? hr[j] : amax;
    if (f->p.scaling == AMP_FP8_DELAYED)
      f->scale[r] = te_scale(amp__fp8_max(role_format(f, r % 3)), amax, f->p.margin, f->scale[r]);
    else if (f->p.scaling == AMP_FP8_CURRENT && f->held) /* the scale of the largest amax */
      f->scale[r] = te_scale(amp__fp8_max(role_format(f, r % 3)), hr[0], f->p.margin, f->scale[r]);
    memmove(hr + 1, hr, sizeof(float) * (size_t)(h - 1)); /* the window moves on */
    hr[0] = 0.0f;
  }
  f->state[0] += 1.0f;
  f->state[1] = 0.0f;
  f->sr_calls = 0;
  f->held = 0;
  f->micro = 0;
}

void amp__fp8_step_reset(amp_ctx *ctx) {
  if (ctx->fp8 && !ctx->fp8->held && ctx->fp8->state[1] != 0.0f) amp_fp8_step_end(ctx);
  ctx->fp8_active = 0;
}

amp_status amp_fp8_micro_batch(amp_ctx *ctx, int64_t index) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (index < 0)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_fp8_micro_batch: index %lld < 0",
                      (long long)index);
  amp__fp8 *f = ctx->fp8;
  if (!f) return AMP_OK;
  f->held = 1;
  f->micro = index;
  f->sr_calls = 0; /* each micro-batch's stream starts afresh */
  return AMP_OK;
}

amp_status amp_fp8_reduce_amax(amp_ctx *ctx, void (*reduce)(float *amax, int n, void *user),
                               void *user) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (!reduce) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_fp8_reduce_amax: no reduce");
  amp__fp8 *f = ctx->fp8;
  if (!f) return AMP_OK;
  const int rows = 3 * f->nparams;
  float *a = malloc(sizeof(float) * (size_t)(rows > 0 ? rows : 1));
  if (!a) return amp__error(ctx, AMP_ERR_NOMEM, "amp_fp8_reduce_amax: out of memory");
  for (int r = 0; r < rows; r++) a[r] = f->hist[(size_t)r * (size_t)f->hlen];
  reduce(a, rows, user);
  for (int r = 0; r < rows; r++) /* as recorded: finite amaxes only */
    if (isfinite(a[r]) && a[r] >= 0.0f) f->hist[(size_t)r * (size_t)f->hlen] = a[r];
  free(a);
  return AMP_OK;
}

float amp_fp8_scale(const amp_ctx *ctx, int param, int role, const float **hist) {
  const amp__fp8 *f = ctx ? ctx->fp8 : NULL;
  if (!f || param < 0 || param >= f->nparams || role < 0 || role > 2) return -1.0f;
  int r = 3 * param + role;
  if (hist) *hist = f->hist + (size_t)r * (size_t)f->hlen;
  return f->scale[r];
}

int amp__fp8_slot(amp_ctx *ctx, const amp_tensor *w) {
  const amp_tensor *leaf = amp__master(w) ? amp__master(w) : w;
  for (int i = 0; i < ctx->fp8->nparams; i++)
    if (ctx->fp8->params[i] == leaf) return i;
  amp__error(ctx, AMP_ERR_INVALID_ARG,
             "linear (fp8): the weight is not a parameter of the model given to amp_fp8_create");
  return -1;
}

/* The quantisation of t (n values) with scale *s into dst, in fixed chunks
 * spread over the context's threads in one parallel region: under current
 * scaling (cur) first the amax pass, from which every thread computes the
 * same scale (stored in *s), then the codes (stochastic when key != 0).
 * Returns the codes pass's amax. Elementwise work and a max are exact and
 * both passes split the chunks alike (a thread's chunks are still in its
 * cache for the second), so the chunking and the thread count change no
 * bit. */
enum { QCHUNK = 1 << 15 };
static float quant_pass(amp_ctx *ctx, const amp__fp8 *f, int cur, amp_dtype fmt,
                        const amp_tensor *t, size_t n, float *s, uint8_t *dst, uint64_t key,
                        uint64_t idx0) {
  const amp__kernels *k = amp__kernels_of(ctx);
  const size_t es = amp_dtype_size(t->dtype), nc = (n + QCHUNK - 1) / QCHUNK;
  const float s0 = *s, fmax = amp__fp8_max(fmt);
  const int margin = f->p.margin;
  float amax0 = 0.0f, amax = 0.0f;
#pragma omp parallel num_threads(amp__threads(ctx)) if (nc > 1)
  {
    float sc = s0;
    if (cur) {
#pragma omp for schedule(static) reduction(max : amax0)
      for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * QCHUNK, len = n - i0 < QCHUNK ? n - i0 : QCHUNK;
        float a = k->fp8_amax(t->dtype, len, (const char *)t->data + i0 * es);
        amax0 = a > amax0 ? a : amax0;
      }
      sc = te_scale(fmax, amax0, margin, 1.0f); /* amax0 is complete after the loop */
    }
#pragma omp for schedule(static) reduction(max : amax)
    for (size_t c = 0; c < nc; c++) {
      size_t i0 = c * QCHUNK, len = n - i0 < QCHUNK ? n - i0 : QCHUNK;
      const void *src = (const char *)t->data + i0 * es;
      float a = key ? amp__fp8_quant_sr(fmt, t->dtype, len, src, sc, dst + i0, key, idx0 + i0)
                    : k->fp8_quant(fmt, t->dtype, len, src, sc, dst + i0);
      amax = a > amax ? a : amax;
    }
  }
  if (cur) *s = te_scale(fmax, amax0, margin, 1.0f);
  return amax;
}

/* Per-tensor quantisation (delayed or current scaling: this tensor's own
 * amax, one more pass). */
static void quantize_tensor(amp_ctx *ctx, amp__fp8 *f, int row, amp_dtype fmt, const amp_tensor *t,
                            size_t n, uint8_t *dst, float *scale_inv) {
  const int cur = f->p.scaling == AMP_FP8_CURRENT;
  float s = f->scale[row];
  uint64_t key = 0, idx0 = 0;
  if (fmt == AMP_E5M2 && f->p.grad_rounding == AMP_ROUND_STOCHASTIC) {
    /* Micro-batch m > 0 has a stream of its own (m = 0: the plain step's). */
    key = amp__sr_key(f->p.seed + (uint64_t)f->micro * 0x9e3779b97f4a7c15u) | 1u; /* never 0 */
    idx0 = ((uint64_t)f->state[0] << 40) + ((uint64_t)f->sr_calls++ << 32);
  }
  float amax = quant_pass(ctx, f, cur, fmt, t, n, &s, dst, key, idx0);
  if (cur) f->scale[row] = s;
  float *h0 = f->hist + (size_t)row * (size_t)f->hlen;
  if (isfinite(amax) && amax > *h0) *h0 = amax; /* non-finite amaxes are not recorded */
  *scale_inv = 1.0f / s;
}

int amp__fp8_quantize(amp_ctx *ctx, int slot, int role, const amp_tensor *t, int64_t rows,
                      int64_t cols, amp_fp8_matrix *out) {
  amp__fp8 *f = ctx->fp8;
  const amp_dtype fmt = role_format(f, role);
  const int block = f->p.scaling == AMP_FP8_BLOCK;
  const int64_t br = block ? (role == AMP__FP8_WEIGHT ? 128 : 1) : rows, bc = block ? 128 : cols;
  const size_t n = (size_t)(rows * cols);
  const size_t nscales = (size_t)(amp__fp8_nblocks(rows, br) * amp__fp8_nblocks(cols, bc));
  if (t->dtype != AMP_F32 && t->dtype != AMP_BF16) {
    amp__error(ctx, AMP_ERR_UNSUPPORTED, "linear (fp8): operand dtype %s (need f32 or bf16)",
               amp_dtype_name(t->dtype));
    return 0;
  }
  if (f->p.grad_rounding == AMP_ROUND_STOCHASTIC && fmt == AMP_E5M2 && n > UINT32_MAX) {
    amp__error(ctx, AMP_ERR_UNSUPPORTED, "linear (fp8): a gradient of over 2^32 elements");
    return 0;
  }
  uint8_t *q;
  float *si;
  if (role == AMP__FP8_WEIGHT) { /* a weight, not an activation: kept by the state */
    struct amp__fp8_wcache *w = &f->wc[slot];
    if (w->n < n || w->ns < nscales) {
      free(w->q);
      free(w->scale_inv);
      w->q = malloc(n);
      w->scale_inv = malloc(nscales * sizeof(float));
      w->n = w->ns = 0;
      if (!w->q || !w->scale_inv) {
        amp__error(ctx, AMP_ERR_NOMEM, "linear (fp8): out of memory (weight cache)");
        return 0;
      }
      w->n = n;
      w->ns = nscales;
    }
    q = w->q;
    si = w->scale_inv;
  } else {
    q = amp_arena_alloc(ctx, AMP_ARENA_STEP, n);
    si = amp_arena_alloc(ctx, AMP_ARENA_STEP, nscales * sizeof(float));
    if (!q || !si) return 0;
  }
  f->state[1] = 1.0f; /* something to end at the next step reset */
  if (block)
    return amp_fp8_quantize_blocks(ctx, fmt, t->data, t->dtype, rows, cols, cols, br, bc, q, si,
                                   out) == AMP_OK;
  quantize_tensor(ctx, f, 3 * slot + role, fmt, t, n, q, si);
  *out = (amp_fp8_matrix){q, fmt, rows, cols, cols, si, rows, cols};
  return 1;
}
