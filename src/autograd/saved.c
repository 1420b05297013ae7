/* Autograd: what the tape holds for backward (amp_tape_saved()).
 *
 * For each node, the buffers its backward reads, as that backward is
 * written (src/ops/op_*.c): inputs whose values enter a gradient that is
 * needed (linear's x only when w needs a gradient, ...), the node's saved
 * tensor (a mask, statistics, indices) and, for an FP8 linear, its FP8
 * operands and their scales instead of x and w. Shapes alone are not
 * counted. The buffers are counted as address ranges, merged, so a buffer
 * two nodes keep (a log-softmax output that the next op keeps too) and a
 * view of it count once. */
#include "../ops/ops_internal.h"

#include <stdlib.h>

typedef struct span {
  uintptr_t lo, hi;
  int param; /* a parameter or a copy of one (16-bit, FP8) */
} span;

typedef struct spans {
  span *v;
  size_t n;
} spans;

static void add_range(spans *s, const void *p, size_t bytes, int param) {
  if (!p || !bytes) return;
  s->v[s->n++] = (span){(uintptr_t)p, (uintptr_t)p + bytes, param};
}

static void add_tensor(spans *s, const amp_tensor *t) {
  if (!t) return;
  int param = amp__is_leaf(t) || amp__master(t) != NULL;
  add_range(s, t->data, amp_tensor_bytes(t), param);
}

static void add_fp8(spans *s, const amp_fp8_matrix *q, int param) {
  int64_t nbr = (q->rows + q->block_rows - 1) / q->block_rows;
  int64_t nbc = (q->cols + q->block_cols - 1) / q->block_cols;
  add_range(s, q->data, (size_t)((q->rows - 1) * q->ld + q->cols), param);
  add_range(s, q->scale_inv, (size_t)(nbr * nbc) * sizeof(float), param);
}

static int rg(const amp_tensor *t) { return t && t->requires_grad; }

/* Of two operands whose product's backward reads each one for the other's
 * gradient (matmul, linear, conv2d, mul). */
static void add_pair(spans *s, const amp_tensor *a, const amp_tensor *b) {
  if (rg(b)) add_tensor(s, a);
  if (rg(a)) add_tensor(s, b);
}

/* Adds node n's ranges (at most 6). */
static void node_spans(const amp__node *n, spans *s) {
  const amp_tensor *const *in = (const amp_tensor *const *)n->in;
  switch (n->op) {
  case AMP__OP_LINEAR:
    if (n->aux) {
      amp_fp8_matrix q[2];
      int weight[2];
      int k = amp__linear_fp8_saved(n, q, weight);
      for (int i = 0; i < k; i++) add_fp8(s, &q[i], weight[i]);
      return;
    }
    add_pair(s, in[0], in[1]);
    return;
  case AMP__OP_MATMUL:
  case AMP__OP_BMM:
  case AMP__OP_CONV2D:
  case AMP__OP_MUL: add_pair(s, in[0], in[1]); return;
  case AMP__OP_SOFTMAX:
  case AMP__OP_LOG_SOFTMAX:
  case AMP__OP_EXP:
  case AMP__OP_TANH: add_tensor(s, n->out); return;
  case AMP__OP_LOG:
  case AMP__OP_GELU:
  case AMP__OP_GELU_TANH: add_tensor(s, in[0]); return;
  case AMP__OP_MSE:
    add_tensor(s, in[0]);
    add_tensor(s, in[1]);
    return;
  case AMP__OP_CROSS_ENTROPY:
  case AMP__OP_EMBEDDING: add_tensor(s, in[1]); break;
  case AMP__OP_LAYER_NORM:
  case AMP__OP_BATCH_NORM2D:
    add_tensor(s, in[0]);
    add_tensor(s, in[1]);
    break;
  case AMP__OP_ATTENTION:
    for (int i = 0; i < 3; i++) add_tensor(s, in[i]);
    break;
  default: break; /* relu, max_pool2d: their saved tensor; the rest: shapes */
  }
  add_tensor(s, n->saved);
}

static int by_lo(const void *a, const void *b) {
  uintptr_t x = ((const span *)a)->lo, y = ((const span *)b)->lo;
  return (x > y) - (x < y);
}

/* Bytes of the union of the ranges of s (sorted by lo) with param == want
 * (want < 0: all). */
static size_t union_bytes(const spans *s, int want) {
  size_t total = 0;
  uintptr_t hi = 0;
  for (size_t i = 0; i < s->n; i++) {
    const span *p = &s->v[i];
    if (want >= 0 && p->param != want) continue;
    uintptr_t lo = p->lo > hi ? p->lo : hi;
    if (p->hi > lo) total += p->hi - lo;
    if (p->hi > hi) hi = p->hi;
  }
  return total;
}

amp_status amp_tape_saved(amp_ctx *ctx, amp_tape_saved_stats *out) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (!out) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_tape_saved: NULL stats");
  *out = (amp_tape_saved_stats){0, 0, 0};
  if (ctx->tape_len == 0) return AMP_OK;
  spans s = {malloc(ctx->tape_len * 6 * sizeof(span)), 0};
  if (!s.v) return amp__error(ctx, AMP_ERR_NOMEM, "amp_tape_saved: out of memory");
  for (size_t i = 0; i < ctx->tape_len; i++) node_spans(ctx->tape[i], &s);
  qsort(s.v, s.n, sizeof *s.v, by_lo);
  out->total_bytes = union_bytes(&s, -1);
  out->activation_bytes = union_bytes(&s, 0);
  out->param_bytes = union_bytes(&s, 1);
  free(s.v);
  return AMP_OK;
}
