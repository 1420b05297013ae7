/* GEMM benchmarks: `ampc bench gemm` for one shape and the standard set of
 * `ampc bench all`, both against OpenBLAS cblas_sgemm when it is linked. */
#include "bench.h"

#include "ampc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef AMPC_HAVE_OPENBLAS
#include <cblas.h>
#endif

typedef struct gemm_shape {
  int64_t m, n, k;
  amp_trans ta, tb;
  amp_dtype at, bt, ct;
  int threads, reps; /* reps 0: about 0.5 s of work */
} gemm_shape;

/* Buffers of one benchmark run: our operands and F32 copies for OpenBLAS. */
typedef struct gemm_bufs {
  void *a, *b, *c;
  float *af, *bf, *cf;
  amp_ctx *ctx;
} gemm_bufs;

static void *fill(amp_dtype t, size_t count, float **f32_copy) {
  void *p = malloc(count * amp_dtype_size(t));
  float *f = malloc(count * sizeof *f);
  if (!p || !f) {
    free(p), free(f);
    return NULL;
  }
  unsigned s = 12345u;
  for (size_t i = 0; i < count; i++) {
    s = s * 1103515245u + 12345u;
    f[i] = (float)(s >> 9) / 4194304.0f - 1.0f;
  }
  amp_convert(p, t, f, AMP_F32, count);
  amp_convert(f, AMP_F32, p, t, count); /* OpenBLAS sees the same values */
  *f32_copy = f;
  return p;
}

static int run_ours(const gemm_shape *s, gemm_bufs *b) {
  int64_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  return amp_gemm(b->ctx, s->ta, s->tb, s->m, s->n, s->k, 1.0f, b->a, s->at, lda, b->b, s->bt, ldb,
                  0.0f, b->c, s->ct, s->n, NULL) == AMP_OK;
}

#ifdef AMPC_HAVE_OPENBLAS
static int run_blas(const gemm_shape *s, gemm_bufs *b) {
  int lda = (int)(s->ta ? s->m : s->k), ldb = (int)(s->tb ? s->k : s->n);
  cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
              (int)s->m, (int)s->n, (int)s->k, 1.0f, b->af, lda, b->bf, ldb, 0.0f, b->cf,
              (int)s->n);
  return 1;
}
#endif

typedef int (*gemm_fn)(const gemm_shape *, gemm_bufs *);

/* Idle threads of the other library spin for a while after their last call;
 * pausing lets them go to sleep so that they do not share the cores. */
static void pause_threads(void) {
  struct timespec t = {0, 150000000};
  nanosleep(&t, NULL);
}

/* Calls fn for at least min_s seconds (and 3 calls); returns the time of the
 * last call, or -1 on failure. Warms caches, page mappings, thread pools. */
static double warm_up(const gemm_shape *s, gemm_bufs *b, gemm_fn fn, double min_s) {
  double start = ampb_now(), t0 = start, once = 0;
  for (int i = 0; i < 3 || t0 - start < min_s; i++) {
    if (!fn(s, b)) return -1;
    double t1 = ampb_now();
    once = t1 - t0;
    t0 = t1;
  }
  return once;
}

/* Times n calls of fn, storing each call's GFLOP/s in r. */
static void timed_calls(const gemm_shape *s, gemm_bufs *b, gemm_fn fn, int n, double *r) {
  for (int i = 0; i < n; i++) {
    double t0 = ampb_now();
    fn(s, b);
    r[i] = 2.0 * (double)s->m * (double)s->n * (double)s->k / (ampb_now() - t0) * 1e-9;
  }
}

enum { ROUNDS = 5 };

/* Measures ours and (when linked) OpenBLAS sgemm, the medians of per-call
 * rates; *blas is 0 without OpenBLAS. The two alternate in ROUNDS batches so
 * that both see the same machine (shared hosts vary over seconds). */
static char last_desc[640]; /* amp_ctx_describe of the last measure() */

