/* Scaled dot-product attention over [B, heads, T, head_dim], category lower.
 *
 * Design: not fused. For each of the B·heads matrices the scores
 * S = Q·Kᵀ/sqrt(head_dim) are materialised as a T×T F32 matrix (the GEMM
 * accumulates in F32 and writes F32: no rounding to 16 bits), the causal mask
 * and the row softmax (max, sum of exponentials) run in F32, and the
 * probabilities P (F32) are kept for backward. The two matrix products run
 * in the compute dtype (the autocast dtype in a region): Q·Kᵀ on the 16-bit
 * operands, and P rounded once to the compute dtype times V, both
 * accumulating in F32 inside amp_gemm.
 *
 * Memory: the saved P is 4·B·heads·T² bytes, the dominant term (24 MiB for
 * B = 8, 12 heads, T = 256; 1.5 GiB at T = 2048: a fused kernel would be
 * the next step for long contexts),
 * plus per-matrix scratch of T² elements (P rounded, and in backward dP in
 * F32 and dS in the compute dtype) and, in backward, three F32 [B,H,T,D]
 * gradient buffers. Rows of the softmax are independent and each GEMM splits
 * over M and N only, so the bits do not depend on the thread count. */
#include "../dtype/dtype_inline.h"
#include "op_util.h"

#include <math.h>
#include <string.h>

/* Softmax of each row of S [rows, T] in place (F32), the row of index i
 * (mod T) masked beyond column i when causal. */
static void masked_softmax(amp_ctx *ctx, float *s, int64_t rows, int64_t t, int causal) {
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (rows * t > 65536)
  for (int64_t r = 0; r < rows; r++) {
    float *row = s + r * t;
    int64_t lim = causal ? r % t + 1 : t;
    float mx = -INFINITY, sum = 0.0f;
    for (int64_t j = 0; j < lim; j++) mx = fmaxf(mx, row[j]);
    for (int64_t j = 0; j < lim; j++) sum += (row[j] = expf(row[j] - mx));
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < lim; j++) row[j] *= inv;
    for (int64_t j = lim; j < t; j++) row[j] = 0.0f;
  }
}

/* P (F32) as the GEMM operand in dt: P itself for F32, else rounded into
 * `tmp`. */
static const void *p_in(amp_ctx *ctx, const float *p, amp_dtype dt, void *tmp, size_t n) {
  if (dt == AMP_F32) return p;
  amp__convert(ctx, tmp, dt, p, AMP_F32, n, NULL);
  return tmp;
}

amp_tensor *amp_attention(amp_ctx *ctx, amp_tensor *q, amp_tensor *k, amp_tensor *v, int causal) {
  amp_tensor *in[3] = {q, k, v}, *c[3];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_ATTENTION, 3, in, c, 0, &dt)) return NULL;
  int ok = 1;
  for (int i = 0; i < 3; i++) {
    ok = ok && amp__check_float(ctx, AMP__OP_ATTENTION, c[i]) && c[i]->ndim == 4;
    for (int d = 0; ok && d < 4; d++) ok = c[i]->shape[d] == c[0]->shape[d];
  }
  if (!ok) {
    char sq[64], sk[64], sv[64];
    if (amp_ctx_status(ctx) == AMP_OK)
      amp__error(ctx, AMP_ERR_SHAPE, "attention: q %s, k %s, v %s must all be [B,heads,T,D]",
                 amp__shape_str(q, sq, sizeof sq), amp__shape_str(k, sk, sizeof sk),
                 amp__shape_str(v, sv, sizeof sv));
    return NULL;
  }
  int64_t bh = c[0]->shape[0] * c[0]->shape[1], t = c[0]->shape[2], d = c[0]->shape[3];
  amp_tensor *y = amp__op_result(ctx, dt, 4, c[0]->shape);
  amp_tensor *p = amp__op_result(ctx, AMP_F32, 3, (int64_t[]){bh, t, t});
  void *tmp = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)(t * t) * amp_dtype_size(dt));
  if (!y || !p || !tmp) return NULL;
  size_t es = amp_dtype_size(dt), md = (size_t)(t * d) * es, mt = (size_t)(t * t);
  float *pd = p->data, scale = 1.0f / sqrtf((float)d);
  for (int64_t i = 0; i < bh; i++) /* S = Q·Kᵀ·scale, written in F32 */
    if (amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, t, t, d, scale, (char *)c[0]->data + i * md, dt, d,
                 (char *)c[1]->data + i * md, dt, d, 0.0f, pd + i * mt, AMP_F32, t, NULL) != AMP_OK)
      return NULL;
  masked_softmax(ctx, pd, bh * t, t, causal);
  for (int64_t i = 0; i < bh; i++) /* O = P·V in the compute dtype */
    if (amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, t, d, t, 1.0f,
                 p_in(ctx, pd + i * mt, dt, tmp, mt), dt, t, (char *)c[2]->data + i * md, dt, d,
                 0.0f, (char *)y->data + i * md, dt, d, NULL) != AMP_OK)
      return NULL;
  amp__node *n = amp__record(ctx, AMP__OP_ATTENTION, y, 3, c);
  if (n) {
    n->saved = p;
    n->iarg[0] = causal;
  }
  return y;
}

