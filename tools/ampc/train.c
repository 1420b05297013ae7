/* `ampc train`: trains a model with a mixed-precision recipe, written with the
 * public API only, step for step as a PyTorch AMP loop:
 *
 *   with autocast(dtype): logits = model(x); loss = cross_entropy(logits, y)
 *   scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
 */
#include "bench.h"
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct train_opts {
  const char *data;  /* a directory, or "synthetic" */
  const char *model; /* mlp:784-1024-10 */
  const char *precision;
  const char *optim;
  const char *loss_scale; /* dynamic | static:N | none | NULL (recipe default) */
  const char *metrics;
  const char *schedule; /* constant | step:N:G | cosine:W */
  const char *save;     /* checkpoint to write (at the end, and every save_every steps) */
  const char *resume;   /* checkpoint to continue from */
  double lr;            /* < 0: the optimizer's default */
  double clip;          /* <= 0: none */
  double loss_mul;      /* multiplies the loss (tests of underflow) */
  long batch, epochs, threads, max_steps, synthetic_n, growth_interval, save_every;
  unsigned long long seed;
  int master_weights;
  int json;
  int quiet;
  char owned[20][256]; /* string values taken from a checkpoint */
  int nowned;
} train_opts;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Parses "mlp:784-1024-10" into sizes; returns the count (>= 2) or 0. */
static int parse_model(const char *spec, long *sizes, int max) {
  if (strncmp(spec, "mlp:", 4) != 0) return 0;
  const char *p = spec + 4;
  int n = 0;
  while (*p) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < 1 || v > 1 << 20 || n == max) return 0;
    sizes[n++] = v;
    if (*end == '-')
      p = end + 1;
    else if (*end == '\0')
      p = end;
    else
      return 0;
  }
  return n >= 2 ? n : 0;
}

static amp_module *build_mlp(amp_ctx *ctx, const long *sizes, int n, uint64_t seed) {
  amp_rng rng;
  amp_rng_seed(&rng, seed);
  amp_module *layers[64];
  int k = 0;
  for (int i = 0; i + 1 < n; i++) {
    layers[k++] = amp_nn_linear(ctx, &rng, sizes[i], sizes[i + 1], 1);
    if (i + 2 < n) layers[k++] = amp_nn_relu(ctx);
  }
  return amp_nn_sequential(ctx, k, layers);
}

/* Fraction of correct predictions of `model` on a data set, in the recipe's
 * dtype, without recording gradients. */
static double evaluate(amp_ctx *ctx, amp_module *model, const amp_dataset *ds, amp_dtype dt,
                       int autocast) {
  amp_loader_params lp = {1000, 0, 0, 0, autocast ? dt : AMP_F32, 1};
  amp_loader *ld = amp_loader_create(ctx, ds, &lp);
  if (!ld) return -1;
  int64_t correct = 0, total = 0;
  amp_tensor *x, *y;
  float *row = NULL;
  amp_no_grad_begin(ctx);
  while (amp_loader_next(ld, &x, &y) == 1) {
    if (autocast) amp_autocast_begin(ctx, dt);
    amp_tensor *logits = amp_module_forward(ctx, model, x);
    if (autocast) amp_autocast_end(ctx);
    if (!logits) break;
    int64_t b = logits->shape[0], c = logits->shape[1];
    float *r = realloc(row, sizeof(float) * (size_t)(b * c));
    if (!r) break;
    row = r;
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
  free(row);
  amp_loader_free(ld);
  return total ? (double)correct / (double)total : -1;
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "ampc train: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(run `ampc help` for the options)\n");
  return 2;
}

static int parse_num(const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !(v >= lo && v <= hi)) {
    fprintf(stderr, "ampc train: %s: '%s' is not a number in [%g, %g]\n", flag, s, lo, hi);
    return 0;
  }
  *out = v;
  return 1;
}

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out) {
  double v;
  if (!parse_num(flag, s, (double)lo, (double)hi, &v)) return 0;
  if (v != floor(v)) {
    fprintf(stderr, "ampc train: %s: '%s' is not a whole number\n", flag, s);
    return 0;
  }
  *out = (long)v;
  return 1;
}

