/* Reductions to one element, category fp32: sum and mean of all elements,
 * with amp_vec_sum's fixed summation order (the same bits for any thread
 * count). Under autocast the input is upcast and the result is F32. */
#include "../dtype/dtype_inline.h"
#include "op_util.h"

static amp_tensor *reduce(amp_ctx *ctx, amp__op op, amp_tensor *x) {
  amp_tensor *c[1];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, op, 1, &x, c, 0, &dt)) return NULL;
  if (!amp__check_float(ctx, op, c[0])) return NULL;
  amp_tensor *y = amp__op_result(ctx, dt, 1, (int64_t[]){1});
  if (!y) return NULL;
  float s;
  if (amp_vec_sum(ctx, dt, (size_t)c[0]->numel, c[0]->data, &s) != AMP_OK) return NULL;
  if (op == AMP__OP_MEAN) s /= (float)c[0]->numel;
  amp__store_f32(y->data, dt, 0, s);
  amp__record(ctx, op, y, 1, c);
  return y;
}

amp_tensor *amp_sum(amp_ctx *ctx, amp_tensor *x) { return reduce(ctx, AMP__OP_SUM, x); }

amp_tensor *amp_mean(amp_ctx *ctx, amp_tensor *x) { return reduce(ctx, AMP__OP_MEAN, x); }

/* dx_i = g (sum) or g / n (mean), stored in the gradient's dtype. */
static amp_status reduce_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  amp_dtype gdt = amp__grad_dtype(x);
  float v = amp__load_f32(g->data, g->dtype, 0);
  if (n->op == AMP__OP_MEAN) v /= (float)x->numel;
  void *dx = amp__grad_begin(ctx, x, gdt);
  if (!dx) return amp_ctx_status(ctx);
  for (size_t i = 0; i < (size_t)x->numel; i++) amp__store_f32(dx, gdt, i, v);
  return amp__grad_done(ctx, x, dx, gdt);
}

amp_status amp__sum_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return reduce_backward(ctx, n, g);
}

amp_status amp__mean_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return reduce_backward(ctx, n, g);
}
