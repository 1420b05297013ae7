/* `ampc train --model gpt:...|cnn:...`: the GPT on byte-level text and the
 * CNN on Fashion-MNIST, step for step as a PyTorch AMP loop:
 *
 *   with autocast(dtype): loss = cross_entropy(model(x), y) [· --loss-mul]
 *   scaler.scale(loss).backward(); [unscale; clip]; scaler.step(opt); scaler.update()
 *
 * Length: --steps N, or --epochs N (passes over the training data: images
 * for a CNN, the training text's batches for a GPT), capped by --max-steps;
 * the default is 2000 steps for a GPT and --epochs' default for a CNN.
 * --eval-every N (the validation loss in nats per token over the first 20
 * validation batches for a GPT; test accuracy for a CNN), --init FILE
 * (PyTorch weights), --save FILE (a checkpoint that `ampc sample` reads).
 * Output as the MLP loop's: --metrics FILE (a JSON line per step, with
 * val_loss or val_accuracy on evaluation steps), --json (the summary as one
 * JSON object), --quiet (no evaluation or progress lines), --log-every N (a
 * progress line every N steps on stderr), --save-every N. */
#include "bench.h"
#include "cli.h"
#include "json_out.h"
#include "model_data.h"
#include "model_run.h"
#include "train_opts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Everything one GPT/CNN run holds. */
typedef struct mrun {
  ampc_model_run m; /* options, recipe, model, optimizer, scaler, data (model_run.h) */
  amp_lr_schedule sched;
  FILE *metrics;
  double *step_ms; /* each step's time, for the median */
  int64_t nms, cap_ms;
  int64_t steps, step, skipped, nonfinite, bad_run;
  int64_t first;                   /* the step this process started at (> 0 after --resume) */
  int epochs_given;                /* --epochs on the command line */
  double t_train, peak, last_eval; /* last_eval: -1 before the first */
  float loss_v, gnorm;
  int stepped;
  amp_tape_saved_stats saved; /* the most any step kept for backward */
} mrun;

enum { VAL_BATCHES = 20 };

/* Mean cross-entropy under the run's recipe (model_run.c). */
static amp_tensor *loss_of(mrun *R, amp_tensor *x, amp_tensor *y) {
  return ampc_model_run_loss(&R->m, &R->m.r, x, y);
}

/* GPT: the mean loss over the first VAL_BATCHES validation batches (nats
 * per token). CNN: test accuracy in percent. -1 on error. */
static double evaluate(mrun *R) {
  amp_ctx *ctx = R->m.ctx;
  double sum = 0;
  int64_t n = 0, correct = 0;
  amp_module_set_training(R->m.model, 0);
  amp_no_grad_begin(ctx);
  if (R->m.spec.kind == AMPC_MODEL_GPT) {
    amp_text_loader *vl =
        amp_text_loader_create(ctx, R->m.text, AMP_TEXT_VAL, R->m.o.batch, R->m.spec.gpt.ctx, 0, 0);
    int64_t nb = vl ? amp_text_loader_batches_per_epoch(vl) : 0;
    amp_tensor *x, *y;
    for (int64_t b = 0; b < nb && b < VAL_BATCHES; b++) {
      amp_ctx_step_reset(ctx);
      if (amp_text_loader_next(vl, &x, &y) != 1) break;
      amp_tensor *l = loss_of(R, x, y);
      if (!l) break;
      sum += *(float *)l->data;
      n++;
    }
    amp_text_loader_free(vl);
  } else {
    amp_loader_params lp = {1000, 0, 0, 0, R->m.r.dt, 1};
    amp_loader *ld = amp_loader_create(ctx, R->m.test, &lp);
    amp_tensor *x, *y;
    while (ld && (amp_ctx_step_reset(ctx), amp_loader_next(ld, &x, &y) == 1)) {
      amp_tensor *xi = amp_reshape(ctx, x, 4, (int64_t[]){x->shape[0], 1, 28, 28});
      if (R->m.r.dt != AMP_F32) amp_autocast_begin(ctx, R->m.r.dt);
      amp_tensor *lg = amp_module_forward(ctx, R->m.model, xi);
      if (R->m.r.dt != AMP_F32) amp_autocast_end(ctx);
      if (!lg) break;
      float *row = malloc(sizeof(float) * (size_t)lg->numel);
      amp_convert(row, AMP_F32, lg->data, lg->dtype, (size_t)lg->numel);
      for (int64_t i = 0; i < lg->shape[0]; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < lg->shape[1]; j++)
          if (row[i * lg->shape[1] + j] > row[i * lg->shape[1] + best]) best = j;
        correct += best == ((int32_t *)y->data)[i];
      }
      free(row);
      n += lg->shape[0];
    }
    amp_loader_free(ld);
  }
  amp_no_grad_end(ctx);
  amp_module_set_training(R->m.model, 1);
  amp_ctx_step_reset(ctx);
  if (amp_ctx_status(ctx) != AMP_OK || n == 0) return -1;
  return R->m.spec.kind == AMPC_MODEL_GPT ? sum / (double)n : 100.0 * (double)correct / (double)n;
}

