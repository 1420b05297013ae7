/* Softmax and log-softmax over the last dimension, category fp32: under
 * autocast their inputs are upcast and they run and return F32. The row
 * reductions (max, sum of exponentials, and backward's dot products) are F32
 * in a fixed order. */
#include "../dtype/dtype_inline.h"
#include "op_util.h"

#include <math.h>

static amp_tensor *softmax_op(amp_ctx *ctx, amp__op op, amp_tensor *x) {
  amp_tensor *c[1];
  amp_tensor *y = amp__unary_begin(ctx, op, x, c);
  if (!y) return NULL;
  const amp_dtype dt = y->dtype;
  int64_t cols = y->shape[y->ndim - 1], rows = y->numel / cols;
  amp_status s = op == AMP__OP_SOFTMAX
                     ? amp_softmax_rows(ctx, dt, rows, cols, c[0]->data, y->data)
                     : amp_log_softmax_rows(ctx, dt, rows, cols, c[0]->data, y->data);
  if (s != AMP_OK) return NULL;
  amp__record(ctx, op, y, 1, c);
  return y;
}

amp_tensor *amp_softmax(amp_ctx *ctx, amp_tensor *x) { return softmax_op(ctx, AMP__OP_SOFTMAX, x); }

amp_tensor *amp_log_softmax(amp_ctx *ctx, amp_tensor *x) {
  return softmax_op(ctx, AMP__OP_LOG_SOFTMAX, x);
}

/* softmax:     dx = y·(g − Σ_row g·y)
 * log_softmax: dx = g − exp(y)·Σ_row g
 * with y the forward's result; the row sums use amp_sum_rows (F32). */
static amp_status softmax_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0], *y = n->out;
  amp_dtype dt = g->dtype, gdt = amp__grad_dtype(x);
  int64_t cols = y->shape[y->ndim - 1], rows = y->numel / cols;
  size_t cnt = (size_t)y->numel, C = (size_t)cols;
  int soft = n->op == AMP__OP_SOFTMAX;
  float *sums = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)rows * sizeof(float));
  if (!sums) return amp_ctx_status(ctx);
  amp_status s;
  if (soft) {
    float *gy = amp_arena_alloc(ctx, AMP_ARENA_STEP, cnt * sizeof(float));
    if (!gy) return amp_ctx_status(ctx);
    for (size_t i = 0; i < cnt; i++)
      gy[i] = amp__load_f32(g->data, dt, i) * amp__load_f32(y->data, dt, i);
    s = amp_sum_rows(ctx, AMP_F32, rows, cols, gy, sums);
  } else {
    s = amp_sum_rows(ctx, dt, rows, cols, g->data, sums);
  }
  if (s != AMP_OK) return s;
  void *dx = amp__grad_begin(ctx, x, gdt);
  if (!dx) return amp_ctx_status(ctx);
  for (size_t i = 0; i < cnt; i++) {
    float gi = amp__load_f32(g->data, dt, i), yi = amp__load_f32(y->data, dt, i);
    float r = sums[i / C];
    amp__store_f32(dx, gdt, i, soft ? yi * (gi - r) : gi - expf(yi) * r);
  }
  return amp__grad_done(ctx, x, dx, gdt);
}

amp_status amp__softmax_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return softmax_backward(ctx, n, g);
}

amp_status amp__log_softmax_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return softmax_backward(ctx, n, g);
}
