/* Independent references for F32 → F16/BF16/E4M3/E5M2 rounding, written
 * differently from src/dtype: one searches a table of the target's finite
 * values, the other rounds in double arithmetic. Both then apply the overflow
 * rules of ampc.h. Results are bit patterns (sign in the top bit). */
#ifndef AMPC_TEST_DTYPE_REF_H
#define AMPC_TEST_DTYPE_REF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref_fmt {
  const char *name;
  int bits, mbits, bias;
  uint32_t max_code; /* largest finite magnitude */
  uint32_t inf_code; /* 0 when the format has no inf */
  double *tab;       /* tab[c] = value of magnitude code c, c <= max_code + 1 */
} ref_fmt;

static ref_fmt REF_F16 = {"f16", 16, 10, 15, 0x7bff, 0x7c00, NULL};
static ref_fmt REF_BF16 = {"bf16", 16, 7, 127, 0x7f7f, 0x7f80, NULL};
static ref_fmt REF_E4M3 = {"e4m3", 8, 3, 7, 0x7e, 0, NULL};
static ref_fmt REF_E5M2 = {"e5m2", 8, 2, 15, 0x7b, 0x7c, NULL};

static inline uint32_t ref_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
static inline float ref_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* The value of a finite magnitude code, from the format's definition. */
static inline double ref_decode(const ref_fmt *F, uint32_t c) {
  uint32_t e = c >> F->mbits, m = c & ((1u << F->mbits) - 1);
  if (e == 0) return ldexp((double)m, 1 - F->bias - F->mbits);
  return ldexp((double)((1u << F->mbits) + m), (int)e - F->bias - F->mbits);
}

/* Builds the value tables; the entry past max_code is max + ulp(max), the
 * first value an unbounded exponent range would have next. */
static inline void ref_init(void) {
  ref_fmt *all[4] = {&REF_F16, &REF_BF16, &REF_E4M3, &REF_E5M2};
  for (int k = 0; k < 4; k++) {
    ref_fmt *F = all[k];
    if (F->tab) continue;
    F->tab = malloc((F->max_code + 2) * sizeof(double));
    for (uint32_t c = 0; c <= F->max_code; c++) F->tab[c] = ref_decode(F, c);
    F->tab[F->max_code + 1] = 2 * F->tab[F->max_code] - F->tab[F->max_code - 1];
  }
}

/* The NaN each conversion produces (documented in ampc.h / dtype_inline.h). */
static inline uint32_t ref_nan(const ref_fmt *F, uint32_t x) {
  uint32_t s = (x >> 31) << (F->bits - 1);
  if (F == &REF_F16) return s | 0x7e00u | ((x >> 13) & 0x3ffu);
  if (F == &REF_BF16) return (x >> 16) | 0x40u;
  if (F == &REF_E4M3) return s | 0x7fu;
  return s | 0x7eu;
}

/* Result for overflow and inf: max with saturate, else inf (or E4M3's NaN). */
static inline uint32_t ref_over(const ref_fmt *F, int sat) {
  if (sat) return F->max_code;
  return F->inf_code ? F->inf_code : 0x7fu;
}

/* Reference 1: binary search for the neighbours lo <= |x| < hi in the table,
 * nearest wins, a tie takes the even code. */
static inline uint32_t ref_enum(const ref_fmt *F, float f, int sat) {
  uint32_t x = ref_f32_bits(f), s = (x >> 31) << (F->bits - 1);
  if (isnan(f)) return ref_nan(F, x);
  if (isinf(f)) return s | ref_over(F, sat);
  double a = fabs((double)f);
  uint32_t lo = 0, hi = F->max_code + 1;
  if (a >= F->tab[hi]) return s | ref_over(F, sat);
  while (hi - lo > 1) { /* invariant: tab[lo] <= a < tab[hi] */
    uint32_t mid = lo + (hi - lo) / 2;
    if (F->tab[mid] <= a)
      lo = mid;
    else
      hi = mid;
  }
  double dl = a - F->tab[lo], dh = F->tab[hi] - a;
  uint32_t c = dl < dh ? lo : dh < dl ? hi : (lo & 1u) ? hi : lo;
  if (c > F->max_code) return s | ref_over(F, sat);
  return s | c;
}

/* Reference 2: divide by the quantum of |x|'s binade (exact in double),
 * round to an integer with nearbyint (ties to even), then check overflow. */
static inline uint32_t ref_dbl(const ref_fmt *F, float f, int sat) {
  uint32_t x = ref_f32_bits(f), s = (x >> 31) << (F->bits - 1);
  if (isnan(f)) return ref_nan(F, x);
  if (isinf(f)) return s | ref_over(F, sat);
  double a = fabs((double)f);
  if (a == 0) return s;
  int e;
  frexp(a, &e);
  e -= 1; /* 2^e <= a < 2^(e+1) */
  const int emin = 1 - F->bias;
  if (e < emin) e = emin;
  double k = nearbyint(ldexp(a, F->mbits - e)); /* quanta, k <= 2^(mbits+1) */
  if (ldexp(k, e - F->mbits) > F->tab[F->max_code]) return s | ref_over(F, sat);
  return s | (((uint32_t)(e - emin) << F->mbits) + (uint32_t)k);
}

#endif
