/* The per-op test harness: an op's forward against an FP64 reference, and
 * its gradients against central finite differences of that reference,
 * computed in FP64.
 *
 * An op under test is a pair:
 *   fwd(ctx, in, arg)          runs the op (ampc) on the tensors in[]
 *   ref(in64, in, out64, arg)  computes the same function in FP64: in64[i]
 *                              holds the values of in[i] (as double), in[i]
 *                              gives shapes (and integer data, e.g. labels)
 * gradcheck() makes y = fwd(in), checks y against ref, seeds y's gradient
 * with random weights w (so L = Σ w·y), runs backward, and compares every
 * floating input's gradient with (L(x+h) - L(x-h)) / 2h in FP64. The
 * tolerance is relative to the largest gradient (or output) magnitude. */
#ifndef AMPC_TEST_GRADCHECK_H
#define AMPC_TEST_GRADCHECK_H

#include "check.h"
#include "ops/ops_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef amp_tensor *(*gc_fwd)(amp_ctx *ctx, amp_tensor **in, const void *arg);
typedef void (*gc_ref)(double *const *in64, amp_tensor *const *in, double *out, const void *arg);

static uint64_t gc_rng_state = 12345;
static double gc_uniform(double lo, double hi) {
  uint64_t z = (gc_rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return lo + (hi - lo) * (double)(z >> 11) * 0x1.0p-53;
}

/* Fills an F32 tensor uniformly in [lo, hi). */
static inline void gc_fill(amp_tensor *t, double lo, double hi) {
  for (int64_t i = 0; i < t->numel; i++) ((float *)t->data)[i] = (float)gc_uniform(lo, hi);
}

/* Both tensors exist and hold the same dtype, size and bits. */
static inline int gc_same_bits(const amp_tensor *a, const amp_tensor *b) {
  return a && b && a->dtype == b->dtype && a->numel == b->numel &&
         memcmp(a->data, b->data, amp_tensor_bytes(a)) == 0;
}

/* A new F32 leaf (step arena) requiring gradients, uniform in [lo, hi). */
static inline amp_tensor *gc_leaf(amp_ctx *ctx, int ndim, const int64_t *shape, double lo,
                                  double hi) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, ndim, shape);
  if (!t) return NULL;
  gc_fill(t, lo, hi);
  amp_tensor_set_requires_grad(ctx, t, 1);
  return t;
}

/* An I32 tensor of values in 0..n-1. */
static inline amp_tensor *gc_labels(amp_ctx *ctx, int ndim, const int64_t *shape, int n) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_I32, ndim, shape);
  if (!t) return NULL;
  for (int64_t i = 0; i < t->numel; i++) ((int32_t *)t->data)[i] = (int32_t)gc_uniform(0, n);
  return t;
}

static int gc_is_float(const amp_tensor *t) { return t && t->dtype == AMP_F32; }

static double gc_loss(gc_ref ref, double *const *in64, amp_tensor *const *in, const double *w,
                      double *out, int64_t nout, const void *arg) {
  ref(in64, in, out, arg);
  double l = 0;
  for (int64_t i = 0; i < nout; i++) l += w[i] * out[i];
  return l;
}

/* Returns the worst relative gradient error (also CHECKed against tol).
 * Inputs must be F32 leaves or integer tensors; NULL entries are skipped. */
static double gradcheck(amp_ctx *ctx, const char *name, gc_fwd fwd, gc_ref ref, int nin,
                        amp_tensor **in, const void *arg, double tol) {
  for (int i = 0; i < nin; i++) amp_tensor_zero_grad(in[i]);
  amp_tensor *y = fwd(ctx, in, arg);
  CHECK(y != NULL, "%s: forward failed: %s", name, amp_ctx_error(ctx));
  if (!y) return INFINITY;
  double *in64[AMP__MAX_INPUTS + 2] = {0};
  for (int i = 0; i < nin; i++) {
    if (!in[i]) continue;
    in64[i] = malloc(sizeof(double) * (size_t)in[i]->numel);
    for (int64_t j = 0; j < in[i]->numel; j++)
      in64[i][j] = in[i]->dtype == AMP_F32   ? ((float *)in[i]->data)[j]
                   : in[i]->dtype == AMP_I32 ? ((int32_t *)in[i]->data)[j]
                                             : 0;
  }
  int64_t nout = y->numel;
  double *out = malloc(sizeof(double) * (size_t)nout), *w = malloc(sizeof(double) * (size_t)nout);
  float *wf = malloc(sizeof(float) * (size_t)nout);
  for (int64_t i = 0; i < nout; i++) {
    wf[i] = (float)gc_uniform(-1, 1);
    w[i] = wf[i];
  }
  /* Forward against the reference. */
  ref(in64, in, out, arg);
  double ymax = 1e-30, yerr = 0;
  for (int64_t i = 0; i < nout; i++) {
    float v32;
    amp_convert(&v32, AMP_F32, (const char *)y->data + (size_t)i * amp_dtype_size(y->dtype),
                y->dtype, 1);
    double v = v32;
    ymax = fmax(ymax, fabs(out[i]));
    yerr = fmax(yerr, fabs(v - out[i]));
  }
  CHECK(yerr <= tol * ymax, "%s: forward error %.3g > %.3g·max|y| (max|y| %.3g)", name, yerr, tol,
        ymax);
  /* Backward with dL/dy = w. */
  amp_status s = amp__backward_seeded(ctx, y, wf, AMP_F32);
  CHECK(s == AMP_OK, "%s: backward failed: %s", name, amp_ctx_error(ctx));
  double worst = 0;
  for (int i = 0; i < nin && s == AMP_OK; i++) {
    if (!gc_is_float(in[i]) || !in[i]->requires_grad) continue;
    const float *g = in[i]->grad->data;
    double gmax = 1e-30, err = 0;
    int64_t at = 0;
    for (int64_t j = 0; j < in[i]->numel; j++) {
      double x0 = in64[i][j], h = 1e-6 * fmax(1.0, fabs(x0));
      in64[i][j] = x0 + h;
      double lp = gc_loss(ref, in64, in, w, out, nout, arg);
      in64[i][j] = x0 - h;
      double lm = gc_loss(ref, in64, in, w, out, nout, arg);
      in64[i][j] = x0;
      double fd = (lp - lm) / (2 * h);
      gmax = fmax(gmax, fabs(fd));
      if (fabs(g[j] - fd) > err) {
        err = fabs(g[j] - fd);
        at = j;
      }
    }
    double rel = err / gmax;
    worst = fmax(worst, rel);
    CHECK(rel <= tol, "%s: input %d gradient error %.3g relative (at %lld: %.6g vs fd) > %.3g",
          name, i, rel, (long long)at, g[at], tol);
  }
  for (int i = 0; i < nin; i++) free(in64[i]);
  free(out);
  free(w);
  free(wf);
  return worst;
}

#endif
