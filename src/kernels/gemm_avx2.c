/* AVX2/FMA GEMM: op(A) and op(B) are packed into slivers of MR rows (A,
 * widened to F32) and NR columns (B: F16 stays F16 and is widened as the
 * micro-kernel loads it, other dtypes are widened to F32) over the whole of
 * K, so the micro-kernel only does FMAs. Threads take tasks (blocks of
 * M × N) dynamically; each thread packs the A slivers of its task into its
 * own buffer (sized for L2 unless K is huge) as it first uses them, and each B sliver is packed
 * once, by the first task that needs it, into a panel the tasks share. Packing thus happens next to
 * the FMAs that consume it, in cache, and packed A never moves between cores. Every task runs all
 * of K, so every element is one FMA chain over k in order, whatever the thread count or blocking:
 * the result matches the scalar reference bit for bit. */
#include "gemm_internal.h"

#include "../dtype/simd_avx2.h"
#include "fp8_avx2.h"

#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Micro-tile MR × NR (wide kernels: MR × 2·NR); the task sizes and K blocks
 * come from the context's blocking (amp__gemm_blocking, derived from the
 * caches). Below SERIAL_FMAS multiply-adds one thread does the whole call
 * (waking the others costs more than it saves). */
enum { MR = AMP__GEMM_MR, NR = AMP__GEMM_NR, SERIAL_FMAS = 1 << 20 };
/* How far ahead (in values along K) the transposing B packers prefetch. */
enum { PF_B = 64 };

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* In-place transpose of an 8 × 8 block held as eight rows. */
static inline void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int q = 0; q < 8; q += 2) {
    t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
    t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
  }
  for (int q = 0; q < 8; q += 4) {
    s[q] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(1, 0, 1, 0));
    s[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(3, 2, 3, 2));
    s[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int q = 0; q < 4; q++) {
    r[q] = _mm256_permute2f128_ps(s[q], s[q + 4], 0x20);
    r[q + 4] = _mm256_permute2f128_ps(s[q], s[q + 4], 0x31);
  }
}

/* Stores the first six lanes of v (masked stores are slow on some cores). */
static inline void store6(float *dst, __m256 v) {
  _mm_storeu_ps(dst, _mm256_castps256_ps128(v));
  _mm_storel_pi((__m64 *)(dst + 4), _mm256_extractf128_ps(v, 1));
}

/* dst[q·ld_dst + r] = src[r·ld_src + q] for an 8 × 8 block of 16-bit values:
 * three rounds of interleaving (16-, 32-, then 64-bit pairs). */
static inline void transpose8x16(const uint16_t *src, size_t ld_src, uint16_t *dst, size_t ld_dst) {
  __m128i r[8], t[8], u[8];
  for (int q = 0; q < 8; q++) r[q] = _mm_loadu_si128((const __m128i *)(src + (size_t)q * ld_src));
  for (int q = 0; q < 8; q += 2) {
    t[q] = _mm_unpacklo_epi16(r[q], r[q + 1]);
    t[q + 1] = _mm_unpackhi_epi16(r[q], r[q + 1]);
  }
  for (int q = 0; q < 8; q += 4) {
    u[q] = _mm_unpacklo_epi32(t[q], t[q + 2]);
    u[q + 1] = _mm_unpackhi_epi32(t[q], t[q + 2]);
    u[q + 2] = _mm_unpacklo_epi32(t[q + 1], t[q + 3]);
    u[q + 3] = _mm_unpackhi_epi32(t[q + 1], t[q + 3]);
  }
  for (int q = 0; q < 4; q++) {
    _mm_store_si128((__m128i *)(dst + (size_t)(2 * q) * ld_dst),
                    _mm_unpacklo_epi64(u[q], u[q + 4]));
    _mm_store_si128((__m128i *)(dst + (size_t)(2 * q + 1) * ld_dst),
                    _mm_unpackhi_epi64(u[q], u[q + 4]));
  }
}

/* Rows [*i0, *i0 + *mr) of C that sliver s of op(A) covers: MR rows each,
 * except that a tail of 1 or 2 rows is merged with the sliver before it and
 * split as 4 + (tail + 2): the 4-row kernel keeps both FMA pipes busy, the
 * 2-row one is bound by FMA latency (m = 128 ran 10% slower with it). */
static void sliver_rows(int64_t m, int64_t s, int64_t *i0, int64_t *mr) {
  const int64_t q = m / MR, r = m % MR;
  if (q >= 1 && (r == 1 || r == 2) && s >= q - 1) {
    *i0 = (q - 1) * MR + (s == q ? 4 : 0);
    *mr = s == q ? r + 2 : 4;
  } else {
    *i0 = s * MR;
    *mr = m - *i0 < MR ? m - *i0 : MR;
  }
}

/* Packs sliver s of op(A) as K groups of MR floats; rows past the sliver's
 * are zero. */
static inline __attribute__((always_inline)) void pack_a_dt(const amp__gemm_args *g, int64_t s,
                                                            float *dst, const int adt) {
  int64_t i0, mr;
  sliver_rows(g->m, s, &i0, &mr);
  const int64_t K = g->k;
  const size_t lda = (size_t)g->lda;
  int64_t p = 0;
  if (!g->ta) { /* op(A)(i, p) = A[i·lda + p]: transpose 8-wide chunks of the rows */
    if (mr == MR) {
      for (; p + 8 <= K; p += 8) {
        __m256 r[8];
        for (int q = 0; q < MR; q++)
          r[q] = amp__avx2_load8(g->a, adt, (size_t)(i0 + q) * lda + (size_t)p);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8(r);
        for (int q = 0; q < 8; q++) store6(dst + (p + q) * MR, r[q]);
      }
    }
    for (; p < K; p++)
      for (int q = 0; q < MR; q++)
        dst[p * MR + q] =
            q < mr ? amp__load_f32(g->a, adt, (size_t)(i0 + q) * lda + (size_t)p) : 0.0f;
  } else { /* op(A)(i, p) = A[p·lda + i]: rows of A are contiguous here */
    if (mr == MR && i0 + 8 <= g->m)
      for (; p < K; p++)
        store6(dst + p * MR, amp__avx2_load8(g->a, adt, (size_t)p * lda + (size_t)i0));
    for (; p < K; p++)
      for (int q = 0; q < MR; q++)
        dst[p * MR + q] =
            q < mr ? amp__load_f32(g->a, adt, (size_t)p * lda + (size_t)(i0 + q)) : 0.0f;
  }
}

