/* Autograd: the tape of recorded ops, gradient buffers and amp_backward(). */
#include "../dtype/dtype_inline.h"
#include "../ops/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

amp_status amp_tensor_set_requires_grad(amp_ctx *ctx, amp_tensor *t, int on) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (!t) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_tensor_set_requires_grad: NULL tensor");
  if (!on) {
    t->requires_grad = 0;
    return AMP_OK;
  }
  if (!amp__dtype(t->dtype)->is_compute)
    return amp__error(ctx, AMP_ERR_UNSUPPORTED,
                      "amp_tensor_set_requires_grad: %s tensors cannot require gradients",
                      amp_dtype_name(t->dtype));
  if (amp__node_of(t) || amp__master(t))
    return amp__error(ctx, AMP_ERR_STATE,
                      "amp_tensor_set_requires_grad: the tensor is the result of an op, not a "
                      "leaf");
  if (!t->grad) {
    t->grad = amp_tensor_zeros(ctx, t->arena, AMP_F32, t->ndim, t->shape);
    if (!t->grad) return amp_ctx_status(ctx);
  }
  t->requires_grad = 1;
  return AMP_OK;
}

void amp_tensor_zero_grad(amp_tensor *t) {
  if (t && t->grad) memset(t->grad->data, 0, amp_tensor_bytes(t->grad));
  if (t) amp__set_grad_check(t, AMP__GRAD_UNCHECKED);
}

void amp_no_grad_begin(amp_ctx *ctx) {
  if (ctx) ctx->no_grad_depth++;
}

void amp_no_grad_end(amp_ctx *ctx) {
  if (!ctx) return;
  if (ctx->no_grad_depth == 0) {
    amp__error(ctx, AMP_ERR_STATE, "amp_no_grad_end: no no-grad region is open");
    return;
  }
  ctx->no_grad_depth--;
}

int amp_grad_enabled(const amp_ctx *ctx) { return ctx && ctx->no_grad_depth == 0; }

size_t amp_tape_length(const amp_ctx *ctx) { return ctx ? ctx->tape_len : 0; }

void amp__tape_reset(amp_ctx *ctx) { ctx->tape_len = 0; }

const char *amp__shape_str(const amp_tensor *t, char *buf, size_t size) {
  if (!t) {
    snprintf(buf, size, "NULL");
    return buf;
  }
  size_t o = 0;
  o += (size_t)snprintf(buf + o, size - o, "[");
  for (int i = 0; i < t->ndim && o < size; i++)
    o += (size_t)snprintf(buf + o, size - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
  if (o < size) snprintf(buf + o, size - o, "] %s", amp_dtype_name(t->dtype));
  return buf;
}

amp_tensor *amp__op_result(amp_ctx *ctx, amp_dtype dt, int ndim, const int64_t *shape) {
  return amp_tensor_new(ctx, AMP_ARENA_STEP, dt, ndim, shape);
}

amp__node *amp__record(amp_ctx *ctx, amp__op op, amp_tensor *out, int nin, amp_tensor *const *c) {
  if (!ctx || !out || ctx->no_grad_depth > 0) return NULL;
  int any = 0;
  for (int i = 0; i < nin; i++) any |= c[i] && c[i]->requires_grad;
  if (!any) return NULL;
  if (ctx->tape_len == ctx->tape_cap) {
    size_t cap = ctx->tape_cap ? ctx->tape_cap * 2 : 256;
    amp__node **t = realloc(ctx->tape, cap * sizeof *t);
    if (!t) {
      amp__error(ctx, AMP_ERR_NOMEM, "%s: out of memory growing the tape", amp__ops[op].name);
      return NULL;
    }
    ctx->tape = t;
    ctx->tape_cap = cap;
  }
  amp__node *n = amp_arena_alloc(ctx, AMP_ARENA_STEP, sizeof *n);
  if (!n) return NULL;
  memset(n, 0, sizeof *n);
  n->op = op;
  n->nin = nin;
  for (int i = 0; i < nin; i++) n->in[i] = c[i];
  n->out = out;
  out->requires_grad = 1;
  amp__set_node(out, n);
  ctx->tape[ctx->tape_len++] = n;
  return n;
}

/* amp__grad_of, with a fresh target zeroed or (zero == 0) left as allocated. */
static amp_tensor *grad_target(amp_ctx *ctx, amp_tensor *t, int *accumulate, int zero) {
  *accumulate = 0;
  if (!t || !t->requires_grad) return NULL;
  if (amp__master(t)) t = amp__master(t);
  if (!amp__node_of(t)) { /* a leaf: its F32 gradient accumulates */
    *accumulate = 1;
    amp__set_grad_check(t, AMP__GRAD_UNCHECKED); /* the caller writes it */
    return t->grad;
  }
  if (t->grad) {
    *accumulate = 1;
    return t->grad;
  }
  /* Zeroed, so that a caller that only asks (or a second caller before the
     first writes) adds to zeros rather than to garbage; a caller that
     overwrites all of it asks for no zeroing. */
  t->grad = zero ? amp_tensor_zeros(ctx, AMP_ARENA_STEP, t->dtype, t->ndim, t->shape)
                 : amp_tensor_new(ctx, AMP_ARENA_STEP, t->dtype, t->ndim, t->shape);
  return t->grad;
}

int amp__grad_is_leaf(const amp_tensor *t) {
  if (t && amp__master(t)) t = amp__master(t);
  return t && t->requires_grad && !amp__node_of(t);
}

void amp__grad_witness(amp_tensor *t, int nonfinite) {
  if (amp__grad_is_leaf(t))
    amp__set_grad_check(amp__master(t) ? amp__master(t) : t,
                        nonfinite ? AMP__GRAD_NONFINITE : AMP__GRAD_FINITE);
}

amp_tensor *amp__grad_of(amp_ctx *ctx, amp_tensor *t, int *accumulate) {
  return grad_target(ctx, t, accumulate, 1);
}

amp_tensor *amp__grad_of_overwrite(amp_ctx *ctx, amp_tensor *t, int *accumulate) {
  return grad_target(ctx, t, accumulate, 0);
}

amp_status amp__grad_add(amp_ctx *ctx, amp_tensor *t, const void *g, amp_dtype gdt) {
  int acc;
  amp_tensor *dst = amp__grad_of(ctx, t, &acc);
  if (!dst) return t && t->requires_grad ? amp_ctx_status(ctx) : AMP_OK;
  size_t n = (size_t)dst->numel;
  if (!acc) return amp__convert(ctx, dst->data, dst->dtype, g, gdt, n, NULL);
  if (dst->dtype == gdt) return amp_vec_add(ctx, gdt, n, dst->data, g, dst->data);
  for (size_t i = 0; i < n; i++)
    amp__store_f32(dst->data, dst->dtype, i,
                   amp__load_f32(dst->data, dst->dtype, i) + amp__load_f32(g, gdt, i));
  return AMP_OK;
}

void *amp__grad_begin(amp_ctx *ctx, amp_tensor *t, amp_dtype dt) {
  int acc;
  /* A fresh target is either returned, for the caller to overwrite, or
     zeroed below: no need to zero it twice. */
  amp_tensor *dst = amp__grad_of_overwrite(ctx, t, &acc);
  if (!dst) return NULL;
  if (!acc && dst->dtype == dt) return dst->data;
  if (!acc) memset(dst->data, 0, amp_tensor_bytes(dst)); /* now it accumulates */
  return amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)dst->numel * amp_dtype_size(dt));
}

