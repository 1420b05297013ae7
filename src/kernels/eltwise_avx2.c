/* AVX2/F16C fast paths of the elementwise kernels and reductions, the
 * entries of amp__kernels_avx2. Each one gives the same bits as its scalar
 * reference (see kernels_internal.h): loads and stores are those of
 * dtype/simd_avx2.h, and tails run the scalar code. */
#include "kernels_internal.h"

#include "../dtype/dtype_inline.h"
#include "../dtype/simd_avx2.h"

#include <math.h>

/* Elementwise ops move 16 elements at a time. For BF16, load16 widens with
 * in-lane unpacks, so v0 holds elements 0-3, 8-11 and v1 holds 4-7, 12-15;
 * store16's in-lane pack puts them back in order. The permutation is
 * harmless for element-by-element work (never use these for reductions). */
static inline void load16(int dt, const void *p, size_t i, __m256 *v0, __m256 *v1) {
  if (dt == AMP_BF16) {
    __m256i x = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
    *v0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), x));
    *v1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), x));
  } else {
    *v0 = amp__avx2_load8(p, dt, i);
    *v1 = amp__avx2_load8(p, dt, i + 8);
  }
}

/* Rounds 16 values (in load16's order) to F16 or BF16 bits, in order. */
static inline __m256i pack16(int dt, __m256 v0, __m256 v1) {
  if (dt == AMP_F16)
    return _mm256_inserti128_si256(_mm256_castsi128_si256(amp__avx2_narrow8(AMP_F16, v0)),
                                   amp__avx2_narrow8(AMP_F16, v1), 1);
  /* in-lane pack of values <= 0xffff undoes load16's in-lane unpack */
  return _mm256_packus_epi32(amp__avx2_bf16_round(_mm256_castps_si256(v0)),
                             amp__avx2_bf16_round(_mm256_castps_si256(v1)));
}

static inline void store16(int dt, void *p, size_t i, __m256 v0, __m256 v1) {
  if (dt == AMP_F32) {
    _mm256_storeu_ps((float *)p + i, v0);
    _mm256_storeu_ps((float *)p + i + 8, v1);
  } else {
    _mm256_storeu_si256((__m256i *)((uint16_t *)p + i), pack16(dt, v0, v1));
  }
}

/* amp__nan_first: where a is NaN, the result is a, quieted. */
static inline __m256 nan_first8(__m256 r, __m256 a) {
  __m256 qa = _mm256_or_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x400000)));
  return _mm256_blendv_ps(r, qa, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}

static inline __m256 op8(int op, __m256 u, __m256 v, __m256 s) {
  switch (op) {
  case AMP__ADD: return nan_first8(_mm256_add_ps(u, v), u);
  case AMP__MUL: return nan_first8(_mm256_mul_ps(u, v), u);
  case AMP__SCALE: return _mm256_mul_ps(s, u); /* s is not NaN here */
  case AMP__RELU: return _mm256_max_ps(_mm256_setzero_ps(), u);
  default: return _mm256_and_ps(_mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_GT_OQ), v);
  }
}

/* The loop body is instantiated per (op, dtype) so that the switches fold. */
static inline void elt_loop(int op, int dt, size_t n, float s, const void *a, const void *b,
                            void *y) {
  const __m256 sv = _mm256_set1_ps(s);
  /* A NaN scale takes the scalar loop: amp__nan_first makes it the result. */
  const int vec = !(op == AMP__SCALE && s != s);
  size_t i = 0;
  for (; vec && i + 16 <= n; i += 16) {
    __m256 u0, u1, v0, v1;
    load16(dt, a, i, &u0, &u1);
    if (b)
      load16(dt, b, i, &v0, &v1);
    else
      v0 = u0, v1 = u1;
    store16(dt, y, i, op8(op, u0, v0, sv), op8(op, u1, v1, sv));
  }
  for (; i < n; i++) {
    float v = b ? amp__load_f32(b, dt, i) : 0.0f;
    amp__store_f32(y, dt, i, amp__elt_op(op, amp__load_f32(a, dt, i), v, s));
  }
}

