/* Declarations shared by the elementwise, row and im2col kernels and their
 * AVX2 fast paths. Not part of the public API.
 *
 * Bit-exactness contract: for every kernel the scalar reference and the AVX2
 * path do the same F32 operation per element and (for reductions) add in the
 * same order, so the fast path gives the same bits as the reference. */
#ifndef AMPC_KERNELS_INTERNAL_H
#define AMPC_KERNELS_INTERNAL_H

#include "../core/internal.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Element-wise operations that have a fast path. */
enum { AMP__ADD, AMP__MUL, AMP__SCALE, AMP__RELU, AMP__RELU_BWD };

/* Problems with more elements than this are split across threads. */
#define AMP__PAR_MIN 65536

/* Reductions cut the input into chunks of AMP__RCHUNK elements (independent
 * of the thread count); inside a chunk, element j goes to partial sum
 * j % AMP__LANES, and the partials are combined by amp__lane_tree(). Chunk
 * results are then combined in chunk order. */
#define AMP__RCHUNK 32768
#define AMP__LANES 32

/* Result r of a op b, with the NaN made independent of operand order (C
 * and compilers, commuting the operands, leave it open when both are NaN):
 * a NaN a wins, quieted. Otherwise the hardware's NaN rule already gives
 * one answer (the NaN operand quieted, or the default NaN). */
static inline float amp__nan_first(float r, float a) {
  if (a == a) return r;
  uint32_t q;
  memcpy(&q, &a, sizeof q);
  q |= 0x400000u;
  memcpy(&a, &q, sizeof a);
  return a;
}

/* The F32 operation of an element-wise op; u, v are the inputs. The AVX2
 * path computes the same with add, mul, max(0, u) and and(u > 0, v). */
static inline float amp__elt_op(int op, float u, float v, float s) {
  switch (op) {
  case AMP__ADD: return amp__nan_first(u + v, u);
  case AMP__MUL: return amp__nan_first(u * v, u);
  case AMP__SCALE: return amp__nan_first(s * u, s);
  case AMP__RELU: return 0.0f > u ? 0.0f : u; /* NaN and -0 pass through */
  default: return u > 0.0f ? v : 0.0f;        /* AMP__RELU_BWD: u = x, v = dy */
  }
}

/* The max used by amp_vec_max, in the exact form of the x86 MAXPS instruction. */
static inline float amp__maxf(float a, float b) { return a > b ? a : b; }

/* Combines AMP__LANES partials in a fixed pairwise tree (sum or max). */
static inline float amp__lane_tree(float *p, int is_max) {
  for (int w = AMP__LANES / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) p[k] = is_max ? amp__maxf(p[k], p[k + w]) : p[k] + p[k + w];
  return p[0];
}

/* Element i of a buffer of dtype dt, as a pointer. */
static inline const void *amp__at(const void *p, int dt, size_t i) {
  return (const char *)p + i * amp__dtype_size(dt);
}

/* Sum of n elements with the chunked, lane-blocked order above, on one
 * thread, with the chunk kernel of table k. amp_vec_sum gives the same bits
 * with any thread count. */
float amp__sum_serial(const amp__kernels *k, int dt, size_t n, const void *x);

/* Argument checks shared by the kernels: they record "fn: ..." on ctx. */
amp_status amp__check_dtype(amp_ctx *ctx, const char *fn, amp_dtype dt);

/* Non-zero when any of g[0..n) is inf or NaN (one thread, table k). */
int amp__check_finite_f32(const amp__kernels *k, size_t n, const float *g);

/* The entries of the kernel tables (contracts in core/kernels.h). unscale
 * flags an element when the absolute bits of its unscaled F32 value reach
 * amp__dtype(dt)->overflow_f32: the value is inf/NaN or rounds to inf in dt.
 * The scalar references (eltwise.c, rows.c): */
void amp__elt_scalar(int op, int dt, size_t n, float s, const void *a, const void *b, void *y);
int amp__unscale_scalar(int dt, size_t n, void *g, float s, int mul);
float amp__sum_chunk_scalar(int dt, size_t n, const void *x);
float amp__max_chunk_scalar(int dt, size_t n, const void *x, int *nan);
void amp__sum_cols_scalar(int dt, int64_t rows, int64_t cols, int64_t ld, const void *x,
                          float *acc);
void amp__tanh_act_scalar(int op, int dt, int gdt, size_t n, const void *v, const void *g, void *y);

/* The tanh-family op (AMP__TANH_FWD ...; tanh_internal.h) over n elements,
 * in blocks split over ctx's threads, with ctx's table (same bits for any
 * thread count). g is NULL for the forward ops. */
void amp__tanh_act(amp_ctx *ctx, int op, int dt, int gdt, size_t n, const void *v, const void *g,
                   void *y);

#ifdef AMPC_HAVE_X86_SIMD
/* Their AVX2/F16C versions (eltwise_avx2.c). */
void amp__elt_avx2(int op, int dt, size_t n, float s, const void *a, const void *b, void *y);
int amp__unscale_avx2(int dt, size_t n, void *g, float s, int mul);
float amp__sum_chunk_avx2(int dt, size_t n, const void *x);
float amp__max_chunk_avx2(int dt, size_t n, const void *x, int *nan);
void amp__sum_cols_avx2(int dt, int64_t rows, int64_t cols, int64_t ld, const void *x, float *acc);
void amp__tanh_act_avx2(int op, int dt, int gdt, size_t n, const void *v, const void *g, void *y);
/* AVX-512F (tanh_avx512.c). */
void amp__tanh_act_avx512(int op, int dt, int gdt, size_t n, const void *v, const void *g, void *y);
#endif

#endif
