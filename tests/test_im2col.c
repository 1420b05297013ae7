/* im2col/col2im: conv via im2col + matmul equals a direct FP64 convolution,
 * col2im is the adjoint of im2col, thread invariance, geometry errors. */
#include "check.h"

#include "ampc.h"
#include "dtype/dtype_inline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const amp_dtype DTS[3] = {AMP_F32, AMP_F16, AMP_BF16};

/* c, h, w, kh, kw, stride_h, stride_w, pad_h, pad_w */
static const amp_conv_geom GEOMS[] = {{3, 7, 9, 3, 3, 1, 1, 1, 1},
                                      {2, 8, 8, 3, 2, 2, 2, 1, 1},
                                      {1, 5, 5, 5, 5, 1, 1, 0, 0},
                                      {3, 10, 7, 4, 3, 3, 2, 2, 0},
                                      {2, 6, 6, 1, 1, 1, 1, 0, 0},
                                      {2, 3, 4, 2, 2, 1, 3, 3, 2},
                                      {4, 1, 1, 3, 3, 1, 1, 1, 1},
                                      {16, 40, 40, 3, 3, 1, 1, 1, 1},
                                      /* "same" stride-1 geometries (im2col's shifted-plane
                                         path): 5x5, 3x5, 1x3, 5x3 taller than the input */
                                      {2, 9, 11, 5, 5, 1, 1, 2, 2},
                                      {3, 6, 13, 3, 5, 1, 1, 1, 2},
                                      {2, 4, 7, 1, 3, 1, 1, 0, 1},
                                      {2, 2, 3, 5, 3, 1, 1, 2, 1}};
#define NGEOMS (sizeof GEOMS / sizeof GEOMS[0])

static size_t esz(amp_dtype dt) { return amp_dtype_size(dt); }

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double urand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1p-53;
}

static void *fill(amp_dtype dt, size_t n) {
  void *p = malloc(n * esz(dt));
  for (size_t i = 0; i < n; i++) amp__store_f32(p, dt, i, (float)(2 * urand() - 1));
  return p;
}

static double ld(const void *p, amp_dtype dt, size_t i) { return amp__load_f32(p, dt, i); }

static void test_geom(const amp_conv_geom *g, amp_dtype dt, amp_ctx *c1, amp_ctx *c2) {
  int64_t oh, ow;
  amp_conv_out_size(g, &oh, &ow);
  CHECK(oh == (g->h + 2 * g->pad_h - g->kh) / g->stride_h + 1 &&
            ow == (g->w + 2 * g->pad_w - g->kw) / g->stride_w + 1,
        "out size");
  const int64_t K = g->c * g->kh * g->kw, P = oh * ow, O = 3;
  const size_t nimg = (size_t)(g->c * g->h * g->w), ncol = (size_t)(K * P);
  void *img = fill(dt, nimg), *col = malloc(ncol * esz(dt)), *col2 = malloc(ncol * esz(dt));
  memset(col, 0xff, ncol * esz(dt)); /* every entry must be written */
  CHECK(amp_im2col(c1, dt, g, img, col) == AMP_OK, "im2col");
  CHECK(amp_im2col(c2, dt, g, img, col2) == AMP_OK, "im2col 2 threads");
  CHECK(!memcmp(col, col2, ncol * esz(dt)), "im2col threads");
  /* O output channels: W·col in FP64 against the direct convolution. */
  double *wt = malloc((size_t)(O * K) * sizeof *wt);
  for (int64_t i = 0; i < O * K; i++) wt[i] = 2 * urand() - 1;
  size_t bad = 0;
  for (int64_t o = 0; o < O; o++)
    for (int64_t y = 0; y < oh; y++)
      for (int64_t x = 0; x < ow; x++) {
        double mm = 0, direct = 0, ab = 0;
        for (int64_t k = 0; k < K; k++)
          mm += wt[o * K + k] * ld(col, dt, (size_t)(k * P + y * ow + x));
        for (int64_t ci = 0; ci < g->c; ci++)
          for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
              int64_t ih = y * g->stride_h - g->pad_h + ki, iw = x * g->stride_w - g->pad_w + kj;
              if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
              double t = wt[o * K + (ci * g->kh + ki) * g->kw + kj] *
                         ld(img, dt, (size_t)((ci * g->h + ih) * g->w + iw));
              direct += t, ab += fabs(t);
            }
        bad += !(fabs(mm - direct) <= 1e-13 * (ab + 1));
      }
  CHECK(bad == 0, "conv via im2col != direct conv: %zu (dt=%d, c=%lld k=%lldx%lld)", bad, dt,
        (long long)g->c, (long long)g->kh, (long long)g->kw);
  /* Adjoint: <im2col(img), cy> == <img, col2im(cy)>, in FP64 up to the F32
   * accumulation of at most kh·kw terms per pixel. */
  void *cy = fill(dt, ncol);
  float *back = calloc(nimg, sizeof *back), *back2 = calloc(nimg, sizeof *back2);
  CHECK(amp_col2im(c1, dt, g, cy, back) == AMP_OK, "col2im");
  CHECK(amp_col2im(c2, dt, g, cy, back2) == AMP_OK, "col2im 2 threads");
  CHECK(!memcmp(back, back2, nimg * sizeof *back), "col2im threads");
  double lhs = 0, rhs = 0, ab = 0;
  for (size_t i = 0; i < ncol; i++) {
    lhs += ld(col, dt, i) * ld(cy, dt, i);
    ab += fabs(ld(col, dt, i) * ld(cy, dt, i));
  }
  for (size_t i = 0; i < nimg; i++) rhs += ld(img, dt, i) * back[i];
  CHECK(fabs(lhs - rhs) <= (double)(g->kh * g->kw) * 0x1p-24 * ab + 1e-12,
        "adjoint: %.15g vs %.15g (dt=%d)", lhs, rhs, dt);
  /* col2im adds into what is there. */
  for (size_t i = 0; i < nimg; i++) back2[i] = 1.0f;
  amp_col2im(c1, dt, g, cy, back2);
  for (size_t i = 0; i < nimg; i++)
    bad += !(fabs(back2[i] - (1.0 + back[i])) <= 1e-5 * (1 + fabs(back[i])));
  CHECK(bad == 0, "col2im accumulates");
  free(img), free(col), free(col2), free(wt), free(cy), free(back), free(back2);
}

