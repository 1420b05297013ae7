/* The recipe and model building shared by `ampc train` and the end-to-end
 * training test (see recipe.h). */
#include "recipe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ampc_parse_double(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !(v >= lo && v <= hi)) return 0;
  *out = v;
  return 1;
}

/* --loss-scale over the precision's default. */
static int parse_loss_scale(const char *s, ampc_recipe *r, char *msg, size_t cap) {
  double v;
  if (strcmp(s, "dynamic") == 0) {
    r->scale_mode = AMP_SCALER_DYNAMIC;
    r->scale = 65536;
  } else if (strcmp(s, "none") == 0) {
    r->scale_mode = AMP_SCALER_NONE;
    r->scale = 1;
  } else if (strncmp(s, "static:", 7) == 0) {
    if (!ampc_parse_double(s + 7, 1e-30, 3e38, &v)) {
      snprintf(msg, cap, "--loss-scale static: '%s' is not a number in [%g, %g]", s + 7, 1e-30,
               3e38);
      return 1;
    }
    r->scale_mode = AMP_SCALER_STATIC;
    r->scale = (float)v;
  } else {
    snprintf(msg, cap, "--loss-scale: '%s' is not dynamic, static:N or none", s);
    return 2;
  }
  return 0;
}

int ampc_recipe_parse(const char *precision, const char *loss_scale, int master_weights,
                      ampc_recipe *r, char *msg, size_t cap) {
  if (strcmp(precision, "fp32") == 0)
    *r = (ampc_recipe){
        .dt = AMP_F32, .scale_mode = AMP_SCALER_NONE, .scale = 1, .master_weights = master_weights};
  else if (strcmp(precision, "fp16") == 0)
    *r = (ampc_recipe){.dt = AMP_F16,
                       .scale_mode = AMP_SCALER_DYNAMIC,
                       .scale = 65536,
                       .master_weights = master_weights};
  else if (strcmp(precision, "bf16") == 0)
    *r = (ampc_recipe){.dt = AMP_BF16,
                       .scale_mode = AMP_SCALER_NONE,
                       .scale = 1,
                       .master_weights = master_weights};
  else if (strcmp(precision, "fp8") == 0) { /* BF16 autocast, linears in FP8 */
    *r = (ampc_recipe){.dt = AMP_BF16,
                       .scale_mode = AMP_SCALER_NONE,
                       .scale = 1,
                       .master_weights = master_weights};
    r->fp8 = 1;
    r->fp8p = amp_fp8_defaults(AMP_FP8_DELAYED);
  } else {
    snprintf(msg, cap, "--precision: '%s' is not fp32, fp16, bf16 or fp8", precision);
    return 2;
  }
  if (loss_scale) {
    int rc = parse_loss_scale(loss_scale, r, msg, cap);
    if (rc) return rc;
  }
  if (!master_weights && r->dt == AMP_F32) {
    snprintf(msg, cap, "--master-weights off needs a 16-bit --precision (it is %s)", precision);
    return 2;
  }
  return 0;
}

int ampc_recipe_fp8(const char *scaling, const char *rounding, uint64_t seed, ampc_recipe *r,
                    char *msg, size_t cap) {
  r->rounding = AMP_ROUND_NEAREST_EVEN;
  if (rounding && strcmp(rounding, "stochastic") == 0)
    r->rounding = AMP_ROUND_STOCHASTIC;
  else if (rounding && strcmp(rounding, "nearest") != 0) {
    snprintf(msg, cap, "--rounding: '%s' is not nearest or stochastic", rounding);
    return 2;
  }
  if (r->rounding == AMP_ROUND_STOCHASTIC && r->dt == AMP_F32) {
    snprintf(msg, cap, "--rounding stochastic needs a 16-bit or fp8 --precision (it is fp32)");
    return 2;
  }
  if (scaling && !r->fp8) {
    snprintf(msg, cap, "--fp8-scaling needs --precision fp8");
    return 2;
  }
  if (!r->fp8) return 0;
  r->fp8p.grad_rounding = r->rounding;
  r->fp8p.seed = seed;
  if (!scaling || strcmp(scaling, "delayed") == 0) return 0;
  double h;
  if (strncmp(scaling, "delayed:", 8) == 0) {
    if (!ampc_parse_double(scaling + 8, 1, 65536, &h) || h != floor(h)) {
      snprintf(msg, cap, "--fp8-scaling delayed:H: '%s' is not a history length in 1..65536",
               scaling + 8);
      return 2;
    }
    r->fp8p.history_len = (int)h;
  } else if (strcmp(scaling, "current") == 0)
    r->fp8p.scaling = AMP_FP8_CURRENT;
  else if (strcmp(scaling, "block") == 0)
    r->fp8p.scaling = AMP_FP8_BLOCK;
  else {
    snprintf(msg, cap, "--fp8-scaling: '%s' is not delayed, delayed:H, current or block", scaling);
    return 2;
  }
  return 0;
}

