/* The kernel table: every kernel that has more than one implementation
 * (scalar reference, AVX2/FMA/F16C, ...) is one function pointer here, and
 * each context holds one table, chosen once by amp_ctx_create from the CPU's
 * features (like BLIS's per-architecture context). Callers make one indirect
 * call per kernel invocation or chunk (never per element):
 *
 *     amp__kernels_of(ctx)->elt(op, dt, n, s, a, b, y);
 *
 * A NULL context gets the process-wide table for this CPU
 * (amp__kernels_native), which is a const table too: there is no mutable
 * global state.
 *
 * Tables:
 *   amp__kernels_scalar  the scalar references (backend/kernels.c); every other
 *                        table must give the same bits (or a stated bound).
 *   amp__kernels_avx2    AVX2 + FMA + F16C (backend/kernels_avx2.c).
 *   amp__kernels_avx512  the AVX2 table with a 6 × 32 AVX-512F GEMM tile and,
 *                        where the CPU has AVX512-BF16, the vdpbf16ps BF16
 *                        GEMM (backend/kernels_avx2.c, beside the AVX2 table).
 * Where new back ends plug in: a wider elementwise AVX-512 table, AMX tiles,
 * later a GPU backend, is one more file
 * defining one more `const amp__kernels`, with its CPU feature bits in
 * `needs`, and one line in the preference list of amp__kernels_native.
 * Tests compare back ends by swapping tables (amp__ctx_set_kernels).
 *
 * Every entry does no argument checks and takes only validated arguments
 * (dtypes are the ones the entry lists); all but gemm run on the calling
 * thread (gemm splits its work over the call's threads). */
#ifndef AMPC_CORE_KERNELS_H
#define AMPC_CORE_KERNELS_H

#include "ampc.h"

#include <stddef.h>
#include <stdint.h>

struct amp__gemm_args;     /* kernels/gemm_internal.h */
struct amp_optim_hyper;    /* optim/optim_internal.h */
struct amp__ln_args;       /* kernels/norm_internal.h */
struct amp__bn_bwd_consts; /* kernels/spatial_internal.h */

/* Flags of the from_f32 conversions. */
enum {
  AMP__CVT_NT = 1,      /* non-temporal stores for the aligned body (hint) */
  AMP__CVT_SATURATE = 2 /* FP8: overflow clamps to the largest finite value */
};

/* Cache sizes per core (bytes) as the CPU reports them (core/cpu.c):
 * cpuid leaf 4 (Intel) or 0x8000001D (AMD), else Linux sysfs, else a
 * common core's sizes. A constant of the process. */
typedef struct amp__cache_sizes {
  size_t l1d, l2, l3;
} amp__cache_sizes;
void amp__cpu_caches(amp__cache_sizes *c);

/* The GEMM's cache blocking (kernels/gemm_avx2.c): a task covers at most mc
 * rows × about nc columns of C, with its packed A (the whole of K) under
 * a_l2 bytes so that it stays in L2; K is walked in blocks of at most kc so
 * that a block of a packed B sliver stays in L1. The partial sums of a tile
 * are kept between K blocks and the next block continues the same FMA
 * chain, so no blocking changes a single bit of the result. */
typedef struct amp__gemm_blocking {
  int mc, kc, nc;
  size_t a_l2;
  int from_env; /* 1: AMPC_GEMM_BLOCKING set it */
} amp__gemm_blocking;

