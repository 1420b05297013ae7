/* Options of `ampc train`: defaults, the command line, the configuration a
 * checkpoint carries, and the metadata a run writes into its checkpoints. */
#include "train_opts.h"
#include "json_out.h"

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

void train_opts_default(train_opts *o) {
  memset(o, 0, sizeof *o);
  o->cmd = "train";
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

/* Validators of the string options (opts.h). */
int train_opts_check_model(const char *v, char *msg, size_t cap) {
  long sizes[33];
  if (ampc_parse_model(v, sizes, 33)) return 1;
  ampc_model_spec spec;
  char why[200];
  int family = ampc_parse_model_spec(v, &spec, why, sizeof why);
  if (family == 1) return 1;
  if (family < 0)
    snprintf(msg, cap, "%s", why);
  else
    snprintf(msg, cap,
             "is not mlp:IN-HIDDEN-...-OUT (2 to 33 sizes in [1, 1048576]), "
             "gpt:layers=L,dim=D,heads=H,ctx=T[,vocab=V] or cnn:fashion");
  return 0;
}

int train_opts_check_loss_scale(const char *v, char *msg, size_t cap) {
  ampc_recipe r;
  char m[256];
  if (ampc_recipe_parse("fp16", v, 1, &r, m, sizeof m) == 0) return 1;
  snprintf(msg, cap, "is not dynamic, static:N or none (N in [1e-30, 3e38])");
  return 0;
}

static int check_fp8_scaling(const char *v, char *msg, size_t cap) {
  ampc_recipe r;
  char m[256];
  ampc_recipe_parse("fp8", NULL, 1, &r, m, sizeof m);
  if (ampc_recipe_fp8(v, NULL, 0, &r, m, sizeof m) == 0) return 1;
  snprintf(msg, cap, "is not delayed, delayed:H (H in 1..65536), current or block");
  return 0;
}

static int parse_schedule(const char *s, float base, int64_t total, amp_lr_schedule *out);

static int check_schedule(const char *v, char *msg, size_t cap) {
  amp_lr_schedule sched;
  if (parse_schedule(v, 1, 1, &sched)) return 1;
  snprintf(msg, cap,
           "is not constant, step:N:GAMMA or cosine:WARMUP (N in [1, 2^40], GAMMA in (0, 1], "
           "WARMUP in [0, 2^40])");
  return 0;
}

#define TOPT(name, kind, member, arg, lo, hi, help, check)                                         \
  { name, 0, kind, offsetof(train_opts, member), arg, lo, hi, help, check }

static const ampc_opt TRAIN_OPTS[] = {
    TOPT("data", AMPC_OPT_STR, data, "DIR|synthetic|fortunes|text:PATH|fashion-mnist", 0, 0,
         "MNIST directory (IDX files), or synthetic data shaped by the model (default "
         "data/mnist); a GPT reads byte-level text (fortunes: Debian's fortune files, the "
         "default), the CNN Fashion-MNIST",
         NULL),
    TOPT("model", AMPC_OPT_STR, model, "mlp:IN-H-...-OUT|gpt:...|cnn:fashion", 0, 0,
         "the MLP's layer sizes (default mlp:784-1024-10); gpt:layers=L,dim=D,heads=H,ctx=T"
         "[,vocab=V] (default " AMPC_GPT_DEFAULT "); cnn:fashion, the reference CNN",
         train_opts_check_model),
    TOPT("steps", AMPC_OPT_LONG, steps, "N", 1, 1099511627776.0,
         "GPT/CNN: optimizer steps (default: 2000 for a GPT, --epochs for a CNN)", NULL),
    TOPT("eval-every", AMPC_OPT_LONG, eval_every, "N", 1, 1099511627776.0,
         "GPT/CNN: evaluate every N steps (val loss in nats per token, or test accuracy)", NULL),
    TOPT("init", AMPC_OPT_STR, init, "FILE", 0, 0,
         "start from these weights: an ampc checkpoint or export, or a safetensors state dict "
         "(PyTorch names 0.weight, 0.bias, ...)",
         NULL),
    TOPT("precision", AMPC_OPT_ENUM, precision, "fp32|fp16|bf16|fp8", 0, 0,
         "compute dtype of the mixed-precision recipe (default fp16); fp8: linear layers' GEMMs "
         "on FP8 operands (exactly emulated, F32 accumulation), the rest in bf16",
         NULL),
    TOPT("fp8-scaling", AMPC_OPT_STR, fp8_scaling, "delayed[:H]|current|block", 0, 0,
         "with --precision fp8: delayed (Transformer Engine, E4M3 forward, E5M2 gradients, amax "
         "history of H steps, default 16), current (this step's amax) or block (DeepSeek-V3: "
         "E4M3, 1x128 and 128x128 tiles, power-of-two scales); default delayed",
         check_fp8_scaling),
    TOPT("rounding", AMPC_OPT_ENUM, rounding, "nearest|stochastic", 0, 0,
         "rounding of the optimizer's 16-bit working copy and of E5M2 gradients (seeded by "
         "--seed; default nearest)",
         NULL),
    TOPT("qat", AMPC_OPT_ENUM, qat, "int8", 0, 0,
         "MLP: quantization-aware training for INT8 inference (fake-quantized weights per "
         "output channel and activations per tensor, moving-average observers, FP32 masters; "
         "under any --precision); ampc export --int8 writes the INT8 model",
         NULL),
    TOPT("optim", AMPC_OPT_ENUM, optim, "adam|adamw|sgd", 0, 0, "optimizer (default adam)", NULL),
    TOPT("lr", AMPC_OPT_DOUBLE, lr, "X", 0, 1e3, "learning rate (default: the optimizer's)", NULL),
    TOPT("batch", AMPC_OPT_LONG, batch, "N", 1, 1 << 20, "batch size (default 128)", NULL),
    TOPT("epochs", AMPC_OPT_LONG, epochs, "N", 1, 100000,
         "epochs (default 5); GPT/CNN: passes over the training data, instead of --steps", NULL),
    TOPT("max-steps", AMPC_OPT_LONG, max_steps, "N", 1, 1099511627776.0,
         "stop after N steps in all", NULL),
    TOPT("seed", AMPC_OPT_ULL, seed, "N", 0, 9007199254740992.0,
         "seed of the initialisation and the shuffle (default 0)", NULL),
    TOPT("threads", AMPC_OPT_LONG, threads, "N", 1, 1024, "OpenMP threads (default 2)", NULL),
    TOPT("loss-scale", AMPC_OPT_STR, loss_scale, "dynamic|static:N|none", 0, 0,
         "loss scaling (default: dynamic for fp16, none otherwise)", train_opts_check_loss_scale),
    TOPT("growth-interval", AMPC_OPT_LONG, growth_interval, "N", 1, 1099511627776.0,
         "steps without overflow before the dynamic scale doubles (default 2000)", NULL),
    TOPT("master-weights", AMPC_OPT_ONOFF, master_weights, "", 0, 0,
         "keep FP32 master weights (default on; off updates the 16-bit weights directly)", NULL),
    TOPT("schedule", AMPC_OPT_STR, schedule, "constant|step:N:GAMMA|cosine:WARMUP", 0, 0,
         "learning-rate schedule (default constant); cosine warms up linearly over WARMUP "
         "steps, then decays to 0 at the run's last step (--epochs or --steps, capped by "
         "--max-steps)",
         check_schedule),
    TOPT("clip", AMPC_OPT_DOUBLE, clip, "NORM", 0, 1e30,
         "clip the gradient norm (unscaled) to NORM; 0: no clipping", NULL),
    TOPT("loss-mul", AMPC_OPT_DOUBLE, loss_mul, "X", 1e-30, 1e30,
         "multiply the loss by X (to provoke overflow or underflow in tests)", NULL),
    TOPT("synthetic-n", AMPC_OPT_LONG, synthetic_n, "N", 2, 1 << 24,
         "training samples of --data synthetic (default 12000; test: N/6)", NULL),
    TOPT("metrics", AMPC_OPT_STR, metrics, "FILE.jsonl", 0, 0,
         "write one JSON object per step (step, epoch, loss, scale, skipped, lr, grad_norm) and "
         "one per epoch (val_accuracy); GPT/CNN: val_loss or val_accuracy on evaluation steps",
         NULL),
    TOPT("save", AMPC_OPT_STR, save, "FILE", 0, 0, "write a checkpoint at the end", NULL),
    TOPT("save-every", AMPC_OPT_LONG, save_every, "N", 1, 1099511627776.0,
         "also write --save every N steps", NULL),
    TOPT("resume", AMPC_OPT_STR, resume, "FILE", 0, 0,
         "continue the run of a checkpoint (its configuration is restored)", NULL),
    TOPT("log-every", AMPC_OPT_LONG, log_every, "N", 1, 1099511627776.0,
         "when stderr is not a terminal: a progress line every N steps (default: one per "
         "epoch; GPT/CNN: none)",
         NULL),
    TOPT("json", AMPC_OPT_FLAG, json, "", 0, 0, "print the summary as one JSON object", NULL),
    TOPT("quiet", AMPC_OPT_FLAG, quiet, "", 0, 0,
         "no progress on stderr (GPT/CNN: no evaluation lines)", NULL),
};

const ampc_cmd ampc_cmd_train = {
    "train",
    "[options]",
    "Trains a model with a mixed-precision recipe, step for step as a PyTorch AMP loop\n"
    "(autocast, GradScaler, optimizer). Default: the reference MLP on data/mnist in fp16\n"
    "mixed precision with Adam, 5 epochs. Prints a summary line (or JSON with --json)\n"
    "on stdout and progress on stderr (a bar redrawn in place on a terminal).",
    TRAIN_OPTS,
    (int)(sizeof TRAIN_OPTS / sizeof TRAIN_OPTS[0]),
    0,
    "Gradient accumulation and data parallel training (also as --flag=VALUE):\n"
    "  --accum K                K micro-batches of --batch B per optimizer step (global\n"
    "                           batch K*B; 1..65536): each loss times 1/K, the FP32\n"
    "                           gradients summed in order, one inf check per step\n"
    "  --global-batch G         with mpirun: B = G/(K*N) (1..16777216)\n"
    "  --grad-comm f32|f16|bf16 with mpirun: exchange gradients in 16 bits (scaled by a\n"
    "                           power of two, summed in F32; default f32)\n"
    "  --mpi-timeout SECONDS    with mpirun: how long a rank waits for the others before\n"
    "                           it stops the job (0.1..1e7; default 120)\n"
    "  --debug-nonfinite-grad STEP:MICRO  make micro-batch (rank) MICRO of step STEP\n"
    "                           overflow, for tests of the skip agreement\n"
    "  --debug-exit STEP:RANK   make rank RANK exit at step STEP, and\n"
    "  --debug-hang STEP:RANK   make it hang there: tests of the bounded waits\n"
    "`mpirun -np N ampc train` trains over N ranks, rank r taking micro-batch r; the\n"
    "gradients are summed in rank order, so the bits equal `ampc train --accum N`.\n"
    "\n"
    "Threads wait between parallel regions as OpenMP does by default (a short spin,\n"
    "then sleep), unless other processes keep the CPUs busy at start: then train runs\n"
    "with OMP_WAIT_POLICY=passive (the JSON's omp_wait_policy says which). A policy\n"
    "you set (OMP_WAIT_POLICY, GOMP_SPINCOUNT) is kept.\n"
    "\n"
    "Every value is checked: whole numbers are decimal digits within the range shown.\n"
    "Exit status: 0 done, 1 failed, 2 bad usage.",
    "train a model with a mixed-precision recipe"};

/* Applies command-line options over *o; returns 0, or the exit status. */
static int apply_opts(int argc, char **argv, train_opts *o) {
  ampc_cmd cmd = ampc_cmd_train; /* messages name the command that runs */
  cmd.name = o->cmd;
  return ampc_opts_parse(&cmd, argc, argv, o, NULL, NULL);
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
  if (o->fp8_scaling) meta_add(m, "config.fp8-scaling", "%s", o->fp8_scaling);
  if (o->rounding) meta_add(m, "config.rounding", "%s", o->rounding);
  meta_add(m, "config.optim", "%s", o->optim);
  if (o->loss_scale) meta_add(m, "config.loss-scale", "%s", o->loss_scale);
  if (o->qat) meta_add(m, "config.qat", "%s", o->qat);
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
  if (o->steps) meta_add(m, "config.steps", "%ld", o->steps); /* GPT/CNN runs */
  if (o->eval_every) meta_add(m, "config.eval-every", "%ld", o->eval_every);
  meta_add(m, "train.step", "%lld", (long long)step);
  meta_add(m, "train.skipped", "%lld", (long long)skipped);
  meta_add(m, "train.bad_losses", "%lld", (long long)bad);
}

int train_opts_recipe(const train_opts *o, ampc_recipe *r) {
  char msg[512];
  int rc = ampc_recipe_parse(o->precision, o->loss_scale, o->master_weights, r, msg, sizeof msg);
  if (!rc) rc = ampc_recipe_fp8(o->fp8_scaling, o->rounding, o->seed, r, msg, sizeof msg);
  if (!rc && o->qat && r->fp8) {
    snprintf(
        msg, sizeof msg,
        "--qat int8 and --precision fp8 do not combine (QAT trains F32/F16/BF16 Linear layers)");
    rc = 2;
  }
  if (!rc && o->qat) {
    long sizes[33];
    r->qat = 1;
    if (!ampc_parse_model(o->model, sizes, 33)) {
      snprintf(msg, sizeof msg,
               "--qat %s trains mlp: models (quantization-aware Linear layers); this run has "
               "--model %.80s",
               o->qat, o->model);
      rc = 2;
    }
  }
  if (rc == 1) fprintf(stderr, "ampc %s: %s\n", o->cmd, msg);
  if (rc == 2)
    fprintf(stderr, "ampc %s: %s\n(run `ampc help %s` for the options)\n", o->cmd, msg, o->cmd);
  return rc ? 2 : 0;
}

/* Parses --schedule; returns 1, or 0 when it is not a schedule. */
static int parse_schedule(const char *s, float base, int64_t total, amp_lr_schedule *out) {
  memset(out, 0, sizeof *out);
  out->base = base;
  out->total = total;
  const double big = 1099511627776.0; /* 2^40 */
  long long a;
  double g;
  if (strcmp(s, "constant") == 0) {
    out->kind = AMP_LR_CONSTANT;
    return 1;
  }
  if (strncmp(s, "step:", 5) == 0) {
    const char *colon = strchr(s + 5, ':');
    char num[32];
    if (!colon || (size_t)(colon - s - 5) >= sizeof num) return 0;
    snprintf(num, sizeof num, "%.*s", (int)(colon - s - 5), s + 5);
    if (!ampc_opts_whole(num, 1, big, &a) || !ampc_opts_real(colon + 1, 0, 1, &g) || g <= 0)
      return 0;
    out->kind = AMP_LR_STEP;
    out->step_size = a;
    out->gamma = (float)g;
    return 1;
  }
  if (strncmp(s, "cosine:", 7) == 0 && ampc_opts_whole(s + 7, 0, big, &a)) {
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
    CONFIG_KEY("fp8-scaling", fp8_scaling, OPT_STR, 1),
    CONFIG_KEY("rounding", rounding, OPT_STR, 1),
    CONFIG_KEY("optim", optim, OPT_STR, 1),
    CONFIG_KEY("loss-scale", loss_scale, OPT_STR, 1),
    CONFIG_KEY("qat", qat, OPT_STR, 1),
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
    CONFIG_KEY("steps", steps, OPT_LONG, 0),
    CONFIG_KEY("eval-every", eval_every, OPT_LONG, 0),
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
  if (strcmp(flag, "model") == 0 && (strncmp(v, "gpt", 3) == 0 || strncmp(v, "cnn:", 4) == 0)) {
    ampc_model_spec spec;
    return ampc_parse_model_spec(v, &spec, msg, sizeof msg) == 1;
  }
  if (strcmp(flag, "model") == 0) return ampc_parse_model(v, sizes, 33) != 0;
  if (strcmp(flag, "precision") == 0)
    return strcmp(v, "fp32") == 0 || strcmp(v, "fp16") == 0 || strcmp(v, "bf16") == 0 ||
           strcmp(v, "fp8") == 0;
  if (strcmp(flag, "fp8-scaling") == 0) return check_fp8_scaling(v, msg, sizeof msg);
  if (strcmp(flag, "rounding") == 0)
    return strcmp(v, "nearest") == 0 || strcmp(v, "stochastic") == 0;
  if (strcmp(flag, "optim") == 0)
    return strcmp(v, "adam") == 0 || strcmp(v, "adamw") == 0 || strcmp(v, "sgd") == 0;
  if (strcmp(flag, "loss-scale") == 0)
    return ampc_recipe_parse("fp16", v, 1, &r, msg, sizeof msg) == 0;
  if (strcmp(flag, "schedule") == 0) return parse_schedule(v, 1, 1, &sched);
  if (strcmp(flag, "qat") == 0) return strcmp(v, "int8") == 0;
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
    if (strcmp(key, "config.model") == 0 && o->cmd && strcmp(o->cmd, "train") != 0 &&
        !o->family_ok && (strncmp(value, "gpt", 3) == 0 || strncmp(value, "cnn:", 4) == 0)) {
      fprintf(stderr,
              "ampc %s: a checkpoint of a %.80s model: %s handles mlp: models (use `ampc "
              "eval` to score it, `ampc sample` for a GPT, `ampc train --resume` to continue its "
              "run, or --init to start from its weights)\n",
              o->cmd, value, o->cmd);
      return 1;
    }
    char *copy = strcpy(o->owned[o->nowned++], value); /* outlives the file */
    char *pair[2] = {flag, copy};
    if (apply_opts(2, pair, o) != 0 || (ck->type == OPT_STR && !valid_string(ck->flag, copy))) {
      fprintf(stderr, "ampc %s: the checkpoint's configuration %s = '%.80s' is not valid\n",
              o->cmd ? o->cmd : "train", key, value);
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
  if (end == v || *end || errno || x < 0 || x > (1LL << 53)) return 0; /* no overflow later */
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

int train_open_data(amp_ctx *ctx, const train_opts *o, const long *sizes, int nsizes,
                    amp_dataset **train, amp_dataset **test) {
  if (!train_load_data(ctx, o, sizes, nsizes, train, test)) {
    fprintf(stderr, "ampc %s: %s\n", o->cmd, amp_ctx_error(ctx));
    return 1;
  }
  if (amp_dataset_features(*train) != sizes[0] ||
      amp_dataset_classes(*train) != sizes[nsizes - 1]) {
    fprintf(stderr,
            "ampc %s: --model %s does not fit the data: it has %lld features and %lld "
            "classes\n",
            o->cmd, o->model, (long long)amp_dataset_features(*train),
            (long long)amp_dataset_classes(*train));
    return 1;
  }
  return 0;
}

void train_json_head(cJSON *j, const train_opts *o, long long epochs) {
  ampc_json_str(j, "precision", o->precision);
  ampc_json_str(j, "optim", o->optim);
  ampc_json_str(j, "model", o->model);
  ampc_json_int(j, "seed", (long long)o->seed);
  ampc_json_int(j, "threads", o->threads);
  /* How the OpenMP threads waited (main.c chooses when the user did not);
     libgomp lets GOMP_SPINCOUNT decide when both are set. */
  const char *wait = getenv("GOMP_SPINCOUNT") ? "spincount" : getenv("OMP_WAIT_POLICY");
  ampc_json_str(j, "omp_wait_policy", wait ? wait : "default");
  ampc_json_int(j, "epochs", epochs);
  ampc_json_int(j, "batch", o->batch);
}

void train_json_memory(cJSON *j, const train_opts *o, double rss_mb, double activation_peak,
                       const amp_tape_saved_stats *saved, size_t param_bytes,
                       const amp_optim *opt) {
  long long masters = (long long)amp_optim_numel(opt) * 4;
  ampc_json_fmt(j, "peak_rss_mb", "%.1f", rss_mb);
  ampc_json_fmt(j, "activation_bytes", "%.0f", activation_peak);
  ampc_json_int(j, "saved_for_backward_bytes", (long long)saved->activation_bytes);
  ampc_json_int(j, "saved_param_bytes", (long long)saved->param_bytes);
  ampc_json_int(j, "param_bytes", (long long)param_bytes);
  ampc_json_int(j, "master_bytes", masters);
  ampc_json_int(j, "work_copy_bytes", (long long)param_bytes - masters);
  ampc_json_int(j, "optimizer_bytes", (long long)amp_optim_bytes(opt));
  ampc_json_str(j, "data", o->data);
  ampc_json_str(j, "checkpoint", o->save);
  ampc_json_str(j, "metrics", o->metrics);
}