static void test_errors(void) {
  amp_ctx *c = amp_ctx_create(NULL);
  float img[64] = {0}, col[1024];
  int64_t oh = -1, ow = -1;
  const amp_conv_geom bad[] = {
      {1, 4, 4, 3, 3, 0, 1, 0, 0},  /* stride 0 */
      {1, 4, 4, 3, 3, 1, 1, -1, 0}, /* negative pad */
      {1, 4, 4, 7, 3, 1, 1, 1, 1},  /* kernel taller than the padded input */
      {0, 4, 4, 3, 3, 1, 1, 0, 0},  /* no channels */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    amp_conv_out_size(&bad[i], &oh, &ow);
    CHECK(oh == 0 && ow == 0, "bad geometry %zu: out size 0", i);
    amp_ctx_clear_error(c);
    CHECK(amp_im2col(c, AMP_F32, &bad[i], img, col) == AMP_ERR_INVALID_ARG, "im2col bad %zu", i);
    CHECK(strstr(amp_ctx_error(c), "amp_im2col") != NULL, "message: %s", amp_ctx_error(c));
    CHECK(amp_col2im(NULL, AMP_F32, &bad[i], col, img) == AMP_ERR_INVALID_ARG, "col2im bad");
  }
  amp_conv_out_size(NULL, &oh, &ow);
  CHECK(oh == 0 && ow == 0, "NULL geometry");
  const amp_conv_geom ok = {1, 4, 4, 3, 3, 1, 1, 1, 1};
  amp_ctx_clear_error(c);
  CHECK(amp_col2im(c, AMP_F32, &ok, NULL, img) == AMP_ERR_INVALID_ARG, "NULL col");
  CHECK(strstr(amp_ctx_error(c), "amp_col2im") != NULL, "message: %s", amp_ctx_error(c));
  CHECK(amp_im2col(c, AMP_E5M2, &ok, img, col) == AMP_ERR_UNSUPPORTED, "E5M2");
  CHECK(amp_im2col(NULL, AMP_F32, NULL, img, col) == AMP_ERR_INVALID_ARG, "NULL geometry");
  amp_ctx_free(c);
}

int main(void) {
  amp_ctx *c1 = amp_ctx_create(&(amp_ctx_params){.threads = 1});
  amp_ctx *c2 = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  for (size_t i = 0; i < NGEOMS; i++)
    for (int d = 0; d < 3; d++) test_geom(&GEOMS[i], DTS[d], c1, c2);
  test_errors();
  amp_ctx_free(c1), amp_ctx_free(c2);
  TEST_MAIN_END();
}