int ampc_parse_model(const char *spec, long *sizes, int max) {
  if (strncmp(spec, "mlp:", 4) != 0) return 0;
  const char *p = spec + 4;
  int n = 0;
  for (;;) { /* sizes: decimal digits only, one '-' between them */
    if (*p < '0' || *p > '9' || n == max) return 0;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
      v = 10 * v + (*p++ - '0');
      if (v > 1 << 20) return 0;
    }
    if (v < 1) return 0;
    sizes[n++] = v;
    if (*p == '\0') break;
    if (*p++ != '-') return 0;
  }
  return n >= 2 ? n : 0;
}

amp_module *ampc_build_mlp(amp_ctx *ctx, const long *sizes, int n, uint64_t seed) {
  return ampc_build_mlp_q(ctx, sizes, n, seed, 0);
}

int ampc_file_is_qat(const amp_safetensors *f) {
  for (int i = 0; i < amp_safetensors_count(f); i++) {
    const char *dot = strrchr(amp_safetensors_at(f, i)->name, '.');
    if (dot && strcmp(dot, ".act_min") == 0) return 1;
  }
  return 0;
}

amp_module *ampc_build_mlp_q(amp_ctx *ctx, const long *sizes, int n, uint64_t seed, int qat) {
  amp_rng rng;
  amp_rng_seed(&rng, seed);
  amp_module *layers[64];
  int k = 0;
  for (int i = 0; i + 1 < n && k + 2 <= 64; i++) {
    layers[k++] = qat ? amp_nn_qat_linear(ctx, &rng, sizes[i], sizes[i + 1], 1)
                      : amp_nn_linear(ctx, &rng, sizes[i], sizes[i + 1], 1);
    if (i + 2 < n) layers[k++] = amp_nn_relu(ctx);
  }
  return amp_nn_sequential(ctx, k, layers);
}

int ampc_run_create(amp_ctx *ctx, const ampc_recipe *r, const long *sizes, int n, uint64_t seed,
                    amp_optim_kind kind, double lr, int64_t growth_interval, ampc_run *out) {
  memset(out, 0, sizeof *out);
  out->model = ampc_build_mlp_q(ctx, sizes, n, seed, r->qat);
  amp_optim_params op = amp_optim_defaults(kind);
  if (lr >= 0) op.lr = (float)lr;
  op.work_dtype = r->dt;
  op.master_weights = r->master_weights;
  op.rounding = r->rounding;
  op.seed = seed;
  op.zero_grad_in_step = 1; /* every step is followed by zero_grad */
  op.grads_checked_in_backward = r->grads_checked;
  if (r->fp8 && out->model && amp_fp8_create(ctx, out->model, &r->fp8p) != AMP_OK) return 0;
  out->opt = amp_optim_create(ctx, out->model, &op);
  amp_scaler_params sp = amp_scaler_defaults(r->scale_mode);
  sp.init_scale = r->scale;
  if (growth_interval > 0) sp.growth_interval = growth_interval;
  out->scaler = amp_scaler_create(ctx, &sp);
  return out->model && out->opt && out->scaler;
}

amp_tensor *ampc_forward_loss(amp_ctx *ctx, const ampc_recipe *r, amp_module *model, amp_tensor *x,
                              amp_tensor *y, double loss_mul) {
  if (r->dt != AMP_F32) amp_autocast_begin(ctx, r->dt);
  if (r->fp8) amp_fp8_begin(ctx);
  amp_tensor *logits = amp_module_forward(ctx, model, x);
  if (r->fp8) amp_fp8_end(ctx);
  amp_tensor *loss = amp_cross_entropy(ctx, logits, y);
  if (r->dt != AMP_F32) amp_autocast_end(ctx);
  if (loss_mul != 1) loss = amp_mul_scalar(ctx, loss, (float)loss_mul);
  return loss;
}

