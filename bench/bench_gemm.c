/* GEMM benchmarks. PLACEHOLDER until the GEMM kernel lands. */
#include "bench.h"

#include <stdio.h>

int ampb_gemm_cmd(int argc, char **argv) {
  (void)argc, (void)argv;
  fprintf(stderr, "ampc bench gemm: not implemented yet\n");
  return 1;
}

int ampb_gemm_suite(int threads) {
  (void)threads;
  return 0;
}
