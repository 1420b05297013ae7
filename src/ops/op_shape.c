/* Shape ops, category same: reshape and flatten. The result is a view: a new
 * tensor struct (in the step arena) whose data is x's data, so no element is
 * copied. Both record a node whose backward adds g into x's gradient. */
#include "op_util.h"

#include <stdio.h>
#include <string.h>

/* The view of x with a new shape; records `op` on the tape. */
static amp_tensor *view(amp_ctx *ctx, amp__op op, amp_tensor *x, int ndim, const int64_t *shape) {
  amp_tensor *y = amp_arena_alloc(ctx, AMP_ARENA_STEP, sizeof *y);
  if (!y) return NULL;
  memset(y, 0, sizeof *y);
  y->dtype = x->dtype;
  y->ndim = ndim;
  for (int i = 0; i < AMP_MAX_DIMS; i++) y->shape[i] = i < ndim ? shape[i] : 1;
  y->numel = x->numel;
  y->data = x->data;
  y->arena = AMP_ARENA_STEP;
  amp__record(ctx, op, y, 1, &x);
  return y;
}

/* The input as the op sees it: x itself (category same never casts). */
static amp_tensor *shape_input(amp_ctx *ctx, amp__op op, amp_tensor *x) {
  amp_tensor *c[1];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, op, 1, &x, c, 0, &dt)) return NULL;
  return c[0];
}

amp_tensor *amp_reshape(amp_ctx *ctx, amp_tensor *x, int ndim, const int64_t *shape) {
  amp_tensor *c = shape_input(ctx, AMP__OP_RESHAPE, x);
  if (!c) return NULL;
  char sx[64], ss[96] = "(none)";
  int ok = ndim >= 1 && ndim <= AMP_MAX_DIMS && shape;
  if (ok) {
    size_t o = (size_t)snprintf(ss, sizeof ss, "[");
    for (int i = 0; i < ndim && o < sizeof ss; i++)
      o += (size_t)snprintf(ss + o, sizeof ss - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < sizeof ss) snprintf(ss + o, sizeof ss - o, "]");
  }
  int64_t out[AMP_MAX_DIMS], known = 1;
  int infer = -1;
  for (int i = 0; ok && i < ndim; i++) {
    out[i] = shape[i];
    if (shape[i] == -1 && infer < 0)
      infer = i;
    else if (shape[i] < 1 || shape[i] > c->numel / known) /* also keeps known <= numel */
      ok = 0;
    else
      known *= shape[i];
  }
  if (ok && infer >= 0) {
    ok = c->numel % known == 0;
    out[infer] = c->numel / known;
  } else if (ok) {
    ok = known == c->numel;
  }
  if (!ok) {
    amp__error(ctx, AMP_ERR_SHAPE,
               "reshape: cannot view %s as %s (sizes > 0, at most one -1, 1 to %d dimensions, "
               "the same element count)",
               amp__shape_str(x, sx, sizeof sx), ss, AMP_MAX_DIMS);
    return NULL;
  }
  return view(ctx, AMP__OP_RESHAPE, c, ndim, out);
}

amp_tensor *amp_flatten(amp_ctx *ctx, amp_tensor *x) {
  amp_tensor *c = shape_input(ctx, AMP__OP_FLATTEN, x);
  if (!c) return NULL;
  int64_t shape[2] = {c->shape[0], c->numel / c->shape[0]};
  return view(ctx, AMP__OP_FLATTEN, c, 2, shape);
}

/* Reshape and flatten: the gradient has x's element order already. */
amp_status amp__reshape_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return amp__grad_add(ctx, n->in[0], g->data, g->dtype);
}
