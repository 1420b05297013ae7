/* Data-movement ops that copy: transpose (two axes swapped), slice (a range
 * of one axis) and concat (along one axis). Transpose and slice are category
 * same (they move bits, the result keeps its input's dtype); concat is
 * category promote (its inputs meet in their widest dtype, like add). The
 * results are fresh contiguous tensors; backward moves the gradient back
 * in the gradient's dtype, which adds no rounding. */
#include "op_util.h"

#include <string.h>

/* Product of shape[from..to). */
static int64_t span(const amp_tensor *t, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= t->shape[i];
  return p;
}

/* src viewed as [A, n0, B, n1, C] → dst as [A, n1, B, n0, C], es-byte
 * elements. Applied with n0 and n1 exchanged it is its own inverse. */
static void swap_axes(const char *src, char *dst, int64_t A, int64_t n0, int64_t B, int64_t n1,
                      int64_t C, size_t es) {
  size_t row = (size_t)C * es;
  for (int64_t a = 0; a < A; a++)
    for (int64_t i1 = 0; i1 < n1; i1++)
      for (int64_t b = 0; b < B; b++)
        for (int64_t i0 = 0; i0 < n0; i0++)
          memcpy(dst + (size_t)(((a * n1 + i1) * B + b) * n0 + i0) * row,
                 src + (size_t)(((a * n0 + i0) * B + b) * n1 + i1) * row, row);
}

/* x as [A, n0, B, n1, C] around axes d0 <= d1 (for d0 == d1: [A, n0, 1, 1,
 * C], which swap_axes copies unchanged). */
static void around_axes(const amp_tensor *x, int d0, int d1, int64_t v[5]) {
  v[0] = span(x, 0, d0);
  v[1] = x->shape[d0];
  v[2] = d0 == d1 ? 1 : span(x, d0 + 1, d1);
  v[3] = d0 == d1 ? 1 : x->shape[d1];
  v[4] = span(x, d1 + 1, x->ndim);
}

amp_tensor *amp_transpose(amp_ctx *ctx, amp_tensor *x, int dim0, int dim1) {
  amp_tensor *c[1];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_TRANSPOSE, 1, &x, c, 0, &dt) ||
      !amp__check_float(ctx, AMP__OP_TRANSPOSE, c[0]))
    return NULL;
  int nd = c[0]->ndim;
  if (dim0 < 0 || dim1 < 0 || dim0 >= nd || dim1 >= nd) {
    char sx[64];
    amp__error(ctx, AMP_ERR_INVALID_ARG, "transpose: axes %d and %d out of range for %s", dim0,
               dim1, amp__shape_str(x, sx, sizeof sx));
    return NULL;
  }
  int d0 = dim0 < dim1 ? dim0 : dim1, d1 = dim0 < dim1 ? dim1 : dim0;
  int64_t shape[AMP_MAX_DIMS];
  memcpy(shape, c[0]->shape, sizeof shape);
  shape[d0] = c[0]->shape[d1];
  shape[d1] = c[0]->shape[d0];
  amp_tensor *y = amp__op_result(ctx, dt, nd, shape);
  if (!y) return NULL;
  int64_t v[5];
  around_axes(c[0], d0, d1, v);
  swap_axes(c[0]->data, y->data, v[0], v[1], v[2], v[3], v[4], amp_dtype_size(dt));
  amp__node *n = amp__record(ctx, AMP__OP_TRANSPOSE, y, 1, c);
  if (n) {
    n->iarg[0] = d0;
    n->iarg[1] = d1;
  }
  return y;
}

amp_status amp__transpose_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  int d0 = (int)n->iarg[0], d1 = (int)n->iarg[1];
  void *dx = amp__grad_begin(ctx, x, g->dtype);
  if (!dx) return amp_ctx_status(ctx);
  /* g is [A, n1, B, n0, C]: swapping its axes gives x's layout. */
  int64_t v[5];
  around_axes(x, d0, d1, v);
  swap_axes(g->data, dx, v[0], v[3], v[2], v[1], v[4], amp_dtype_size(g->dtype));
  return amp__grad_done(ctx, x, dx, g->dtype);
}

/* Copies, for a in 0..A, `cnt` rows of `row` bytes from src (rows `sn` per
 * a, starting at `soff`) to dst (rows `dn` per a, starting at `doff`). */
static void copy_rows(const char *src, int64_t sn, int64_t soff, char *dst, int64_t dn,
                      int64_t doff, int64_t A, int64_t cnt, size_t row) {
  for (int64_t a = 0; a < A; a++)
    memcpy(dst + (size_t)(a * dn + doff) * row, src + (size_t)(a * sn + soff) * row,
           (size_t)cnt * row);
}

