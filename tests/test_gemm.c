/* amp_gemm: against an FP64 computation of the same widened inputs, the fast
 * path against the scalar reference (bit for bit), thread-count independence,
 * k == 0, the epilogue and argument errors. */
#include "check.h"

#include "ampc.h"
#include "core/internal.h"
#include "dtype/dtype_inline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rng_u32(void) {
  rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
  return (uint32_t)(rng_state >> 33);
}

/* Uniform in [-1, 1). */
static float rng_f(void) { return (float)rng_u32() / 1073741824.0f - 1.0f; }

static const amp_dtype dtypes[3] = {AMP_F32, AMP_F16, AMP_BF16};

/* Unit roundoff of storing into dtype t. */
static double unit_roundoff(amp_dtype t) {
  return t == AMP_F16 ? 0x1p-11 : t == AMP_BF16 ? 0x1p-8 : 0x1p-24;
}

/* A buffer of `count` random values of dtype t in [-1, 1). */
static void *rand_buf(amp_dtype t, size_t count) {
  void *p = malloc(count * amp_dtype_size(t) + 1);
  for (size_t i = 0; i < count; i++) amp__store_f32(p, t, i, rng_f());
  return p;
}

typedef struct gemm_case {
  amp_trans ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  amp_dtype at, bt, ct;
  float alpha, beta;
  int bias, relu;
  amp_dtype bias_t;
} gemm_case;

/* 1 while the fast ctx under test may use the BF16 dot-product kernel:
 * BF16 × BF16 cases are then checked against FP64 with its error bound
 * instead of bit for bit against the scalar reference. */
static int dot_mode;

/* Runs one case with the fast path (default ctx), the scalar reference
 * (a ctx with the scalar kernel table) and FP64, and checks them. */