/* ---- FP8 operands: each element widened to code · block scale (the
 * value amp__gemm_fp8_at gives, with the same F32 multiplication) as it is
 * packed, so the packed panels hold what packing an F32 copy of the
 * dequantised operand would. fmt is a constant in each instance. ---- */

/* Scale row of stored row r (the scales of its row of blocks). */
static inline const float *fp8_srow(const amp__gemm_scales *f, int64_t r) {
  return f->scale_inv + (r / f->br) * f->nbc;
}

/* Whether stored columns c .. c + 7 lie in one block (*b, returns 1). */
static inline int fp8_one_block(const amp__gemm_scales *f, int64_t c, int64_t *b) {
  if (f->nbc == 1) {
    *b = 0;
    return 1;
  }
  *b = c / f->bc;
  return c + 8 <= (*b + 1) * f->bc;
}

/* The scales of stored columns c .. c + 7 in scale row srow (b, one: from
 * fp8_one_block). */
static inline __m256 fp8_scale8(const amp__gemm_scales *f, const float *srow, int64_t c, int64_t b,
                                int one) {
  if (one) return _mm256_set1_ps(srow[b]);
  float sc[8];
  for (int l = 0; l < 8; l++) sc[l] = srow[(c + l) / f->bc];
  return _mm256_loadu_ps(sc);
}

/* dst[l·stride] = stored (r, c0 + l) for l < len (the edges of slivers):
 * block by block, eight codes at a time (the last few through a zeroed
 * copy, so nothing past the segment is read). */
static inline __attribute__((always_inline)) void fp8_row_seg(const uint8_t *q, int64_t ld,
                                                              const amp__gemm_scales *f, int64_t r,
                                                              int64_t c0, int64_t len, float *dst,
                                                              int64_t stride, const int fmt) {
  const uint8_t *row = q + (size_t)r * (size_t)ld;
  const float *srow = fp8_srow(f, r);
  for (int64_t c = c0, end = c0 + len; c < end;) {
    const int64_t b = c / f->bc, bend = (b + 1) * f->bc < end ? (b + 1) * f->bc : end;
    const __m256 vs = _mm256_set1_ps(srow[b]);
    for (int64_t n8; c < bend; c += n8) {
      n8 = bend - c < 8 ? bend - c : 8;
      float *d = dst + (c - c0) * stride;
      __m256 v;
      if (n8 == 8) {
        v = amp__avx2_fp8_load8(fmt, row + c);
      } else {
        uint8_t t[8] = {0};
        for (int64_t l = 0; l < n8; l++) t[l] = row[c + l];
        v = amp__avx2_fp8_load8(fmt, t);
      }
      v = _mm256_mul_ps(v, vs);
      if (n8 == 8 && stride == 1) {
        _mm256_storeu_ps(d, v);
      } else {
        float o[8];
        _mm256_storeu_ps(o, v);
        for (int64_t l = 0; l < n8; l++) d[l * stride] = o[l];
      }
    }
  }
}

/* pack_a_dt for an FP8 A. */
static inline __attribute__((always_inline)) void pack_a_fp8(const amp__gemm_args *g, int64_t s,
                                                             float *dst, const int fmt) {
  int64_t i0, mr;
  sliver_rows(g->m, s, &i0, &mr);
  const int64_t K = g->k;
  const size_t lda = (size_t)g->lda;
  const uint8_t *a = g->a;
  const amp__gemm_scales *f = &g->a8;
  int64_t p = 0;
  if (!g->ta) { /* rows i0 .. i0 + mr of A: transpose 8-wide chunks (rows past mr: 0) */
    const float *srow[MR];
    for (int q = 0; q < mr; q++) srow[q] = fp8_srow(f, i0 + q);
    for (; p + 8 <= K; p += 8) {
      int64_t b;
      const int one = fp8_one_block(f, p, &b);
      __m256 r[8];
      for (int q = 0; q < MR; q++)
        r[q] = q < mr
                   ? _mm256_mul_ps(amp__avx2_fp8_load8(fmt, a + (size_t)(i0 + q) * lda + (size_t)p),
                                   fp8_scale8(f, srow[q], p, b, one))
                   : _mm256_setzero_ps();
      r[6] = r[7] = _mm256_setzero_ps();
      transpose8(r);
      for (int q = 0; q < 8; q++) store6(dst + (p + q) * MR, r[q]);
    }
    for (int q = 0; q < MR && p < K; q++) {
      if (q < mr)
        fp8_row_seg(a, g->lda, f, i0 + q, p, K - p, dst + p * MR + q, MR, fmt);
      else
        for (int64_t pp = p; pp < K; pp++) dst[pp * MR + q] = 0.0f;
    }
  } else { /* row p of A holds op(A)(i0 .., p) */
    if (mr == MR && i0 + 8 <= g->m) {
      int64_t b;
      const int one = fp8_one_block(f, i0, &b);
      for (int64_t rb = 0, next = f->br; p < K; p++) {
        if (p == next) rb++, next += f->br;
        store6(dst + p * MR,
               _mm256_mul_ps(amp__avx2_fp8_load8(fmt, a + (size_t)p * lda + (size_t)i0),
                             fp8_scale8(f, f->scale_inv + rb * f->nbc, i0, b, one)));
      }
    }
    for (; p < K; p++) {
      fp8_row_seg(a, g->lda, f, p, i0, mr, dst + p * MR, 1, fmt);
      for (int64_t q = mr; q < MR; q++) dst[p * MR + q] = 0.0f;
    }
  }
}

