/* Training checkpoints on top of safetensors: FP32 masters by parameter
 * name, optimizer moments, and the step count, scaler state and loader
 * position in the metadata. Loading validates everything before it writes
 * anything. */
#include "io_internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK_FORMAT "ampc-checkpoint-1"
#define CK_WEIGHTS_FORMAT "ampc-weights-1"

/* Moment kinds, in the order of amp_optim_state's m and v. */
static const char *const MOMENT_PREFIX[2][2] = {
    {"optim.momentum_buffer.", NULL},         /* SGD with momentum: m only */
    {"optim.exp_avg.", "optim.exp_avg_sq."}}; /* Adam/AdamW: m and v */

/* Counters and positions read from a file are bounded so that no later
 * arithmetic of a run can overflow (2^53: exact in a double, too). */
#define CK_MAX_COUNT ((int64_t)1 << 53)

/* The metadata of a checkpoint besides its format and version: one struct
 * that save fills from the objects and load fills from the file, and one
 * table (CK_FIELDS) of its fields walked by both. */
typedef struct ck_meta {
  int optim_state; /* index into OPTIM_STATES */
  int64_t step;
  float lr;
  int scaler_mode; /* index into SCALER_MODES */
  amp_scaler_state ss;
  amp_loader_state ls;
  uint64_t seed;
  int shuffle; /* 0 or 1 */
} ck_meta;

/* "adam" (m and v), "momentum" (m only) or "none". */
static const char *const OPTIM_STATES[] = {"adam", "momentum", "none", NULL};
static const char *const SCALER_MODES[] = {"dynamic", "static", "none", NULL};
static const amp_scaler_mode SCALER_MODE_VALUES[] = {AMP_SCALER_DYNAMIC, AMP_SCALER_STATIC,
                                                     AMP_SCALER_NONE};

typedef enum ck_group { CK_OPTIM, CK_SCALER, CK_LOADER } ck_group;
typedef enum ck_type { CK_ENUM, CK_I64, CK_INT, CK_U64, CK_F32, CK_F64 } ck_type;

typedef struct ck_field {
  const char *key;
  ck_group group; /* written and read only with that object */
  ck_type type;
  size_t off;               /* in ck_meta */
  int64_t lo, hi;           /* CK_I64, CK_INT: the range */
  float flo;                /* CK_F32, CK_F64: the least value (finite always) */
  const char *const *names; /* CK_ENUM: the values (NULL-terminated) */
} ck_field;

#define CK_OFF(m) offsetof(ck_meta, m)
#define CK_ENUM_F(k, g, m, names)                                                                  \
  { k, g, CK_ENUM, CK_OFF(m), 0, 0, 0, names }
#define CK_I64_F(k, g, m, lo, hi)                                                                  \
  { k, g, CK_I64, CK_OFF(m), lo, hi, 0, NULL }
#define CK_INT_F(k, g, m, lo, hi)                                                                  \
  { k, g, CK_INT, CK_OFF(m), lo, hi, 0, NULL }
#define CK_U64_F(k, g, m)                                                                          \
  { k, g, CK_U64, CK_OFF(m), 0, 0, 0, NULL }
#define CK_F32_F(k, g, m, lo)                                                                      \
  { k, g, CK_F32, CK_OFF(m), 0, 0, lo, NULL }
#define CK_F64_F(k, g, m, lo)                                                                      \
  { k, g, CK_F64, CK_OFF(m), 0, 0, lo, NULL }

