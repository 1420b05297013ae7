/* libFuzzer harness: amp_safetensors_parse() on arbitrary bytes. Whatever it
 * accepts must be consistent: every tensor's bytes readable (ASan checks the
 * bounds) and findable by name, every metadata key findable. */
#include "ampc.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_parse(NULL, data, size, &f) != AMP_OK) {
    if (f) __builtin_trap();
    return 0;
  }
  unsigned sum = 0;
  for (int i = 0; i < amp_safetensors_count(f); i++) {
    const amp_st_tensor *t = amp_safetensors_at(f, i);
    if (amp_safetensors_find(f, t->name) != t) __builtin_trap();
    for (size_t b = 0; b < t->bytes; b++) sum += ((const uint8_t *)t->data)[b];
  }
  for (int i = 0; i < amp_safetensors_meta_count(f); i++) {
    const char *v = NULL;
    const char *k = amp_safetensors_meta_at(f, i, &v);
    if (!k || amp_safetensors_meta(f, k) != v) __builtin_trap();
  }
  volatile unsigned sink = sum; /* keeps the reads */
  (void)sink;
  amp_safetensors_free(f);
  return 0;
}