/* --resume: the checkpoint's weights, optimizer and scaler state (and, for
 * the CNN, the loader's position) and the run's counters; the GPT's text
 * loader, a function of (seed, batch index), is moved on by the steps
 * already run. Then the run goes on with the same bits as one that did not
 * stop. Returns 0, or the exit status (message printed). */
static int resume(mrun *R) {
  amp_ctx *ctx = R->m.ctx;
  amp_safetensors *f = NULL;
  if (amp_checkpoint_load(ctx, R->m.o.resume, R->m.model, R->m.opt, R->m.scaler, R->m.il) !=
          AMP_OK ||
      amp_safetensors_read(ctx, R->m.o.resume, &f) != AMP_OK) {
    fprintf(stderr, "ampc train: --resume: %s\n", amp_ctx_error(ctx));
    return 1;
  }
  int ok = train_meta_count(f, "train.step", &R->step) &&
           train_meta_count(f, "train.skipped", &R->skipped) &&
           train_meta_count(f, "train.bad_losses", &R->nonfinite);
  amp_safetensors_free(f);
  if (!ok) {
    fprintf(stderr,
            "ampc train: --resume: %s has no valid train.step/train.skipped/"
            "train.bad_losses counters (written by ampc train)\n",
            R->m.o.resume);
    return 1;
  }
  amp_tensor *x, *y;
  for (int64_t i = 0; R->m.tl && i < R->step; i++) {
    amp_ctx_step_reset(ctx);
    if (amp_text_loader_next(R->m.tl, &x, &y) != 1) {
      fprintf(stderr, "ampc train: --resume: %s\n", amp_ctx_error(ctx));
      return 1;
    }
  }
  amp_ctx_step_reset(ctx);
  R->first = R->step;
  return 0;
}

/* The data, model, optimizer, scaler (model_run.c) and schedule; returns 0
 * or the exit status. */
static int setup(mrun *R) {
  const train_opts *o = &R->m.o;
  int rc = ampc_model_run_open(&R->m);
  if (rc) return rc;
  int gpt_default = R->m.spec.kind == AMPC_MODEL_GPT && !R->epochs_given;
  R->steps = o->steps ? o->steps : gpt_default ? 2000 : R->m.per_epoch * o->epochs;
  if (o->max_steps && o->max_steps < R->steps) R->steps = o->max_steps;
  if (o->metrics && !(R->metrics = fopen(o->metrics, "w"))) {
    fprintf(stderr, "ampc train: --metrics: cannot write '%s': %s\n", o->metrics, strerror(errno));
    return 1;
  }
  if (!train_opts_schedule(o->schedule, R->m.lr, R->steps, &R->sched)) return 2;
  return o->resume ? resume(R) : 0;
}

/* One step; returns the loss (NaN after an error, recorded on ctx). */
static float step(mrun *R) {
  amp_ctx *ctx = R->m.ctx;
  amp_ctx_step_reset(ctx);
  amp_arena_reset_peak(ctx, AMP_ARENA_STEP);
  amp_tensor *x, *y;
  if (ampc_model_run_next(&R->m, &x, &y) != 1) return NAN;
  amp_optim_set_lr(R->m.opt, amp_lr_at(&R->sched, R->step));
  float lv;
  int stepped = ampc_model_run_step(&R->m, x, y, R->m.o.clip, R->metrics != NULL, &lv, &R->gnorm);
  if (!isfinite(lv)) R->nonfinite++;
  if (stepped < 0) return NAN;
  R->stepped = stepped;
  R->skipped += !stepped;
  /* The step's own peak (the arena was reset above): what training holds,
     not what an evaluation between steps held. The first step is left out
     when there are more: its arena grows chunk by chunk, and the tails it
     leaves count as used until the reset merges the chunks into one. */
  double peak = (double)amp_arena_peak_bytes(ctx, AMP_ARENA_STEP);
  if ((R->step > R->first || R->steps - R->first == 1) && peak > R->peak) R->peak = peak;
  ampc_saved_max(ctx, &R->saved);
  return lv;
}

