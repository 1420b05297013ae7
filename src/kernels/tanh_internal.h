/* ampc's own tanh, and the GELU (tanh approximation) built on it: the scalar
 * reference of the tanh-family kernels (kernels/tanh.c) and the exact
 * operation sequence its AVX2 and AVX-512 versions (tanh_avx2.c,
 * tanh_avx512.c) repeat lane by lane, one FMA for each fmaf, one multiply
 * for each `*`, so that every path gives the same bits. The build compiles C
 * with -std=c11, where GCC does not contract a*b+c into an FMA
 * (-ffp-contract=off), so the scalar code below is exactly what is written.
 *
 * tanh(x) for a = |x| (the sign of x is put back at the end; tanh(-0) = -0):
 *   a < 0.625:  z = a·a, p = Horner polynomial in z (Cephes' tanhf
 *               minimax coefficients), tanh = fma(p·z, a, a);
 *   else:       e = exp(2·min(a, 10)) with the own exp below, then
 *               tanh = 1 − 2/(e + 1); it rounds to exactly 1 from
 *               a ≈ 9.01 on (so ±inf gives ±1).
 *   NaN gives the input NaN, quieted.
 * exp(w), used for w in [-87, 20] only (tanh: [1.25, 20]; softmax: see
 * norm_internal.h): k = round(w·log2 e) (the 1.5·2^23
 * rounding trick in one FMA), r = w − k·ln2 (two FMAs, Cody-Waite), e^r by
 * a degree-7 polynomial (Cephes' expf coefficients), scaled by 2^k through
 * the exponent bits.
 * Maximum error of amp__tanh_ref against tanh in double, over every F32:
 * see tests/test_tanh.c (AMP__TANH_MAX_ULP).
 *
 * GELU, u = sqrt(2/pi)·(x + 0.044715·x³), t = tanh(u):
 *   gelu(x)  = fma(x/2, t, x/2)
 *   gelu'(x) = fma((x/2)·(1 − t²), sqrt(2/pi)·(1 + 3·0.044715·x²),
 *                  fma(0.5, t, 0.5))
 * with 1 − t² = fma(−t, t, 1) and, in the derivative's second term only, x
 * clamped to [−16, 16] (where t is already ±1 and the term 0; the clamp
 * keeps inf·0 out of it, so gelu'(±inf) = 1 or 0). */
#ifndef AMPC_KERNELS_TANH_INTERNAL_H
#define AMPC_KERNELS_TANH_INTERNAL_H

#include "../dtype/dtype_inline.h"

#include <math.h>
#include <stdint.h>

/* The operations of the tanh-family kernel (amp__kernels.tanh_act). */
enum { AMP__TANH_FWD, AMP__GELU_FWD, AMP__TANH_BWD, AMP__GELU_BWD };

#define AMP__TANH_SMALL 0.625f
#define AMP__TANH_CLAMP 10.0f
#define AMP__TANH_P0 -5.70498872745e-3f
#define AMP__TANH_P1 2.06390887954e-2f
#define AMP__TANH_P2 -5.37397155531e-2f
#define AMP__TANH_P3 1.33314422036e-1f
#define AMP__TANH_P4 -3.33332819422e-1f
#define AMP__EXP_MAGIC 12582912.0f /* 1.5·2^23 */
#define AMP__EXP_LOG2E 1.44269504088896341f
#define AMP__EXP_LN2_HI 0.693145751953125f
#define AMP__EXP_LN2_LO 1.428606765330187e-06f
#define AMP__EXP_E0 1.9875691500e-4f
#define AMP__EXP_E1 1.3981999507e-3f
#define AMP__EXP_E2 8.3334519073e-3f
#define AMP__EXP_E3 4.1665795894e-2f
#define AMP__EXP_E4 1.6666665459e-1f
#define AMP__EXP_E5 5.0000001201e-1f
#define AMP__GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define AMP__GELU_C 0.044715f
#define AMP__GELU_3C 0.134145f /* 3·0.044715 */
#define AMP__GELU_CLAMP 16.0f

