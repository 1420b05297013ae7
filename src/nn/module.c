/* Modules: layers built from ops, Sequential, and the parameter registry
 * with dotted names. Everything lives in the context's persistent arena. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Grows an arena array of pointers to hold one more (doubling). */
static int grow(amp_ctx *ctx, void ***arr, const char ***names, int n, int *cap) {
  if (n < *cap) return 1;
  int nc = *cap ? 2 * *cap : 4;
  void **a = amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, sizeof(void *) * (size_t)nc);
  const char **nm =
      names ? amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, sizeof(char *) * (size_t)nc) : NULL;
  if (!a || (names && !nm)) return 0;
  if (n) {
    memcpy(a, *arr, sizeof(void *) * (size_t)n);
    if (names) memcpy(nm, *names, sizeof(char *) * (size_t)n);
  }
  *arr = a;
  if (names) *names = nm;
  *cap = nc;
  return 1;
}

static const char *dup_name(amp_ctx *ctx, const char *prefix, const char *name) {
  size_t len = strlen(name) + (prefix ? strlen(prefix) + 1 : 0) + 1;
  char *s = amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, len);
  if (s) snprintf(s, len, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", name);
  return s;
}

amp_module *amp__module_new(amp_ctx *ctx, const char *type, amp__module_forward fwd) {
  amp_module *m = amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, sizeof *m);
  if (!m) return NULL;
  memset(m, 0, sizeof *m);
  m->type = type;
  m->forward = fwd;
  m->training = 1;
  return m;
}

int amp__module_push_param(amp_ctx *ctx, amp_module *m, amp_tensor *t, const char *name) {
  const char *nm = dup_name(ctx, NULL, name);
  if (!t || !nm || !grow(ctx, (void ***)&m->params, &m->names, m->nparams, &m->cap_params))
    return 0;
  m->params[m->nparams] = t;
  m->names[m->nparams++] = nm;
  return 1;
}

int amp__module_push_buffer(amp_ctx *ctx, amp_module *m, amp_tensor *t, const char *name) {
  const char *nm = dup_name(ctx, NULL, name);
  if (!t || !nm ||
      !grow(ctx, (void ***)&m->buffers, &m->buffer_names, m->nbuffers, &m->cap_buffers))
    return 0;
  m->buffers[m->nbuffers] = t;
  m->buffer_names[m->nbuffers++] = nm;
  return 1;
}

int amp__module_adopt(amp_ctx *ctx, amp_module *m, const char *prefix, amp_module *child) {
  if (!child) return 0;
  const char *cname = dup_name(ctx, NULL, prefix ? prefix : "");
  if (!cname || !grow(ctx, (void ***)&m->children, &m->child_names, m->nchildren, &m->cap_children))
    return 0;
  m->child_names[m->nchildren] = cname;
  m->children[m->nchildren++] = child;
  for (int j = 0; j < child->nparams; j++) {
    const char *nm = dup_name(ctx, prefix, child->names[j]);
    if (!nm || !amp__module_push_param(ctx, m, child->params[j], nm)) return 0;
  }
  for (int j = 0; j < child->nbuffers; j++) {
    const char *nm = dup_name(ctx, prefix, child->buffer_names[j]);
    if (!nm || !amp__module_push_buffer(ctx, m, child->buffers[j], nm)) return 0;
  }
  return 1;
}

amp_tensor *amp__module_add_param(amp_ctx *ctx, amp_module *m, const char *name, int ndim,
                                  const int64_t *shape, amp_rng *rng, float bound, float fill) {
  amp_tensor *t = amp_param_new(ctx, ndim, shape);
  if (!t) return NULL;
  float *d = t->data;
  for (int64_t i = 0; i < t->numel; i++)
    d[i] = !rng        ? fill
           : bound < 0 ? -bound * amp_rng_normal(rng)
                       : amp_rng_uniform(rng, -bound, bound);
  return amp__module_push_param(ctx, m, t, name) ? t : NULL;
}

#define add_param amp__module_add_param

static amp_module *module_new(amp_ctx *ctx, const char *type, amp__module_forward fwd, int np) {
  (void)np; /* arrays grow as parameters are added */
  return amp__module_new(ctx, type, fwd);
}

static int check_sizes(amp_ctx *ctx, const char *what, int n, const int64_t *v) {
  for (int i = 0; i < n; i++)
    if (v[i] < 1) {
      amp__error(ctx, AMP_ERR_INVALID_ARG, "%s: size %lld must be positive", what, (long long)v[i]);
      return 0;
    }
  return 1;
}