/* Parses the command line; returns 0 on success, else the exit status. */
static void default_opts(train_opts *o) {
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
    if (strncmp(a, "--", 2) != 0) return usage_error("unexpected argument '%s'", a);
    if (i + 1 >= argc) return usage_error("%s needs a value", a);
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
      if (!parse_num(a, v, 0, 1e3, &o->lr)) return 2;
    } else if (strcmp(a, "--clip") == 0) {
      if (!parse_num(a, v, 0, 1e30, &o->clip)) return 2;
    } else if (strcmp(a, "--loss-mul") == 0) {
      if (!parse_num(a, v, 1e-30, 1e30, &o->loss_mul)) return 2;
    } else if (strcmp(a, "--batch") == 0) {
      if (!parse_long(a, v, 1, 1 << 20, &o->batch)) return 2;
    } else if (strcmp(a, "--epochs") == 0) {
      if (!parse_long(a, v, 1, 100000, &o->epochs)) return 2;
    } else if (strcmp(a, "--threads") == 0) {
      if (!parse_long(a, v, 1, 1024, &o->threads)) return 2;
    } else if (strcmp(a, "--max-steps") == 0) {
      if (!parse_long(a, v, 1, 1L << 40, &o->max_steps)) return 2;
    } else if (strcmp(a, "--synthetic-n") == 0) {
      if (!parse_long(a, v, 2, 1L << 24, &o->synthetic_n)) return 2;
    } else if (strcmp(a, "--save-every") == 0) {
      if (!parse_long(a, v, 1, 1L << 40, &o->save_every)) return 2;
    } else if (strcmp(a, "--growth-interval") == 0) {
      if (!parse_long(a, v, 1, 1L << 40, &o->growth_interval)) return 2;
    } else if (strcmp(a, "--seed") == 0) {
      if (!parse_num(a, v, 0, 9.007199254740992e15, &d) || d != floor(d)) return 2;
      o->seed = (unsigned long long)d;
    } else if (strcmp(a, "--master-weights") == 0) {
      if (strcmp(v, "on") == 0)
        o->master_weights = 1;
      else if (strcmp(v, "off") == 0)
        o->master_weights = 0;
      else
        return usage_error("--master-weights: '%s' is not on or off", v);
    } else {
      return usage_error("unknown option '%s'", a);
    }
  }
  return 0;
}

/* The run's configuration as checkpoint metadata: "config.<flag>" = the
 * flag's value, so that a resume can replay it through apply_opts(); plus
 * the loop's own counters ("train.*"). */
typedef struct run_meta {
  char buf[20][2][64];
  const char *kv[48];
  int n;
} run_meta;

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