static int measure(const gemm_shape *s, double *ours, double *blas) {
  gemm_bufs b = {0};
  size_t ac = (size_t)(s->m * s->k), bc = (size_t)(s->k * s->n), cc = (size_t)(s->m * s->n);
  amp_ctx_params p = {.threads = s->threads};
  b.ctx = amp_ctx_create(&p);
  if (b.ctx) amp_ctx_describe(b.ctx, last_desc, sizeof last_desc);
  b.a = fill(s->at, ac, &b.af);
  b.b = fill(s->bt, bc, &b.bf);
  b.c = fill(s->ct, cc, &b.cf);
  int ok = b.ctx && b.a && b.b && b.c, have_blas = ampb_have_openblas();
  *ours = *blas = 0;
  double once = ok ? warm_up(s, &b, run_ours, 0.2) : -1;
  if (ok && once < 0) {
    fprintf(stderr, "ampc bench gemm: amp_gemm failed: %s\n", amp_ctx_error(b.ctx));
    ok = 0;
  }
#ifdef AMPC_HAVE_OPENBLAS
  openblas_set_num_threads(s->threads);
  if (ok) pause_threads(), warm_up(s, &b, run_blas, 0.1);
#endif
  /* Per round: about 0.1 s of our calls (or reps / ROUNDS). */
  int per_round = s->reps > 0 ? (s->reps + ROUNDS - 1) / ROUNDS : (int)(0.1 / (once + 1e-9));
  if (per_round < 1) per_round = 1;
  if (per_round > 200) per_round = 200;
  double *r1 = malloc((size_t)(ROUNDS * per_round) * sizeof *r1);
  double *r2 = malloc((size_t)(ROUNDS * per_round) * sizeof *r2);
  ok = ok && r1 && r2;
  for (int round = 0; ok && round < ROUNDS; round++) {
    pause_threads();
    timed_calls(s, &b, run_ours, per_round, r1 + round * per_round);
#ifdef AMPC_HAVE_OPENBLAS
    pause_threads();
    timed_calls(s, &b, run_blas, per_round, r2 + round * per_round);
#endif
  }
  if (ok) {
    *ours = ampb_median(r1, ROUNDS * per_round);
    if (have_blas) *blas = ampb_median(r2, ROUNDS * per_round);
  }
  free(r1), free(r2);
  free(b.a), free(b.b), free(b.c), free(b.af), free(b.bf), free(b.cf);
  amp_ctx_free(b.ctx);
  return ok;
}

static void print_json(const gemm_shape *s, double ours, double blas) {
  printf("{\"bench\":\"gemm\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"a\":\"%s\",\"b\":\"%s\","
         "\"c\":\"%s\",\"ta\":%d,\"tb\":%d,\"threads\":%d,\"gflops\":%.2f",
         (long long)s->m, (long long)s->n, (long long)s->k, amp_dtype_name(s->at),
         amp_dtype_name(s->bt), amp_dtype_name(s->ct), (int)s->ta, (int)s->tb, s->threads, ours);
  if (blas > 0) printf(",\"openblas_gflops\":%.2f,\"ratio\":%.3f", blas, ours / blas);
}

static int parse_int(const char *flag, const char *v, long lo, long hi, long *out) {
  char *end;
  long x = v ? strtol(v, &end, 10) : 0;
  if (!v || *v == '\0' || *end != '\0' || x < lo || x > hi) {
    fprintf(stderr, "ampc bench gemm: %s: '%s' is not an integer in %ld..%ld\n", flag, v ? v : "",
            lo, hi);
    return 0;
  }
  *out = x;
  return 1;
}

static int parse_dtype(const char *flag, const char *v, amp_dtype *out) {
  if (!v || amp_dtype_parse(v, out) != AMP_OK ||
      (*out != AMP_F32 && *out != AMP_F16 && *out != AMP_BF16)) {
    fprintf(stderr, "ampc bench gemm: %s: '%s' is not f32, f16 or bf16\n", flag, v ? v : "");
    return 0;
  }
  return 1;
}

