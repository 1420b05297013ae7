/* Options of `ampc train` (and the checkpoint configuration that eval and
 * export read back): parsing, the run's checkpoint metadata, the data. */
#ifndef AMPC_TRAIN_OPTS_H
#define AMPC_TRAIN_OPTS_H

#include "ampc.h"
#include "opts.h"
#include "recipe.h"

#include <stdint.h>

typedef struct train_opts {
  const char *cmd;   /* the command whose messages these are ("train", "eval") */
  const char *data;  /* a directory, or "synthetic" */
  const char *model; /* mlp:784-1024-10 */
  const char *precision;
  const char *optim;
  const char *loss_scale; /* dynamic | static:N | none | NULL (recipe default) */
  const char *metrics;
  const char *schedule;    /* constant | step:N:G | cosine:W */
  const char *save;        /* checkpoint to write (at the end, and every save_every steps) */
  const char *resume;      /* checkpoint to continue from */
  const char *init;        /* weights to start from (--init) */
  const char *fp8_scaling; /* --fp8-scaling delayed[:H]|current|block (NULL: delayed) */
  const char *qat;         /* NULL, or "int8": quantization-aware training */
  const char *rounding;    /* --rounding nearest|stochastic (NULL: nearest) */
  double lr;               /* < 0: the optimizer's default */
  double clip;             /* <= 0: none */
  double loss_mul;         /* multiplies the loss (tests of underflow) */
  long batch, epochs, threads, max_steps, synthetic_n, growth_interval, save_every;
  long log_every;         /* 0: a progress line per epoch when stderr is not a terminal */
  long steps, eval_every; /* GPT/CNN runs (train_model.c): 0 = the model's default */
  unsigned long long seed;
  int master_weights;
  int json;
  int quiet;
  int family_ok;       /* train_opts_from_checkpoint() takes a GPT/CNN checkpoint (eval of one) */
  char owned[20][256]; /* string values taken from a checkpoint */
  int nowned;
} train_opts;

/* Prints "ampc train: " + fmt (with arg) + a pointer to `ampc help`;
 * returns 2 (bad usage). */
int ampc_usage_error(const char *fmt, const char *arg);

/* The defaults of every option. */
void train_opts_default(train_opts *o);

/* Options for `ampc train`: defaults, then (with --resume) the checkpoint's
 * configuration, then the command line. Returns 0, AMPC_OPTS_HELP (usage
 * printed: exit 0), or the exit status. */
int train_opts_parse(int argc, char **argv, train_opts *o);

/* Replays a checkpoint's "config.*" metadata as options over *o. Returns 0,
 * or the exit status (a message printed). */
int train_opts_from_checkpoint(const amp_safetensors *f, train_opts *o);

/* The recipe of the options; prints a message and returns 2 when they do not
 * name one. */
int train_opts_recipe(const train_opts *o, ampc_recipe *r);

/* The learning-rate schedule of --schedule; prints a message and returns 0
 * when it is not one. */
int train_opts_schedule(const char *s, float base, int64_t total, amp_lr_schedule *out);

/* The run's configuration as checkpoint metadata: "config.<flag>" = the
 * flag's value, so that a resume can replay it; plus the loop's own counters
 * ("train.*"). */
typedef struct run_meta {
  char buf[20][2][64];
  const char *kv[48];
  int n;
} run_meta;

void train_opts_meta(const train_opts *o, int64_t step, int64_t skipped, int64_t bad, run_meta *m);

/* Reads an integer "train.*" counter in [0, 2^53] (so that a run's
 * increments cannot overflow) from checkpoint metadata;
 * returns 1, or 0 when it is missing or not one. */
int train_meta_count(const amp_safetensors *f, const char *key, int64_t *out);

/* Loads --data (MNIST from a directory, or synthetic data shaped by the
 * model's sizes); returns 1, or 0 with the error recorded on ctx. */
int train_load_data(amp_ctx *ctx, const train_opts *o, const long *sizes, int nsizes,
                    amp_dataset **train, amp_dataset **test);

/* train_load_data(), then the check that the data fit the MLP of sizes
 * (features in, classes out). Returns 0, or 1 after "ampc <o->cmd>: ...". */
int train_open_data(amp_ctx *ctx, const train_opts *o, const long *sizes, int nsizes,
                    amp_dataset **train, amp_dataset **test);

/* The option-table check of --loss-scale (opts.h): 1 for dynamic, static:N
 * or none, else 0 with the reason in msg. */
int train_opts_check_loss_scale(const char *v, char *msg, size_t cap);

/* The validator of --model: an mlp:, gpt: or cnn: spec (option tables). */
int train_opts_check_model(const char *v, char *msg, size_t cap);

/* A checkpoint's model, as eval and export rebuild it. */
typedef struct loaded {
  amp_ctx *ctx;
  amp_module *model;
  train_opts o; /* the checkpoint's configuration over the defaults */
  long sizes[33];
  int nsizes;
  int has_config; /* the file says its model (config.model: an ampc checkpoint) */
  int qat;        /* the file holds QAT observers: the model has QAT Linear layers */
} loaded;

/* Reads the weights file `path` (see ampc_load_weights()): an ampc
 * checkpoint's configuration goes over L->o; the model is `model` when not
 * NULL, else the file's config.model (a message naming what is missing when
 * it has none); builds it in L (L->ctx and L->o set by the caller) and loads
 * the weights. Messages start with "ampc <cmd>: ". Returns 0, or the exit
 * status. */
int ampc_load_model(const char *cmd, const char *path, const char *model, loaded *L);

/* Raises *m to what the tape now holds for backward (amp_tape_saved()),
 * field by field; called once per step after backward, before the reset. */
static inline void ampc_saved_max(amp_ctx *ctx, amp_tape_saved_stats *m) {
  amp_tape_saved_stats s;
  if (amp_tape_saved(ctx, &s) != AMP_OK) return;
  if (s.total_bytes > m->total_bytes) m->total_bytes = s.total_bytes;
  if (s.activation_bytes > m->activation_bytes) m->activation_bytes = s.activation_bytes;
  if (s.param_bytes > m->param_bytes) m->param_bytes = s.param_bytes;
}

/* The keys every `ampc train --json` summary starts with (the MLP loop in
 * train.c and the GPT/CNN loop in train_model.c): precision, optim, model,
 * seed, threads, epochs and batch. `j` is a cJSON object. */
struct cJSON;
void train_json_head(struct cJSON *j, const train_opts *o, long long epochs);

/* The keys both summaries end with: peak RSS, the step arena's peak
 * (activation_bytes), what backward keeps (saved_for_backward_bytes,
 * saved_param_bytes), parameter, master, working-copy and optimizer bytes,
 * and the data, checkpoint and metrics paths. */
void train_json_memory(struct cJSON *j, const train_opts *o, double rss_mb, double activation_peak,
                       const amp_tape_saved_stats *saved, size_t param_bytes, const amp_optim *opt);

#endif
