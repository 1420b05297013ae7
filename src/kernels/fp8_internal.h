/* FP8 quantisation kernels (kernels/fp8.c: scalar references;
 * kernels/fp8_avx2.c: AVX2 versions, the same bits) and the quantised-operand
 * GEMM. Internal. The kernel table (core/kernels.h) holds fp8_amax,
 * fp8_quant and fp8_dequant; the rest is plain code on top of them. */
#ifndef AMPC_FP8_INTERNAL_H
#define AMPC_FP8_INTERNAL_H

#include "../core/internal.h"

#include <stddef.h>
#include <stdint.h>

/* max |x| over n values of src (sdt F32 or BF16); NaN values are ignored
 * (inf counts). 0 for n == 0. Exact, so any order of the maxima gives the
 * same result. */
float amp__fp8_amax_scalar(int sdt, size_t n, const void *src);
/* dst[i] = fmt(src[i] · scale), round to nearest even, saturating (beyond
 * the largest finite value, inf included, gives ±max; NaN stays NaN), fmt
 * AMP_E4M3 or AMP_E5M2. Returns max |src[i]| as amp__fp8_amax_scalar. */
float amp__fp8_quant_scalar(int fmt, int sdt, size_t n, const void *src, float scale, uint8_t *dst);
/* dst[i] = to_f32(src[i]) · scale_inv, one F32 multiplication. */
void amp__fp8_dequant_scalar(int fmt, size_t n, const uint8_t *src, float scale_inv, float *dst);
/* As amp__fp8_quant_scalar with stochastic rounding (fmt AMP_E5M2 or
 * AMP_E4M3): element i rounds its magnitude up with probability the
 * discarded fraction, using amp__sr_bits(key, idx0 + i); saturating. */
float amp__fp8_quant_sr(int fmt, int sdt, size_t n, const void *src, float scale, uint8_t *dst,
                        uint64_t key, uint64_t idx0);

/* Block scaling, one row of 1 × bc tiles (the kernel table's fp8_row_amax
 * and fp8_row_quant): per tile, as amp__fp8_amax_scalar max-accumulated
 * into amax[t], and as amp__fp8_quant_scalar with scale[t]. */
void amp__fp8_row_amax_scalar(int sdt, size_t cols, size_t bc, const void *src, float *amax);
void amp__fp8_row_quant_scalar(int fmt, int sdt, size_t cols, size_t bc, const void *src,
                               const float *scale, uint8_t *dst);

#ifdef AMPC_HAVE_X86_SIMD
void amp__fp8_row_amax_avx2(int sdt, size_t cols, size_t bc, const void *src, float *amax);
void amp__fp8_row_quant_avx2(int fmt, int sdt, size_t cols, size_t bc, const void *src,
                             const float *scale, uint8_t *dst);
float amp__fp8_amax_avx2(int sdt, size_t n, const void *src);
float amp__fp8_quant_avx2(int fmt, int sdt, size_t n, const void *src, float scale, uint8_t *dst);
void amp__fp8_dequant_avx2(int fmt, size_t n, const uint8_t *src, float scale_inv, float *dst);
/* AVX-512F encoders (kernels/fp8_avx512.c, the AVX-512 table's entries). */
float amp__fp8_quant_avx512(int fmt, int sdt, size_t n, const void *src, float scale, uint8_t *dst);
void amp__fp8_row_quant_avx512(int fmt, int sdt, size_t cols, size_t bc, const void *src,
                               const float *scale, uint8_t *dst);
#endif

/* The largest finite value of fmt (448 for E4M3, 57344 for E5M2). */
static inline float amp__fp8_max(int fmt) { return fmt == AMP_E4M3 ? 448.0f : 57344.0f; }

/* Number of scale blocks of a matrix descriptor, and the index of element
 * (i, j)'s scale. */
static inline int64_t amp__fp8_nblocks(int64_t len, int64_t blk) { return (len + blk - 1) / blk; }

/* amp_gemm_fp8() with the operands already validated (descriptors and
 * shapes; C and the epilogue are checked here). */
amp_status amp__gemm_fp8(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t m, int64_t n, int64_t k,
                         float alpha, const amp_fp8_matrix *a, const amp_fp8_matrix *b, float beta,
                         void *c, amp_dtype c_type, int64_t ldc, const amp_epilogue *epilogue);

/* Dequantises the whole of q into dst (q->rows × q->cols, packed). */
void amp__fp8_dequant_matrix(const amp__kernels *k, const amp_fp8_matrix *q, float *dst,
                             int threads);

/* Checks a descriptor; returns 1, or 0 with an error recorded ("what"
 * names it in the message). */
int amp__fp8_matrix_ok(amp_ctx *ctx, const amp_fp8_matrix *q, const char *what);

#endif