static void run_case(const gemm_case *t, amp_ctx *fast, amp_ctx *ref) {
  const int64_t ar = t->ta ? t->k : t->m, br = t->tb ? t->n : t->k;
  size_t a_count = (size_t)(ar * t->lda), b_count = (size_t)(br * t->ldb);
  size_t c_count = (size_t)(t->m * t->ldc), csz = amp_dtype_size(t->ct);
  void *a = rand_buf(t->at, a_count), *b = rand_buf(t->bt, b_count);
  void *bias = t->bias ? rand_buf(t->bias_t, (size_t)t->n) : NULL;
  void *c0 = rand_buf(t->ct, c_count);
  if (t->beta == 0.0f) /* beta == 0 must not read C: poison the m × n part */
    for (int64_t i = 0; i < t->m; i++)
      for (int64_t j = 0; j < t->n; j++) amp__store_f32(c0, t->ct, (size_t)(i * t->ldc + j), NAN);
  void *c1 = malloc(c_count * csz), *c2 = malloc(c_count * csz);
  memcpy(c1, c0, c_count * csz);
  memcpy(c2, c0, c_count * csz);
  amp_epilogue ep = {.bias = bias, .bias_dtype = t->bias_t, .relu = t->relu};
  const amp_epilogue *epp = (t->bias || t->relu) ? &ep : NULL;
  amp_status s1 = amp_gemm(fast, t->ta, t->tb, t->m, t->n, t->k, t->alpha, a, t->at, t->lda, b,
                           t->bt, t->ldb, t->beta, c1, t->ct, t->ldc, epp);
  amp_status s2 = amp_gemm(ref, t->ta, t->tb, t->m, t->n, t->k, t->alpha, a, t->at, t->lda, b,
                           t->bt, t->ldb, t->beta, c2, t->ct, t->ldc, epp);
  char desc[160];
  snprintf(desc, sizeof desc, "m=%lld n=%lld k=%lld ta=%d tb=%d a=%s b=%s c=%s al=%g be=%g ep=%d%d",
           (long long)t->m, (long long)t->n, (long long)t->k, t->ta, t->tb, amp_dtype_name(t->at),
           amp_dtype_name(t->bt), amp_dtype_name(t->ct), t->alpha, t->beta, t->bias, t->relu);
  CHECK(s1 == AMP_OK && s2 == AMP_OK, "%s: status %d %d", desc, s1, s2);
  const int dot = dot_mode && t->at == AMP_BF16 && t->bt == AMP_BF16;
  CHECK(dot || memcmp(c1, c2, c_count * csz) == 0, "%s: fast path differs from the reference",
        desc);
  int bad = 0;
  for (int64_t i = 0; i < t->m && bad < 3; i++) {
    for (int64_t j = 0; j < t->ldc && bad < 3; j++) {
      size_t ci = (size_t)(i * t->ldc + j);
      float got = amp__load_f32(c1, t->ct, ci);
      if (j >= t->n) { /* padding past n is never written */
        if (memcmp((char *)c1 + ci * csz, (char *)c0 + ci * csz, csz) != 0) bad++;
        continue;
      }
      double sum = 0, mag = 0, mag1 = 0;
      for (int64_t p = 0; p < t->k; p++) {
        double av = amp__load_f32(a, t->at, (size_t)(t->ta ? p * t->lda + i : i * t->lda + p));
        double bv = amp__load_f32(b, t->bt, (size_t)(t->tb ? j * t->ldb + p : p * t->ldb + j));
        sum += av * bv;
        mag += fabs(av * bv);
        mag1 += fabs(av) + fabs(bv);
      }
      /* gamma_k·sum|a·b| (k <= 257, so k·u/(1 - k·u) < 1.01·k·u): the bound
       * of both the FMA chain and the dot kernel's pairwise sums, which
       * also flush subnormals (2^-126 per rounding and per input). */
      double want = t->alpha * sum, tol = fabs(t->alpha) * mag * (double)t->k * 0x1p-24 * 1.01;
      if (dot) tol += fabs(t->alpha) * 0x1p-126 * ((double)t->k + mag1);
      if (t->beta != 0.0f) {
        double cv = amp__load_f32(c0, t->ct, ci);
        want += t->beta * cv;
        tol += fabs(t->beta * cv) * 0x1p-23;
      }
      if (t->bias) want += amp__load_f32(bias, t->bias_t, (size_t)j);
      if (t->relu && want < 0) want = 0;
      tol += fabs(want) * 0x1p-23 + (fabs(want) + tol) * unit_roundoff(t->ct) + 0x1p-24;
      if (!(fabs(got - want) <= tol)) {
        bad++;
        CHECK(0, "%s: C(%lld,%lld) = %.9g, want %.9g (tol %.3g)", desc, (long long)i, (long long)j,
              got, want, tol);
      }
    }
  }
  CHECK(bad == 0, "%s: %d bad elements", desc, bad);
  free(a), free(b), free(bias), free(c0), free(c1), free(c2);
}

static const int64_t sizes[8] = {1, 2, 7, 8, 16, 33, 100, 257};

/* Every dtype combination and transpose pair, sampled shapes, alpha, beta,
 * leading dimensions and epilogues. */
