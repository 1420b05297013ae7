/* The dtype traits table: one row per dtype, and the only place that says
 * how big an element is, whether a dtype is a floating format, whether the
 * kernels compute in it, what safetensors calls it, and which bit patterns
 * are inf/NaN. Code asks the table; it never spells `dt == AMP_F32 ? 4 : 2`.
 *
 * Adding a dtype (say a new FP8 variant) means: its enum value in ampc.h, a
 * row below, its scalar conversions (dtype_inline.h for one element,
 * convert.c for the bulk kernels, entered in the scalar kernel table in
 * backend/kernels.c) and, where it has a fast path, its SIMD conversions and
 * load/store (convert_avx2.c, simd_avx2.h, entered in backend/kernels_avx2.c).
 * tests/test_dtype.c checks every row against the conversions. */
#ifndef AMPC_DTYPE_TRAITS_H
#define AMPC_DTYPE_TRAITS_H

#include "ampc.h"

#include <stddef.h>
#include <stdint.h>

typedef struct amp__dtype_traits {
  const char *name;    /* amp_dtype_name(): "f32" */
  const char *st_name; /* the safetensors dtype string: "F32" */
  uint8_t size;        /* bytes per element */
  uint8_t is_float;    /* a floating format: amp_convert() handles it */
  uint8_t is_compute;  /* kernels and ops compute in it (F32, F16, BF16) */
  /* Non-finite tests (floating formats; 0 for integers):
   * inf_bits:     the stored bits x (sign cleared) are inf or NaN iff
   *               x >= inf_bits;
   * overflow_f32: an F32 value with bits x (sign cleared) becomes inf or NaN
   *               when rounded to nearest even into this dtype iff
   *               x >= overflow_f32 (the loss scaler's overflow check). */
  uint32_t inf_bits;
  uint32_t overflow_f32;
} amp__dtype_traits;

/* The rows, as X(enum, name, safetensors name, size, is_float, is_compute,
 * inf_bits, overflow_f32). A list so that other tables (the safetensors
 * reader's) are generated from the same rows. Thresholds: F16 overflows at
 * 65520 = max + half an ulp (a tie rounds to even, i.e. up); BF16 at
 * (2 - 2^-8)·2^127; E4M3 (no inf, NaN S.1111.111) past 464 = 448 + half an
 * ulp (that tie rounds to even, down to 448); E5M2 at 61440 = 57344 + half
 * an ulp. */
// clang-format off
#define AMP__DTYPE_ROWS(X)                                                      \
  X(AMP_F32,  "f32",  "F32",     4, 1, 1, 0x7f800000u, 0x7f800000u)           \
  X(AMP_F16,  "f16",  "F16",     2, 1, 1, 0x7c00u,     0x477ff000u)           \
  X(AMP_BF16, "bf16", "BF16",    2, 1, 1, 0x7f80u,     0x7f7f8000u)           \
  X(AMP_E4M3, "e4m3", "F8_E4M3", 1, 1, 0, 0x7fu,       0x43e80001u)           \
  X(AMP_E5M2, "e5m2", "F8_E5M2", 1, 1, 0, 0x7cu,       0x47700000u)           \
  X(AMP_I32,  "i32",  "I32",     4, 0, 0, 0,           0)                     \
  X(AMP_U8,   "u8",   "U8",      1, 0, 0, 0,           0)                     \
  X(AMP_I8,   "i8",   "I8",      1, 0, 0, 0,           0)
// clang-format on

#define AMP__DTYPE_TRAITS_ROW(e, nm, st, sz, fl, co, inf, ovf) [e] = {nm, st, sz, fl, co, inf, ovf},

/* The row of dtype dt; an out-of-range dt gets a row named "invalid" with
 * size 0 and every flag clear. Inline with the table visible, so that a
 * constant dt folds to constants. */
static inline const amp__dtype_traits *amp__dtype(int dt) {
  // clang-format off
  static const amp__dtype_traits rows[AMP_DTYPE_COUNT + 1] = {
      AMP__DTYPE_ROWS(AMP__DTYPE_TRAITS_ROW)
      [AMP_DTYPE_COUNT] = {"invalid", NULL, 0, 0, 0, 0, 0},
  };
  // clang-format on
  return &rows[(unsigned)dt < AMP_DTYPE_COUNT ? dt : AMP_DTYPE_COUNT];
}

/* Bytes per element of dt (0 for an invalid dt). */
static inline size_t amp__dtype_size(int dt) { return amp__dtype(dt)->size; }

#endif
