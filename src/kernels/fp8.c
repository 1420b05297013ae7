/* FP8 quantisation: the scalar reference kernels (entries of the scalar
 * kernel table), stochastic rounding to FP8, block quantisation with
 * power-of-two scales, and the quantised-operand GEMM (amp_gemm_fp8), which
 * hands the FP8 operands with their scales to the GEMM kernels: they widen
 * each element to to_f32(q) · scale_inv as they pack it (the scalar
 * reference as it loads it), the value the F32 copy of the dequantised
 * operand would hold, so the result is the F32 GEMM of the dequantised
 * values bit for bit, without the copies. */
#include "fp8_internal.h"
#include "gemm_internal.h"

#include "../dtype/convert_internal.h"
#include "../dtype/dtype_inline.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline float load_src(int sdt, const void *src, size_t i) {
  return sdt == AMP_BF16 ? amp__bf16_to_f32(((const uint16_t *)src)[i]) : ((const float *)src)[i];
}

float amp__fp8_amax_scalar(int sdt, size_t n, const void *src) {
  float m = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float a = fabsf(load_src(sdt, src, i));
    if (a > m) m = a; /* NaN compares false: ignored */
  }
  return m;
}

float amp__fp8_quant_scalar(int fmt, int sdt, size_t n, const void *src, float scale,
                            uint8_t *dst) {
  float m = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float x = load_src(sdt, src, i), a = fabsf(x);
    if (a > m) m = a;
    float y = x * scale;
    dst[i] = fmt == AMP_E4M3 ? amp__f32_to_e4m3(y, 1) : amp__f32_to_e5m2(y, 1);
  }
  return m;
}

void amp__fp8_dequant_scalar(int fmt, size_t n, const uint8_t *src, float scale_inv, float *dst) {
  for (size_t i = 0; i < n; i++)
    dst[i] = (fmt == AMP_E4M3 ? amp__e4m3_to_f32(src[i]) : amp__e5m2_to_f32(src[i])) * scale_inv;
}

/* ---- Stochastic rounding to FP8 ------------------------------------------ */

static inline float fp8_value(int fmt, uint32_t code) {
  return fmt == AMP_E4M3 ? amp__e4m3_to_f32((uint8_t)code) : amp__e5m2_to_f32((uint8_t)code);
}

/* One value: the magnitude's code rounded toward zero, then up with
 * probability (|y| - lo)/(hi - lo), both differences exact (lo is |y| with
 * bits dropped, hi - lo a power of two); u has 24 random bits, so the
 * probability is exact whenever the fraction is a multiple of 2^-24
 * (every normal result), within 2^-24 otherwise. */
static uint8_t fp8_sr_one(int fmt, float y, uint64_t r) {
  const uint32_t mbits = fmt == AMP_E4M3 ? 3 : 2, bias = fmt == AMP_E4M3 ? 7 : 15;
  const uint32_t maxc = fmt == AMP_E4M3 ? 0x7eu : 0x7bu;
  uint32_t x = amp__f32_bits(y), sign = (x >> 24) & 0x80u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return fmt == AMP_E4M3 ? (uint8_t)(sign | 0x7fu) : (uint8_t)(sign | 0x7eu);
  float ay = amp__bits_f32(ax);
  if (ay >= amp__fp8_max(fmt)) return (uint8_t)(sign | maxc); /* saturate (inf too) */
  uint32_t c;
  if ((ax >> 23) >= 128 - bias) /* normal: truncate the mantissa */
    c = (ax - ((127 - bias) << 23)) >> (23 - mbits);
  else /* subnormal: |y| / quantum, exact (a power-of-two scaling) */
    c = (uint32_t)floorf(ay * ldexpf(1.0f, (int)(bias + mbits - 1)));
  float lo = fp8_value(fmt, c), hi = fp8_value(fmt, c + 1);
  float frac = (ay - lo) / (hi - lo);
  float u = (float)(r >> 40) * 0x1p-24f;
  return (uint8_t)(sign | (u < frac ? c + 1 : c));
}

float amp__fp8_quant_sr(int fmt, int sdt, size_t n, const void *src, float scale, uint8_t *dst,
                        uint64_t key, uint64_t idx0) {
  float m = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float x = load_src(sdt, src, i), a = fabsf(x);
    if (a > m) m = a;
    dst[i] = fp8_sr_one(fmt, x * scale, amp__sr_bits(key, idx0 + i));
  }
  return m;
}