static void make_meta(const train_opts *o, int64_t step, int64_t skipped, int64_t bad,
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

/* Replays a checkpoint's "config.*" metadata as options over *o. */
static int apply_checkpoint_config(const amp_safetensors *f, train_opts *o) {
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

/* Reads an integer "train.*" counter from checkpoint metadata. */
static int meta_count(const amp_safetensors *f, const char *key, int64_t *out) {
  const char *v = amp_safetensors_meta(f, key);
  char *end;
  if (!v) return 0;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (end == v || *end || errno || x < 0) return 0;
  *out = x;
  return 1;
}

/* Options for `ampc train`: defaults, then (with --resume) the checkpoint's
 * configuration, then the command line. */
static int parse_opts(int argc, char **argv, train_opts *o) {
  default_opts(o);
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
  default_opts(o);
  rc = apply_checkpoint_config(f, o);
  amp_safetensors_free(f);
  amp_ctx_free(ctx);
  return rc ? rc : apply_opts(argc, argv, o);
}

/* The recipe: compute dtype, scaler mode and scale. */
typedef struct recipe {
  amp_dtype dt; /* F32: no autocast */
  amp_scaler_mode scale_mode;
  float scale;
} recipe;

static int parse_recipe(const train_opts *o, recipe *r) {
  if (strcmp(o->precision, "fp32") == 0)
    *r = (recipe){AMP_F32, AMP_SCALER_NONE, 1};
  else if (strcmp(o->precision, "fp16") == 0)
    *r = (recipe){AMP_F16, AMP_SCALER_DYNAMIC, 65536};
  else if (strcmp(o->precision, "bf16") == 0)
    *r = (recipe){AMP_BF16, AMP_SCALER_NONE, 1};
  else
    return usage_error("--precision: '%s' is not fp32, fp16 or bf16", o->precision);
  if (o->loss_scale) {
    const char *s = o->loss_scale;
    if (strcmp(s, "dynamic") == 0) {
      r->scale_mode = AMP_SCALER_DYNAMIC;
      r->scale = 65536;
    } else if (strcmp(s, "none") == 0) {
      r->scale_mode = AMP_SCALER_NONE;
      r->scale = 1;
    } else if (strncmp(s, "static:", 7) == 0) {
      double v;
      if (!parse_num("--loss-scale static", s + 7, 1e-30, 3e38, &v)) return 2;
      r->scale_mode = AMP_SCALER_STATIC;
      r->scale = (float)v;
    } else {
      return usage_error("--loss-scale: '%s' is not dynamic, static:N or none", s);
    }
  }
  if (!o->master_weights && r->dt == AMP_F32)
    return usage_error("--master-weights off needs a 16-bit --precision (it is %s)", o->precision);
  return 0;
}

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
  fprintf(stderr, "ampc train: --schedule: '%s' is not constant, step:N:GAMMA or cosine:WARMUP\n",
          s);
  return 0;
}

static void progress(const train_opts *o, int tty, long epoch, int64_t step, int64_t steps,
                     float loss, float scale, int64_t skipped, double sps) {
  if (o->quiet) return;
  if (tty) {
    int width = 24, done = steps ? (int)(width * step / steps) : 0;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < done ? '=' : i == done ? '>' : ' ';
    bar[width] = '\0';
    fprintf(stderr,
            "\repoch %ld/%ld [%s] step %lld/%lld  loss %.4f  scale %g  skipped %lld  %.0f "
            "samples/s ",
            epoch + 1, o->epochs, bar, (long long)step, (long long)steps, (double)loss,
            (double)scale, (long long)skipped, sps);
  } else {
    fprintf(stderr, "epoch %ld/%ld step %lld/%lld loss %.4f scale %g skipped %lld samples/s %.0f\n",
            epoch + 1, o->epochs, (long long)step, (long long)steps, (double)loss, (double)scale,
            (long long)skipped, sps);
  }
}

static int load_data(amp_ctx *ctx, const train_opts *o, const long *sizes, int nsizes,
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

int ampc_train_main(int argc, char **argv) {
  train_opts o;
  int rc = parse_opts(argc, argv, &o);
  if (rc) return rc;
  recipe r;
  if ((rc = parse_recipe(&o, &r))) return rc;
  amp_optim_kind kind;
  if (strcmp(o.optim, "adam") == 0)
    kind = AMP_OPTIM_ADAM;
  else if (strcmp(o.optim, "adamw") == 0)
    kind = AMP_OPTIM_ADAMW;
  else if (strcmp(o.optim, "sgd") == 0)
    kind = AMP_OPTIM_SGD;
  else
    return usage_error("--optim: '%s' is not adam, adamw or sgd", o.optim);
  long sizes[33];
  int nsizes = parse_model(o.model, sizes, 33);
  if (!nsizes) return usage_error("--model: '%s' is not mlp:IN-HIDDEN-...-OUT", o.model);

  FILE *metrics = NULL;
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)o.threads});
  if (!ctx) {
    fprintf(stderr, "ampc train: out of memory\n");
    return 1;
  }
  amp_dataset *train = NULL, *test = NULL;
  amp_loader *loader = NULL;
  double *step_ms = NULL;
  rc = 1;
  if (!load_data(ctx, &o, sizes, nsizes, &train, &test)) {
    fprintf(stderr, "ampc train: %s\n", amp_ctx_error(ctx));
    goto done;
  }
  if (amp_dataset_features(train) != sizes[0] || amp_dataset_classes(train) != sizes[nsizes - 1]) {
    fprintf(stderr,
            "ampc train: --model %s does not fit the data: it has %lld features and %lld "
            "classes\n",
            o.model, (long long)amp_dataset_features(train), (long long)amp_dataset_classes(train));
    goto done;
  }
  amp_module *model = build_mlp(ctx, sizes, nsizes, o.seed);
  amp_optim_params op = amp_optim_defaults(kind);
  if (o.lr >= 0) op.lr = (float)o.lr;
  op.work_dtype = r.dt;
  op.master_weights = o.master_weights;
  amp_optim *opt = amp_optim_create(ctx, model, &op);
  amp_scaler_params sp = amp_scaler_defaults(r.scale_mode);
  sp.init_scale = r.scale;
  sp.growth_interval = o.growth_interval;
  amp_scaler *scaler = amp_scaler_create(ctx, &sp);
  amp_loader_params lp = {o.batch, 1, o.seed, 0, r.dt, 1};
  loader = amp_loader_create(ctx, train, &lp);
  if (!model || !opt || !scaler || !loader) {
    fprintf(stderr, "ampc train: %s\n", amp_ctx_error(ctx));
    goto done;
  }
  if (o.metrics && !(metrics = fopen(o.metrics, "w"))) {
    fprintf(stderr, "ampc train: --metrics: cannot write '%s': %s\n", o.metrics, strerror(errno));
    goto done;
  }
  int64_t per_epoch = amp_loader_batches_per_epoch(loader);
  int64_t total_steps = per_epoch * o.epochs;
  if (o.max_steps && o.max_steps < total_steps) total_steps = o.max_steps;
  amp_lr_schedule sched;
  if (!parse_schedule(o.schedule, op.lr, total_steps, &sched)) {
    rc = 2;
    goto done;
  }
  step_ms = malloc(sizeof(double) * (size_t)total_steps);
  if (!step_ms) goto done;
  int tty = isatty(2);
  int64_t step = 0, skipped = 0, bad_losses = 0, ran = 0;
  const int64_t bad_loss_limit = 5;
  if (o.resume) {
    /* Everything a step depends on comes back: masters (and working
       copies), moments and step count, the scaler, the loader's position,
       and this loop's counters. */
    amp_safetensors *f = NULL;
    if (amp_checkpoint_load(ctx, o.resume, model, opt, scaler, loader) != AMP_OK ||
        amp_safetensors_read(ctx, o.resume, &f) != AMP_OK) {
      fprintf(stderr, "ampc train: --resume: %s\n", amp_ctx_error(ctx));
      goto done;
    }
    int ok = meta_count(f, "train.step", &step) && meta_count(f, "train.skipped", &skipped) &&
             meta_count(f, "train.bad_losses", &bad_losses);
    amp_safetensors_free(f);
    if (!ok) {
      fprintf(stderr,
              "ampc train: --resume: %s has no train.step/train.skipped counters (not "
              "written by ampc train)\n",
              o.resume);
      goto done;
    }
  }
  run_meta meta;
  float loss_v = NAN;
  double t_train = 0, activation_peak = 0;
  amp_arena_reset_peak(ctx, AMP_ARENA_STEP);
  double acc = -1;
  amp_loader_state start = amp_loader_get_state(loader);
  for (long epoch = (long)start.epoch; epoch < o.epochs && step < total_steps; epoch++) {
    int64_t in_epoch = epoch == start.epoch ? start.next / o.batch : 0;
    double t_epoch = ampb_now();
    for (;;) {
      if (step >= total_steps) break;
      double t0 = ampb_now();
      amp_ctx_step_reset(ctx);
      amp_tensor *x, *y;
      int got = amp_loader_next(loader, &x, &y);
      if (got < 0) break;
      if (got == 0) break; /* end of the epoch */
      amp_optim_set_lr(opt, amp_lr_at(&sched, step));
      if (r.dt != AMP_F32) amp_autocast_begin(ctx, r.dt);
      amp_tensor *logits = amp_module_forward(ctx, model, x);
      amp_tensor *loss = amp_cross_entropy(ctx, logits, y);
      if (r.dt != AMP_F32) amp_autocast_end(ctx);
      if (o.loss_mul != 1) loss = amp_mul_scalar(ctx, loss, (float)o.loss_mul);
      if (!loss) break;
      loss_v = *(float *)loss->data; /* cross-entropy is F32 under autocast */
      if (loss->dtype != AMP_F32) amp_convert(&loss_v, AMP_F32, loss->data, loss->dtype, 1);
      if (!isfinite(loss_v)) {
        if (++bad_losses >= bad_loss_limit) {
          fprintf(stderr,
                  "%sampc train: stopping: the loss itself has been %s for %lld consecutive "
                  "steps (step %lld, loss scale %g). This is not a gradient overflow that loss "
                  "scaling can fix: lower the learning rate or check the data for NaN.\n",
                  tty && !o.quiet ? "\n" : "", isnan(loss_v) ? "NaN" : "infinite",
                  (long long)bad_losses, (long long)step, (double)amp_scaler_get_scale(scaler));
          goto done;
        }
      } else {
        bad_losses = 0;
      }
      if (amp_backward(ctx, amp_scaler_scale(scaler, loss)) != AMP_OK) break;
      float gnorm = NAN;
      if (o.clip > 0 || metrics) {
        if (amp_scaler_unscale(scaler, opt) != AMP_OK) break;
        amp_optim_clip_grad_norm(opt, (float)o.clip, &gnorm);
      }
      float scale_used = amp_scaler_get_scale(scaler);
      int stepped = amp_scaler_step(scaler, opt);
      if (stepped < 0) break;
      amp_scaler_update(scaler);
      amp_optim_zero_grad(opt);
      skipped += !stepped;
      double dt_s = ampb_now() - t0;
      step_ms[ran++] = 1e3 * dt_s;
      t_train += dt_s;
      if (metrics)
        fprintf(metrics,
                "{\"step\":%lld,\"epoch\":%ld,\"loss\":%.9g,\"scale\":%g,\"skipped\":%d,"
                "\"lr\":%.9g,\"grad_norm\":%.9g}\n",
                (long long)step, epoch, (double)loss_v, (double)scale_used, !stepped,
                (double)amp_optim_lr(opt), isfinite(gnorm) ? (double)gnorm : -1.0);
      step++;
      in_epoch++;
      if (o.save && o.save_every && step % o.save_every == 0) {
        make_meta(&o, step, skipped, bad_losses, &meta);
        if (amp_checkpoint_save(ctx, o.save, model, opt, scaler, loader, meta.kv, meta.n) != AMP_OK)
          break;
      }
      if (tty || in_epoch % 100 == 0)
        progress(&o, tty, epoch, in_epoch, per_epoch, loss_v, amp_scaler_get_scale(scaler), skipped,
                 (double)(in_epoch * o.batch) / (ampb_now() - t_epoch));
    }
    if (amp_ctx_status(ctx) != AMP_OK) break;
    if ((double)amp_arena_peak_bytes(ctx, AMP_ARENA_STEP) > activation_peak)
      activation_peak = (double)amp_arena_peak_bytes(ctx, AMP_ARENA_STEP);
    acc = evaluate(ctx, model, test, r.dt, r.dt != AMP_F32);
    amp_arena_reset_peak(ctx, AMP_ARENA_STEP);
    if (!o.quiet)
      fprintf(stderr,
              "%sepoch %ld/%ld done: loss %.4f, test accuracy %.2f%%, scale %g, %lld skipped\n",
              tty ? "\n" : "", epoch + 1, o.epochs, (double)loss_v, 100 * acc,
              (double)amp_scaler_get_scale(scaler), (long long)skipped);
  }
  if (amp_ctx_status(ctx) != AMP_OK) {
    fprintf(stderr, "ampc train: %s\n", amp_ctx_error(ctx));
    goto done;
  }
  if (acc < 0) acc = evaluate(ctx, model, test, r.dt, r.dt != AMP_F32);
  if (o.save) {
    make_meta(&o, step, skipped, bad_losses, &meta);
    if (amp_checkpoint_save(ctx, o.save, model, opt, scaler, loader, meta.kv, meta.n) != AMP_OK) {
      fprintf(stderr, "ampc train: --save: %s\n", amp_ctx_error(ctx));
      goto done;
    }
  }
  qsort(step_ms, (size_t)ran, sizeof(double), cmp_double);
  double median = ran ? step_ms[ran / 2] : 0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss_mb = (double)ru.ru_maxrss / 1024.0;
  size_t param_bytes =
      (size_t)amp_optim_numel(opt) * (4 + (r.dt == AMP_F32 ? 0 : amp_dtype_size(r.dt)));
  if (o.json) {
    printf("{\"precision\":\"%s\",\"optim\":\"%s\",\"model\":\"%s\",\"seed\":%llu,"
           "\"threads\":%ld,\"epochs\":%ld,\"batch\":%ld,\"test_accuracy\":%.4f,"
           "\"final_loss\":%.6g,\"steps\":%lld,\"skipped_steps\":%lld,\"final_scale\":%g,"
           "\"step_ms_median\":%.4f,\"samples_per_s\":%.1f,\"peak_rss_mb\":%.1f,"
           "\"activation_bytes\":%.0f,\"param_bytes\":%zu,\"optimizer_bytes\":%zu}\n",
           o.precision, o.optim, o.model, o.seed, o.threads, o.epochs, o.batch, 100 * acc,
           (double)loss_v, (long long)step, (long long)skipped,
           (double)amp_scaler_get_scale(scaler), median,
           t_train > 0 ? (double)(ran * o.batch) / t_train : 0.0, rss_mb, activation_peak,
           param_bytes, amp_optim_bytes(opt));
  } else {
    printf("%s: test accuracy %.2f%%, final loss %.4f, %lld steps (%lld skipped), final scale "
           "%g, %.3f ms/step, %.0f samples/s, activations %.2f MiB, peak RSS %.0f MiB\n",
           o.precision, 100 * acc, (double)loss_v, (long long)step, (long long)skipped,
           (double)amp_scaler_get_scale(scaler), median,
           t_train > 0 ? (double)(ran * o.batch) / t_train : 0.0, activation_peak / 1048576.0,
           rss_mb);
  }
  rc = 0;
