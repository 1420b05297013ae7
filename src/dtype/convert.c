/* Conversions between number formats: the per-element helpers of ampc.h, the
 * scalar bulk kernels and amp_convert(), which runs the kernels of the
 * CPU's kernel table (core/kernels.h) and splits large arrays across OpenMP
 * threads. */
#include "../core/internal.h"
#include "convert_internal.h"
#include "dtype_inline.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- FP8 elements ------------------------------------------------------ */

/* Rounds a finite F32 magnitude `ax` (bits) to nearest even in an FP8 format
 * with `mbits` mantissa bits and exponent bias `bias`. Returns the magnitude
 * code, which exceeds the largest finite code on overflow (callers apply the
 * overflow rule). */
static inline uint32_t fp8_round_mag(uint32_t ax, uint32_t mbits, uint32_t bias) {
  const uint32_t e = ax >> 23;
  if (e < 128 - bias) { /* below the smallest normal 2^(1-bias): subnormal */
    /* value = m·2^(e-150), quantum 2^(1-bias-mbits): q = m >> shift. F32
       subnormals and anything below half the smallest subnormal give 0. */
    if (e == 0) return 0;
    uint32_t shift = 151 - bias - mbits - e;
    if (shift > 24) return 0;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1u)));
  }
  /* Normal: add just under half an ulp (plus the kept LSB, for ties to even);
     a carry out of the mantissa bumps the exponent, as it should. */
  uint32_t r = ax + ((1u << (22 - mbits)) - 1) + ((ax >> (23 - mbits)) & 1u);
  return (r - ((127 - bias) << 23)) >> (23 - mbits);
}

uint8_t amp__f32_to_e4m3(float f, int saturate) {
  uint32_t x = amp__f32_bits(f);
  uint32_t sign = (x >> 24) & 0x80u, ax = x & 0x7fffffffu;
  const uint32_t over = saturate ? 0x7eu : 0x7fu; /* ±448 or NaN */
  if (ax > 0x7f800000u) return (uint8_t)(sign | 0x7fu);
  if (ax == 0x7f800000u) return (uint8_t)(sign | over);
  uint32_t m = fp8_round_mag(ax, 3, 7);
  return (uint8_t)(sign | (m > 0x7eu ? over : m));
}

uint8_t amp__f32_to_e5m2(float f, int saturate) {
  uint32_t x = amp__f32_bits(f);
  uint32_t sign = (x >> 24) & 0x80u, ax = x & 0x7fffffffu;
  const uint32_t over = saturate ? 0x7bu : 0x7cu; /* ±57344 or ±inf */
  if (ax > 0x7f800000u) return (uint8_t)(sign | 0x7eu);
  if (ax == 0x7f800000u) return (uint8_t)(sign | over);
  uint32_t m = fp8_round_mag(ax, 2, 15);
  return (uint8_t)(sign | (m > 0x7bu ? over : m));
}

float amp__e4m3_to_f32(uint8_t v) {
  uint32_t sign = (uint32_t)(v & 0x80u) << 24;
  uint32_t e = (v >> 3) & 0xfu, m = v & 7u;
  if ((v & 0x7fu) == 0x7fu) return amp__bits_f32(sign | 0x7fc00000u);
  if (e == 0) return amp__bits_f32(amp__f32_bits((float)m * 0x1p-9f) | sign);
  return amp__bits_f32(sign | ((e + 120) << 23) | (m << 20));
}

/* E5M2 is the top byte of an F16. */
float amp__e5m2_to_f32(uint8_t v) { return amp__f16_to_f32((uint16_t)(v << 8)); }

float amp_f16_to_f32(amp_f16 h) { return amp__f16_to_f32(h.bits); }
amp_f16 amp_f32_to_f16(float f) { return (amp_f16){amp__f32_to_f16(f)}; }
float amp_bf16_to_f32(amp_bf16 h) { return amp__bf16_to_f32(h.bits); }
amp_bf16 amp_f32_to_bf16(float f) { return (amp_bf16){amp__f32_to_bf16(f)}; }
float amp_e4m3_to_f32(amp_e4m3 v) { return amp__e4m3_to_f32(v.bits); }
amp_e4m3 amp_f32_to_e4m3(float f, int saturate) {
  return (amp_e4m3){amp__f32_to_e4m3(f, saturate)};
}
float amp_e5m2_to_f32(amp_e5m2 v) { return amp__e5m2_to_f32(v.bits); }
amp_e5m2 amp_f32_to_e5m2(float f, int saturate) {
  return (amp_e5m2){amp__f32_to_e5m2(f, saturate)};
}

/* ---- Stochastic rounding ---------------------------------------------- */

/* The splitmix64 finaliser. */
static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