/* The x86 MINPS/MAXPS rule: b when either is NaN. */
static inline float amp__min_ps(float a, float b) { return a < b ? a : b; }
static inline float amp__max_ps(float a, float b) { return a > b ? a : b; }

/* x quieted (x NaN). */
static inline float amp__quiet(float x) { return amp__bits_f32(amp__f32_bits(x) | 0x400000u); }

/* e^w for w in [-87, 20] (the sequence above). */
static inline float amp__exp_ref(float w) {
  float k = fmaf(w, AMP__EXP_LOG2E, AMP__EXP_MAGIC) - AMP__EXP_MAGIC;
  float r = fmaf(-k, AMP__EXP_LN2_HI, w);
  r = fmaf(-k, AMP__EXP_LN2_LO, r);
  float p = fmaf(AMP__EXP_E0, r, AMP__EXP_E1);
  p = fmaf(p, r, AMP__EXP_E2);
  p = fmaf(p, r, AMP__EXP_E3);
  p = fmaf(p, r, AMP__EXP_E4);
  p = fmaf(p, r, AMP__EXP_E5);
  float r2 = r * r;
  float e = fmaf(p, r2, r) + 1.0f;
  return amp__bits_f32(amp__f32_bits(e) + ((uint32_t)(int32_t)k << 23));
}

/* tanh(x), the sequence above. */
static inline float amp__tanh_ref(float x) {
  if (x != x) return amp__quiet(x);
  uint32_t sign = amp__f32_bits(x) & 0x80000000u;
  float a = amp__bits_f32(amp__f32_bits(x) & 0x7fffffffu), r;
  if (a < AMP__TANH_SMALL) {
    float z = a * a;
    float p = fmaf(AMP__TANH_P0, z, AMP__TANH_P1);
    p = fmaf(p, z, AMP__TANH_P2);
    p = fmaf(p, z, AMP__TANH_P3);
    p = fmaf(p, z, AMP__TANH_P4);
    float pz = p * z;
    r = fmaf(pz, a, a);
  } else {
    float w = 2.0f * amp__min_ps(a, AMP__TANH_CLAMP);
    float d = amp__exp_ref(w) + 1.0f;
    float q = 2.0f / d;
    r = 1.0f - q;
  }
  return amp__bits_f32(amp__f32_bits(r) | sign);
}

/* tanh(sqrt(2/pi)·(x + 0.044715·x³)). */
static inline float amp__gelu_t_ref(float x) {
  float x2 = x * x;
  float c = AMP__GELU_C * x2;
  float b = fmaf(c, x, x);
  return amp__tanh_ref(AMP__GELU_K * b);
}

static inline float amp__gelu_ref(float x) {
  if (x != x) return amp__quiet(x);
  float t = amp__gelu_t_ref(x), hx = 0.5f * x;
  return fmaf(hx, t, hx);
}

static inline float amp__gelu_d_ref(float x) {
  if (x != x) return amp__quiet(x);
  float t = amp__gelu_t_ref(x);
  float xc = amp__max_ps(amp__min_ps(x, AMP__GELU_CLAMP), -AMP__GELU_CLAMP);
  float s = fmaf(-t, t, 1.0f);
  float hs = (0.5f * xc) * s;
  float x2 = xc * xc;
  float du = AMP__GELU_K * fmaf(AMP__GELU_3C, x2, 1.0f);
  return fmaf(hs, du, fmaf(0.5f, t, 0.5f));
}

/* 1 − y² for tanh's backward from its result y. */
static inline float amp__tanh_d_ref(float y) {
  if (y != y) return amp__quiet(y);
  return fmaf(-y, y, 1.0f);
}

/* dx = g·d with a NaN g winning (quieted), as amp__nan_first. */
static inline float amp__tanh_gmul(float g, float d) { return g != g ? amp__quiet(g) : g * d; }

#endif
