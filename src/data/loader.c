/* The batch loader: seeded per-epoch shuffling, batching, scaling of U8
 * images and conversion to the compute dtype. */
#include "data_internal.h"

#include <stdlib.h>
#include <string.h>

/* MNIST's pixel mean and standard deviation (of x/255 over the train set). */
#define AMP_MNIST_MEAN 0.1307f
#define AMP_MNIST_STD 0.3081f

struct amp_loader {
  amp_ctx *ctx;
  const amp_dataset *ds;
  amp_loader_params p;
  int64_t *perm;       /* this epoch's order of the samples */
  int64_t epoch;       /* epochs completed */
  int64_t next;        /* position in perm of the next sample */
  float lut[256];      /* U8 data: the F32 value of each byte */
  uint16_t lut16[256]; /* U8 data, F16/BF16 batches: lut rounded once */
  float *stage;        /* F32 data sets batched in F16/BF16: batch × features staging */
};

/* Fills perm with this epoch's order: identity, or a Fisher-Yates shuffle
 * driven by splitmix64 seeded from (seed, epoch). */
static void make_perm(amp_loader *l) {
  int64_t n = l->ds->n;
  for (int64_t i = 0; i < n; i++) l->perm[i] = i;
  if (!l->p.shuffle) return;
  uint64_t s = l->p.seed ^ (0xD1B54A32D192ED03ull * ((uint64_t)l->epoch + 1));
  (void)amp__data_splitmix64(&s);
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)amp__data_below(&s, (uint64_t)i + 1);
    int64_t t = l->perm[i];
    l->perm[i] = l->perm[j];
    l->perm[j] = t;
  }
}

amp_loader *amp_loader_create(amp_ctx *ctx, const amp_dataset *ds, const amp_loader_params *p) {
  if (!ctx) return NULL;
  if (!ds || !p) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_loader_create: %s is NULL",
               !ds ? "dataset" : "params");
    return NULL;
  }
  if (p->batch < 1) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_loader_create: batch %lld is not positive",
               (long long)p->batch);
    return NULL;
  }
  if (p->dtype != AMP_F32 && p->dtype != AMP_F16 && p->dtype != AMP_BF16) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "amp_loader_create: batch dtype %s is not f32, f16 or bf16",
               amp_dtype_name(p->dtype));
    return NULL;
  }
  int64_t b = p->batch < ds->n ? p->batch : ds->n; /* the largest batch ever made */
  if ((uint64_t)ds->n > SIZE_MAX / sizeof(int64_t) ||
      (uint64_t)ds->features > SIZE_MAX / sizeof(float) / (uint64_t)b) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_loader_create: batch of %lld x %lld too large",
               (long long)b, (long long)ds->features);
    return NULL;
  }
  /* U8 data go straight through a table into the batch's dtype. */
  const int need_stage = p->dtype != AMP_F32 && ds->dtype != AMP_U8;
  amp_loader *l = calloc(1, sizeof *l);
  if (l) {
    l->perm = malloc((size_t)ds->n * sizeof(int64_t));
    if (need_stage) l->stage = malloc((size_t)b * (size_t)ds->features * sizeof(float));
  }
  if (!l || !l->perm || (need_stage && !l->stage)) {
    amp_loader_free(l);
    amp__error(ctx, AMP_ERR_NOMEM, "amp_loader_create: out of memory");
    return NULL;
  }
  l->ctx = ctx;
  l->ds = ds;
  l->p = *p;
  float mean = ds->norm_std > 0 ? ds->norm_mean : AMP_MNIST_MEAN;
  float std = ds->norm_std > 0 ? ds->norm_std : AMP_MNIST_STD;
  for (int v = 0; v < 256; v++) {
    float f = (float)v / 255.0f;
    l->lut[v] = p->normalize ? (f - mean) / std : f;
  }
  if (p->dtype != AMP_F32) amp__convert(ctx, l->lut16, p->dtype, l->lut, AMP_F32, 256, NULL);
  make_perm(l);
  return l;
}

void amp_loader_free(amp_loader *l) {
  if (!l) return;
  free(l->perm);
  free(l->stage);
  free(l);
}

int64_t amp_loader_batches_per_epoch(const amp_loader *l) {
  if (!l) return 0;
  int64_t n = l->ds->n, b = l->p.batch;
  return l->p.drop_last ? n / b : n / b + (n % b != 0);
}