done:
  if (metrics && fclose(metrics) != 0 && rc == 0) {
    fprintf(stderr, "ampc train: --metrics: error writing '%s'\n", o.metrics);
    rc = 1;
  }
  free(step_ms);
  amp_loader_free(loader);
  amp_dataset_free(train);
  amp_dataset_free(test);
  amp_ctx_free(ctx);
  return rc;
}

/* Shared by eval and export: reads --checkpoint FILE (+ the other flags),
 * rebuilds the model the checkpoint's configuration describes and loads its
 * weights. Returns 0, or the exit status. */
typedef struct loaded {
  amp_ctx *ctx;
  amp_module *model;
  train_opts o;
  long sizes[33];
  int nsizes;
} loaded;

static int load_checkpoint_model(const char *cmd, const char *path, loaded *L) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(L->ctx, path, &f) != AMP_OK) {
    fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(L->ctx));
    return 1;
  }
  int rc = apply_checkpoint_config(f, &L->o);
  amp_safetensors_free(f);
  if (rc) return rc;
  L->nsizes = parse_model(L->o.model, L->sizes, 33);
  if (!L->nsizes) {
    fprintf(stderr, "ampc %s: %s: unknown model '%s'\n", cmd, path, L->o.model);
    return 1;
  }
  L->model = build_mlp(L->ctx, L->sizes, L->nsizes, 0);
  if (!L->model || amp_checkpoint_load(L->ctx, path, L->model, NULL, NULL, NULL) != AMP_OK) {
    fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(L->ctx));
    return 1;
  }
  return 0;
}