double ampc_evaluate(amp_ctx *ctx, amp_module *model, const amp_dataset *ds, amp_dtype dt,
                     int64_t batch) {
  int autocast = dt != AMP_F32;
  amp_loader_params lp = {batch, 0, 0, 0, dt, 1};
  amp_loader *ld = amp_loader_create(ctx, ds, &lp);
  if (!ld) return -1;
  int64_t correct = 0, total = 0;
  amp_tensor *x, *y;
  float *row = NULL;
  amp_no_grad_begin(ctx);
  amp_module_set_training(model, 0); /* QAT observers stay as they are */
  while (amp_loader_next(ld, &x, &y) == 1) {
    if (autocast) amp_autocast_begin(ctx, dt);
    amp_tensor *logits = amp_module_forward(ctx, model, x);
    if (autocast) amp_autocast_end(ctx);
    if (!logits) break;
    int64_t b = logits->shape[0], c = logits->shape[1];
    float *rw = realloc(row, sizeof(float) * (size_t)(b * c));
    if (!rw) break;
    row = rw;
    amp_convert(row, AMP_F32, logits->data, logits->dtype, (size_t)(b * c));
    for (int64_t i = 0; i < b; i++) {
      int64_t best = 0;
      for (int64_t j = 1; j < c; j++)
        if (row[i * c + j] > row[i * c + best]) best = j;
      correct += best == ((int32_t *)y->data)[i];
    }
    total += b;
    amp_ctx_step_reset(ctx);
  }
  amp_no_grad_end(ctx);
  amp_module_set_training(model, 1);
  free(row);
  amp_loader_free(ld);
  return total ? (double)correct / (double)total : -1;
}

/* "name [d0, d1]" of every tensor of f (at most ~cap bytes), for messages. */
static void list_tensors(const amp_safetensors *f, char *buf, size_t cap) {
  size_t k = 0;
  buf[0] = '\0';
  for (int i = 0; i < amp_safetensors_count(f) && k + 40 < cap; i++) {
    const amp_st_tensor *t = amp_safetensors_at(f, i);
    k += (size_t)snprintf(buf + k, cap - k, "%s%.60s [", i ? ", " : "", t->name);
    for (int d = 0; d < t->ndim && k + 24 < cap; d++)
      k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    k += (size_t)snprintf(buf + k, cap - k, "]");
  }
}

/* Non-zero when tensor t fits parameter p (same shape, a float dtype). */
static int fits(const amp_st_tensor *t, const amp_tensor *p) {
  if (t->dtype != AMP_F32 && t->dtype != AMP_F16 && t->dtype != AMP_BF16) return 0;
  if (t->ndim != p->ndim) return 0;
  for (int d = 0; d < t->ndim; d++)
    if (t->shape[d] != p->shape[d]) return 0;
  return 1;
}

/* "[d0, d1, ...]" of a shape. */
static void shape_text(int ndim, const int64_t *shape, char *buf, size_t cap) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < ndim && k + 24 < cap; d++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
  snprintf(buf + k, cap - k, "]");
}

/* Checks that f holds every parameter of `model` (and nothing else but
 * "optim.*" and "fp8.*" tensors); returns 1, or 0 with the message. */
