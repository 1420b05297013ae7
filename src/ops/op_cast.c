/* The explicit, differentiable cast. Autocast inserts it for every input that
 * is not a leaf (leaves go through the cast cache instead). */
#include "ops_internal.h"

amp_tensor *amp_cast(amp_ctx *ctx, amp_tensor *x, amp_dtype dt) {
  if (!ctx) return NULL;
  if (!x) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "cast: input 0 is NULL");
    return NULL;
  }
  if (dt != AMP_F32 && dt != AMP_F16 && dt != AMP_BF16) {
    amp__error(ctx, AMP_ERR_UNSUPPORTED, "cast: target dtype %s; ops take f32, f16, bf16",
               amp_dtype_name(dt));
    return NULL;
  }
  if (x->dtype == dt) return x;
  amp_tensor *y = amp__cast_raw(ctx, x, dt);
  if (!y) return NULL;
  amp__record(ctx, AMP__OP_CAST, y, 1, &x);
  return y;
}

amp_status amp__cast_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  /* The gradient goes back in the input's dtype (or into a leaf's F32). */
  return amp__grad_add(ctx, n->in[0], g->data, g->dtype);
}