int ampc_eval_main(int argc, char **argv) {
  loaded L;
  memset(&L, 0, sizeof L);
  default_opts(&L.o);
  const char *path = NULL, *data = NULL;
  long threads = 2;
  int json = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      json = 1;
      continue;
    }
    if (i + 1 >= argc) return usage_error("%s needs a value", argv[i]);
    if (strcmp(argv[i], "--checkpoint") == 0)
      path = argv[++i];
    else if (strcmp(argv[i], "--data") == 0)
      data = argv[++i];
    else if (strcmp(argv[i], "--threads") == 0) {
      if (!parse_long("--threads", argv[++i], 1, 1024, &threads)) return 2;
    } else
      return usage_error("unknown option '%s'", argv[i]);
  }
  if (!path) return usage_error("%s", "eval needs --checkpoint FILE");
  L.ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)threads});
  int rc = load_checkpoint_model("eval", path, &L);
  amp_dataset *train = NULL, *test = NULL;
  if (!rc) {
    if (data) L.o.data = data;
    recipe r;
    rc = parse_recipe(&L.o, &r);
    if (!rc && !load_data(L.ctx, &L.o, L.sizes, L.nsizes, &train, &test)) {
      fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(L.ctx));
      rc = 1;
    }
    if (!rc && (amp_dataset_features(test) != L.sizes[0] ||
                amp_dataset_classes(test) != L.sizes[L.nsizes - 1])) {
      fprintf(stderr, "ampc eval: the checkpoint's model %s does not fit the data\n", L.o.model);
      rc = 1;
    }
    if (!rc) {
      double acc = evaluate(L.ctx, L.model, test, r.dt, r.dt != AMP_F32);
      if (acc < 0) {
        fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(L.ctx));
        rc = 1;
      } else if (json) {
        printf("{\"checkpoint\":\"%s\",\"model\":\"%s\",\"precision\":\"%s\",\"test_samples\":%lld,"
               "\"test_accuracy\":%.4f}\n",
               path, L.o.model, L.o.precision, (long long)amp_dataset_size(test), 100 * acc);
      } else {
        printf("%s: %s in %s, test accuracy %.2f%% on %lld samples\n", path, L.o.model,
               L.o.precision, 100 * acc, (long long)amp_dataset_size(test));
      }
    }
  }
  amp_dataset_free(train);
  amp_dataset_free(test);
  amp_ctx_free(L.ctx);
  return rc;
}

