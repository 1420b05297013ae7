/* Conversions between formats: per-element helpers and amp_convert.
 * PLACEHOLDER: FP8, stochastic rounding and the SIMD path come next. */
#include "../core/internal.h"
#include "dtype_inline.h"

float amp_f16_to_f32(amp_f16 h) { return amp__f16_to_f32(h.bits); }
amp_f16 amp_f32_to_f16(float f) { return (amp_f16){amp__f32_to_f16(f)}; }
float amp_bf16_to_f32(amp_bf16 h) { return amp__bf16_to_f32(h.bits); }
amp_bf16 amp_f32_to_bf16(float f) { return (amp_bf16){amp__f32_to_bf16(f)}; }

float amp_e4m3_to_f32(amp_e4m3 v) { (void)v; return 0.0f; }
amp_e4m3 amp_f32_to_e4m3(float f, int saturate) { (void)f; (void)saturate; return (amp_e4m3){0}; }
float amp_e5m2_to_f32(amp_e5m2 v) { (void)v; return 0.0f; }
amp_e5m2 amp_f32_to_e5m2(float f, int saturate) { (void)f; (void)saturate; return (amp_e5m2){0}; }

amp_status amp_convert_ex(void *dst, amp_dtype dst_type, const void *src, amp_dtype src_type,
                          size_t n, const amp_convert_opts *opts) {
  (void)opts;
  if (n == 0) return AMP_OK;
  if (!dst || !src) return AMP_ERR_INVALID_ARG;
  if (dst_type > AMP_BF16 || src_type > AMP_BF16) return AMP_ERR_UNSUPPORTED;
  for (size_t i = 0; i < n; i++) amp__store_f32(dst, dst_type, i, amp__load_f32(src, src_type, i));
  return AMP_OK;
}

amp_status amp_convert(void *dst, amp_dtype dst_type, const void *src, amp_dtype src_type,
                       size_t n) {
  return amp_convert_ex(dst, dst_type, src, src_type, n, NULL);
}
