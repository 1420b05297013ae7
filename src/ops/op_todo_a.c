/* Backward functions not written yet (each moves to its op's file). */
#include "ops_internal.h"

#define TODO(name)                                                                                 \
  amp_status amp__##name##_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {             \
    (void)n;                                                                                       \
    (void)g;                                                                                       \
    return amp__error(ctx, AMP_ERR_UNSUPPORTED, #name ": backward not implemented");               \
  }
TODO(conv2d)
TODO(layer_norm)
TODO(max_pool2d)
TODO(embedding)