static void test_sampled(amp_ctx *fast, amp_ctx *ref) {
  const float alphas[3] = {1.0f, -0.5f, 2.0f}, betas[3] = {0.0f, 1.0f, -1.5f};
  int runs = 0;
  for (int combo = 0; combo < 27 * 4; combo++) {
    for (int rep = 0; rep < 2; rep++) {
      gemm_case t;
      do {
        t.m = sizes[rng_u32() % 8], t.n = sizes[rng_u32() % 8], t.k = sizes[rng_u32() % 8];
      } while (t.m * t.n * t.k > 400000);
      t.ta = (amp_trans)(combo & 1), t.tb = (amp_trans)((combo >> 1) & 1);
      t.at = dtypes[(combo / 4) % 3], t.bt = dtypes[(combo / 12) % 3], t.ct = dtypes[combo / 36];
      t.lda = (t.ta ? t.m : t.k) + (rep ? (int64_t)(rng_u32() % 5) : 0);
      t.ldb = (t.tb ? t.k : t.n) + (rep ? (int64_t)(rng_u32() % 5) : 0);
      t.ldc = t.n + (rep ? (int64_t)(rng_u32() % 5) : 0);
      t.alpha = alphas[rng_u32() % 3], t.beta = betas[rng_u32() % 3];
      t.bias = rng_u32() % 2, t.relu = rng_u32() % 2, t.bias_t = dtypes[rng_u32() % 3];
      run_case(&t, fast, ref);
      runs++;
    }
  }
  /* Larger shapes: several M, N and K blocks (K past 1024), odd edges. */
  const gemm_case big[] = {
      {AMP_NO_TRANS, AMP_NO_TRANS, 257, 257, 257, 257, 257, 257, AMP_F32, AMP_F32, AMP_F32, 1, 0, 0,
       0, AMP_F32},
      {AMP_TRANS, AMP_TRANS, 150, 33, 600, 151, 601, 40, AMP_F16, AMP_BF16, AMP_F16, 1, 1, 1, 1,
       AMP_F16},
      {AMP_NO_TRANS, AMP_TRANS, 128, 200, 784, 784, 784, 200, AMP_F16, AMP_F16, AMP_F32, 1, 0, 1, 1,
       AMP_F32},
      {AMP_TRANS, AMP_NO_TRANS, 200, 100, 128, 200, 100, 100, AMP_BF16, AMP_F32, AMP_BF16, -1,
       -1.5f, 0, 0, AMP_F32},
      {AMP_NO_TRANS, AMP_TRANS, 40, 50, 2100, 2100, 2100, 50, AMP_BF16, AMP_F16, AMP_F32, 0.5f, 1,
       1, 0, AMP_BF16},
      {AMP_TRANS, AMP_NO_TRANS, 160, 20, 1300, 160, 20, 20, AMP_F32, AMP_F32, AMP_F16, 1, 0, 0, 1,
       AMP_F32},
      /* One block of rows (tasks pack their own B, K block by K block),
       * whole slivers and a partial one, without and with transpose. */
      {AMP_NO_TRANS, AMP_NO_TRANS, 100, 250, 700, 703, 251, 250, AMP_F16, AMP_F32, AMP_F32, 1, 1, 1,
       1, AMP_F16},
      {AMP_NO_TRANS, AMP_NO_TRANS, 64, 256, 1030, 1030, 256, 256, AMP_F32, AMP_F16, AMP_F32, 1, 0,
       0, 0, AMP_F32},
      {AMP_NO_TRANS, AMP_TRANS, 70, 90, 530, 530, 531, 91, AMP_F32, AMP_F32, AMP_BF16, 1, 0, 0, 1,
       AMP_F32},
  };
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) run_case(&big[i], fast, ref);
  CHECK(runs == 216, "runs %d", runs);
}

/* beta == 1 accumulates into an F32 C: two calls give AB + AB exactly when
 * AB is exact (small integers). */
static void test_accumulate(amp_ctx *fast) {
  enum { M = 13, N = 21, K = 40 };
  float a[M * K], b[K * N], c[M * N];
  for (int i = 0; i < M * K; i++) a[i] = (float)(int)(rng_u32() % 7) - 3;
  for (int i = 0; i < K * N; i++) b[i] = (float)(int)(rng_u32() % 7) - 3;
  for (int i = 0; i < M * N; i++) c[i] = 0.5f;
  for (int r = 0; r < 2; r++)
    amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, M, N, K, 1, a, AMP_F32, K, b, AMP_F32, N, 1, c,
             AMP_F32, N, NULL);
  int bad = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int p = 0; p < K; p++) s += (double)a[i * K + p] * b[p * N + j];
      bad += c[i * N + j] != (float)(0.5 + 2 * s);
    }
  CHECK(bad == 0, "beta=1 accumulation: %d wrong", bad);
}

