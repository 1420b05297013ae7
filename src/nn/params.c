/* The parameter store (see params_internal.h): slabs of FP32 masters, FP32
 * gradients and 16-bit working copies, owned by the context, carved into
 * parameters as modules create them. */
#include "params_internal.h"

#include <stdlib.h>
#include <string.h>

/* Values in the first slab; later slabs double (untouched pages cost no
 * memory, so a generous slab keeps a whole model in one run). */
#define SLAB_MIN ((int64_t)1 << 20)

static void *alloc64(size_t bytes) {
  void *p = NULL;
  return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
}

static void slab_free(amp__param_slab *s) {
  free(s->master);
  free(s->grad);
  free(s->work);
  free(s);
}

void amp__params_free(amp_ctx *ctx) {
  amp__param_slab *s = ctx->param_slabs;
  while (s) {
    amp__param_slab *n = s->next;
    slab_free(s);
    s = n;
  }
  ctx->param_slabs = ctx->param_cur = NULL;
}

/* A new, empty slab of cap values per role, linked into the store. */
static amp__param_slab *slab_new(amp_ctx *ctx, int64_t cap) {
  amp__param_slab *s = calloc(1, sizeof *s);
  if (s && (uint64_t)cap <= SIZE_MAX / sizeof(float)) {
    s->master = alloc64((size_t)cap * sizeof(float));
    s->grad = alloc64((size_t)cap * sizeof(float));
  }
  if (!s || !s->master || !s->grad) {
    if (s) slab_free(s);
    amp__error(ctx, AMP_ERR_NOMEM, "parameter store: out of memory for %lld values",
               (long long)cap);
    return NULL;
  }
  s->cap = cap;
  s->next = ctx->param_slabs;
  ctx->param_slabs = s;
  return s;
}

/* Points t (F32, numel values) and its gradient at [off, off + numel) of s. */
static int place(amp_ctx *ctx, amp_tensor *t, amp__param_slab *s, int64_t off) {
  if (!t->grad) {
    t->grad = amp__tensor_header(ctx, t->arena, AMP_F32, t->ndim, t->shape);
    if (!t->grad) return 0;
  }
  t->data = s->master + off;
  t->grad->data = s->grad + off;
  return 1;
}

amp_tensor *amp_param_new(amp_ctx *ctx, int ndim, const int64_t *shape) {
  amp_tensor *t = amp__tensor_header(ctx, AMP_ARENA_PERSISTENT, AMP_F32, ndim, shape);
  if (!t) return NULL;
  amp__param_slab *s = ctx->param_cur;
  if (!s || s->cap - s->used < t->numel) {
    int64_t cap = s ? 2 * s->cap : SLAB_MIN;
    s = slab_new(ctx, cap > t->numel ? cap : t->numel);
    if (!s) return NULL;
    ctx->param_cur = s;
  }
  if (!place(ctx, t, s, s->used)) return NULL;
  memset(t->data, 0, (size_t)t->numel * sizeof(float));
  memset(t->grad->data, 0, (size_t)t->numel * sizeof(float));
  s->used += t->numel;
  t->requires_grad = 1;
  return t;
}

/* The slab holding p, or NULL. */
static amp__param_slab *slab_of(const amp_ctx *ctx, const float *p) {
  for (amp__param_slab *s = ctx->param_slabs; s; s = s->next)
    if (p >= s->master && p < s->master + s->used) return s;
  return NULL;
}

/* Non-zero when params lie back to back in one slab, gradients alongside. */
static int contiguous(const amp_ctx *ctx, amp_tensor *const *params, int np, amp__param_range *r) {
  const float *first = params[0]->data;
  amp__param_slab *s = slab_of(ctx, first);
  if (!s) return 0;
  int64_t off = first - s->master, n = 0;
  for (int i = 0; i < np; i++) {
    const amp_tensor *t = params[i];
    if (t->data != s->master + off + n || t->grad->data != s->grad + off + n ||
        off + n + t->numel > s->used)
      return 0;
    n += t->numel;
  }
  *r = (amp__param_range){s, off, n};
  return 1;
}

int amp__params_range(amp_ctx *ctx, amp_tensor *const *params, int np, amp__param_range *r) {
  int64_t n = 0;
  for (int i = 0; i < np; i++) {
    if (params[i]->dtype != AMP_F32 || !params[i]->grad) {
      amp__error(ctx, AMP_ERR_INVALID_ARG, "parameter store: parameter %d is not an F32 leaf", i);
      return 0;
    }
    n += params[i]->numel;
  }
  if (np > 0 && contiguous(ctx, params, np, r)) return 1;
  /* Move them into a slab of their own (not the one amp_param_new carves). */
  amp__param_slab *s = slab_new(ctx, n);
  if (!s) return 0;
  int64_t off = 0;
  for (int i = 0; i < np; i++) {
    amp_tensor *t = params[i];
    memcpy(s->master + off, t->data, (size_t)t->numel * sizeof(float));
    memset(s->grad + off, 0, (size_t)t->numel * sizeof(float));
    if (!place(ctx, t, s, off)) return 0;
    off += t->numel;
  }
  s->used = n;
  *r = (amp__param_range){s, 0, n};
  return 1;
}

uint16_t *amp__params_work(amp_ctx *ctx, const amp__param_range *r, amp_tensor *const *params,
                           int np, amp_dtype dt) {
  amp__param_slab *s = r->slab;
  if (!s->work) {
    s->work = alloc64((size_t)s->cap * sizeof(uint16_t));
    if (!s->work) {
      amp__error(ctx, AMP_ERR_NOMEM, "parameter store: out of memory for 16-bit copies");
      return NULL;
    }
  }
  int64_t off = r->off;
  for (int i = 0; i < np; i++) {
    amp_tensor *t = params[i];
    amp_tensor *w = amp__work(t);
    if (!w) {
      w = amp__tensor_header(ctx, AMP_ARENA_PERSISTENT, dt, t->ndim, t->shape);
      if (!w) return NULL;
      w->requires_grad = 1;
      amp__set_master(w, t);
      amp__set_work(t, w);
    }
    w->dtype = dt;
    w->data = s->work + off;
    off += t->numel;
  }
  return s->work + r->off;
}

const amp_tensor *amp_param_work(const amp_tensor *p) { return p ? amp__work(p) : NULL; }
