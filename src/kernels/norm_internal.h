/* Row kernels of layer norm and of attention's masked softmax: the scalar
 * references (kernels/norm.c) fix the order of every sum, and the AVX2
 * versions (norm_avx2.c) repeat it with vector lanes, so both give the same
 * bits, with any thread count (work is split over rows only).
 *
 * Order of a row reduction: element j of the row goes to partial j % 16
 * (AMP__ROW_LANES), in increasing j; the 16 partials are then added
 * pairwise, p[k] += p[k + w] for w = 8, 4, 2, 1 (amp__row_tree). A vector
 * path keeps partials 0-7 in one 8-lane register and 8-15 in another.
 *
 * Layer norm, row x of d elements (F32 arithmetic):
 *   mean = Σ x / d;  ss = Σ fma(x − mean, x − mean, ·);
 *   rstd = 1 / sqrt(ss / d + eps);  x̂ = (x − mean)·rstd;
 *   y = fma(x̂, w, b) (x̂·w without bias, x̂ + b without weight, else x̂).
 * Backward, ĝ = g·w (g without weight):
 *   m1 = Σ ĝ / d;  m2 = Σ fma(ĝ, x̂, ·) / d;
 *   dx = rstd·fma(−x̂, m2, ĝ − m1)  (added to dx's F32 value when acc);
 *   dw += fma(g, x̂, dw), db += g, rows in order (amp__kernels.ln_wb).
 * Masked softmax of a row of F32 scores, the first `lim` entries:
 *   m = max (x86 MAXPS rule per lane, lanes combined by the tree);
 *   e_j = exp(x_j − m) with ampc's own exp (amp__exp_any_ref);
 *   s = Σ e_j;  p_j = e_j·(1/s);  entries from lim on are 0; a NaN
 *   among the entries or in s (inf − inf) makes the first lim entries the
 *   quiet NaN 0x7fc00000. */
#ifndef AMPC_KERNELS_NORM_INTERNAL_H
#define AMPC_KERNELS_NORM_INTERNAL_H

#include "tanh_internal.h"

#include <stddef.h>
#include <stdint.h>

#define AMP__ROW_LANES 16

/* One layer norm call: rows of d elements; dtypes of x, the result y, w, b
 * (w, b may be NULL), and for backward of g and dx (dx F32 when acc). */
typedef struct amp__ln_args {
  size_t d;
  int xdt, ydt, wdt, bdt, gdt, dxdt, acc;
  float eps;
  const void *x, *w, *b, *g;
  void *y, *dx;
  float *stat;    /* [rows, 2]: mean, rstd (written by forward) */
  float *dw, *db; /* [d] F32 sums of backward (NULL: not wanted) */
} amp__ln_args;

static inline float amp__row_tree(float *p, int is_max) {
  for (int w = AMP__ROW_LANES / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) p[k] = is_max ? amp__max_ps(p[k], p[k + w]) : p[k] + p[k + w];
  return p[0];
}

/* e^w for w <= 0 (and NaN): w below -87 gives 0 (e^-87 ≈ 1.6e-38 is the
 * smallest value computed; smaller ones are flushed), NaN gives NaN. The
 * same steps as amp__exp_ref, on max(w, -87). */
#define AMP__EXP_MIN -87.0f
static inline float amp__exp_any_ref(float w) {
  if (w != w) return amp__quiet(w);
  if (w < AMP__EXP_MIN) return 0.0f;
  return amp__exp_ref(w);
}

/* The kernel-table entries (contracts in core/kernels.h). */
void amp__ln_fwd_scalar(const amp__ln_args *a, int64_t r0, int64_t r1);
void amp__ln_bwd_scalar(const amp__ln_args *a, int64_t r0, int64_t r1);
void amp__ln_wb_scalar(const amp__ln_args *a, int64_t rows);
void amp__softmax_row_scalar(float *row, size_t lim, size_t t);
#ifdef AMPC_HAVE_X86_SIMD
void amp__ln_fwd_avx2(const amp__ln_args *a, int64_t r0, int64_t r1);
void amp__ln_bwd_avx2(const amp__ln_args *a, int64_t r0, int64_t r1);
void amp__ln_wb_avx2(const amp__ln_args *a, int64_t rows);
void amp__softmax_row_avx2(float *row, size_t lim, size_t t);
#endif

#endif