/* k == 0: C = beta·C, then the epilogue; beta == 0 ignores NaN in C. */
static void test_k0(amp_ctx *ctx) {
  float c[6] = {1, -2, 3, NAN, NAN, NAN}, bias[3] = {0.5f, 0.5f, -10};
  float a[1] = {1}, b[1] = {1};
  amp_epilogue ep = {.bias = bias, .bias_dtype = AMP_F32, .relu = 1};
  CHECK(amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, 1, 3, 0, 1, a, AMP_F32, 1, b, AMP_F32, 3, 2, c,
                 AMP_F32, 3, NULL) == AMP_OK,
        "k=0 ok");
  CHECK(c[0] == 2 && c[1] == -4 && c[2] == 6 && isnan(c[3]), "k=0 beta=2: %g %g %g", c[0], c[1],
        c[2]);
  CHECK(amp_gemm(ctx, AMP_NO_TRANS, AMP_NO_TRANS, 2, 3, 0, 1, a, AMP_F32, 1, b, AMP_F32, 3, 0, c,
                 AMP_F32, 3, &ep) == AMP_OK,
        "k=0 epilogue ok");
  CHECK(c[0] == 0.5f && c[1] == 0.5f && c[2] == 0 && c[3] == 0.5f && c[5] == 0,
        "k=0 beta=0 bias relu: %g %g %g %g", c[0], c[1], c[2], c[3]);
}

/* amp_epilogue.nonfinite: 0 for a finite C, 1 for an inf or NaN at every
 * position (whole and partial tiles, so every branch of the read-back),
 * from C itself (beta = 1), from an operand, from the rounding to an F16 C
 * (finite in F32), and on the k = 0 path; beta = 0 ignores a NaN in C. */
static void test_nonfinite(amp_ctx *fast) {
  enum { M = 13, N = 37, K = 40 };
  static float a[M * K], b[K * N], c[M * N];
  uint16_t c16[M * N];
  for (int i = 0; i < M * K; i++) a[i] = (float)(int)(rng_u32() % 7) - 3;
  for (int i = 0; i < K * N; i++) b[i] = (float)(int)(rng_u32() % 7) - 3;
  int nf = 7, missed = 0, wrong = 0;
  amp_epilogue ep = {.nonfinite = &nf};
  for (int i = 0; i < M * N; i++) c[i] = 0.25f;
  CHECK(amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, M, N, K, 1, a, AMP_F32, K, b, AMP_F32, N, 1, c,
                 AMP_F32, N, &ep) == AMP_OK &&
            nf == 0,
        "finite C: nonfinite %d", nf);
  for (int pos = 0; pos < M * N; pos++) {
    for (int i = 0; i < M * N; i++) c[i] = 0.25f;
    c[pos] = pos % 2 ? NAN : -INFINITY;
    nf = 0;
    amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, M, N, K, 1, a, AMP_F32, K, b, AMP_F32, N, 1, c,
             AMP_F32, N, &ep);
    missed += nf != 1;
    c[pos] = NAN;
    nf = 7;
    amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, M, N, K, 1, a, AMP_F32, K, b, AMP_F32, N, 0, c,
             AMP_F32, N, &ep); /* beta = 0: the NaN is overwritten */
    wrong += nf != 0;
  }
  CHECK(missed == 0 && wrong == 0, "C's inf/NaN: %d positions missed, %d beta=0 flagged", missed,
        wrong);
  a[5 * K + 3] = INFINITY; /* row 5 of C */
  nf = 0;
  amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, M, N, K, 1, a, AMP_F32, K, b, AMP_F32, N, 0, c,
           AMP_F32, N, &ep); /* row 5 of C: inf times b's values */
  CHECK(nf == 1, "an inf in A: nonfinite %d", nf);
  a[5 * K + 3] = 1;
  for (int i = 0; i < M * K; i++) a[i] = 300.0f;
  for (int i = 0; i < K * N; i++) b[i] = i == 7 ? 300.0f : 0.0f; /* C(:, 7) = 90000 */
  nf = 0;
  amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, M, N, K, 1, a, AMP_F32, K, b, AMP_F32, N, 0, c16,
           AMP_F16, N, &ep);
  CHECK(nf == 1, "90000 rounded to F16 is inf: nonfinite %d", nf);
  nf = 7;
  amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, M, N, K, 1, a, AMP_F32, K, b, AMP_F32, N, 0, c,
           AMP_F32, N, &ep);
  CHECK(nf == 0 && c[7] == 90000.0f, "the same in F32 is finite: nonfinite %d", nf);
  c[3] = NAN;
  nf = 0;
  amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, 1, 4, 0, 1, a, AMP_F32, 1, b, AMP_F32, 4, 1, c,
           AMP_F32, 4, &ep);
  CHECK(nf == 1, "k = 0, a NaN kept by beta = 1: nonfinite %d", nf);
  nf = 7;
  amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, 1, 4, 0, 1, a, AMP_F32, 1, b, AMP_F32, 4, 0, c,
           AMP_F32, 4, &ep);
  CHECK(nf == 0, "k = 0, beta = 0: nonfinite %d", nf);
  /* Large enough for both threads, several K blocks and whole tiles of
     every kernel: a NaN in C at a corner, inside, and at the last element. */
  enum { BM = 300, BN = 200, BK = 600 };
  float *ba = malloc(sizeof(float) * BM * BK), *bb = malloc(sizeof(float) * BK * BN),
        *bc = malloc(sizeof(float) * BM * BN);
  for (int i = 0; i < BM * BK; i++) ba[i] = (float)(int)(rng_u32() % 5) - 2;
  for (int i = 0; i < BK * BN; i++) bb[i] = (float)(int)(rng_u32() % 5) - 2;
  const int where[4] = {-1, 0, 151 * BN + 97, BM * BN - 1};
  for (int w = 0; w < 4; w++) {
    for (int i = 0; i < BM * BN; i++) bc[i] = 1;
    if (where[w] >= 0) bc[where[w]] = NAN;
    nf = 7;
    amp_gemm(fast, AMP_NO_TRANS, AMP_NO_TRANS, BM, BN, BK, 1, ba, AMP_F32, BK, bb, AMP_F32, BN, 1,
             bc, AMP_F32, BN, &ep);
    CHECK(nf == (where[w] >= 0), "300x200x600, NaN at %d: nonfinite %d", where[w], nf);
  }
  free(ba), free(bb), free(bc);
}

