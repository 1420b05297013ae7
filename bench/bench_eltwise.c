/* Elementwise kernel benchmarks: each kernel on F32, F16 and BF16 arrays of
 * the same element count, well past the LLC. Memory-bound kernels should run
 * about twice as fast on the 16-bit formats, which move half the bytes. */
#include "bench.h"

#include "ampc.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

#define REPS 5
#define FLOOR 1.6

enum { ADD, MUL, SCALE, RELU, RELU_BWD, UNSCALE, NOPS };
static const char *NAMES[NOPS] = {"add", "mul", "scale", "relu", "relu_backward", "unscale_check"};

static amp_status run(amp_ctx *ctx, int op, amp_dtype dt, size_t n, void *a, void *b, void *y) {
  int found;
  switch (op) {
  case ADD: return amp_vec_add(ctx, dt, n, a, b, y);
  case MUL: return amp_vec_mul(ctx, dt, n, a, b, y);
  case SCALE: return amp_vec_scale(ctx, dt, n, 0.5f, a, y);
  case RELU: return amp_vec_relu(ctx, dt, n, a, y);
  case RELU_BWD: return amp_vec_relu_backward(ctx, dt, n, a, b, y);
  default: return amp_vec_unscale_check(ctx, dt, n, y, 0.5f, &found); /* stays normal */
  }
}

/* Fills p with n values ±(1 + k/1024) of dtype dt (F32, F16 or BF16): exact
 * in every dtype, and products stay normal (no subnormal slow paths).
 * Parallel, so it also first-touches the pages as the kernels will use them. */
static void fill(void *p, amp_dtype dt, size_t n, unsigned salt, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; i++) {
    uint32_t h = (uint32_t)(i + salt) * 2654435761u;
    float v = (h & 0x80000000u ? -1.0f : 1.0f) * (1.0f + (float)((h >> 16) & 1023) / 1024.0f);
    if (dt == AMP_F32)
      ((float *)p)[i] = v;
    else if (dt == AMP_F16)
      ((amp_f16 *)p)[i] = amp_f32_to_f16(v);
    else
      ((amp_bf16 *)p)[i] = amp_f32_to_bf16(v);
  }
}

int ampb_eltwise_suite(int threads) {
  static const amp_dtype dts[3] = {AMP_F32, AMP_F16, AMP_BF16};
  const size_t n = ampb_big_array_bytes() / 4;
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = threads});
  void *buf[3][3] = {{NULL}}; /* [dtype][a, b, y] */
  int rc = 0, ok = ctx != NULL;
  for (int d = 0; d < 3; d++)
    for (int k = 0; k < 3; k++) {
      buf[d][k] = aligned_alloc(64, n * amp_dtype_size(dts[d]));
      ok = ok && buf[d][k];
      if (buf[d][k]) fill(buf[d][k], dts[d], n, (unsigned)k, amp_ctx_threads(ctx));
    }
  if (!ok) {
    fprintf(stderr, "eltwise bench: out of memory\n");
    rc = 1;
    goto done;
  }
  for (int op = 0; op < NOPS; op++) {
    /* The dtypes take turns rep by rep, so that load from elsewhere on the
     * machine hits all three alike; one warm-up run each. */
    double t[3][REPS], ms[3];
    int failed = 0;
    for (int d = 0; d < 3; d++) failed |= run(ctx, op, dts[d], n, buf[d][0], buf[d][1], buf[d][2]);
    for (int r = 0; r < REPS && !failed; r++)
      for (int d = 0; d < 3; d++) {
        double t0 = ampb_now();
        run(ctx, op, dts[d], n, buf[d][0], buf[d][1], buf[d][2]);
        t[d][r] = (ampb_now() - t0) * 1e3;
      }
    if (failed) {
      fprintf(stderr, "eltwise bench: %s failed: %s\n", NAMES[op], amp_ctx_error(ctx));
      rc = 1;
      continue;
    }
    for (int d = 0; d < 3; d++) ms[d] = ampb_median(t[d], REPS);
    double sp16 = ms[0] / ms[1], sp_bf16 = ms[0] / ms[2];
    printf("{\"bench\":\"eltwise\",\"op\":\"%s\",\"n\":%zu,\"threads\":%d,\"f32_ms\":%.3f,"
           "\"f16_ms\":%.3f,\"bf16_ms\":%.3f,\"speedup_f16\":%.3f,\"speedup_bf16\":%.3f,"
           "\"floor\":%.1f,\"pass\":%s}\n",
           NAMES[op], n, amp_ctx_threads(ctx), ms[0], ms[1], ms[2], sp16, sp_bf16, FLOOR,
           sp16 >= FLOOR ? "true" : "false");
    fflush(stdout);
  }
done:
  for (int d = 0; d < 3; d++)
    for (int k = 0; k < 3; k++) free(buf[d][k]);
  amp_ctx_free(ctx);
  return rc;
}