amp_tensor *amp_slice(amp_ctx *ctx, amp_tensor *x, int axis, int64_t start, int64_t len) {
  amp_tensor *c[1];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_SLICE, 1, &x, c, 0, &dt) ||
      !amp__check_float(ctx, AMP__OP_SLICE, c[0]))
    return NULL;
  int nd = c[0]->ndim;
  if (axis < 0 || axis >= nd || start < 0 || len < 1 || start > c[0]->shape[axis] - len) {
    char sx[64];
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "slice: axis %d, start %lld, length %lld do not fit %s (length >= 1)", axis,
               (long long)start, (long long)len, amp__shape_str(x, sx, sizeof sx));
    return NULL;
  }
  int64_t shape[AMP_MAX_DIMS];
  memcpy(shape, c[0]->shape, sizeof shape);
  shape[axis] = len;
  amp_tensor *y = amp__op_result(ctx, dt, nd, shape);
  if (!y) return NULL;
  size_t row = (size_t)span(c[0], axis + 1, nd) * amp_dtype_size(dt);
  copy_rows(c[0]->data, c[0]->shape[axis], start, y->data, len, 0, span(c[0], 0, axis), len, row);
  amp__node *n = amp__record(ctx, AMP__OP_SLICE, y, 1, c);
  if (n) {
    n->iarg[0] = axis;
    n->iarg[1] = start;
  }
  return y;
}

amp_status amp__slice_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  int axis = (int)n->iarg[0];
  int64_t start = n->iarg[1], len = g->shape[axis];
  size_t es = amp_dtype_size(g->dtype);
  char *dx = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)x->numel * es);
  if (!dx) return amp_ctx_status(ctx);
  memset(dx, 0, (size_t)x->numel * es); /* +0 in F32, F16 and BF16 */
  size_t row = (size_t)span(x, axis + 1, x->ndim) * es;
  copy_rows(g->data, len, 0, dx, x->shape[axis], start, span(x, 0, axis), len, row);
  return amp__grad_add(ctx, x, dx, g->dtype);
}

amp_status amp_split(amp_ctx *ctx, amp_tensor *x, int axis, int parts, const int64_t *sizes,
                     amp_tensor **out) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (!x || !out || !sizes || parts < 1 || axis < 0 || axis >= x->ndim)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "split: bad arguments (axis %d, %d parts)", axis,
                      parts);
  int64_t total = 0;
  for (int i = 0; i < parts; i++) {
    if (sizes[i] < 1 || sizes[i] > x->shape[axis] - total)
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "split: sizes do not add up to axis %d's %lld (part %d is %lld)", axis,
                        (long long)x->shape[axis], i, (long long)sizes[i]);
    total += sizes[i];
  }
  if (total != x->shape[axis])
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "split: sizes add up to %lld, axis %d has %lld",
                      (long long)total, axis, (long long)x->shape[axis]);
  int64_t at = 0;
  for (int i = 0; i < parts; at += sizes[i++])
    if (!(out[i] = amp_slice(ctx, x, axis, at, sizes[i]))) return amp_ctx_status(ctx);
  return AMP_OK;
}

amp_tensor *amp_concat(amp_ctx *ctx, int n, amp_tensor *const *xs, int axis) {
  if (!ctx) return NULL;
  if (n < 1 || n > AMP__MAX_INPUTS || !xs) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "concat: %d inputs; it takes 1 to %d", n, AMP__MAX_INPUTS);
    return NULL;
  }
  amp_tensor *c[AMP__MAX_INPUTS];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_CONCAT, n, xs, c, 0, &dt)) return NULL;
  int nd = c[0]->ndim;
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    int ok =
        amp__check_float(ctx, AMP__OP_CONCAT, c[i]) && c[i]->ndim == nd && axis >= 0 && axis < nd;
    for (int d = 0; ok && d < nd; d++) ok = d == axis || c[i]->shape[d] == c[0]->shape[d];
    if (!ok) {
      char s0[64], si[64];
      if (amp_ctx_status(ctx) == AMP_OK)
        amp__error(ctx, AMP_ERR_SHAPE, "concat: input %d %s does not fit input 0 %s on axis %d", i,
                   amp__shape_str(xs[i], si, sizeof si), amp__shape_str(xs[0], s0, sizeof s0),
                   axis);
      return NULL;
    }
    total += c[i]->shape[axis];
  }
  int64_t shape[AMP_MAX_DIMS];
  memcpy(shape, c[0]->shape, sizeof shape);
  shape[axis] = total;
  amp_tensor *y = amp__op_result(ctx, dt, nd, shape);
  if (!y) return NULL;
  size_t row = (size_t)span(c[0], axis + 1, nd) * amp_dtype_size(dt);
  int64_t at = 0;
  for (int i = 0; i < n; at += c[i++]->shape[axis])
    copy_rows(c[i]->data, c[i]->shape[axis], 0, y->data, total, at, span(c[0], 0, axis),
              c[i]->shape[axis], row);
  amp__node *nd_ = amp__record(ctx, AMP__OP_CONCAT, y, n, c);
  if (nd_) nd_->iarg[0] = axis;
  return y;
}

amp_status amp__concat_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  int axis = (int)n->iarg[0];
  size_t es = amp_dtype_size(g->dtype);
  int64_t at = 0, total = g->shape[axis];
  for (int i = 0; i < n->nin; at += n->in[i++]->shape[axis]) {
    amp_tensor *x = n->in[i];
    if (!x->requires_grad) continue;
    char *dx = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)x->numel * es);
    if (!dx) return amp_ctx_status(ctx);
    size_t row = (size_t)span(x, axis + 1, x->ndim) * es;
    copy_rows(g->data, total, at, dx, x->shape[axis], 0, span(x, 0, axis), x->shape[axis], row);
    amp_status s = amp__grad_add(ctx, x, dx, g->dtype);
    if (s != AMP_OK) return s;
  }
  return AMP_OK;
}