/* In the order written to the file (and checked when read). */
static const ck_field CK_FIELDS[] = {
    CK_ENUM_F("ampc.optim.state", CK_OPTIM, optim_state, OPTIM_STATES),
    CK_I64_F("ampc.optim.step", CK_OPTIM, step, 0, CK_MAX_COUNT),
    CK_F32_F("ampc.optim.lr", CK_OPTIM, lr, 0),
    CK_ENUM_F("ampc.scaler.mode", CK_SCALER, scaler_mode, SCALER_MODES),
    CK_F32_F("ampc.scaler.init_scale", CK_SCALER, ss.params.init_scale, -FLT_MAX),
    CK_F64_F("ampc.scaler.growth_factor", CK_SCALER, ss.params.growth_factor, -FLT_MAX),
    CK_F64_F("ampc.scaler.backoff_factor", CK_SCALER, ss.params.backoff_factor, -FLT_MAX),
    CK_I64_F("ampc.scaler.growth_interval", CK_SCALER, ss.params.growth_interval, 1, CK_MAX_COUNT),
    CK_F32_F("ampc.scaler.min_scale", CK_SCALER, ss.params.min_scale, -FLT_MAX),
    CK_F32_F("ampc.scaler.max_scale", CK_SCALER, ss.params.max_scale, -FLT_MAX),
    CK_INT_F("ampc.scaler.hysteresis", CK_SCALER, ss.params.hysteresis, 1, INT32_MAX),
    CK_F32_F("ampc.scaler.scale", CK_SCALER, ss.scale, -FLT_MAX),
    CK_I64_F("ampc.scaler.growth_tracker", CK_SCALER, ss.growth_tracker, 0, CK_MAX_COUNT),
    CK_INT_F("ampc.scaler.hysteresis_left", CK_SCALER, ss.hysteresis_left, 1, INT32_MAX),
    CK_I64_F("ampc.scaler.skipped", CK_SCALER, ss.skipped, 0, CK_MAX_COUNT),
    CK_I64_F("ampc.loader.epoch", CK_LOADER, ls.epoch, 0, CK_MAX_COUNT),
    CK_I64_F("ampc.loader.next", CK_LOADER, ls.next, 0, CK_MAX_COUNT),
    CK_U64_F("ampc.loader.seed", CK_LOADER, seed),
    CK_INT_F("ampc.loader.shuffle", CK_LOADER, shuffle, 0, 1),
};
enum { CK_NFIELDS = (int)(sizeof CK_FIELDS / sizeof CK_FIELDS[0]) };

static int optim_state_index(const float *m, const float *v) { return m && v ? 0 : m ? 1 : 2; }

static int scaler_mode_index(amp_scaler_mode m) {
  return m == AMP_SCALER_DYNAMIC ? 0 : m == AMP_SCALER_STATIC ? 1 : 2;
}

/* Which groups of fields a save or load covers. */
static int group_on(ck_group g, int optim, int scaler, int loader) {
  return g == CK_OPTIM ? optim : g == CK_SCALER ? scaler : loader;
}

/* The metadata being built: keys are the table's literals, values live
 * here. */
typedef struct meta_out {
  const char *kv[2 * (CK_NFIELDS + 2)];
  char val[CK_NFIELDS + 2][48];
  int n;
} meta_out;

static void put(meta_out *mo, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void put(meta_out *mo, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(mo->val[mo->n], sizeof mo->val[0], fmt, ap);
  va_end(ap);
  mo->kv[2 * mo->n] = key;
  mo->kv[2 * mo->n + 1] = mo->val[mo->n];
  mo->n++;
}

/* Writes one field of *m as text. */
static void put_field(meta_out *mo, const ck_field *f, const ck_meta *m) {
  const char *p = (const char *)m + f->off;
  switch (f->type) {
  case CK_ENUM: put(mo, f->key, "%s", f->names[*(const int *)p]); break;
  case CK_I64: put(mo, f->key, "%lld", (long long)*(const int64_t *)p); break;
  case CK_INT: put(mo, f->key, "%d", *(const int *)p); break;
  case CK_U64: put(mo, f->key, "%llu", (unsigned long long)*(const uint64_t *)p); break;
  case CK_F32:
    put(mo, f->key, "%.9g", (double)*(const float *)p); /* "%.9g" and strtof round-trip */
    break;
  case CK_F64: put(mo, f->key, "%.17g", *(const double *)p); break; /* round-trips strtod */
  }
}

/* The metadata of the given objects (any may be NULL). */
static void gather_meta(ck_meta *m, amp_optim *opt, const amp_scaler *scaler,
                        const amp_loader *loader) {
  memset(m, 0, sizeof *m);
  if (opt) {
    int64_t *step;
    float *mom[2];
    amp_optim_state(opt, &step, &mom[0], &mom[1]);
    m->optim_state = optim_state_index(mom[0], mom[1]);
    m->step = *step;
    m->lr = amp_optim_lr(opt);
  }
  if (scaler) {
    m->ss = amp_scaler_get_state(scaler);
    m->scaler_mode = scaler_mode_index(m->ss.params.mode);
  }
  if (loader) {
    m->ls = amp_loader_get_state(loader);
    amp_loader_params lp = amp_loader_get_params(loader);
    m->seed = lp.seed;
    m->shuffle = lp.shuffle ? 1 : 0;
  }
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
 * out in parameter order), then the module's buffers (BatchNorm's running
 * statistics) by name. save and load both walk this one list. */
