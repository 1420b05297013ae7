/* AVX-512F version of the tanh-family kernel (amp__kernels_avx512.tanh_act):
 * the operation sequence of tanh_internal.h on sixteen lanes, exactly as
 * tanh_avx2.c does it on eight (one FMA for each fmaf, both of tanh's
 * ranges computed and blended), so it gives the scalar reference's bits.
 * Loads and stores through dtype/simd_avx512.h (simd_avx2.h on 16 lanes); tails of
 * fewer than sixteen elements run the AVX2 kernel. */
#include "kernels_internal.h"
#include "tanh_internal.h"

#include "../dtype/simd_avx512.h"

#include <immintrin.h>

#define SET1 _mm512_set1_ps
#define I2F _mm512_castsi512_ps
#define F2I _mm512_castps_si512

static inline __m512 nan_keep16(__m512 r, __m512 x) {
  __m512 qx = I2F(_mm512_or_si512(F2I(x), _mm512_set1_epi32(0x400000)));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), r, qx);
}

static inline __m512 exp16(__m512 w) {
  __m512 k = _mm512_sub_ps(_mm512_fmadd_ps(w, SET1(AMP__EXP_LOG2E), SET1(AMP__EXP_MAGIC)),
                           SET1(AMP__EXP_MAGIC));
  __m512 r = _mm512_fnmadd_ps(k, SET1(AMP__EXP_LN2_HI), w);
  r = _mm512_fnmadd_ps(k, SET1(AMP__EXP_LN2_LO), r);
  __m512 p = _mm512_fmadd_ps(SET1(AMP__EXP_E0), r, SET1(AMP__EXP_E1));
  p = _mm512_fmadd_ps(p, r, SET1(AMP__EXP_E2));
  p = _mm512_fmadd_ps(p, r, SET1(AMP__EXP_E3));
  p = _mm512_fmadd_ps(p, r, SET1(AMP__EXP_E4));
  p = _mm512_fmadd_ps(p, r, SET1(AMP__EXP_E5));
  __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), SET1(1.0f));
  __m512i sh = _mm512_slli_epi32(_mm512_cvtps_epi32(k), 23);
  return I2F(_mm512_add_epi32(F2I(e), sh));
}

static inline __m512 tanh16(__m512 x) {
  __m512i xi = F2I(x);
  __m512 a = I2F(_mm512_and_si512(xi, _mm512_set1_epi32(0x7fffffff)));
  __m512i sign = _mm512_and_si512(xi, _mm512_set1_epi32((int)0x80000000u));
  __m512 z = _mm512_mul_ps(a, a);
  __m512 p = _mm512_fmadd_ps(SET1(AMP__TANH_P0), z, SET1(AMP__TANH_P1));
  p = _mm512_fmadd_ps(p, z, SET1(AMP__TANH_P2));
  p = _mm512_fmadd_ps(p, z, SET1(AMP__TANH_P3));
  p = _mm512_fmadd_ps(p, z, SET1(AMP__TANH_P4));
  __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), a, a);
  __m512 w = _mm512_mul_ps(SET1(2.0f), _mm512_min_ps(a, SET1(AMP__TANH_CLAMP)));
  __m512 d = _mm512_add_ps(exp16(w), SET1(1.0f));
  __m512 large = _mm512_sub_ps(SET1(1.0f), _mm512_div_ps(SET1(2.0f), d));
  __m512 r =
      _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, SET1(AMP__TANH_SMALL), _CMP_LT_OQ), large, small);
  return I2F(_mm512_or_si512(F2I(r), sign));
}

static inline __m512 gelu_t16(__m512 x) {
  __m512 c = _mm512_mul_ps(SET1(AMP__GELU_C), _mm512_mul_ps(x, x));
  return tanh16(_mm512_mul_ps(SET1(AMP__GELU_K), _mm512_fmadd_ps(c, x, x)));
}

static inline __m512 gelu_d16(__m512 x) {
  __m512 t = gelu_t16(x);
  __m512 xc = _mm512_max_ps(_mm512_min_ps(x, SET1(AMP__GELU_CLAMP)), SET1(-AMP__GELU_CLAMP));
  __m512 s = _mm512_fnmadd_ps(t, t, SET1(1.0f));
  __m512 hs = _mm512_mul_ps(_mm512_mul_ps(SET1(0.5f), xc), s);
  __m512 du = _mm512_mul_ps(SET1(AMP__GELU_K),
                            _mm512_fmadd_ps(SET1(AMP__GELU_3C), _mm512_mul_ps(xc, xc), SET1(1.0f)));
  return _mm512_fmadd_ps(hs, du, _mm512_fmadd_ps(SET1(0.5f), t, SET1(0.5f)));
}

static inline __m512 op16(int op, __m512 x, __m512 g) {
  __m512 r;
  switch (op) {
  case AMP__TANH_FWD: return nan_keep16(tanh16(x), x);
  case AMP__GELU_FWD: {
    __m512 hx = _mm512_mul_ps(SET1(0.5f), x);
    return nan_keep16(_mm512_fmadd_ps(hx, gelu_t16(x), hx), x);
  }
  case AMP__TANH_BWD: r = nan_keep16(_mm512_fnmadd_ps(x, x, SET1(1.0f)), x); break;
  default: r = nan_keep16(gelu_d16(x), x); break;
  }
  return nan_keep16(_mm512_mul_ps(g, r), g);
}

static inline void act_loop(int op, int dt, int gdt, size_t n, const void *v, const void *g,
                            void *y) {
  const int ydt = op <= AMP__GELU_FWD ? dt : gdt;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = amp__avx512_load16(v, dt, i);
    __m512 gv = op <= AMP__GELU_FWD ? x : amp__avx512_load16(g, dt, i);
    amp__avx512_store16(y, ydt, i, op16(op, x, gv));
  }
  if (i < n)
    amp__tanh_act_avx2(op, dt, gdt, n - i, amp__at(v, dt, i), g ? amp__at(g, dt, i) : NULL,
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

void amp__tanh_act_avx512(int op, int dt, int gdt, size_t n, const void *v, const void *g,
                          void *y) {
  switch (op) {
  case AMP__TANH_FWD: ACT_OP(AMP__TANH_FWD); break;
  case AMP__GELU_FWD: ACT_OP(AMP__GELU_FWD); break;
  case AMP__TANH_BWD: ACT_OP(AMP__TANH_BWD); break;
  default: ACT_OP(AMP__GELU_BWD); break;
  }
}
