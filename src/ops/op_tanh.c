/* Elementwise tanh and GELU with the tanh approximation (GPT-2's, PyTorch's
 * gelu(approximate='tanh')), category same: they compute in F32 registers
 * and round once to the input's dtype. Backward computes in F32 and stores in
 * the dtype of the input's gradient (F32 for a leaf).
 *
 * Numerics: tanh is ampc's own (kernels/tanh_internal.h: a polynomial below
 * |x| = 0.625, 1 − 2/(e^{2|x|} + 1) with an own exp above, a fixed FMA
 * sequence that the scalar, AVX2 and AVX-512 kernels share bit for bit), not
 * libm's tanhf; GELU is fma(x/2, t, x/2) and its derivative the FMA form
 * given there. This replaced the libm tanhf (about 45% of a GPT step), and
 * changed GPT's bits from that commit on. */
#include "../kernels/kernels_internal.h"
#include "../kernels/tanh_internal.h"
#include "op_util.h"

static amp_tensor *tanh_like(amp_ctx *ctx, amp__op op, amp_tensor *x) {
  amp_tensor *c[1];
  amp_tensor *y = amp__unary_begin(ctx, op, x, c);
  if (!y) return NULL;
  int kop = op == AMP__OP_GELU_TANH ? AMP__GELU_FWD : AMP__TANH_FWD;
  amp__tanh_act(ctx, kop, y->dtype, y->dtype, (size_t)y->numel, c[0]->data, NULL, y->data);
  amp__record(ctx, op, y, 1, c);
  return y;
}

amp_tensor *amp_tanh(amp_ctx *ctx, amp_tensor *x) { return tanh_like(ctx, AMP__OP_TANH, x); }

amp_tensor *amp_gelu_tanh(amp_ctx *ctx, amp_tensor *x) {
  return tanh_like(ctx, AMP__OP_GELU_TANH, x);
}

/* tanh: dx = g·(1 - y²) from the result y; gelu_tanh: dx = g·gelu'(x). */
static amp_status tanh_like_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  amp_dtype dt = g->dtype, gdt = amp__grad_dtype(x);
  void *dx = amp__grad_begin(ctx, x, gdt);
  if (!dx) return amp_ctx_status(ctx);
  int gelu = n->op == AMP__OP_GELU_TANH;
  amp__tanh_act(ctx, gelu ? AMP__GELU_BWD : AMP__TANH_BWD, dt, gdt, (size_t)g->numel,
                gelu ? x->data : n->out->data, g->data, dx);
  return amp__grad_done(ctx, x, dx, gdt);
}
amp_status amp__tanh_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return tanh_like_backward(ctx, n, g);
}

amp_status amp__gelu_tanh_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return tanh_like_backward(ctx, n, g);
}