uint64_t amp__sr_key(uint64_t seed) { return mix64(seed ^ 0x6a09e667f3bcc909u); }
uint64_t amp__sr_bits(uint64_t key, uint64_t idx) {
  return mix64(key + (idx + 1) * 0x9e3779b97f4a7c15u);
}

/* BF16 drops 16 bits: adding 16 random bits to them carries into the kept
 * part with probability (discarded bits)/2^16, exactly (x - lo)/(hi - lo). */
uint16_t amp__f32_to_bf16_sr(float f, uint64_t r) {
  uint32_t x = amp__f32_bits(f);
  if ((x & 0x7fffffffu) >= 0x7f800000u) return amp__f32_to_bf16(f);
  uint32_t sign = x & 0x80000000u, ax = x & 0x7fffffffu;
  return (uint16_t)((sign | (ax + (uint32_t)(r >> 48))) >> 16);
}

uint16_t amp__f32_to_f16_sr(float f, uint64_t r) {
  uint32_t x = amp__f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return amp__f32_to_f16(f);
  if (ax >= 0x47800000u) return (uint16_t)(sign | 0x7c00u); /* >= 65536: past max + ulp */
  if (ax >= 0x38800000u)                                    /* normal result: 13 discarded bits */
    return (uint16_t)(sign | (((ax + (uint32_t)(r >> 51)) >> 13) - (112u << 10)));
  /* Subnormal result (quantum 2^-24): value = m·2^-shift quanta. */
  uint32_t e = ax >> 23;
  uint64_t m = e ? (ax & 0x7fffffu) | 0x800000u : ax;
  uint32_t shift = e ? 126 - e : 125; /* >= 14 */
  uint64_t q, up;
  if (shift < 64) {
    q = m >> shift;
    up = ((m & ((UINT64_C(1) << shift) - 1)) + (r >> (64 - shift))) >> shift;
  } else {                          /* below 2^-40: probability m/2^shift, resolved to 2^-64 */
    uint64_t t = m >> (shift - 64); /* the carry of r + t out of 64 bits */
    q = 0;
    up = t && r >= (uint64_t)0 - t;
  }
  return (uint16_t)(sign | (q + up));
}

/* ---- Scalar bulk kernels ----------------------------------------------- */

/* One loop per direction and element format. NARROW's `elt` is the
 * expression for element i, written with src[i] and `saturate`. */
#define WIDEN(name, T, elt)                                                                        \
  void name(float *dst, const void *src, size_t n) {                                               \
    const T *s = src;                                                                              \
    for (size_t i = 0; i < n; i++) dst[i] = elt(s[i]);                                             \
  }
#define NARROW(name, T, elt)                                                                       \
  void name(void *dst, const float *src, size_t n, int flags) {                                    \
    T *d = dst;                                                                                    \
    const int saturate = (flags & AMP__CVT_SATURATE) != 0;                                         \
    (void)saturate; /* F16 and BF16 have inf: nothing to saturate */                               \
    for (size_t i = 0; i < n; i++) d[i] = elt;                                                     \
  }
#define NARROW_SR(name, elt)                                                                       \
  void name(void *dst, const float *src, size_t n, uint64_t key, uint64_t idx0) {                  \
    uint16_t *d = dst;                                                                             \
    for (size_t i = 0; i < n; i++) d[i] = elt(src[i], amp__sr_bits(key, idx0 + i));                \
  }

WIDEN(amp__cvt_f16_to_f32_scalar, uint16_t, amp__f16_to_f32)
WIDEN(amp__cvt_bf16_to_f32_scalar, uint16_t, amp__bf16_to_f32)
WIDEN(amp__cvt_e4m3_to_f32_scalar, uint8_t, amp__e4m3_to_f32)
WIDEN(amp__cvt_e5m2_to_f32_scalar, uint8_t, amp__e5m2_to_f32)
NARROW(amp__cvt_f32_to_f16_scalar, uint16_t, amp__f32_to_f16(src[i]))
NARROW(amp__cvt_f32_to_bf16_scalar, uint16_t, amp__f32_to_bf16(src[i]))
NARROW(amp__cvt_f32_to_e4m3_scalar, uint8_t, amp__f32_to_e4m3(src[i], saturate))
NARROW(amp__cvt_f32_to_e5m2_scalar, uint8_t, amp__f32_to_e5m2(src[i], saturate))
NARROW_SR(amp__cvt_f32_to_f16_sr_scalar, amp__f32_to_f16_sr)
NARROW_SR(amp__cvt_f32_to_bf16_sr_scalar, amp__f32_to_bf16_sr)

/* ---- amp_convert ------------------------------------------------------- */

/* Work split: blocks of CHUNK elements across threads once n > PAR_MIN;
 * F32 -> F16/BF16 uses non-temporal stores once the output exceeds
 * NT_MIN_BYTES (far past any LLC, so the output would be evicted anyway). */
