/* Internal declarations of the data layer: the data set's layout and the
 * layer's own splitmix64 generator. Not part of the public API. */
#ifndef AMPC_DATA_INTERNAL_H
#define AMPC_DATA_INTERNAL_H

#include "../core/internal.h"

#include <stdint.h>

struct amp_dataset {
  int64_t n;        /* samples */
  int64_t features; /* values per sample */
  int64_t classes;  /* labels are in 0..classes-1 */
  amp_dtype dtype;  /* AMP_U8 (raw image bytes) or AMP_F32 */
  void *x;          /* n * features values of dtype, row-major (malloc) */
  int32_t *y;       /* n labels (malloc) */
  float norm_mean;  /* U8 data: the mean and standard deviation of x/255 that */
  float norm_std;   /* the loader's `normalize` uses; 0, 0: MNIST's */
};

/* Allocates a data set with room for n × features values of `dtype` and n
 * labels (contents uninitialised) into *out. On failure *out is NULL and the
 * error (AMP_ERR_INVALID_ARG or AMP_ERR_NOMEM) is returned and recorded with
 * `who` in the message. */
amp_status amp__dataset_alloc(amp_ctx *ctx, const char *who, int64_t n, int64_t features,
                              int64_t classes, amp_dtype dtype, amp_dataset **out);

/* splitmix64 (Steele, Lea, Flood 2014): advances *state and returns 64 bits. */
static inline uint64_t amp__data_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* A uniform integer in [0, bound) for bound >= 1, without modulo bias. */
static inline uint64_t amp__data_below(uint64_t *state, uint64_t bound) {
  uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound */
  for (;;) {
    uint64_t r = amp__data_splitmix64(state);
    if (r >= threshold) return r % bound;
  }
}

/* A double uniform in [0, 1) with 53 random bits (exact). */
static inline double amp__data_uniform(uint64_t *state) {
  return (double)(amp__data_splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
