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
 * written straight into P) and, in backward, dP in F32, dS in the compute
 * dtype and (16 bits) one matrix of P widened to F32, and three F32
 * [B,H,T,D] gradient buffers. Rows of the softmax are
 * independent and each GEMM splits over M and N only, so the bits do not
 * depend on the thread count. */
#include "../dtype/dtype_inline.h"
#include "../kernels/norm_internal.h"
#include "op_util.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Softmax of each row of S [rows, T] in place (F32), the row of index i
 * (mod T) masked beyond column i when causal: the kernel table's row
 * softmax (ampc's own exp, sums in the 16-lane order of
 * kernels/norm_internal.h), on the calling thread. */
static void masked_softmax(amp_ctx *ctx, float *s, int64_t rows, int64_t t, int causal) {
  const amp__kernels *k = amp__kernels_of(ctx);
  for (int64_t r = 0; r < rows; r++)
    k->softmax_row(s + r * t, (size_t)(causal ? r % t + 1 : t), (size_t)t);
}

/* Threads for a loop over the bh matrices: each matrix is one work item
 * (its GEMMs then run on their item's thread; a GEMM gives the same bits
 * with any thread count, so the split changes none). */
static int team(amp_ctx *ctx, int64_t bh) {
  int nt = amp__threads(ctx);
  return nt > bh ? (bh > 0 ? (int)bh : 1) : nt;
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
  const int nt = team(ctx, bh);
  /* 16 bits: one matrix of F32 scores per thread; F32: the scores go to P */
  float *sc =
      dt == AMP_F32 ? NULL : amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)nt * mt * sizeof(float));
  if (!y || !p || (dt != AMP_F32 && !sc)) return NULL;
  char *pd = p->data;
  const char *qd = c[0]->data, *kd = c[1]->data, *vd = c[2]->data;
  float scale = 1.0f / sqrtf((float)d);
  int bad = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : bad) if (nt > 1)
  for (int64_t i = 0; i < bh; i++) {
    if (bad) continue;
    float *si = sc ? sc + (size_t)omp_get_thread_num() * mt : (float *)(void *)(pd + i * mt * es);
    /* S = Q·Kᵀ·scale, written in F32 */
    bad = amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, t, t, d, scale, qd + i * md, dt, d, kd + i * md,
                   dt, d, 0.0f, si, AMP_F32, t, NULL) != AMP_OK;
    if (bad) continue;
    masked_softmax(ctx, si, t, t, causal); /* then P rounded once to dt */
    if (sc) bad = amp__convert(ctx, pd + i * mt * es, dt, si, AMP_F32, mt, NULL) != AMP_OK;
    /* O = P·V in the compute dtype */
    bad =
        bad || amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, pd + i * mt * es, dt, t,
                        vd + i * md, dt, d, 0.0f, (char *)y->data + i * md, dt, d, NULL) != AMP_OK;
  }
  if (bad) return NULL;
  amp__node *n = amp__record(ctx, AMP__OP_ATTENTION, y, 3, c);
  if (n) {
    n->saved = p;
    n->iarg[0] = causal;
  }
  return y;
}

/* dS = P ⊙ (dP − Σ_row dP ⊙ P) · scale, in place in dp (F32, T×T), with P
 * (dt) widened to F32 in pf (exact), then rounded to dt into `out` (or left
 * in dp for F32). Each row's dot product adds dp·p in the 16-lane order of
 * kernels/norm_internal.h (multiply, then add: no FMA), which the compiler
 * may vectorise without changing a bit. */
static const void *score_grad(amp_ctx *ctx, float *dp, const void *p, float *pf, int64_t t,
                              float scale, amp_dtype dt, void *out) {
  const size_t T = (size_t)t;
  const float *pv = p;
  if (dt != AMP_F32) {
    amp__convert(ctx, pf, AMP_F32, p, dt, T * T, NULL);
    pv = pf;
  }
  for (size_t r = 0; r < T; r++) {
    float *d = dp + r * T;
    const float *q = pv + r * T;
    float acc[AMP__ROW_LANES] = {0};
    size_t j = 0;
    for (; j + AMP__ROW_LANES <= T; j += AMP__ROW_LANES)
      for (int l = 0; l < AMP__ROW_LANES; l++) acc[l] += d[j + (size_t)l] * q[j + (size_t)l];
    for (int l = 0; j + (size_t)l < T; l++) acc[l] += d[j + (size_t)l] * q[j + (size_t)l];
    const float dot = amp__row_tree(acc, 0);
    for (j = 0; j < T; j++) d[j] = q[j] * (d[j] - dot) * scale;
  }
  if (dt == AMP_F32) return dp;
  amp__convert(ctx, out, dt, dp, AMP_F32, T * T, NULL);
  return out;
}