/* ---- Block quantisation ---------------------------------------------------- */

static inline const void *src_at(int sdt, const void *src, size_t i) {
  return sdt == AMP_BF16 ? (const void *)((const uint16_t *)src + i)
                         : (const void *)((const float *)src + i);
}

void amp__fp8_row_amax_scalar(int sdt, size_t cols, size_t bc, const void *src, float *amax) {
  for (size_t c0 = 0, t = 0; c0 < cols; c0 += bc, t++) {
    float a = amp__fp8_amax_scalar(sdt, c0 + bc < cols ? bc : cols - c0, src_at(sdt, src, c0));
    if (a > amax[t]) amax[t] = a;
  }
}

void amp__fp8_row_quant_scalar(int fmt, int sdt, size_t cols, size_t bc, const void *src,
                               const float *scale, uint8_t *dst) {
  for (size_t c0 = 0, t = 0; c0 < cols; c0 += bc, t++)
    amp__fp8_quant_scalar(fmt, sdt, c0 + bc < cols ? bc : cols - c0, src_at(sdt, src, c0), scale[t],
                          dst + c0);
}

/* fmt_max / amax rounded down to a power of two; 1 when amax is 0 or not
 * finite. */
static float pow2_scale(float fmax, float amax) {
  if (!(amax > 0.0f) || !isfinite(amax)) return 1.0f;
  float s = fmax / amax;
  if (!isfinite(s)) s = FLT_MAX;
  return amp__bits_f32(amp__f32_bits(s) & 0xff800000u);
}

/* One row of blocks (rows r0..r1): the tiles' amaxes row by row into the
 * block row's slice of scale_inv, the scales there, the codes row by row
 * (a row's data is still in L1 from the amax pass under 1 × bc tiles), and
 * last the scales replaced by their inverses (exact: powers of two). */
static void quant_block_row(const amp__kernels *k, amp_dtype fmt, const void *src, amp_dtype sdt,
                            int64_t r0, int64_t r1, int64_t cols, int64_t ld, int64_t bc,
                            int64_t nbc, uint8_t *dst, float *si) {
  const size_t es = amp_dtype_size(sdt);
  const float fmax = amp__fp8_max(fmt);
  for (int64_t j = 0; j < nbc; j++) si[j] = 0.0f;
  for (int64_t r = r0; r < r1; r++)
    k->fp8_row_amax(sdt, (size_t)cols, (size_t)bc, (const char *)src + (size_t)(r * ld) * es, si);
  for (int64_t j = 0; j < nbc; j++) si[j] = pow2_scale(fmax, si[j]);
  for (int64_t r = r0; r < r1; r++)
    k->fp8_row_quant(fmt, sdt, (size_t)cols, (size_t)bc, (const char *)src + (size_t)(r * ld) * es,
                     si, dst + r * cols);
  for (int64_t j = 0; j < nbc; j++) si[j] = 1.0f / si[j];
}

amp_status amp_fp8_quantize_blocks(amp_ctx *ctx, amp_dtype fmt, const void *src, amp_dtype src_type,
                                   int64_t rows, int64_t cols, int64_t ld, int64_t block_rows,
                                   int64_t block_cols, uint8_t *dst, float *scale_inv,
                                   amp_fp8_matrix *out) {
  if ((fmt != AMP_E4M3 && fmt != AMP_E5M2) || (src_type != AMP_F32 && src_type != AMP_BF16) ||
      !src || !dst || !scale_inv || rows < 1 || cols < 1 || ld < cols || block_rows < 1 ||
      block_cols < 1)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_fp8_quantize_blocks: bad arguments (fmt %s, src %s, %lldx%lld, ld %lld, "
                      "blocks %lldx%lld)",
                      amp_dtype_name(fmt), amp_dtype_name(src_type), (long long)rows,
                      (long long)cols, (long long)ld, (long long)block_rows, (long long)block_cols);
  const amp__kernels *k = amp__kernels_of(ctx);
  const int64_t nbr = amp__fp8_nblocks(rows, block_rows), nbc = amp__fp8_nblocks(cols, block_cols);
  /* block rows are independent: any split over threads gives the same bits */
#pragma omp parallel for num_threads(amp__threads(ctx))                                            \
    schedule(static) if (nbr > 1 && rows * cols >= 65536)
  for (int64_t bi = 0; bi < nbr; bi++) {
    int64_t r0 = bi * block_rows, r1 = r0 + block_rows < rows ? r0 + block_rows : rows;
    quant_block_row(k, fmt, src, src_type, r0, r1, cols, ld, block_cols, nbc, dst,
                    scale_inv + bi * nbc);
  }
  *out = (amp_fp8_matrix){dst, fmt, rows, cols, cols, scale_inv, block_rows, block_cols};
  return AMP_OK;
}

