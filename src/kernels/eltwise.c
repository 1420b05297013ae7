/* Elementwise, row and im2col kernels. PLACEHOLDER stubs. */
#include "../core/internal.h"

#define STUB(name) return amp__error(ctx, AMP_ERR_UNSUPPORTED, name ": not implemented yet")

amp_status amp_add(amp_ctx *ctx, amp_dtype dt, size_t n, const void *a, const void *b, void *y) {
  (void)dt, (void)n, (void)a, (void)b, (void)y;
  STUB("amp_add");
}
amp_status amp_mul(amp_ctx *ctx, amp_dtype dt, size_t n, const void *a, const void *b, void *y) {
  (void)dt, (void)n, (void)a, (void)b, (void)y;
  STUB("amp_mul");
}
amp_status amp_scale(amp_ctx *ctx, amp_dtype dt, size_t n, float s, const void *x, void *y) {
  (void)dt, (void)n, (void)s, (void)x, (void)y;
  STUB("amp_scale");
}
amp_status amp_relu(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, void *y) {
  (void)dt, (void)n, (void)x, (void)y;
  STUB("amp_relu");
}
amp_status amp_relu_backward(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, const void *dy,
                             void *dx) {
  (void)dt, (void)n, (void)x, (void)dy, (void)dx;
  STUB("amp_relu_backward");
}
amp_status amp_gelu(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, void *y) {
  (void)dt, (void)n, (void)x, (void)y;
  STUB("amp_gelu");
}
amp_status amp_gelu_backward(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, const void *dy,
                             void *dx) {
  (void)dt, (void)n, (void)x, (void)dy, (void)dx;
  STUB("amp_gelu_backward");
}
amp_status amp_unscale_check(amp_ctx *ctx, amp_dtype dt, size_t n, void *g, float inv_scale,
                             int *found_inf) {
  (void)dt, (void)n, (void)g, (void)inv_scale, (void)found_inf;
  STUB("amp_unscale_check");
}
amp_status amp_sum(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, float *out) {
  (void)dt, (void)n, (void)x, (void)out;
  STUB("amp_sum");
}
amp_status amp_max(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, float *out) {
  (void)dt, (void)n, (void)x, (void)out;
  STUB("amp_max");
}
amp_status amp_sum_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                        float *out) {
  (void)dt, (void)rows, (void)cols, (void)x, (void)out;
  STUB("amp_sum_rows");
}
amp_status amp_sum_cols(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                        float *out, int accumulate) {
  (void)dt, (void)rows, (void)cols, (void)x, (void)out, (void)accumulate;
  STUB("amp_sum_cols");
}
amp_status amp_softmax_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                            void *y) {
  (void)dt, (void)rows, (void)cols, (void)x, (void)y;
  STUB("amp_softmax_rows");
}
amp_status amp_log_softmax_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols,
                                const void *x, void *y) {
  (void)dt, (void)rows, (void)cols, (void)x, (void)y;
  STUB("amp_log_softmax_rows");
}
void amp_conv_out_size(const amp_conv_geom *g, int64_t *out_h, int64_t *out_w) {
  (void)g;
  *out_h = *out_w = 0;
}
amp_status amp_im2col(amp_ctx *ctx, amp_dtype dt, const amp_conv_geom *g, const void *img,
                      void *col) {
  (void)dt, (void)g, (void)img, (void)col;
  STUB("amp_im2col");
}
amp_status amp_col2im(amp_ctx *ctx, amp_dtype dt, const amp_conv_geom *g, const void *col,
                      float *img) {
  (void)dt, (void)g, (void)col, (void)img;
  STUB("amp_col2im");
}