/* pack_b_dt for an FP8 B, packed as F32. */
static inline __attribute__((always_inline)) void pack_b_fp8(const amp__gemm_args *g, int64_t t,
                                                             float *df, const int fmt) {
  const int64_t j0 = t * NR, nr = g->n - j0 < NR ? g->n - j0 : NR, K = g->k;
  const size_t ldb = (size_t)g->ldb;
  const uint8_t *bq = g->b;
  const amp__gemm_scales *f = &g->b8;
  int64_t p = 0;
  if (!g->tb && nr == NR) { /* row p of B holds op(B)(p, j0 ..) */
    int64_t b0, b1;
    const int one0 = fp8_one_block(f, j0, &b0), one1 = fp8_one_block(f, j0 + 8, &b1);
    for (int64_t rb = 0, next = f->br; p < K; p++) {
      if (p == next) rb++, next += f->br;
      const float *srow = f->scale_inv + rb * f->nbc;
      const uint8_t *row = bq + (size_t)p * ldb + (size_t)j0;
      _mm256_store_ps(df + p * NR, _mm256_mul_ps(amp__avx2_fp8_load8(fmt, row),
                                                 fp8_scale8(f, srow, j0, b0, one0)));
      _mm256_store_ps(df + p * NR + 8, _mm256_mul_ps(amp__avx2_fp8_load8(fmt, row + 8),
                                                     fp8_scale8(f, srow, j0 + 8, b1, one1)));
    }
  } else if (!g->tb) { /* a partial sliver: nr columns of each row, then zeros */
    for (; p < K; p++) {
      fp8_row_seg(bq, g->ldb, f, p, j0, nr, df + p * NR, 1, fmt);
      for (int64_t q = nr; q < NR; q++) df[p * NR + q] = 0.0f;
    }
  } else { /* rows j0 .. j0 + nr of B: transpose 8 × 8 blocks (rows past nr: 0) */
    const float *srow[NR];
    for (int q = 0; q < nr; q++) srow[q] = fp8_srow(f, j0 + q);
    for (; p + 8 <= K; p += 8) {
      if (p % 64 == 0 && p + PF_B < K) /* as in pack_b_dt */
        for (int q = 0; q < nr; q++)
          _mm_prefetch((const char *)(bq + (size_t)(j0 + q) * ldb + (size_t)(p + PF_B)),
                       _MM_HINT_T0);
      int64_t b;
      const int one = fp8_one_block(f, p, &b);
      for (int h = 0; h < NR; h += 8) {
        __m256 r[8];
        for (int q = 0; q < 8; q++)
          r[q] = h + q < nr ? _mm256_mul_ps(amp__avx2_fp8_load8(
                                                fmt, bq + (size_t)(j0 + h + q) * ldb + (size_t)p),
                                            fp8_scale8(f, srow[h + q], p, b, one))
                            : _mm256_setzero_ps();
        transpose8(r);
        for (int q = 0; q < 8; q++) _mm256_store_ps(df + (p + q) * NR + h, r[q]);
      }
    }
    for (int q = 0; q < NR && p < K; q++) {
      if (q < nr)
        fp8_row_seg(bq, g->ldb, f, j0 + q, p, K - p, df + p * NR + q, NR, fmt);
      else
        for (int64_t pp = p; pp < K; pp++) df[pp * NR + q] = 0.0f;
    }
  }
}

/* pack_a with the dtype a compile-time constant in each instance, so the
 * loads need no per-element dispatch. */
static void pack_a(const amp__gemm_args *g, int64_t s, float *dst) {
  switch (g->a_type) {
  case AMP_E4M3: pack_a_fp8(g, s, dst, AMP_E4M3); break;
  case AMP_E5M2: pack_a_fp8(g, s, dst, AMP_E5M2); break;
  case AMP_F16: pack_a_dt(g, s, dst, AMP_F16); break;
  case AMP_BF16: pack_a_dt(g, s, dst, AMP_BF16); break;
  default: pack_a_dt(g, s, dst, AMP_F32); break;
  }
}

/* Packs sliver t of op(B) (columns t·NR ..) as K rows of NR values; columns
 * past n are zero. F16 data stays F16 (the micro-kernel widens it while it
 * loads, at no cost in FMA throughput: half the bytes to write and to
 * stream); F32 and BF16 are packed as F32. */
