/* im2col / col2im for 2-D convolution over one CHW image. im2col copies
 * element bits (no rounding); col2im accumulates in F32. */
#include "spatial_internal.h"

#include "../dtype/dtype_inline.h"

#include <string.h>

/* The output size, or 0 when the geometry is invalid. */
static int geom_out(const amp_conv_geom *g, int64_t *oh, int64_t *ow) {
  *oh = *ow = 0;
  if (!g || g->c < 1 || g->h < 1 || g->w < 1 || g->kh < 1 || g->kw < 1 || g->stride_h < 1 ||
      g->stride_w < 1 || g->pad_h < 0 || g->pad_w < 0)
    return 0;
  int64_t ph = g->h + 2 * g->pad_h, pw = g->w + 2 * g->pad_w;
  if (g->kh > ph || g->kw > pw) return 0;
  *oh = (ph - g->kh) / g->stride_h + 1;
  *ow = (pw - g->kw) / g->stride_w + 1;
  return 1;
}

void amp_conv_out_size(const amp_conv_geom *g, int64_t *out_h, int64_t *out_w) {
  int64_t oh, ow;
  geom_out(g, &oh, &ow);
  if (out_h) *out_h = oh;
  if (out_w) *out_w = ow;
}

static amp_status check_conv(amp_ctx *ctx, const char *fn, amp_dtype dt, const amp_conv_geom *g,
                             const void *a, const void *b, int64_t *oh, int64_t *ow) {
  if (!g || !a || !b) return amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: NULL argument", fn);
  if (!geom_out(g, oh, ow))
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "%s: bad geometry (sizes >= 1, strides >= 1, pads >= 0, kernel within "
                      "the padded input)",
                      fn);
  return amp__check_dtype(ctx, fn, dt);
}

