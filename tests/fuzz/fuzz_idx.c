/* libFuzzer harness: amp_idx_parse() on arbitrary bytes, expecting 1 and 3
 * dimensions. On success the payload must lie inside the input and hold
 * exactly the product of the dimensions. */
#include "ampc.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int ndims[2] = {1, 3};
  for (int k = 0; k < 2; k++) {
    int64_t dims[3] = {0, 0, 0};
    const uint8_t *payload = NULL;
    if (amp_idx_parse(NULL, data, size, ndims[k], dims, &payload) != AMP_OK) continue;
    uint64_t n = (uint64_t)dims[0] * (uint64_t)dims[1] * (uint64_t)dims[2];
    if (payload < data || (uint64_t)(data + size - payload) != n) __builtin_trap();
    unsigned sum = 0;
    for (uint64_t i = 0; i < n; i++) sum += payload[i];
    volatile unsigned sink = sum; /* keeps the reads */
    (void)sink;
  }
  return 0;
}
