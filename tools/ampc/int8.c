/* `ampc export --int8` and the integer inference of `ampc eval` (see
 * int8.h). */
#include "int8.h"
#include "json_out.h"
#include "train_opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 32

/* The buffer of `model` named prefix.suffix, or NULL. */
static const amp_tensor *buffer_of(const amp_module *model, const char *prefix,
                                   const char *suffix) {
  char want[160];
  snprintf(want, sizeof want, "%s.%s", prefix, suffix);
  for (int i = 0; i < amp_module_buffer_count(model); i++) {
    const char *name;
    const amp_tensor *b = amp_module_buffer(model, i, &name);
    if (strcmp(name, want) == 0) return b;
  }
  return NULL;
}

/* One layer's tensors as they are written. */
typedef struct qlayer {
  char names[5][80];
  int8_t *w;
  float *ws, in_scale;
  int32_t in_zp;
  const amp_tensor *weight, *bias;
} qlayer;

/* Quantizes layer `prefix` (weight w, bias b) of a QAT model into L;
 * returns 1, or 0 with the message. */
static int quantize_layer(amp_ctx *ctx, const amp_module *model, const char *prefix,
                          const amp_tensor *w, const amp_tensor *b, qlayer *L, char *msg,
                          size_t cap) {
  const amp_tensor *amin = buffer_of(model, prefix, "act_min"),
                   *amax = buffer_of(model, prefix, "act_max"),
                   *wmin = buffer_of(model, prefix, "weight_min"),
                   *wmax = buffer_of(model, prefix, "weight_max"),
                   *obs = buffer_of(model, prefix, "observed");
  if (!amin || !amax || !wmin || !wmax || !obs || ((const float *)obs->data)[0] != 1.0f) {
    snprintf(msg, cap,
             "layer %s has no observer ranges (a checkpoint saved before its first QAT step?)",
             prefix);
    return 0;
  }
  const int64_t out = w->shape[0], in = w->shape[1];
  L->weight = w, L->bias = b;
  L->w = malloc((size_t)(out * in));
  L->ws = malloc(sizeof(float) * (size_t)out);
  if (!L->w || !L->ws) {
    snprintf(msg, cap, "out of memory");
    return 0;
  }
  for (int64_t r = 0; r < out; r++)
    L->ws[r] =
        amp_qparams_symmetric_s8(((const float *)wmin->data)[r], ((const float *)wmax->data)[r]);
  amp_qparams_affine_u8(((const float *)amin->data)[0], ((const float *)amax->data)[0],
                        &L->in_scale, &L->in_zp);
  if (amp_quantize_s8_rows(ctx, out, in, w->data, L->ws, L->w) != AMP_OK) {
    snprintf(msg, cap, "layer %s: %s", prefix, amp_ctx_error(ctx));
    return 0;
  }
  static const char *const sfx[5] = {"weight", "weight_scale", "bias", "input_scale",
                                     "input_zero_point"};
  for (int i = 0; i < 5; i++) snprintf(L->names[i], sizeof L->names[i], "%s.%s", prefix, sfx[i]);
  return 1;
}

static amp_st_tensor st(const char *name, amp_dtype dt, int ndim, int64_t d0, int64_t d1,
                        const void *data, size_t bytes) {
  amp_st_tensor t;
  memset(&t, 0, sizeof t);
  t.name = name;
  t.dtype = dt;
  t.ndim = ndim;
  for (int d = 0; d < AMP_MAX_DIMS; d++) t.shape[d] = 1;
  t.shape[0] = d0;
  if (ndim > 1) t.shape[1] = d1;
  t.data = data;
  t.bytes = bytes;
  return t;
}