int amp_loader_next(amp_loader *l, amp_tensor **x, amp_tensor **y) {
  if (x) *x = NULL;
  if (y) *y = NULL;
  if (!l) return -1;
  if (!x || !y) {
    amp__error(l->ctx, AMP_ERR_INVALID_ARG, "amp_loader_next: x or y is NULL");
    return -1;
  }
  const amp_dataset *ds = l->ds;
  int64_t left = ds->n - l->next;
  if (left <= 0 || (l->p.drop_last && left < l->p.batch)) {
    l->epoch++;
    l->next = 0;
    make_perm(l);
    return 0;
  }
  int64_t b = left < l->p.batch ? left : l->p.batch, f = ds->features;
  int64_t xs[2] = {b, f};
  amp_tensor *tx = amp_tensor_new(l->ctx, AMP_ARENA_STEP, l->p.dtype, 2, xs);
  amp_tensor *ty = tx ? amp_tensor_new(l->ctx, AMP_ARENA_STEP, AMP_I32, 1, &b) : NULL;
  if (!ty) return -1;
  const int64_t *idx = l->perm + l->next;
  int32_t *yd = ty->data;
  for (int64_t i = 0; i < b; i++) yd[i] = ds->y[idx[i]];
  if (ds->dtype == AMP_U8) {
    /* One table look-up per pixel, straight into the batch's dtype (the
       16-bit table holds the F32 values rounded once, as a conversion of
       the F32 batch would). Rows are independent: split across threads. */
    const uint8_t *src = ds->x;
    const int wide = l->p.dtype == AMP_F32;
#pragma omp parallel for num_threads(amp_ctx_threads(l->ctx)) schedule(static) if (b * f >= 65536)
    for (int64_t i = 0; i < b; i++) {
      const uint8_t *in = src + idx[i] * f;
#if defined(__GNUC__)
      /* The samples are scattered over the data set (mostly in DRAM): ask
         for the row after next while this one is converted. */
      if (i + 2 < b) {
        const uint8_t *ahead = src + idx[i + 2] * f;
        for (int64_t j = 0; j < f; j += 64) __builtin_prefetch(ahead + j, 0, 3);
        __builtin_prefetch(ahead + f - 1, 0, 3);
      }
#endif
      if (wide) {
        float *row = (float *)tx->data + i * f;
        for (int64_t j = 0; j < f; j++) row[j] = l->lut[in[j]];
      } else {
        uint16_t *row = (uint16_t *)tx->data + i * f;
        for (int64_t j = 0; j < f; j++) row[j] = l->lut16[in[j]];
      }
    }
  } else {
    float *dst = l->p.dtype == AMP_F32 ? tx->data : l->stage;
    for (int64_t i = 0; i < b; i++)
      memcpy(dst + i * f, (const float *)ds->x + idx[i] * f, (size_t)f * sizeof(float));
    if (l->p.dtype != AMP_F32) {
      amp_status st =
          amp__convert(l->ctx, tx->data, l->p.dtype, l->stage, AMP_F32, (size_t)(b * f), NULL);
      if (st != AMP_OK) {
        amp__error(l->ctx, st, "amp_loader_next: cannot convert the batch to %s",
                   amp_dtype_name(l->p.dtype));
        return -1;
      }
    }
  }
  l->next += b;
  *x = tx;
  *y = ty;
  return 1;
}

amp_loader_state amp_loader_get_state(const amp_loader *l) {
  amp_loader_state s = {0, 0};
  if (l) {
    s.epoch = l->epoch;
    s.next = l->next;
  }
  return s;
}

amp_status amp_loader_set_state(amp_loader *l, amp_loader_state s) {
  if (!l) return AMP_ERR_INVALID_ARG;
  if (s.epoch < 0 || s.next < 0 || s.next > l->ds->n)
    return amp__error(l->ctx, AMP_ERR_INVALID_ARG,
                      "amp_loader_set_state: epoch %lld / next %lld out of range (next must be "
                      "in 0..%lld)",
                      (long long)s.epoch, (long long)s.next, (long long)l->ds->n);
  int64_t old = l->epoch;
  l->epoch = s.epoch;
  l->next = s.next;
  if (l->p.shuffle && old != s.epoch) make_perm(l);
  return AMP_OK;
}

amp_loader_params amp_loader_get_params(const amp_loader *l) {
  amp_loader_params p;
  memset(&p, 0, sizeof p);
  if (l) p = l->p;
  return p;
}