static inline __attribute__((always_inline)) void
pack_b_dt(const amp__gemm_args *g, int64_t t, void *dst, const int bdt, const int half) {
  const int64_t j0 = t * NR, nr = g->n - j0 < NR ? g->n - j0 : NR, K = g->k;
  const size_t ldb = (size_t)g->ldb;
  float *df = dst;
  uint16_t *dh = dst;
  int64_t p = 0;
  if (nr == NR) {
    if (!g->tb) { /* op(B)(p, j) = B[p·ldb + j] */
      for (; p < K; p++) {
        const size_t i = (size_t)p * ldb + (size_t)j0;
        if (half) {
          _mm256_store_si256((__m256i *)(dh + p * NR),
                             _mm256_loadu_si256((const __m256i *)((const uint16_t *)g->b + i)));
        } else {
          _mm256_store_ps(df + p * NR, amp__avx2_load8(g->b, bdt, i));
          _mm256_store_ps(df + p * NR + 8, amp__avx2_load8(g->b, bdt, i + 8));
        }
      }
    } else if (half) { /* transpose 8 × 8 blocks of 16-bit values as they are */
      const uint16_t *b16 = g->b;
      for (; p + 8 <= K; p += 8)
        for (int h = 0; h < NR; h += 8)
          transpose8x16(b16 + (size_t)(j0 + h) * ldb + (size_t)p, ldb, dh + p * NR + h, NR);
    } else { /* op(B)(p, j) = B[j·ldb + p]: transpose 8 × 8 blocks */
      const size_t es = amp_dtype_size(bdt);
      for (; p + 8 <= K; p += 8) {
        /* The sliver reads NR rows side by side, more streams than the
           hardware prefetchers follow: ask for each row's line PF_B ahead. */
        if ((p * (int64_t)es) % 64 == 0 && p + PF_B < K)
          for (int q = 0; q < NR; q++)
            _mm_prefetch((const char *)g->b + ((size_t)(j0 + q) * ldb + (size_t)(p + PF_B)) * es,
                         _MM_HINT_T0);
        for (int h = 0; h < NR; h += 8) {
          __m256 r[8];
          for (int q = 0; q < 8; q++)
            r[q] = amp__avx2_load8(g->b, bdt, (size_t)(j0 + h + q) * ldb + (size_t)p);
          transpose8(r);
          for (int q = 0; q < 8; q++) _mm256_store_ps(df + (p + q) * NR + h, r[q]);
        }
      }
    }
  }
  const size_t sp = g->tb ? 1 : ldb, sj = g->tb ? ldb : 1;
  for (; p < K; p++) {
    for (int q = 0; q < NR; q++) {
      const size_t i = (size_t)p * sp + (size_t)(j0 + q) * sj;
      if (half)
        dh[p * NR + q] = q < nr ? ((const uint16_t *)g->b)[i] : 0;
      else
        df[p * NR + q] = q < nr ? amp__load_f32(g->b, bdt, i) : 0.0f;
    }
  }
}

/* pack_b with the dtype a compile-time constant. */
static void pack_b(const amp__gemm_args *g, int64_t t, void *dst, int widen) {
  switch (g->b_type) {
  case AMP_E4M3: pack_b_fp8(g, t, dst, AMP_E4M3); break;
  case AMP_E5M2: pack_b_fp8(g, t, dst, AMP_E5M2); break;
  case AMP_F16:
    if (widen)
      pack_b_dt(g, t, dst, AMP_F16, 0);
    else
      pack_b_dt(g, t, dst, AMP_F16, 1);
    break;
  case AMP_BF16: pack_b_dt(g, t, dst, AMP_BF16, 0); break;
  default: pack_b_dt(g, t, dst, AMP_F32, 0); break;
  }
}

/* tile (MR × NR, row-major) = [tile if load, else 0] + pa·pb over kc steps,
 * each step one FMA per element, for the first `rows` rows (6, 4 or 2) with
 * pb F32 or F16 (`half`): compile-time constants in each instance below, so
 * unused rows vanish. The twelve accumulators are named so that they stay
 * in registers. */
#define KROW(r)                                                                                    \
  if (rows > (r)) {                                                                                \
    const __m256 a = _mm256_broadcast_ss(pa + (r));                                                \
    c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                                                     \
    c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                                                     \
  }
#define KLOAD(r)                                                                                   \
  __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = _mm256_setzero_ps();                             \
  if (load && rows > (r)) {                                                                        \
    c##r##0 = _mm256_load_ps(tile + (r)*NR);                                                       \
    c##r##1 = _mm256_load_ps(tile + (r)*NR + 8);                                                   \
  }
#define KSTORE(r)                                                                                  \
  if (rows > (r)) {                                                                                \
    _mm256_store_ps(tile + (r)*NR, c##r##0);                                                       \
    _mm256_store_ps(tile + (r)*NR + 8, c##r##1);                                                   \
  }

static inline __attribute__((always_inline)) void kernel_rows(const int rows, const int half,
                                                              int64_t kc, const float *pa,
                                                              const void *pbv, float *tile,
                                                              int load) {
  const float *pb = pbv;
  const uint16_t *ph = pbv;
  KLOAD(0)
  KLOAD(1)
  KLOAD(2)
  KLOAD(3)
  KLOAD(4)
  KLOAD(5)
  for (int64_t p = 0; p < kc; p++, pa += MR) {
    __m256 b0, b1;
    if (half) {
      b0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)ph));
      b1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(ph + 8)));
      ph += NR;
    } else {
      b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
      pb += NR;
    }
    KROW(0)
    KROW(1)
    KROW(2)
    KROW(3)
    KROW(4)
    KROW(5)
  }
  KSTORE(0)
  KSTORE(1)
  KSTORE(2)
  KSTORE(3)
  KSTORE(4)
  KSTORE(5)
}
#undef KROW
#undef KLOAD
#undef KSTORE

/* The instances stay out of line: inlined into the task loop, GCC runs out of
 * registers and reloads B from memory for every FMA. The 4- and 2-row ones
 * serve the last sliver of op(A) when m is short. */
#define KERNEL(rows, half, name)                                                                   \
  static __attribute__((noinline)) void name(int64_t kc, const float *pa, const void *pb,          \
                                             const void *unused, float *tile, int load) {          \
    (void)unused;                                                                                  \
    kernel_rows(rows, half, kc, pa, pb, tile, load);                                               \
  }
