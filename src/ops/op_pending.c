/* Forward functions of ops still being written (removed when they land). */
#include "ops_internal.h"

#define PENDING(name) amp__error(ctx, AMP_ERR_UNSUPPORTED, #name ": not implemented yet")
amp_tensor *amp_conv2d(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw) {
  (void)x, (void)w, (void)b, (void)sh, (void)sw, (void)ph, (void)pw;
  PENDING(conv2d);
  return NULL;
}
amp_tensor *amp_max_pool2d(amp_ctx *ctx, amp_tensor *x, int64_t kh, int64_t kw, int64_t sh,
                           int64_t sw) {
  (void)x, (void)kh, (void)kw, (void)sh, (void)sw;
  PENDING(max_pool2d);
  return NULL;
}
amp_tensor *amp_layer_norm(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b, float eps) {
  (void)x, (void)w, (void)b, (void)eps;
  PENDING(layer_norm);
  return NULL;
}
amp_tensor *amp_embedding(amp_ctx *ctx, amp_tensor *w, amp_tensor *i) {
  (void)w, (void)i;
  PENDING(embedding);
  return NULL;
}
