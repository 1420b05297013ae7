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
 *   amp__kernels_scalar  the scalar references (core/kernels.c); every other
 *                        table must give the same bits (or a stated bound).
 *   amp__kernels_avx2    AVX2 + FMA + F16C (core/kernels_avx2.c).
 * Where new back ends plug in: an AVX-512 table (wider elementwise loops, a
 * 16 × 32 GEMM tile), an AVX512-BF16 table (vcvtne2ps2bf16 for the BF16
 * stores, vdpbf16ps for BF16 GEMM), later a GPU backend, is one more file
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

struct amp__gemm_args;  /* kernels/gemm_internal.h */
struct amp_optim_hyper; /* optim/optim_internal.h */

/* Flags of the from_f32 conversions. */
enum {
  AMP__CVT_NT = 1,      /* non-temporal stores for the aligned body (hint) */
  AMP__CVT_SATURATE = 2 /* FP8: overflow clamps to the largest finite value */
};

typedef struct amp__kernels {
  const char *name; /* "scalar", "avx2" */
  unsigned needs;   /* AMP_CPU_* bits the table's code needs */

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
  /* g *= s (when mul), then 1 when some element is inf/NaN in dt. */
  int (*unscale)(int dt, size_t n, void *g, float s, int mul);
  /* One reduction chunk (n <= AMP__RCHUNK) in the lane-blocked order. */
  float (*sum_chunk)(int dt, size_t n, const void *x);
  float (*max_chunk)(int dt, size_t n, const void *x, int *nan);
  /* acc[c] = sum over rows of x[r·ld + c], in row order, c < cols. */
  void (*sum_cols)(int dt, int64_t rows, int64_t cols, int64_t ld, const void *x, float *acc);
  /* A validated amp_gemm call with k >= 1 (threads inside). */
  amp_status (*gemm)(amp_ctx *ctx, const struct amp__gemm_args *g);

  /* optim: the update rule over n parameters (optim/optim_internal.h). */
  void (*optim_update)(amp_optim_kind kind, const struct amp_optim_hyper *h, int64_t n, float *p,
                       const float *g, float *m, float *v, uint16_t *w16);
} amp__kernels;

extern const amp__kernels amp__kernels_scalar;
#ifdef AMPC_HAVE_X86_SIMD
extern const amp__kernels amp__kernels_avx2;
#endif

/* The best table this build has for this CPU (the scalar one when the
 * environment variable AMPC_SIMD=0 was set at the first feature query). */
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