/* The backward of one attention: the buffers and shapes of every matrix. */
typedef struct bwd_args {
  int64_t t, d;
  size_t es, md, mt;
  float scale;
  amp_dtype dt, gt[3];
  const char *p, *gd, *qd, *kd, *vd;
  char *gb[3];
} bwd_args;

/* Matrix i's dQ, dK, dV, with one thread's buffers dp (T² F32), tmp (T² dt)
 * and pf (T² F32, 16 bits only). */
static amp_status bwd_one(amp_ctx *ctx, const bwd_args *a, int64_t i, float *dp, void *tmp,
                          float *pf) {
  const int64_t t = a->t, d = a->d;
  const amp_dtype dt = a->dt;
  const char *pi = a->p + (size_t)i * a->mt * a->es;
  const size_t oi = (size_t)i * a->md * a->es; /* matrix i of g, q, k, v */
  size_t o[3];
  for (int j = 0; j < 3; j++) o[j] = (size_t)i * a->md * amp_dtype_size(a->gt[j]);
  amp_status s = AMP_OK;
  /* dV = Pᵀ·dO, with P in dt as in the forward */
  if (a->gb[2])
    s = amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, pi, dt, t, a->gd + oi, dt, d, 0.0f,
                 a->gb[2] + o[2], a->gt[2], d, NULL);
  if (s != AMP_OK || (!a->gb[0] && !a->gb[1])) return s;
  /* dP = dO·Vᵀ in F32 */
  s = amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, t, t, d, 1.0f, a->gd + oi, dt, d, a->vd + oi, dt, d,
               0.0f, dp, AMP_F32, t, NULL);
  if (s != AMP_OK) return s;
  const void *ds = score_grad(ctx, dp, pi, pf, t, a->scale, dt, tmp);
  /* dQ = dS·K, dK = dSᵀ·Q */
  if (a->gb[0])
    s = amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, ds, dt, t, a->kd + oi, dt, d, 0.0f,
                 a->gb[0] + o[0], a->gt[0], d, NULL);
  if (s == AMP_OK && a->gb[1])
    s = amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, t, d, t, 1.0f, ds, dt, t, a->qd + oi, dt, d, 0.0f,
                 a->gb[1] + o[1], a->gt[1], d, NULL);
  return s;
}

amp_status amp__attention_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
  bwd_args a = {.t = q->shape[2],
                .d = q->shape[3],
                .dt = g->dtype,
                .p = n->saved->data,
                .gd = g->data,
                .qd = q->data,
                .kd = k->data,
                .vd = v->data};
  int64_t bh = q->shape[0] * q->shape[1];
  a.es = amp_dtype_size(a.dt), a.md = (size_t)(a.t * a.d), a.mt = (size_t)(a.t * a.t);
  a.scale = 1.0f / sqrtf((float)a.d);
  /* dQ, dK, dV are written by the GEMMs (F32 accumulation) straight into
     the buffers of the gradients, in the gradients' dtypes: rounded once */
  amp_tensor *qkv[3] = {q, k, v};
  for (int j = 0; j < 3; j++) {
    a.gt[j] = amp__grad_dtype(qkv[j]);
    a.gb[j] = qkv[j]->requires_grad ? amp__grad_begin(ctx, qkv[j], a.gt[j]) : NULL;
    if (qkv[j]->requires_grad && !a.gb[j]) return amp_ctx_status(ctx);
  }
  const int nt = team(ctx, bh);
  const size_t mt = a.mt, f16 = a.dt != AMP_F32;
  float *dp = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)nt * mt * sizeof(float));
  char *tmp = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)nt * mt * a.es);
  float *pf = f16 ? amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)nt * mt * sizeof(float)) : NULL;
  if (!dp || !tmp || (f16 && !pf)) return amp_ctx_status(ctx);
  int bad = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : bad) if (nt > 1)
  for (int64_t i = 0; i < bh; i++) {
    if (bad) continue;
    const size_t me = (size_t)omp_get_thread_num();
    bad = bwd_one(ctx, &a, i, dp + me * mt, tmp + me * mt * a.es, f16 ? pf + me * mt : NULL) !=
          AMP_OK;
  }
  amp_status s = bad ? amp_ctx_status(ctx) : AMP_OK;
  if (bad && s == AMP_OK) s = amp__error(ctx, AMP_ERR_NOMEM, "attention backward failed");
  for (int j = 0; j < 3 && s == AMP_OK; j++)
    if (a.gb[j]) s = amp__grad_done(ctx, qkv[j], a.gb[j], a.gt[j]);
  return s;
}