int ampb_gemm_cmd(int argc, char **argv) {
  gemm_shape s = {0, 0, 0, AMP_NO_TRANS, AMP_NO_TRANS, AMP_F16, AMP_F16, AMP_F32, 2, 0};
  long v = 0;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 1;
    if (strcmp(f, "--json") == 0)
      json = 1;
    else if (strcmp(f, "--ta") == 0)
      s.ta = AMP_TRANS;
    else if (strcmp(f, "--tb") == 0)
      s.tb = AMP_TRANS;
    else if (strcmp(f, "--m") == 0)
      ok = parse_int(f, val, 1, 1 << 20, &v), s.m = v, i++;
    else if (strcmp(f, "--n") == 0)
      ok = parse_int(f, val, 1, 1 << 20, &v), s.n = v, i++;
    else if (strcmp(f, "--k") == 0)
      ok = parse_int(f, val, 1, 1 << 20, &v), s.k = v, i++;
    else if (strcmp(f, "--threads") == 0)
      ok = parse_int(f, val, 1, 1024, &v), s.threads = (int)v, i++;
    else if (strcmp(f, "--reps") == 0)
      ok = parse_int(f, val, 1, 100000, &v), s.reps = (int)v, i++;
    else if (strcmp(f, "--a") == 0)
      ok = parse_dtype(f, val, &s.at), i++;
    else if (strcmp(f, "--b") == 0)
      ok = parse_dtype(f, val, &s.bt), i++;
    else if (strcmp(f, "--c") == 0)
      ok = parse_dtype(f, val, &s.ct), i++;
    else {
      fprintf(stderr, "ampc bench gemm: unknown option '%s'\n", f);
      ok = 0;
    }
    if (!ok) return 2;
  }
  if (!s.m || !s.n || !s.k) {
    fprintf(stderr, "ampc bench gemm: --m, --n and --k are required\n");
    return 2;
  }
  if ((double)s.m * (double)s.k + (double)s.k * (double)s.n + (double)s.m * (double)s.n > 5e8) {
    fprintf(stderr, "ampc bench gemm: the matrices are too large\n");
    return 2;
  }
  double ours, blas;
  if (!measure(&s, &ours, &blas)) return 1;
  if (json) {
    print_json(&s, ours, blas);
    printf(",%s}\n", last_desc);
  } else {
    printf("gemm %lldx%lldx%lld %s%s x %s%s -> %s, %d threads: %.2f GFLOP/s", (long long)s.m,
           (long long)s.n, (long long)s.k, amp_dtype_name(s.at), s.ta ? "^T" : "",
           amp_dtype_name(s.bt), s.tb ? "^T" : "", amp_dtype_name(s.ct), s.threads, ours);
    if (blas > 0) printf(" (OpenBLAS sgemm %.2f, ratio %.3f)", blas, ours / blas);
    printf("\n");
  }
  return 0;
}

/* The BF16 rows: BF16 × BF16 -> F32 at the suite's shapes against our F32
 * GEMM at the same shape (measured in this run), with the AVX512-BF16 dot
 * kernel where the CPU has it; marked as not run where it lacks it. */
static void bf16_rows(const gemm_shape *f32_runs, const double *f32_ours, int threads) {
  const int have = (amp_cpu_features() & AMP_CPU_AVX512BF16) != 0;
  for (int i = 0; i < 4; i++) {
    gemm_shape s = f32_runs[i];
    s.at = s.bt = AMP_BF16;
    if (!have) {
      printf("{\"bench\":\"gemm\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"a\":\"bf16\",\"b\":\"bf16\","
             "\"kernel\":\"avx512bf16-dot\",\"ran\":false,\"reason\":\"this CPU lacks "
             "AVX512-BF16\"}\n",
             (long long)s.m, (long long)s.n, (long long)s.k);
      continue;
    }
    double ours, blas;
    if (!measure(&s, &ours, &blas)) continue;
    const double r = f32_ours[i] > 0 ? ours / f32_ours[i] : 0;
    print_json(&s, ours, blas);
    printf(",\"kernel\":\"avx512bf16-dot\",\"our_f32_gflops\":%.2f,\"over_our_f32\":%.3f",
           f32_ours[i], r);
    if (i == 0)
      printf(",\"floor\":\"over_our_f32>=1.70\",\"pass\":%s", r >= 1.7 ? "true" : "false");
    printf("}\n");
    (void)threads;
  }
}