/* The metrics line of the step just run (R->step counts it): step (from
 * 0), epoch, loss, scale (the one the step used), skipped, lr, grad_norm (-1
 * when not finite), as the MLP loop writes them, plus val_loss (GPT, nats
 * per token) or val_accuracy (CNN, percent) when the step was followed by an
 * evaluation (`val` >= 0). Returns 0, or -1 on a write error. */
static int metrics_line(mrun *R, float scale_used, double val) {
  cJSON *j = cJSON_CreateObject();
  if (!j) return -1;
  ampc_json_int(j, "step", R->step - 1);
  ampc_json_int(j, "epoch", (R->step - 1) / R->m.per_epoch);
  ampc_json_float(j, "loss", R->loss_v);
  ampc_json_float(j, "scale", scale_used);
  ampc_json_int(j, "skipped", !R->stepped);
  ampc_json_float(j, "lr", amp_optim_lr(R->m.opt));
  ampc_json_float(j, "grad_norm", isfinite(R->gnorm) ? R->gnorm : -1.0f);
  if (val >= 0 && R->m.spec.kind == AMPC_MODEL_GPT) ampc_json_fmt(j, "val_loss", "%.6g", val);
  if (val >= 0 && R->m.spec.kind == AMPC_MODEL_CNN) ampc_json_fmt(j, "val_accuracy", "%.4f", val);
  return ampc_json_line(R->metrics, j);
}

/* An evaluation after the step just run; returns its value, or -1 after
 * printing the error. */
static double report_eval(mrun *R) {
  double v = evaluate(R);
  if (v < 0) {
    fprintf(stderr, "ampc train: evaluation after step %lld: %s\n", (long long)R->step,
            amp_ctx_status(R->m.ctx) != AMP_OK ? amp_ctx_error(R->m.ctx) : "no validation batch");
    return -1;
  }
  R->last_eval = v;
  if (R->m.o.quiet) return v;
  const char *what = R->m.spec.kind == AMPC_MODEL_GPT ? "val loss" : "test accuracy";
  FILE *f = R->m.o.json ? stderr : stdout; /* with --json, stdout holds the JSON alone */
  fprintf(f, "step %lld: train loss %.4f, %s %.4f%s, scale %g, %lld skipped, %.1f s\n",
          (long long)R->step, (double)R->loss_v, what, v,
          R->m.spec.kind == AMPC_MODEL_GPT ? " nats/token" : "%",
          (double)amp_scaler_get_scale(R->m.scaler), (long long)R->skipped, R->t_train);
  fflush(f);
  return v;
}

/* Keeps the step's time for the median (step_ms_median). */
static void record_ms(mrun *R, double ms) {
  if (R->nms == R->cap_ms) {
    int64_t cap = R->cap_ms ? 2 * R->cap_ms : 1024;
    double *p = realloc(R->step_ms, (size_t)cap * sizeof *p);
    if (!p) return;
    R->step_ms = p;
    R->cap_ms = cap;
  }
  R->step_ms[R->nms++] = ms;
}

/* --save (at the end, and every --save-every steps): the state must be
 * finite to be saved (else the run fails and the file is left as it was).
 * Returns 0, or the exit status (message printed). */
static int save(mrun *R) {
  if (!R->m.o.save) return 0;
  if (amp_checkpoint_check_finite(R->m.ctx, R->m.model, R->m.opt, R->m.scaler) != AMP_OK) {
    fprintf(stderr, "ampc train: stopping at step %lld: the %s; %s is left as it was\n",
            (long long)R->step, amp_ctx_error(R->m.ctx), R->m.o.save);
    return 1;
  }
  run_meta meta;
  train_opts_meta(&R->m.o, R->step, R->skipped, R->nonfinite, &meta);
  if (amp_checkpoint_save(R->m.ctx, R->m.o.save, R->m.model, R->m.opt, R->m.scaler, R->m.il,
                          meta.kv, meta.n) != AMP_OK) {
    fprintf(stderr, "ampc train: --save: %s\n", amp_ctx_error(R->m.ctx));
    return 1;
  }
  return 0;
}

