/* Elementwise ops that keep their input's dtype: relu, mul_scalar. */
#include "ops_internal.h"

/* Runs a one-input, same-shape op: prepares the input and allocates y. */
static amp_tensor *unary_begin(amp_ctx *ctx, amp__op op, amp_tensor *x, amp_tensor **c) {
  amp_dtype dt;
  if (!amp__op_inputs(ctx, op, 1, &x, c, 0, &dt)) return NULL;
  if (!amp_dtype_is_float(c[0]->dtype)) {
    amp__error(ctx, AMP_ERR_UNSUPPORTED, "%s: input has dtype %s", amp__ops[op].name,
               amp_dtype_name(c[0]->dtype));
    return NULL;
  }
  return amp__op_result(ctx, dt, c[0]->ndim, c[0]->shape);
}

amp_tensor *amp_relu(amp_ctx *ctx, amp_tensor *x) {
  amp_tensor *c[1];
  amp_tensor *y = unary_begin(ctx, AMP__OP_RELU, x, c);
  if (!y || amp_vec_relu(ctx, y->dtype, (size_t)y->numel, c[0]->data, y->data) != AMP_OK)
    return NULL;
  amp__record(ctx, AMP__OP_RELU, y, 1, c);
  return y;
}

amp_status amp__relu_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  void *dx = amp__grad_begin(ctx, x, g->dtype);
  if (!dx) return amp_ctx_status(ctx);
  amp_status s = amp_vec_relu_backward(ctx, g->dtype, (size_t)g->numel, x->data, g->data, dx);
  return s != AMP_OK ? s : amp__grad_done(ctx, x, dx, g->dtype);
}

amp_tensor *amp_mul_scalar(amp_ctx *ctx, amp_tensor *x, float s) {
  amp_tensor *c[1];
  amp_tensor *y = unary_begin(ctx, AMP__OP_MUL_SCALAR, x, c);
  if (!y || amp_vec_scale(ctx, y->dtype, (size_t)y->numel, s, c[0]->data, y->data) != AMP_OK)
    return NULL;
  amp__node *n = amp__record(ctx, AMP__OP_MUL_SCALAR, y, 1, c);
  if (n) n->farg[0] = s;
  return y;
}

amp_status amp__mul_scalar_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  void *dx = amp__grad_begin(ctx, x, g->dtype);
  if (!dx) return amp_ctx_status(ctx);
  amp_status s = amp_vec_scale(ctx, g->dtype, (size_t)g->numel, n->farg[0], g->data, dx);
  return s != AMP_OK ? s : amp__grad_done(ctx, x, dx, g->dtype);
}
