/* Elementwise kernels and full reductions: scalar references, OpenMP
 * splitting, and one call per block to the context's kernel table (the AVX2
 * entries are in eltwise_avx2.c). */
#include "kernels_internal.h"

#include "../dtype/dtype_inline.h"

#include <math.h>
#include <stdlib.h>

/* Elementwise work is split into blocks of this many elements. */
#define ELT_BLOCK 16384

amp_status amp__check_dtype(amp_ctx *ctx, const char *fn, amp_dtype dt) {
  if (amp__dtype(dt)->is_compute) return AMP_OK;
  return amp__error(ctx, AMP_ERR_UNSUPPORTED, "%s: dtype %d is not F32, F16 or BF16", fn, (int)dt);
}

/* n > 0, the buffers non-NULL (b may be unused), a supported dtype. */
static amp_status check_args(amp_ctx *ctx, const char *fn, amp_dtype dt, size_t n, const void *a,
                             const void *b, const void *y) {
  if (n == 0) return amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: n must be > 0", fn);
  if (!a || !b || !y) return amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: NULL buffer", fn);
  return amp__check_dtype(ctx, fn, dt);
}

void amp__elt_scalar(int op, int dt, size_t n, float s, const void *a, const void *b, void *y) {
  for (size_t i = 0; i < n; i++) {
    float v = b ? amp__load_f32(b, dt, i) : 0.0f;
    amp__store_f32(y, dt, i, amp__elt_op(op, amp__load_f32(a, dt, i), v, s));
  }
}

/* Runs an element-wise op over blocks, in parallel for large n. */
static void elt_run(amp_ctx *ctx, int op, int dt, size_t n, float s, const void *a, const void *b,
                    void *y) {
  const amp__kernels *kt = amp__kernels_of(ctx);
  size_t nb = (n + ELT_BLOCK - 1) / ELT_BLOCK;
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (n > AMP__PAR_MIN)
  for (size_t k = 0; k < nb; k++) {
    size_t i0 = k * ELT_BLOCK, len = n - i0 < ELT_BLOCK ? n - i0 : ELT_BLOCK;
    const void *ak = amp__at(a, dt, i0), *bk = b ? amp__at(b, dt, i0) : NULL;
    kt->elt(op, dt, len, s, ak, bk, (void *)amp__at(y, dt, i0));
  }
}

amp_status amp_vec_add(amp_ctx *ctx, amp_dtype dt, size_t n, const void *a, const void *b,
                       void *y) {
  amp_status st = check_args(ctx, "amp_vec_add", dt, n, a, b, y);
  if (st == AMP_OK) elt_run(ctx, AMP__ADD, dt, n, 0.0f, a, b, y);
  return st;
}

amp_status amp_vec_mul(amp_ctx *ctx, amp_dtype dt, size_t n, const void *a, const void *b,
                       void *y) {
  amp_status st = check_args(ctx, "amp_vec_mul", dt, n, a, b, y);
  if (st == AMP_OK) elt_run(ctx, AMP__MUL, dt, n, 0.0f, a, b, y);
  return st;
}

amp_status amp_vec_scale(amp_ctx *ctx, amp_dtype dt, size_t n, float s, const void *x, void *y) {
  amp_status st = check_args(ctx, "amp_vec_scale", dt, n, x, x, y);
  if (st == AMP_OK) elt_run(ctx, AMP__SCALE, dt, n, s, x, NULL, y);
  return st;
}

amp_status amp_vec_relu(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, void *y) {
  amp_status st = check_args(ctx, "amp_vec_relu", dt, n, x, x, y);
  if (st == AMP_OK) elt_run(ctx, AMP__RELU, dt, n, 0.0f, x, NULL, y);
  return st;
}

amp_status amp_vec_relu_backward(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x,
                                 const void *dy, void *dx) {
  amp_status st = check_args(ctx, "amp_vec_relu_backward", dt, n, x, dy, dx);
  if (st == AMP_OK) elt_run(ctx, AMP__RELU_BWD, dt, n, 0.0f, x, dy, dx);
  return st;
}

/* GELU and its derivative: scalar erff/expf on both paths. */
#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT2PI 0.39894228040143268f

amp_status amp_vec_gelu(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, void *y) {
  amp_status st = check_args(ctx, "amp_vec_gelu", dt, n, x, x, y);
  if (st != AMP_OK) return st;
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (n > AMP__PAR_MIN / 8)
  for (size_t i = 0; i < n; i++) {
    float v = amp__load_f32(x, dt, i);
    amp__store_f32(y, dt, i, 0.5f * v * (1.0f + erff(v * INV_SQRT2)));
  }
  return AMP_OK;
}

amp_status amp_vec_gelu_backward(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x,
                                 const void *dy, void *dx) {
  amp_status st = check_args(ctx, "amp_vec_gelu_backward", dt, n, x, dy, dx);
  if (st != AMP_OK) return st;
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static) if (n > AMP__PAR_MIN / 8)
  for (size_t i = 0; i < n; i++) {
    float v = amp__load_f32(x, dt, i);
    float d = 0.5f * (1.0f + erff(v * INV_SQRT2)) + v * INV_SQRT2PI * expf(-0.5f * v * v);
    amp__store_f32(dx, dt, i, amp__load_f32(dy, dt, i) * d);
  }
  return AMP_OK;
}

