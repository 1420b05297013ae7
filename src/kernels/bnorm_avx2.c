/* AVX2/F16C paths of the BatchNorm2d kernels: the same F32 operations per
 * element as the scalar references (bnorm.c) and the same partial sums (a
 * partial is lane k of accumulator q for q·8 + k, see spatial_internal.h),
 * so the same bits. A segment's last hw % 32 elements go through a
 * zero-padded block of 32. */
#include "spatial_internal.h"

#include "../dtype/dtype_inline.h"
#include "../dtype/simd_avx2.h"

/* Instantiates call once per dtype (XT) when the dtypes agree. */
#define BN_SAME(t, call)                                                                           \
  switch (t) {                                                                                     \
  case AMP_F16: {                                                                                  \
    enum { XT = AMP_F16 };                                                                         \
    call;                                                                                          \
  } break;                                                                                         \
  case AMP_BF16: {                                                                                 \
    enum { XT = AMP_BF16 };                                                                        \
    call;                                                                                          \
  } break;                                                                                         \
  default: {                                                                                       \
    enum { XT = AMP_F32 };                                                                         \
    call;                                                                                          \
  } break;                                                                                         \
  }

static inline __m256 sq8(__m256 v, __m256 m, int sq) {
  if (!sq) return v;
  __m256 t = _mm256_sub_ps(v, m);
  return _mm256_mul_ps(t, t);
}

static inline float bn_sum_loop(int dt, int64_t n, int64_t hw, int64_t ld, const void *x, float m,
                                int sq) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < n; i++) {
    size_t at = (size_t)(i * ld);
    int64_t q = 0;
    for (; q + 32 <= hw; q += 32, at += 32) {
      a0 = _mm256_add_ps(a0, sq8(amp__avx2_load8(x, dt, at), mv, sq));
      a1 = _mm256_add_ps(a1, sq8(amp__avx2_load8(x, dt, at + 8), mv, sq));
      a2 = _mm256_add_ps(a2, sq8(amp__avx2_load8(x, dt, at + 16), mv, sq));
      a3 = _mm256_add_ps(a3, sq8(amp__avx2_load8(x, dt, at + 24), mv, sq));
    }
    if (q < hw) {
      float t[AMP__LANES] = {0};
      for (int64_t j = 0; j < hw - q; j++) {
        float v = amp__load_f32(x, dt, at + (size_t)j);
        if (sq) {
          float d = v - m;
          v = d * d;
        }
        t[j] = v;
      }
      a0 = _mm256_add_ps(a0, _mm256_loadu_ps(t));
      a1 = _mm256_add_ps(a1, _mm256_loadu_ps(t + 8));
      a2 = _mm256_add_ps(a2, _mm256_loadu_ps(t + 16));
      a3 = _mm256_add_ps(a3, _mm256_loadu_ps(t + 24));
    }
  }
  float p[AMP__LANES];
  _mm256_storeu_ps(p, a0);
  _mm256_storeu_ps(p + 8, a1);
  _mm256_storeu_ps(p + 16, a2);
  _mm256_storeu_ps(p + 24, a3);
  return amp__lane_tree(p, 0);
}

float amp__bn_sum_avx2(int dt, int64_t n, int64_t hw, int64_t ld, const void *x, float m, int sq) {
  float r = 0.0f;
  if (sq)
    BN_SAME(dt, r = bn_sum_loop(XT, n, hw, ld, x, m, 1))
  else
    BN_SAME(dt, r = bn_sum_loop(XT, n, hw, ld, x, m, 0))
  return r;
}

static inline void bn_apply_loop(int xt, int yt, int64_t n, int64_t hw, int64_t ld, const void *x,
                                 void *y, float mean, float rstd, float w, float b) {
  const __m256 mv = _mm256_set1_ps(mean), rv = _mm256_set1_ps(rstd), wv = _mm256_set1_ps(w),
               bv = _mm256_set1_ps(b);
  for (int64_t i = 0; i < n; i++) {
    size_t at = (size_t)(i * ld);
    int64_t q = 0;
    for (; q + 8 <= hw; q += 8, at += 8) {
      __m256 v = _mm256_mul_ps(_mm256_sub_ps(amp__avx2_load8(x, xt, at), mv), rv);
      amp__avx2_store8(y, yt, at, _mm256_add_ps(_mm256_mul_ps(v, wv), bv));
    }
    for (; q < hw; q++, at++)
      amp__store_f32(y, yt, at, (amp__load_f32(x, xt, at) - mean) * rstd * w + b);
  }
}

void amp__bn_apply_avx2(int xt, int yt, int64_t n, int64_t hw, int64_t ld, const void *x, void *y,
                        float mean, float rstd, float w, float b) {
  if (xt == yt)
    BN_SAME(xt, bn_apply_loop(XT, XT, n, hw, ld, x, y, mean, rstd, w, b))
  else
    bn_apply_loop(xt, yt, n, hw, ld, x, y, mean, rstd, w, b);
}