KERNEL(6, 0, kernel_6x16)
KERNEL(4, 0, kernel_4x16)
KERNEL(2, 0, kernel_2x16)
KERNEL(6, 1, kernel_6x16h)
KERNEL(4, 1, kernel_4x16h)
KERNEL(2, 1, kernel_2x16h)
#undef KERNEL

static const amp__gemm_ukernels avx2_f32 = {
    0, 0, 0, {{kernel_6x16, kernel_4x16, kernel_2x16}, {NULL, NULL, NULL}}, NULL};
static const amp__gemm_ukernels avx2_f16 = {
    0, 0, 0, {{kernel_6x16h, kernel_4x16h, kernel_2x16h}, {NULL, NULL, NULL}}, NULL};

/* BF16 pair packing (vdpbf16ps operands): the 16-bit values as stored. */
static inline uint16_t bf16_at(const amp__gemm_args *g, const void *base, int64_t r, int64_t c,
                               int64_t ld, int64_t rows, int64_t cols) {
  (void)g;
  return r < rows && c < cols ? ((const uint16_t *)base)[(size_t)r * (size_t)ld + (size_t)c] : 0;
}

/* Sliver s of op(A) as ceil(K/2) groups of MR words, word q of group p2
 * holding op(A)(i0 + q, 2·p2) in its low half and (.., 2·p2 + 1) in its high
 * half; zero past the sliver's rows and past K. */
static void pack_a_pairs(const amp__gemm_args *g, int64_t s, float *dstf) {
  int64_t i0, mr;
  sliver_rows(g->m, s, &i0, &mr);
  const int64_t K = g->k, kp = (K + 1) / 2;
  uint32_t *dst = (uint32_t *)(void *)dstf;
  const uint16_t *a = g->a;
  const size_t lda = (size_t)g->lda;
  int64_t p2 = 0;
  if (!g->ta && mr == MR) { /* pairs are adjacent in A's rows: transpose words */
    for (; 2 * (p2 + 8) <= K; p2 += 8) {
      __m256 r[8];
      for (int q = 0; q < MR; q++)
        r[q] = _mm256_loadu_ps(
            (const float *)(const void *)(a + (size_t)(i0 + q) * lda + (size_t)(2 * p2)));
      r[6] = r[7] = _mm256_setzero_ps();
      transpose8(r);
      for (int q = 0; q < 8; q++) store6(dstf + (p2 + q) * MR, r[q]);
    }
  } else if (g->ta && mr == MR && i0 + 8 <= g->m) { /* interleave rows 2·p2 and 2·p2 + 1 */
    for (; 2 * p2 + 2 <= K; p2++) {
      __m128i x = _mm_loadu_si128((const __m128i *)(a + (size_t)(2 * p2) * lda + (size_t)i0));
      __m128i y = _mm_loadu_si128((const __m128i *)(a + (size_t)(2 * p2 + 1) * lda + (size_t)i0));
      __m256 w =
          _mm256_castsi256_ps(_mm256_set_m128i(_mm_unpackhi_epi16(x, y), _mm_unpacklo_epi16(x, y)));
      store6(dstf + p2 * MR, w);
    }
  }
  for (; p2 < kp; p2++)
    for (int64_t q = 0; q < MR; q++) {
      const int64_t i = i0 + q, p = 2 * p2;
      uint32_t lo, hi;
      if (g->ta) {
        lo = q < mr ? bf16_at(g, a, p, i, g->lda, K, g->m) : 0;
        hi = q < mr ? bf16_at(g, a, p + 1, i, g->lda, K, g->m) : 0;
      } else {
        lo = q < mr ? bf16_at(g, a, i, p, g->lda, g->m, K) : 0;
        hi = q < mr ? bf16_at(g, a, i, p + 1, g->lda, g->m, K) : 0;
      }
      dst[p2 * MR + q] = lo | hi << 16;
    }
}

/* Sliver t of op(B) as ceil(K/2) rows of NR words, word j of row p2 holding
 * op(B)(2·p2, j0 + j) low and op(B)(2·p2 + 1, j0 + j) high; zero past n and
 * past K. */
