/* Every one of the 2^32 F32 bit patterns through amp_convert (the production
 * bulk path) to F16, BF16, E4M3 and E5M2, against the double-arithmetic
 * reference of dtype_ref.h. FP8 is checked with and without saturation. */
#include "check.h"
#include "dtype_ref.h"

#include "ampc.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* 2^25 inputs per call: 64 MiB of F16 output, large enough for amp_convert to
 * use its threaded, non-temporal-store path. */
#define BLOCK ((size_t)1 << 25)

/* An optional argument limits the run to that many blocks (quick checks). */
int main(int argc, char **argv) {
  const uint64_t end = argc > 1 ? strtoull(argv[1], NULL, 0) * BLOCK : UINT64_C(1) << 32;
  ref_init();
  float *x = malloc(BLOCK * sizeof(float));
  uint16_t *h = malloc(BLOCK * 2), *b = malloc(BLOCK * 2);
  uint8_t *e4[2] = {malloc(BLOCK), malloc(BLOCK)}, *e5[2] = {malloc(BLOCK), malloc(BLOCK)};
  if (!x || !h || !b || !e4[0] || !e4[1] || !e5[0] || !e5[1]) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  uint64_t checked = 0, bad[6] = {0};
  time_t t0 = time(NULL);
  for (uint64_t base = 0; base < end && base < (UINT64_C(1) << 32); base += BLOCK) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BLOCK; i++) x[i] = ref_bits_f32((uint32_t)(base + i));
    int rc = amp_convert(h, AMP_F16, x, AMP_F32, BLOCK);
    rc |= amp_convert(b, AMP_BF16, x, AMP_F32, BLOCK);
    for (int sat = 0; sat < 2; sat++) {
      amp_convert_opts o = {AMP_ROUND_NEAREST_EVEN, sat, 0, 0};
      rc |= amp_convert_ex(e4[sat], AMP_E4M3, x, AMP_F32, BLOCK, &o);
      rc |= amp_convert_ex(e5[sat], AMP_E5M2, x, AMP_F32, BLOCK, &o);
    }
    CHECK(rc == AMP_OK, "amp_convert failed at block 0x%" PRIx64, base);
    uint64_t b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0;
#pragma omp parallel for schedule(static) reduction(+ : b0, b1, b2, b3, b4, b5)
    for (size_t i = 0; i < BLOCK; i++) {
      float f = x[i];
      b0 += h[i] != ref_dbl(&REF_F16, f, 0);
      b1 += b[i] != ref_dbl(&REF_BF16, f, 0);
      b2 += e4[0][i] != ref_dbl(&REF_E4M3, f, 0);
      b3 += e4[1][i] != ref_dbl(&REF_E4M3, f, 1);
      b4 += e5[0][i] != ref_dbl(&REF_E5M2, f, 0);
      b5 += e5[1][i] != ref_dbl(&REF_E5M2, f, 1);
    }
    uint64_t nb[6] = {b0, b1, b2, b3, b4, b5};
    for (int k = 0; k < 6; k++) {
      if (nb[k] && !bad[k])
        fprintf(stderr, "first mismatch (conversion %d) in block 0x%" PRIx64 "\n", k, base);
      bad[k] += nb[k];
    }
    checked += BLOCK;
  }
  static const char *names[6] = {"f16", "bf16", "e4m3", "e4m3 sat", "e5m2", "e5m2 sat"};
  for (int k = 0; k < 6; k++) {
    printf("f32 -> %-8s: %" PRIu64 " inputs checked, %" PRIu64 " mismatches\n", names[k], checked,
           bad[k]);
    CHECK(bad[k] == 0, "%s: %" PRIu64 " mismatches", names[k], bad[k]);
  }
  printf("%.0f s\n", difftime(time(NULL), t0));
  free(x), free(h), free(b), free(e4[0]), free(e4[1]), free(e5[0]), free(e5[1]);
  TEST_MAIN_END();
}
