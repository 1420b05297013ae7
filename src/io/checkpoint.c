/* Training checkpoints on top of safetensors: FP32 masters by parameter
 * name, optimizer moments, and the step count, scaler state and loader
 * position in the metadata. Loading validates everything before it writes
 * anything. */
#include "io_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK_FORMAT "ampc-checkpoint-1"
#define CK_WEIGHTS_FORMAT "ampc-weights-1"
#define CK_MAX_META 32

/* Moment kinds, in the order of amp_optim_state's m and v. */
static const char *const MOMENT_PREFIX[2][2] = {
    {"optim.momentum_buffer.", NULL},         /* SGD with momentum: m only */
    {"optim.exp_avg.", "optim.exp_avg_sq."}}; /* Adam/AdamW: m and v */

/* The metadata being built: keys are string literals, values live here. */
typedef struct meta_out {
  const char *kv[2 * CK_MAX_META];
  char val[CK_MAX_META][48];
  int n;
} meta_out;

static void put(meta_out *mo, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void put(meta_out *mo, const char *key, const char *fmt, ...) {
  if (mo->n >= CK_MAX_META) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(mo->val[mo->n], sizeof mo->val[0], fmt, ap);
  va_end(ap);
  mo->kv[2 * mo->n] = key;
  mo->kv[2 * mo->n + 1] = mo->val[mo->n];
  mo->n++;
}

static void put_f(meta_out *mo, const char *key, float v) { put(mo, key, "%.9g", (double)v); }
static void put_d(meta_out *mo, const char *key, double v) { put(mo, key, "%.17g", v); }

static const char *mode_name(amp_scaler_mode m) {
  return m == AMP_SCALER_DYNAMIC ? "dynamic" : m == AMP_SCALER_STATIC ? "static" : "none";
}

/* "adam" (m and v), "momentum" (m only) or "none". */
static const char *optim_state_name(const float *m, const float *v) {
  return m && v ? "adam" : m ? "momentum" : "none";
}

static char *concat(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);
  if (s) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
  }
  return s;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

static void st_from_param(amp_st_tensor *t, const char *name, const amp_tensor *p,
                          const void *data) {
  memset(t, 0, sizeof *t);
  t->name = name;
  t->dtype = AMP_F32;
  t->ndim = p->ndim;
  for (int d = 0; d < AMP_MAX_DIMS; d++) t->shape[d] = d < p->ndim ? p->shape[d] : 1;
  t->data = data;
  t->bytes = (size_t)p->numel * sizeof(float);
}

/* One tensor of a checkpoint: its name, the parameter that gives its shape,
 * and where its values live (the parameter's master, or a slice of a moment
 * buffer). */
typedef struct ck_entry {
  char *name; /* owned */
  const amp_tensor *p;
  float *data;
} ck_entry;

static void ck_plan_free(ck_entry *e, int n) {
  if (e)
    for (int i = 0; i < n; i++) free(e[i].name);
  free(e);
}

/* Every tensor a checkpoint of `model` holds, in order: each parameter by
 * its dotted name, followed by its moments (mom[j] non-NULL; mom[j] is laid
 * out in parameter order). save and load both walk this one list. */
