/* Data sets that need no files: the synthetic Gaussian-cluster task and
 * caller-supplied F32 rows; the data set's allocation and accessors. */
#include "data_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

amp_status amp__dataset_alloc(amp_ctx *ctx, const char *who, int64_t n, int64_t features,
                              int64_t classes, amp_dtype dtype, amp_dataset **out) {
  *out = NULL;
  if (n < 1 || features < 1 || classes < 1) {
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "%s: n (%lld), features (%lld) and classes (%lld) must be at least 1", who,
                      (long long)n, (long long)features, (long long)classes);
  }
  if (classes > INT32_MAX) {
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: %lld classes do not fit I32 labels", who,
                      (long long)classes);
  }
  size_t es = amp_dtype_size(dtype);
  if ((uint64_t)n > SIZE_MAX / sizeof(int32_t) ||
      (uint64_t)features > SIZE_MAX / es / (uint64_t)n) {
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: %lld x %lld values do not fit in memory", who,
                      (long long)n, (long long)features);
  }
  amp_dataset *ds = calloc(1, sizeof *ds);
  if (ds) {
    ds->x = malloc((size_t)n * (size_t)features * es);
    ds->y = malloc((size_t)n * sizeof(int32_t));
  }
  if (!ds || !ds->x || !ds->y) {
    amp_dataset_free(ds);
    return amp__error(ctx, AMP_ERR_NOMEM, "%s: out of memory for %lld samples of %lld values", who,
                      (long long)n, (long long)features);
  }
  ds->n = n;
  ds->features = features;
  ds->classes = classes;
  ds->dtype = dtype;
  *out = ds;
  return AMP_OK;
}

void amp_dataset_free(amp_dataset *ds) {
  if (!ds) return;
  free(ds->x);
  free(ds->y);
  free(ds);
}

int64_t amp_dataset_size(const amp_dataset *ds) { return ds ? ds->n : 0; }
int64_t amp_dataset_features(const amp_dataset *ds) { return ds ? ds->features : 0; }
int64_t amp_dataset_classes(const amp_dataset *ds) { return ds ? ds->classes : 0; }

/* An approximately standard normal value: the sum of 12 uniforms minus 6
 * (Irwin-Hall; mean 0, variance 1). Only additions of exactly representable
 * doubles, so the bits are the same on every machine (no libm calls). */
static double approx_normal(uint64_t *state) {
  double s = 0.0;
  for (int k = 0; k < 12; k++) s += amp__data_uniform(state);
  return s - 6.0;
}

amp_status amp_synthetic_load(amp_ctx *ctx, int64_t n, int64_t features, int64_t classes,
                              uint64_t seed, amp_dataset **out) {
  if (!out) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_synthetic_load: out is NULL");
  *out = NULL;
  amp_dataset *ds;
  amp_status st = amp__dataset_alloc(ctx, "amp_synthetic_load", n, features, classes, AMP_F32, &ds);
  if (st != AMP_OK) return st;
  if ((uint64_t)classes > SIZE_MAX / sizeof(float) / (uint64_t)features) {
    amp_dataset_free(ds);
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_synthetic_load: too many classes");
  }
  float *centres = malloc((size_t)classes * (size_t)features * sizeof(float));
  if (!centres) {
    amp_dataset_free(ds);
    return amp__error(ctx, AMP_ERR_NOMEM, "amp_synthetic_load: out of memory for the centres");
  }
  /* Two independent streams: one for the centres, one for the noise. */
  uint64_t cs = seed ^ 0x5DEECE66Dull, ns = seed ^ 0xC2B2AE3D27D4EB4Full;
  (void)amp__data_splitmix64(&cs);
  (void)amp__data_splitmix64(&ns);
  for (int64_t i = 0; i < classes * features; i++) centres[i] = (float)approx_normal(&cs);
  float *x = ds->x;
  for (int64_t i = 0; i < n; i++) {
    int64_t c = i % classes;
    ds->y[i] = (int32_t)c;
    const float *ctr = centres + c * features;
    /* 0.5 * noise is exact, so the sum rounds once whether or not the
       compiler fuses it. */
    for (int64_t j = 0; j < features; j++)
      x[i * features + j] = (float)((double)ctr[j] + 0.5 * approx_normal(&ns));
  }
  free(centres);
  *out = ds;
  return AMP_OK;
}

amp_status amp_dataset_from_f32(amp_ctx *ctx, int64_t n, int64_t features, int64_t classes,
                                const float *x, const int32_t *labels, amp_dataset **out) {
  if (!out) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_dataset_from_f32: out is NULL");
  *out = NULL;
  if (!x || !labels)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_dataset_from_f32: %s is NULL",
                      !x ? "x" : "labels");
  amp_dataset *ds;
  amp_status st =
      amp__dataset_alloc(ctx, "amp_dataset_from_f32", n, features, classes, AMP_F32, &ds);
  if (st != AMP_OK) return st;
  for (int64_t i = 0; i < n; i++) {
    if (labels[i] < 0 || labels[i] >= classes) {
      amp_dataset_free(ds);
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "amp_dataset_from_f32: label %d of sample %lld is not in 0..%lld",
                        (int)labels[i], (long long)i, (long long)(classes - 1));
    }
    for (int64_t j = 0; j < features; j++) {
      float v = x[i * features + j];
      if (!isfinite(v)) {
        amp_dataset_free(ds);
        return amp__error(ctx, AMP_ERR_INVALID_ARG,
                          "amp_dataset_from_f32: sample %lld, feature %lld is %s", (long long)i,
                          (long long)j, isnan(v) ? "NaN" : "infinite");
      }
    }
  }
  memcpy(ds->x, x, (size_t)n * (size_t)features * sizeof(float));
  memcpy(ds->y, labels, (size_t)n * sizeof(int32_t));
  *out = ds;
  return AMP_OK;
}

amp_status amp_dataset_slice(amp_ctx *ctx, const amp_dataset *ds, int64_t start, int64_t count,
                             amp_dataset **out) {
  if (!out) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_dataset_slice: out is NULL");
  *out = NULL;
  if (!ds) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_dataset_slice: NULL data set");
  if (start < 0 || count < 1 || start > ds->n || count > ds->n - start)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_dataset_slice: samples [%lld, %lld) are not inside the %lld samples",
                      (long long)start, (long long)(start + count), (long long)ds->n);
  amp_dataset *d;
  amp_status st =
      amp__dataset_alloc(ctx, "amp_dataset_slice", count, ds->features, ds->classes, ds->dtype, &d);
  if (st != AMP_OK) return st;
  size_t row = (size_t)ds->features * amp_dtype_size(ds->dtype);
  memcpy(d->x, (const char *)ds->x + (size_t)start * row, (size_t)count * row);
  memcpy(d->y, ds->y + start, (size_t)count * sizeof(int32_t));
  d->norm_mean = ds->norm_mean;
  d->norm_std = ds->norm_std;
  *out = d;
  return AMP_OK;
}
