/* AVX2/FMA versions of the layer norm and masked softmax row kernels: the
 * 16 partials of a row reduction (norm_internal.h) are two 8-lane
 * registers, lo = partials 0-7 and hi = 8-15; a row's last d % 16 elements
 * are loaded into zero-padded registers (+0 leaves a partial unchanged), and
 * the elementwise parts repeat the scalar formula lane by lane, so every
 * result has the scalar reference's bits. */
#include "exp_avx2.h"
#include "kernels_internal.h"
#include "norm_internal.h"

#include "../dtype/simd_avx2.h"

#define SET1 _mm256_set1_ps

/* The tree of amp__row_tree on lo (partials 0-7) and hi (8-15). */
static inline float tree16(__m256 lo, __m256 hi, int is_max) {
  __m256 v = is_max ? _mm256_max_ps(lo, hi) : _mm256_add_ps(lo, hi);
  __m128 a = _mm256_castps256_ps128(v), b = _mm256_extractf128_ps(v, 1);
  a = is_max ? _mm_max_ps(a, b) : _mm_add_ps(a, b);
  b = _mm_movehl_ps(a, a);
  a = is_max ? _mm_max_ps(a, b) : _mm_add_ps(a, b);
  b = _mm_shuffle_ps(a, a, 1);
  a = is_max ? _mm_max_ss(a, b) : _mm_add_ss(a, b);
  return _mm_cvtss_f32(a);
}

/* Elements i .. i+cnt-1 (cnt <= 16) of p as F32, zero beyond cnt. */
static inline __attribute__((always_inline)) void load16z(int dt, const void *p, size_t i,
                                                          size_t cnt, __m256 *lo, __m256 *hi) {
  if (cnt == 16) {
    *lo = amp__avx2_load8(p, dt, i);
    *hi = amp__avx2_load8(p, dt, i + 8);
    return;
  }
  float buf[16] = {0};
  for (size_t j = 0; j < cnt; j++) buf[j] = amp__load_f32(p, dt, i + j);
  *lo = _mm256_loadu_ps(buf);
  *hi = _mm256_loadu_ps(buf + 8);
}

/* 1 = the lanes of a 16-wide block that are below cnt. */
static inline __m256 mask8(size_t cnt, size_t off) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i lim = _mm256_set1_epi32((int)cnt - (int)off);
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(lim, idx));
}

static void ln_fwd_row(const amp__ln_args *a, int64_t r) {
  const size_t d = a->d, o = (size_t)r * d;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  for (size_t j = 0; j < d; j += 16) {
    __m256 x0, x1;
    load16z(a->xdt, a->x, o + j, d - j < 16 ? d - j : 16, &x0, &x1);
    s0 = _mm256_add_ps(s0, x0);
    s1 = _mm256_add_ps(s1, x1);
  }
  const float mean = tree16(s0, s1, 0) / (float)d;
  const __m256 mv = SET1(mean);
  __m256 q0 = _mm256_setzero_ps(), q1 = q0;
  for (size_t j = 0; j < d; j += 16) {
    size_t cnt = d - j < 16 ? d - j : 16;
    __m256 x0, x1;
    load16z(a->xdt, a->x, o + j, cnt, &x0, &x1);
    __m256 t0 = _mm256_and_ps(_mm256_sub_ps(x0, mv), mask8(cnt, 0));
    __m256 t1 = _mm256_and_ps(_mm256_sub_ps(x1, mv), mask8(cnt, 8));
    q0 = _mm256_fmadd_ps(t0, t0, q0);
    q1 = _mm256_fmadd_ps(t1, t1, q1);
  }
  const float rstd = 1.0f / sqrtf(tree16(q0, q1, 0) / (float)d + a->eps);
  a->stat[2 * r] = mean;
  a->stat[2 * r + 1] = rstd;
  const __m256 rv = SET1(rstd);
  size_t j = 0;
  for (; j + 8 <= d; j += 8) {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(amp__avx2_load8(a->x, a->xdt, o + j), mv), rv);
    if (a->w && a->b)
      v = _mm256_fmadd_ps(v, amp__avx2_load8(a->w, a->wdt, j), amp__avx2_load8(a->b, a->bdt, j));
    else if (a->w)
      v = _mm256_mul_ps(v, amp__avx2_load8(a->w, a->wdt, j));
    else if (a->b)
      v = _mm256_add_ps(v, amp__avx2_load8(a->b, a->bdt, j));
    amp__avx2_store8(a->y, a->ydt, o + j, v);
  }
  for (; j < d; j++) {
    float v = (amp__load_f32(a->x, a->xdt, o + j) - mean) * rstd;
    if (a->w && a->b)
      v = fmaf(v, amp__load_f32(a->w, a->wdt, j), amp__load_f32(a->b, a->bdt, j));
    else if (a->w)
      v = v * amp__load_f32(a->w, a->wdt, j);
    else if (a->b)
      v = v + amp__load_f32(a->b, a->bdt, j);
    amp__store_f32(a->y, a->ydt, o + j, v);
  }
}

