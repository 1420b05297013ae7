/* INT8 inference kernels: the u8 × s8 → int32 GEMM (argument checks, the
 * scalar reference, the threaded driver over the context's table entry),
 * quantization of activations and weights, and the quantized Linear layer
 * (quantize, integer GEMM, requantize to F32). */
#include "qgemm_internal.h"

#include <float.h>
#include <stdlib.h>

void amp__qgemm_scalar(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                       const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      int32_t acc = 0;
      for (int64_t p = 0; p < k; p++) acc += (int32_t)a[i * lda + p] * (int32_t)b[j * ldb + p];
      c[i * ldc + j] = acc;
    }
}

/* Tasks of MB rows × NB columns of C, spread over the call's threads; each
 * element is one exact integer sum, so the split changes no bit. */
enum { QMB = 32, QNB = 64 };

amp_status amp_gemm_u8s8(amp_ctx *ctx, int64_t m, int64_t n, int64_t k, const uint8_t *a,
                         int64_t lda, const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc) {
  if (m < 1 || n < 1 || k < 0 || k > AMP__QGEMM_MAX_K)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_gemm_u8s8: bad size m=%lld n=%lld k=%lld (need m, n >= 1 and k in "
                      "[0, %d], where int32 sums cannot overflow)",
                      (long long)m, (long long)n, (long long)k, AMP__QGEMM_MAX_K);
  if (!a || !b || !c)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_gemm_u8s8: NULL buffer (%s is NULL)",
                      !a   ? "a"
                      : !b ? "b"
                           : "c");
  if (lda < k || ldb < k || ldc < n)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_gemm_u8s8: leading dimension too small (lda=%lld, ldb=%lld need >= "
                      "k=%lld; ldc=%lld needs >= n=%lld)",
                      (long long)lda, (long long)ldb, (long long)k, (long long)ldc, (long long)n);
  const amp__kernels *kt = amp__kernels_of(ctx);
  const int64_t mt = (m + QMB - 1) / QMB, nt = (n + QNB - 1) / QNB;
  const int threads = amp__threads(ctx);
  const int par = threads > 1 && mt * nt > 1 && (double)m * (double)n * (double)k > 1e6;
#pragma omp parallel for num_threads(par ? threads : 1) schedule(static)
  for (int64_t t = 0; t < mt * nt; t++) {
    const int64_t i0 = t / nt * QMB, j0 = t % nt * QNB;
    const int64_t mb = m - i0 < QMB ? m - i0 : QMB, nb = n - j0 < QNB ? n - j0 : QNB;
    kt->qgemm(mb, nb, k, a + i0 * lda, lda, b + j0 * ldb, ldb, c + i0 * ldc + j0, ldc);
  }
  return AMP_OK;
}

amp_status amp_quantize_u8(amp_ctx *ctx, size_t n, const float *x, float scale, int32_t zero_point,
                           uint8_t *q) {
  if (n && (!x || !q)) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_quantize_u8: NULL buffer");
  if (!(scale > 0) || !isfinite(scale) || zero_point < 0 || zero_point > 255)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_quantize_u8: scale %g must be finite and > 0, zero point %d in [0, 255]",
                      (double)scale, (int)zero_point);
  const float inv = 1.0f / scale;
  for (size_t i = 0; i < n; i++)
    q[i] = (uint8_t)amp__quant_code(x[i], inv, zero_point, 0, 255, NULL);
  return AMP_OK;
}

amp_status amp_quantize_s8_rows(amp_ctx *ctx, int64_t rows, int64_t cols, const float *w,
                                const float *scale, int8_t *q) {
  if (rows < 1 || cols < 1 || !w || !scale || !q)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_quantize_s8_rows: bad size (%lld × %lld) or NULL buffer",
                      (long long)rows, (long long)cols);
  for (int64_t r = 0; r < rows; r++) {
    if (!(scale[r] > 0) || !isfinite(scale[r]))
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "amp_quantize_s8_rows: scale of row %lld is %g (must be finite and > 0)",
                        (long long)r, (double)scale[r]);
    const float inv = 1.0f / scale[r];
    for (int64_t j = 0; j < cols; j++)
      q[r * cols + j] = (int8_t)amp__quant_code(w[r * cols + j], inv, 0, -128, 127, NULL);
  }
  return AMP_OK;
}

