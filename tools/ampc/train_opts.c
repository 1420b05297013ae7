/* Options of `ampc train`: defaults, the command line, the configuration a
 * checkpoint carries, and the metadata a run writes into its checkpoints. */
#include "train_opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ampc_usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "ampc train: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(run `ampc help` for the options)\n");
  return 2;
}

int ampc_parse_num(const char *flag, const char *s, double lo, double hi, double *out) {
  double v;
  if (!ampc_parse_double(s, lo, hi, &v)) {
    fprintf(stderr, "ampc train: %s: '%s' is not a number in [%g, %g]\n", flag, s, lo, hi);
    return 0;
  }
  *out = v;
  return 1;
}

int ampc_parse_long(const char *flag, const char *s, long lo, long hi, long *out) {
  double v;
  if (!ampc_parse_num(flag, s, (double)lo, (double)hi, &v)) return 0;
  if (v != floor(v)) {
    fprintf(stderr, "ampc train: %s: '%s' is not a whole number\n", flag, s);
    return 0;
  }
  *out = (long)v;
  return 1;
}

void train_opts_default(train_opts *o) {
  memset(o, 0, sizeof *o);
  o->data = "data/mnist";
  o->model = "mlp:784-1024-10";
  o->precision = "fp16";
  o->optim = "adam";
  o->schedule = "constant";
  o->lr = -1;
  o->loss_mul = 1;
  o->batch = 128;
  o->epochs = 5;
  o->threads = 2;
  o->master_weights = 1;
  o->growth_interval = 2000;
}

/* Applies command-line options over *o; returns 0, or the exit status. */
static int apply_opts(int argc, char **argv, train_opts *o) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--json") == 0) {
      o->json = 1;
      continue;
    }
    if (strcmp(a, "--quiet") == 0) {
      o->quiet = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) return ampc_usage_error("unexpected argument '%s'", a);
    if (i + 1 >= argc) return ampc_usage_error("%s needs a value", a);
    const char *v = argv[++i];
    double d;
    if (strcmp(a, "--data") == 0)
      o->data = v;
    else if (strcmp(a, "--model") == 0)
      o->model = v;
    else if (strcmp(a, "--precision") == 0)
      o->precision = v;
    else if (strcmp(a, "--optim") == 0)
      o->optim = v;
    else if (strcmp(a, "--loss-scale") == 0)
      o->loss_scale = v;
    else if (strcmp(a, "--metrics") == 0)
      o->metrics = v;
    else if (strcmp(a, "--schedule") == 0)
      o->schedule = v;
    else if (strcmp(a, "--save") == 0)
      o->save = v;
    else if (strcmp(a, "--resume") == 0)
      o->resume = v;
    else if (strcmp(a, "--lr") == 0) {
      if (!ampc_parse_num(a, v, 0, 1e3, &o->lr)) return 2;
    } else if (strcmp(a, "--clip") == 0) {
      if (!ampc_parse_num(a, v, 0, 1e30, &o->clip)) return 2;
    } else if (strcmp(a, "--loss-mul") == 0) {
      if (!ampc_parse_num(a, v, 1e-30, 1e30, &o->loss_mul)) return 2;
    } else if (strcmp(a, "--batch") == 0) {
      if (!ampc_parse_long(a, v, 1, 1 << 20, &o->batch)) return 2;
    } else if (strcmp(a, "--epochs") == 0) {
      if (!ampc_parse_long(a, v, 1, 100000, &o->epochs)) return 2;
    } else if (strcmp(a, "--threads") == 0) {
      if (!ampc_parse_long(a, v, 1, 1024, &o->threads)) return 2;
    } else if (strcmp(a, "--max-steps") == 0) {
      if (!ampc_parse_long(a, v, 1, 1L << 40, &o->max_steps)) return 2;
    } else if (strcmp(a, "--synthetic-n") == 0) {
      if (!ampc_parse_long(a, v, 2, 1L << 24, &o->synthetic_n)) return 2;
    } else if (strcmp(a, "--save-every") == 0) {
      if (!ampc_parse_long(a, v, 1, 1L << 40, &o->save_every)) return 2;
    } else if (strcmp(a, "--growth-interval") == 0) {
      if (!ampc_parse_long(a, v, 1, 1L << 40, &o->growth_interval)) return 2;
    } else if (strcmp(a, "--seed") == 0) {
      if (!ampc_parse_num(a, v, 0, 9.007199254740992e15, &d) || d != floor(d)) return 2;
      o->seed = (unsigned long long)d;
    } else if (strcmp(a, "--steps") == 0) { /* GPT/CNN runs (train_model.c) */
      if (!ampc_parse_long(a, v, 1, 1L << 40, &o->steps)) return 2;
    } else if (strcmp(a, "--eval-every") == 0) {
      if (!ampc_parse_long(a, v, 1, 1L << 40, &o->eval_every)) return 2;
    } else if (strcmp(a, "--init") == 0) {
      o->init = v;
    } else if (strcmp(a, "--master-weights") == 0) {
      if (strcmp(v, "on") == 0)
        o->master_weights = 1;
      else if (strcmp(v, "off") == 0)
        o->master_weights = 0;
      else
        return ampc_usage_error("--master-weights: '%s' is not on or off", v);
    } else {
      return ampc_usage_error("unknown option '%s'", a);
    }
  }
  return 0;
}

