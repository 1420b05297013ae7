/* Elementwise kernel benchmarks. PLACEHOLDER. */
#include "bench.h"

int ampb_eltwise_suite(int threads) {
  (void)threads;
  return 0;
}
