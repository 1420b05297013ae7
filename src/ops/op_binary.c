/* Binary arithmetic, category promote: add, sub, mul. b is either the shape
 * of a, or one row ([C] or [1,C] with C = a's last dimension) applied to
 * every row of a, or a single element. Each element is computed in F32 and
 * rounded once to the compute dtype. Inputs of different dtypes are read in
 * their own dtypes (ops.def: reads OWN), not cast: an F32 residual plus a
 * 16-bit branch makes no F32 copy of the branch (the values are the same:
 * the upcast is exact). */
#include "../dtype/dtype_inline.h"
#include "../kernels/kernels_internal.h"
#include "op_util.h"

#include <string.h>

enum { BC_SAME = 0, BC_ROW = 1, BC_SCALAR = 2 };
enum { K_ADD = 0, K_SUB = 1, K_MUL = 2 };

static int same_shape(const amp_tensor *a, const amp_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

static float apply(int kind, float x, float y) {
  return kind == K_ADD ? x + y : kind == K_SUB ? x - y : x * y;
}

/* y = a + b or a·b in F32 for operands of other dtypes (an F32 residual plus
 * a 16-bit branch): blocks of MIX_BLOCK elements are widened exactly to F32
 * on the stack and go through the F32 vector kernel (the F32 operation of
 * the scalar loop, with amp_vec_add's NaN rule), split over threads. */
#define MIX_BLOCK 2048
static void mixed_f32(amp_ctx *ctx, int kind, size_t n, const void *pa, amp_dtype at,
                      const void *pb, amp_dtype bt, float *y) {
  const amp__kernels *kt = amp__kernels_of(ctx);
  const size_t nb = (n + MIX_BLOCK - 1) / MIX_BLOCK;
  const int op = kind == K_ADD ? AMP__ADD : AMP__MUL;
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (n > 65536)
  for (size_t k = 0; k < nb; k++) {
    float wa[MIX_BLOCK], wb[MIX_BLOCK];
    size_t i0 = k * MIX_BLOCK, len = n - i0 < MIX_BLOCK ? n - i0 : MIX_BLOCK;
    const float *ua = (const float *)pa + i0, *ub = (const float *)pb + i0;
    if (at != AMP_F32) kt->to_f32[at](wa, amp__at(pa, at, i0), len), ua = wa;
    if (bt != AMP_F32) kt->to_f32[bt](wb, amp__at(pb, bt, i0), len), ub = wb;
    kt->elt(op, AMP_F32, len, 0.0f, ua, ub, y + i0);
  }
}

static amp_tensor *binary(amp_ctx *ctx, amp__op op, int kind, amp_tensor *a, amp_tensor *b) {
  amp_tensor *in[2] = {a, b}, *c[2];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, op, 2, in, c, 0, &dt)) return NULL;
  if (!amp__check_float(ctx, op, c[0]) || !amp__check_float(ctx, op, c[1])) return NULL;
  int64_t cols = c[0]->shape[c[0]->ndim - 1];
  int mode;
  if (same_shape(c[0], c[1]))
    mode = BC_SAME;
  else if (c[1]->numel == 1)
    mode = BC_SCALAR;
  else if ((c[1]->ndim == 1 && c[1]->shape[0] == cols) ||
           (c[1]->ndim == 2 && c[1]->shape[0] == 1 && c[1]->shape[1] == cols))
    mode = BC_ROW;
  else {
    char sa[64], sb[64];
    amp__error(ctx, AMP_ERR_SHAPE,
               "%s: shapes %s and %s do not fit (b must have a's shape, [C] or [1,C] with C = "
               "a's last dimension, or one element)",
               amp__ops[op].name, amp__shape_str(a, sa, sizeof sa),
               amp__shape_str(b, sb, sizeof sb));
    return NULL;
  }
  amp_tensor *y = amp__op_result(ctx, dt, c[0]->ndim, c[0]->shape);
  if (!y) return NULL;
  size_t n = (size_t)y->numel;
  const void *pa = c[0]->data, *pb = c[1]->data;
  amp_dtype at = c[0]->dtype, bt = c[1]->dtype;
  if (mode == BC_SAME && kind != K_SUB && at == dt && bt == dt) {
    amp_status s = kind == K_ADD ? amp_vec_add(ctx, dt, n, pa, pb, y->data)
                                 : amp_vec_mul(ctx, dt, n, pa, pb, y->data);
    if (s != AMP_OK) return NULL;
  } else if (mode == BC_SAME && kind != K_SUB && dt == AMP_F32) {
    mixed_f32(ctx, kind, n, pa, at, pb, bt, y->data);
  } else if (mode == BC_SAME) {
    for (size_t i = 0; i < n; i++)
      amp__store_f32(y->data, dt, i,
                     apply(kind, amp__load_f32(pa, at, i), amp__load_f32(pb, bt, i)));
  } else if (mode == BC_SCALAR) {
    float v = amp__load_f32(pb, bt, 0);
    for (size_t i = 0; i < n; i++)
      amp__store_f32(y->data, dt, i, apply(kind, amp__load_f32(pa, at, i), v));
  } else {
    size_t C = (size_t)cols;
    for (size_t r = 0; r < n / C; r++)
      for (size_t j = 0; j < C; j++)
        amp__store_f32(y->data, dt, r * C + j,
                       apply(kind, amp__load_f32(pa, at, r * C + j), amp__load_f32(pb, bt, j)));
  }
  amp__node *nd = amp__record(ctx, op, y, 2, c);
  if (nd) {
    nd->iarg[0] = mode;
    nd->iarg[1] = cols;
  }
  return y;
}