void *amp__grad_begin_acc(amp_ctx *ctx, amp_tensor *t, amp_dtype dt, int *acc) {
  *acc = 0;
  amp_tensor *owner = amp__master(t) ? amp__master(t) : t;
  if (dt == AMP_F32 && owner->requires_grad && owner->grad && owner->grad->dtype == AMP_F32) {
    amp_tensor *dst = amp__grad_of(ctx, t, acc);
    return dst ? dst->data : NULL;
  }
  return amp__grad_begin(ctx, t, dt);
}

amp_status amp__grad_pass(amp_ctx *ctx, amp_tensor *t, const amp_tensor *g) {
  if (!t || !t->requires_grad) return AMP_OK;
  if (amp__master(t) || !amp__node_of(t) || t->grad || g->dtype != t->dtype || g->numel != t->numel)
    return amp__grad_add(ctx, t, g->data, g->dtype);
  amp_tensor *v = amp__tensor_header(ctx, AMP_ARENA_STEP, t->dtype, t->ndim, t->shape);
  if (!v) return amp_ctx_status(ctx);
  v->data = g->data;
  t->grad = v;
  return AMP_OK;
}

amp_status amp__grad_done(amp_ctx *ctx, amp_tensor *t, void *buf, amp_dtype dt) {
  if (!buf) return amp_ctx_status(ctx);
  amp_tensor *owner = amp__master(t) ? amp__master(t) : t;
  if (owner->grad && owner->grad->data == buf) return AMP_OK;
  return amp__grad_add(ctx, t, buf, dt);
}

amp_status amp_backward(amp_ctx *ctx, amp_tensor *loss) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (ctx->status != AMP_OK) return ctx->status;
  if (!loss) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_backward: the loss is NULL");
  if (loss->numel != 1) {
    char b[64];
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_backward: the loss must have one element, it is %s",
                      amp__shape_str(loss, b, sizeof b));
  }
  if (!loss->requires_grad)
    return amp__error(ctx, AMP_ERR_STATE,
                      "amp_backward: the loss does not require a gradient (no parameter "
                      "contributed to it, or it was computed in a no-grad region)");
  if (amp__node_of(loss)) {
    size_t pos = ctx->tape_len;
    for (size_t i = ctx->tape_len; i-- > 0;)
      if (ctx->tape[i] == amp__node_of(loss)) {
        pos = i;
        break;
      }
    if (pos == ctx->tape_len)
      return amp__error(ctx, AMP_ERR_STATE,
                        "amp_backward: the loss is not on this context's tape (was the step "
                        "reset after it was computed?)");
  }
  float one = 1.0f;
  return amp__backward_seeded(ctx, loss, &one, AMP_F32);
}

amp_status amp__backward_seeded(amp_ctx *ctx, amp_tensor *t, const void *seed, amp_dtype sdt) {
  if (ctx->status != AMP_OK) return ctx->status;
  if (!t->requires_grad)
    return amp__error(ctx, AMP_ERR_STATE, "backward: the tensor does not require a gradient");
  for (size_t i = 0; i < ctx->tape_len; i++) ctx->tape[i]->out->grad = NULL;
  amp_status s = amp__grad_add(ctx, t, seed, sdt);
  if (s != AMP_OK) return amp__error(ctx, s, "backward: cannot seed the gradient");
  for (size_t i = ctx->tape_len; i-- > 0;) {
    amp__node *n = ctx->tape[i];
    if (!n->out->grad) continue; /* no gradient reached this node */
    s = amp__ops[n->op].backward(ctx, n, n->out->grad);
    if (s != AMP_OK || ctx->status != AMP_OK) {
      if (ctx->status == AMP_OK)
        amp__error(ctx, s, "amp_backward: %s backward failed (%s)", amp__ops[n->op].name,
                   amp_status_string(s));
      return ctx->status;
    }
  }
  return ctx->status;
}
