/* Run-time detection of the SIMD features the fast paths need. */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static unsigned detect(void) {
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

unsigned amp_cpu_features(void) {
  /* The CPU's features are a constant of the process: computed once (cpuid
     traps to the hypervisor on VMs and costs microseconds), then read. Two
     threads racing here compute and store the same value. */
  static atomic_uint cached = 0;
  unsigned v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v == 0) {
    v = detect() | 0x80000000u; /* bit 31: "computed" */
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v & ~0x80000000u;
}
