/* Learning-rate schedules: constant, step decay, cosine with linear warm-up. */
#include "../core/internal.h"

#include <math.h>

float amp_lr_at(const amp_lr_schedule *s, int64_t step) {
  if (!s) return 0.0f;
  if (step < 0) step = 0;
  switch (s->kind) {
  case AMP_LR_CONSTANT: return s->base;
  case AMP_LR_STEP:
    if (s->step_size < 1) return s->base;
    return s->base * powf(s->gamma, (float)(step / s->step_size));
  case AMP_LR_COSINE: {
    if (step < s->warmup) return s->base * (float)(step + 1) / (float)s->warmup;
    int64_t span = s->total - s->warmup;
    if (span <= 0 || step >= s->total) return s->min_lr;
    double t = (double)(step - s->warmup) / (double)span;
    return s->min_lr + (s->base - s->min_lr) * 0.5f * (float)(1.0 + cos(3.141592653589793 * t));
  }
  }
  return s->base;
}
