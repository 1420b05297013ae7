/* Conversion bandwidth: amp_convert between F32 and F16/BF16 over arrays far
 * larger than the LLC, against the triad bandwidth measured in the same run.
 * Bytes moved = source bytes + destination bytes. */
#include "bench.h"

#include "ampc.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define REPS 5
#define FLOOR 0.8 /* wanted fraction of the triad bandwidth */

/* Median GB/s of REPS conversions, after one untimed warm-up. Returns a
 * negative value when amp_convert fails. */
static double convert_gbs(void *dst, amp_dtype dt, const void *src, amp_dtype st, size_t n) {
  double r[REPS];
  if (amp_convert(dst, dt, src, st, n) != AMP_OK) return -1;
  const double bytes = (double)n * (double)(amp_dtype_size(dt) + amp_dtype_size(st));
  for (int rep = 0; rep < REPS; rep++) {
    double t0 = ampb_now();
    amp_convert(dst, dt, src, st, n);
    r[rep] = bytes / (ampb_now() - t0) * 1e-9;
  }
  return ampb_median(r, REPS);
}

int ampb_convert_suite(int threads) {
  if (threads < 1) threads = 1;
  const size_t bytes = ampb_big_array_bytes();
  const size_t n = bytes / sizeof(float);
  float *f = aligned_alloc(64, n * sizeof(float));
  void *h = aligned_alloc(64, n * 2);
  if (!f || !h) {
    free(f);
    free(h);
    fprintf(stderr, "bench convert: out of memory\n");
    return 1;
  }
#ifdef _OPENMP
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(threads); /* amp_convert uses OpenMP's default count */
#endif
  /* First touch in parallel, with the static partition amp_convert uses. */
  uint16_t *h16 = h;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    f[i] = (float)(i % 1000) * 0.00123f - 0.6f;
    h16[i] = 0;
  }
  const double triad = ampb_triad_gbs(threads, bytes, REPS);
  static const struct {
    amp_dtype src, dst;
  } pairs[4] = {{AMP_F32, AMP_F16}, {AMP_F16, AMP_F32}, {AMP_F32, AMP_BF16}, {AMP_BF16, AMP_F32}};
  int rc = 0;
  for (int k = 0; k < 4; k++) {
    amp_dtype st = pairs[k].src, dt = pairs[k].dst;
    double gbs = st == AMP_F32 ? convert_gbs(h, dt, f, st, n) : convert_gbs(f, dt, h, st, n);
    if (gbs < 0) {
      fprintf(stderr, "bench convert: amp_convert %s -> %s failed\n", amp_dtype_name(st),
              amp_dtype_name(dt));
      rc = 1;
      continue;
    }
    double ratio = triad > 0 ? gbs / triad : 0;
    printf("{\"bench\":\"convert\",\"src\":\"%s\",\"dst\":\"%s\",\"n\":%zu,\"threads\":%d,"
           "\"gbs\":%.2f,\"triad_gbs\":%.2f,\"ratio_vs_triad\":%.3f,\"floor\":%.1f,"
           "\"pass\":%s}\n",
           amp_dtype_name(st), amp_dtype_name(dt), n, threads, gbs, triad, ratio, FLOOR,
           ratio >= FLOOR ? "true" : "false");
  }
#ifdef _OPENMP
  omp_set_num_threads(saved_threads);
#endif
  free(f);
  free(h);
  return rc;
}