static amp_status ck_plan(amp_ctx *ctx, const char *path, amp_module *model, float *const mom[2],
                          ck_entry **out, int *count) {
  int np = amp_module_param_count(model), kind = mom[1] ? 1 : 0;
  int nt = np * (1 + (mom[0] ? 1 : 0) + (mom[1] ? 1 : 0));
  ck_entry *e = calloc((size_t)nt + 1, sizeof *e);
  *out = NULL;
  *count = 0;
  if (!e) return amp__error(ctx, AMP_ERR_NOMEM, "checkpoint: %s: out of memory", path);
  int k = 0;
  int64_t off = 0;
  for (int i = 0; i < np; i++) {
    const char *name = NULL;
    amp_tensor *p = amp_module_param(model, i, &name);
    if (!p || !name || p->dtype != AMP_F32) {
      ck_plan_free(e, k);
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "checkpoint: %s: parameter %d is not an F32 tensor", path, i);
    }
    e[k++] = (ck_entry){concat("", name), p, p->data};
    for (int j = 0; j < 2; j++)
      if (mom[j]) e[k++] = (ck_entry){concat(MOMENT_PREFIX[kind][j], name), p, mom[j] + off};
    off += p->numel;
  }
  for (int j = 0; j < k; j++)
    if (!e[j].name) {
      ck_plan_free(e, k);
      return amp__error(ctx, AMP_ERR_NOMEM, "checkpoint: %s: out of memory", path);
    }
  *out = e;
  *count = nt;
  return AMP_OK;
}

amp_status amp_checkpoint_save(amp_ctx *ctx, const char *path, amp_module *model, amp_optim *opt,
                               const amp_scaler *scaler, const amp_loader *loader,
                               const char *const *extra_meta, int nextra) {
  if (!path || !model || nextra < 0 || (nextra > 0 && !extra_meta))
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_checkpoint_save: NULL path or model, or bad extra metadata");
  int64_t *step = NULL;
  float *mom[2] = {NULL, NULL};
  if (opt) {
    amp_optim_state(opt, &step, &mom[0], &mom[1]);
    if (amp_optim_numel(opt) != amp_module_param_numel(model))
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "checkpoint: %s: the optimizer holds %lld values, the model %lld: not "
                        "this model's optimizer",
                        path, (long long)amp_optim_numel(opt),
                        (long long)amp_module_param_numel(model));
  }
  ck_entry *plan = NULL;
  int nt = 0;
  amp_status st = ck_plan(ctx, path, model, mom, &plan, &nt);
  if (st != AMP_OK) return st;
  amp_st_tensor *t = calloc((size_t)nt + 1, sizeof *t);
  const char **kv = calloc(2 * ((size_t)CK_MAX_META + (size_t)nextra) + 2, sizeof *kv);
  meta_out *mo = calloc(1, sizeof *mo);
  if (!t || !kv || !mo) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "checkpoint: %s: out of memory", path);
    goto done;
  }
  for (int i = 0; i < nt; i++) st_from_param(&t[i], plan[i].name, plan[i].p, plan[i].data);
  put(mo, "ampc.format", "%s", CK_FORMAT);
  put(mo, "ampc.version", "%s", amp_version());
  if (opt) {
    put(mo, "ampc.optim.state", "%s", optim_state_name(mom[0], mom[1]));
    put(mo, "ampc.optim.step", "%lld", (long long)*step);
    put_f(mo, "ampc.optim.lr", amp_optim_lr(opt));
  }
  if (scaler) {
    amp_scaler_state s = amp_scaler_get_state(scaler);
    put(mo, "ampc.scaler.mode", "%s", mode_name(s.params.mode));
    put_f(mo, "ampc.scaler.init_scale", s.params.init_scale);
    put_d(mo, "ampc.scaler.growth_factor", s.params.growth_factor);
    put_d(mo, "ampc.scaler.backoff_factor", s.params.backoff_factor);
    put(mo, "ampc.scaler.growth_interval", "%lld", (long long)s.params.growth_interval);
    put_f(mo, "ampc.scaler.min_scale", s.params.min_scale);
    put_f(mo, "ampc.scaler.max_scale", s.params.max_scale);
    put(mo, "ampc.scaler.hysteresis", "%d", s.params.hysteresis);
    put_f(mo, "ampc.scaler.scale", s.scale);
    put(mo, "ampc.scaler.growth_tracker", "%lld", (long long)s.growth_tracker);
    put(mo, "ampc.scaler.hysteresis_left", "%d", s.hysteresis_left);
    put(mo, "ampc.scaler.skipped", "%lld", (long long)s.skipped);
  }
  if (loader) {
    amp_loader_state ls = amp_loader_get_state(loader);
    amp_loader_params lp = amp_loader_get_params(loader);
    put(mo, "ampc.loader.epoch", "%lld", (long long)ls.epoch);
    put(mo, "ampc.loader.next", "%lld", (long long)ls.next);
    put(mo, "ampc.loader.seed", "%llu", (unsigned long long)lp.seed);
    put(mo, "ampc.loader.shuffle", "%d", lp.shuffle ? 1 : 0);
  }
  memcpy(kv, mo->kv, sizeof(const char *) * 2 * (size_t)mo->n);
  for (int i = 0; i < 2 * nextra; i++) kv[2 * mo->n + i] = extra_meta[i];
  st = amp_safetensors_write(ctx, path, t, nt, kv, mo->n + nextra);