/* ---- The quantised-operand GEMM -------------------------------------------- */

int amp__fp8_matrix_ok(amp_ctx *ctx, const amp_fp8_matrix *q, const char *what) {
  if (q && q->data && q->scale_inv && (q->dtype == AMP_E4M3 || q->dtype == AMP_E5M2) &&
      q->rows >= 1 && q->cols >= 1 && q->ld >= q->cols && q->block_rows >= 1 && q->block_cols >= 1)
    return 1;
  amp__error(ctx, AMP_ERR_INVALID_ARG,
             "amp_gemm_fp8: operand %s is not a valid FP8 matrix (NULL data or scales, dtype not "
             "e4m3/e5m2, a size or block < 1, or ld < cols)",
             what);
  return 0;
}

void amp__fp8_dequant_matrix(const amp__kernels *k, const amp_fp8_matrix *q, float *dst,
                             int threads) {
  const int64_t nbc = amp__fp8_nblocks(q->cols, q->block_cols);
  (void)threads;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < q->rows; i++) {
    const float *srow = q->scale_inv + (i / q->block_rows) * nbc;
    for (int64_t bj = 0; bj < nbc; bj++) {
      int64_t c0 = bj * q->block_cols;
      int64_t len = c0 + q->block_cols < q->cols ? q->block_cols : q->cols - c0;
      k->fp8_dequant(q->dtype, (size_t)len, q->data + i * q->ld + c0, srow[bj],
                     dst + i * q->cols + c0);
    }
  }
}

/* The scales of q as the GEMM's descriptor. */
static amp__gemm_scales gemm_scales(const amp_fp8_matrix *q) {
  return (amp__gemm_scales){q->scale_inv, q->block_rows, q->block_cols,
                            amp__fp8_nblocks(q->cols, q->block_cols)};
}

amp_status amp__gemm_fp8(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t m, int64_t n, int64_t k,
                         float alpha, const amp_fp8_matrix *a, const amp_fp8_matrix *b, float beta,
                         void *c, amp_dtype c_type, int64_t ldc, const amp_epilogue *epilogue) {
  amp_status st = amp__gemm_check_c(ctx, ta, tb, n, c, c_type, ldc, epilogue);
  if (st != AMP_OK) return st;
  amp__gemm_args g = amp__gemm_args_for(ta, tb, m, n, k, alpha, beta, c, c_type, ldc, epilogue);
  g.a = a->data, g.a_type = (int)a->dtype, g.lda = a->ld, g.a8 = gemm_scales(a);
  g.b = b->data, g.b_type = (int)b->dtype, g.ldb = b->ld, g.b8 = gemm_scales(b);
  return amp__gemm_run(ctx, &g);
}

amp_status amp_gemm_fp8(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t m, int64_t n, int64_t k,
                        float alpha, const amp_fp8_matrix *a, const amp_fp8_matrix *b, float beta,
                        void *c, amp_dtype c_type, int64_t ldc, const amp_epilogue *epilogue) {
  if (!amp__fp8_matrix_ok(ctx, a, "a") || !amp__fp8_matrix_ok(ctx, b, "b"))
    return AMP_ERR_INVALID_ARG;
  int64_t ar = ta == AMP_TRANS ? k : m, ac = ta == AMP_TRANS ? m : k;
  int64_t br = tb == AMP_TRANS ? n : k, bc = tb == AMP_TRANS ? k : n;
  if (a->rows != ar || a->cols != ac || b->rows != br || b->cols != bc)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_gemm_fp8: operands %lldx%lld and %lldx%lld do not fit m=%lld n=%lld "
                      "k=%lld with these transposes",
                      (long long)a->rows, (long long)a->cols, (long long)b->rows,
                      (long long)b->cols, (long long)m, (long long)n, (long long)k);
  return amp__gemm_fp8(ctx, ta, tb, m, n, k, alpha, a, b, beta, c, c_type, ldc, epilogue);
}
