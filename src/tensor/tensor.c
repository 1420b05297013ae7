/* Dense tensors allocated from the context's arenas. */
#include "../core/internal.h"

#include <stdint.h>
#include <string.h>

size_t amp_dtype_size(amp_dtype t) { return amp__dtype_size(t); }

const char *amp_dtype_name(amp_dtype t) { return amp__dtype(t)->name; }

int amp_dtype_is_float(amp_dtype t) { return amp__dtype(t)->is_float; }

amp_status amp_dtype_parse(const char *name, amp_dtype *out) {
  static const struct {
    const char *name;
    amp_dtype t;
  } aliases[] = {{"fp32", AMP_F32},      {"float32", AMP_F32},   {"float", AMP_F32},
                 {"fp16", AMP_F16},      {"float16", AMP_F16},   {"half", AMP_F16},
                 {"bfloat16", AMP_BF16}, {"fp8_e4m3", AMP_E4M3}, {"fp8_e5m2", AMP_E5M2}};
  if (!name || !out) return AMP_ERR_INVALID_ARG;
  for (int i = 0; i < AMP_DTYPE_COUNT; i++)
    if (strcmp(name, amp__dtype(i)->name) == 0) {
      *out = (amp_dtype)i;
      return AMP_OK;
    }
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcmp(name, aliases[i].name) == 0) {
      *out = aliases[i].t;
      return AMP_OK;
    }
  return AMP_ERR_INVALID_ARG;
}

amp_tensor *amp_tensor_new(amp_ctx *ctx, amp_arena_kind arena, amp_dtype dtype, int ndim,
                           const int64_t *shape) {
  amp_tensor *t = amp__tensor_header(ctx, arena, dtype, ndim, shape);
  if (!t) return NULL;
  t->data = amp_arena_alloc(ctx, arena, (size_t)t->numel * amp_dtype_size(dtype));
  return t->data ? t : NULL;
}

amp_tensor *amp__tensor_header(amp_ctx *ctx, amp_arena_kind arena, amp_dtype dtype, int ndim,
                               const int64_t *shape) {
  if (!ctx) return NULL;
  size_t es = amp_dtype_size(dtype);
  if (es == 0) {
    amp__error(ctx, AMP_ERR_UNSUPPORTED, "amp_tensor_new: invalid dtype %d", (int)dtype);
    return NULL;
  }
  if (ndim < 1 || ndim > AMP_MAX_DIMS || !shape) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_tensor_new: ndim %d not in 1..%d%s", ndim,
               AMP_MAX_DIMS, shape ? "" : " or shape is NULL");
    return NULL;
  }
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 1) {
      amp__error(ctx, AMP_ERR_INVALID_ARG,
                 "amp_tensor_new: size %lld of dimension %d is not positive", (long long)shape[i],
                 i);
      return NULL;
    }
    if (numel > (int64_t)(SIZE_MAX / 8) / shape[i]) {
      amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_tensor_new: shape too large");
      return NULL;
    }
    numel *= shape[i];
  }
  amp_tensor *t = amp_arena_alloc(ctx, arena, sizeof *t);
  if (!t) return NULL;
  t->data = NULL;
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < AMP_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
  t->numel = numel;
  t->arena = arena;
  t->requires_grad = 0;
  t->grad = NULL;
  t->internal_.work = t->internal_.master = NULL;
  t->internal_.node = NULL;
  t->internal_.grad_check = AMP__GRAD_UNCHECKED;
  return t;
}

amp_tensor *amp_tensor_zeros(amp_ctx *ctx, amp_arena_kind arena, amp_dtype dtype, int ndim,
                             const int64_t *shape) {
  amp_tensor *t = amp_tensor_new(ctx, arena, dtype, ndim, shape);
  if (t) memset(t->data, 0, amp_tensor_bytes(t));
  return t;
}

size_t amp_tensor_bytes(const amp_tensor *t) {
  return t ? (size_t)t->numel * amp_dtype_size(t->dtype) : 0;
}

amp_tensor *amp_tensor_cast(amp_ctx *ctx, amp_arena_kind arena, const amp_tensor *src,
                            amp_dtype dtype) {
  if (!ctx || !src) return NULL;
  amp_tensor *t = amp_tensor_new(ctx, arena, dtype, src->ndim, src->shape);
  if (!t) return NULL;
  amp_status s = amp__convert(ctx, t->data, dtype, src->data, src->dtype, (size_t)src->numel, NULL);
  if (s != AMP_OK) {
    amp__error(ctx, s, "amp_tensor_cast: cannot convert %s to %s", amp_dtype_name(src->dtype),
               amp_dtype_name(dtype));
    return NULL;
  }
  return t;
}
