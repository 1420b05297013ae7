/* The INT8 GEMM (u8 × s8 → s32) and the quantization rule, shared by the
 * scalar reference (qgemm.c), its SIMD paths (qgemm_avx2.c, qgemm_avx512.c)
 * and the fake-quantization op (ops/op_quant.c). Not public.
 *
 * Exactness: every product of a u8 and an s8 is at most 255·128 = 32640 in
 * magnitude and k <= AMP__QGEMM_MAX_K = 65536, so every partial sum fits in
 * an int32 and integer addition is associative: any order, blocking or
 * thread count gives the same bits as the scalar reference. */
#ifndef AMPC_QGEMM_INTERNAL_H
#define AMPC_QGEMM_INTERNAL_H

#include "../core/internal.h"

#include <math.h>
#include <stdint.h>

/* The largest k for which no partial sum of u8 · s8 products can leave int32:
 * 255 · 128 · 65536 = 2139095040 < 2^31. */
#define AMP__QGEMM_MAX_K 65536

/* The quantization rule of PyTorch's fake_quantize_per_{tensor,channel}_affine:
 * v = nearbyint(x · inv_scale) + zero_point (F32, rounding to nearest even,
 * amp__round_even), then clamped to [qmin, qmax]; NaN goes to qmin. *in
 * (when not NULL) says whether v was inside [qmin, qmax] before the clamp
 * (the straight-through estimator's mask). */
static inline float amp__round_even(float v) {
  /* nearbyintf in the default rounding mode without a libm call: for
     |v| < 2^23, v ± 2^23 (the sign of v) lies where the spacing of floats is
     1, so the addition rounds v to an integer, ties to even (2^23 is even),
     and subtracting 2^23 again is exact; |v| >= 2^23 is an integer already,
     and NaN stays NaN. tests/test_qgemm.c checks it against nearbyintf. */
  const float t = copysignf(0x1p23f, v), r = (v + t) - t;
  return fabsf(v) < 0x1p23f ? r : v;
}

/* The rule in F32 alone: the clamped code as a float (exact: |qmin|,
 * |qmax| <= 2^24). */
static inline float amp__quant_value(float x, float inv_scale, float zp, float qmin, float qmax) {
  float v = amp__round_even(x * inv_scale) + zp;
  v = v >= qmin ? v : qmin; /* NaN goes to qmin */
  return v <= qmax ? v : qmax;
}

/* Whether the code of x lies in [qmin, qmax] before the clamp. */
static inline int amp__quant_inside(float x, float inv_scale, float zp, float qmin, float qmax) {
  const float v = amp__round_even(x * inv_scale) + zp;
  return (v >= qmin) & (v <= qmax);
}

static inline int32_t amp__quant_code(float x, float inv_scale, int32_t zp, int32_t qmin,
                                      int32_t qmax, int *in) {
  if (in) *in = amp__quant_inside(x, inv_scale, (float)zp, (float)qmin, (float)qmax);
  return (int32_t)amp__quant_value(x, inv_scale, (float)zp, (float)qmin, (float)qmax);
}

/* One block of C = A·Bᵀ on the calling thread: A is m × k u8 (row stride
 * lda), B is n × k s8 (row stride ldb, a Linear weight [out, in]), C is
 * m × n int32 (row stride ldc), overwritten. k in [0, AMP__QGEMM_MAX_K]. */
void amp__qgemm_scalar(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                       const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc);
#ifdef AMPC_HAVE_X86_SIMD
/* AVX2: 16 bytes at a time widened to int16 (vpmovzxbw, vpmovsxbw) and
 * multiplied in pairs into int32 (vpmaddwd, whose pair sums of at most
 * 2 · 32640 never saturate), never vpmaddubsw (which saturates int16). */
void amp__qgemm_avx2(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                     const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc);
/* AVX-512: vpdpbusd (AVX512-VNNI; four u8 · s8 products added into an int32
 * lane without saturation) where the CPU has AVX512-VNNI and AVX512-BW, else
 * the AVX2 path. */
void amp__qgemm_avx512(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                       const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc);
#endif

#endif
