/* Autocast: the region stack, the cast cache and the per-category input
 * policy that every op's constructor applies (amp__op_inputs). The categories
 * themselves are rows of the op table (src/ops/table.c). */
#include "../ops/ops_internal.h"

#include <stdlib.h>

amp_status amp_autocast_begin(amp_ctx *ctx, amp_dtype dt) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (dt != AMP_F16 && dt != AMP_BF16 && dt != AMP_F32)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_autocast_begin: dtype %s: use f16 or bf16 to enable autocast, f32 to "
                      "disable it",
                      amp_dtype_name(dt));
  if (ctx->autocast_depth == AMP__AUTOCAST_DEPTH)
    return amp__error(ctx, AMP_ERR_STATE, "amp_autocast_begin: regions nested deeper than %d",
                      AMP__AUTOCAST_DEPTH);
  ctx->autocast[ctx->autocast_depth++] = dt;
  return AMP_OK;
}

amp_status amp_autocast_end(amp_ctx *ctx) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  if (ctx->autocast_depth == 0)
    return amp__error(ctx, AMP_ERR_STATE, "amp_autocast_end: no autocast region is open");
  if (--ctx->autocast_depth == 0) ctx->cast_len = 0; /* the outermost region's cache ends */
  return AMP_OK;
}

void amp__autocast_reset(amp_ctx *ctx) { ctx->cast_len = 0; }

amp_dtype amp_autocast_dtype(const amp_ctx *ctx) {
  if (!ctx || ctx->autocast_depth == 0) return AMP_F32;
  return ctx->autocast[ctx->autocast_depth - 1];
}

amp_dtype amp__promote(amp_dtype a, amp_dtype b) {
  if (a == b) return a;
  return AMP_F32; /* F32 with anything, or F16 with BF16 */
}

amp_tensor *amp__cast_raw(amp_ctx *ctx, const amp_tensor *x, amp_dtype dt) {
  return amp_tensor_cast(ctx, AMP_ARENA_STEP, x, dt);
}

amp_tensor *amp__autocast_leaf(amp_ctx *ctx, amp_tensor *leaf, amp_dtype dt) {
  amp_tensor *w = amp__work(leaf);
  if (w && w->dtype == dt) return w;
  for (size_t i = 0; i < ctx->cast_len; i++)
    if (ctx->cast_cache[i].src == leaf && ctx->cast_cache[i].dtype == dt)
      return ctx->cast_cache[i].cast;
  amp_tensor *c = amp__cast_raw(ctx, leaf, dt);
  if (!c) return NULL;
  c->requires_grad = 1;
  amp__set_master(c, leaf);
  if (ctx->cast_len == ctx->cast_cap) {
    size_t cap = ctx->cast_cap ? ctx->cast_cap * 2 : 32;
    amp__cast_entry *e = realloc(ctx->cast_cache, cap * sizeof *e);
    if (!e) return c; /* works without caching */
    ctx->cast_cache = e;
    ctx->cast_cap = cap;
  }
  ctx->cast_cache[ctx->cast_len++] = (amp__cast_entry){leaf, dt, c};
  return c;
}

static int is_float(const amp_tensor *t) { return amp__dtype(t->dtype)->is_compute; }

/* The dtype an op of category `cat` computes in, given its floating inputs'
 * dtypes folded into `widest` (promotion) and the autocast state. */
static amp_dtype compute_dtype(const amp_ctx *ctx, amp_op_category cat, amp_dtype widest) {
  amp_dtype ac = amp_autocast_dtype(ctx);
  if (ac != AMP_F32) {
    if (cat == AMP_CAT_LOWER || cat == AMP_CAT_NORM) return ac;
    if (cat == AMP_CAT_FP32) return AMP_F32;
  }
  return widest;
}

int amp__op_inputs(amp_ctx *ctx, amp__op op, int nin, amp_tensor *const *in, amp_tensor **c,
                   unsigned optional, amp_dtype *dt) {
  if (!ctx) return 0;
  const char *name = amp__ops[op].name;
  int nfloat = 0;
  amp_dtype widest = AMP_F32;
  for (int i = 0; i < nin; i++) {
    c[i] = in[i];
    if (!in[i]) {
      if (optional & (1u << i)) continue;
      amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: input %d is NULL", name, i);
      return 0;
    }
    if (!is_float(in[i])) {
      if (amp_dtype_is_float(in[i]->dtype)) { /* FP8 storage is not an op dtype */
        amp__error(ctx, AMP_ERR_UNSUPPORTED, "%s: input %d has dtype %s; ops take f32, f16, bf16",
                   name, i, amp_dtype_name(in[i]->dtype));
        return 0;
      }
      continue; /* integer tensors pass through */
    }
    widest = nfloat++ ? amp__promote(widest, in[i]->dtype) : in[i]->dtype;
  }
  *dt = nfloat ? compute_dtype(ctx, amp__ops[op].category, widest) : AMP_F32;
  if (!nfloat || amp__ops[op].reads == AMP__READS_OWN) return 1;
  int autocasting = amp_autocast_dtype(ctx) != AMP_F32;
  for (int i = 0; i < nin; i++) {
    amp_tensor *t = in[i];
    if (!t || !is_float(t) || t->dtype == *dt) continue;
    if (autocasting && amp__is_leaf(t))
      c[i] = amp__autocast_leaf(ctx, t, *dt);
    else
      c[i] = amp_cast(ctx, t, *dt);
    if (!c[i]) return 0;
  }
  return 1;
}
