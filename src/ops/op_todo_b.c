/* Backward functions not written yet (each moves to its op's file). */
#include "ops_internal.h"
#define TODO(name)                                                                                 \
  amp_status amp__##name##_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {             \
    (void)n;                                                                                       \
    (void)g;                                                                                       \
    return amp__error(ctx, AMP_ERR_UNSUPPORTED, #name ": backward not implemented");               \
  }
TODO(softmax)
TODO(log_softmax)
TODO(mse)
TODO(exp)
TODO(log)
TODO(sum)
TODO(mean)
TODO(add)
TODO(sub)
TODO(mul)
TODO(gelu)
TODO(dropout)
TODO(reshape)