int ampc_int8_export(amp_ctx *ctx, const char *path, amp_module *model, const char *spec,
                     const char *data, long synthetic_n, char *msg, size_t cap) {
  qlayer L[MAX_LAYERS];
  memset(L, 0, sizeof L);
  int n = 0, ok = 1;
  for (int i = 0; ok && i + 1 < amp_module_param_count(model); i += 2) {
    const char *wn, *bn;
    const amp_tensor *w = amp_module_param(model, i, &wn), *b = amp_module_param(model, i + 1, &bn);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(wn) - strlen(".weight")), wn);
    if (n == MAX_LAYERS || w->ndim != 2 || b->ndim != 1) {
      snprintf(msg, cap, "%s is not an MLP of at most %d Linear layers with biases", spec,
               MAX_LAYERS);
      ok = 0;
      break;
    }
    ok = quantize_layer(ctx, model, prefix, w, b, &L[n++], msg, cap);
  }
  amp_st_tensor t[5 * MAX_LAYERS];
  int nt = 0;
  for (int l = 0; ok && l < n; l++) {
    const int64_t out = L[l].weight->shape[0], in = L[l].weight->shape[1];
    t[nt++] = st(L[l].names[0], AMP_I8, 2, out, in, L[l].w, (size_t)(out * in));
    t[nt++] = st(L[l].names[1], AMP_F32, 1, out, 1, L[l].ws, sizeof(float) * (size_t)out);
    t[nt++] = st(L[l].names[2], AMP_F32, 1, out, 1, L[l].bias->data, sizeof(float) * (size_t)out);
    t[nt++] = st(L[l].names[3], AMP_F32, 1, 1, 1, &L[l].in_scale, sizeof(float));
    t[nt++] = st(L[l].names[4], AMP_I32, 1, 1, 1, &L[l].in_zp, sizeof(int32_t));
  }
  char syn[32];
  snprintf(syn, sizeof syn, "%ld", synthetic_n);
  const char *meta[] = {"ampc.int8", "mlp", "ampc.model",       spec,
                        "ampc.data", data,  "ampc.synthetic-n", syn};
  if (ok && amp_safetensors_write(ctx, path, t, nt, meta, synthetic_n > 0 ? 4 : 3) != AMP_OK) {
    snprintf(msg, cap, "%s", amp_ctx_error(ctx));
    ok = 0;
  }
  for (int l = 0; l < n; l++) free(L[l].w), free(L[l].ws);
  return ok;
}

int ampc_int8_is_file(const amp_safetensors *f) {
  if (amp_safetensors_meta(f, "ampc.int8")) return 1;
  for (int i = 0; i < amp_safetensors_count(f); i++)
    if (amp_safetensors_at(f, i)->dtype == AMP_I8) return 1;
  return 0;
}

/* One layer of an INT8 file, checked. */
typedef struct ilayer {
  long index;
  int64_t in, out;
  int8_t *w;
  float *ws, *bias, xs;
  int32_t xz;
} ilayer;

/* Tensor prefix.suffix of f with dtype dt and shape [d0] or [d0, d1]
 * (ndim), copied into a new buffer *out; returns 1, or 0 with the message. */
static int take(const amp_safetensors *f, const char *path, long prefix, const char *suffix,
                amp_dtype dt, int ndim, int64_t d0, int64_t d1, void **out, char *msg, size_t cap) {
  char name[64];
  snprintf(name, sizeof name, "%ld.%s", prefix, suffix);
  const amp_st_tensor *t = amp_safetensors_find(f, name);
  int ok = t && t->dtype == dt && t->ndim == ndim && t->shape[0] == d0 &&
           (ndim == 1 || t->shape[1] == d1);
  if (!ok) {
    if (ndim == 1)
      snprintf(msg, cap, "%s: %s must be %s [%lld]%s", path, name, amp_dtype_name(dt),
               (long long)d0, t ? "" : " (it is missing)");
    else
      snprintf(msg, cap, "%s: %s must be %s [%lld, %lld]%s", path, name, amp_dtype_name(dt),
               (long long)d0, (long long)d1, t ? "" : " (it is missing)");
    return 0;
  }
  *out = malloc(t->bytes ? t->bytes : 1);
  if (!*out) {
    snprintf(msg, cap, "out of memory");
    return 0;
  }
  memcpy(*out, t->data, t->bytes);
  return 1;
}

/* The index of the first value of v[0, n) that is not finite (or not > 0
 * when `positive`), or -1. */
static int64_t first_bad(const float *v, int64_t n, int positive) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i]) || (positive && !(v[i] > 0))) return i;
  return -1;
}