/* Blockings (MC, KC, NC) that split the same problem very differently: tiny
 * K blocks (odd and even), one K block, many and few tasks. */
static const amp__gemm_blocking blockings[4] = {{6, 16, 32, 1 << 20, 1},
                                                {60, 101, 64, 1 << 20, 1},
                                                {240, 4096, 8192, 1 << 30, 1},
                                                {12, 7, 16, 1 << 14, 1}};

/* The same large problem (several blocks of rows, so tasks share packed B
 * slivers) with 1 and 2 threads and with every blocking above gives the
 * same bits, and they are the scalar reference's (the dot kernel's own, when
 * `dot`: F16 B packed as F16 (plain and transposed), F32 B, BF16 × BF16. */
static void test_threads(const amp__kernels *table, int dot) {
  amp_ctx_params p1 = {.threads = 1, .bf16_dot = dot ? 1 : -1};
  amp_ctx_params p2 = {.threads = 2, .bf16_dot = dot ? 1 : -1};
  amp_ctx *c1 = amp_ctx_create(&p1), *c2 = amp_ctx_create(&p2), *cr = amp_ctx_create(&p1);
  CHECK(amp__ctx_set_kernels(c1, table) && amp__ctx_set_kernels(c2, table), "table %s",
        table->name);
  CHECK(amp__ctx_set_kernels(cr, &amp__kernels_scalar), "the scalar kernel table");
  enum { M = 300, N = 517, K = 263 };
  for (int v = 0; v < 4; v++) {
    amp_dtype at = v == 1 || v == 3 ? AMP_BF16 : v == 2 ? AMP_F32 : AMP_F16;
    amp_dtype bt = v == 2 ? AMP_F32 : v == 3 ? AMP_BF16 : AMP_F16, ct = v == 1 ? AMP_BF16 : AMP_F32;
    void *a = rand_buf(at, (size_t)M * K), *b = rand_buf(bt, (size_t)K * N);
    void *x = rand_buf(ct, (size_t)M * N);
    size_t bytes = (size_t)M * N * amp_dtype_size(ct);
    void *y = malloc(bytes), *z = malloc(bytes), *x0 = malloc(bytes), *w = malloc(bytes);
    memcpy(y, x, bytes);
    memcpy(z, x, bytes);
    memcpy(x0, x, bytes);
    amp_trans tb = v ? AMP_TRANS : AMP_NO_TRANS;
    int64_t ldb = v ? K : N;
    amp_gemm(c1, AMP_NO_TRANS, tb, M, N, K, 0.75f, a, at, K, b, bt, ldb, 1, x, ct, N, NULL);
    amp_gemm(c2, AMP_NO_TRANS, tb, M, N, K, 0.75f, a, at, K, b, bt, ldb, 1, y, ct, N, NULL);
    amp_gemm(cr, AMP_NO_TRANS, tb, M, N, K, 0.75f, a, at, K, b, bt, ldb, 1, z, ct, N, NULL);
    if (!dot || v != 3)
      CHECK(memcmp(y, z, bytes) == 0, "%s: 2 threads vs the scalar reference differ (variant %d)",
            table->name, v);
    else /* the dot kernel ran: its pairwise sums round differently somewhere */
      CHECK(memcmp(y, z, bytes) != 0, "%s: the BF16 dot kernel gave the FMA chain's bits",
            table->name);
    CHECK(memcmp(x, y, bytes) == 0, "%s: 1 vs 2 threads differ (variant %d)", table->name, v);
    for (int bl = 0; bl < (table == &amp__kernels_scalar ? 0 : 4); bl++) {
      c2->gemm_blk = blockings[bl];
      memcpy(w, x0, bytes); /* beta = 1: the same C to start from */
      amp_gemm(c2, AMP_NO_TRANS, tb, M, N, K, 0.75f, a, at, K, b, bt, ldb, 1, w, ct, N, NULL);
      CHECK(memcmp(w, y, bytes) == 0, "%s: blocking %d,%d,%d changes bits (variant %d)",
            table->name, blockings[bl].mc, blockings[bl].kc, blockings[bl].nc, v);
    }
    amp__gemm_blocking_for(table, &c2->gemm_blk);
    free(a), free(b), free(x), free(y), free(z), free(x0), free(w);
  }
  amp_ctx_free(c1);
  amp_ctx_free(c2);
  amp_ctx_free(cr);
}

