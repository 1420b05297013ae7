/* AVX2 versions of the update rules: the same operations in the same order
 * as update.c (separate multiply and add, never fused), so the bits agree.
 * The last n % 8 elements run the scalar rule. */
#include "optim_internal.h"

#include "../dtype/convert_internal.h"
#include "../dtype/simd_avx2.h"

/* The F16 working copy of x (none when w16 is NULL or the copy is BF16).
 * F16 is one vcvtps2ph in the update's loop. BF16's integer rounding is a
 * dozen operations on the end of the loop's division chain: fused there it
 * added about 0.17 ms per 814k parameters (Zen 4, one core) to the Adam
 * update, as a second pass over the block just updated (still in L1, which
 * update8 makes) about 0.10 ms. */
static inline void store_work(uint16_t *w16, int wdt, int64_t i, __m256 x) {
  if (w16 && wdt == AMP_F16) amp__avx2_store8(w16, AMP_F16, (size_t)i, x);
}

/* The BF16 working copy of p[0, n), n a multiple of 8, rounded to nearest
 * even as amp_convert rounds. */
static void work_bf16(uint16_t *w16, int wdt, int64_t n, const float *p) {
  if (w16 && wdt == AMP_BF16) amp__cvt_f32_to_bf16_avx2(w16, p, (size_t)n, 0);
}

/* The leading multiple of 8 elements; returns how many were done. */
static int64_t update8(amp_optim_kind kind, const amp_optim_hyper *h, int64_t n, float *p,
                       const float *g, float *m, float *v, uint16_t *w16, int wdt) {
  const int64_t n8 = n & ~(int64_t)7;
  const __m256 gmul = _mm256_set1_ps(h->gmul), wd = _mm256_set1_ps(h->wd);
  const __m256 neg_lr = _mm256_set1_ps(-h->lr);
  if (kind == AMP_OPTIM_SGD) {
    const __m256 mom = _mm256_set1_ps(h->momentum), damp = _mm256_set1_ps(1.0f - h->dampening);
    for (int64_t i = 0; i < n8; i += 8) {
      __m256 x = _mm256_loadu_ps(p + i);
      __m256 d = _mm256_mul_ps(_mm256_loadu_ps(g + i), gmul);
      if (h->wd != 0) d = _mm256_add_ps(d, _mm256_mul_ps(wd, x));
      if (m) {
        __m256 b = h->first ? d
                            : _mm256_add_ps(_mm256_mul_ps(mom, _mm256_loadu_ps(m + i)),
                                            _mm256_mul_ps(damp, d));
        _mm256_storeu_ps(m + i, b);
        d = h->nesterov ? _mm256_add_ps(d, _mm256_mul_ps(mom, b)) : b;
      }
      x = _mm256_add_ps(x, _mm256_mul_ps(neg_lr, d));
      _mm256_storeu_ps(p + i, x);
      store_work(w16, wdt, i, x);
    }
    work_bf16(w16, wdt, n8, p);
    return n8;
  }
  const int decoupled = kind == AMP_OPTIM_ADAMW;
  const __m256 c1 = _mm256_set1_ps(1.0f - h->beta1), c2 = _mm256_set1_ps(1.0f - h->beta2);
  const __m256 b2 = _mm256_set1_ps(h->beta2), shrink = _mm256_set1_ps(1.0f - h->lr * h->wd);
  const __m256 bc2 = _mm256_set1_ps(h->bc2_sqrt), eps = _mm256_set1_ps(h->eps);
  const __m256 neg_step = _mm256_set1_ps(-(h->lr / h->bc1));
  for (int64_t i = 0; i < n8; i += 8) {
    __m256 d = _mm256_mul_ps(_mm256_loadu_ps(g + i), gmul), x = _mm256_loadu_ps(p + i);
    if (h->wd != 0) {
      if (decoupled)
        x = _mm256_mul_ps(x, shrink);
      else
        d = _mm256_add_ps(d, _mm256_mul_ps(wd, x));
    }
    __m256 mi = _mm256_loadu_ps(m + i);
    mi = _mm256_add_ps(mi, _mm256_mul_ps(c1, _mm256_sub_ps(d, mi)));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2),
                              _mm256_mul_ps(_mm256_mul_ps(c2, d), d));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
    x = _mm256_add_ps(x, _mm256_mul_ps(neg_step, _mm256_div_ps(mi, denom)));
    _mm256_storeu_ps(p + i, x);
    store_work(w16, wdt, i, x);
  }
  work_bf16(w16, wdt, n8, p);
  return n8;
}

void amp__optim_update_avx2(amp_optim_kind kind, const amp_optim_hyper *h, int64_t n, float *p,
                            const float *g, float *m, float *v, uint16_t *w16, int wdt) {
  const int64_t d = update8(kind, h, n, p, g, m, v, w16, wdt);
  if (d < n)
    amp__optim_update_scalar(kind, h, n - d, p + d, g + d, m ? m + d : NULL, v ? v + d : NULL,
                             w16 ? w16 + d : NULL, wdt);
}