static inline void bn_bwd_sums_loop(int gt, int xt, int64_t n, int64_t hw, int64_t ld,
                                    const void *g, const void *x, float mean, float rstd, float *sg,
                                    float *sgx) {
  const __m256 mv = _mm256_set1_ps(mean), rv = _mm256_set1_ps(rstd);
  __m256 s[4], sx[4];
  for (int k = 0; k < 4; k++) s[k] = sx[k] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i++) {
    size_t at = (size_t)(i * ld);
    int64_t q = 0;
    for (; q + 32 <= hw; q += 32, at += 32)
      for (int k = 0; k < 4; k++) {
        __m256 gv = amp__avx2_load8(g, gt, at + 8 * (size_t)k);
        __m256 xh =
            _mm256_mul_ps(_mm256_sub_ps(amp__avx2_load8(x, xt, at + 8 * (size_t)k), mv), rv);
        s[k] = _mm256_add_ps(s[k], gv);
        sx[k] = _mm256_add_ps(sx[k], _mm256_mul_ps(gv, xh));
      }
    if (q < hw) {
      float t[AMP__LANES] = {0}, tx[AMP__LANES] = {0};
      for (int64_t j = 0; j < hw - q; j++) {
        float gv = amp__load_f32(g, gt, at + (size_t)j);
        t[j] = gv;
        tx[j] = gv * ((amp__load_f32(x, xt, at + (size_t)j) - mean) * rstd);
      }
      for (int k = 0; k < 4; k++) {
        s[k] = _mm256_add_ps(s[k], _mm256_loadu_ps(t + 8 * k));
        sx[k] = _mm256_add_ps(sx[k], _mm256_loadu_ps(tx + 8 * k));
      }
    }
  }
  float p[AMP__LANES], px[AMP__LANES];
  for (int k = 0; k < 4; k++) {
    _mm256_storeu_ps(p + 8 * k, s[k]);
    _mm256_storeu_ps(px + 8 * k, sx[k]);
  }
  *sg = amp__lane_tree(p, 0);
  *sgx = amp__lane_tree(px, 0);
}

void amp__bn_bwd_sums_avx2(int gt, int xt, int64_t n, int64_t hw, int64_t ld, const void *g,
                           const void *x, float mean, float rstd, float *sg, float *sgx) {
  if (gt == xt)
    BN_SAME(xt, bn_bwd_sums_loop(XT, XT, n, hw, ld, g, x, mean, rstd, sg, sgx))
  else
    bn_bwd_sums_loop(gt, xt, n, hw, ld, g, x, mean, rstd, sg, sgx);
}

static inline void bn_bwd_apply_loop(int gt, int xt, int dt, int64_t n, int64_t hw, int64_t ld,
                                     const void *g, const void *x, void *dx,
                                     const amp__bn_bwd_consts *c) {
  const __m256 mv = _mm256_set1_ps(c->mean), rv = _mm256_set1_ps(c->rstd),
               sv = _mm256_set1_ps(c->scale), mgv = _mm256_set1_ps(c->mg),
               mgxv = _mm256_set1_ps(c->mgx);
  const int training = c->training;
  for (int64_t i = 0; i < n; i++) {
    size_t at = (size_t)(i * ld);
    int64_t q = 0;
    for (; q + 8 <= hw; q += 8, at += 8) {
      __m256 gv = amp__avx2_load8(g, gt, at);
      if (training) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(amp__avx2_load8(x, xt, at), mv), rv);
        gv = _mm256_sub_ps(_mm256_sub_ps(gv, mgv), _mm256_mul_ps(xh, mgxv));
      }
      amp__avx2_store8(dx, dt, at, _mm256_mul_ps(sv, gv));
    }
    for (; q < hw; q++, at++) {
      float gv = amp__load_f32(g, gt, at);
      if (training) {
        float xh = (amp__load_f32(x, xt, at) - c->mean) * c->rstd;
        gv = gv - c->mg - xh * c->mgx;
      }
      amp__store_f32(dx, dt, at, c->scale * gv);
    }
  }
}

void amp__bn_bwd_apply_avx2(int gt, int xt, int dt, int64_t n, int64_t hw, int64_t ld,
                            const void *g, const void *x, void *dx, const amp__bn_bwd_consts *c) {
  if (gt == xt && xt == dt)
    BN_SAME(xt, bn_bwd_apply_loop(XT, XT, XT, n, hw, ld, g, x, dx, c))
  else
    bn_bwd_apply_loop(gt, xt, dt, n, hw, ld, g, x, dx, c);
}