/* The context's scratch buffer is reused between calls and grown when a
 * call needs more; a second user while it is taken gets its own memory. */
static void test_scratch(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  int sp, sq;
  char *p = amp__scratch_get(ctx, 1000, &sp);
  CHECK(p && ((uintptr_t)p & 63) == 0, "scratch 64-byte aligned");
  memset(p, 1, 1000);
  char *q = amp__scratch_get(ctx, 10, &sq); /* p is still taken */
  CHECK(q && q != p && ((uintptr_t)q & 63) == 0, "busy scratch gives separate memory");
  memset(q, 2, 10);
  CHECK(sp == 1 && sq == 0, "only the first user gets the shared buffer");
  amp__scratch_put(ctx, q, sq);
  amp__scratch_put(ctx, p, sp);
  CHECK(amp__scratch_get(ctx, 500, &sp) == p && sp, "released scratch is reused");
  amp__scratch_put(ctx, p, sp);
  char *r = amp__scratch_get(ctx, 1 << 20, &sp);
  CHECK(r != NULL && sp, "scratch grows");
  memset(r, 3, 1 << 20);
  amp__scratch_put(ctx, r, sp);
  char *n = amp__scratch_get(NULL, 100, &sp); /* no context: plain allocation */
  CHECK(n != NULL && !sp, "scratch without a context");
  amp__scratch_put(NULL, n, sp);
  amp_ctx_free(ctx);
}