static void meta_add(run_meta *m, const char *key, const char *fmt, ...) {
  if (m->n >= 20) return;
  va_list ap;
  va_start(ap, fmt);
  snprintf(m->buf[m->n][0], sizeof m->buf[0][0], "%s", key);
  vsnprintf(m->buf[m->n][1], sizeof m->buf[0][1], fmt, ap);
  va_end(ap);
  m->kv[2 * m->n] = m->buf[m->n][0];
  m->kv[2 * m->n + 1] = m->buf[m->n][1];
  m->n++;
}

void train_opts_meta(const train_opts *o, int64_t step, int64_t skipped, int64_t bad, run_meta *m) {
  m->n = 0;
  meta_add(m, "config.data", "%s", o->data);
  meta_add(m, "config.model", "%s", o->model);
  meta_add(m, "config.precision", "%s", o->precision);
  meta_add(m, "config.optim", "%s", o->optim);
  if (o->loss_scale) meta_add(m, "config.loss-scale", "%s", o->loss_scale);
  meta_add(m, "config.schedule", "%s", o->schedule);
  if (o->lr >= 0) meta_add(m, "config.lr", "%.17g", o->lr);
  meta_add(m, "config.clip", "%.17g", o->clip);
  meta_add(m, "config.loss-mul", "%.17g", o->loss_mul);
  meta_add(m, "config.batch", "%ld", o->batch);
  meta_add(m, "config.epochs", "%ld", o->epochs);
  meta_add(m, "config.seed", "%llu", o->seed);
  meta_add(m, "config.master-weights", "%s", o->master_weights ? "on" : "off");
  meta_add(m, "config.growth-interval", "%ld", o->growth_interval);
  if (o->synthetic_n) meta_add(m, "config.synthetic-n", "%ld", o->synthetic_n);
  meta_add(m, "train.step", "%lld", (long long)step);
  meta_add(m, "train.skipped", "%lld", (long long)skipped);
  meta_add(m, "train.bad_losses", "%lld", (long long)bad);
}

int train_opts_recipe(const train_opts *o, ampc_recipe *r) {
  char msg[512];
  int rc = ampc_recipe_parse(o->precision, o->loss_scale, o->master_weights, r, msg, sizeof msg);
  if (rc == 1) fprintf(stderr, "ampc train: %s\n", msg);
  if (rc == 2) ampc_usage_error("%s", msg);
  return rc ? 2 : 0;
}

/* Parses --schedule; returns 1, or 0 when it is not a schedule. */
static int parse_schedule(const char *s, float base, int64_t total, amp_lr_schedule *out) {
  memset(out, 0, sizeof *out);
  out->base = base;
  out->total = total;
  if (strcmp(s, "constant") == 0) {
    out->kind = AMP_LR_CONSTANT;
    return 1;
  }
  long a;
  double g;
  char extra;
  if (sscanf(s, "step:%ld:%lf%c", &a, &g, &extra) == 2 && a >= 1 && g > 0 && g <= 1) {
    out->kind = AMP_LR_STEP;
    out->step_size = a;
    out->gamma = (float)g;
    return 1;
  }
  if (sscanf(s, "cosine:%ld%c", &a, &extra) == 1 && a >= 0) {
    out->kind = AMP_LR_COSINE;
    out->warmup = a;
    return 1;
  }
  return 0;
}

typedef enum opt_type { OPT_STR, OPT_LONG, OPT_ULL, OPT_INT, OPT_DOUBLE } opt_type;

/* One option a checkpoint may restore ("config.<flag>"). */
typedef struct config_key {
  const char *flag;
  size_t off; /* in train_opts */
  opt_type type;
  int fixed; /* 1: what the checkpoint restores keeps it (the scaler's state, the
                optimizer's state, the model's shape, the loader's shuffle):
                with --resume the command line may not change it */
} config_key;

#define CONFIG_KEY(flag, member, type, fixed)                                                      \
  { flag, offsetof(train_opts, member), type, fixed }

/* The allow-list: the model, the recipe, the optimizer and the data a run
 * trains on — what train_opts_meta writes. Never an output path (--save,
 * --metrics), the checkpoint itself (--resume), or how a run is shown or
 * run (--json, --quiet, --threads, --max-steps, --save-every). The others
 * win over the checkpoint when given with --resume. */
