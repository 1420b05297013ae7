/* A small deterministic generator (splitmix64): the same seed gives the same
 * numbers on every machine, which makes model initialisation reproducible. */
#include "internal.h"

#include <math.h>

void amp_rng_seed(amp_rng *rng, uint64_t seed) {
  if (rng) rng->state = seed;
}

uint64_t amp_rng_next(amp_rng *rng) {
  uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float amp_rng_uniform(amp_rng *rng, float lo, float hi) {
  /* 24 random bits give every float of [0, 1) on a 2^-24 grid. */
  float u = (float)(amp_rng_next(rng) >> 40) * 0x1.0p-24f;
  return lo + (hi - lo) * u;
}

float amp_rng_normal(amp_rng *rng) {
  /* Box-Muller in double; u1 in (0, 1] so the log is finite. */
  double u1 = ((double)(amp_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
  double u2 = (double)(amp_rng_next(rng) >> 11) * 0x1.0p-53;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
