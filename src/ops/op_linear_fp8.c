/* amp_linear() inside an FP8 region: y = x·wᵀ + b with x and w quantised by
 * the recipe (E4M3, see src/autocast/fp8.c) and multiplied by
 * amp_gemm_fp8's path (exact widening, F32 accumulation), y rounded once to
 * the compute dtype. Backward saves only the FP8 operands (not x and w):
 *   dX  = q(dY)·q(W)      dW (+)= q(dY)ᵀ·q(X)
 * with dY quantised once (E5M2 per tensor, or E4M3 1 × 128 tiles under
 * block scaling) and used by both products. Emulation needs no re-tiling
 * of X and dY along the reduction of the weight gradient (DeepSeek-V3
 * re-quantises them 128 × 1 for its tensor cores): each element keeps the
 * scale it was quantised with, and the product is exact either way. */
#include "../autocast/fp8_state.h"
#include "../kernels/fp8_internal.h"
#include "ops_internal.h"

typedef struct fp8_saved {
  int slot;
  amp_fp8_matrix qx, qw; /* [rows, din] and [dout, din] */
} fp8_saved;

amp_tensor *amp__linear_fp8(amp_ctx *ctx, amp_tensor *const *c, amp_dtype dt, int ndim,
                            const int64_t *shape) {
  const amp_tensor *x = c[0], *w = c[1], *b = c[2];
  int64_t dout = w->shape[0], din = w->shape[1], rows = x->numel / din;
  int slot = amp__fp8_slot(ctx, w);
  if (slot < 0) return NULL;
  fp8_saved sv = {slot, {0}, {0}};
  if (!amp__fp8_quantize(ctx, slot, AMP__FP8_INPUT, x, rows, din, &sv.qx) ||
      !amp__fp8_quantize(ctx, slot, AMP__FP8_WEIGHT, w, dout, din, &sv.qw))
    return NULL;
  amp_tensor *y = amp__op_result(ctx, dt, ndim, shape);
  if (!y) return NULL;
  amp_epilogue ep = {.bias = b ? b->data : NULL, .bias_dtype = dt};
  if (amp__gemm_fp8(ctx, AMP_NO_TRANS, AMP_TRANS, rows, dout, din, 1.0f, &sv.qx, &sv.qw, 0.0f,
                    y->data, dt, dout, &ep) != AMP_OK)
    return NULL;
  amp__node *nd = amp__record(ctx, AMP__OP_LINEAR, y, b ? 3 : 2, c);
  if (nd) {
    fp8_saved *p = amp_arena_alloc(ctx, AMP_ARENA_STEP, sizeof *p);
    if (!p) return NULL;
    *p = sv;
    nd->aux = p;
  }
  return y;
}

int amp__linear_fp8_saved(const amp__node *nd, amp_fp8_matrix *q, int *weight) {
  const fp8_saved *sv = nd->aux;
  int k = 0;
  if (nd->in[1]->requires_grad) { /* dW reads q(X) */
    q[k] = sv->qx;
    weight[k++] = 0;
  }
  if (nd->in[0]->requires_grad) { /* dX reads q(W) */
    q[k] = sv->qw;
    weight[k++] = 1;
  }
  return k;
}

/* C (+)= op(A)·op(B) into t's gradient (any dtype). */
static amp_status gemm_into(amp_ctx *ctx, amp_tensor *t, amp_trans ta, amp_trans tb, int64_t m,
                            int64_t n, int64_t k, const amp_fp8_matrix *a,
                            const amp_fp8_matrix *b) {
  int acc;
  amp_tensor *g = amp__grad_of(ctx, t, &acc);
  if (!g) return amp_ctx_status(ctx);
  /* All of a leaf's gradient: checked as it is stored (see op_matmul.c). */
  int nonfinite = 0, whole = m * n == t->numel && amp__grad_is_leaf(t);
  amp_epilogue ep = {.nonfinite = &nonfinite};
  amp_status s = amp__gemm_fp8(ctx, ta, tb, m, n, k, 1.0f, a, b, acc ? 1.0f : 0.0f, g->data,
                               g->dtype, n, whole ? &ep : NULL);
  if (s == AMP_OK && whole) amp__grad_witness(t, nonfinite);
  return s;
}

amp_status amp__linear_fp8_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *g) {
  const fp8_saved *sv = nd->aux;
  amp_tensor *x = nd->in[0], *w = nd->in[1];
  int64_t dout = w->shape[0], din = w->shape[1], rows = x->numel / din;
  if (!ctx->fp8)
    return amp__error(ctx, AMP_ERR_STATE, "linear (fp8) backward: the FP8 state is gone");
  amp_fp8_matrix qg;
  if (!amp__fp8_quantize(ctx, sv->slot, AMP__FP8_GRAD, g, rows, dout, &qg))
    return amp_ctx_status(ctx);
  amp_status s = AMP_OK;
  if (x->requires_grad) /* dX = dY·W */
    s = gemm_into(ctx, x, AMP_NO_TRANS, AMP_NO_TRANS, rows, din, dout, &qg, &sv->qw);
  if (s == AMP_OK && w->requires_grad) /* dW (+)= dYᵀ·X */
    s = gemm_into(ctx, w, AMP_TRANS, AMP_NO_TRANS, dout, din, rows, &qg, &sv->qx);
  return s;
}
