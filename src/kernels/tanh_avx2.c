/* AVX2/FMA version of the tanh-family kernel (amp__kernels_avx2.tanh_act):
 * the operation sequence of tanh_internal.h on eight lanes, FMA for fmaf,
 * both of tanh's ranges computed and blended, so it gives the scalar
 * reference's bits. Tails of fewer than eight elements run the scalar code. */
#include "kernels_internal.h"
#include "exp_avx2.h"
#include "tanh_internal.h"

#include "../dtype/simd_avx2.h"

#define SET1 _mm256_set1_ps

static inline __m256 abs8(__m256 x) {
  return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

/* Lanes where x is NaN take x quieted. */
static inline __m256 nan_keep8(__m256 r, __m256 x) {
  __m256 qx = _mm256_or_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x400000)));
  return _mm256_blendv_ps(r, qx, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* tanh without the NaN rule (NaN lanes give some value; callers blend). */
static inline __m256 tanh8(__m256 x) {
  __m256 a = abs8(x), sign = _mm256_andnot_ps(a, x);
  __m256 z = _mm256_mul_ps(a, a);
  __m256 p = _mm256_fmadd_ps(SET1(AMP__TANH_P0), z, SET1(AMP__TANH_P1));
  p = _mm256_fmadd_ps(p, z, SET1(AMP__TANH_P2));
  p = _mm256_fmadd_ps(p, z, SET1(AMP__TANH_P3));
  p = _mm256_fmadd_ps(p, z, SET1(AMP__TANH_P4));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), a, a);
  __m256 w = _mm256_mul_ps(SET1(2.0f), _mm256_min_ps(a, SET1(AMP__TANH_CLAMP)));
  __m256 d = _mm256_add_ps(amp__exp8_avx2(w), SET1(1.0f));
  __m256 large = _mm256_sub_ps(SET1(1.0f), _mm256_div_ps(SET1(2.0f), d));
  __m256 r = _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, SET1(AMP__TANH_SMALL), _CMP_LT_OQ));
  return _mm256_or_ps(r, sign);
}

static inline __m256 gelu_t8(__m256 x) {
  __m256 c = _mm256_mul_ps(SET1(AMP__GELU_C), _mm256_mul_ps(x, x));
  return tanh8(_mm256_mul_ps(SET1(AMP__GELU_K), _mm256_fmadd_ps(c, x, x)));
}

static inline __m256 gelu_d8(__m256 x) {
  __m256 t = gelu_t8(x);
  __m256 xc = _mm256_max_ps(_mm256_min_ps(x, SET1(AMP__GELU_CLAMP)), SET1(-AMP__GELU_CLAMP));
  __m256 s = _mm256_fnmadd_ps(t, t, SET1(1.0f));
  __m256 hs = _mm256_mul_ps(_mm256_mul_ps(SET1(0.5f), xc), s);
  __m256 du = _mm256_mul_ps(SET1(AMP__GELU_K),
                            _mm256_fmadd_ps(SET1(AMP__GELU_3C), _mm256_mul_ps(xc, xc), SET1(1.0f)));
  return _mm256_fmadd_ps(hs, du, _mm256_fmadd_ps(SET1(0.5f), t, SET1(0.5f)));
}

static inline __m256 op8(int op, __m256 x, __m256 g) {
  __m256 r;
  switch (op) {
  case AMP__TANH_FWD: return nan_keep8(tanh8(x), x);
  case AMP__GELU_FWD: {
    __m256 hx = _mm256_mul_ps(SET1(0.5f), x);
    return nan_keep8(_mm256_fmadd_ps(hx, gelu_t8(x), hx), x);
  }
  case AMP__TANH_BWD: r = nan_keep8(_mm256_fnmadd_ps(x, x, SET1(1.0f)), x); break;
  default: r = nan_keep8(gelu_d8(x), x); break;
  }
  return nan_keep8(_mm256_mul_ps(g, r), g);
}

/* The loop, instantiated per (op, dtype) so that the switches fold. */
static inline void act_loop(int op, int dt, int gdt, size_t n, const void *v, const void *g,
                            void *y) {
  const int ydt = op <= AMP__GELU_FWD ? dt : gdt;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = amp__avx2_load8(v, dt, i);
    __m256 gv = op <= AMP__GELU_FWD ? x : amp__avx2_load8(g, dt, i);
    amp__avx2_store8(y, ydt, i, op8(op, x, gv));
  }
  if (i < n)
    amp__tanh_act_scalar(op, dt, gdt, n - i, amp__at(v, dt, i), g ? amp__at(g, dt, i) : NULL,
                         (void *)amp__at(y, ydt, i));
}

#define ACT_DT(op, dt)                                                                             \
  do {                                                                                             \
    if (gdt == (dt))                                                                               \
      act_loop(op, dt, dt, n, v, g, y);                                                            \
    else if (gdt == AMP_F32)                                                                       \
      act_loop(op, dt, AMP_F32, n, v, g, y);                                                       \
    else                                                                                           \
      amp__tanh_act_scalar(op, dt, gdt, n, v, g, y);                                               \
  } while (0)

#define ACT_OP(op)                                                                                 \
  do {                                                                                             \
    if (dt == AMP_F32)                                                                             \
      ACT_DT(op, AMP_F32);                                                                         \
    else if (dt == AMP_F16)                                                                        \
      ACT_DT(op, AMP_F16);                                                                         \
    else                                                                                           \
      ACT_DT(op, AMP_BF16);                                                                        \
  } while (0)

void amp__tanh_act_avx2(int op, int dt, int gdt, size_t n, const void *v, const void *g, void *y) {
  switch (op) {
  case AMP__TANH_FWD: ACT_OP(AMP__TANH_FWD); break;
  case AMP__GELU_FWD: ACT_OP(AMP__GELU_FWD); break;
  case AMP__TANH_BWD: ACT_OP(AMP__TANH_BWD); break;
  default: ACT_OP(AMP__GELU_BWD); break;
  }
}
