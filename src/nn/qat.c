/* Quantization-aware training: Linear with fake-quantized input and weight
 * and the moving-average min/max observers of PyTorch's default QAT qconfig
 * (MovingAverageMinMaxObserver on the input, quint8 affine;
 * MovingAveragePerChannelMinMaxObserver on the weight, qint8 symmetric per
 * output channel; averaging constant 0.01). The observers are buffers, so
 * checkpoints carry them (an exact resume; the INT8 export reads them). */
#include "../dtype/dtype_inline.h"
#include "nn_internal.h"

#include <math.h>
#include <string.h>

enum { B_ACT_MIN, B_ACT_MAX, B_W_MIN, B_W_MAX, B_OBSERVED, B_COUNT };
#define QAT_AVG 0.01f /* PyTorch's averaging_constant */

/* The moving average of PyTorch's observers: the first observation sets the
 * value, later ones move it by c·(new - old), in F32. */
static void observe(float *v, float now, int first) {
  *v = first ? now : *v + QAT_AVG * (now - *v);
}

/* min and max of n values of x (NaN ignored; 0, 0 when all are NaN). */
static void min_max(const amp_tensor *x, size_t i0, size_t n, float *lo, float *hi) {
  float mn = INFINITY, mx = -INFINITY;
  if (x->dtype == AMP_F32) { /* min and max do not depend on the order */
    const float *f = (const float *)x->data + i0;
#if defined(__GNUC__) && !defined(__clang__) /* clang cannot vectorise it: -Wpass-failed */
#pragma omp simd reduction(min : mn) reduction(max : mx)
#endif
    for (size_t i = 0; i < n; i++) {
      mn = f[i] < mn ? f[i] : mn;
      mx = f[i] > mx ? f[i] : mx;
    }
  } else {
    for (size_t i = i0; i < i0 + n; i++) {
      const float v = amp__load_f32(x->data, x->dtype, i);
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
    }
  }
  *lo = mn <= mx ? mn : 0.0f;
  *hi = mn <= mx ? mx : 0.0f;
}

/* One training forward's observations of the input x and the weight w. */
static void qat_observe(amp_module *m, const amp_tensor *x, const amp_tensor *w) {
  float **b = (float *[B_COUNT]){0};
  for (int i = 0; i < B_COUNT; i++) b[i] = m->buffers[i]->data;
  const int first = b[B_OBSERVED][0] == 0.0f;
  float lo, hi;
  min_max(x, 0, (size_t)x->numel, &lo, &hi);
  observe(&b[B_ACT_MIN][0], lo, first);
  observe(&b[B_ACT_MAX][0], hi, first);
  const int64_t out = w->shape[0], in = w->shape[1];
  for (int64_t r = 0; r < out; r++) {
    min_max(w, (size_t)(r * in), (size_t)in, &lo, &hi);
    observe(&b[B_W_MIN][r], lo, first);
    observe(&b[B_W_MAX][r], hi, first);
  }
  b[B_OBSERVED][0] = 1.0f;
}

static amp_tensor *qat_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  amp_tensor *w = m->params[0], *bias = m->nparams > 1 ? m->params[1] : NULL;
  if (!x) return NULL;
  if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1]) return amp_linear(ctx, x, w, bias);
  if (m->training) qat_observe(m, x, w);
  const float *b[B_COUNT];
  for (int i = 0; i < B_COUNT; i++) b[i] = m->buffers[i]->data;
  if (b[B_OBSERVED][0] == 0.0f) return amp_linear(ctx, x, w, bias); /* nothing observed yet */
  const int64_t out = w->shape[0];
  float *ws = amp_arena_alloc(ctx, AMP_ARENA_STEP, sizeof(float) * (size_t)out);
  int32_t *wz = amp_arena_alloc(ctx, AMP_ARENA_STEP, sizeof(int32_t) * (size_t)out);
  if (!ws || !wz) return NULL;
  for (int64_t r = 0; r < out; r++) {
    ws[r] = amp_qparams_symmetric_s8(b[B_W_MIN][r], b[B_W_MAX][r]);
    wz[r] = 0;
  }
  float as;
  int32_t az;
  amp_qparams_affine_u8(b[B_ACT_MIN][0], b[B_ACT_MAX][0], &as, &az);
  amp_tensor *xq = amp_fake_quant(ctx, x, 1, &as, &az, 0, 255);
  amp_tensor *wq = amp_fake_quant(ctx, w, out, ws, wz, -128, 127);
  return amp_linear(ctx, xq, wq, bias);
}

/* A persistent F32 [n] tensor of zeros (no gradient). */
static amp_tensor *zeros(amp_ctx *ctx, int64_t n) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 1, &n);
  if (t) memset(t->data, 0, sizeof(float) * (size_t)n);
  return t;
}

amp_module *amp_nn_qat_linear(amp_ctx *ctx, amp_rng *rng, int64_t in, int64_t out, int bias) {
  amp_module *lin = amp_nn_linear(ctx, rng, in, out, bias);
  if (!lin) return NULL;
  amp_module *m = amp__module_new(ctx, "QATLinear", qat_fwd);
  if (!m) return NULL;
  for (int i = 0; i < lin->nparams; i++)
    if (!amp__module_push_param(ctx, m, lin->params[i], lin->names[i])) return NULL;
  static const char *const names[B_COUNT] = {"act_min", "act_max", "weight_min", "weight_max",
                                             "observed"};
  const int64_t sizes[B_COUNT] = {1, 1, out, out, 1};
  for (int i = 0; i < B_COUNT; i++)
    if (!amp__module_push_buffer(ctx, m, zeros(ctx, sizes[i]), names[i])) return NULL;
  return m;
}