static const config_key CONFIG_KEYS[] = {
    CONFIG_KEY("data", data, OPT_STR, 0),
    CONFIG_KEY("model", model, OPT_STR, 1),
    CONFIG_KEY("precision", precision, OPT_STR, 1),
    CONFIG_KEY("optim", optim, OPT_STR, 1),
    CONFIG_KEY("loss-scale", loss_scale, OPT_STR, 1),
    CONFIG_KEY("schedule", schedule, OPT_STR, 0),
    CONFIG_KEY("lr", lr, OPT_DOUBLE, 0),
    CONFIG_KEY("clip", clip, OPT_DOUBLE, 0),
    CONFIG_KEY("loss-mul", loss_mul, OPT_DOUBLE, 0),
    CONFIG_KEY("batch", batch, OPT_LONG, 0),
    CONFIG_KEY("epochs", epochs, OPT_LONG, 0),
    CONFIG_KEY("seed", seed, OPT_ULL, 1),
    CONFIG_KEY("master-weights", master_weights, OPT_INT, 1),
    CONFIG_KEY("growth-interval", growth_interval, OPT_LONG, 1),
    CONFIG_KEY("synthetic-n", synthetic_n, OPT_LONG, 0),
};
enum { NCONFIG_KEYS = (int)(sizeof CONFIG_KEYS / sizeof CONFIG_KEYS[0]) };

static const config_key *config_key_of(const char *flag) {
  for (int i = 0; i < NCONFIG_KEYS; i++)
    if (strcmp(CONFIG_KEYS[i].flag, flag) == 0) return &CONFIG_KEYS[i];
  return NULL;
}

/* The string values apply_opts() stores unchecked, checked here: non-zero
 * when `v` is a valid value of --<flag>. */
static int valid_string(const char *flag, const char *v) {
  long sizes[33];
  ampc_recipe r;
  amp_lr_schedule sched;
  char msg[256];
  if (strcmp(flag, "model") == 0) return ampc_parse_model(v, sizes, 33) != 0;
  if (strcmp(flag, "precision") == 0)
    return strcmp(v, "fp32") == 0 || strcmp(v, "fp16") == 0 || strcmp(v, "bf16") == 0;
  if (strcmp(flag, "optim") == 0)
    return strcmp(v, "adam") == 0 || strcmp(v, "adamw") == 0 || strcmp(v, "sgd") == 0;
  if (strcmp(flag, "loss-scale") == 0)
    return ampc_recipe_parse("fp16", v, 1, &r, msg, sizeof msg) == 0;
  if (strcmp(flag, "schedule") == 0) return parse_schedule(v, 1, 1, &sched);
  return *v != '\0'; /* --data: an input directory, or "synthetic" */
}

int train_opts_from_checkpoint(const amp_safetensors *f, train_opts *o) {
  int n = amp_safetensors_meta_count(f);
  for (int i = 0; i < n; i++) {
    const char *value;
    const char *key = amp_safetensors_meta_at(f, i, &value);
    if (!key || strncmp(key, "config.", 7) != 0) continue;
    const config_key *ck = config_key_of(key + 7);
    if (!ck) {
      fprintf(stderr,
              "ampc: the checkpoint's configuration %.80s is not one a checkpoint may set (only "
              "the model, recipe, optimizer and data)\n",
              key);
      return 1;
    }
    char flag[80];
    snprintf(flag, sizeof flag, "--%s", ck->flag);
    if (o->nowned == 20 || strlen(value) >= sizeof o->owned[0]) {
      fprintf(stderr, "ampc: the checkpoint's configuration is too large (%s)\n", key);
      return 1;
    }
    char *copy = strcpy(o->owned[o->nowned++], value); /* outlives the file */
    char *pair[2] = {flag, copy};
    if (apply_opts(2, pair, o) != 0 || (ck->type == OPT_STR && !valid_string(ck->flag, copy))) {
      fprintf(stderr, "ampc: the checkpoint's configuration %s = '%.80s' is not valid\n", key,
              value);
      return 1;
    }
  }
  return 0;
}

/* A fixed option's value as text, for messages. */
static void value_text(const config_key *k, const train_opts *o, char *buf, size_t cap) {
  const char *p = (const char *)o + k->off;
  switch (k->type) {
  case OPT_STR:
    snprintf(buf, cap, "%.80s",
             *(const char *const *)p ? *(const char *const *)p : "(the precision's default)");
    break;
  case OPT_LONG: snprintf(buf, cap, "%ld", *(const long *)p); break;
  case OPT_ULL: snprintf(buf, cap, "%llu", *(const unsigned long long *)p); break;
  case OPT_INT: snprintf(buf, cap, "%s", *(const int *)p ? "on" : "off"); break;
  case OPT_DOUBLE: snprintf(buf, cap, "%.17g", *(const double *)p); break;
  }
}

