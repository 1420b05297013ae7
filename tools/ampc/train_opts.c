/* Options of `ampc train`: defaults, the command line, the configuration a
 * checkpoint carries, and the metadata a run writes into its checkpoints. */
#include "train_opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
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

void train_opts_meta(const train_opts *o, int64_t step, int64_t skipped, int64_t bad,
                      run_meta *m) {
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

/* Replays a checkpoint's "config.*" metadata as options over *o. */
int train_opts_from_checkpoint(const amp_safetensors *f, train_opts *o) {
  int n = amp_safetensors_meta_count(f);
  for (int i = 0; i < n; i++) {
    const char *value;
    const char *key = amp_safetensors_meta_at(f, i, &value);
    if (!key || strncmp(key, "config.", 7) != 0) continue;
    char flag[80];
    snprintf(flag, sizeof flag, "--%s", key + 7);
    if (o->nowned == 20 || strlen(value) >= sizeof o->owned[0]) {
      fprintf(stderr, "ampc: the checkpoint's configuration is too large (%s)\n", key);
      return 1;
    }
    char *copy = strcpy(o->owned[o->nowned++], value); /* outlives the file */
    char *pair[2] = {flag, copy};
    int rc = apply_opts(2, pair, o);
    if (rc) {
      fprintf(stderr, "ampc: the checkpoint's configuration %s = '%s' is not valid\n", key, value);
      return rc;
    }
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
  return rc ? rc : apply_opts(argc, argv, o);
}

int train_opts_schedule(const char *s, float base, int64_t total, amp_lr_schedule *out) {
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