amp_tensor *amp_add(amp_ctx *ctx, amp_tensor *a, amp_tensor *b) {
  return binary(ctx, AMP__OP_ADD, K_ADD, a, b);
}

amp_tensor *amp_sub(amp_ctx *ctx, amp_tensor *a, amp_tensor *b) {
  return binary(ctx, AMP__OP_SUB, K_SUB, a, b);
}

amp_tensor *amp_mul(amp_ctx *ctx, amp_tensor *a, amp_tensor *b) {
  return binary(ctx, AMP__OP_MUL, K_MUL, a, b);
}

/* Index of the element of b that element i of a meets. */
static size_t bidx(int mode, size_t i, size_t cols) {
  return mode == BC_SAME ? i : mode == BC_ROW ? i % cols : 0;
}

static amp_status binary_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *g, int kind) {
  amp_tensor *a = nd->in[0], *b = nd->in[1];
  int mode = (int)nd->iarg[0];
  size_t cols = (size_t)nd->iarg[1], n = (size_t)a->numel;
  amp_dtype dt = g->dtype; /* the forward's compute dtype; a and b keep their own */
  amp_dtype at = a->dtype, bt = b->dtype;
  amp_status s = AMP_OK;
  if (a->requires_grad) {
    if (kind != K_MUL) {
      s = amp__grad_pass(ctx, a, g); /* da = g, without a copy when it can */
    } else {                         /* da = g·b, in F32, stored in the target's dtype */
      amp_dtype gdt = amp__grad_dtype(a);
      void *da = amp__grad_begin(ctx, a, gdt);
      if (!da) return amp_ctx_status(ctx);
      for (size_t i = 0; i < n; i++)
        amp__store_f32(da, gdt, i,
                       amp__load_f32(g->data, dt, i) *
                           amp__load_f32(b->data, bt, bidx(mode, i, cols)));
      s = amp__grad_done(ctx, a, da, gdt);
    }
  }
  if (s != AMP_OK || !b->requires_grad) return s;
  if (mode == BC_SAME) {
    if (kind == K_ADD) return amp__grad_add(ctx, b, g->data, dt);
    amp_dtype gdt = amp__grad_dtype(b);
    void *db = amp__grad_begin(ctx, b, gdt);
    if (!db) return amp_ctx_status(ctx);
    for (size_t i = 0; i < n; i++) {
      float gi = amp__load_f32(g->data, dt, i);
      amp__store_f32(db, gdt, i, kind == K_SUB ? -gi : gi * amp__load_f32(a->data, at, i));
    }
    return amp__grad_done(ctx, b, db, gdt);
  }
  /* Broadcast b: its gradient is a sum over the rows (or over everything),
     in F32 with the kernels' fixed order. For mul the summands are g·a. */
  const void *src = g->data;
  amp_dtype sdt = dt;
  if (kind == K_MUL) {
    float *p = amp_arena_alloc(ctx, AMP_ARENA_STEP, n * sizeof(float));
    if (!p) return amp_ctx_status(ctx);
    for (size_t i = 0; i < n; i++)
      p[i] = amp__load_f32(g->data, dt, i) * amp__load_f32(a->data, at, i);
    src = p;
    sdt = AMP_F32;
  }
  size_t nb = mode == BC_ROW ? cols : 1;
  float *sums = amp_arena_alloc(ctx, AMP_ARENA_STEP, nb * sizeof(float));
  if (!sums) return amp_ctx_status(ctx);
  s = mode == BC_ROW ? amp_sum_cols(ctx, sdt, (int64_t)(n / cols), (int64_t)cols, src, sums, 0)
                     : amp_vec_sum(ctx, sdt, n, src, sums);
  if (s != AMP_OK) return s;
  if (kind == K_SUB)
    for (size_t j = 0; j < nb; j++) sums[j] = -sums[j];
  return amp__grad_add(ctx, b, sums, AMP_F32);
}

amp_status amp__add_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return binary_backward(ctx, n, g, K_ADD);
}

amp_status amp__sub_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return binary_backward(ctx, n, g, K_SUB);
}

amp_status amp__mul_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  return binary_backward(ctx, n, g, K_MUL);
}
