/* Elementwise tanh and GELU with the tanh approximation (GPT-2's, PyTorch's
 * gelu(approximate='tanh')), category same: they compute in F32 registers
 * and round once to the input's dtype. Backward computes in F32 and stores in
 * the dtype of the input's gradient (F32 for a leaf). */
#include "../dtype/dtype_inline.h"
#include "op_util.h"

#include <math.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

static float gelu_tanh_f(float x) {
  return 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_C * x * x * x)));
}

/* d/dx of gelu_tanh_f. */
static float gelu_tanh_d(float x) {
  float t = tanhf(GELU_K * (x + GELU_C * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
}

static amp_tensor *tanh_like(amp_ctx *ctx, amp__op op, amp_tensor *x) {
  amp_tensor *c[1];
  amp_tensor *y = amp__unary_begin(ctx, op, x, c);
  if (!y) return NULL;
  const amp_dtype dt = y->dtype;
  const void *xd = c[0]->data;
  void *yd = y->data;
  int64_t n = y->numel;
  int gelu = op == AMP__OP_GELU_TANH;
  /* Elementwise: any thread count gives the same bits. */
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float v = amp__load_f32(xd, dt, (size_t)i);
    amp__store_f32(yd, dt, (size_t)i, gelu ? gelu_tanh_f(v) : tanhf(v));
  }
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
  const void *v = gelu ? x->data : n->out->data, *gd = g->data;
  int64_t cnt = g->numel;
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (cnt > 65536)
  for (int64_t i = 0; i < cnt; i++) {
    float gi = amp__load_f32(gd, dt, (size_t)i), vi = amp__load_f32(v, dt, (size_t)i);
    amp__store_f32(dx, gdt, (size_t)i, gelu ? gi * gelu_tanh_d(vi) : gi * (1.0f - vi * vi));
  }
  return amp__grad_done(ctx, x, dx, gdt);
}

amp_status amp__tanh_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return tanh_like_backward(ctx, n, g);
}

amp_status amp__gelu_tanh_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return tanh_like_backward(ctx, n, g);
}