#define CHUNK ((size_t)1 << 16)
#define PAR_MIN ((size_t)1 << 20)
#define NT_MIN_BYTES ((size_t)64 << 20)

typedef struct cvt_plan {
  const amp__kernels *k;
  amp_dtype dt, st;
  int flags, sr; /* flags: AMP__CVT_* for from_f32; sr: stochastic rounding */
  uint64_t key, offset;
} cvt_plan;

/* n F32 elements → type dt; `start` is the index of src[0] in the call. */
static void from_f32(void *dst, const float *src, const cvt_plan *p, size_t n, size_t start) {
  if (p->sr)
    p->k->from_f32_sr[p->dt](dst, src, n, p->key, p->offset + start);
  else
    p->k->from_f32[p->dt](dst, src, n, p->flags);
}

/* Converts elements [start, start + n) of the call. Two narrow types go
 * through an F32 buffer on the stack (the widening step is exact). */
static void cvt_block(void *dst, const void *src, const cvt_plan *p, size_t start, size_t n) {
  const size_t ds = amp_dtype_size(p->dt), ss = amp_dtype_size(p->st);
  unsigned char *d = (unsigned char *)dst + start * ds;
  const unsigned char *s = (const unsigned char *)src + start * ss;
  if (p->st == AMP_F32) {
    from_f32(d, (const float *)s, p, n, start);
  } else if (p->dt == AMP_F32) {
    p->k->to_f32[p->st]((float *)d, s, n);
  } else {
    float buf[1024];
    for (size_t i = 0; i < n; i += 1024) {
      size_t m = n - i < 1024 ? n - i : 1024;
      p->k->to_f32[p->st](buf, s + i * ss, m);
      from_f32(d + i * ds, buf, p, m, start + i);
    }
  }
}

amp_status amp__convert_impl(void *dst, amp_dtype dst_type, const void *src, amp_dtype src_type,
                             size_t n, const amp_convert_opts *opts, const amp__kernels *k,
                             int threads) {
  static const amp_convert_opts defaults;
  if (!opts) opts = &defaults;
  if (n == 0) return AMP_OK;
  if (!dst || !src) return AMP_ERR_INVALID_ARG;
  if (!amp_dtype_is_float(dst_type) || !amp_dtype_is_float(src_type)) return AMP_ERR_UNSUPPORTED;
  if (opts->rounding != AMP_ROUND_NEAREST_EVEN && opts->rounding != AMP_ROUND_STOCHASTIC)
    return AMP_ERR_INVALID_ARG;
  const int sr = opts->rounding == AMP_ROUND_STOCHASTIC;
  if (sr && !(src_type == AMP_F32 && k->from_f32_sr[dst_type])) return AMP_ERR_UNSUPPORTED;
  if (dst_type == src_type) {
    if (dst != src) memmove(dst, src, n * amp_dtype_size(dst_type));
    return AMP_OK;
  }
  cvt_plan p = {k, dst_type, src_type, opts->saturate ? AMP__CVT_SATURATE : 0, sr, 0, opts->offset};
  if (src_type == AMP_F32 && n * amp_dtype_size(dst_type) >= NT_MIN_BYTES) p.flags |= AMP__CVT_NT;
  if (sr) p.key = amp__sr_key(opts->seed);
  if (n <= PAR_MIN) {
    cvt_block(dst, src, &p, 0, n);
    return AMP_OK;
  }
  const size_t chunks = (n + CHUNK - 1) / CHUNK;
#ifdef _OPENMP
  if (threads <= 0) threads = omp_get_max_threads();
#endif
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
  for (size_t c = 0; c < chunks; c++) {
    size_t start = c * CHUNK;
    cvt_block(dst, src, &p, start, n - start < CHUNK ? n - start : CHUNK);
  }
  return AMP_OK;
}

amp_status amp_convert_ex(void *dst, amp_dtype dst_type, const void *src, amp_dtype src_type,
                          size_t n, const amp_convert_opts *opts) {
  return amp__convert_impl(dst, dst_type, src, src_type, n, opts, amp__kernels_native(), 0);
}

amp_status amp__convert(amp_ctx *ctx, void *dst, amp_dtype dst_type, const void *src,
                        amp_dtype src_type, size_t n, const amp_convert_opts *opts) {
  return amp__convert_impl(dst, dst_type, src, src_type, n, opts, amp__kernels_of(ctx),
                           ctx ? amp__threads(ctx) : 0);
}

amp_status amp_convert(void *dst, amp_dtype dst_type, const void *src, amp_dtype src_type,
                       size_t n) {
  return amp_convert_ex(dst, dst_type, src, src_type, n, NULL);
}
