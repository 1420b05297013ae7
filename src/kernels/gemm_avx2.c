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

#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Micro-tile MR × NR; a task covers up to MC × NC of C, with its packed A
 * (at most A_L2_BYTES) kept in L2; K is walked in near-equal blocks of at
 * most KC so that a block of a B sliver stays in L1. */
enum {
  MR = 6,
  NR = 16,
  MC = 144,
  NC = 512,
  KC = 1024,
  A_L2_BYTES = 640 << 10,
  SERIAL_FMAS = 1 << 21
};

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

/* pack_a with the dtype a compile-time constant in each instance, so the
 * loads need no per-element dispatch. */
static void pack_a(const amp__gemm_args *g, int64_t s, float *dst) {
  switch (g->a_type) {
  case AMP_F16: pack_a_dt(g, s, dst, AMP_F16); break;
  case AMP_BF16: pack_a_dt(g, s, dst, AMP_BF16); break;
  default: pack_a_dt(g, s, dst, AMP_F32); break;
  }
}

/* Packs sliver t of op(B) (columns t·NR ..) as K rows of NR values; columns
 * past n are zero. F16 data stays F16 (the micro-kernel widens it while it
 * loads, at no cost in FMA throughput: half the bytes to write and to
 * stream); F32 and BF16 are packed as F32. */