static int check_weights(const amp_safetensors *f, const char *path, amp_module *model, char *msg,
                         size_t cap) {
  char have[400], want[64], got[64];
  int found = 0, n = amp_module_param_count(model);
  for (int i = 0; i < n; i++) {
    const char *name;
    amp_module_param(model, i, &name);
    found += amp_safetensors_find(f, name) != NULL;
  }
  list_tensors(f, have, sizeof have);
  for (int i = 0; i < n; i++) {
    const char *name;
    const amp_tensor *p = amp_module_param(model, i, &name);
    const amp_st_tensor *t = amp_safetensors_find(f, name);
    shape_text(p->ndim, p->shape, want, sizeof want);
    if (!found) {
      snprintf(msg, cap,
               "%s: no tensor name matches a parameter of the model, which expects %s %s, ... "
               "(names as PyTorch's nn.Sequential gives them); the file has: %s",
               path, name, want, have);
      return 0;
    }
    if (!t) {
      snprintf(msg, cap, "%s: missing %s %s (the file has: %s)", path, name, want, have);
      return 0;
    }
    if (!fits(t, p)) {
      shape_text(t->ndim, t->shape, got, sizeof got);
      snprintf(msg, cap,
               "%s: %s is %s %s, the model's parameter is %s in F32, F16 or BF16 (is --model "
               "right?)",
               path, name, t->dtype_name, got, want);
      return 0;
    }
  }
  for (int i = 0; i < amp_safetensors_count(f); i++) {
    const amp_st_tensor *t = amp_safetensors_at(f, i);
    /* training state, not weights: the optimizer's moments, FP8 scaling */
    int known = strncmp(t->name, "optim.", 6) == 0 || strncmp(t->name, "fp8.", 4) == 0;
    for (int j = 0; j < n && !known; j++) {
      const char *name;
      amp_module_param(model, j, &name);
      known = strcmp(name, t->name) == 0;
    }
    for (int j = 0; j < amp_module_buffer_count(model) && !known; j++) {
      const char *name;
      const amp_tensor *b = amp_module_buffer(model, j, &name);
      if (strcmp(name, t->name) != 0) continue;
      if (t->dtype != AMP_F32 || !fits(t, b)) {
        shape_text(b->ndim, b->shape, want, sizeof want);
        snprintf(msg, cap, "%s: buffer %.80s is not F32 %s", path, t->name, want);
        return 0;
      }
      known = 1;
    }
    if (!known) {
      snprintf(msg, cap, "%s: tensor %.80s is not a parameter of the model (is --model right?)",
               path, t->name);
      return 0;
    }
  }
  return 1;
}

/* The model's buffers that f holds are finite; 1, or 0 with the message. */
static int buffers_finite(const amp_safetensors *f, const char *path, amp_module *model, char *msg,
                          size_t cap) {
  for (int i = 0; i < amp_module_buffer_count(model); i++) {
    const char *name;
    amp_module_buffer(model, i, &name);
    const amp_st_tensor *t = amp_safetensors_find(f, name);
    for (size_t k = 0; t && k < t->bytes / 4; k++) {
      float v;
      memcpy(&v, (const char *)t->data + 4 * k, 4);
      if (!isfinite(v)) {
        snprintf(msg, cap, "%s: '%s' holds a non-finite value at index %zu", path, name, k);
        return 0;
      }
    }
  }
  return 1;
}

int ampc_load_weights(amp_ctx *ctx, const char *path, amp_module *model, char *msg, size_t cap) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(ctx, path, &f) != AMP_OK) {
    snprintf(msg, cap, "%s", amp_ctx_error(ctx));
    return 0;
  }
  int ok = check_weights(f, path, model, msg, cap) && buffers_finite(f, path, model, msg, cap);
  for (int i = 0; ok && i < amp_module_param_count(model); i++) {
    const char *name;
    amp_tensor *p = amp_module_param(model, i, &name);
    const amp_st_tensor *t = amp_safetensors_find(f, name);
    size_t numel = (size_t)p->numel;
    void *tmp = malloc(t->bytes ? t->bytes : 1); /* aligned for any dtype */
    if (!tmp) {
      snprintf(msg, cap, "out of memory");
      ok = 0;
      break;
    }
    memcpy(tmp, t->data, t->bytes);
    amp_convert(p->data, AMP_F32, tmp, t->dtype, numel);
    free(tmp);
    /* Non-finite weights are refused, by name (untrusted input). */
    const float *w = p->data;
    for (size_t k = 0; ok && k < numel; k++)
      if (!isfinite(w[k])) {
        snprintf(msg, cap, "%s: '%s' holds a non-finite value at index %zu", path, name, k);
        ok = 0;
      }
  }
  for (int i = 0; ok && i < amp_module_buffer_count(model); i++) {
    const char *name;
    amp_tensor *b = amp_module_buffer(model, i, &name);
    const amp_st_tensor *t = amp_safetensors_find(f, name);
    if (t) memcpy(b->data, t->data, t->bytes); /* absent: the buffer keeps its value */
  }
  amp_safetensors_free(f);
  return ok;
}