/* The steps, each with its metrics line, an evaluation every --eval-every
 * steps and after the last, and a progress line every --log-every steps.
 * Returns 0, or the exit status (message printed). */
static int train_loop(mrun *R) {
  int64_t every = R->m.o.eval_every ? R->m.o.eval_every : R->steps;
  while (R->step < R->steps) {
    double t0 = ampb_now();
    float scale_used = amp_scaler_get_scale(R->m.scaler);
    R->loss_v = step(R);
    double dt = ampb_now() - t0;
    R->t_train += dt;
    record_ms(R, 1e3 * dt);
    if (amp_ctx_status(R->m.ctx) != AMP_OK) {
      fprintf(stderr, "ampc train: step %lld: %s\n", (long long)R->step, amp_ctx_error(R->m.ctx));
      return 1;
    }
    R->step++;
    R->bad_run = isfinite(R->loss_v) ? 0 : R->bad_run + 1;
    if (R->bad_run >= 5) {
      fprintf(stderr,
              "ampc train: stopping: the loss itself has been non-finite for %lld consecutive "
              "steps (step %lld, loss scale %g): lower the learning rate\n",
              (long long)R->bad_run, (long long)R->step, (double)amp_scaler_get_scale(R->m.scaler));
      return 1;
    }
    double val = -1;
    if ((R->step % every == 0 || R->step == R->steps) && (val = report_eval(R)) < 0) return 1;
    if (R->metrics && metrics_line(R, scale_used, val) != 0) {
      fprintf(stderr, "ampc train: --metrics: error writing '%s'\n", R->m.o.metrics);
      return 1;
    }
    if (R->m.o.save_every && R->step % R->m.o.save_every == 0 && R->step < R->steps && save(R))
      return 1;
    if (R->m.o.log_every > 0 && R->step % R->m.o.log_every == 0 && !R->m.o.quiet)
      fprintf(stderr, "step %lld/%lld: loss %.4f, scale %g, %lld skipped\n", (long long)R->step,
              (long long)R->steps, (double)R->loss_v, (double)amp_scaler_get_scale(R->m.scaler),
              (long long)R->skipped);
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The --json summary: the MLP loop's keys (test_accuracy is the CNN's; null
 * for a GPT, which has val_loss instead), plus nonfinite_losses and, for a
 * GPT, tokens_per_s. */
static void report_json(mrun *R, double median, double units_s, double rss_mb) {
  const train_opts *o = &R->m.o;
  int gpt = R->m.spec.kind == AMPC_MODEL_GPT;
  size_t param_bytes = (size_t)amp_optim_numel(R->m.opt) *
                       (4 + (R->m.r.dt == AMP_F32 ? 0 : amp_dtype_size(R->m.r.dt)));
  cJSON *j = cJSON_CreateObject();
  if (!j) return;
  train_json_head(j, o, (R->steps + R->m.per_epoch - 1) / R->m.per_epoch);
  ampc_json_fmt(j, "test_accuracy", "%.4f", gpt ? NAN : R->last_eval);
  if (gpt) ampc_json_fmt(j, "val_loss", "%.6g", R->last_eval);
  ampc_json_fmt(j, "final_loss", "%.6g", (double)R->loss_v);
  ampc_json_int(j, "steps", R->step);
  ampc_json_int(j, "skipped_steps", R->skipped);
  ampc_json_int(j, "nonfinite_losses", R->nonfinite);
  ampc_json_float(j, "final_scale", amp_scaler_get_scale(R->m.scaler));
  ampc_json_fmt(j, "step_ms_median", "%.4f", median);
  ampc_json_fmt(j, "samples_per_s", "%.1f", units_s / (gpt ? (double)R->m.spec.gpt.ctx : 1.0));
  if (gpt) ampc_json_fmt(j, "tokens_per_s", "%.1f", units_s);
  train_json_memory(j, o, rss_mb, R->peak, &R->saved, param_bytes, R->m.opt);
  if (ampc_json_line(stdout, j) != 0) fprintf(stderr, "ampc train: --json: out of memory\n");
}

/* The summary line (or JSON object) on stdout. */
static void report(mrun *R) {
  qsort(R->step_ms, (size_t)R->nms, sizeof(double), cmp_double);
  double median = R->nms ? R->step_ms[R->nms / 2] : 0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  int gpt = R->m.spec.kind == AMPC_MODEL_GPT;
  int64_t units = R->step * R->m.o.batch * (gpt ? R->m.spec.gpt.ctx : 1);
  double units_s = R->t_train > 0 ? (double)units / R->t_train : 0;
  if (R->m.o.json) {
    report_json(R, median, units_s, (double)ru.ru_maxrss / 1024.0);
    return;
  }
  printf("%s: %lld steps (%lld skipped, %lld non-finite losses), final scale %g, %.0f %s/s, "
         "activations %.2f MiB (saved for backward %.3f MiB + weights %.3f MiB)\n",
         R->m.o.precision, (long long)R->step, (long long)R->skipped, (long long)R->nonfinite,
         (double)amp_scaler_get_scale(R->m.scaler), units_s, gpt ? "tokens" : "images",
         R->peak / 1048576.0, (double)R->saved.activation_bytes / 1048576.0,
         (double)R->saved.param_bytes / 1048576.0);
}

/* Whether the command line sets --NAME (as --NAME V or --NAME=V). */
static int flag_given(int argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, n) == 0 &&
        (argv[i][2 + n] == 0 || argv[i][2 + n] == '='))
      return 1;
  return 0;
}