static void expect_error(amp_status got, amp_status want, amp_ctx *ctx, const char *needle) {
  CHECK(got == want, "status %d, want %d", got, want);
  CHECK(amp_ctx_status(ctx) == want, "ctx status %d, want %d", amp_ctx_status(ctx), want);
  CHECK(strstr(amp_ctx_error(ctx), "amp_gemm") && strstr(amp_ctx_error(ctx), needle),
        "message '%s' lacks '%s'", amp_ctx_error(ctx), needle);
  amp_ctx_clear_error(ctx);
}

static void test_errors(amp_ctx *ctx) {
  float a[64] = {0}, b[64] = {0}, c[64] = {0};
  const amp_trans N = AMP_NO_TRANS, T = AMP_TRANS;
  expect_error(
      amp_gemm(ctx, N, N, 0, 4, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL),
      AMP_ERR_INVALID_ARG, ctx, "m=0");
  expect_error(
      amp_gemm(ctx, N, N, 4, -1, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL),
      AMP_ERR_INVALID_ARG, ctx, "n=-1");
  expect_error(
      amp_gemm(ctx, N, N, 4, 4, -2, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL),
      AMP_ERR_INVALID_ARG, ctx, "k=-2");
  expect_error(
      amp_gemm(ctx, N, N, 4, 4, 4, 1, NULL, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL),
      AMP_ERR_INVALID_ARG, ctx, "a is NULL");
  expect_error(
      amp_gemm(ctx, N, N, 4, 4, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, NULL, AMP_F32, 4, NULL),
      AMP_ERR_INVALID_ARG, ctx, "c is NULL");
  expect_error(
      amp_gemm(ctx, N, N, 4, 4, 5, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL),
      AMP_ERR_INVALID_ARG, ctx, "lda=4");
  expect_error(
      amp_gemm(ctx, T, N, 5, 4, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 5, NULL),
      AMP_ERR_INVALID_ARG, ctx, "lda=4");
  expect_error(
      amp_gemm(ctx, N, T, 4, 4, 5, 1, a, AMP_F32, 5, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL),
      AMP_ERR_INVALID_ARG, ctx, "ldb=4");
  expect_error(
      amp_gemm(ctx, N, N, 4, 5, 4, 1, a, AMP_F32, 4, b, AMP_F32, 5, 0, c, AMP_F32, 4, NULL),
      AMP_ERR_INVALID_ARG, ctx, "ldc=4");
  expect_error(amp_gemm(ctx, (amp_trans)2, N, 4, 4, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c,
                        AMP_F32, 4, NULL),
               AMP_ERR_INVALID_ARG, ctx, "ta=2");
  expect_error(
      amp_gemm(ctx, N, N, 4, 4, 4, 1, a, AMP_E4M3, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL),
      AMP_ERR_UNSUPPORTED, ctx, "a=e4m3");
  expect_error(
      amp_gemm(ctx, N, N, 4, 4, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_I32, 4, NULL),
      AMP_ERR_UNSUPPORTED, ctx, "c=i32");
  amp_epilogue ep = {.bias = b, .bias_dtype = AMP_U8};
  expect_error(amp_gemm(ctx, N, N, 4, 4, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, &ep),
               AMP_ERR_UNSUPPORTED, ctx, "bias_dtype u8");
  /* A NULL context is allowed: the status still comes back. */
  CHECK(amp_gemm(NULL, N, N, 0, 4, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL) ==
            AMP_ERR_INVALID_ARG,
        "NULL ctx error");
  CHECK(amp_gemm(NULL, N, N, 4, 4, 4, 1, a, AMP_F32, 4, b, AMP_F32, 4, 0, c, AMP_F32, 4, NULL) ==
            AMP_OK,
        "NULL ctx ok");
}

