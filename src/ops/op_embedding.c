/* Embedding lookup (category same: rows are copied, so the output has the
 * weight's dtype and bits; under autocast an F32 weight stays F32). Backward
 * scatter-adds dY rows into the weight's F32 gradient in index order, so
 * repeated indices always sum in the same order. */
#include "../dtype/dtype_inline.h"
#include "ops_internal.h"

#include <string.h>

amp_tensor *amp_embedding(amp_ctx *ctx, amp_tensor *weight, amp_tensor *indices) {
  amp_tensor *in[2] = {weight, indices}, *c[2];
  amp_dtype dt;
  if (!amp__op_inputs(ctx, AMP__OP_EMBEDDING, 2, in, c, 0, &dt)) return NULL;
  char sw[64], si[64];
  if (c[0]->ndim != 2 || !amp_dtype_is_float(c[0]->dtype) || c[1]->dtype != AMP_I32 ||
      c[1]->ndim >= AMP_MAX_DIMS) {
    amp__error(ctx, AMP_ERR_SHAPE,
               "embedding: weight %s and indices %s do not fit ([V,D] float, i32 of at most %d "
               "dimensions)",
               amp__shape_str(weight, sw, sizeof sw), amp__shape_str(indices, si, sizeof si),
               AMP_MAX_DIMS - 1);
    return NULL;
  }
  int64_t v = c[0]->shape[0], d = c[0]->shape[1], n = c[1]->numel;
  const int32_t *idx = c[1]->data;
  for (int64_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= v) {
      amp__error(ctx, AMP_ERR_INVALID_ARG,
                 "embedding: index %d at position %lld of indices %s is not a row of weight %s "
                 "(0..%lld)",
                 (int)idx[i], (long long)i, amp__shape_str(indices, si, sizeof si),
                 amp__shape_str(weight, sw, sizeof sw), (long long)(v - 1));
      return NULL;
    }
  int64_t shape[AMP_MAX_DIMS];
  memcpy(shape, c[1]->shape, sizeof(int64_t) * (size_t)c[1]->ndim);
  shape[c[1]->ndim] = d;
  amp_tensor *y = amp__op_result(ctx, dt, c[1]->ndim + 1, shape);
  if (!y) return NULL;
  size_t row = (size_t)d * amp_dtype_size(dt);
  for (int64_t i = 0; i < n; i++)
    memcpy((char *)y->data + (size_t)i * row, (const char *)c[0]->data + (size_t)idx[i] * row, row);
  amp__record(ctx, AMP__OP_EMBEDDING, y, 2, c);
  return y;
}

amp_status amp__embedding_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *gy) {
  amp_tensor *w = nd->in[0], *indices = nd->in[1];
  if (!w->requires_grad) return AMP_OK;
  int acc;
  amp_tensor *gw = amp__grad_of(ctx, w, &acc);
  if (!gw) return amp_ctx_status(ctx);
  int64_t d = w->shape[1], n = indices->numel;
  /* Scatter into the F32 gradient itself, or into an F32 scratch when the
     weight is a 16-bit intermediate (rounded once by amp__grad_add). */
  int f32 = gw->dtype == AMP_F32;
  /* A fresh 16-bit target is added to by amp__grad_add() below: zero it. */
  if (!f32 && !acc) memset(gw->data, 0, amp_tensor_bytes(gw));
  float *dw = f32 ? gw->data : amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)w->numel * 4);
  if (!dw) return amp_ctx_status(ctx);
  if (!f32 || !acc) memset(dw, 0, (size_t)w->numel * 4);
  const int32_t *idx = indices->data;
  /* Blocks of columns are independent; within a column, positions add in
     order, so the sums do not depend on the thread count. */
  int64_t nblk = (d + 63) / 64;
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (n * d > 65536)
  for (int64_t bk = 0; bk < nblk; bk++) {
    int64_t j0 = bk * 64, j1 = j0 + 64 < d ? j0 + 64 : d;
    for (int64_t i = 0; i < n; i++) {
      float *dst = dw + (int64_t)idx[i] * d;
      for (int64_t j = j0; j < j1; j++)
        dst[j] += amp__load_f32(gy->data, gy->dtype, (size_t)(i * d + j));
    }
  }
  return f32 ? AMP_OK : amp__grad_add(ctx, w, dw, AMP_F32);
}