int ampc_export_main(int argc, char **argv) {
  loaded L;
  memset(&L, 0, sizeof L);
  default_opts(&L.o);
  const char *path = NULL, *out = NULL, *dts = "f16";
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "--", 2) != 0) {
      if (out) return usage_error("unexpected argument '%s'", argv[i]);
      out = argv[i];
      continue;
    }
    if (i + 1 >= argc) return usage_error("%s needs a value", argv[i]);
    if (strcmp(argv[i], "--checkpoint") == 0)
      path = argv[++i];
    else if (strcmp(argv[i], "--dtype") == 0)
      dts = argv[++i];
    else if (strcmp(argv[i], "--out") == 0)
      out = argv[++i];
    else
      return usage_error("unknown option '%s'", argv[i]);
  }
  amp_dtype dt;
  if (amp_dtype_parse(dts, &dt) != AMP_OK || (dt != AMP_F16 && dt != AMP_BF16))
    return usage_error("--dtype: '%s' is not f16 or bf16", dts);
  if (!path || !out) return usage_error("%s", "export needs --checkpoint IN and an output FILE");
  L.ctx = amp_ctx_create(NULL);
  int rc = load_checkpoint_model("export", path, &L);
  if (!rc && amp_checkpoint_export(L.ctx, out, L.model, dt) != AMP_OK) {
    fprintf(stderr, "ampc export: %s\n", amp_ctx_error(L.ctx));
    rc = 1;
  }
  if (!rc)
    printf("wrote %s: %lld parameters in %s\n", out, (long long)amp_module_param_numel(L.model),
           amp_dtype_name(dt));
  amp_ctx_free(L.ctx);
  return rc;
}