static void pack_b_pairs(const amp__gemm_args *g, int64_t t, void *dstv) {
  const int64_t j0 = t * NR, nr = g->n - j0 < NR ? g->n - j0 : NR, K = g->k, kp = (K + 1) / 2;
  uint32_t *dst = dstv;
  const uint16_t *b = g->b;
  const size_t ldb = (size_t)g->ldb;
  int64_t p2 = 0;
  if (!g->tb && nr == NR) { /* interleave rows 2·p2 and 2·p2 + 1 of B */
    for (; 2 * p2 + 2 <= K; p2++) {
      __m256i x = _mm256_loadu_si256((const __m256i *)(b + (size_t)(2 * p2) * ldb + (size_t)j0));
      __m256i y =
          _mm256_loadu_si256((const __m256i *)(b + (size_t)(2 * p2 + 1) * ldb + (size_t)j0));
      __m256i lo = _mm256_unpacklo_epi16(x, y), hi = _mm256_unpackhi_epi16(x, y);
      _mm256_store_si256((__m256i *)(dst + p2 * NR), _mm256_permute2x128_si256(lo, hi, 0x20));
      _mm256_store_si256((__m256i *)(dst + p2 * NR + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
  } else if (g->tb && nr == NR) { /* pairs are adjacent in B's rows: transpose words */
    for (; 2 * (p2 + 8) <= K; p2 += 8) {
      if (2 * p2 + PF_B < K) /* as in pack_b_dt: each row's line PF_B values ahead */
        for (int q = 0; q < NR; q++)
          _mm_prefetch((const char *)(b + (size_t)(j0 + q) * ldb + (size_t)(2 * p2 + PF_B)),
                       _MM_HINT_T0);
      for (int h = 0; h < NR; h += 8) {
        __m256 r[8];
        for (int q = 0; q < 8; q++)
          r[q] = _mm256_loadu_ps(
              (const float *)(const void *)(b + (size_t)(j0 + h + q) * ldb + (size_t)(2 * p2)));
        transpose8(r);
        for (int q = 0; q < 8; q++)
          _mm256_store_ps((float *)(void *)(dst + (p2 + q) * NR + h), r[q]);
      }
    }
  }
  for (; p2 < kp; p2++)
    for (int64_t q = 0; q < NR; q++) {
      const int64_t j = j0 + q, p = 2 * p2;
      uint32_t lo, hi;
      if (g->tb) {
        lo = q < nr ? bf16_at(g, b, j, p, g->ldb, g->n, K) : 0;
        hi = q < nr ? bf16_at(g, b, j, p + 1, g->ldb, g->n, K) : 0;
      } else {
        lo = q < nr ? bf16_at(g, b, p, j, g->ldb, K, g->n) : 0;
        hi = q < nr ? bf16_at(g, b, p + 1, j, g->ldb, K, g->n) : 0;
      }
      dst[p2 * NR + q] = lo | hi << 16;
    }
}

/* The whole-tile epilogue with C's dtype a compile-time constant and the
 * call's flags in locals (stores through C could alias *g, which made the
 * compiler reload them for every vector). */
static inline __attribute__((always_inline)) void finish_whole(const amp__gemm_args *g,
                                                               const float *tile, int64_t i0,
                                                               int64_t mr, int64_t j0,
                                                               const int cdt) {
  const __m256 alpha = _mm256_set1_ps(g->alpha), beta = _mm256_set1_ps(g->beta);
  const __m256 zero = _mm256_setzero_ps();
  const int has_beta = g->beta != 0.0f, has_bias = g->bias != NULL, relu = g->relu;
  const size_t ldc = (size_t)g->ldc;
  void *const c = g->c;
  __m256 bias[2] = {zero, zero};
  if (has_bias)
    for (int h = 0; h < 2; h++)
      bias[h] = amp__avx2_load8(g->bias, g->bias_type, (size_t)(j0 + 8 * h));
  for (int64_t r = 0; r < mr; r++) {
    for (int h = 0; h < 2; h++) {
      const size_t ci = (size_t)(i0 + r) * ldc + (size_t)(j0 + 8 * h);
      __m256 v = _mm256_mul_ps(alpha, _mm256_load_ps(tile + r * NR + 8 * h));
      if (has_beta) v = _mm256_add_ps(v, _mm256_mul_ps(beta, amp__avx2_load8(c, cdt, ci)));
      if (has_bias) v = _mm256_add_ps(v, bias[h]);
      if (relu) v = _mm256_max_ps(zero, v);
      amp__avx2_store8(c, cdt, ci, v);
    }
  }
}

/* Writes the finished tile to C at (i0, j0): the operations of
 * amp__gemm_finish, eight columns at a time where the tile is whole. */
static void finish_tile(const amp__gemm_args *g, const float *tile, int64_t i0, int64_t mr,
                        int64_t j0) {
  const int64_t nr = g->n - j0 < NR ? g->n - j0 : NR;
  if (nr < NR) {
    for (int64_t r = 0; r < mr; r++)
      for (int64_t q = 0; q < nr; q++) amp__gemm_finish(g, i0 + r, j0 + q, tile[r * NR + q]);
    return;
  }
  switch (g->c_type) {
  case AMP_F16: finish_whole(g, tile, i0, mr, j0, AMP_F16); break;
  case AMP_BF16: finish_whole(g, tile, i0, mr, j0, AMP_BF16); break;
  default: finish_whole(g, tile, i0, mr, j0, AMP_F32); break;
  }
}

/* amp_epilogue's nonfinite: reads back C's rows [i0, i0 + rows) × columns
 * [j0, j0 + cols) (clipped to n), just written and still in L1, in C's
 * dtype, and notes an inf or NaN. x - x is +0 for every finite x and NaN
 * otherwise, so a sum of them is NaN exactly when one is. */
static void check_tile(const amp__gemm_args *g, int64_t i0, int64_t rows, int64_t j0,
                       int64_t cols) {
  const int64_t nc = g->n - j0 < cols ? g->n - j0 : cols;
  __m256 sum = _mm256_setzero_ps();
  int bad = 0;
  for (int64_t r = 0; r < rows; r++) {
    const size_t row = (size_t)(i0 + r) * (size_t)g->ldc + (size_t)j0;
    int64_t q = 0;
    for (; q + 8 <= nc; q += 8) {
      const __m256 v = amp__avx2_load8(g->c, g->c_type, row + (size_t)q);
      sum = _mm256_add_ps(sum, _mm256_sub_ps(v, v));
    }
    for (; q < nc; q++) bad |= !isfinite(amp__load_f32(g->c, g->c_type, row + (size_t)q));
  }
  bad |= _mm256_movemask_ps(_mm256_cmp_ps(sum, sum, _CMP_UNORD_Q)) != 0;
  if (bad) atomic_store_explicit(g->bad, 1, memory_order_relaxed);
}

/* Asks for the C tile at (i0, j0) while the micro-kernel runs. Rows of C
 * are far apart, so the hardware does not fetch them ahead, and the
 * epilogue otherwise stalls on every row: when it reads C (beta != 0,
 * weight gradients accumulating into F32) and also when it only writes it
 * (the stores' line fills; on Zen 4 the weight gradient's 1024 × 784 × 128,
 * beta = 0, ran 7-15% faster with it). */
static void prefetch_c(const amp__gemm_args *g, int64_t i0, int64_t rows, int64_t j0,
                       int64_t cols) {
  const size_t es = amp_dtype_size(g->c_type);
  const int64_t nr = g->n - j0 < cols ? g->n - j0 : cols;
  for (int64_t r = 0; r < rows; r++) {
    const char *row = (const char *)g->c + ((size_t)(i0 + r) * (size_t)g->ldc + (size_t)j0) * es;
    for (int64_t off = 0; off < nr * (int64_t)es; off += 64) _mm_prefetch(row + off, _MM_HINT_T0);
    _mm_prefetch(row + (size_t)nr * es - 1, _MM_HINT_T0);
  }
}

/* Per-thread state of a GEMM call: the partial tiles between K blocks, the
 * thread's packed copy of one block of A slivers (and which block it
 * holds), and buffers for B slivers packed by their only user. */
typedef struct gemm_thread {
  float *acc, *pa, *bbuf[2];
  int64_t a_block;
} gemm_thread;

/* One call's constants: the kernels, the packing, the shared packed B (each
 * sliver packed once, by the first task to need it, while other tasks that
 * need it wait: state 0 free, 1 packing, 2 done; with one block of rows a
 * sliver has one user, which packs it into its own buffer, and pb is
 * NULL), and the K blocking. */
typedef struct gemm_plan {
  const amp__gemm_ukernels *uk;
  float *pb;
  atomic_int *state;
  size_t b_sliver_bytes; /* one packed B sliver (all of K) */
  int64_t kb, kcl;       /* K blocks of kcl (even in pairs mode) */
} gemm_plan;

/* Bytes of one packed B value: F16 stays 16-bit, the rest is F32 (BF16
 * pairs: one 32-bit word per two values, at most as much). */
static size_t b_packed_size(const amp__gemm_args *g, const amp__gemm_ukernels *uk) {
  return g->b_type == AMP_F16 && !uk->widen_b ? 2 : 4;
}

static void pack_b_any(const amp__gemm_args *g, const gemm_plan *pl, int64_t t, void *dst) {
  if (pl->uk->pairs)
    pack_b_pairs(g, t, dst);
  else
    pack_b(g, t, dst, pl->uk->widen_b);
}

static const char *b_sliver(const amp__gemm_args *g, const gemm_plan *pl, gemm_thread *th,
                            int64_t t, int which) {
  if (!pl->pb) {
    pack_b_any(g, pl, t, th->bbuf[which]);
    return (const char *)th->bbuf[which];
  }
  char *dst = (char *)pl->pb + (size_t)t * pl->b_sliver_bytes;
  int expect = 0;
  if (atomic_compare_exchange_strong(&pl->state[t], &expect, 1)) {
    pack_b_any(g, pl, t, dst);
    atomic_store_explicit(&pl->state[t], 2, memory_order_release);
  } else {
    amp__wait_at_least(&pl->state[t], 2);
  }
  return dst;
}

/* One task: C rows of A slivers [s0, s1) of block bi × columns of B slivers
 * [t0, t1) (in pairs with wide kernels), each over all of K in kb blocks of
 * kcl (the thread's packed A block stays in its L2, a block of the B sliver
 * in L1). A slivers are packed by the thread that uses them, during its
 * first pass over them, so they never travel between cores. */
static void run_task(const amp__gemm_args *g, const gemm_plan *pl, gemm_thread *th, int64_t bi,
                     int64_t s0, int64_t s1, int64_t t0, int64_t t1) {
  const int64_t K = g->k, kb = pl->kb, kcl = pl->kcl;
  const int pack = th->a_block != bi, pairs = pl->uk->pairs, step = pl->uk->wide ? 2 : 1;
  /* Offsets of K position p0 in a packed A sliver (floats) and B (bytes). */
  const size_t a_per_k = pairs ? MR / 2 : MR,
               b_per_k = pairs ? NR * 2 : NR * b_packed_size(g, pl->uk);
  th->a_block = bi;
  for (int64_t t = t0; t < t1; t += step) {
    const int two = step == 2 && t + 1 < t1;
    const char *pb0 = b_sliver(g, pl, th, t, 0), *pb1 = two ? b_sliver(g, pl, th, t + 1, 1) : NULL;
    const amp__gemm_ukernel *kr = pl->uk->k[two];
    for (int64_t q = 0; q < kb; q++) {
      const int64_t p0 = q * kcl, kc = (p0 + kcl < K ? p0 + kcl : K) - p0;
      for (int64_t s = s0; s < s1; s++) {
        float *tile = th->acc + (size_t)(s - s0) * 2 * MR * NR;
        float *pas = th->pa + (size_t)((s - s0) * K) * MR;
        if (pack && t == t0 && q == 0) {
          if (pairs)
            pack_a_pairs(g, s, pas);
          else
            pack_a(g, s, pas);
        }
        int64_t i0, rows;
        sliver_rows(g->m, s, &i0, &rows);
        if (q == kb - 1) prefetch_c(g, i0, rows, t * NR, (two + 1) * NR);
        kr[rows > 4   ? 0
           : rows > 2 ? 1
                      : 2](pairs ? (kc + 1) / 2 : kc, pas + (size_t)p0 * a_per_k,
                           pb0 + (size_t)p0 * b_per_k, two ? pb1 + (size_t)p0 * b_per_k : NULL,
                           tile, q > 0);
        if (q == kb - 1) {
          if (!(pl->uk->finish && pl->uk->finish(g, tile, i0, rows, t * NR, (two + 1) * NR))) {
            finish_tile(g, tile, i0, rows, t * NR);
            if (two) finish_tile(g, tile + MR * NR, i0, rows, (t + 1) * NR);
          }
          if (g->bad) check_tile(g, i0, rows, t * NR, (two + 1) * NR);
        }
      }
    }
  }
}

static size_t round16(size_t floats) { return (floats + 15) / 16 * 16; }

/* The task grid: mb blocks of rows × nb blocks of columns. Blocks of rows
 * hold at most blk.mc rows and a packed A (all of K) of at most blk.a_l2
 * bytes; columns are split in about blk.nc, then further until there are
 * four tasks per thread (tasks are handed out dynamically, so threads
 * balance the load); a product too narrow for that (few B slivers: the
 * MLP's 128 × 10 × 1024, attention's per-head products) is split over its
 * rows as well. `unit` is the B slivers a kernel call covers (1 or 2). */
static void task_grid(const amp__gemm_args *g, int threads, int64_t unit, int64_t *mb,
                      int64_t *nb) {
  const int64_t K = g->k, ms = ceil_div(g->m, MR), nu = ceil_div(ceil_div(g->n, NR), unit);
  int64_t mcs = (int64_t)(g->blk.a_l2 / ((size_t)K * MR * sizeof(float)));
  const int64_t mc_cap = g->blk.mc / MR > 0 ? g->blk.mc / MR : 1;
  mcs = mcs < 1 ? 1 : mcs > mc_cap ? mc_cap : mcs;
  *mb = ceil_div(ms, mcs);
  *nb = ceil_div(nu, ceil_div(g->blk.nc, NR * unit));
  if (*mb * *nb < 4 * threads) *nb = ceil_div(4 * threads, *mb);
  if (*nb > nu) *nb = nu;
  if (threads > 1 && *mb * *nb < 2 * threads) {
    int64_t want = ceil_div(4 * threads, *nb);
    *mb = want > ms ? ms : want > *mb ? want : *mb;
  }
}

amp_status amp__gemm_avx_driver(amp_ctx *ctx, const amp__gemm_args *g,
                                const amp__gemm_ukernels *uk) {
  const int64_t K = g->k, ms = ceil_div(g->m, MR), ns = ceil_div(g->n, NR);
  const int64_t unit = uk->wide ? 2 : 1, nu = ceil_div(ns, unit);
  const int threads = (double)g->m * (double)g->n * (double)K < SERIAL_FMAS ? 1 : g->threads;
  int64_t mb, nb;
  task_grid(g, threads, unit, &mb, &nb);
  gemm_plan pl = {uk, NULL, NULL, (size_t)K * NR * b_packed_size(g, uk), 1, K};
  int64_t kc = g->blk.kc > 0 ? g->blk.kc : K;
  if (uk->pairs) kc += kc & 1;
  pl.kb = ceil_div(K, kc), pl.kcl = ceil_div(K, pl.kb);
  if (uk->pairs) pl.kcl += pl.kcl & 1;
  const int64_t block = ceil_div(ms, mb);
  /* With one block of rows every B sliver serves one task, which packs it
   * into its own buffer; otherwise B is packed once into a shared panel. */
  const int shared_b = mb > 1;

  /* One scratch block: [shared packed B, its states], then per thread the
   * tiles, the packed A block and [two B sliver buffers]; each part a
   * multiple of 16 floats, so 64-byte aligned. */
  const size_t sliver_len = round16(pl.b_sliver_bytes / sizeof(float));
  const size_t pb_len = shared_b ? (size_t)ns * sliver_len : 0;
  const size_t st_len = shared_b ? round16((size_t)ns * sizeof(atomic_int) / sizeof(float) + 1) : 0;
  const size_t acc_len = (size_t)block * 2 * MR * NR, pa_len = round16((size_t)(block * K) * MR);
  const size_t bb_len = shared_b ? 0 : 2 * sliver_len;
  const size_t thread_len = acc_len + pa_len + bb_len;
  int shared_scratch;
  float *scratch = amp__scratch_get(
      ctx, (pb_len + st_len + (size_t)threads * thread_len) * sizeof(float), &shared_scratch);
  if (!scratch) {
    return amp__error(ctx, AMP_ERR_NOMEM,
                      "amp_gemm: out of memory for packed panels (m=%lld n=%lld k=%lld)",
                      (long long)g->m, (long long)g->n, (long long)K);
  }
  if (shared_b) {
    pl.pb = scratch;
    pl.state = (atomic_int *)(void *)(scratch + pb_len);
    for (int64_t t = 0; t < ns; t++) atomic_init(&pl.state[t], 0);
  }
  float *work = scratch + pb_len + st_len;
#pragma omp parallel num_threads(threads)
  {
#ifdef _OPENMP
    float *mine = work + (size_t)omp_get_thread_num() * thread_len;
#else
    float *mine = work;
#endif
    float *bb = mine + acc_len + pa_len;
    gemm_thread th = {
        mine, mine + acc_len, {shared_b ? NULL : bb, shared_b ? NULL : bb + sliver_len}, -1};
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < mb * nb; task++) {
      const int64_t bi = task / nb, bj = task % nb;
      const int64_t u0 = bj * nu / nb, u1 = (bj + 1) * nu / nb;
      run_task(g, &pl, &th, bi, bi * ms / mb, (bi + 1) * ms / mb, u0 * unit,
               u1 * unit < ns ? u1 * unit : ns);
    }
  }
  amp__scratch_put(ctx, scratch, shared_scratch);
  return AMP_OK;
}

amp_status amp__gemm_avx2(amp_ctx *ctx, const amp__gemm_args *g) {
  return amp__gemm_avx_driver(ctx, g, g->b_type == AMP_F16 ? &avx2_f16 : &avx2_f32);
}