int amp__unscale_scalar(int dt, size_t n, void *g, float s, int mul) {
  const uint32_t thr = amp__dtype(dt)->overflow_f32;
  int found = 0;
  for (size_t i = 0; i < n; i++) {
    float v = amp__load_f32(g, dt, i);
    if (mul) {
      v = amp__elt_op(AMP__SCALE, v, 0.0f, s);
      amp__store_f32(g, dt, i, v);
    }
    found |= (amp__f32_bits(v) & 0x7fffffffu) >= thr;
  }
  return found;
}

int amp__check_finite_f32(const amp__kernels *k, size_t n, const float *g) {
  /* with mul == 0 the kernel only reads */
  return k->unscale(AMP_F32, n, (void *)(uintptr_t)g, 1.0f, 0);
}

amp_status amp_vec_unscale_check(amp_ctx *ctx, amp_dtype dt, size_t n, void *g, float inv_scale,
                                 int *found_inf) {
  amp_status st = check_args(ctx, "amp_vec_unscale_check", dt, n, g, found_inf, g);
  if (st != AMP_OK) return st;
  const amp__kernels *kt = amp__kernels_of(ctx);
  int mul = inv_scale != 1.0f, found = 0;
  size_t nb = (n + ELT_BLOCK - 1) / ELT_BLOCK;
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static)                           \
    reduction(|                                                                                    \
              : found) if (n > AMP__PAR_MIN)
  for (size_t k = 0; k < nb; k++) {
    size_t i0 = k * ELT_BLOCK, len = n - i0 < ELT_BLOCK ? n - i0 : ELT_BLOCK;
    found |= kt->unscale(dt, len, (void *)amp__at(g, dt, i0), inv_scale, mul);
  }
  *found_inf = found != 0;
  return AMP_OK;
}

/* Scalar references of one reduction chunk (n <= AMP__RCHUNK). */
float amp__sum_chunk_scalar(int dt, size_t n, const void *x) {
  float p[AMP__LANES] = {0};
  for (size_t j = 0; j < n; j++) p[j % AMP__LANES] += amp__load_f32(x, dt, j);
  return amp__lane_tree(p, 0);
}

float amp__max_chunk_scalar(int dt, size_t n, const void *x, int *nan) {
  float p[AMP__LANES];
  int isnan_ = 0;
  for (int k = 0; k < AMP__LANES; k++) p[k] = -INFINITY;
  for (size_t j = 0; j < n; j++) {
    float v = amp__load_f32(x, dt, j);
    isnan_ |= v != v;
    p[j % AMP__LANES] = amp__maxf(p[j % AMP__LANES], v);
  }
  *nan = isnan_;
  return amp__lane_tree(p, 1);
}

float amp__sum_serial(const amp__kernels *k, int dt, size_t n, const void *x) {
  float total = 0.0f;
  for (size_t i0 = 0; i0 < n; i0 += AMP__RCHUNK) {
    size_t len = n - i0 < AMP__RCHUNK ? n - i0 : AMP__RCHUNK;
    total += k->sum_chunk(dt, len, amp__at(x, dt, i0));
  }
  return total;
}

/* amp_vec_sum / amp_vec_max: chunks in parallel, partials combined in chunk order. */
static amp_status reduce(amp_ctx *ctx, const char *fn, int is_max, amp_dtype dt, size_t n,
                         const void *x, float *out) {
  amp_status st = check_args(ctx, fn, dt, n, x, out, x);
  if (st != AMP_OK) return st;
  size_t nc = (n + AMP__RCHUNK - 1) / AMP__RCHUNK;
  float small[64], *part = nc <= 64 ? small : malloc(nc * sizeof *part);
  if (!part) return amp__error(ctx, AMP_ERR_NOMEM, "%s: out of memory", fn);
  const amp__kernels *kt = amp__kernels_of(ctx);
  int nan = 0;
#pragma omp parallel for num_threads(amp__threads(ctx)) schedule(static)                           \
    reduction(|                                                                                    \
              : nan) if (n > AMP__PAR_MIN)
  for (size_t k = 0; k < nc; k++) {
    size_t i0 = k * AMP__RCHUNK, len = n - i0 < AMP__RCHUNK ? n - i0 : AMP__RCHUNK;
    const void *xk = amp__at(x, dt, i0);
    int cn = 0;
    part[k] = is_max ? kt->max_chunk(dt, len, xk, &cn) : kt->sum_chunk(dt, len, xk);
    nan |= cn;
  }
  float r = is_max ? -INFINITY : 0.0f;
  for (size_t k = 0; k < nc; k++) r = is_max ? amp__maxf(r, part[k]) : r + part[k];
  if (part != small) free(part);
  *out = nan || r != r ? NAN : r; /* one canonical NaN for every path */
  return AMP_OK;
}

amp_status amp_vec_sum(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, float *out) {
  return reduce(ctx, "amp_vec_sum", 0, dt, n, x, out);
}

amp_status amp_vec_max(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, float *out) {
  return reduce(ctx, "amp_vec_max", 1, dt, n, x, out);
}
