/* BatchNorm2d (running statistics as buffers) and CNN stacks: a Sequential
 * of conv → BatchNorm2d → ReLU → pool stages, flatten, then Linear layers
 * with ReLU between them, indexed as PyTorch's nn.Sequential indexes the
 * same list of layers. */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>

static amp_tensor *bn_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  return amp_batch_norm2d(ctx, x, m->params[0], m->params[1], m->buffers[0], m->buffers[1],
                          m->training, m->momentum, m->eps);
}

/* A persistent F32 [n] tensor filled with v (no gradient). */
static amp_tensor *filled(amp_ctx *ctx, int64_t n, float v) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 1, &n);
  for (int64_t i = 0; t && i < n; i++) ((float *)t->data)[i] = v;
  return t;
}

amp_module *amp_nn_batch_norm2d(amp_ctx *ctx, int64_t channels, float eps, float momentum) {
  if (!ctx) return NULL;
  if (channels < 1 || !(eps > 0) || !(momentum >= 0 && momentum <= 1)) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "BatchNorm2d: channels %lld, eps %g, momentum %g: need channels >= 1, eps > 0, "
               "momentum in [0, 1]",
               (long long)channels, (double)eps, (double)momentum);
    return NULL;
  }
  amp_module *m = amp__module_new(ctx, "BatchNorm2d", bn_fwd);
  if (!m) return NULL;
  m->eps = eps;
  m->momentum = momentum;
  if (!amp__module_add_param(ctx, m, "weight", 1, &channels, NULL, 0, 1.0f) ||
      !amp__module_add_param(ctx, m, "bias", 1, &channels, NULL, 0, 0.0f) ||
      !amp__module_push_buffer(ctx, m, filled(ctx, channels, 0.0f), "running_mean") ||
      !amp__module_push_buffer(ctx, m, filled(ctx, channels, 1.0f), "running_var"))
    return NULL;
  return m;
}

static amp_tensor *gap_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  (void)m;
  return amp_global_avg_pool2d(ctx, x);
}

static amp_tensor *avg_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  return amp_avg_pool2d(ctx, x, m->k, m->k, m->k, m->k);
}

/* The configuration's first problem, or NULL; *flat receives the features
 * entering the first Linear. */
static const char *cnn_config_error(const amp_cnn_config *c, int64_t *flat) {
  if (c->in_channels < 1 || c->height < 1 || c->width < 1 || c->classes < 1)
    return "in_channels, height, width and classes must be positive";
  if (c->nstages < 0 || c->nstages > AMP_CNN_MAX_STAGES || c->nhidden < 0 ||
      c->nhidden > AMP_CNN_MAX_HIDDEN)
    return "too many stages or hidden layers";
  int64_t ch = c->in_channels, h = c->height, w = c->width;
  for (int i = 0; i < c->nstages; i++) {
    const amp_cnn_stage *s = &c->stages[i];
    if (s->channels < 1 || s->kernel < 1 || s->kernel % 2 == 0)
      return "a stage needs channels >= 1 and an odd kernel";
    ch = s->channels;
    if (s->pool == AMP_CNN_POOL_GLOBAL_AVG) {
      h = w = 1;
    } else if (s->pool != AMP_CNN_POOL_NONE) {
      if (s->pool_size < 1 || h < s->pool_size || w < s->pool_size)
        return "a pooling window is larger than its input";
      h /= s->pool_size;
      w /= s->pool_size;
    }
  }
  for (int i = 0; i < c->nhidden; i++)
    if (c->hidden[i] < 1) return "hidden sizes must be positive";
  *flat = ch * h * w;
  return NULL;
}

/* Appends a stage's layers: conv (no bias), BatchNorm2d, ReLU, pool. */
static int push_stage(amp_ctx *ctx, amp_rng *rng, const amp_cnn_stage *s, int64_t in_ch,
                      amp_module **layers, int *n) {
  layers[(*n)++] = amp_nn_conv2d(ctx, rng, in_ch, s->channels, s->kernel, 1, s->kernel / 2, 0);
  layers[(*n)++] = amp_nn_batch_norm2d(ctx, s->channels, 1e-5f, 0.1f);
  layers[(*n)++] = amp_nn_relu(ctx);
  amp_module *p = NULL;
  if (s->pool == AMP_CNN_POOL_MAX) {
    p = amp_nn_max_pool2d(ctx, s->pool_size, s->pool_size);
  } else if (s->pool == AMP_CNN_POOL_AVG || s->pool == AMP_CNN_POOL_GLOBAL_AVG) {
    p = amp__module_new(ctx, s->pool == AMP_CNN_POOL_AVG ? "AvgPool2d" : "AdaptiveAvgPool2d",
                        s->pool == AMP_CNN_POOL_AVG ? avg_fwd : gap_fwd);
    if (p) p->k = s->pool_size;
  } else {
    return layers[*n - 3] && layers[*n - 2] && layers[*n - 1];
  }
  layers[(*n)++] = p;
  return p != NULL;
}

amp_module *amp_nn_cnn(amp_ctx *ctx, amp_rng *rng, const amp_cnn_config *cfg) {
  if (!ctx) return NULL;
  int64_t flat = 0;
  const char *err = !cfg   ? "no configuration"
                    : !rng ? "no random generator"
                           : cnn_config_error(cfg, &flat);
  if (err) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "CNN: %s", err);
    return NULL;
  }
  amp_module *layers[4 * AMP_CNN_MAX_STAGES + 2 * AMP_CNN_MAX_HIDDEN + 2];
  int n = 0;
  int64_t ch = cfg->in_channels;
  for (int i = 0; i < cfg->nstages; i++) {
    if (!push_stage(ctx, rng, &cfg->stages[i], ch, layers, &n)) return NULL;
    ch = cfg->stages[i].channels;
  }
  layers[n++] = amp_nn_flatten(ctx);
  int64_t in = flat;
  for (int i = 0; i < cfg->nhidden; i++) {
    layers[n++] = amp_nn_linear(ctx, rng, in, cfg->hidden[i], 1);
    layers[n++] = amp_nn_relu(ctx);
    in = cfg->hidden[i];
  }
  layers[n++] = amp_nn_linear(ctx, rng, in, cfg->classes, 1);
  for (int i = 0; i < n; i++)
    if (!layers[i]) return NULL;
  return amp_nn_sequential(ctx, n, layers);
}