#define ELT_DTYPES(op)                                                                             \
  switch (dt) {                                                                                    \
  case AMP_F16: elt_loop(op, AMP_F16, n, s, a, b, y); return;                                      \
  case AMP_BF16: elt_loop(op, AMP_BF16, n, s, a, b, y); return;                                    \
  default: elt_loop(op, AMP_F32, n, s, a, b, y); return;                                           \
  }

void amp__elt_avx2(int op, int dt, size_t n, float s, const void *a, const void *b, void *y) {
  switch (op) {
  case AMP__ADD: ELT_DTYPES(AMP__ADD);
  case AMP__MUL: ELT_DTYPES(AMP__MUL);
  case AMP__SCALE: ELT_DTYPES(AMP__SCALE);
  case AMP__RELU: ELT_DTYPES(AMP__RELU);
  default: ELT_DTYPES(AMP__RELU_BWD);
  }
}

/* The flag test runs on the stored bits (amp__dtype(dt)->inf_bits), which
 * is the same test as the reference's F32 threshold: a value reaches
 * amp__dtype(dt)->overflow_f32 exactly when its F16/BF16 rounding is inf or
 * NaN. The largest absolute bit pattern is tracked, and compared once at
 * the end. */
static inline int unscale_loop(int dt, size_t n, void *g, float s, int mul) {
  const __m256 sv = _mm256_set1_ps(s);
  __m256i big = _mm256_setzero_si256();
  const int vec = !(mul && s != s); /* NaN scale: scalar loop, as above */
  size_t i = 0;
  for (; vec && i + 16 <= n; i += 16) {
    if (dt == AMP_F32) {
      __m256 v0 = _mm256_loadu_ps((float *)g + i), v1 = _mm256_loadu_ps((float *)g + i + 8);
      if (mul) {
        v0 = _mm256_mul_ps(sv, v0);
        v1 = _mm256_mul_ps(sv, v1);
        store16(dt, g, i, v0, v1);
      }
      const __m256i absm = _mm256_set1_epi32(0x7fffffff);
      big = _mm256_max_epu32(big, _mm256_and_si256(_mm256_castps_si256(v0), absm));
      big = _mm256_max_epu32(big, _mm256_and_si256(_mm256_castps_si256(v1), absm));
    } else {
      __m256i h;
      if (mul) {
        __m256 v0, v1;
        load16(dt, g, i, &v0, &v1);
        h = pack16(dt, _mm256_mul_ps(sv, v0), _mm256_mul_ps(sv, v1));
        _mm256_storeu_si256((__m256i *)((uint16_t *)g + i), h);
      } else {
        h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)g + i));
      }
      big = _mm256_max_epu16(big, _mm256_and_si256(h, _mm256_set1_epi16(0x7fff)));
    }
  }
  /* lanes at or above the dtype's inf bits: max(big, thr) == big */
  const uint32_t inf = amp__dtype(dt)->inf_bits;
  __m256i hit = dt == AMP_F32
                    ? _mm256_cmpeq_epi32(_mm256_max_epu32(big, _mm256_set1_epi32((int)inf)), big)
                    : _mm256_cmpeq_epi16(_mm256_max_epu16(big, _mm256_set1_epi16((short)inf)), big);
  int found = !_mm256_testz_si256(hit, hit);
  if (i < n) found |= amp__unscale_scalar(dt, n - i, (void *)amp__at(g, dt, i), s, mul);
  return found;
}

int amp__unscale_avx2(int dt, size_t n, void *g, float s, int mul) {
  switch (dt) {
  case AMP_F16: return mul ? unscale_loop(AMP_F16, n, g, s, 1) : unscale_loop(AMP_F16, n, g, s, 0);
  case AMP_BF16:
    return mul ? unscale_loop(AMP_BF16, n, g, s, 1) : unscale_loop(AMP_BF16, n, g, s, 0);
  default: return mul ? unscale_loop(AMP_F32, n, g, s, 1) : unscale_loop(AMP_F32, n, g, s, 0);
  }
}