static amp_tensor *linear_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  return amp_linear(ctx, x, m->params[0], m->nparams > 1 ? m->params[1] : NULL);
}

amp_module *amp_nn_linear(amp_ctx *ctx, amp_rng *rng, int64_t in, int64_t out, int bias) {
  if (!ctx || !check_sizes(ctx, "Linear", 2, (int64_t[]){in, out})) return NULL;
  if (!rng) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "Linear: no random generator for the initialisation");
    return NULL;
  }
  amp_module *m = module_new(ctx, "Linear", linear_fwd, bias ? 2 : 1);
  if (!m) return NULL;
  /* PyTorch: kaiming_uniform_(a=sqrt(5)) gives U(±1/sqrt(fan_in)); so does the bias. */
  float bound = 1.0f / sqrtf((float)in);
  if (!add_param(ctx, m, "weight", 2, (int64_t[]){out, in}, rng, bound, 0)) return NULL;
  if (bias && !add_param(ctx, m, "bias", 1, (int64_t[]){out}, rng, bound, 0)) return NULL;
  return m;
}

static amp_tensor *conv_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  return amp_conv2d(ctx, x, m->params[0], m->nparams > 1 ? m->params[1] : NULL, m->stride,
                    m->stride, m->padding, m->padding);
}

amp_module *amp_nn_conv2d(amp_ctx *ctx, amp_rng *rng, int64_t in_ch, int64_t out_ch, int64_t k,
                          int64_t stride, int64_t padding, int bias) {
  if (!ctx || !check_sizes(ctx, "Conv2d", 4, (int64_t[]){in_ch, out_ch, k, stride})) return NULL;
  if (padding < 0 || !rng) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "Conv2d: %s",
               rng ? "padding must not be negative" : "no random generator for the initialisation");
    return NULL;
  }
  amp_module *m = module_new(ctx, "Conv2d", conv_fwd, bias ? 2 : 1);
  if (!m) return NULL;
  m->k = k;
  m->stride = stride;
  m->padding = padding;
  float bound = 1.0f / sqrtf((float)(in_ch * k * k));
  if (!add_param(ctx, m, "weight", 4, (int64_t[]){out_ch, in_ch, k, k}, rng, bound, 0)) return NULL;
  if (bias && !add_param(ctx, m, "bias", 1, (int64_t[]){out_ch}, rng, bound, 0)) return NULL;
  return m;
}

static amp_tensor *pool_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  return amp_max_pool2d(ctx, x, m->k, m->k, m->stride, m->stride);
}

amp_module *amp_nn_max_pool2d(amp_ctx *ctx, int64_t k, int64_t stride) {
  if (!ctx || !check_sizes(ctx, "MaxPool2d", 2, (int64_t[]){k, stride})) return NULL;
  amp_module *m = module_new(ctx, "MaxPool2d", pool_fwd, 0);
  if (m) {
    m->k = k;
    m->stride = stride;
  }
  return m;
}

static amp_tensor *relu_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  (void)m;
  return amp_relu(ctx, x);
}

amp_module *amp_nn_relu(amp_ctx *ctx) { return ctx ? module_new(ctx, "ReLU", relu_fwd, 0) : NULL; }

static amp_tensor *gelu_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  (void)m;
  return amp_gelu(ctx, x);
}

amp_module *amp_nn_gelu(amp_ctx *ctx) { return ctx ? module_new(ctx, "GELU", gelu_fwd, 0) : NULL; }

static amp_tensor *dropout_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  if (!m->training || m->p == 0) return x;
  /* A new mask per call: the call counter is mixed into the seed. */
  amp_rng r = {m->seed ^ (0xD1B54A32D192ED03ull * ++m->calls)};
  return amp_dropout(ctx, x, m->p, amp_rng_next(&r));
}

amp_module *amp_nn_dropout(amp_ctx *ctx, float p, uint64_t seed) {
  if (!ctx) return NULL;
  if (!(p >= 0 && p < 1)) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "Dropout: p = %g is not in [0, 1)", (double)p);
    return NULL;
  }
  amp_module *m = module_new(ctx, "Dropout", dropout_fwd, 0);
  if (m) {
    m->p = p;
    m->seed = seed;
  }
  return m;
}

static amp_tensor *flatten_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  (void)m;
  return amp_flatten(ctx, x);
}

amp_module *amp_nn_flatten(amp_ctx *ctx) {
  return ctx ? module_new(ctx, "Flatten", flatten_fwd, 0) : NULL;
}