/* One "key=value" of a gpt: spec into *c; returns 0 or -1 (message). */
static int gpt_key(const char *kv, size_t len, amp_gpt_config *c, char *msg, size_t cap) {
  static const char *keys[] = {"layers", "dim", "heads", "ctx", "vocab"};
  int64_t *dst[] = {&c->layers, &c->dim, &c->heads, &c->ctx, &c->vocab};
  const char *eq = memchr(kv, '=', len);
  for (int k = 0; eq && k < 5; k++) {
    if ((size_t)(eq - kv) != strlen(keys[k]) || strncmp(kv, keys[k], (size_t)(eq - kv)) != 0)
      continue;
    char num[32];
    size_t n = len - (size_t)(eq - kv) - 1;
    double v;
    if (n == 0 || n >= sizeof num) break;
    memcpy(num, eq + 1, n);
    num[n] = '\0';
    if (!ampc_parse_double(num, 1, 1 << 24, &v) || v != (double)(int64_t)v) {
      snprintf(msg, cap, "--model: %s=%s is not a whole number in [1, %d]", keys[k], num, 1 << 24);
      return -1;
    }
    *dst[k] = (int64_t)v;
    return 0;
  }
  snprintf(msg, cap, "--model: '%.*s' is not layers=N, dim=N, heads=N, ctx=N or vocab=N", (int)len,
           kv);
  return -1;
}

static int parse_gpt(const char *p, amp_gpt_config *c, char *msg, size_t cap) {
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (gpt_key(p, len, c, msg, cap)) return -1;
    p += len + (end ? 1 : 0);
  }
  if (c->dim % c->heads != 0) {
    snprintf(msg, cap, "--model: heads=%lld does not divide dim=%lld", (long long)c->heads,
             (long long)c->dim);
    return -1;
  }
  if (c->vocab < 256 || c->vocab > 256 * 256) {
    snprintf(msg, cap,
             "--model: vocab=%lld: the tokens are bytes, so vocab must be at least 256 (and at "
             "most 65536)",
             (long long)c->vocab);
    return -1;
  }
  /* Bounds that keep a configuration from asking for more than this tool can
     train (an untrusted spec must not make us allocate without end): the
     context's T×T attention scores and the parameter count. */
  if (c->ctx > 16384 || c->layers > 1024) {
    snprintf(msg, cap,
             "--model: ctx=%lld (at most 16384) or layers=%lld (at most 1024) is too large",
             (long long)c->ctx, (long long)c->layers);
    return -1;
  }
  const double params = (double)(c->vocab + c->ctx) * (double)c->dim +
                        12.0 * (double)c->layers * (double)c->dim * (double)c->dim;
  if (params > 2147483648.0) {
    snprintf(msg, cap, "--model: about %.3g parameters, more than 2^31 (%.0f GiB of FP32 masters)",
             params, params * 4 / 1073741824.0);
    return -1;
  }
  return 1;
}

int ampc_parse_model_spec(const char *spec, ampc_model_spec *out, char *msg, size_t cap) {
  memset(out, 0, sizeof *out);
  if (strncmp(spec, "gpt:", 4) == 0 || strcmp(spec, "gpt") == 0) {
    out->kind = AMPC_MODEL_GPT;
    out->gpt = (amp_gpt_config){256, 64, 4, 128, 4}; /* AMPC_GPT_DEFAULT */
    return parse_gpt(spec[3] ? spec + 4 : spec + 3, &out->gpt, msg, cap);
  }
  if (strncmp(spec, "cnn:", 4) == 0) {
    if (strcmp(spec + 4, "fashion") != 0) {
      snprintf(msg, cap, "--model: '%s' is not a known CNN (cnn:fashion)", spec);
      return -1;
    }
    out->kind = AMPC_MODEL_CNN;
    amp_cnn_config *c = &out->cnn;
    *c = (amp_cnn_config){
        .in_channels = 1, .height = 28, .width = 28, .classes = 10, .nstages = 2, .nhidden = 1};
    c->stages[0] = (amp_cnn_stage){32, 3, AMP_CNN_POOL_MAX, 2};
    c->stages[1] = (amp_cnn_stage){64, 3, AMP_CNN_POOL_MAX, 2};
    c->hidden[0] = 128;
    return 1;
  }
  return 0;
}

amp_module *ampc_build_model(amp_ctx *ctx, const ampc_model_spec *spec, uint64_t seed) {
  amp_rng rng;
  amp_rng_seed(&rng, seed);
  if (spec->kind == AMPC_MODEL_GPT) return amp_nn_gpt(ctx, &rng, &spec->gpt);
  if (spec->kind == AMPC_MODEL_CNN) return amp_nn_cnn(ctx, &rng, &spec->cnn);
  return NULL;
}