/* The fast ctx under test: table `table`, BF16 dot kernel on or off. */
static void test_table(const amp__kernels *table, int dot, amp_ctx *ref) {
  amp_ctx_params p = {.bf16_dot = dot ? 1 : -1};
  amp_ctx *fast = amp_ctx_create(&p);
  CHECK(amp__ctx_set_kernels(fast, table), "table %s usable", table->name);
  CHECK(fast->bf16_dot == dot, "bf16_dot %d", fast->bf16_dot);
  printf("table %s, bf16 dot %s\n", table->name, dot ? "on" : "off");
  dot_mode = dot;
  test_sampled(fast, ref);
  dot_mode = 0;
  test_accumulate(fast);
  test_k0(fast);
  test_nonfinite(fast);
  test_threads(table, dot);
  amp_ctx_free(fast);
}

/* AMPC_BF16_DOT=0 turns the dot kernel off by default; the ctx field wins. */
static void test_bf16_dot_switch(void) {
  const int have = (amp_cpu_features() & AMP_CPU_AVX512BF16) != 0;
  setenv("AMPC_BF16_DOT", "0", 1);
  amp_ctx *a = amp_ctx_create(NULL);
  amp_ctx_params on = {.bf16_dot = 1};
  amp_ctx *b = amp_ctx_create(&on);
  unsetenv("AMPC_BF16_DOT");
  amp_ctx *c = amp_ctx_create(NULL);
  amp_ctx_params off = {.bf16_dot = -1};
  amp_ctx *d = amp_ctx_create(&off);
  CHECK(a->bf16_dot == 0 && d->bf16_dot == 0, "AMPC_BF16_DOT=0 / bf16_dot<0: off");
  CHECK(b->bf16_dot == have && c->bf16_dot == have,
        "default and bf16_dot>0: on where the CPU has it");
  amp_ctx_free(a), amp_ctx_free(b), amp_ctx_free(c), amp_ctx_free(d);
}

int main(void) {
  amp_ctx *fast = amp_ctx_create(NULL), *ref = amp_ctx_create(NULL);
  CHECK(amp__ctx_set_kernels(ref, &amp__kernels_scalar), "the scalar kernel table");
  /* The public switch picks the same table. */
  amp_ctx_params np = {.threads = 0, .no_simd = 1};
  amp_ctx *nosimd = amp_ctx_create(&np);
  CHECK(amp__kernels_of(nosimd) == &amp__kernels_scalar, "no_simd: the scalar kernel table");
  CHECK(amp__kernels_of(fast) == amp__kernels_native() && amp__kernels_of(NULL) == fast->k,
        "default: the native table");
  amp_ctx_free(nosimd);
  char desc[512];
  CHECK(amp_ctx_describe(fast, desc, sizeof desc) > 0 && strstr(desc, "gemm_blocking"),
        "amp_ctx_describe");
  printf("%s\n", desc);
  test_k0(ref);
  test_bf16_dot_switch();
  test_scratch();
  test_errors(fast);
  test_table(&amp__kernels_scalar, 0, ref);
#ifdef AMPC_HAVE_X86_SIMD
  const unsigned f = amp_cpu_features();
  if (amp__kernels_usable(&amp__kernels_avx2))
    test_table(&amp__kernels_avx2, 0, ref);
  else
    printf("skipped: the AVX2 GEMM tests (this CPU lacks AVX2/FMA/F16C)\n");
  if (amp__kernels_usable(&amp__kernels_avx512)) {
    test_table(&amp__kernels_avx512, 0, ref);
    if (f & AMP_CPU_AVX512BF16)
      test_table(&amp__kernels_avx512, 1, ref);
    else
      printf("skipped: the BF16 dot-product GEMM tests (this CPU lacks AVX512-BF16)\n");
  } else {
    printf("skipped: the AVX-512 GEMM tests (this CPU lacks AVX-512F)\n");
    printf("skipped: the BF16 dot-product GEMM tests (this CPU lacks AVX512-BF16)\n");
  }
#else
  printf("skipped: the AVX2 and AVX-512 GEMM tests (built without SIMD, -DAMPC_SIMD=OFF)\n");
#endif
  amp_ctx_free(fast);
  amp_ctx_free(ref);
  TEST_MAIN_END();
}