/* Non-zero when option k has the same effect in a and b. */
static int same_value(const config_key *k, const train_opts *a, const train_opts *b) {
  const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
  if (strcmp(k->flag, "loss-scale") == 0) { /* NULL and "dynamic" may be one scaler */
    ampc_recipe ra, rb;
    char msg[256];
    if (ampc_recipe_parse(a->precision, a->loss_scale, 1, &ra, msg, sizeof msg) == 0 &&
        ampc_recipe_parse(b->precision, b->loss_scale, 1, &rb, msg, sizeof msg) == 0)
      return ra.scale_mode == rb.scale_mode && ra.scale == rb.scale;
  }
  switch (k->type) {
  case OPT_STR: {
    const char *x = *(const char *const *)pa, *y = *(const char *const *)pb;
    return x == y || (x && y && strcmp(x, y) == 0);
  }
  case OPT_LONG: return *(const long *)pa == *(const long *)pb;
  case OPT_ULL: return *(const unsigned long long *)pa == *(const unsigned long long *)pb;
  case OPT_INT: return *(const int *)pa == *(const int *)pb;
  case OPT_DOUBLE: return *(const double *)pa == *(const double *)pb;
  }
  return 0;
}

/* With --resume: a command-line value of a fixed option that differs from
 * the checkpoint's (`ck`) is refused, naming the conflict. Returns 0 or 2. */
static int check_conflicts(const train_opts *ck, const train_opts *o) {
  for (int i = 0; i < NCONFIG_KEYS; i++) {
    const config_key *k = &CONFIG_KEYS[i];
    if (!k->fixed || same_value(k, ck, o)) continue;
    char given[96], saved[96];
    value_text(k, o, given, sizeof given);
    value_text(k, ck, saved, sizeof saved);
    fprintf(stderr,
            "ampc train: --%s %s conflicts with --resume %s, whose config.%s is %s: the restored "
            "state keeps it (leave --%s out, or give the same value)\n",
            k->flag, given, o->resume, k->flag, saved, k->flag);
    return 2;
  }
  return 0;
}

int train_meta_count(const amp_safetensors *f, const char *key, int64_t *out) {
  const char *v = amp_safetensors_meta(f, key);
  char *end;
  if (!v) return 0;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (end == v || *end || errno || x < 0) return 0;
  *out = x;
  return 1;
}

int train_opts_parse(int argc, char **argv, train_opts *o) {
  train_opts_default(o);
  int rc = apply_opts(argc, argv, o);
  if (rc || !o->resume) return rc;
  const char *resume = o->resume;
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(ctx, resume, &f) != AMP_OK) {
    fprintf(stderr, "ampc train: --resume: %s\n", amp_ctx_error(ctx));
    amp_ctx_free(ctx);
    return 1;
  }
  train_opts_default(o);
  rc = train_opts_from_checkpoint(f, o);
  amp_safetensors_free(f);
  amp_ctx_free(ctx);
  if (rc) return rc;
  /* The command line over the checkpoint's configuration. The copy's strings
   * point into o->owned, which stays. */
  train_opts *ck = malloc(sizeof *ck);
  if (!ck) return 1;
  *ck = *o;
  rc = apply_opts(argc, argv, o);
  if (!rc) rc = check_conflicts(ck, o);
  free(ck);
  return rc;
}

int train_opts_schedule(const char *s, float base, int64_t total, amp_lr_schedule *out) {
  if (parse_schedule(s, base, total, out)) return 1;
  fprintf(stderr, "ampc train: --schedule: '%s' is not constant, step:N:GAMMA or cosine:WARMUP\n",
          s);
  return 0;
}

int train_load_data(amp_ctx *ctx, const train_opts *o, const long *sizes, int nsizes,
                    amp_dataset **train, amp_dataset **test) {
  if (strcmp(o->data, "synthetic") == 0) {
    int64_t n = o->synthetic_n ? o->synthetic_n : 12000, nt = n / 6 > 0 ? n / 6 : 1;
    amp_dataset *all;
    if (amp_synthetic_load(ctx, n + nt, sizes[0], sizes[nsizes - 1], 1234, &all) != AMP_OK)
      return 0;
    int ok = amp_dataset_slice(ctx, all, 0, n, train) == AMP_OK &&
             amp_dataset_slice(ctx, all, n, nt, test) == AMP_OK;
    amp_dataset_free(all);
    return ok;
  }
  return amp_mnist_load(ctx, o->data, 1, train) == AMP_OK &&
         amp_mnist_load(ctx, o->data, 0, test) == AMP_OK;
}