void amp__ln_fwd_avx2(const amp__ln_args *a, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) ln_fwd_row(a, r);
}

/* ĝ = g·w of 16 elements from j (zero beyond cnt), and x̂. */
static inline void ghat16(const amp__ln_args *a, size_t o, size_t j, size_t cnt, __m256 mv,
                          __m256 rv, __m256 gh[2], __m256 xh[2]) {
  __m256 x[2], w[2];
  load16z(a->gdt, a->g, o + j, cnt, &gh[0], &gh[1]);
  load16z(a->xdt, a->x, o + j, cnt, &x[0], &x[1]);
  if (a->w) load16z(a->wdt, a->w, j, cnt, &w[0], &w[1]);
  for (int h = 0; h < 2; h++) {
    xh[h] = _mm256_and_ps(_mm256_mul_ps(_mm256_sub_ps(x[h], mv), rv), mask8(cnt, 8 * (size_t)h));
    if (a->w) gh[h] = _mm256_mul_ps(gh[h], w[h]);
  }
}

static void ln_bwd_row(const amp__ln_args *a, int64_t r) {
  const size_t d = a->d, o = (size_t)r * d;
  const float mean = a->stat[2 * r], rstd = a->stat[2 * r + 1];
  const __m256 mv = SET1(mean), rv = SET1(rstd);
  __m256 p0 = _mm256_setzero_ps(), p1 = p0, q0 = p0, q1 = p0;
  for (size_t j = 0; j < d; j += 16) {
    __m256 gh[2], xh[2];
    ghat16(a, o, j, d - j < 16 ? d - j : 16, mv, rv, gh, xh);
    p0 = _mm256_add_ps(p0, gh[0]);
    p1 = _mm256_add_ps(p1, gh[1]);
    q0 = _mm256_fmadd_ps(gh[0], xh[0], q0);
    q1 = _mm256_fmadd_ps(gh[1], xh[1], q1);
  }
  const float m1 = tree16(p0, p1, 0) / (float)d, m2 = tree16(q0, q1, 0) / (float)d;
  const __m256 m1v = SET1(m1), m2v = SET1(m2);
  size_t j = 0;
  for (; j + 8 <= d; j += 8) {
    __m256 xh = _mm256_mul_ps(_mm256_sub_ps(amp__avx2_load8(a->x, a->xdt, o + j), mv), rv);
    __m256 gh = amp__avx2_load8(a->g, a->gdt, o + j);
    if (a->w) gh = _mm256_mul_ps(gh, amp__avx2_load8(a->w, a->wdt, j));
    __m256 v = _mm256_mul_ps(rv, _mm256_fnmadd_ps(xh, m2v, _mm256_sub_ps(gh, m1v)));
    if (a->acc) v = _mm256_add_ps(_mm256_loadu_ps((const float *)a->dx + o + j), v);
    amp__avx2_store8(a->dx, a->dxdt, o + j, v);
  }
  for (; j < d; j++) {
    float xh = (amp__load_f32(a->x, a->xdt, o + j) - mean) * rstd;
    float gh = amp__load_f32(a->g, a->gdt, o + j);
    if (a->w) gh = gh * amp__load_f32(a->w, a->wdt, j);
    float v = rstd * fmaf(-xh, m2, gh - m1);
    if (a->acc) v = ((float *)a->dx)[o + j] + v;
    amp__store_f32(a->dx, a->dxdt, o + j, v);
  }
}

void amp__ln_bwd_avx2(const amp__ln_args *a, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) ln_bwd_row(a, r);
}

