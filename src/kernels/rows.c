/* Row-wise kernels: row and column sums, softmax and log-softmax. Work is
 * split over rows (or column blocks), never inside one sum, so results do
 * not depend on the thread count. */
#include "kernels_internal.h"

#include "../dtype/dtype_inline.h"

#include <math.h>

/* Columns per parallel work item of amp_sum_cols. */
#define COL_BLOCK 256

static amp_status check_matrix(amp_ctx *ctx, const char *fn, amp_dtype dt, int64_t rows,
                               int64_t cols, const void *x, const void *out) {
  if (rows < 1 || cols < 1)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: rows and cols must be >= 1 (got %lld x %lld)",
                      fn, (long long)rows, (long long)cols);
  if (!x || !out) return amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: NULL buffer", fn);
  return amp__check_dtype(ctx, fn, dt);
}

amp_status amp_sum_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                        float *out) {
  amp_status st = check_matrix(ctx, "amp_sum_rows", dt, rows, cols, x, out);
  if (st != AMP_OK) return st;
  const amp__kernels *k = amp__kernels_of(ctx);
#pragma omp parallel for num_threads(amp__threads(ctx))                                            \
    schedule(static) if (rows * cols > AMP__PAR_MIN)
  for (int64_t r = 0; r < rows; r++)
    out[r] = amp__sum_serial(k, dt, (size_t)cols, amp__at(x, dt, (size_t)(r * cols)));
  return AMP_OK;
}

void amp__sum_cols_scalar(int dt, int64_t rows, int64_t cols, int64_t ld, const void *x,
                          float *acc) {
  for (int64_t c = 0; c < cols; c++) acc[c] = 0.0f;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) acc[c] += amp__load_f32(x, dt, (size_t)(r * ld + c));
}

amp_status amp_sum_cols(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                        float *out, int accumulate) {
  amp_status st = check_matrix(ctx, "amp_sum_cols", dt, rows, cols, x, out);
  if (st != AMP_OK) return st;
  const amp__kernels *k = amp__kernels_of(ctx);
  int64_t nb = (cols + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(amp__threads(ctx))                                            \
    schedule(static) if (rows * cols > AMP__PAR_MIN)
  for (int64_t b = 0; b < nb; b++) {
    int64_t c0 = b * COL_BLOCK, w = cols - c0 < COL_BLOCK ? cols - c0 : COL_BLOCK;
    float acc[COL_BLOCK];
    k->sum_cols(dt, rows, w, cols, amp__at(x, dt, (size_t)c0), acc);
    for (int64_t c = 0; c < w; c++) out[c0 + c] = accumulate ? out[c0 + c] + acc[c] : acc[c];
  }
  return AMP_OK;
}

/* One row of (log-)softmax. Reads all of x before writing y[j] from x[j]
 * only, so y may alias x. */
static void softmax_row(int dt, size_t n, const void *x, void *y, int log_) {
  float m = -INFINITY;
  for (size_t j = 0; j < n; j++) m = amp__maxf(amp__load_f32(x, dt, j), m);
  float s = 0.0f;
  for (size_t j = 0; j < n; j++) s += expf(amp__load_f32(x, dt, j) - m);
  if (log_) {
    float ls = logf(s);
    for (size_t j = 0; j < n; j++) amp__store_f32(y, dt, j, (amp__load_f32(x, dt, j) - m) - ls);
  } else {
    for (size_t j = 0; j < n; j++) amp__store_f32(y, dt, j, expf(amp__load_f32(x, dt, j) - m) / s);
  }
}

static amp_status softmax(amp_ctx *ctx, const char *fn, amp_dtype dt, int64_t rows, int64_t cols,
                          const void *x, void *y, int log_) {
  amp_status st = check_matrix(ctx, fn, dt, rows, cols, x, y);
  if (st != AMP_OK) return st;
#pragma omp parallel for num_threads(amp__threads(ctx))                                            \
    schedule(static) if (rows * cols > AMP__PAR_MIN / 8)
  for (int64_t r = 0; r < rows; r++) {
    size_t off = (size_t)(r * cols);
    softmax_row(dt, (size_t)cols, amp__at(x, dt, off), (void *)amp__at(y, dt, off), log_);
  }
  return AMP_OK;
}

amp_status amp_softmax_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                            void *y) {
  return softmax(ctx, "amp_softmax_rows", dt, rows, cols, x, y, 0);
}

amp_status amp_log_softmax_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols,
                                const void *x, void *y) {
  return softmax(ctx, "amp_log_softmax_rows", dt, rows, cols, x, y, 1);
}
