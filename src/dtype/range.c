/* The range of each floating format (amp_dtype_range_of): derived from the
 * dtype traits table (the inf/NaN and overflow thresholds) and the
 * conversions themselves, never spelled per format, so a new format's row
 * and conversions give its range. */
#include "dtype_inline.h"
#include "dtype_traits.h"

#include <stdint.h>
#include <string.h>

/* The F32 value of the bit pattern `bits` of dtype dt (its size from the
 * traits). */
static float decode(amp_dtype dt, uint32_t bits) {
  unsigned char raw[4] = {0};
  size_t size = amp__dtype_size(dt);
  for (size_t i = 0; i < size; i++) raw[i] = (unsigned char)(bits >> (8 * i)); /* little-endian */
  float v = 0;
  amp_convert(&v, AMP_F32, raw, dt, 1);
  return v;
}

amp_status amp_dtype_range_of(amp_dtype t, amp_dtype_range *out) {
  const amp__dtype_traits *tr = amp__dtype(t);
  if (!tr->is_float || !out) return AMP_ERR_UNSUPPORTED;
  amp_dtype_range r;
  r.min_subnormal = decode(t, 1);
  r.max = decode(t, tr->inf_bits - 1); /* the pattern below the first inf/NaN */
  /* Subnormals and the first normal binade are equally spaced (one
   * min_subnormal apart): patterns 2^k and 2^k + 1 are one min_subnormal
   * apart up to k = m (the mantissa bits, pattern 2^m being min_normal);
   * at k = m + 1 (2·min_normal) the spacing has doubled. */
  int k = 0;
  while (k < 31 && decode(t, (1u << k) + 1) - decode(t, 1u << k) == r.min_subnormal) k++;
  r.min_normal = decode(t, 1u << k) / 2;
  r.zero_max = r.min_subnormal / 2; /* 0 for F32: 2^-150 is not an F32 */
  r.normal_min_round = r.min_normal - r.min_subnormal / 2;
  r.overflow_min = amp__bits_f32(tr->overflow_f32);
  *out = r;
  return AMP_OK;
}