static inline __attribute__((always_inline)) void pack_b_dt(const amp__gemm_args *g, int64_t t,
                                                            void *dst, const int bdt) {
  const int64_t j0 = t * NR, nr = g->n - j0 < NR ? g->n - j0 : NR, K = g->k;
  const size_t ldb = (size_t)g->ldb;
  const int half = bdt == AMP_F16;
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
      for (; p + 8 <= K; p += 8) {
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
static void pack_b(const amp__gemm_args *g, int64_t t, void *dst) {
  switch (g->b_type) {
  case AMP_F16: pack_b_dt(g, t, dst, AMP_F16); break;
  case AMP_BF16: pack_b_dt(g, t, dst, AMP_BF16); break;
  default: pack_b_dt(g, t, dst, AMP_F32); break;
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
typedef void (*kernel_fn)(int64_t kc, const float *pa, const void *pb, float *tile, int load);
#define KERNEL(rows, half, name)                                                                   \
  static __attribute__((noinline)) void name(int64_t kc, const float *pa, const void *pb,          \
                                             float *tile, int load) {                              \
    kernel_rows(rows, half, kc, pa, pb, tile, load);                                               \
  }
KERNEL(6, 0, kernel_6x16)
KERNEL(4, 0, kernel_4x16)
KERNEL(2, 0, kernel_2x16)
KERNEL(6, 1, kernel_6x16h)
KERNEL(4, 1, kernel_4x16h)
KERNEL(2, 1, kernel_2x16h)
#undef KERNEL

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
  const __m256 alpha = _mm256_set1_ps(g->alpha), beta = _mm256_set1_ps(g->beta);
  const __m256 zero = _mm256_setzero_ps();
  __m256 bias[2] = {zero, zero};
  if (g->bias)
    for (int h = 0; h < 2; h++)
      bias[h] = amp__avx2_load8(g->bias, g->bias_type, (size_t)(j0 + 8 * h));
  for (int64_t r = 0; r < mr; r++) {
    for (int h = 0; h < 2; h++) {
      const size_t ci = (size_t)(i0 + r) * (size_t)g->ldc + (size_t)(j0 + 8 * h);
      __m256 v = _mm256_mul_ps(alpha, _mm256_load_ps(tile + r * NR + 8 * h));
      if (g->beta != 0.0f)
        v = _mm256_add_ps(v, _mm256_mul_ps(beta, amp__avx2_load8(g->c, g->c_type, ci)));
      if (g->bias) v = _mm256_add_ps(v, bias[h]);
      if (g->relu) v = _mm256_max_ps(zero, v);
      amp__avx2_store8(g->c, g->c_type, ci, v);
    }
  }
}

/* Asks for the C tile at (i0, j0) while the micro-kernel runs, when the
 * epilogue will read it (beta != 0: weight gradients accumulating into F32).
 * Rows of C are far apart, so the hardware does not fetch them ahead, and
 * the epilogue otherwise stalls on every row. */
static void prefetch_c(const amp__gemm_args *g, int64_t i0, int64_t rows, int64_t j0) {
  const size_t es = amp_dtype_size(g->c_type);
  const int64_t nr = g->n - j0 < NR ? g->n - j0 : NR;
  for (int64_t r = 0; r < rows; r++) {
    const char *row = (const char *)g->c + ((size_t)(i0 + r) * (size_t)g->ldc + (size_t)j0) * es;
    _mm_prefetch(row, _MM_HINT_T0);
    _mm_prefetch(row + (size_t)nr * es - 1, _MM_HINT_T0);
  }
}

/* Per-thread state of a GEMM call: the partial tiles of one B sliver between
 * K blocks, the thread's packed copy of one block of A slivers (and which
 * block it holds), and a buffer for a B sliver packed by its only user. */
typedef struct gemm_thread {
  float *acc, *pa, *bbuf;
  int64_t a_block;
} gemm_thread;

/* Shared packed B: each sliver is packed once, by the first task to need
 * it, while other tasks that need it wait (state 0 free, 1 packing, 2 done).
 * With one block of rows a sliver has one user, which packs it into its own
 * buffer (pb is NULL). */
typedef struct gemm_shared {
  float *pb;
  atomic_int *state;
} gemm_shared;

/* Bytes of one packed B value: F16 stays 16-bit, the rest is F32. */
static size_t b_packed_size(const amp__gemm_args *g) { return g->b_type == AMP_F16 ? 2 : 4; }

static const void *b_sliver(const amp__gemm_args *g, const gemm_shared *sh, gemm_thread *th,
                            int64_t t) {
  if (!sh->pb) {
    pack_b(g, t, th->bbuf);
    return th->bbuf;
  }
  char *dst = (char *)sh->pb + (size_t)(t * g->k) * NR * b_packed_size(g);
  int expect = 0;
  if (atomic_compare_exchange_strong(&sh->state[t], &expect, 1)) {
    pack_b(g, t, dst);
    atomic_store_explicit(&sh->state[t], 2, memory_order_release);
  } else {
    amp__wait_at_least(&sh->state[t], 2);
  }
  return dst;
}

/* One task: C rows of A slivers [s0, s1) of block bi × columns of B slivers
 * [t0, t1), each B sliver over all of K in kb blocks of kcl (the thread's
 * packed A block stays in its L2, a block of the B sliver in L1). A slivers
 * are packed by the thread that uses them, during its first pass over them,
 * so they never travel between cores. */
static void run_task(const amp__gemm_args *g, const gemm_shared *sh, gemm_thread *th, int64_t bi,
                     int64_t s0, int64_t s1, int64_t t0, int64_t t1, int64_t kb, int64_t kcl) {
  const int64_t K = g->k;
  const int pack = th->a_block != bi, half = g->b_type == AMP_F16;
  const size_t bsz = b_packed_size(g);
  const kernel_fn k6 = half ? kernel_6x16h : kernel_6x16, k4 = half ? kernel_4x16h : kernel_4x16,
                  k2 = half ? kernel_2x16h : kernel_2x16;
  th->a_block = bi;
  for (int64_t t = t0; t < t1; t++) {
    const char *pbt = b_sliver(g, sh, th, t);
    for (int64_t q = 0; q < kb; q++) {
      const int64_t p0 = q * kcl, kc = (p0 + kcl < K ? p0 + kcl : K) - p0;
      for (int64_t s = s0; s < s1; s++) {
        float *tile = th->acc + (size_t)(s - s0) * MR * NR;
        float *pas = th->pa + (size_t)((s - s0) * K) * MR;
        if (pack && t == t0 && q == 0) pack_a(g, s, pas);
        const char *pbs = pbt + (size_t)p0 * NR * bsz;
        int64_t i0, rows;
        sliver_rows(g->m, s, &i0, &rows);
        pas += (size_t)p0 * MR;
        if (q == kb - 1 && g->beta != 0.0f) prefetch_c(g, i0, rows, t * NR);
        (rows > 4 ? k6 : rows > 2 ? k4 : k2)(kc, pas, pbs, tile, q > 0);
        if (q == kb - 1) finish_tile(g, tile, i0, rows, t * NR);
      }
    }
  }
}

static size_t round16(size_t floats) { return (floats + 15) / 16 * 16; }

amp_status amp__gemm_avx2(amp_ctx *ctx, const amp__gemm_args *g) {
  const int64_t K = g->k, ms = ceil_div(g->m, MR), ns = ceil_div(g->n, NR);
  /* Below a few MFLOP, waking other threads costs more than it saves. */
  const int threads = (double)g->m * (double)g->n * (double)K < SERIAL_FMAS ? 1 : g->threads;
  /* Task grid: up to MC rows, fewer when K is long so that the task's packed
   * A stays in L2, × about NC columns; split N further when there are
   * fewer than four tasks per thread, so that threads can balance the load
   * (tasks are handed out dynamically). */
  int64_t mcs = A_L2_BYTES / (K * MR * (int64_t)sizeof(float));
  mcs = mcs < 1 ? 1 : mcs > MC / MR ? MC / MR : mcs;
  int64_t mb = ceil_div(ms, mcs), nb = ceil_div(ns, NC / NR);
  if (mb * nb < 4 * threads) nb = ceil_div(4 * threads, mb);
  if (nb > ns) nb = ns;
  const int64_t kb = ceil_div(K, KC), kcl = ceil_div(K, kb), block = ceil_div(ms, mb);
  /* With one block of rows every B sliver serves one task, which packs it
   * into its own buffer; otherwise B is packed once into a shared panel. */
  const int shared_b = mb > 1;

  /* One scratch block: [shared packed B, its states], then per thread the
   * tiles, the packed A block and [the B sliver buffer]; each part a
   * multiple of 16 floats, so 64-byte aligned. */
  const size_t pb_len = shared_b ? round16((size_t)(ns * K) * NR) : 0;
  const size_t st_len = shared_b ? round16((size_t)ns * sizeof(atomic_int) / sizeof(float) + 1) : 0;
  const size_t acc_len = (size_t)block * MR * NR, pa_len = round16((size_t)(block * K) * MR);
  const size_t bb_len = shared_b ? 0 : (size_t)K * NR;
  const size_t thread_len = acc_len + pa_len + bb_len;
  int shared_scratch;
  float *scratch = amp__scratch_get(
      ctx, (pb_len + st_len + (size_t)threads * thread_len) * sizeof(float), &shared_scratch);
  if (!scratch) {
    return amp__error(ctx, AMP_ERR_NOMEM,
                      "amp_gemm: out of memory for packed panels (m=%lld n=%lld k=%lld)",
                      (long long)g->m, (long long)g->n, (long long)K);
  }
  gemm_shared sh = {NULL, NULL};
  if (shared_b) {
    sh.pb = scratch;
    sh.state = (atomic_int *)(void *)(scratch + pb_len);
    for (int64_t t = 0; t < ns; t++) atomic_init(&sh.state[t], 0);
  }
  float *work = scratch + pb_len + st_len;
#pragma omp parallel num_threads(threads)
  {
#ifdef _OPENMP
    float *mine = work + (size_t)omp_get_thread_num() * thread_len;
#else
    float *mine = work;
#endif
    gemm_thread th = {mine, mine + acc_len, shared_b ? NULL : mine + acc_len + pa_len, -1};
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < mb * nb; task++) {
      const int64_t bi = task / nb, bj = task % nb;
      run_task(g, &sh, &th, bi, bi * ms / mb, (bi + 1) * ms / mb, bj * ns / nb, (bj + 1) * ns / nb,
               kb, kcl);
    }
  }
  amp__scratch_put(ctx, scratch, shared_scratch);
  return AMP_OK;
}