typedef struct amp__kernels {
  const char *name;     /* "scalar", "avx2", "avx512" */
  unsigned needs;       /* AMP_CPU_* bits the table's code needs */
  int gemm_mr, gemm_nr; /* the GEMM micro-tile (rows × columns of C) */

  /* dtype: n elements to and from F32, indexed by dtype; NULL where there
   * is no such conversion (F32 itself, integers). from_f32 rounds to
   * nearest even; from_f32_sr rounds stochastically with the random bits
   * amp__sr_bits(key, idx0 + i) for element i (F16, BF16). */
  void (*to_f32[AMP_DTYPE_COUNT])(float *dst, const void *src, size_t n);
  void (*from_f32[AMP_DTYPE_COUNT])(void *dst, const float *src, size_t n, int flags);
  void (*from_f32_sr[AMP_DTYPE_COUNT])(void *dst, const float *src, size_t n, uint64_t key,
                                       uint64_t idx0);

  /* kernels (dt is F32, F16 or BF16; see kernels/kernels_internal.h). */
  /* y = op(a, b) element-wise (AMP__ADD, ...; b unused by unary ops). */
  void (*elt)(int op, int dt, size_t n, float s, const void *a, const void *b, void *y);
  /* The tanh family (kernels/tanh_internal.h, op AMP__TANH_FWD ...):
   * forward y = tanh(v) or gelu_tanh(v), y in dt; backward y = g·(1 − v²)
   * (v the forward's result) or g·gelu_tanh'(v) (v the input), v and g in
   * dt, y in gdt (dt, or F32 for an F32 leaf's gradient). */
  void (*tanh_act)(int op, int dt, int gdt, size_t n, const void *v, const void *g, void *y);
  /* Layer norm rows r0 .. r1-1 (kernels/norm_internal.h): forward (y and
   * the row statistics), backward dx, and dw/db summed over all rows in
   * order (one thread). */
  void (*ln_fwd)(const struct amp__ln_args *a, int64_t r0, int64_t r1);
  void (*ln_bwd)(const struct amp__ln_args *a, int64_t r0, int64_t r1);
  void (*ln_wb)(const struct amp__ln_args *a, int64_t rows);
  /* Softmax of the first lim of t F32 scores in place, the rest set to 0
   * (attention's causal mask; kernels/norm_internal.h). */
  void (*softmax_row)(float *row, size_t lim, size_t t);
  /* g *= s (when mul), then 1 when some element is inf/NaN in dt. */
  int (*unscale)(int dt, size_t n, void *g, float s, int mul);
  /* One reduction chunk (n <= AMP__RCHUNK) in the lane-blocked order. */
  float (*sum_chunk)(int dt, size_t n, const void *x);
  float (*max_chunk)(int dt, size_t n, const void *x, int *nan);
  /* acc[c] = sum over rows of x[r·ld + c], in row order, c < cols. */
  void (*sum_cols)(int dt, int64_t rows, int64_t cols, int64_t ld, const void *x, float *acc);
  /* FP8 quantisation (kernels/fp8_internal.h; src F32 or BF16, fmt E4M3 or
   * E5M2): max |x| (NaN ignored); q = fmt(x·scale) saturating, returning
   * the same max; x = to_f32(q)·scale_inv. */
  float (*fp8_amax)(int sdt, size_t n, const void *src);
  float (*fp8_quant)(int fmt, int sdt, size_t n, const void *src, float scale, uint8_t *dst);
  void (*fp8_dequant)(int fmt, size_t n, const uint8_t *src, float scale_inv, float *dst);
  /* One row of cols values cut into tiles of bc columns (the last may be
   * shorter), tile t for block scaling: amax[t] = max(amax[t], max |x| of
   * the tile) (NaN ignored); and the codes fmt(x·scale[t]) of each tile, as
   * fp8_quant. */
  void (*fp8_row_amax)(int sdt, size_t cols, size_t bc, const void *src, float *amax);
  void (*fp8_row_quant)(int fmt, int sdt, size_t cols, size_t bc, const void *src,
                        const float *scale, uint8_t *dst);
  /* BatchNorm2d over one channel (kernels/spatial_internal.h, which fixes
   * the order of the sums): n segments of hw elements, ld elements apart,
   * in x, g, y, dx alike. bn_sum: Σ x (sq = 0) or Σ (x - m)² (sq = 1).
   * bn_apply: y = ((x - mean)·rstd)·w + b, stored in yt. bn_bwd_sums:
   * *sg = Σ g, *sgx = Σ g·((x - mean)·rstd). bn_bwd_apply: dx as
   * amp__bn_bwd_consts states, stored in dt. */
  float (*bn_sum)(int dt, int64_t n, int64_t hw, int64_t ld, const void *x, float m, int sq);
  void (*bn_apply)(int xt, int yt, int64_t n, int64_t hw, int64_t ld, const void *x, void *y,
                   float mean, float rstd, float w, float b);
  void (*bn_bwd_sums)(int gt, int xt, int64_t n, int64_t hw, int64_t ld, const void *g,
                      const void *x, float mean, float rstd, float *sg, float *sgx);
  void (*bn_bwd_apply)(int gt, int xt, int dt, int64_t n, int64_t hw, int64_t ld, const void *g,
                       const void *x, void *dx, const struct amp__bn_bwd_consts *c);

  /* One output row of a 2-D max pooling (kh×kw window, column stride sw,
   * no padding): x is the window's first input row (row stride w), output
   * j's window starts at column j·sw; y[j] receives the bits of the first
   * maximum in row-major window order (a NaN counts as the maximum, the
   * first NaN wins) and arg[j] its index in x plus base. */
  void (*max_pool_row)(int dt, int64_t w, int64_t kh, int64_t kw, int64_t sw, int64_t ow,
                       const void *x, void *y, int32_t *arg, int32_t base);

  /* A validated amp_gemm call with k >= 1 (threads inside). */
  amp_status (*gemm)(amp_ctx *ctx, const struct amp__gemm_args *g);

  /* One block of the INT8 GEMM C = A·Bᵀ (u8 × s8 → int32, exact) on the
   * calling thread (kernels/qgemm_internal.h); amp_gemm_u8s8 threads it. */
  void (*qgemm)(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda, const int8_t *b,
                int64_t ldb, int32_t *c, int64_t ldc);

  /* optim: the update rule over n parameters (optim/optim_internal.h). */
  void (*optim_update)(amp_optim_kind kind, const struct amp_optim_hyper *h, int64_t n, float *p,
                       const float *g, float *m, float *v, uint16_t *w16, int wdt);
} amp__kernels;

