/* The per-element update rules (scalar reference, the scalar kernel table's
 * entry), written operation by operation as torch.optim's single-tensor
 * implementations compute them. */
#include "optim_internal.h"

#include "../dtype/convert_internal.h"

#include <math.h>

static void sgd(const amp_optim_hyper *h, int64_t n, float *p, const float *g, float *buf) {
  for (int64_t i = 0; i < n; i++) {
    float d = g[i] * h->gmul;
    if (h->wd != 0) d = d + h->wd * p[i];
    if (buf) {
      float b = h->first ? d : h->momentum * buf[i] + (1.0f - h->dampening) * d;
      buf[i] = b;
      d = h->nesterov ? d + h->momentum * b : b;
    }
    p[i] = p[i] + (-h->lr) * d;
  }
}

static void adam(int decoupled, const amp_optim_hyper *h, int64_t n, float *p, const float *g,
                 float *m, float *v) {
  const float step_size = h->lr / h->bc1, c1 = 1.0f - h->beta1, c2 = 1.0f - h->beta2;
  const float shrink = 1.0f - h->lr * h->wd;
  for (int64_t i = 0; i < n; i++) {
    float d = g[i] * h->gmul, x = p[i];
    if (h->wd != 0) {
      if (decoupled)
        x = x * shrink;
      else
        d = d + h->wd * x;
    }
    float mi = m[i] + c1 * (d - m[i]);
    float vi = v[i] * h->beta2 + c2 * d * d;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / h->bc2_sqrt + h->eps;
    p[i] = x + (-step_size) * (mi / denom);
  }
}

void amp__optim_update_scalar(amp_optim_kind kind, const amp_optim_hyper *h, int64_t n, float *p,
                              const float *g, float *m, float *v, uint16_t *w16, int wdt) {
  if (kind == AMP_OPTIM_SGD)
    sgd(h, n, p, g, m);
  else
    adam(kind == AMP_OPTIM_ADAMW, h, n, p, g, m, v);
  if (w16 && wdt == AMP_BF16)
    amp__cvt_f32_to_bf16_scalar(w16, p, (size_t)n, 0);
  else if (w16)
    amp__cvt_f32_to_f16_scalar(w16, p, (size_t)n, 0);
}