/* The checks of amp_qlinear's arguments; AMP_OK or the recorded error. */
static amp_status qlinear_check(amp_ctx *ctx, int64_t m, int64_t n, int64_t k, const float *x,
                                float x_scale, int32_t x_zp, const int8_t *w, const float *w_scale,
                                float *y) {
  if (m < 1 || n < 1 || k < 1 || k > AMP__QGEMM_MAX_K || !x || !w || !w_scale || !y)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_qlinear: bad size m=%lld n=%lld k=%lld (k at most %d) or NULL buffer",
                      (long long)m, (long long)n, (long long)k, AMP__QGEMM_MAX_K);
  if (!(x_scale > 0) || !isfinite(x_scale) || x_zp < 0 || x_zp > 255)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_qlinear: input scale %g (finite, > 0) or zero point %d (0..255) is bad",
                      (double)x_scale, (int)x_zp);
  for (int64_t j = 0; j < n; j++)
    if (!(w_scale[j] > 0) || !isfinite(w_scale[j]))
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "amp_qlinear: weight scale %lld is %g (must be finite and > 0)",
                        (long long)j, (double)w_scale[j]);
  return AMP_OK;
}

amp_status amp_qlinear(amp_ctx *ctx, int64_t m, int64_t n, int64_t k, const float *x, float x_scale,
                       int32_t x_zp, const int8_t *w, const float *w_scale, const float *bias,
                       float *y) {
  amp_status s = qlinear_check(ctx, m, n, k, x, x_scale, x_zp, w, w_scale, y);
  if (s != AMP_OK) return s;
  uint8_t *xq = malloc((size_t)(m * k));
  int32_t *acc = malloc(sizeof(int32_t) * (size_t)(m * n));
  int64_t *wsum = malloc(sizeof(int64_t) * (size_t)n);
  if (!xq || !acc || !wsum) {
    free(xq), free(acc), free(wsum);
    return amp__error(ctx, AMP_ERR_NOMEM, "amp_qlinear: out of memory");
  }
  amp_quantize_u8(ctx, (size_t)(m * k), x, x_scale, x_zp, xq);
  s = amp_gemm_u8s8(ctx, m, n, k, xq, k, w, k, acc, n);
  for (int64_t j = 0; s == AMP_OK && j < n; j++) {
    int64_t t = 0;
    for (int64_t p = 0; p < k; p++) t += w[j * k + p];
    wsum[j] = t;
  }
  /* y = (Σ (xq - zp)·wq) · (x_scale · w_scale[j]) + bias[j]: the exact
     integer sum (int64) rounded once to F32, one multiply, one add. */
  for (int64_t i = 0; s == AMP_OK && i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      const int64_t v = (int64_t)acc[i * n + j] - (int64_t)x_zp * wsum[j];
      const float r = (float)v * (x_scale * w_scale[j]);
      y[i * n + j] = bias ? r + bias[j] : r;
    }
  free(xq), free(acc), free(wsum);
  return s;
}

void amp_qparams_affine_u8(float min_val, float max_val, float *scale, int32_t *zero_point) {
  const float lo = min_val < 0.0f ? min_val : 0.0f, hi = max_val > 0.0f ? max_val : 0.0f;
  float s = (hi - lo) / 255.0f;
  if (!(s > FLT_EPSILON)) s = FLT_EPSILON;
  float z = 0.0f - nearbyintf(lo / s);
  *scale = s;
  *zero_point = z < 0.0f ? 0 : z > 255.0f ? 255 : (int32_t)z;
}

float amp_qparams_symmetric_s8(float min_val, float max_val) {
  const float lo = min_val < 0.0f ? -min_val : 0.0f, hi = max_val > 0.0f ? max_val : 0.0f;
  const float s = (lo > hi ? lo : hi) / 127.5f;
  return s > FLT_EPSILON ? s : FLT_EPSILON;
}
