/* The scalar kernel table (the references every other table is tested
 * against) and the choice of a table for this CPU. */
#include "../dtype/convert_internal.h"
#include "../kernels/gemm_internal.h"
#include "../kernels/kernels_internal.h"
#include "../optim/optim_internal.h"
#include "internal.h"

const amp__kernels amp__kernels_scalar = {
    .name = "scalar",
    .needs = 0,
    .to_f32 = {[AMP_F16] = amp__cvt_f16_to_f32_scalar,
               [AMP_BF16] = amp__cvt_bf16_to_f32_scalar,
               [AMP_E4M3] = amp__cvt_e4m3_to_f32_scalar,
               [AMP_E5M2] = amp__cvt_e5m2_to_f32_scalar},
    .from_f32 = {[AMP_F16] = amp__cvt_f32_to_f16_scalar,
                 [AMP_BF16] = amp__cvt_f32_to_bf16_scalar,
                 [AMP_E4M3] = amp__cvt_f32_to_e4m3_scalar,
                 [AMP_E5M2] = amp__cvt_f32_to_e5m2_scalar},
    .from_f32_sr =
        {[AMP_F16] = amp__cvt_f32_to_f16_sr_scalar, [AMP_BF16] = amp__cvt_f32_to_bf16_sr_scalar},
    .elt = amp__elt_scalar,
    .unscale = amp__unscale_scalar,
    .sum_chunk = amp__sum_chunk_scalar,
    .max_chunk = amp__max_chunk_scalar,
    .sum_cols = amp__sum_cols_scalar,
    .gemm = amp__gemm_scalar,
    .optim_update = amp__optim_update_scalar,
};

/* The tables this build has, best first. */
static const amp__kernels *const preference[] = {
#ifdef AMPC_HAVE_X86_SIMD
    &amp__kernels_avx2,
#endif
    &amp__kernels_scalar,
};

int amp__kernels_usable(const amp__kernels *k) {
  return k && (amp_cpu_features() & k->needs) == k->needs;
}

const amp__kernels *amp__kernels_native(void) {
  for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++)
    if (amp__kernels_usable(preference[i])) return preference[i];
  return &amp__kernels_scalar;
}

const amp__kernels *amp__kernels_of(const amp_ctx *ctx) {
  return ctx ? ctx->k : amp__kernels_native();
}

int amp__ctx_set_kernels(amp_ctx *ctx, const amp__kernels *k) {
  if (!ctx) return 0;
  if (!k) k = amp__kernels_native();
  if (!amp__kernels_usable(k)) return 0;
  ctx->k = k;
  return 1;
}
