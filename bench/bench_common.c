/* Timing, medians, the peak FMA probe and the triad bandwidth probe. */
#include "bench.h"

#include "ampc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef AMPC_BENCH_AVX2
#include <immintrin.h>
#endif

double ampb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double ampb_max(const double *v, int n) {
  double m = 0;
  for (int i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
  return m;
}

double ampb_median(const double *v, int n) {
  if (n <= 0) return 0;
  double *c = malloc((size_t)n * sizeof *c);
  if (!c) return 0;
  memcpy(c, v, (size_t)n * sizeof *c);
  qsort(c, (size_t)n, sizeof *c, cmp_double);
  double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
  free(c);
  return m;
}

#ifdef AMPC_BENCH_AVX2
/* 12 independent accumulator chains hide the FMA latency on every current
 * x86 core; returns the flops done. */
static double fma_loop(long iters) {
  __m256 c0 = _mm256_set1_ps(0.0f), c1 = _mm256_set1_ps(0.1f), c2 = _mm256_set1_ps(0.2f);
  __m256 c3 = _mm256_set1_ps(0.3f), c4 = _mm256_set1_ps(0.4f), c5 = _mm256_set1_ps(0.5f);
  __m256 c6 = _mm256_set1_ps(0.6f), c7 = _mm256_set1_ps(0.7f), c8 = _mm256_set1_ps(0.8f);
  __m256 c9 = _mm256_set1_ps(0.9f), c10 = _mm256_set1_ps(1.0f), c11 = _mm256_set1_ps(1.1f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++) {
    c0 = _mm256_fmadd_ps(c0, a, b);
    c1 = _mm256_fmadd_ps(c1, a, b);
    c2 = _mm256_fmadd_ps(c2, a, b);
    c3 = _mm256_fmadd_ps(c3, a, b);
    c4 = _mm256_fmadd_ps(c4, a, b);
    c5 = _mm256_fmadd_ps(c5, a, b);
    c6 = _mm256_fmadd_ps(c6, a, b);
    c7 = _mm256_fmadd_ps(c7, a, b);
    c8 = _mm256_fmadd_ps(c8, a, b);
    c9 = _mm256_fmadd_ps(c9, a, b);
    c10 = _mm256_fmadd_ps(c10, a, b);
    c11 = _mm256_fmadd_ps(c11, a, b);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                           _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
  float sink[8];
  _mm256_storeu_ps(sink, s);
  volatile float keep = sink[0];
  (void)keep;
  return (double)iters * 12.0 * 16.0;
}
#endif

#ifdef AMPC_BENCH_AVX2
/* The same with 512-bit FMAs (12 ZMM chains): the peak of the AVX-512 GEMM
 * kernel. On cores that split 512-bit operations in two (Zen 4) it matches
 * the AVX2 peak; on cores with two 512-bit FMA units it is twice it. */
__attribute__((target("avx512f"))) static double fma_loop512(long iters) {
  __m512 c[12];
  for (int i = 0; i < 12; i++) c[i] = _mm512_set1_ps(0.1f * (float)i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++) {
    c[0] = _mm512_fmadd_ps(c[0], a, b);
    c[1] = _mm512_fmadd_ps(c[1], a, b);
    c[2] = _mm512_fmadd_ps(c[2], a, b);
    c[3] = _mm512_fmadd_ps(c[3], a, b);
    c[4] = _mm512_fmadd_ps(c[4], a, b);
    c[5] = _mm512_fmadd_ps(c[5], a, b);
    c[6] = _mm512_fmadd_ps(c[6], a, b);
    c[7] = _mm512_fmadd_ps(c[7], a, b);
    c[8] = _mm512_fmadd_ps(c[8], a, b);
    c[9] = _mm512_fmadd_ps(c[9], a, b);
    c[10] = _mm512_fmadd_ps(c[10], a, b);
    c[11] = _mm512_fmadd_ps(c[11], a, b);
  }
  __m512 s = c[0];
  for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, c[i]);
  volatile float keep = _mm512_reduce_add_ps(s);
  (void)keep;
  return (double)iters * 12.0 * 32.0;
}

static double peak_of(int threads, int reps, int wide) {
  if (threads < 1) threads = 1;
  if (reps < 1) reps = 1;
  double *r = malloc((size_t)reps * sizeof *r);
  if (!r) return 0;
  const long iters = wide ? 10000000 : 20000000;
  for (int rep = 0; rep < reps; rep++) {
    double t0 = ampb_now(), flops = 0;
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += wide ? fma_loop512(iters) : fma_loop(iters);
    r[rep] = flops / (ampb_now() - t0) * 1e-9;
  }
  double m = ampb_max(r, reps);
  free(r);
  return m;
}
#endif

double ampb_peak_fma_gflops_isa(int threads, int reps, int avx512) {
#ifdef AMPC_BENCH_AVX2
  const unsigned need = AMP_CPU_AVX2 | AMP_CPU_FMA | (avx512 ? AMP_CPU_AVX512F : 0);
  if ((amp_cpu_features() & need) != need) return 0;
  return peak_of(threads, reps, avx512);
#else
  (void)threads, (void)reps, (void)avx512;
  return 0;
#endif
}

double ampb_peak_fma_gflops(int threads, int reps) {
  const double p2 = ampb_peak_fma_gflops_isa(threads, reps, 0);
  const double p5 = ampb_peak_fma_gflops_isa(threads, reps, 1);
  return p5 > p2 ? p5 : p2;
}

void ampb_print_machine(const char *bench, int threads) {
  /* /proc/cpuinfo's first processor: the model name (VMs may shorten it)
   * with family/model/stepping, which identify the core generation. */
  char model[128] = "unknown", fms[3][16] = {"?", "?", "?"};
  const char *keys[3] = {"cpu family\t", "model\t\t", "stepping\t"};
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  while (f && fgets(line, sizeof line, f)) {
    const char *v = strchr(line, ':');
    if (!v || line[0] == '\n') break;
    v += v[1] == ' ' ? 2 : 1;
    if (strncmp(line, "model name", 10) == 0) {
      snprintf(model, sizeof model, "%s", v);
      model[strcspn(model, "\n\"\\")] = '\0';
    }
    for (int i = 0; i < 3; i++)
      if (strncmp(line, keys[i], strlen(keys[i])) == 0) {
        snprintf(fms[i], sizeof fms[i], "%s", v);
        fms[i][strcspn(fms[i], "\n\"\\")] = '\0';
      }
  }
  if (f) fclose(f);
  const unsigned feat = amp_cpu_features();
  amp_ctx_params p = {.threads = threads};
  amp_ctx *ctx = amp_ctx_create(&p);
  char desc[640] = "";
  if (ctx) amp_ctx_describe(ctx, desc, sizeof desc);
  amp_ctx_free(ctx);
  printf(
      "{\"bench\":\"machine\",\"for\":\"%s\",\"cpu\":\"%s\",\"family\":\"%s\",\"model\":\"%s\","
      "\"stepping\":\"%s\",\"avx2_fma\":%s,\"avx512f\":%s,\"avx512bf16\":%s,\"threads\":%d,%s}\n",
      bench, model, fms[0], fms[1], fms[2],
      (feat & AMP_CPU_AVX2) && (feat & AMP_CPU_FMA) ? "true" : "false",
      feat & AMP_CPU_AVX512F ? "true" : "false", feat & AMP_CPU_AVX512BF16 ? "true" : "false",
      threads, desc);
}

double ampb_triad_gbs(int threads, size_t bytes_per_array, int reps) {
  size_t n = bytes_per_array / sizeof(float);
  float *a = aligned_alloc(64, n * sizeof(float));
  float *b = aligned_alloc(64, n * sizeof(float));
  float *c = aligned_alloc(64, n * sizeof(float));
  double res = 0;
  if (a && b && c && reps > 0) {
    double *r = malloc((size_t)reps * sizeof *r);
    if (r) {
      /* First touch in parallel, with the same partition as the loop. */
#pragma omp parallel for num_threads(threads) schedule(static)
      for (size_t i = 0; i < n; i++) {
        a[i] = 0;
        b[i] = 1.0f;
        c[i] = 2.0f;
      }
      const float s = 3.0f;
      for (int rep = 0; rep < reps; rep++) {
        double t0 = ampb_now();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        r[rep] = 12.0 * (double)n / (ampb_now() - t0) * 1e-9;
      }
      res = ampb_max(r, reps);
      free(r);
    }
  }
  free(a);
  free(b);
  free(c);
  return res;
}

size_t ampb_llc_bytes(void) {
  long l3 = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
  l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
  return l3 > 0 ? (size_t)l3 : (size_t)32 << 20;
}

size_t ampb_big_array_bytes(void) {
  /* Some VMs report the whole socket's L3 (hundreds of MiB); cap the size so
     three such arrays still fit comfortably in memory. */
  size_t b = 4 * ampb_llc_bytes();
  if (b < ((size_t)128 << 20)) b = (size_t)128 << 20;
  if (b > ((size_t)512 << 20)) b = (size_t)512 << 20;
  return b;
}

int ampb_have_openblas(void) {
#ifdef AMPC_HAVE_OPENBLAS
  return 1;
#else
  return 0;
#endif
}