/* Lane-blocked chunk reductions: vector q, lane k holds partial 8q + k. */
static inline float reduce_loop(int dt, int is_max, size_t n, const void *x, int *nan) {
  const __m256 init = _mm256_set1_ps(is_max ? -INFINITY : 0.0f);
  __m256 acc0 = init, acc1 = init, acc2 = init, acc3 = init, un = _mm256_setzero_ps();
  size_t j = 0;
  for (; j + AMP__LANES <= n; j += AMP__LANES) {
    __m256 v0 = amp__avx2_load8(x, dt, j), v1 = amp__avx2_load8(x, dt, j + 8);
    __m256 v2 = amp__avx2_load8(x, dt, j + 16), v3 = amp__avx2_load8(x, dt, j + 24);
    if (is_max) {
      acc0 = _mm256_max_ps(acc0, v0);
      acc1 = _mm256_max_ps(acc1, v1);
      acc2 = _mm256_max_ps(acc2, v2);
      acc3 = _mm256_max_ps(acc3, v3);
      un = _mm256_or_ps(un, _mm256_or_ps(_mm256_cmp_ps(v0, v1, _CMP_UNORD_Q),
                                         _mm256_cmp_ps(v2, v3, _CMP_UNORD_Q)));
    } else {
      acc0 = _mm256_add_ps(acc0, v0);
      acc1 = _mm256_add_ps(acc1, v1);
      acc2 = _mm256_add_ps(acc2, v2);
      acc3 = _mm256_add_ps(acc3, v3);
    }
  }
  float p[AMP__LANES];
  _mm256_storeu_ps(p, acc0);
  _mm256_storeu_ps(p + 8, acc1);
  _mm256_storeu_ps(p + 16, acc2);
  _mm256_storeu_ps(p + 24, acc3);
  int isnan_ = _mm256_movemask_ps(un) != 0;
  for (; j < n; j++) {
    float v = amp__load_f32(x, dt, j);
    if (is_max) {
      isnan_ |= v != v;
      p[j % AMP__LANES] = amp__maxf(p[j % AMP__LANES], v);
    } else {
      p[j % AMP__LANES] += v;
    }
  }
  if (nan) *nan = isnan_;
  return amp__lane_tree(p, is_max);
}

float amp__sum_chunk_avx2(int dt, size_t n, const void *x) {
  switch (dt) {
  case AMP_F16: return reduce_loop(AMP_F16, 0, n, x, NULL);
  case AMP_BF16: return reduce_loop(AMP_BF16, 0, n, x, NULL);
  default: return reduce_loop(AMP_F32, 0, n, x, NULL);
  }
}

float amp__max_chunk_avx2(int dt, size_t n, const void *x, int *nan) {
  switch (dt) {
  case AMP_F16: return reduce_loop(AMP_F16, 1, n, x, nan);
  case AMP_BF16: return reduce_loop(AMP_BF16, 1, n, x, nan);
  default: return reduce_loop(AMP_F32, 1, n, x, nan);
  }
}

/* Column sums of a rows×cols block (row stride ld), each column added in row
 * order like the scalar reference; acc receives cols sums. */
void amp__sum_cols_avx2(int dt, int64_t rows, int64_t cols, int64_t ld, const void *x, float *acc) {
  int64_t c = 0;
  for (; c + 32 <= cols; c += 32) { /* four independent chains */
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t r = 0; r < rows; r++) {
      size_t i = (size_t)(r * ld + c);
      s0 = _mm256_add_ps(s0, amp__avx2_load8(x, dt, i));
      s1 = _mm256_add_ps(s1, amp__avx2_load8(x, dt, i + 8));
      s2 = _mm256_add_ps(s2, amp__avx2_load8(x, dt, i + 16));
      s3 = _mm256_add_ps(s3, amp__avx2_load8(x, dt, i + 24));
    }
    _mm256_storeu_ps(acc + c, s0);
    _mm256_storeu_ps(acc + c + 8, s1);
    _mm256_storeu_ps(acc + c + 16, s2);
    _mm256_storeu_ps(acc + c + 24, s3);
  }
  for (; c + 8 <= cols; c += 8) {
    __m256 s = _mm256_setzero_ps();
    for (int64_t r = 0; r < rows; r++)
      s = _mm256_add_ps(s, amp__avx2_load8(x, dt, (size_t)(r * ld + c)));
    _mm256_storeu_ps(acc + c, s);
  }
  for (; c < cols; c++) {
    float s = 0.0f;
    for (int64_t r = 0; r < rows; r++) s += amp__load_f32(x, dt, (size_t)(r * ld + c));
    acc[c] = s;
  }
}