static amp_tensor *layer_norm_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  return amp_layer_norm(ctx, x, m->params[0], m->params[1], m->eps);
}

amp_module *amp_nn_layer_norm(amp_ctx *ctx, int64_t d, float eps) {
  if (!ctx || !check_sizes(ctx, "LayerNorm", 1, &d)) return NULL;
  if (!(eps >= 0)) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "LayerNorm: eps = %g must be >= 0", (double)eps);
    return NULL;
  }
  amp_module *m = module_new(ctx, "LayerNorm", layer_norm_fwd, 2);
  if (!m) return NULL;
  m->eps = eps;
  if (!add_param(ctx, m, "weight", 1, &d, NULL, 0, 1.0f)) return NULL;
  if (!add_param(ctx, m, "bias", 1, &d, NULL, 0, 0.0f)) return NULL;
  return m;
}

static amp_tensor *embedding_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  return amp_embedding(ctx, m->params[0], x);
}

amp_module *amp_nn_embedding(amp_ctx *ctx, amp_rng *rng, int64_t num, int64_t dim) {
  if (!ctx || !check_sizes(ctx, "Embedding", 2, (int64_t[]){num, dim})) return NULL;
  if (!rng) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "Embedding: no random generator for the initialisation");
    return NULL;
  }
  amp_module *m = module_new(ctx, "Embedding", embedding_fwd, 1);
  if (m && !add_param(ctx, m, "weight", 2, (int64_t[]){num, dim}, rng, -1, 0)) return NULL;
  return m;
}

static amp_tensor *sequential_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  for (int i = 0; i < m->nchildren && x; i++) x = amp_module_forward(ctx, m->children[i], x);
  return x;
}

amp_module *amp_nn_sequential(amp_ctx *ctx, int n, amp_module *const *children) {
  if (!ctx) return NULL;
  if (n < 0 || (n > 0 && !children)) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "Sequential: %d children", n);
    return NULL;
  }
  for (int i = 0; i < n; i++)
    if (!children[i]) {
      amp__error(ctx, AMP_ERR_INVALID_ARG, "Sequential: child %d is NULL", i);
      return NULL;
    }
  amp_module *m = module_new(ctx, "Sequential", sequential_fwd, 0);
  if (!m) return NULL;
  for (int i = 0; i < n; i++) {
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%d", i);
    if (!amp__module_adopt(ctx, m, prefix, children[i])) return NULL;
  }
  return m;
}

amp_tensor *amp_module_forward(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  if (!ctx || !x) return NULL;
  if (!m) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_module_forward: NULL module");
    return NULL;
  }
  amp_tensor *y = m->forward(ctx, m, x);
  if (y && ctx->module_observer) ctx->module_observer(ctx->module_observer_user, m, y);
  return y;
}

void amp_ctx_set_module_observer(amp_ctx *ctx, amp_module_observer fn, void *user) {
  if (!ctx) return;
  ctx->module_observer = fn;
  ctx->module_observer_user = fn ? user : NULL;
}

int amp_module_child_count(const amp_module *m) { return m ? m->nchildren : 0; }

amp_module *amp_module_child(const amp_module *m, int i, const char **name) {
  if (!m || i < 0 || i >= m->nchildren) return NULL;
  if (name) *name = m->child_names[i];
  return m->children[i];
}

void amp_module_set_training(amp_module *m, int training) {
  if (!m) return;
  m->training = training != 0;
  for (int i = 0; i < m->nchildren; i++) amp_module_set_training(m->children[i], training);
}

int amp_module_param_count(const amp_module *m) { return m ? m->nparams : 0; }

amp_tensor *amp_module_param(const amp_module *m, int i, const char **name) {
  if (!m || i < 0 || i >= m->nparams) return NULL;
  if (name) *name = m->names[i];
  return m->params[i];
}

int amp_module_buffer_count(const amp_module *m) { return m ? m->nbuffers : 0; }

amp_tensor *amp_module_buffer(const amp_module *m, int i, const char **name) {
  if (!m || i < 0 || i >= m->nbuffers) return NULL;
  if (name) *name = m->buffer_names[i];
  return m->buffers[i];
}

int64_t amp_module_param_numel(const amp_module *m) {
  int64_t n = 0;
  for (int i = 0; m && i < m->nparams; i++) n += m->params[i]->numel;
  return n;
}

const char *amp_module_type(const amp_module *m) { return m ? m->type : "NULL"; }