done:
  ck_plan_free(plan, nt);
  free(t);
  free(kv);
  free(mo);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                    */
/* ------------------------------------------------------------------------ */

/* Metadata value parsers: the whole string must be the number. */
static int parse_i64(const char *s, int64_t *out) {
  if (!s || !*s) return 0;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end) return 0;
  *out = (int64_t)v;
  return 1;
}

static int parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return 0;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return 0;
  *out = (uint64_t)v;
  return 1;
}

static int parse_f32(const char *s, float *out) {
  if (!s || !*s) return 0;
  char *end;
  errno = 0;
  float v = strtof(s, &end);
  if (*end || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

static int parse_f64(const char *s, double *out) {
  if (!s || !*s) return 0;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (*end || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

typedef struct loader_ctx {
  amp_ctx *ctx;
  const char *path;
  const amp_safetensors *f;
} load_ctx;

static amp_status bad_meta(const load_ctx *lc, const char *key, const char *what) {
  const char *v = amp_safetensors_meta(lc->f, key);
  if (!v)
    return amp__error(lc->ctx, AMP_ERR_FORMAT, "checkpoint: %s: metadata key '%s' is missing",
                      lc->path, key);
  return amp__error(lc->ctx, AMP_ERR_FORMAT, "checkpoint: %s: metadata '%s' = '%.60s' is not %s",
                    lc->path, key, v, what);
}

static amp_status get_i64(const load_ctx *lc, const char *key, int64_t lo, int64_t hi,
                          int64_t *out) {
  if (!parse_i64(amp_safetensors_meta(lc->f, key), out) || *out < lo || *out > hi)
    return bad_meta(lc, key, "an integer in range");
  return AMP_OK;
}

static amp_status get_f32(const load_ctx *lc, const char *key, float *out) {
  if (!parse_f32(amp_safetensors_meta(lc->f, key), out)) return bad_meta(lc, key, "a finite float");
  return AMP_OK;
}

static amp_status get_f64(const load_ctx *lc, const char *key, double *out) {
  if (!parse_f64(amp_safetensors_meta(lc->f, key), out))
    return bad_meta(lc, key, "a finite number");
  return AMP_OK;
}

/* Checks that the file has `name` as an F32 tensor of p's shape. */
static amp_status expect_tensor(const load_ctx *lc, const char *name, const amp_tensor *p,
                                const amp_st_tensor **out) {
  char want[96], got[96];
  fmt_shape(want, sizeof want, p->ndim, p->shape);
  const amp_st_tensor *t = amp_safetensors_find(lc->f, name);
  *out = t;
  if (!t)
    return amp__error(lc->ctx, AMP_ERR_SHAPE,
                      "checkpoint: %s: missing tensor '%s' (shape %s in the model)", lc->path, name,
                      want);
  if (t->dtype != AMP_F32)
    return amp__error(lc->ctx, AMP_ERR_SHAPE,
                      "checkpoint: %s: tensor '%s' has dtype %s, expected F32", lc->path, name,
                      t->dtype_name);
  int same = t->ndim == p->ndim;
  for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
  if (!same) {
    fmt_shape(got, sizeof got, t->ndim, t->shape);
    return amp__error(lc->ctx, AMP_ERR_SHAPE,
                      "checkpoint: %s: tensor '%s' has shape %s in the file, %s in the model",
                      lc->path, name, got, want);
  }
  return AMP_OK;
}

/* Re-records an error that a component recorded on ctx (without the file
 * name) with the file name in front. */
static amp_status reprefix(amp_ctx *ctx, amp_status was, amp_status s, const char *path,
                           const char *what) {
  if (ctx && was == AMP_OK && amp_ctx_status(ctx) != AMP_OK) {
    char msg[sizeof ctx->message];
    snprintf(msg, sizeof msg, "%s", amp_ctx_error(ctx));
    amp_ctx_clear_error(ctx);
    return amp__error(ctx, s, "checkpoint: %s: %s: %s", path, what, msg);
  }
  return amp__error(ctx, s, "checkpoint: %s: %s", path, what);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

amp_status amp_checkpoint_load(amp_ctx *ctx, const char *path, amp_module *model, amp_optim *opt,
                               amp_scaler *scaler, amp_loader *loader) {
  if (!path || !model)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_checkpoint_load: NULL path or model");
  amp_safetensors *f = NULL;
  amp_status st = amp_safetensors_read(ctx, path, &f);
  if (st != AMP_OK) return st;
  load_ctx lc = {ctx, path, f};
  int64_t *stepp = NULL;
  float *mom[2] = {NULL, NULL};
  if (opt) amp_optim_state(opt, &stepp, &mom[0], &mom[1]);
  ck_entry *plan = NULL;
  int nt = 0;
  const amp_st_tensor **src = NULL;
  const char **sorted = NULL;
  if (opt && amp_optim_numel(opt) != amp_module_param_numel(model)) {
    st = amp__error(ctx, AMP_ERR_INVALID_ARG,
                    "checkpoint: %s: the optimizer does not hold this model's parameters", path);
    goto done;
  }
  if ((st = ck_plan(ctx, path, model, mom, &plan, &nt)) != AMP_OK) goto done;
  src = calloc((size_t)nt + 1, sizeof *src);
  sorted = calloc((size_t)nt + 1, sizeof *sorted);
  if (!src || !sorted) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "checkpoint: %s: out of memory", path);
    goto done;
  }
  /* 1. Every tensor the model (and optimizer) needs, with its shape. */
  for (int i = 0; i < nt; i++) {
    if ((st = expect_tensor(&lc, plan[i].name, plan[i].p, &src[i])) != AMP_OK) goto done;
    sorted[i] = plan[i].name;
  }
  /* 2. Nothing else (optimizer tensors are ignored without an optimizer). */
  qsort(sorted, (size_t)nt, sizeof *sorted, cmp_str);
  for (int i = 0; i < amp_safetensors_count(f); i++) {
    const char *name = amp_safetensors_at(f, i)->name;
    if (!opt && strncmp(name, "optim.", 6) == 0) continue;
    if (!bsearch(&name, sorted, (size_t)nt, sizeof *sorted, cmp_str)) {
      st = amp__error(ctx, AMP_ERR_SHAPE,
                      "checkpoint: %s: unexpected tensor '%.80s' (not in the %s)", path, name,
                      strncmp(name, "optim.", 6) == 0 ? "optimizer's state" : "model");
      goto done;
    }
  }
  /* 3. The metadata. */
  const char *fmt = amp_safetensors_meta(f, "ampc.format");
  if (!fmt || strcmp(fmt, CK_FORMAT) != 0) {
    st = bad_meta(&lc, "ampc.format", "\"" CK_FORMAT "\"");
    goto done;
  }
  int64_t step = 0;
  float lr = 0;
  if (opt) {
    const char *state = amp_safetensors_meta(f, "ampc.optim.state");
    const char *want = optim_state_name(mom[0], mom[1]);
    if (!state || strcmp(state, want) != 0) {
      st = state ? amp__error(ctx, AMP_ERR_FORMAT,
                              "checkpoint: %s: optimizer state '%.20s' in the file, the "
                              "optimizer keeps '%s'",
                              path, state, want)
                 : bad_meta(&lc, "ampc.optim.state", "an optimizer state");
      goto done;
    }
    if ((st = get_i64(&lc, "ampc.optim.step", 0, INT64_MAX, &step)) != AMP_OK) goto done;
    if ((st = get_f32(&lc, "ampc.optim.lr", &lr)) != AMP_OK) goto done;
    if (lr < 0) {
      st = bad_meta(&lc, "ampc.optim.lr", "a learning rate >= 0");
      goto done;
    }
  }
  amp_scaler_state ss;
  memset(&ss, 0, sizeof ss);
  if (scaler) {
    const char *mode = amp_safetensors_meta(f, "ampc.scaler.mode");
    int64_t gi = 0, hy = 0, gt = 0, hl = 0, sk = 0;
    if (mode && strcmp(mode, "dynamic") == 0)
      ss.params.mode = AMP_SCALER_DYNAMIC;
    else if (mode && strcmp(mode, "static") == 0)
      ss.params.mode = AMP_SCALER_STATIC;
    else if (mode && strcmp(mode, "none") == 0)
      ss.params.mode = AMP_SCALER_NONE;
    else {
      st = bad_meta(&lc, "ampc.scaler.mode", "dynamic, static or none");
      goto done;
    }
    if ((st = get_f32(&lc, "ampc.scaler.init_scale", &ss.params.init_scale)) ||
        (st = get_f64(&lc, "ampc.scaler.growth_factor", &ss.params.growth_factor)) ||
        (st = get_f64(&lc, "ampc.scaler.backoff_factor", &ss.params.backoff_factor)) ||
        (st = get_i64(&lc, "ampc.scaler.growth_interval", 1, INT64_MAX, &gi)) ||
        (st = get_f32(&lc, "ampc.scaler.min_scale", &ss.params.min_scale)) ||
        (st = get_f32(&lc, "ampc.scaler.max_scale", &ss.params.max_scale)) ||
        (st = get_i64(&lc, "ampc.scaler.hysteresis", 1, INT32_MAX, &hy)) ||
        (st = get_f32(&lc, "ampc.scaler.scale", &ss.scale)) ||
        (st = get_i64(&lc, "ampc.scaler.growth_tracker", 0, INT64_MAX, &gt)) ||
        (st = get_i64(&lc, "ampc.scaler.hysteresis_left", 1, INT32_MAX, &hl)) ||
        (st = get_i64(&lc, "ampc.scaler.skipped", 0, INT64_MAX, &sk)))
      goto done;
    ss.params.growth_interval = gi;
    ss.params.hysteresis = (int)hy;
    ss.growth_tracker = gt;
    ss.hysteresis_left = (int)hl;
    ss.skipped = sk;
  }
  amp_loader_state ls = {0, 0};
  if (loader) {
    uint64_t seed = 0;
    int64_t shuffle = 0;
    if ((st = get_i64(&lc, "ampc.loader.epoch", 0, INT64_MAX, &ls.epoch)) ||
        (st = get_i64(&lc, "ampc.loader.next", 0, INT64_MAX, &ls.next)) ||
        (st = get_i64(&lc, "ampc.loader.shuffle", 0, 1, &shuffle)))
      goto done;
    if (!parse_u64(amp_safetensors_meta(f, "ampc.loader.seed"), &seed)) {
      st = bad_meta(&lc, "ampc.loader.seed", "an unsigned 64-bit integer");
      goto done;
    }
    amp_loader_params lp = amp_loader_get_params(loader);
    if (lp.shuffle && seed != lp.seed) {
      st = amp__error(ctx, AMP_ERR_STATE,
                      "checkpoint: %s: the loader's shuffle seed is %llu, the checkpoint's %llu "
                      "(ampc.loader.seed): the batches would differ",
                      path, (unsigned long long)lp.seed, (unsigned long long)seed);
      goto done;
    }
  }
  /* 4. The fallible restores first (each leaves its object unchanged on
   * failure; the scaler is put back if the loader refuses). */
  amp_scaler_state old_ss;
  if (scaler) {
    old_ss = amp_scaler_get_state(scaler);
    amp_status was = amp_ctx_status(ctx);
    if (amp_scaler_set_state(scaler, &ss) != AMP_OK) {
      st = reprefix(ctx, was, AMP_ERR_FORMAT, path, "invalid scaler state");
      goto done;
    }
  }
  if (loader) {
    amp_status was = amp_ctx_status(ctx);
    if (amp_loader_set_state(loader, ls) != AMP_OK) {
      if (scaler) amp_scaler_set_state(scaler, &old_ss);
      st = reprefix(ctx, was, AMP_ERR_FORMAT, path, "invalid loader position");
      goto done;
    }
  }
  /* 5. The tensors, which cannot fail. */
  for (int i = 0; i < nt; i++) memcpy(plan[i].data, src[i]->data, src[i]->bytes);
  if (opt) {
    *stepp = step;
    amp_optim_set_lr(opt, lr);
    st = amp_optim_sync_work(opt);
    if (st != AMP_OK)
      st = amp__error(ctx, st, "checkpoint: %s: cannot rewrite the working copies", path);
  }
done:
  ck_plan_free(plan, nt);
  free(sorted);
  free(src);
  amp_safetensors_free(f);
  return st;
}

amp_status amp_checkpoint_export(amp_ctx *ctx, const char *path, amp_module *model, amp_dtype dt) {
  if (!path || !model)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_checkpoint_export: NULL path or model");
  if (dt != AMP_F16 && dt != AMP_BF16 && dt != AMP_F32)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_checkpoint_export: dtype %s (F16, BF16 or F32 only)",
                      amp_dtype_name(dt));
  int np = amp_module_param_count(model);
  amp_st_tensor *t = calloc((size_t)np + 1, sizeof *t);
  void **bufs = calloc((size_t)np + 1, sizeof *bufs);
  amp_status st = AMP_OK;
  if (!t || !bufs) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "export: %s: out of memory", path);
    goto done;
  }
  for (int i = 0; i < np; i++) {
    const char *name = NULL;
    amp_tensor *p = amp_module_param(model, i, &name);
    if (!p || !name || p->dtype != AMP_F32) {
      st = amp__error(ctx, AMP_ERR_INVALID_ARG, "export: %s: parameter %d is not an F32 tensor",
                      path, i);
      goto done;
    }
    bufs[i] = malloc((size_t)p->numel * amp_dtype_size(dt) + 1);
    if (!bufs[i]) {
      st = amp__error(ctx, AMP_ERR_NOMEM, "export: %s: out of memory", path);
      goto done;
    }
    if ((st = amp_convert(bufs[i], dt, p->data, AMP_F32, (size_t)p->numel)) != AMP_OK) {
      st = amp__error(ctx, st, "export: %s: cannot convert '%s'", path, name);
      goto done;
    }
    st_from_param(&t[i], name, p, bufs[i]);
    t[i].dtype = dt;
    t[i].bytes = (size_t)p->numel * amp_dtype_size(dt);
  }
  const char *meta[] = {"ampc.format", CK_WEIGHTS_FORMAT, "ampc.version",
                        amp_version(), "ampc.dtype",      amp_dtype_name(dt)};
  st = amp_safetensors_write(ctx, path, t, np, meta, 3);
done:
  if (bufs)
    for (int i = 0; i < np; i++) free(bufs[i]);
  free(bufs);
  free(t);
  return st;
}