/* ceil(a / b) for b > 0, clamped below at 0. */
static int64_t cdiv0(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

/* The outputs ow in [*lo, *hi) whose input column ow*s - pad + k is in [0, w). */
static void valid_range(int64_t k, int64_t w, int64_t s, int64_t pad, int64_t out, int64_t *lo,
                        int64_t *hi) {
  *lo = cdiv0(pad - k, s);
  *hi = cdiv0(w + pad - k, s);
  if (*hi > out) *hi = out;
  if (*lo > *hi) *lo = *hi;
}

/* im2col_row for stride 1 and an output as wide as the input ("same"
 * padding): the row is the channel's plane shifted by a constant offset, so
 * the valid output rows are one copy of the plane, then the columns that
 * fall outside the input (at most the padding's width each side, which the
 * copy filled with the neighbouring rows' ends) are zeroed. */
static void im2col_row_same(size_t es, const amp_conv_geom *g, const char *plane, int64_t ki,
                            int64_t kj, int64_t oh, int64_t lo, int64_t hi, char *dst) {
  const int64_t w = g->w;
  int64_t ylo = g->pad_h - ki, yhi = g->h + g->pad_h - ki;
  ylo = ylo < 0 ? 0 : ylo > oh ? oh : ylo;
  yhi = yhi > oh ? oh : yhi < ylo ? ylo : yhi;
  memset(dst, 0, (size_t)(ylo * w) * es);
  memset(dst + (size_t)(yhi * w) * es, 0, (size_t)((oh - yhi) * w) * es);
  if (ylo == yhi) return;
  const int64_t off = (ki - g->pad_h) * w + kj - g->pad_w; /* source index - output index */
  const int64_t a = ylo * w + lo, b = (yhi - 1) * w + hi;
  memcpy(dst + (size_t)a * es, plane + (size_t)(a + off) * es, (size_t)(b - a) * es);
  for (int64_t y = ylo; y < yhi; y++) {
    char *r = dst + (size_t)(y * w) * es;
    for (size_t k = 0; k < (size_t)lo * es; k++) r[k] = 0;
    for (size_t k = (size_t)hi * es; k < (size_t)w * es; k++) r[k] = 0;
  }
}

/* Row `row` of the column matrix (kernel offset ki, kj of channel ci) into
 * dst (oh·ow elements). */
static void im2col_row(amp_dtype dt, const amp_conv_geom *g, const void *img, int64_t row,
                       int64_t oh, int64_t ow, char *dst) {
  const size_t es = amp__dtype_size(dt);
  int64_t ci = row / (g->kh * g->kw), ki = (row / g->kw) % g->kh, kj = row % g->kw;
  int64_t lo, hi;
  valid_range(kj, g->w, g->stride_w, g->pad_w, ow, &lo, &hi);
  if (g->stride_h == 1 && g->stride_w == 1 && ow == g->w && hi > lo) {
    im2col_row_same(es, g, (const char *)img + (size_t)(ci * g->h * g->w) * es, ki, kj, oh, lo, hi,
                    dst);
    return;
  }
  for (int64_t y = 0; y < oh; y++, dst += (size_t)ow * es) {
    int64_t ih = y * g->stride_h - g->pad_h + ki;
    if (ih < 0 || ih >= g->h) {
      memset(dst, 0, (size_t)ow * es); /* all-zero bits are +0 in every dtype */
      continue;
    }
    const char *src = (const char *)img + (size_t)((ci * g->h + ih) * g->w) * es;
    memset(dst, 0, (size_t)lo * es);
    if (hi > lo && g->stride_w == 1) {
      memcpy(dst + (size_t)lo * es, src + (size_t)(lo - g->pad_w + kj) * es,
             (size_t)(hi - lo) * es);
    } else {
      for (int64_t x = lo; x < hi; x++)
        memcpy(dst + (size_t)x * es, src + (size_t)(x * g->stride_w - g->pad_w + kj) * es, es);
    }
    memset(dst + (size_t)hi * es, 0, (size_t)(ow - hi) * es);
  }
}

void amp__im2col_rows(amp_dtype dt, const amp_conv_geom *g, const void *img, int64_t row0,
                      int64_t row1, void *col) {
  int64_t oh, ow;
  geom_out(g, &oh, &ow);
  const size_t es = amp__dtype_size(dt);
  for (int64_t row = row0; row < row1; row++)
    im2col_row(dt, g, img, row, oh, ow, (char *)col + (size_t)((row - row0) * oh * ow) * es);
}

amp_status amp_im2col(amp_ctx *ctx, amp_dtype dt, const amp_conv_geom *g, const void *img,
                      void *col) {
  int64_t oh, ow;
  amp_status st = check_conv(ctx, "amp_im2col", dt, g, img, col, &oh, &ow);
  if (st != AMP_OK) return st;
  const size_t es = amp__dtype_size(dt);
  const int64_t nrows = g->c * g->kh * g->kw;
#pragma omp parallel for num_threads(amp__threads(ctx))                                            \
    schedule(static) if (nrows * oh * ow > AMP__PAR_MIN)
  for (int64_t row = 0; row < nrows; row++)
    im2col_row(dt, g, img, row, oh, ow, (char *)col + (size_t)(row * oh * ow) * es);
  return AMP_OK;
}

/* d[i] += s[i] for i < n (distinct elements: vector adds give the same bits). */
static void add_f32(float *restrict d, const float *restrict s, int64_t n) {
#if defined(__GNUC__) && !defined(__clang__) /* clang may not vectorise it: -Wpass-failed */
#pragma omp simd
#endif
  for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

amp_status amp_col2im(amp_ctx *ctx, amp_dtype dt, const amp_conv_geom *g, const void *col,
                      float *img) {
  int64_t oh, ow;
  amp_status st = check_conv(ctx, "amp_col2im", dt, g, col, img, &oh, &ow);
  if (st != AMP_OK) return st;
    /* One channel per work item: channels write disjoint planes, and each
     * pixel receives its terms in the same order for any thread count. */
#pragma omp parallel for num_threads(amp__threads(ctx))                                            \
    schedule(static) if (g->c * g->kh * g->kw * oh * ow > AMP__PAR_MIN)
  for (int64_t ci = 0; ci < g->c; ci++) {
    for (int64_t ki = 0; ki < g->kh; ki++) {
      for (int64_t kj = 0; kj < g->kw; kj++) {
        int64_t row = (ci * g->kh + ki) * g->kw + kj, lo, hi;
        valid_range(kj, g->w, g->stride_w, g->pad_w, ow, &lo, &hi);
        for (int64_t y = 0; y < oh; y++) {
          int64_t ih = y * g->stride_h - g->pad_h + ki;
          if (ih < 0 || ih >= g->h) continue;
          float *dst = img + (ci * g->h + ih) * g->w;
          size_t base = (size_t)((row * oh + y) * ow);
          if (dt == AMP_F32 && g->stride_w == 1) { /* each pixel gets one term: any width */
            add_f32(dst + lo - g->pad_w + kj, (const float *)col + base + lo, hi - lo);
            continue;
          }
          for (int64_t x = lo; x < hi; x++)
            dst[x * g->stride_w - g->pad_w + kj] += amp__load_f32(col, dt, base + (size_t)x);
        }
      }
    }
  }
  return AMP_OK;
}
