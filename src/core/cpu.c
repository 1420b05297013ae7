/* Run-time detection of the SIMD features the fast paths need and of the
 * cache sizes the GEMM blocking is derived from. */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(AMPC_HAVE_X86_SIMD) && (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define AMP__X86_CPUID 1
#else
#define AMP__X86_CPUID 0
#endif

#if AMP__X86_CPUID
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
#endif

static unsigned detect(void) {
  unsigned f = 0;
#if AMP__X86_CPUID
  const char *env = getenv("AMPC_SIMD");
  if (env && strcmp(env, "0") == 0) return 0;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) f |= AMP_CPU_AVX2;
  if (__builtin_cpu_supports("fma")) f |= AMP_CPU_FMA;
  /* gcc 12 has no "f16c" name for __builtin_cpu_supports: ask cpuid. */
  unsigned r[4];
  cpuid(1, 0, r);
  if (r[2] & (1u << 29)) f |= AMP_CPU_F16C;
  /* libgcc's "avx512f" also checks that the OS saves the ZMM state (XCR0). */
  if (__builtin_cpu_supports("avx512f")) {
    f |= AMP_CPU_AVX512F;
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    if (max_leaf >= 7) {
      cpuid(7, 1, r); /* leaf 7, subleaf 1: EAX bit 5 is AVX512_BF16 */
      if (r[0] & (1u << 5)) f |= AMP_CPU_AVX512BF16;
    }
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"))
      f |= AMP_CPU_AVX512VNNI;
  }
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

#if AMP__X86_CPUID
/* Data/unified caches from cpuid's deterministic cache parameters: leaf 4
 * (Intel) or 0x8000001D (AMD, with TOPOEXT); same layout. Sizes per cache
 * instance (what one core sees). Returns 0 when the CPU has neither leaf. */
static int caches_cpuid(size_t size[4]) {
  unsigned r[4];
  cpuid(0, 0, r);
  unsigned leaf = 4, max_leaf = r[0];
  const int amd = r[1] == 0x68747541u; /* "Auth"enticAMD */
  if (amd) {
    cpuid(0x80000000u, 0, r);
    unsigned ext = r[0];
    cpuid(0x80000001u, 0, r);
    if (ext < 0x8000001Du || !(r[2] & (1u << 22))) return 0; /* TOPOEXT */
    leaf = 0x8000001Du;
  } else if (max_leaf < 4) {
    return 0;
  }
  int found = 0;
  for (unsigned i = 0; i < 16; i++) {
    cpuid(leaf, i, r);
    unsigned type = r[0] & 31, level = (r[0] >> 5) & 7;
    if (type == 0) break;
    if (type == 2 || level < 1 || level > 3) continue; /* instruction caches */
    size_t ways = (r[1] >> 22) + 1, parts = ((r[1] >> 12) & 1023) + 1, line = (r[1] & 4095) + 1;
    size[level] = ways * parts * line * ((size_t)r[2] + 1);
    found = 1;
  }
  return found;
}
#endif

/* The same from Linux's sysfs (other architectures, or no cpuid leaf). */
static void caches_sysfs(size_t size[4]) {
  for (int i = 0; i < 8; i++) {
    char path[96], buf[32];
    size_t level = 0, bytes = 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    FILE *f = fopen(path, "r");
    if (!f) break;
    if (fgets(buf, sizeof buf, f)) level = (size_t)strtoul(buf, NULL, 10);
    fclose(f);
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
    f = fopen(path, "r");
    int instr = f && fgets(buf, sizeof buf, f) && strncmp(buf, "Instruction", 11) == 0;
    if (f) fclose(f);
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    f = fopen(path, "r");
    if (f && fgets(buf, sizeof buf, f)) {
      char *end;
      bytes = (size_t)strtoul(buf, &end, 10);
      if (*end == 'K') bytes <<= 10;
      if (*end == 'M') bytes <<= 20;
    }
    if (f) fclose(f);
    if (!instr && level >= 1 && level <= 3 && bytes) size[level] = bytes;
  }
}

void amp__cpu_caches(amp__cache_sizes *c) {
  /* A constant of the process, like the features: found once. */
  static atomic_size_t cached[4];
  if (atomic_load_explicit(&cached[0], memory_order_acquire) == 0) {
    size_t size[4] = {1, 0, 0, 0};
#if AMP__X86_CPUID
    if (!caches_cpuid(size)) caches_sysfs(size);
#else
    caches_sysfs(size);
#endif
    /* Missing levels: a common small core's (32 KiB, 512 KiB, 8 MiB). */
    if (!size[1]) size[1] = (size_t)32 << 10;
    if (!size[2]) size[2] = (size_t)512 << 10;
    if (!size[3]) size[3] = (size_t)8 << 20;
    for (int i = 1; i < 4; i++) atomic_store_explicit(&cached[i], size[i], memory_order_relaxed);
    atomic_store_explicit(&cached[0], 1, memory_order_release);
  }
  c->l1d = atomic_load_explicit(&cached[1], memory_order_relaxed);
  c->l2 = atomic_load_explicit(&cached[2], memory_order_relaxed);
  c->l3 = atomic_load_explicit(&cached[3], memory_order_relaxed);
}
