/* The INT8 GEMM against our F32 GEMM at the inference shapes of the
 * reference MLP (784-1024-10): `ampc bench int8` (and part of `ampc bench
 * all`). The host may be loaded, so the figure of merit is CPU time
 * (CLOCK_PROCESS_CPUTIME_ID), the median over rounds that alternate the two
 * kernels; wall time is reported beside it. */
#include "bench.h"

#include "ampc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct int8_bufs {
  int64_t m, n, k;
  float *a, *w, *c, *bias;
  uint8_t *aq;
  int8_t *wq;
  int32_t *cq;
  float *ws;
} int8_bufs;

/* kind 0: the F32 GEMM C = A·Wᵀ (as Linear's forward runs it); 1: the INT8
 * GEMM on the same shape; 2: the F32 Linear with its bias; 3: the INT8
 * Linear (quantize, INT8 GEMM, requantize). `reps` calls. */
static int run(amp_ctx *ctx, const int8_bufs *b, int kind, int reps) {
  const amp_epilogue ep = {.bias = b->bias, .bias_dtype = AMP_F32};
  for (int r = 0; r < reps; r++) {
    amp_status s =
        kind == 0   ? amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, b->m, b->n, b->k, 1.0f, b->a, AMP_F32,
                               b->k, b->w, AMP_F32, b->k, 0.0f, b->c, AMP_F32, b->n, NULL)
        : kind == 1 ? amp_gemm_u8s8(ctx, b->m, b->n, b->k, b->aq, b->k, b->wq, b->k, b->cq, b->n)
        : kind == 2
            ? amp_gemm(ctx, AMP_NO_TRANS, AMP_TRANS, b->m, b->n, b->k, 1.0f, b->a, AMP_F32, b->k,
                       b->w, AMP_F32, b->k, 0.0f, b->c, AMP_F32, b->n, &ep)
            : amp_qlinear(ctx, b->m, b->n, b->k, b->a, 0.01f, 3, b->wq, b->ws, b->bias, b->c);
    if (s != AMP_OK) return 0;
  }
  return 1;
}

static int bufs_alloc(int8_bufs *b, int64_t m, int64_t n, int64_t k) {
  memset(b, 0, sizeof *b);
  b->m = m, b->n = n, b->k = k;
  b->a = malloc(sizeof(float) * (size_t)(m * k));
  b->w = malloc(sizeof(float) * (size_t)(n * k));
  b->c = malloc(sizeof(float) * (size_t)(m * n));
  b->bias = calloc((size_t)n, sizeof(float));
  b->ws = malloc(sizeof(float) * (size_t)n);
  b->aq = malloc((size_t)(m * k));
  b->wq = malloc((size_t)(n * k));
  b->cq = malloc(sizeof(int32_t) * (size_t)(m * n));
  if (!b->a || !b->w || !b->c || !b->bias || !b->ws || !b->aq || !b->wq || !b->cq) return 0;
  unsigned s = 12345u;
  for (int64_t i = 0; i < m * k; i++) {
    s = s * 1103515245u + 12345u;
    b->a[i] = (float)(s >> 9) / 4194304.0f;
    b->aq[i] = (uint8_t)(s >> 24);
  }
  for (int64_t i = 0; i < n * k; i++) {
    s = s * 1103515245u + 12345u;
    b->w[i] = (float)(s >> 9) / 4194304.0f - 1.0f;
    b->wq[i] = (int8_t)(s >> 24);
  }
  for (int64_t j = 0; j < n; j++) b->ws[j] = 0.01f;
  return 1;
}

static void bufs_free(int8_bufs *b) {
  free(b->a), free(b->w), free(b->c), free(b->bias), free(b->ws), free(b->aq), free(b->wq);
  free(b->cq);
}

enum { ROUNDS = 15 };

/* Median CPU and wall seconds per call of kinds k0 and k1, alternating. */
static int measure(amp_ctx *ctx, const int8_bufs *b, int k0, int k1, double cpu[2],
                   double wall[2]) {
  if (!run(ctx, b, k0, 3) || !run(ctx, b, k1, 3)) return 0; /* warm */
  double t0 = ampb_now();
  run(ctx, b, k0, 1);
  double once = ampb_now() - t0;
  int reps = once > 0.004 ? 1 : (int)(0.004 / (once > 1e-7 ? once : 1e-7)) + 1;
  double c[2][ROUNDS], w[2][ROUNDS];
  for (int r = 0; r < ROUNDS; r++)
    for (int i = 0; i < 2; i++) {
      double c0 = cpu_now(), w0 = ampb_now();
      if (!run(ctx, b, i ? k1 : k0, reps)) return 0;
      c[i][r] = (cpu_now() - c0) / reps;
      w[i][r] = (ampb_now() - w0) / reps;
    }
  for (int i = 0; i < 2; i++)
    cpu[i] = ampb_median(c[i], ROUNDS), wall[i] = ampb_median(w[i], ROUNDS);
  return 1;
}

int ampb_int8_suite(int threads) {
  const int64_t shapes[][3] = {
      {128, 1024, 784}, {128, 10, 1024}, {1000, 1024, 784}, {1000, 10, 1024}};
  const double floor = 1.5;
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = threads});
  if (!ctx) return 1;
  /* The INT8 path of the context's kernel table (AMPC_KERNELS=avx2 picks
     the AVX2 table on an AVX-512 machine). */
  char desc[512];
  amp_ctx_describe(ctx, desc, sizeof desc);
  const int vnni = (amp_cpu_features() & AMP_CPU_AVX512VNNI) != 0;
  const char *path = strstr(desc, "\"avx512\"") ? (vnni ? "avx512-vnni" : "avx2")
                     : strstr(desc, "\"avx2\"") ? "avx2"
                                                : "scalar";
  int rc = 0;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && !rc; i++) {
    int8_bufs b;
    double cg[2], wg[2], cl[2], wl[2];
    if (!bufs_alloc(&b, shapes[i][0], shapes[i][1], shapes[i][2]) ||
        !measure(ctx, &b, 0, 1, cg, wg) || !measure(ctx, &b, 2, 3, cl, wl)) {
      fprintf(stderr, "ampc bench int8: %s\n", amp_ctx_error(ctx));
      rc = 1;
    } else {
      const double sp = cg[0] / cg[1];
      printf("{\"bench\":\"int8_gemm\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"threads\":%d,"
             "\"int8_path\":\"%s\",\"f32_cpu_ms\":%.4f,\"int8_cpu_ms\":%.4f,\"speedup_cpu\":%.2f,"
             "\"f32_wall_ms\":%.4f,\"int8_wall_ms\":%.4f,\"speedup_wall\":%.2f,"
             "\"layer_speedup_cpu\":%.2f,\"floor\":\"speedup_cpu>=%.1f\",\"pass\":%s}\n",
             (long long)b.m, (long long)b.n, (long long)b.k, threads, path, 1e3 * cg[0],
             1e3 * cg[1], sp, 1e3 * wg[0], 1e3 * wg[1], wg[0] / wg[1], cl[0] / cl[1], floor,
             sp >= floor ? "true" : "false");
    }
    bufs_free(&b);
  }
  fflush(stdout);
  amp_ctx_free(ctx);
  return rc;
}