int ampb_gemm_suite(int threads) {
  /* 1024³, then the reference MLP's batch-128 forward, weight-gradient and
   * input-gradient products. */
  const struct {
    int64_t m, n, k;
    amp_trans ta, tb;
  } shapes[4] = {{1024, 1024, 1024, AMP_NO_TRANS, AMP_NO_TRANS},
                 {128, 1024, 784, AMP_NO_TRANS, AMP_TRANS},
                 {1024, 784, 128, AMP_TRANS, AMP_NO_TRANS},
                 {128, 784, 1024, AMP_NO_TRANS, AMP_NO_TRANS}};
  const double ratio_floor = 0.95, peak_floor = 0.75;
  ampb_print_machine("gemm", threads);
  /* The peak is probed before and after the set and the better probe is
   * used: one probe can land while another process holds a core. It is the
   * peak of the widest FMA this CPU has (AVX-512 where the AVX-512 kernel
   * runs), both probes reported. */
  double p2 = ampb_peak_fma_gflops_isa(threads, 9, 0), p5 = ampb_peak_fma_gflops_isa(threads, 9, 1);
  gemm_shape runs[8];
  double ours[8], blas[8];
  for (int i = 0; i < 4; i++) {
    for (int f16 = 1; f16 >= 0; f16--) {
      amp_dtype in = f16 ? AMP_F16 : AMP_F32;
      gemm_shape s = {shapes[i].m, shapes[i].n, shapes[i].k, shapes[i].ta, shapes[i].tb,
                      in,          in,          AMP_F32,     threads,      0};
      const int r = 2 * i + (1 - f16);
      runs[r] = s;
      if (!measure(&s, &ours[r], &blas[r])) return 1;
    }
  }
  const double again2 = ampb_peak_fma_gflops_isa(threads, 9, 0);
  const double again5 = ampb_peak_fma_gflops_isa(threads, 9, 1);
  if (again2 > p2) p2 = again2;
  if (again5 > p5) p5 = again5;
  const double peak = p5 > p2 ? p5 : p2;
  printf("{\"bench\":\"peak_fma\",\"threads\":%d,\"avx2_gflops\":%.2f,\"avx512_gflops\":%.2f%s}\n",
         threads, p2, p5, p5 > 0 ? "" : ",\"avx512\":\"not run: this CPU lacks AVX-512F\"");
  for (int r = 0; r < 8; r++) {
    int pass = blas[r] <= 0 || ours[r] >= ratio_floor * blas[r];
    int peak_check = (r == 0 || r == 1) && peak > 0; /* F16 and F32 at 1024³ */
    if (peak_check) pass = pass && ours[r] >= peak_floor * peak;
    print_json(&runs[r], ours[r], blas[r]);
    printf(",\"peak_gflops\":%.2f,\"peak_frac\":%.3f,\"floor\":\"ratio>=%.2f%s\",\"pass\":%s}\n",
           peak, peak > 0 ? ours[r] / peak : 0.0, ratio_floor, peak_check ? ",peak_frac>=0.75" : "",
           pass ? "true" : "false");
  }
  gemm_shape f32_runs[4];
  double f32_ours[4];
  for (int i = 0; i < 4; i++) f32_runs[i] = runs[2 * i + 1], f32_ours[i] = ours[2 * i + 1];
  bf16_rows(f32_runs, f32_ours, threads);
  fflush(stdout);
  return 0;
}