extern const amp__kernels amp__kernels_scalar;
#ifdef AMPC_HAVE_X86_SIMD
extern const amp__kernels amp__kernels_avx2;
extern const amp__kernels amp__kernels_avx512;
#endif

/* The blocking for table k's GEMM on this CPU: derived from the cache sizes
 * (amp__cpu_caches) and the micro-tile, or AMPC_GEMM_BLOCKING=MC,KC,NC. */
void amp__gemm_blocking_for(const amp__kernels *k, amp__gemm_blocking *b);

/* Whether BF16 × BF16 GEMMs use the AVX512-BF16 dot-product kernel by
 * default (no context, or amp_ctx_params.bf16_dot == 0): on where the CPU
 * has AVX512-BF16 unless the environment variable AMPC_BF16_DOT=0 is set.
 * `request` is amp_ctx_params.bf16_dot. */
int amp__bf16_dot_enabled(int request);

/* The best table this build has for this CPU (the scalar one when the
 * environment variable AMPC_SIMD=0 was set at the first feature query; the
 * table named by AMPC_KERNELS, e.g. "avx2", when it is usable here). */
const amp__kernels *amp__kernels_native(void);

/* The context's table; the native one for a NULL ctx. */
const amp__kernels *amp__kernels_of(const amp_ctx *ctx);

/* Non-zero when this CPU has every feature table k needs. */
int amp__kernels_usable(const amp__kernels *k);

/* Makes ctx use table k from now on (NULL: the native one). For tests, which
 * compare back ends by running the same calls with different tables.
 * Returns 0 and changes nothing when k is not usable on this CPU. */
int amp__ctx_set_kernels(amp_ctx *ctx, const amp__kernels *k);

#endif