/* The options and the recipe; returns 0 or the exit status. */
static int parse(int argc, char **argv, mrun *R) {
  int rc = train_opts_parse(argc, argv, &R->m.o);
  if (rc || (rc = train_opts_recipe(&R->m.o, &R->m.r))) return rc;
  train_opts *o = &R->m.o;
  char msg[256];
  if (ampc_parse_model_spec(o->model, &R->m.spec, msg, sizeof msg) != 1)
    return ampc_usage_error("%s", msg);
  if (flag_given(argc, argv, "synthetic-n"))
    return ampc_usage_error("%s", "--synthetic-n is for mlp: models (GPT and CNN train on text "
                                  "and Fashion-MNIST)");
  R->epochs_given = flag_given(argc, argv, "epochs");
  if (R->epochs_given && o->steps)
    return ampc_usage_error("%s", "--steps and --epochs both set the length of the run; give one");
  if (ampc_is_default_data(o->data)) /* no --data: the model's own, recorded as such */
    o->data = R->m.spec.kind == AMPC_MODEL_GPT ? "fortunes" : "fashion-mnist";
  const char *k = o->optim;
  R->m.kind = strcmp(k, "adam") == 0    ? AMP_OPTIM_ADAM
              : strcmp(k, "adamw") == 0 ? AMP_OPTIM_ADAMW
              : strcmp(k, "sgd") == 0   ? AMP_OPTIM_SGD
                                        : (amp_optim_kind)-1;
  if ((int)R->m.kind < 0) return ampc_usage_error("--optim: '%s' is not adam, adamw or sgd", k);
  return 0;
}

static int is_family(const char *m) {
  return m && (strncmp(m, "gpt", 3) == 0 || strncmp(m, "cnn:", 4) == 0);
}

/* Whether checkpoint `path`'s config.model is a GPT or a CNN. */
int ampc_is_model_checkpoint(const char *path) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_safetensors *f = NULL;
  int yes = ctx && amp_safetensors_read(ctx, path, &f) == AMP_OK &&
            is_family(amp_safetensors_meta(f, "config.model"));
  amp_safetensors_free(f);
  amp_ctx_free(ctx);
  return yes;
}

int ampc_is_model_family(int argc, char **argv) {
  const char *m = NULL, *resume = NULL; /* the last --model and --resume given */
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
      m = argv[++i];
    else if (strncmp(argv[i], "--model=", 8) == 0)
      m = argv[i] + 8;
    else if (strcmp(argv[i], "--resume") == 0 && i + 1 < argc)
      resume = argv[++i];
    else if (strncmp(argv[i], "--resume=", 9) == 0)
      resume = argv[i] + 9;
  if (m) return is_family(m);
  return resume && ampc_is_model_checkpoint(resume); /* the checkpoint's model */
}

/* Non-zero when this process is one of several ranks of an MPI launch (the
 * launcher's environment), which the GPT/CNN loop does not support. */
static int several_ranks(void) {
  const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
    const char *v = getenv(vars[i]);
    if (v && atol(v) > 1) return 1;
  }
  return 0;
}

