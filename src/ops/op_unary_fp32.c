/* Elementwise exp and log, category fp32: under autocast their inputs are
 * upcast and they compute and return F32 (exp overflows F16 above 11, and
 * log near 1 loses F16's few bits); outside autocast they run in the input's
 * dtype, in F32 registers, rounded once on store. */
#include "../dtype/dtype_inline.h"
#include "op_util.h"

#include <math.h>

static amp_tensor *unary_fp32(amp_ctx *ctx, amp__op op, amp_tensor *x) {
  amp_tensor *c[1];
  amp_tensor *y = amp__unary_begin(ctx, op, x, c);
  if (!y) return NULL;
  const amp_dtype dt = y->dtype;
  size_t n = (size_t)y->numel;
  for (size_t i = 0; i < n; i++) {
    float v = amp__load_f32(c[0]->data, dt, i);
    amp__store_f32(y->data, dt, i, op == AMP__OP_EXP ? expf(v) : logf(v));
  }
  amp__record(ctx, op, y, 1, c);
  return y;
}

amp_tensor *amp_exp(amp_ctx *ctx, amp_tensor *x) { return unary_fp32(ctx, AMP__OP_EXP, x); }

amp_tensor *amp_log(amp_ctx *ctx, amp_tensor *x) { return unary_fp32(ctx, AMP__OP_LOG, x); }

/* exp: dx = g·y (y the forward's result); log: dx = g / x. */
static amp_status unary_fp32_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  amp_dtype dt = g->dtype, gdt = amp__grad_dtype(x);
  void *dx = amp__grad_begin(ctx, x, gdt);
  if (!dx) return amp_ctx_status(ctx);
  size_t cnt = (size_t)g->numel;
  int is_exp = n->op == AMP__OP_EXP;
  const void *v = is_exp ? n->out->data : x->data;
  for (size_t i = 0; i < cnt; i++) {
    float gi = amp__load_f32(g->data, dt, i), vi = amp__load_f32(v, dt, i);
    amp__store_f32(dx, gdt, i, is_exp ? gi * vi : gi / vi);
  }
  return amp__grad_done(ctx, x, dx, gdt);
}

amp_status amp__exp_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return unary_fp32_backward(ctx, n, g);
}

amp_status amp__log_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return unary_fp32_backward(ctx, n, g);
}
