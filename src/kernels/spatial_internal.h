/* Declarations of the BatchNorm2d and pooling kernels (kernel-table entries,
 * contracts in core/kernels.h) and their fast paths. Not public API.
 *
 * BatchNorm2d's channel sums (the "BN order", shared by every table): a
 * channel of x [N, C, HW] is n segments of hw elements, ld elements apart.
 * Element q of a segment is added to partial sum q % AMP__LANES (32 F32
 * partials that start at +0), segments in order, and the partials are
 * combined by amp__lane_tree (a fixed pairwise tree). A vector path that
 * adds zeros to the partials a short tail does not reach gives the same
 * bits: a partial that starts at +0 never holds -0, and x + 0 == x for
 * every other x (NaN payloads included). */
#ifndef AMPC_SPATIAL_INTERNAL_H
#define AMPC_SPATIAL_INTERNAL_H

#include "kernels_internal.h"

/* The per-channel constants of BatchNorm2d's input gradient:
 * dx = scale·(training ? (g - mg) - x̂·mgx : g), x̂ = (x - mean)·rstd. */
typedef struct amp__bn_bwd_consts {
  float mean, rstd, scale, mg, mgx;
  int training;
} amp__bn_bwd_consts;

float amp__bn_sum_scalar(int dt, int64_t n, int64_t hw, int64_t ld, const void *x, float m, int sq);
void amp__bn_apply_scalar(int xt, int yt, int64_t n, int64_t hw, int64_t ld, const void *x, void *y,
                          float mean, float rstd, float w, float b);
void amp__bn_bwd_sums_scalar(int gt, int xt, int64_t n, int64_t hw, int64_t ld, const void *g,
                             const void *x, float mean, float rstd, float *sg, float *sgx);
void amp__bn_bwd_apply_scalar(int gt, int xt, int dt, int64_t n, int64_t hw, int64_t ld,
                              const void *g, const void *x, void *dx, const amp__bn_bwd_consts *c);
/* Rows row0..row1-1 of amp_im2col's column matrix (validated geometry),
 * stored from col (one thread). */
void amp__im2col_rows(amp_dtype dt, const amp_conv_geom *g, const void *img, int64_t row0,
                      int64_t row1, void *col);

void amp__max_pool_row_scalar(int dt, int64_t w, int64_t kh, int64_t kw, int64_t sw, int64_t ow,
                              const void *x, void *y, int32_t *arg, int32_t base);

#ifdef AMPC_HAVE_X86_SIMD
void amp__max_pool_row_avx2(int dt, int64_t w, int64_t kh, int64_t kw, int64_t sw, int64_t ow,
                            const void *x, void *y, int32_t *arg, int32_t base);
float amp__bn_sum_avx2(int dt, int64_t n, int64_t hw, int64_t ld, const void *x, float m, int sq);
void amp__bn_apply_avx2(int xt, int yt, int64_t n, int64_t hw, int64_t ld, const void *x, void *y,
                        float mean, float rstd, float w, float b);
void amp__bn_bwd_sums_avx2(int gt, int xt, int64_t n, int64_t hw, int64_t ld, const void *g,
                           const void *x, float mean, float rstd, float *sg, float *sgx);
void amp__bn_bwd_apply_avx2(int gt, int xt, int dt, int64_t n, int64_t hw, int64_t ld,
                            const void *g, const void *x, void *dx, const amp__bn_bwd_consts *c);
#endif

#endif