/* Reads and checks layer `index` (the previous layer's width `in`, or -1). */
static int read_layer(const amp_safetensors *f, const char *path, long index, int64_t in, ilayer *L,
                      char *msg, size_t cap) {
  char name[64];
  snprintf(name, sizeof name, "%ld.weight", index);
  const amp_st_tensor *w = amp_safetensors_find(f, name);
  if (w->dtype != AMP_I8 || w->ndim != 2 || w->shape[0] < 1 || w->shape[1] < 1 ||
      (in >= 0 && w->shape[1] != in) || w->shape[1] > 65536) {
    snprintf(msg, cap,
             "%s: %s must be I8 [out, in] with in = the previous layer's out (%lld) and at most "
             "65536",
             path, name, (long long)in);
    return 0;
  }
  L->index = index, L->out = w->shape[0], L->in = w->shape[1];
  float *xs = NULL;
  int32_t *xz = NULL;
  int ok = take(f, path, index, "weight", AMP_I8, 2, L->out, L->in, (void **)&L->w, msg, cap) &&
           take(f, path, index, "weight_scale", AMP_F32, 1, L->out, 1, (void **)&L->ws, msg, cap) &&
           take(f, path, index, "bias", AMP_F32, 1, L->out, 1, (void **)&L->bias, msg, cap) &&
           take(f, path, index, "input_scale", AMP_F32, 1, 1, 1, (void **)&xs, msg, cap) &&
           take(f, path, index, "input_zero_point", AMP_I32, 1, 1, 1, (void **)&xz, msg, cap);
  if (ok) L->xs = xs[0], L->xz = xz[0];
  free(xs), free(xz);
  int64_t bad;
  if (ok && (bad = first_bad(L->ws, L->out, 1)) >= 0) {
    snprintf(msg, cap, "%s: %ld.weight_scale[%lld] is %g (scales must be finite and > 0)", path,
             index, (long long)bad, (double)L->ws[bad]);
    ok = 0;
  }
  if (ok && (bad = first_bad(L->bias, L->out, 0)) >= 0) {
    snprintf(msg, cap, "%s: %ld.bias[%lld] is not finite", path, index, (long long)bad);
    ok = 0;
  }
  if (ok && (first_bad(&L->xs, 1, 1) >= 0 || L->xz < 0 || L->xz > 255)) {
    snprintf(msg, cap,
             "%s: layer %ld: input_scale %g must be finite and > 0, input_zero_point %d in "
             "[0, 255]",
             path, index, (double)L->xs, (int)L->xz);
    ok = 0;
  }
  return ok;
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

/* The layers of f in index order (each "<i>.weight" with its four
 * companions, nothing else); returns the count, or 0 with the message. */
static int read_layers(const amp_safetensors *f, const char *path, ilayer *L, char *msg,
                       size_t cap) {
  long idx[MAX_LAYERS];
  int n = 0, count = amp_safetensors_count(f);
  for (int i = 0; i < count; i++) {
    const char *name = amp_safetensors_at(f, i)->name, *dot = strchr(name, '.');
    char *end;
    long v = strtol(name, &end, 10);
    if (!dot || end != dot || end == name || v < 0 || v > 1000000) {
      snprintf(msg, cap, "%s: tensor %.80s is not <layer>.<name> of an INT8 MLP", path, name);
      return 0;
    }
    if (strcmp(dot, ".weight") != 0) continue;
    if (n == MAX_LAYERS) {
      snprintf(msg, cap, "%s: more than %d layers", path, MAX_LAYERS);
      return 0;
    }
    idx[n++] = v;
  }
  if (n == 0 || count != 5 * n) {
    snprintf(msg, cap,
             "%s: %d layers need %d tensors (weight, weight_scale, bias, input_scale, "
             "input_zero_point each), the file has %d",
             path, n, 5 * n, count);
    return 0;
  }
  qsort(idx, (size_t)n, sizeof idx[0], cmp_long);
  for (int l = 0; l < n; l++)
    if (!read_layer(f, path, idx[l], l ? L[l - 1].out : -1, &L[l], msg, cap)) return 0;
  return n;
}

/* Layers l..n-1 on x (b rows); the logits go to *out (malloc'd). */
static int forward(amp_ctx *ctx, const ilayer *L, int n, int64_t b, const float *x, float **out) {
  const float *h = x;
  float *y = NULL;
  for (int l = 0; l < n; l++) {
    float *next = malloc(sizeof(float) * (size_t)(b * L[l].out));
    if (!next || amp_qlinear(ctx, b, L[l].out, L[l].in, h, L[l].xs, L[l].xz, L[l].w, L[l].ws,
                             L[l].bias, next) != AMP_OK) {
      free(next), free(y);
      return 0;
    }
    if (l + 1 < n)
      for (int64_t i = 0; i < b * L[l].out; i++) next[i] = next[i] > 0 ? next[i] : 0.0f;
    free(y);
    y = next;
    h = y;
  }
  *out = y;
  return 1;
}

/* Fraction of correct predictions on ds, or -1 (error recorded on ctx). */
static double accuracy(amp_ctx *ctx, const ilayer *L, int n, const amp_dataset *ds, long batch) {
  amp_loader_params lp = {batch, 0, 0, 0, AMP_F32, 1};
  amp_loader *ld = amp_loader_create(ctx, ds, &lp);
  if (!ld) return -1;
  int64_t correct = 0, total = 0, c = L[n - 1].out;
  amp_tensor *x, *y;
  int ok = 1;
  while (ok && amp_loader_next(ld, &x, &y) == 1) {
    float *logits;
    const int64_t b = x->shape[0];
    if (!(ok = forward(ctx, L, n, b, x->data, &logits))) break;
    for (int64_t i = 0; i < b; i++) {
      int64_t best = 0;
      for (int64_t j = 1; j < c; j++)
        if (logits[i * c + j] > logits[i * c + best]) best = j;
      correct += best == ((int32_t *)y->data)[i];
    }
    total += b;
    free(logits);
    amp_ctx_step_reset(ctx);
  }
  amp_loader_free(ld);
  return ok && total ? (double)correct / (double)total : -1;
}

/* The test split for the layers' sizes; NULL with the error on ctx. */
static amp_dataset *test_data(amp_ctx *ctx, const char *data, long synthetic_n, const ilayer *L,
                              int n) {
  amp_dataset *train = NULL, *test = NULL;
  if (strcmp(data, "synthetic") != 0)
    return amp_mnist_load(ctx, data, 0, &test) == AMP_OK ? test : NULL;
  train_opts o;
  train_opts_default(&o);
  o.data = data;
  o.synthetic_n = synthetic_n;
  long sizes[MAX_LAYERS + 1];
  sizes[0] = (long)L[0].in;
  for (int l = 0; l < n; l++) sizes[l + 1] = (long)L[l].out;
  int ok = train_load_data(ctx, &o, sizes, n + 1, &train, &test);
  amp_dataset_free(train);
  return ok ? test : NULL;
}

static int print_result(const ampc_int8_eval *e, const char *model, const char *data, double acc,
                        int64_t samples) {
  if (e->json) {
    cJSON *j = cJSON_CreateObject();
    ampc_json_str(j, "checkpoint", e->path);
    ampc_json_str(j, "model", model);
    ampc_json_str(j, "precision", "int8");
    ampc_json_str(j, "data", data);
    ampc_json_int(j, "test_samples", samples);
    ampc_json_fmt(j, "test_accuracy", "%.4f", 100 * acc);
    return ampc_json_line(stdout, j) != 0;
  }
  printf("%s: %s in int8 (integer GEMMs), test accuracy %.2f%% on %lld samples\n", e->path, model,
         100 * acc, (long long)samples);
  return 0;
}

int ampc_int8_eval_main(amp_ctx *ctx, const ampc_int8_eval *e) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(ctx, e->path, &f) != AMP_OK) {
    fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(ctx));
    return 1;
  }
  ilayer L[MAX_LAYERS];
  memset(L, 0, sizeof L);
  char msg[512], model[128];
  int n = read_layers(f, e->path, L, msg, sizeof msg), rc = 0;
  const char *meta_data = amp_safetensors_meta(f, "ampc.data");
  int64_t meta_syn = 0;
  long synthetic_n = e->synthetic_n;
  if (!synthetic_n && train_meta_count(f, "ampc.synthetic-n", &meta_syn) && meta_syn >= 2 &&
      meta_syn <= (1 << 24))
    synthetic_n = (long)meta_syn;
  char data[1024];
  snprintf(data, sizeof data, "%s", e->data ? e->data : meta_data ? meta_data : "data/mnist");
  const char *spec = amp_safetensors_meta(f, "ampc.model");
  snprintf(model, sizeof model, "%s", spec ? spec : "mlp");
  amp_safetensors_free(f);
  amp_dataset *test = NULL;
  if (!n) {
    fprintf(stderr, "ampc eval: %s\n", msg);
    rc = 1;
  } else if (!(test = test_data(ctx, data, synthetic_n, L, n))) {
    fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(ctx));
    rc = 1;
  } else if (amp_dataset_features(test) != L[0].in || amp_dataset_classes(test) != L[n - 1].out) {
    fprintf(stderr,
            "ampc eval: the model of %s does not fit the data (%lld features, %lld classes)\n",
            e->path, (long long)amp_dataset_features(test), (long long)amp_dataset_classes(test));
    rc = 1;
  }
  double acc = rc ? -1 : accuracy(ctx, L, n, test, e->batch);
  if (!rc && acc < 0) {
    fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(ctx));
    rc = 1;
  }
  if (!rc) rc = print_result(e, model, data, acc, amp_dataset_size(test));
  amp_dataset_free(test);
  for (int l = 0; l < MAX_LAYERS; l++) free(L[l].w), free(L[l].ws), free(L[l].bias);
  return rc;
}