/* dS = P ⊙ (dP − Σ_row dP ⊙ P) · scale, in place in dp (F32, T×T), then
 * rounded to dt into `out` (or left in dp for F32). */
static const void *score_grad(amp_ctx *ctx, float *dp, const float *p, int64_t t, float scale,
                              amp_dtype dt, void *out) {
  for (int64_t r = 0; r < t; r++) {
    float dot = 0.0f;
    for (int64_t j = 0; j < t; j++) dot += dp[r * t + j] * p[r * t + j];
    for (int64_t j = 0; j < t; j++) dp[r * t + j] = p[r * t + j] * (dp[r * t + j] - dot) * scale;
  }
  return p_in(ctx, dp, dt, out, (size_t)(t * t));
}

amp_status amp__attention_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
  amp_dtype dt = g->dtype;
  int64_t bh = q->shape[0] * q->shape[1], t = q->shape[2], d = q->shape[3];
  size_t es = amp_dtype_size(dt), md = (size_t)(t * d), mt = (size_t)(t * t);
  float scale = 1.0f / sqrtf((float)d);
  const float *p = n->saved->data;
  float *dq = amp_arena_alloc(ctx, AMP_ARENA_STEP, 3 * (size_t)q->numel * sizeof(float));
  float *dp = amp_arena_alloc(ctx, AMP_ARENA_STEP, mt * sizeof(float));
  void *tmp = amp_arena_alloc(ctx, AMP_ARENA_STEP, mt * es);
  if (!dq || !dp || !tmp) return amp_ctx_status(ctx);
  float *dk = dq + q->numel, *dv = dk + q->numel;
  const char *gd = g->data, *qd = q->data, *kd = k->data, *vd = v->data;
  amp_status s = AMP_OK;
  for (int64_t i = 0; i < bh && s == AMP_OK; i++) {
    const float *pi = p + i * mt;
    /* dV = Pᵀ·dO, with P rounded to dt as in the forward */
    s = amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, p_in(ctx, pi, dt, tmp, mt), dt, t,
                 gd + i * md * es, dt, d, 0.0f, dv + i * md, AMP_F32, d, NULL);
    /* dP = dO·Vᵀ in F32 */
    if (s == AMP_OK)
      s = amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, t, t, d, 1.0f, gd + i * md * es, dt, d,
                   vd + i * md * es, dt, d, 0.0f, dp, AMP_F32, t, NULL);
    if (s != AMP_OK) break;
    const void *ds = score_grad(ctx, dp, pi, t, scale, dt, tmp);
    /* dQ = dS·K, dK = dSᵀ·Q */
    s = amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, ds, dt, t, kd + i * md * es, dt, d,
                 0.0f, dq + i * md, AMP_F32, d, NULL);
    if (s == AMP_OK)
      s = amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, ds, dt, t, qd + i * md * es, dt, d,
                   0.0f, dk + i * md, AMP_F32, d, NULL);
  }
  if (s == AMP_OK) s = amp__grad_add(ctx, q, dq, AMP_F32);
  if (s == AMP_OK) s = amp__grad_add(ctx, k, dk, AMP_F32);
  if (s == AMP_OK) s = amp__grad_add(ctx, v, dv, AMP_F32);
  return s;
}
