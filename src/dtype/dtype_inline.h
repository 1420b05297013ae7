/* Scalar, bit-exact conversions between F32 and the 16-bit formats, inline so
 * that every kernel's scalar reference path can use them. These are the
 * reference the SIMD paths are tested against; they reproduce x86 F16C bit
 * for bit, NaN payloads included (NaN is quieted, payload kept). */
#ifndef AMPC_DTYPE_INLINE_H
#define AMPC_DTYPE_INLINE_H

#include <stdint.h>
#include <string.h>

static inline uint32_t amp__f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static inline float amp__bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* binary16 bits → binary32 (exact). */
static inline float amp__f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    /* zero or subnormal: man · 2^-24, exact in F32 */
    float v = (float)man * 0x1p-24f;
    return amp__bits_f32(amp__f32_bits(v) | sign);
  }
  if (exp == 31) return amp__bits_f32(sign | 0x7f800000u | (man ? 0x400000u : 0) | (man << 13));
  return amp__bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* binary32 → binary16 bits, round to nearest even. */
static inline uint16_t amp__f32_to_f16(float f) {
  uint32_t x = amp__f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) { /* inf or NaN */
    if (ax == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  }
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 → inf */
  if (ax < 0x38800000u) {                                   /* below 2^-14 */
    if (ax < 0x33000000u) return (uint16_t)sign;            /* below 2^-25 → ±0 */
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
  r -= 112u << 23;
  return (uint16_t)(sign | (r >> 13));
}

/* bfloat16 bits → binary32 (exact). */
static inline float amp__bf16_to_f32(uint16_t h) { return amp__bits_f32((uint32_t)h << 16); }

/* binary32 → bfloat16 bits, round to nearest even; NaN is quieted. */
static inline uint16_t amp__f32_to_bf16(float f) {
  uint32_t x = amp__f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* Load element i of a buffer of dtype dt (F32, F16 or BF16) as F32. */
static inline float amp__load_f32(const void *p, int dt, size_t i) {
  switch (dt) {
  case 1: return amp__f16_to_f32(((const uint16_t *)p)[i]);
  case 2: return amp__bf16_to_f32(((const uint16_t *)p)[i]);
  default: return ((const float *)p)[i];
  }
}

/* Store v, rounded to nearest even, as element i of a buffer of dtype dt. */
static inline void amp__store_f32(void *p, int dt, size_t i, float v) {
  switch (dt) {
  case 1: ((uint16_t *)p)[i] = amp__f32_to_f16(v); break;
  case 2: ((uint16_t *)p)[i] = amp__f32_to_bf16(v); break;
  default: ((float *)p)[i] = v; break;
  }
}

#endif
