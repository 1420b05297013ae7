/* Run-time detection of the SIMD features the fast paths need. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

unsigned amp_cpu_features(void) {
  unsigned f = 0;
#if defined(AMPC_HAVE_X86_SIMD) && (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  const char *env = getenv("AMPC_SIMD");
  if (env && strcmp(env, "0") == 0) return 0;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) f |= AMP_CPU_AVX2;
  if (__builtin_cpu_supports("fma")) f |= AMP_CPU_FMA;
  /* gcc 12 has no "f16c" name for __builtin_cpu_supports: ask cpuid. */
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  if (c & (1u << 29)) f |= AMP_CPU_F16C;
#endif
  return f;
}
