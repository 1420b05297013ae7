/* Bulk conversion kernels behind amp_convert(): a scalar reference for every
 * pair with F32 on one side, and AVX2/F16C versions of the F32 <-> F16/BF16
 * kernels that give the same bits. They are entered in the kernel tables
 * (core/kernels.h) and exposed so that tests can run both paths. Kernels do
 * no argument checks and run on the calling thread. */
#ifndef AMPC_CONVERT_INTERNAL_H
#define AMPC_CONVERT_INTERNAL_H

#include "../core/kernels.h"
#include "ampc.h"

#include <stddef.h>
#include <stdint.h>

/* Scalar FP8 element conversions (see amp_f32_to_e4m3() and friends). */
float amp__e4m3_to_f32(uint8_t v);
float amp__e5m2_to_f32(uint8_t v);
uint8_t amp__f32_to_e4m3(float f, int saturate);
uint8_t amp__f32_to_e5m2(float f, int saturate);

/* The 64 random bits stochastic rounding uses for stream index `idx`, from
 * key = amp__sr_key(seed). */
uint64_t amp__sr_key(uint64_t seed);
uint64_t amp__sr_bits(uint64_t key, uint64_t idx);

/* Scalar stochastic rounding of one value with 64 random bits r: rounds the
 * magnitude up with probability equal to the discarded fraction (exact for
 * BF16 and normal F16 results; F16 subnormals resolve it to 2^-64). NaN
 * stays a quiet NaN as with RNE; finite values may round up to inf. */
uint16_t amp__f32_to_f16_sr(float f, uint64_t r);
uint16_t amp__f32_to_bf16_sr(float f, uint64_t r);

/* Scalar bulk kernels: the entries of amp__kernels_scalar (core/kernels.h
 * gives the contracts; `flags` are AMP__CVT_*: non-temporal hints are
 * ignored here, AMP__CVT_SATURATE applies to the FP8 targets). */
void amp__cvt_f32_to_f16_scalar(void *dst, const float *src, size_t n, int flags);
void amp__cvt_f16_to_f32_scalar(float *dst, const void *src, size_t n);
void amp__cvt_f32_to_bf16_scalar(void *dst, const float *src, size_t n, int flags);
void amp__cvt_bf16_to_f32_scalar(float *dst, const void *src, size_t n);
void amp__cvt_f32_to_e4m3_scalar(void *dst, const float *src, size_t n, int flags);
void amp__cvt_e4m3_to_f32_scalar(float *dst, const void *src, size_t n);
void amp__cvt_f32_to_e5m2_scalar(void *dst, const float *src, size_t n, int flags);
void amp__cvt_e5m2_to_f32_scalar(float *dst, const void *src, size_t n);
/* Stochastic rounding: element i uses amp__sr_bits(key, idx0 + i). */
void amp__cvt_f32_to_f16_sr_scalar(void *dst, const float *src, size_t n, uint64_t key,
                                   uint64_t idx0);
void amp__cvt_f32_to_bf16_sr_scalar(void *dst, const float *src, size_t n, uint64_t key,
                                    uint64_t idx0);

#ifdef AMPC_HAVE_X86_SIMD
/* AVX2/F16C kernels, the entries of amp__kernels_avx2 (only call when
 * amp_cpu_features() has AVX2, FMA and F16C). For the narrowing ones,
 * AMP__CVT_NT in flags uses non-temporal stores for the aligned body (for
 * outputs far larger than the caches). */
void amp__cvt_f32_to_f16_avx2(void *dst, const float *src, size_t n, int flags);
void amp__cvt_f16_to_f32_avx2(float *dst, const void *src, size_t n);
void amp__cvt_f32_to_bf16_avx2(void *dst, const float *src, size_t n, int flags);
void amp__cvt_bf16_to_f32_avx2(float *dst, const void *src, size_t n);
#endif

/* amp_convert_ex() with the kernel table chosen by the caller (tests pass
 * &amp__kernels_scalar to run the references) and a thread count (0: the
 * OpenMP default). */
amp_status amp__convert_impl(void *dst, amp_dtype dst_type, const void *src, amp_dtype src_type,
                             size_t n, const amp_convert_opts *opts, const amp__kernels *k,
                             int threads);

#endif
