/* Fake quantization (quantize then dequantize) with the straight-through
 * estimator, per tensor or per slice along axis 0, as PyTorch's
 * fake_quantize_per_{tensor,channel}_affine; the quantization rule is the
 * one the INT8 kernels use (kernels/qgemm_internal.h), so a fake-quantized
 * model and its INT8 export quantize the same values to the same codes. */
#include "../dtype/dtype_inline.h"
#include "../kernels/qgemm_internal.h"
#include "op_util.h"

#include <string.h>

/* Checks the quantization parameters; 1, or 0 with the error recorded. */
static int fq_params_ok(amp_ctx *ctx, const amp_tensor *x, int64_t nscale, const float *scale,
                        const int32_t *zp, int32_t qmin, int32_t qmax) {
  char sx[64];
  if (!scale || !zp || qmin >= qmax || qmin < -(1 << 24) || qmax > (1 << 24) ||
      !(nscale == 1 || (x->ndim >= 1 && nscale == x->shape[0]))) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "fake_quant: %lld scales for input %s (need 1, or one per index of axis 0), "
               "range [%d, %d] (need qmin < qmax, both in [-2^24, 2^24])",
               (long long)nscale, amp__shape_str(x, sx, sizeof sx), (int)qmin, (int)qmax);
    return 0;
  }
  for (int64_t c = 0; c < nscale; c++)
    if (!(scale[c] > 0) || !isfinite(scale[c]) || zp[c] < qmin || zp[c] > qmax) {
      amp__error(ctx, AMP_ERR_INVALID_ARG,
                 "fake_quant: channel %lld has scale %g (must be finite and > 0) and zero point "
                 "%d (must be in [%d, %d])",
                 (long long)c, (double)scale[c], (int)zp[c], (int)qmin, (int)qmax);
      return 0;
    }
  return 1;
}

/* The parameters a node keeps: nscale scales, then nscale zero points. */
typedef struct fq_saved {
  int64_t nscale;
  int32_t qmin, qmax;
  const float *scale;
  const int32_t *zp;
} fq_saved;

amp_tensor *amp_fake_quant(amp_ctx *ctx, amp_tensor *x, int64_t nscale, const float *scale,
                           const int32_t *zero_point, int32_t qmin, int32_t qmax) {
  amp_tensor *c[1];
  if (!ctx) return NULL;
  if (x && !fq_params_ok(ctx, x, nscale, scale, zero_point, qmin, qmax)) return NULL;
  amp_tensor *y = amp__unary_begin(ctx, AMP__OP_FAKE_QUANT, x, c);
  if (!y) return NULL;
  const size_t n = (size_t)y->numel, per = nscale > 1 ? n / (size_t)nscale : n;
  const float lo = (float)qmin, hi = (float)qmax;
  for (int64_t ch = 0; ch < nscale; ch++) {
    const float s = scale[ch], inv = 1.0f / s, z = (float)zero_point[ch];
    const size_t i0 = (size_t)ch * per;
    if (y->dtype == AMP_F32) { /* the same operations, without the per-element dtype switch */
      const float *xf = (const float *)c[0]->data + i0;
      float *yf = (float *)y->data + i0;
      for (size_t i = 0; i < per; i++) yf[i] = (amp__quant_value(xf[i], inv, z, lo, hi) - z) * s;
      continue;
    }
    for (size_t i = i0; i < i0 + per; i++) {
      const float q = amp__quant_value(amp__load_f32(c[0]->data, c[0]->dtype, i), inv, z, lo, hi);
      amp__store_f32(y->data, y->dtype, i, (q - z) * s);
    }
  }
  amp__node *node = amp__record(ctx, AMP__OP_FAKE_QUANT, y, 1, c);
  if (node) {
    fq_saved *sv = amp_arena_alloc(ctx, AMP_ARENA_STEP, sizeof *sv);
    float *sc = amp_arena_alloc(ctx, AMP_ARENA_STEP, sizeof(float) * (size_t)nscale);
    int32_t *zc = amp_arena_alloc(ctx, AMP_ARENA_STEP, sizeof(int32_t) * (size_t)nscale);
    if (!sv || !sc || !zc) return NULL;
    memcpy(sc, scale, sizeof(float) * (size_t)nscale);
    memcpy(zc, zero_point, sizeof(int32_t) * (size_t)nscale);
    *sv = (fq_saved){nscale, qmin, qmax, sc, zc};
    memcpy(&node->iarg[0], &sv, sizeof sv);
  }
  return y;
}

amp_status amp__fake_quant_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  const fq_saved *sv;
  memcpy(&sv, &n->iarg[0], sizeof sv);
  amp_dtype gdt = amp__grad_dtype(x);
  void *dx = amp__grad_begin(ctx, x, gdt);
  if (!dx) return amp_ctx_status(ctx);
  const size_t cnt = (size_t)g->numel, per = sv->nscale > 1 ? cnt / (size_t)sv->nscale : cnt;
  const float lo = (float)sv->qmin, hi = (float)sv->qmax;
  for (int64_t ch = 0; ch < sv->nscale; ch++) {
    const float inv = 1.0f / sv->scale[ch], z = (float)sv->zp[ch];
    const size_t i0 = (size_t)ch * per;
    if (x->dtype == AMP_F32 && g->dtype == AMP_F32 && gdt == AMP_F32) {
      const float *xf = (const float *)x->data + i0, *gf = (const float *)g->data + i0;
      float *df = (float *)dx + i0;
      for (size_t i = 0; i < per; i++) {
        const float gv = gf[i];
        df[i] = amp__quant_inside(xf[i], inv, z, lo, hi) ? gv : 0.0f;
      }
      continue;
    }
    for (size_t i = i0; i < i0 + per; i++)
      amp__store_f32(dx, gdt, i,
                     amp__quant_inside(amp__load_f32(x->data, x->dtype, i), inv, z, lo, hi)
                         ? amp__load_f32(g->data, g->dtype, i)
                         : 0.0f);
  }
  return amp__grad_done(ctx, x, dx, gdt);
}
