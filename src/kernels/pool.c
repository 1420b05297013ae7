/* The scalar reference of the max-pooling row kernel (kernel-table entry
 * max_pool_row, contract in core/kernels.h): branch-free over the window in
 * row-major order, a NaN taking the place of any number and the first NaN
 * or the first maximum winning (PyTorch's rule), loads specialised by
 * dtype outside the loops. Every implementation gives the same bits: the
 * output is a copy of the chosen input's bits. */
#include "spatial_internal.h"

#include "../dtype/dtype_inline.h"

static inline void pool_row(int dt, int64_t w, int64_t kh, int64_t kw, int64_t sw, int64_t ow,
                            const void *x, void *y, int32_t *arg, int32_t base) {
  for (int64_t j = 0; j < ow; j++) {
    int64_t bi = j * sw;
    float bv = amp__load_f32(x, dt, (size_t)bi);
    for (int64_t a = 0; a < kh; a++)
      for (int64_t b = a == 0; b < kw; b++) {
        int64_t at = a * w + j * sw + b;
        float v = amp__load_f32(x, dt, (size_t)at);
        int take = (v > bv) | ((v != v) & (bv == bv));
        bv = take ? v : bv;
        bi = take ? at : bi;
      }
    arg[j] = base + (int32_t)bi;
    if (dt == AMP_F32)
      ((uint32_t *)y)[j] = ((const uint32_t *)x)[bi];
    else
      ((uint16_t *)y)[j] = ((const uint16_t *)x)[bi];
  }
}

void amp__max_pool_row_scalar(int dt, int64_t w, int64_t kh, int64_t kw, int64_t sw, int64_t ow,
                              const void *x, void *y, int32_t *arg, int32_t base) {
  switch (dt) {
  case AMP_F16: pool_row(AMP_F16, w, kh, kw, sw, ow, x, y, arg, base); break;
  case AMP_BF16: pool_row(AMP_BF16, w, kh, kw, sw, ow, x, y, arg, base); break;
  default: pool_row(AMP_F32, w, kh, kw, sw, ow, x, y, arg, base); break;
  }
}
