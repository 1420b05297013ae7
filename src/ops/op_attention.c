/* Scaled dot-product attention over [B, heads, T, head_dim], category lower.
 *
 * Design: not fused. For each of the B·heads matrices the scores
 * S = Q·Kᵀ/sqrt(head_dim) are materialised as a T×T F32 matrix (the GEMM
 * accumulates in F32 and writes F32: no rounding to 16 bits), the causal mask
 * and the row softmax (max, sum of exponentials) run in F32, and the
 * probabilities P are rounded once to the compute dtype, which is what the
 * product P·V takes and what backward keeps. The two matrix products run in
 * the compute dtype (the autocast dtype in a region): Q·Kᵀ on the 16-bit
 * operands, and P times V, both accumulating in F32 inside amp_gemm.
 * Backward computes dS = P ⊙ (dP − rowsum(dP ⊙ P)) in F32 from that P: in
 * 16 bits P carries a relative error of one unit roundoff (2^-11 for F16,
 * 2^-8 for BF16), the same that P·V sees in the forward; in F32 it is the
 * exact softmax, as before.
 *
 * Memory: the saved P is B·heads·T² elements of the compute dtype (2 bytes
 * each in 16 bits, half of an F32 P: 12 MiB for B = 8, 12 heads, T = 256;
 * a fused kernel would be the next step for long contexts), plus per-matrix
 * scratch of T² F32 scores in the forward (16 bits: in F32 the scores are
 * written straight into P) and, in backward, dP in F32 and dS in the compute
 * dtype, and three F32 [B,H,T,D] gradient buffers. Rows of the softmax are
 * independent and each GEMM splits over M and N only, so the bits do not
 * depend on the thread count. */
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
  amp_tensor *p = amp__op_result(ctx, dt, 3, (int64_t[]){bh, t, t});
  size_t es = amp_dtype_size(dt), md = (size_t)(t * d) * es, mt = (size_t)(t * t);
  /* 16 bits: one matrix of F32 scores at a time; F32: the scores go to P */
  float *sc = dt == AMP_F32 ? NULL : amp_arena_alloc(ctx, AMP_ARENA_STEP, mt * sizeof(float));
  if (!y || !p || (dt != AMP_F32 && !sc)) return NULL;
  char *pd = p->data;
  float scale = 1.0f / sqrtf((float)d);
  for (int64_t i = 0; i < bh; i++) { /* S = Q·Kᵀ·scale, written in F32 */
    float *si = sc ? sc : (float *)(void *)(pd + i * mt * es);
    if (amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, t, t, d, scale, (char *)c[0]->data + i * md, dt, d,
                 (char *)c[1]->data + i * md, dt, d, 0.0f, si, AMP_F32, t, NULL) != AMP_OK)
      return NULL;
    if (!sc) continue;
    masked_softmax(ctx, sc, t, t, causal); /* then P rounded once to dt */
    if (amp__convert(ctx, pd + i * mt * es, dt, sc, AMP_F32, mt, NULL) != AMP_OK) return NULL;
  }
  if (!sc) masked_softmax(ctx, (float *)p->data, bh * t, t, causal);
  for (int64_t i = 0; i < bh; i++) /* O = P·V in the compute dtype */
    if (amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, pd + i * mt * es, dt, t,
                 (char *)c[2]->data + i * md, dt, d, 0.0f, (char *)y->data + i * md, dt, d,
                 NULL) != AMP_OK)
      return NULL;
  amp__node *n = amp__record(ctx, AMP__OP_ATTENTION, y, 3, c);
  if (n) {
    n->saved = p;
    n->iarg[0] = causal;
  }
  return y;
}

/* dS = P ⊙ (dP − Σ_row dP ⊙ P) · scale, in place in dp (F32, T×T), P (dt)
 * loaded into F32, then rounded to dt into `out` (or left in dp for F32). */
static const void *score_grad(amp_ctx *ctx, float *dp, const void *p, int64_t t, float scale,
                              amp_dtype dt, void *out) {
  for (int64_t r = 0; r < t; r++) {
    float dot = 0.0f;
    for (int64_t j = 0; j < t; j++)
      dot += dp[r * t + j] * amp__load_f32(p, dt, (size_t)(r * t + j));
    for (int64_t j = 0; j < t; j++) {
      float pj = amp__load_f32(p, dt, (size_t)(r * t + j));
      dp[r * t + j] = pj * (dp[r * t + j] - dot) * scale;
    }
  }
  if (dt == AMP_F32) return dp;
  amp__convert(ctx, out, dt, dp, AMP_F32, (size_t)(t * t), NULL);
  return out;
}

amp_status amp__attention_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
  amp_dtype dt = g->dtype;
  int64_t bh = q->shape[0] * q->shape[1], t = q->shape[2], d = q->shape[3];
  size_t es = amp_dtype_size(dt), md = (size_t)(t * d), mt = (size_t)(t * t);
  float scale = 1.0f / sqrtf((float)d);
  const char *p = n->saved->data; /* P in dt */
  /* dQ, dK, dV are written by the GEMMs (F32 accumulation) straight into
     the buffers of the gradients, in the gradients' dtypes: rounded once */
  amp_tensor *qkv[3] = {q, k, v};
  amp_dtype gt[3];
  char *gb[3];
  for (int j = 0; j < 3; j++) {
    gt[j] = amp__grad_dtype(qkv[j]);
    gb[j] = qkv[j]->requires_grad ? amp__grad_begin(ctx, qkv[j], gt[j]) : NULL;
    if (qkv[j]->requires_grad && !gb[j]) return amp_ctx_status(ctx);
  }
  float *dp = amp_arena_alloc(ctx, AMP_ARENA_STEP, mt * sizeof(float));
  void *tmp = amp_arena_alloc(ctx, AMP_ARENA_STEP, mt * es);
  if (!dp || !tmp) return amp_ctx_status(ctx);
  const char *gd = g->data, *qd = q->data, *kd = k->data, *vd = v->data;
  amp_status s = AMP_OK;
  for (int64_t i = 0; i < bh && s == AMP_OK; i++) {
    const char *pi = p + i * mt * es;
    size_t o[3];
    for (int j = 0; j < 3; j++) o[j] = (size_t)i * md * amp_dtype_size(gt[j]);
    /* dV = Pᵀ·dO, with P in dt as in the forward */
    if (gb[2])
      s = amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, pi, dt, t, gd + i * md * es, dt, d,
                   0.0f, gb[2] + o[2], gt[2], d, NULL);
    if (s != AMP_OK || (!gb[0] && !gb[1])) continue;
    /* dP = dO·Vᵀ in F32 */
    s = amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, t, t, d, 1.0f, gd + i * md * es, dt, d,
                 vd + i * md * es, dt, d, 0.0f, dp, AMP_F32, t, NULL);
    if (s != AMP_OK) break;
    const void *ds = score_grad(ctx, dp, pi, t, scale, dt, tmp);
    /* dQ = dS·K, dK = dSᵀ·Q */
    if (gb[0])
      s = amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, ds, dt, t, kd + i * md * es, dt,
                   d, 0.0f, gb[0] + o[0], gt[0], d, NULL);
    if (s == AMP_OK && gb[1])
      s = amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, ds, dt, t, qd + i * md * es, dt, d,
                   0.0f, gb[1] + o[1], gt[1], d, NULL);
  }
  for (int j = 0; j < 3 && s == AMP_OK; j++)
    if (gb[j]) s = amp__grad_done(ctx, qkv[j], gb[j], gt[j]);
  return s;
}
