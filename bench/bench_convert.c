/* Conversion bandwidth benchmarks. PLACEHOLDER. */
#include "bench.h"

int ampb_convert_suite(int threads) {
  (void)threads;
  return 0;
}