static amp_status ck_plan(amp_ctx *ctx, const char *path, amp_module *model, float *const mom[2],
                          ck_entry **out, int *count) {
  int np = amp_module_param_count(model), kind = mom[1] ? 1 : 0;
  int nb = amp_module_buffer_count(model);
  int nt = np * (1 + (mom[0] ? 1 : 0) + (mom[1] ? 1 : 0)) + nb;
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
  for (int i = 0; i < nb; i++) {
    const char *name = NULL;
    amp_tensor *b = amp_module_buffer(model, i, &name);
    if (!b || !name || b->dtype != AMP_F32) {
      ck_plan_free(e, k);
      return amp__error(ctx, AMP_ERR_INVALID_ARG, "checkpoint: %s: buffer %d is not an F32 tensor",
                        path, i);
    }
    e[k++] = (ck_entry){concat("", name), b, b->data};
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

/* The index of the first non-finite F32 value of `n` at `p` (which need
 * not be aligned: a file's tensor is read bytewise), or -1. One pass that
 * tests the exponent bits only. */
static int64_t first_nonfinite(const void *p, int64_t n) {
  const unsigned char *b = p;
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, b + 4 * i, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return i;
  }
  return -1;
}

/* Checks the plan's tensors and the scaler's scale for non-finite values;
 * `what` starts the message ("checkpoint: PATH: not saved"). */
static amp_status plan_finite(amp_ctx *ctx, const char *what, const ck_entry *plan, int nt,
                              const amp_scaler *scaler) {
  for (int i = 0; i < nt; i++) {
    int64_t bad = first_nonfinite(plan[i].data, plan[i].p->numel);
    if (bad >= 0)
      return amp__error(ctx, AMP_ERR_STATE,
                        "%s: tensor '%.80s' holds a non-finite value (%g at index %lld): the run "
                        "diverged",
                        what, plan[i].name, (double)plan[i].data[bad], (long long)bad);
  }
  if (scaler) {
    float s = amp_scaler_get_scale(scaler);
    if (!(s > 0) || !isfinite(s))
      return amp__error(ctx, AMP_ERR_STATE, "%s: the loss scale is %g (not finite and > 0)", what,
                        (double)s);
  }
  return AMP_OK;
}

amp_status amp_checkpoint_check_finite(amp_ctx *ctx, amp_module *model, amp_optim *opt,
                                       const amp_scaler *scaler) {
  if (!model)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_checkpoint_check_finite: NULL model");
  float *mom[2] = {NULL, NULL};
  if (opt) {
    int64_t *step = NULL;
    amp_optim_state(opt, &step, &mom[0], &mom[1]);
  }
  ck_entry *plan = NULL;
  int nt = 0;
  amp_status st = ck_plan(ctx, "state", model, mom, &plan, &nt);
  if (st == AMP_OK) st = plan_finite(ctx, "training state", plan, nt, scaler);
  ck_plan_free(plan, nt);
  return st;
}

amp_status amp_checkpoint_save(amp_ctx *ctx, const char *path, amp_module *model, amp_optim *opt,
                               const amp_scaler *scaler, const amp_loader *loader,
                               const char *const *extra_meta, int nextra) {
  if (!path || !model || nextra < 0 || (nextra > 0 && !extra_meta))
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_checkpoint_save: NULL path or model, or bad extra metadata");
  float *mom[2] = {NULL, NULL};
  if (opt) {
    int64_t *step = NULL;
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
  /* Non-finite state is never written (over what may be the last good
     checkpoint). */
  char what[160];
  snprintf(what, sizeof what, "checkpoint: %.120s: not saved", path);
  if ((st = plan_finite(ctx, what, plan, nt, scaler)) != AMP_OK) {
    ck_plan_free(plan, nt);
    return st;
  }
  amp_st_tensor *t = calloc((size_t)nt + 1, sizeof *t);
  const char **kv = calloc(2 * ((size_t)CK_NFIELDS + 2 + (size_t)nextra) + 2, sizeof *kv);
  meta_out *mo = calloc(1, sizeof *mo);
  ck_meta *m = calloc(1, sizeof *m);
  if (!t || !kv || !mo || !m) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "checkpoint: %s: out of memory", path);
    goto done;
  }
  for (int i = 0; i < nt; i++) st_from_param(&t[i], plan[i].name, plan[i].p, plan[i].data);
  gather_meta(m, opt, scaler, loader);
  put(mo, "ampc.format", "%s", CK_FORMAT);
  put(mo, "ampc.version", "%s", amp_version());
  for (int i = 0; i < CK_NFIELDS; i++)
    if (group_on(CK_FIELDS[i].group, opt != NULL, scaler != NULL, loader != NULL))
      put_field(mo, &CK_FIELDS[i], m);
  memcpy(kv, mo->kv, sizeof(const char *) * 2 * (size_t)mo->n);
  for (int i = 0; i < 2 * nextra; i++) kv[2 * mo->n + i] = extra_meta[i];
  st = amp_safetensors_write(ctx, path, t, nt, kv, mo->n + nextra);
done:
  ck_plan_free(plan, nt);
  free(t);
  free(kv);
  free(mo);
  free(m);
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

/* What a field's value must be, for messages. */
static void field_wants(const ck_field *f, char *buf, size_t cap) {
  size_t k = 0;
  switch (f->type) {
  case CK_ENUM:
    for (int i = 0; f->names[i] && k < cap; i++)
      k += (size_t)snprintf(buf + k, cap - k, "%s%s",
                            i == 0            ? ""
                            : f->names[i + 1] ? ", "
                                              : " or ",
                            f->names[i]);
    break;
  case CK_I64:
  case CK_INT:
    snprintf(buf, cap, "an integer in [%lld, %lld]", (long long)f->lo, (long long)f->hi);
    break;
  case CK_U64: snprintf(buf, cap, "an unsigned 64-bit integer"); break;
  case CK_F32:
  case CK_F64:
    if (f->flo > -FLT_MAX)
      snprintf(buf, cap, "a finite float >= %g", (double)f->flo);
    else
      snprintf(buf, cap, "a finite float");
    break;
  }
}

/* Reads one field from the file into *m, checking its type and range. */
static amp_status get_field(const load_ctx *lc, const ck_field *f, ck_meta *m) {
  const char *s = amp_safetensors_meta(lc->f, f->key);
  char *p = (char *)m + f->off;
  int64_t i = 0;
  int ok = 0;
  switch (f->type) {
  case CK_ENUM:
    for (int k = 0; s && f->names[k] && !ok; k++)
      if (strcmp(s, f->names[k]) == 0) {
        *(int *)p = k;
        ok = 1;
      }
    break;
  case CK_I64:
  case CK_INT:
    ok = parse_i64(s, &i) && i >= f->lo && i <= f->hi;
    if (ok && f->type == CK_I64) *(int64_t *)p = i;
    if (ok && f->type == CK_INT) *(int *)p = (int)i;
    break;
  case CK_U64: ok = parse_u64(s, (uint64_t *)p); break;
  case CK_F32: ok = parse_f32(s, (float *)p) && *(float *)p >= f->flo; break;
  case CK_F64: ok = parse_f64(s, (double *)p) && *(double *)p >= (double)f->flo; break;
  }
  if (ok) return AMP_OK;
  char want[96];
  field_wants(f, want, sizeof want);
  return bad_meta(lc, f->key, want);
}

/* Reads and checks the metadata of the groups being restored into *m. The
 * optimizer's state kind must be the one `opt` keeps (want_state). */
static amp_status load_meta(const load_ctx *lc, int optim, int scaler, int loader, int want_state,
                            ck_meta *m) {
  const char *fmt = amp_safetensors_meta(lc->f, "ampc.format");
  if (!fmt || strcmp(fmt, CK_FORMAT) != 0) return bad_meta(lc, "ampc.format", "\"" CK_FORMAT "\"");
  for (int i = 0; i < CK_NFIELDS; i++) {
    const ck_field *f = &CK_FIELDS[i];
    if (!group_on(f->group, optim, scaler, loader)) continue;
    amp_status st = get_field(lc, f, m);
    if (st != AMP_OK) return st;
    if (f->off == CK_OFF(optim_state) && m->optim_state != want_state)
      return amp__error(lc->ctx, AMP_ERR_FORMAT,
                        "checkpoint: %s: optimizer state '%s' in the file, the optimizer keeps "
                        "'%s'",
                        lc->path, OPTIM_STATES[m->optim_state], OPTIM_STATES[want_state]);
  }
  m->ss.params.mode = SCALER_MODE_VALUES[m->scaler_mode];
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

/* Checks that the file holds every tensor of the plan (src[i] gets it) and
 * nothing else (optimizer tensors are ignored when with_optim is 0). */
static amp_status match_tensors(const load_ctx *lc, const ck_entry *plan, int nt, int with_optim,
                                const amp_st_tensor **src) {
  const char **sorted = calloc((size_t)nt + 1, sizeof *sorted);
  if (!sorted) return amp__error(lc->ctx, AMP_ERR_NOMEM, "checkpoint: %s: out of memory", lc->path);
  amp_status st = AMP_OK;
  for (int i = 0; i < nt && st == AMP_OK; i++) {
    st = expect_tensor(lc, plan[i].name, plan[i].p, &src[i]);
    sorted[i] = plan[i].name;
    int64_t bad = st == AMP_OK ? first_nonfinite(src[i]->data, plan[i].p->numel) : -1;
    if (bad >= 0)
      st = amp__error(lc->ctx, AMP_ERR_FORMAT,
                      "checkpoint: %s: tensor '%.80s' holds a non-finite value at index %lld",
                      lc->path, plan[i].name, (long long)bad);
  }
  if (st != AMP_OK) {
    free(sorted);
    return st;
  }
  qsort(sorted, (size_t)nt, sizeof *sorted, amp__cmp_str_ptr);
  for (int i = 0; i < amp_safetensors_count(lc->f) && st == AMP_OK; i++) {
    const char *name = amp_safetensors_at(lc->f, i)->name;
    if (!with_optim && strncmp(name, "optim.", 6) == 0) continue;
    if (!bsearch(&name, sorted, (size_t)nt, sizeof *sorted, amp__cmp_str_ptr))
      st = amp__error(lc->ctx, AMP_ERR_SHAPE,
                      "checkpoint: %s: unexpected tensor '%.80s' (not in the %s)", lc->path, name,
                      strncmp(name, "optim.", 6) == 0 ? "optimizer's state" : "model");
  }
  free(sorted);
  return st;
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

/* The fallible restores: the scaler, then the loader (each leaves its object
 * unchanged on failure; the scaler is put back if the loader refuses). */
static amp_status restore_states(const load_ctx *lc, amp_scaler *scaler, amp_loader *loader,
                                 const ck_meta *m) {
  amp_ctx *ctx = lc->ctx;
  if (loader) {
    amp_loader_params lp = amp_loader_get_params(loader);
    if (lp.shuffle && m->seed != lp.seed)
      return amp__error(ctx, AMP_ERR_STATE,
                        "checkpoint: %s: the loader's shuffle seed is %llu, the checkpoint's %llu "
                        "(ampc.loader.seed): the batches would differ",
                        lc->path, (unsigned long long)lp.seed, (unsigned long long)m->seed);
  }
  amp_scaler_state old_ss;
  if (scaler) {
    old_ss = amp_scaler_get_state(scaler);
    amp_status was = amp_ctx_status(ctx);
    if (amp_scaler_set_state(scaler, &m->ss) != AMP_OK)
      return reprefix(ctx, was, AMP_ERR_FORMAT, lc->path, "invalid scaler state");
  }
  if (loader) {
    amp_status was = amp_ctx_status(ctx);
    if (amp_loader_set_state(loader, m->ls) != AMP_OK) {
      if (scaler) amp_scaler_set_state(scaler, &old_ss);
      return reprefix(ctx, was, AMP_ERR_FORMAT, lc->path, "invalid loader position");
    }
  }
  return AMP_OK;
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
  ck_meta m;
  memset(&m, 0, sizeof m);
  if (opt && amp_optim_numel(opt) != amp_module_param_numel(model)) {
    st = amp__error(ctx, AMP_ERR_INVALID_ARG,
                    "checkpoint: %s: the optimizer does not hold this model's parameters", path);
    goto done;
  }
  if ((st = ck_plan(ctx, path, model, mom, &plan, &nt)) != AMP_OK) goto done;
  src = calloc((size_t)nt + 1, sizeof *src);
  if (!src) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "checkpoint: %s: out of memory", path);
    goto done;
  }
  /* Everything is checked before anything is written. */
  if ((st = match_tensors(&lc, plan, nt, opt != NULL, src)) != AMP_OK ||
      (st = load_meta(&lc, opt != NULL, scaler != NULL, loader != NULL,
                      optim_state_index(mom[0], mom[1]), &m)) != AMP_OK ||
      (st = restore_states(&lc, scaler, loader, &m)) != AMP_OK)
    goto done;
  /* The tensors, which cannot fail. */
  for (int i = 0; i < nt; i++) memcpy(plan[i].data, src[i]->data, src[i]->bytes);
  if (opt) {
    *stepp = m.step;
    amp_optim_set_lr(opt, m.lr);
    st = amp_optim_sync_work(opt);
    if (st != AMP_OK)
      st = amp__error(ctx, st, "checkpoint: %s: cannot rewrite the working copies", path);
  }
done:
  ck_plan_free(plan, nt);
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
    if ((st = amp__convert(ctx, bufs[i], dt, p->data, AMP_F32, (size_t)p->numel, NULL)) != AMP_OK) {
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