void amp__ln_wb_avx2(const amp__ln_args *a, int64_t rows) {
  const size_t d = a->d, d8 = d / 8 * 8;
  for (int64_t r = 0; r < rows; r++) {
    size_t o = (size_t)r * d;
    float mean = a->stat[2 * r], rstd = a->stat[2 * r + 1];
    const __m256 mv = SET1(mean), rv = SET1(rstd);
    for (size_t j = 0; j < d8; j += 8) {
      __m256 gv = amp__avx2_load8(a->g, a->gdt, o + j);
      __m256 xh = _mm256_mul_ps(_mm256_sub_ps(amp__avx2_load8(a->x, a->xdt, o + j), mv), rv);
      if (a->dw) _mm256_storeu_ps(a->dw + j, _mm256_fmadd_ps(gv, xh, _mm256_loadu_ps(a->dw + j)));
      if (a->db) _mm256_storeu_ps(a->db + j, _mm256_add_ps(_mm256_loadu_ps(a->db + j), gv));
    }
    for (size_t j = d8; j < d; j++) {
      float gv = amp__load_f32(a->g, a->gdt, o + j);
      float xh = (amp__load_f32(a->x, a->xdt, o + j) - mean) * rstd;
      if (a->dw) a->dw[j] = fmaf(gv, xh, a->dw[j]);
      if (a->db) a->db[j] = a->db[j] + gv;
    }
  }
}

/* amp__exp_any_ref on eight lanes. */
static inline __m256 exp_any8(__m256 w) {
  __m256 e = amp__exp8_avx2(_mm256_max_ps(w, SET1(AMP__EXP_MIN)));
  e = _mm256_andnot_ps(_mm256_cmp_ps(w, SET1(AMP__EXP_MIN), _CMP_LT_OQ), e);
  __m256 qw = _mm256_or_ps(w, _mm256_castsi256_ps(_mm256_set1_epi32(0x400000)));
  return _mm256_blendv_ps(e, qw, _mm256_cmp_ps(w, w, _CMP_UNORD_Q));
}

void amp__softmax_row_avx2(float *row, size_t lim, size_t t) {
  __m256 m0 = SET1(-INFINITY), m1 = m0, bad = _mm256_setzero_ps();
  for (size_t j = 0; j < lim; j += 16) {
    size_t cnt = lim - j < 16 ? lim - j : 16;
    __m256 x0, x1;
    load16z(AMP_F32, row, j, cnt, &x0, &x1);
    __m256 k0 = mask8(cnt, 0), k1 = mask8(cnt, 8);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(x0, x0, _CMP_UNORD_Q));
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(x1, x1, _CMP_UNORD_Q));
    /* padding lanes keep their partial: max(x, m) = m where x = -inf */
    x0 = _mm256_blendv_ps(SET1(-INFINITY), x0, k0);
    x1 = _mm256_blendv_ps(SET1(-INFINITY), x1, k1);
    m0 = _mm256_max_ps(x0, m0);
    m1 = _mm256_max_ps(x1, m1);
  }
  const float mx = tree16(m0, m1, 1);
  const __m256 mv = SET1(mx);
  __m256 p0 = _mm256_setzero_ps(), p1 = p0;
  for (size_t j = 0; j < lim; j += 16) {
    size_t cnt = lim - j < 16 ? lim - j : 16;
    __m256 x0, x1;
    load16z(AMP_F32, row, j, cnt, &x0, &x1);
    __m256 e0 = _mm256_and_ps(exp_any8(_mm256_sub_ps(x0, mv)), mask8(cnt, 0));
    __m256 e1 = _mm256_and_ps(exp_any8(_mm256_sub_ps(x1, mv)), mask8(cnt, 8));
    p0 = _mm256_add_ps(p0, e0);
    p1 = _mm256_add_ps(p1, e1);
    if (cnt == 16) {
      _mm256_storeu_ps(row + j, e0);
      _mm256_storeu_ps(row + j + 8, e1);
    } else {
      float buf[16];
      _mm256_storeu_ps(buf, e0);
      _mm256_storeu_ps(buf + 8, e1);
      memcpy(row + j, buf, cnt * sizeof(float));
    }
  }
  const float sum = tree16(p0, p1, 0), inv = 1.0f / sum;
  int nan = _mm256_movemask_ps(bad) != 0 || sum != sum;
  size_t j = 0;
  const __m256 iv = SET1(inv);
  for (; !nan && j + 8 <= lim; j += 8)
    _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), iv));
  for (; j < lim; j++) row[j] = nan ? NAN : row[j] * inv;
  for (j = lim; j < t; j++) row[j] = 0.0f;
}
