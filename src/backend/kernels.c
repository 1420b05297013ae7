/* The scalar kernel table (the references every other table is tested
 * against) and the choice of a table for this CPU. */
#include "../dtype/convert_internal.h"
#include "../kernels/fp8_internal.h"
#include "../kernels/gemm_internal.h"
#include "../kernels/kernels_internal.h"
#include "../kernels/norm_internal.h"
#include "../kernels/qgemm_internal.h"
#include "../kernels/spatial_internal.h"
#include "../optim/optim_internal.h"
#include "../core/internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const amp__kernels amp__kernels_scalar = {
    .name = "scalar",
    .needs = 0,
    .gemm_mr = 1,
    .gemm_nr = 1,
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
    .tanh_act = amp__tanh_act_scalar,
    .ln_fwd = amp__ln_fwd_scalar,
    .ln_bwd = amp__ln_bwd_scalar,
    .ln_wb = amp__ln_wb_scalar,
    .softmax_row = amp__softmax_row_scalar,
    .unscale = amp__unscale_scalar,
    .sum_chunk = amp__sum_chunk_scalar,
    .max_chunk = amp__max_chunk_scalar,
    .sum_cols = amp__sum_cols_scalar,
    .bn_sum = amp__bn_sum_scalar,
    .bn_apply = amp__bn_apply_scalar,
    .bn_bwd_sums = amp__bn_bwd_sums_scalar,
    .bn_bwd_apply = amp__bn_bwd_apply_scalar,
    .max_pool_row = amp__max_pool_row_scalar,
    .gemm = amp__gemm_scalar,
    .qgemm = amp__qgemm_scalar,
    .optim_update = amp__optim_update_scalar,
    .fp8_amax = amp__fp8_amax_scalar,
    .fp8_quant = amp__fp8_quant_scalar,
    .fp8_dequant = amp__fp8_dequant_scalar,
    .fp8_row_amax = amp__fp8_row_amax_scalar,
    .fp8_row_quant = amp__fp8_row_quant_scalar,
};

/* The tables this build has, best first. */
static const amp__kernels *const preference[] = {
#ifdef AMPC_HAVE_X86_SIMD
    &amp__kernels_avx512,
    &amp__kernels_avx2,
#endif
    &amp__kernels_scalar,
};

int amp__kernels_usable(const amp__kernels *k) {
  return k && (amp_cpu_features() & k->needs) == k->needs;
}

const amp__kernels *amp__kernels_native(void) {
  /* AMPC_KERNELS=avx2 (a table's name) picks that table where it is usable,
     to compare back ends on one machine. */
  const char *want = getenv("AMPC_KERNELS");
  for (size_t i = 0; want && i < sizeof preference / sizeof preference[0]; i++)
    if (strcmp(preference[i]->name, want) == 0 && amp__kernels_usable(preference[i]))
      return preference[i];
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
  amp__gemm_blocking_for(k, &ctx->gemm_blk);
  return 1;
}

static int round_to(int64_t v, int64_t unit, int64_t lo, int64_t hi) {
  v = v / unit * unit;
  return (int)(v < lo ? lo : v > hi ? hi : v);
}

/* AMPC_GEMM_BLOCKING=MC,KC,NC (three positive integers), or 0. */
static int blocking_env(amp__gemm_blocking *b) {
  const char *e = getenv("AMPC_GEMM_BLOCKING");
  long v[3];
  char *end;
  if (!e) return 0;
  for (int i = 0; i < 3; i++) {
    v[i] = strtol(e, &end, 10);
    if (end == e || v[i] < 1 || v[i] > (1L << 20) || *end != (i < 2 ? ',' : '\0')) return 0;
    e = end + 1;
  }
  b->mc = (int)v[0], b->kc = (int)v[1], b->nc = (int)v[2];
  b->a_l2 = SIZE_MAX; /* MC alone bounds the task's rows */
  b->from_env = 1;
  return 1;
}

/* BLIS-style: a K block of one packed B micro-panel (kc × nr floats) fills
 * the L1 data cache twice over (the panel streams from L2 with the hardware
 * prefetcher one block ahead; measured on Zen 4 and Zen 5, 1024 beat 256 and
 * 512 for nr = 16); a task's packed A (mc rows × the whole of K) takes 5/8
 * of L2, mc capped so that the K block of A fits that share; nc columns of
 * packed B over one K block take 1/16 of L3 (a core's share with headroom). */
void amp__gemm_blocking_for(const amp__kernels *k, amp__gemm_blocking *b) {
  amp__cache_sizes c;
  amp__cpu_caches(&c);
  const int64_t mr = k->gemm_mr > 0 ? k->gemm_mr : 1, nr = k->gemm_nr > 0 ? k->gemm_nr : 1;
  b->from_env = 0;
  if (blocking_env(b)) return;
  b->kc = round_to((int64_t)(2 * c.l1d / (16 * sizeof(float))), 16, 128, 4096);
  b->a_l2 = c.l2 / 8 * 5;
  b->mc = round_to((int64_t)(b->a_l2 / ((size_t)b->kc * sizeof(float))), mr, mr, 40 * mr);
  b->nc = round_to((int64_t)(c.l3 / 16 / ((size_t)b->kc * sizeof(float))), 2 * nr, 4 * nr, 8192);
}

int amp__bf16_dot_enabled(int request) {
  if (!(amp_cpu_features() & AMP_CPU_AVX512BF16) || request < 0) return 0;
  if (request > 0) return 1;
  const char *e = getenv("AMPC_BF16_DOT");
  return !(e && strcmp(e, "0") == 0);
}

int amp_ctx_describe(const amp_ctx *ctx, char *buf, size_t size) {
  const amp__kernels *k = amp__kernels_of(ctx);
  amp__gemm_blocking b;
  if (ctx)
    b = ctx->gemm_blk;
  else
    amp__gemm_blocking_for(k, &b);
  amp__cache_sizes c;
  amp__cpu_caches(&c);
  const int dot = ctx ? ctx->bf16_dot : amp__bf16_dot_enabled(0);
  const int dot_on = dot && (k->needs & AMP_CPU_AVX512F);
  return snprintf(buf, size,
                  "\"kernels\":\"%s\",\"gemm_tile\":\"%dx%d\",\"l1d_bytes\":%zu,"
                  "\"l2_bytes\":%zu,\"l3_bytes\":%zu,\"gemm_blocking\":{\"mc\":%d,\"kc\":%d,"
                  "\"nc\":%d,\"a_l2_bytes\":%zu,\"source\":\"%s\"},\"bf16_gemm\":\"%s\"",
                  k->name, k->gemm_mr, k->gemm_nr, c.l1d, c.l2, c.l3, b.mc, b.kc, b.nc,
                  b.a_l2 == SIZE_MAX ? 0 : b.a_l2, b.from_env ? "AMPC_GEMM_BLOCKING" : "caches",
                  dot_on ? "avx512bf16-dot" : "f32-fma (bit-exact)");
}