int ampc_train_model_main(int argc, char **argv) {
  if (several_ranks()) {
    fprintf(stderr, "ampc train: GPT and CNN models train on one process; data-parallel "
                    "training under mpirun is for mlp: models\n");
    return 2;
  }
  mrun *R = calloc(1, sizeof *R);
  if (!R) return 1;
  R->last_eval = -1;
  int rc = parse(argc, argv, R);
  if (!rc) {
    R->m.ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)R->m.o.threads});
    rc = R->m.ctx ? setup(R) : 1;
    if (!rc) rc = train_loop(R);
    if (!rc) rc = save(R);
    if (!rc) report(R);
  }
  if (R->metrics && fclose(R->metrics) != 0 && rc == 0) {
    fprintf(stderr, "ampc train: --metrics: error writing '%s'\n", R->m.o.metrics);
    rc = 1;
  }
  free(R->step_ms);
  ampc_model_run_free(&R->m);
  amp_ctx_free(R->m.ctx);
  free(R);
  return rc;
}

/* Prints the evaluation of ampc_eval_model(); returns the exit status. */
static int eval_report(mrun *R, const char *path, double v, int json) {
  int gpt = R->m.spec.kind == AMPC_MODEL_GPT;
  if (!json) {
    printf("%s: %s in %s, %s %.4f%s\n", path, R->m.o.model, R->m.o.precision,
           gpt ? "val loss" : "test accuracy", v,
           gpt ? " nats/token (20 validation batches)" : "%");
    return 0;
  }
  cJSON *j = cJSON_CreateObject();
  if (!j) return 1;
  ampc_json_str(j, "checkpoint", path);
  ampc_json_str(j, "model", R->m.o.model);
  ampc_json_str(j, "precision", R->m.o.precision);
  ampc_json_str(j, "data", R->m.o.data);
  if (gpt) ampc_json_fmt(j, "val_loss", "%.6g", v);
  if (!gpt) ampc_json_int(j, "test_samples", amp_dataset_size(R->m.test));
  if (!gpt) ampc_json_fmt(j, "test_accuracy", "%.4f", v);
  return ampc_json_line(stdout, j) != 0;
}

/* The run of checkpoint `path` rebuilt as its configuration says (R->m.o), its
 * weights loaded; returns 0, or the exit status (message printed). */
static int eval_load(mrun *R, const char *path, const char *precision, const char *data) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(R->m.ctx, path, &f) != AMP_OK) {
    fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(R->m.ctx));
    return 1;
  }
  train_opts_default(&R->m.o);
  R->m.o.cmd = "eval";
  R->m.o.family_ok = 1;
  int rc = train_opts_from_checkpoint(f, &R->m.o);
  amp_safetensors_free(f);
  if (rc) return rc;
  if (precision) R->m.o.precision = precision;
  if (data) R->m.o.data = data;
  R->m.o.steps = 1; /* setup() makes a run; nothing trains */
  char msg[256];
  if ((rc = train_opts_recipe(&R->m.o, &R->m.r))) return rc;
  if (ampc_parse_model_spec(R->m.o.model, &R->m.spec, msg, sizeof msg) != 1) {
    fprintf(stderr, "ampc eval: %s: %s\n", path, msg);
    return 1;
  }
  const char *k = R->m.o.optim;
  R->m.kind = strcmp(k, "adamw") == 0 ? AMP_OPTIM_ADAMW
              : strcmp(k, "sgd") == 0 ? AMP_OPTIM_SGD
                                      : AMP_OPTIM_ADAM;
  if ((rc = setup(R))) return rc;
  if (amp_checkpoint_load(R->m.ctx, path, R->m.model, R->m.opt, NULL, NULL) != AMP_OK) {
    fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(R->m.ctx));
    return 1;
  }
  return 0;
}

int ampc_eval_model(const char *path, const char *precision, const char *data, long threads,
                    int json) {
  mrun *R = calloc(1, sizeof *R);
  if (!R) return 1;
  R->m.ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)threads});
  int rc = R->m.ctx ? eval_load(R, path, precision, data) : 1;
  if (!rc) {
    double v = evaluate(R);
    if (v < 0) {
      fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(R->m.ctx));
      rc = 1;
    } else {
      rc = eval_report(R, path, v, json);
    }
  }
  ampc_model_run_free(&R->m);
  amp_ctx_free(R->m.ctx);
  free(R);
  return rc;
}
