/* Scalar references of the layer norm and masked softmax row kernels (the
 * order of every sum is in norm_internal.h). */
#include "kernels_internal.h"
#include "norm_internal.h"

void amp__ln_fwd_scalar(const amp__ln_args *a, int64_t r0, int64_t r1) {
  const size_t d = a->d;
  for (int64_t r = r0; r < r1; r++) {
    size_t o = (size_t)r * d;
    float p[AMP__ROW_LANES] = {0}, q[AMP__ROW_LANES] = {0};
    for (size_t j = 0; j < d; j++) p[j % AMP__ROW_LANES] += amp__load_f32(a->x, a->xdt, o + j);
    float mean = amp__row_tree(p, 0) / (float)d;
    for (size_t j = 0; j < d; j++) {
      float t = amp__load_f32(a->x, a->xdt, o + j) - mean;
      q[j % AMP__ROW_LANES] = fmaf(t, t, q[j % AMP__ROW_LANES]);
    }
    float rstd = 1.0f / sqrtf(amp__row_tree(q, 0) / (float)d + a->eps);
    a->stat[2 * r] = mean;
    a->stat[2 * r + 1] = rstd;
    for (size_t j = 0; j < d; j++) {
      float v = (amp__load_f32(a->x, a->xdt, o + j) - mean) * rstd;
      if (a->w && a->b)
        v = fmaf(v, amp__load_f32(a->w, a->wdt, j), amp__load_f32(a->b, a->bdt, j));
      else if (a->w)
        v = v * amp__load_f32(a->w, a->wdt, j);
      else if (a->b)
        v = v + amp__load_f32(a->b, a->bdt, j);
      amp__store_f32(a->y, a->ydt, o + j, v);
    }
  }
}

void amp__ln_bwd_scalar(const amp__ln_args *a, int64_t r0, int64_t r1) {
  const size_t d = a->d;
  for (int64_t r = r0; r < r1; r++) {
    size_t o = (size_t)r * d;
    float mean = a->stat[2 * r], rstd = a->stat[2 * r + 1];
    float p[AMP__ROW_LANES] = {0}, q[AMP__ROW_LANES] = {0};
    for (size_t j = 0; j < d; j++) {
      float xh = (amp__load_f32(a->x, a->xdt, o + j) - mean) * rstd;
      float gh = amp__load_f32(a->g, a->gdt, o + j);
      if (a->w) gh = gh * amp__load_f32(a->w, a->wdt, j);
      p[j % AMP__ROW_LANES] += gh;
      q[j % AMP__ROW_LANES] = fmaf(gh, xh, q[j % AMP__ROW_LANES]);
    }
    float m1 = amp__row_tree(p, 0) / (float)d, m2 = amp__row_tree(q, 0) / (float)d;
    for (size_t j = 0; j < d; j++) {
      float xh = (amp__load_f32(a->x, a->xdt, o + j) - mean) * rstd;
      float gh = amp__load_f32(a->g, a->gdt, o + j);
      if (a->w) gh = gh * amp__load_f32(a->w, a->wdt, j);
      float v = rstd * fmaf(-xh, m2, gh - m1);
      if (a->acc) v = ((float *)a->dx)[o + j] + v;
      amp__store_f32(a->dx, a->dxdt, o + j, v);
    }
  }
}

void amp__ln_wb_scalar(const amp__ln_args *a, int64_t rows) {
  const size_t d = a->d;
  for (int64_t r = 0; r < rows; r++) {
    size_t o = (size_t)r * d;
    float mean = a->stat[2 * r], rstd = a->stat[2 * r + 1];
    for (size_t j = 0; j < d; j++) {
      float gv = amp__load_f32(a->g, a->gdt, o + j);
      float xh = (amp__load_f32(a->x, a->xdt, o + j) - mean) * rstd;
      if (a->dw) a->dw[j] = fmaf(gv, xh, a->dw[j]);
      if (a->db) a->db[j] = a->db[j] + gv;
    }
  }
}

void amp__softmax_row_scalar(float *row, size_t lim, size_t t) {
  float m[AMP__ROW_LANES], p[AMP__ROW_LANES] = {0};
  int nan = 0;
  for (int k = 0; k < AMP__ROW_LANES; k++) m[k] = -INFINITY;
  for (size_t j = 0; j < lim; j++) {
    nan |= row[j] != row[j];
    m[j % AMP__ROW_LANES] = amp__max_ps(row[j], m[j % AMP__ROW_LANES]);
  }
  float mx = amp__row_tree(m, 1);
  for (size_t j = 0; j < lim; j++) {
    row[j] = amp__exp_any_ref(row[j] - mx);
    p[j % AMP__ROW_LANES] += row[j];
  }
  float sum = amp__row_tree(p, 0), inv = 1.0f / sum;
  nan |= sum != sum;
  for (size_t j = 0; j < lim; j++) row[j] = nan ? NAN : row[j] * inv;
  for (size_t j = lim; j < t; j++) row[j] = 0.0f;
}
