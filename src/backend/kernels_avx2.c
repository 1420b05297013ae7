/* The AVX2/FMA/F16C kernel table: the fast paths of every layer, registered
 * in one place. Each entry gives the same bits as its scalar reference in
 * amp__kernels_scalar (backend/kernels.c); conversions without a fast path use
 * the scalar kernel. Built only with AMPC_HAVE_X86_SIMD, chosen at run time
 * when the CPU has all of `needs`. */
#include "../dtype/convert_internal.h"
#include "../kernels/gemm_internal.h"
#include "../kernels/kernels_internal.h"
#include "../optim/optim_internal.h"
#include "../core/internal.h"

const amp__kernels amp__kernels_avx2 = {
    .name = "avx2",
    .needs = AMP_CPU_AVX2 | AMP_CPU_FMA | AMP_CPU_F16C,
    .gemm_mr = 6,
    .gemm_nr = 16,
    .to_f32 = {[AMP_F16] = amp__cvt_f16_to_f32_avx2,
               [AMP_BF16] = amp__cvt_bf16_to_f32_avx2,
               [AMP_E4M3] = amp__cvt_e4m3_to_f32_scalar,
               [AMP_E5M2] = amp__cvt_e5m2_to_f32_scalar},
    .from_f32 = {[AMP_F16] = amp__cvt_f32_to_f16_avx2,
                 [AMP_BF16] = amp__cvt_f32_to_bf16_avx2,
                 [AMP_E4M3] = amp__cvt_f32_to_e4m3_scalar,
                 [AMP_E5M2] = amp__cvt_f32_to_e5m2_scalar},
    .from_f32_sr =
        {[AMP_F16] = amp__cvt_f32_to_f16_sr_scalar, [AMP_BF16] = amp__cvt_f32_to_bf16_sr_scalar},
    .elt = amp__elt_avx2,
    .unscale = amp__unscale_avx2,
    .sum_chunk = amp__sum_chunk_avx2,
    .max_chunk = amp__max_chunk_avx2,
    .sum_cols = amp__sum_cols_avx2,
    .gemm = amp__gemm_avx2,
    .optim_update = amp__optim_update_avx2,
};
