/* The x86 kernel tables, registered in one place; built only with
 * AMPC_HAVE_X86_SIMD and chosen at run time when the CPU has all of a
 * table's `needs`.
 *
 * amp__kernels_avx2: AVX2/FMA/F16C. Each entry gives the same bits as its
 * scalar reference in amp__kernels_scalar (backend/kernels.c); conversions
 * without a fast path use the scalar kernel.
 *
 * amp__kernels_avx512: the same entries, with the FP8 encoders and the tanh
 * family on 16-lane AVX-512F registers (kernels/fp8_avx512.c and
 * kernels/tanh_avx512.c, the same bits), the GEMM on a 6 × 32 AVX-512F
 * micro-tile (the same FMA chains, the same bits) and, where the CPU has
 * AVX512-BF16 and the context allows it, BF16 × BF16 products on vdpbf16ps
 * (kernels/gemm_avx512.c; the one entry whose bits may differ from the
 * scalar reference, see amp_gemm). */
#include "../core/internal.h"
#include "../dtype/convert_internal.h"
#include "../kernels/fp8_internal.h"
#include "../kernels/gemm_internal.h"
#include "../kernels/kernels_internal.h"
#include "../kernels/norm_internal.h"
#include "../kernels/qgemm_internal.h"
#include "../kernels/spatial_internal.h"
#include "../optim/optim_internal.h"

/* The entries both tables share (a new dtype's conversions go here once). */
#define AMP__X86_SHARED_ENTRIES                                                                    \
  .to_f32 = {[AMP_F16] = amp__cvt_f16_to_f32_avx2,                                                 \
             [AMP_BF16] = amp__cvt_bf16_to_f32_avx2,                                               \
             [AMP_E4M3] = amp__cvt_e4m3_to_f32_scalar,                                             \
             [AMP_E5M2] = amp__cvt_e5m2_to_f32_scalar},                                            \
  .from_f32 = {[AMP_F16] = amp__cvt_f32_to_f16_avx2,                                               \
               [AMP_BF16] = amp__cvt_f32_to_bf16_avx2,                                             \
               [AMP_E4M3] = amp__cvt_f32_to_e4m3_scalar,                                           \
               [AMP_E5M2] = amp__cvt_f32_to_e5m2_scalar},                                          \
  .from_f32_sr =                                                                                   \
      {[AMP_F16] = amp__cvt_f32_to_f16_sr_scalar, [AMP_BF16] = amp__cvt_f32_to_bf16_sr_scalar},    \
  .elt = amp__elt_avx2, .ln_fwd = amp__ln_fwd_avx2, .ln_bwd = amp__ln_bwd_avx2,                    \
  .ln_wb = amp__ln_wb_avx2, .softmax_row = amp__softmax_row_avx2, .unscale = amp__unscale_avx2,    \
  .sum_chunk = amp__sum_chunk_avx2, .max_chunk = amp__max_chunk_avx2,                              \
  .sum_cols = amp__sum_cols_avx2, .optim_update = amp__optim_update_avx2,                          \
  .fp8_amax = amp__fp8_amax_avx2, .fp8_dequant = amp__fp8_dequant_avx2,                            \
  .fp8_row_amax = amp__fp8_row_amax_avx2, .bn_sum = amp__bn_sum_avx2,                              \
  .bn_apply = amp__bn_apply_avx2, .bn_bwd_sums = amp__bn_bwd_sums_avx2,                            \
  .bn_bwd_apply = amp__bn_bwd_apply_avx2, .max_pool_row = amp__max_pool_row_avx2

const amp__kernels amp__kernels_avx2 = {
    .name = "avx2",
    .needs = AMP_CPU_AVX2 | AMP_CPU_FMA | AMP_CPU_F16C,
    .gemm_mr = 6,
    .gemm_nr = 16,
    .gemm = amp__gemm_avx2,
    .qgemm = amp__qgemm_avx2,
    .fp8_quant = amp__fp8_quant_avx2,
    .fp8_row_quant = amp__fp8_row_quant_avx2,
    .tanh_act = amp__tanh_act_avx2,
    AMP__X86_SHARED_ENTRIES,
};

const amp__kernels amp__kernels_avx512 = {
    .name = "avx512",
    .needs = AMP_CPU_AVX2 | AMP_CPU_FMA | AMP_CPU_F16C | AMP_CPU_AVX512F,
    .gemm_mr = 6,
    .gemm_nr = 32,
    .gemm = amp__gemm_avx512,
    .qgemm = amp__qgemm_avx512,
    .fp8_quant = amp__fp8_quant_avx512,
    .fp8_row_quant = amp__fp8_row_quant_avx512,
    .tanh_act = amp__tanh_act_avx512,
    AMP__X86_SHARED_ENTRIES,
};
