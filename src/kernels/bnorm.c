/* The scalar references of the BatchNorm2d kernels (kernel-table entries,
 * contracts in core/kernels.h, the sum order in spatial_internal.h). Loads
 * are specialised by dtype outside the loops. */
#include "spatial_internal.h"

#include "../dtype/dtype_inline.h"

/* Instantiates body once per dtype of its loads (XT: x's dtype). */
#define BN_SWITCH1(t, call)                                                                        \
  switch (t) {                                                                                     \
  case AMP_F16: {                                                                                  \
    enum { XT = AMP_F16 };                                                                         \
    call;                                                                                          \
  } break;                                                                                         \
  case AMP_BF16: {                                                                                 \
    enum { XT = AMP_BF16 };                                                                        \
    call;                                                                                          \
  } break;                                                                                         \
  default: {                                                                                       \
    enum { XT = AMP_F32 };                                                                         \
    call;                                                                                          \
  } break;                                                                                         \
  }

static inline float bn_sum_loop(int dt, int64_t n, int64_t hw, int64_t ld, const void *x, float m,
                                int sq) {
  float p[AMP__LANES] = {0};
  for (int64_t i = 0; i < n; i++)
    for (int64_t q = 0; q < hw; q++) {
      float v = amp__load_f32(x, dt, (size_t)(i * ld + q));
      if (sq) {
        float t = v - m;
        v = t * t;
      }
      p[q % AMP__LANES] += v;
    }
  return amp__lane_tree(p, 0);
}

float amp__bn_sum_scalar(int dt, int64_t n, int64_t hw, int64_t ld, const void *x, float m,
                         int sq) {
  float r = 0.0f;
  if (sq)
    BN_SWITCH1(dt, r = bn_sum_loop(XT, n, hw, ld, x, m, 1))
  else
    BN_SWITCH1(dt, r = bn_sum_loop(XT, n, hw, ld, x, m, 0))
  return r;
}

static inline void bn_apply_loop(int xt, int yt, int64_t n, int64_t hw, int64_t ld, const void *x,
                                 void *y, float mean, float rstd, float w, float b) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t q = 0; q < hw; q++) {
      size_t at = (size_t)(i * ld + q);
      amp__store_f32(y, yt, at, (amp__load_f32(x, xt, at) - mean) * rstd * w + b);
    }
}

void amp__bn_apply_scalar(int xt, int yt, int64_t n, int64_t hw, int64_t ld, const void *x, void *y,
                          float mean, float rstd, float w, float b) {
  if (xt == yt)
    BN_SWITCH1(xt, bn_apply_loop(XT, XT, n, hw, ld, x, y, mean, rstd, w, b))
  else
    bn_apply_loop(xt, yt, n, hw, ld, x, y, mean, rstd, w, b);
}

static inline void bn_bwd_sums_loop(int gt, int xt, int64_t n, int64_t hw, int64_t ld,
                                    const void *g, const void *x, float mean, float rstd, float *sg,
                                    float *sgx) {
  float p[AMP__LANES] = {0}, px[AMP__LANES] = {0};
  for (int64_t i = 0; i < n; i++)
    for (int64_t q = 0; q < hw; q++) {
      size_t at = (size_t)(i * ld + q);
      float gv = amp__load_f32(g, gt, at);
      p[q % AMP__LANES] += gv;
      px[q % AMP__LANES] += gv * ((amp__load_f32(x, xt, at) - mean) * rstd);
    }
  *sg = amp__lane_tree(p, 0);
  *sgx = amp__lane_tree(px, 0);
}

void amp__bn_bwd_sums_scalar(int gt, int xt, int64_t n, int64_t hw, int64_t ld, const void *g,
                             const void *x, float mean, float rstd, float *sg, float *sgx) {
  if (gt == xt)
    BN_SWITCH1(xt, bn_bwd_sums_loop(XT, XT, n, hw, ld, g, x, mean, rstd, sg, sgx))
  else
    bn_bwd_sums_loop(gt, xt, n, hw, ld, g, x, mean, rstd, sg, sgx);
}

static inline void bn_bwd_apply_loop(int gt, int xt, int dt, int64_t n, int64_t hw, int64_t ld,
                                     const void *g, const void *x, void *dx,
                                     const amp__bn_bwd_consts *c) {
  const float mean = c->mean, rstd = c->rstd, scale = c->scale, mg = c->mg, mgx = c->mgx;
  for (int64_t i = 0; i < n; i++)
    for (int64_t q = 0; q < hw; q++) {
      size_t at = (size_t)(i * ld + q);
      float gv = amp__load_f32(g, gt, at);
      if (c->training) {
        float xh = (amp__load_f32(x, xt, at) - mean) * rstd;
        gv = gv - mg - xh * mgx;
      }
      amp__store_f32(dx, dt, at, scale * gv);
    }
}

void amp__bn_bwd_apply_scalar(int gt, int xt, int dt, int64_t n, int64_t hw, int64_t ld,
                              const void *g, const void *x, void *dx, const amp__bn_bwd_consts *c) {
  if (gt == xt && xt == dt)
    BN_SWITCH1(xt, bn_bwd_apply_loop(XT, XT, XT, n, hw, ld, g, x, dx, c))
  else
    bn_bwd_apply_loop(gt, xt, dt, n, hw, ld, g, x, dx, c);
}
