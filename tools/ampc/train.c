/* `ampc train`: trains a model with a mixed-precision recipe, written with the
 * public API only, step for step as a PyTorch AMP loop:
 *
 *   with autocast(dtype): logits = model(x); loss = cross_entropy(logits, y)
 *   scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
 */
#include "bench.h"
#include "cli.h"
#include "dist.h"
#include "json_out.h"
#include "guard.h"
#include "train_opts.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Everything one `ampc train` run holds. */
typedef struct trainer {
  train_opts o;
  ampc_recipe r;
  amp_optim_kind kind;
  long sizes[33];
  int nsizes;
  amp_ctx *ctx;
  ampc_run run;
  amp_dataset *train, *test;
  amp_loader *loader;
  FILE *metrics;
  cJSON *pending;  /* the last step's metrics line, written when the next
                      step (or the epoch's evaluation) comes */
  double *step_ms; /* wall times of the steps run here: all of them up to
                      STEP_MS_CAP, then a uniform sample of that many */
  int64_t nms;
  uint64_t rs;    /* the sample's random state */
  double t_shown; /* when the progress bar was last drawn */
  amp_lr_schedule sched;
  int64_t per_epoch, total_steps;
  int64_t step, skipped, bad_losses, ran;
  float loss_v;
  double t_train, activation_peak, acc;
  amp_tape_saved_stats saved; /* the largest saved-for-backward figures of a step */
  int tty;
  char *data_abs; /* --data as an absolute path (for the checkpoint) */
  dist D;         /* --accum, MPI ranks (dist.h) */
} trainer;

/* The median step time comes from at most this many samples (reservoir
 * sampling, Vitter's algorithm R), whatever the number of steps. */
enum { STEP_MS_CAP = 1 << 16 };

static void record_step_ms(trainer *T, double ms) {
  if (T->nms < STEP_MS_CAP) {
    T->step_ms[T->nms++] = ms;
    return;
  }
  T->rs = T->rs * 6364136223846793005ULL + 1442695040888963407ULL; /* an LCG is enough */
  uint64_t j = (T->rs >> 11) % (uint64_t)T->ran;
  if (j < STEP_MS_CAP) T->step_ms[j] = ms;
}

/* "1:02:03" or "2:03" */
static void hms(double s, char *buf, size_t cap) {
  long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
  if (t >= 3600)
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* Progress within an epoch: on a terminal a bar redrawn in place (at most
 * 10 times a second), otherwise a plain line (every --log-every steps). */
static void progress(trainer *T, long epoch, int64_t step, int64_t steps, int64_t ran,
                     double elapsed) {
  const train_opts *o = &T->o;
  double sps = elapsed > 0 ? (double)ran / elapsed : 0;
  int64_t left_in_run = T->total_steps - T->step;
  int64_t left = steps - step < left_in_run ? steps - step : left_in_run;
  char eta[32];
  hms(sps > 0 ? (double)left / sps : 0, eta, sizeof eta);
  float scale = amp_scaler_get_scale(T->run.scaler);
  if (T->tty) {
    int width = 20, done = steps ? (int)(width * step / steps) : 0;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < done ? '=' : i == done ? '>' : ' ';
    bar[width] = '\0';
    fprintf(stderr,
            "\r\033[Kepoch %ld/%ld [%s] %lld/%lld  %.0f steps/s  ETA %s  loss %.4f  scale %g",
            epoch + 1, o->epochs, bar, (long long)step, (long long)steps, sps, eta,
            (double)T->loss_v, (double)scale);
    if (T->skipped) fprintf(stderr, "  skipped %lld", (long long)T->skipped);
  } else {
    fprintf(stderr,
            "epoch %ld/%ld step %lld/%lld: %.0f steps/s, ETA %s, loss %.4f, scale %g, %lld "
            "skipped\n",
            epoch + 1, o->epochs, (long long)step, (long long)steps, sps, eta, (double)T->loss_v,
            (double)scale, (long long)T->skipped);
  }
}

/* The options, the recipe, the optimizer kind and the model sizes; returns
 * 0, or the exit status. */
static int parse_all(int argc, char **argv, trainer *T) {
  train_opts *o = &T->o;
  int rc = train_opts_parse(argc, argv, o);
  if (rc) return rc;
  if ((rc = train_opts_recipe(o, &T->r))) return rc;
  /* --optim and --model are checked by the parser (opts.c) */
  T->kind = strcmp(o->optim, "adamw") == 0 ? AMP_OPTIM_ADAMW
            : strcmp(o->optim, "sgd") == 0 ? AMP_OPTIM_SGD
                                           : AMP_OPTIM_ADAM;
  T->nsizes = ampc_parse_model(o->model, T->sizes, 33);
  if (!T->nsizes) return ampc_usage_error("--model: '%s' is not mlp:IN-HIDDEN-...-OUT", o->model);
  /* The checkpoint records where the data is as an absolute path, so that
   * eval works from any directory. */
  char cwd[4096];
  if (strcmp(o->data, "synthetic") != 0 && o->data[0] != '/' && getcwd(cwd, sizeof cwd)) {
    size_t len = strlen(cwd) + strlen(o->data) + 2;
    if ((T->data_abs = malloc(len))) {
      snprintf(T->data_abs, len, "%s/%s", cwd, o->data);
      o->data = T->data_abs;
    }
  }
  if (o->save && (rc = ampc_guard_output("train", "--save", o->save))) return rc;
  return 0;
}

/* Before anything is allocated: the run's memory against the limit, and
 * with --resume, the checkpoint's tensors against the model its
 * configuration names. Returns 0, or the exit status (message printed). */
static int preflight(trainer *T) {
  const train_opts *o = &T->o;
  int synthetic = strcmp(o->data, "synthetic") == 0;
  double n = synthetic ? (double)(o->synthetic_n ? o->synthetic_n : 12000) : 60000.0;
  double data = synthetic ? n * 7.0 / 6.0 * 4.0 * (double)T->sizes[0] : 70000.0 * 785.0;
  double steps = ceil(n / (double)o->batch) * (double)o->epochs;
  if (o->max_steps && (double)o->max_steps < steps) steps = (double)o->max_steps;
  int moments = T->kind == AMP_OPTIM_SGD ? 1 : 2; /* SGD: momentum at most */
  int work = T->r.dt == AMP_F32 ? 0 : (int)amp_dtype_size(T->r.dt);
  long batch = (double)o->batch < n ? o->batch : (long)n; /* a batch holds at most n samples */
  ampc_mem_plan m = ampc_mem_estimate(T->sizes, T->nsizes, batch, moments, work, data, steps);
  if (o->resume) {
    amp_safetensors *f = NULL;
    if (amp_safetensors_read(T->ctx, o->resume, &f) != AMP_OK) {
      fprintf(stderr, "ampc train: --resume: %s\n", amp_ctx_error(T->ctx));
      return 1;
    }
    int rc = ampc_guard_checkpoint_model("train", o->resume, f, o->model, T->sizes, T->nsizes);
    amp_safetensors_free(f);
    if (rc) return rc;
  }
  return ampc_guard_memory("train", o->model, &m);
}

/* The data, model, optimizer, scaler, loader, metrics file, schedule and
 * step timer (T->ctx exists); returns 0, or the exit status. */
static int setup(trainer *T) {
  const train_opts *o = &T->o;
  int rc = preflight(T);
  if (rc) return rc;
  if ((rc = train_open_data(T->ctx, o, T->sizes, T->nsizes, &T->train, &T->test))) return rc;
  /* Micro-batches and ranks sum gradients through the buffer (dist.c), and
     the test switch writes one there: the scaler must read them all. */
  T->r.grads_checked = T->D.global == T->o.batch && T->D.o.dbg_step < 0;
  int ok = ampc_run_create(T->ctx, &T->r, T->sizes, T->nsizes, o->seed, T->kind, o->lr,
                           o->growth_interval, &T->run);
  amp_loader_params lp = {T->D.global, 1, o->seed, 0, T->r.dt, 1}; /* B·K·ranks */
  T->loader = amp_loader_create(T->ctx, T->train, &lp);
  if (!ok || !T->loader) {
    fprintf(stderr, "ampc train: %s\n", amp_ctx_error(T->ctx));
    return 1;
  }
  if (o->metrics && T->D.rank == 0 && !(T->metrics = fopen(o->metrics, "w"))) {
    fprintf(stderr, "ampc train: --metrics: cannot write '%s': %s\n", o->metrics, strerror(errno));
    return 1;
  }
  T->per_epoch = amp_loader_batches_per_epoch(T->loader);
  T->total_steps = T->per_epoch * o->epochs;
  if (o->max_steps && o->max_steps < T->total_steps) T->total_steps = o->max_steps;
  float base = o->lr >= 0 ? (float)o->lr : amp_optim_defaults(T->kind).lr;
  if (!train_opts_schedule(o->schedule, base, T->total_steps, &T->sched)) return 2;
  T->step_ms = malloc(sizeof(double) *
                      (size_t)(T->total_steps < STEP_MS_CAP ? T->total_steps : STEP_MS_CAP));
  if (!T->step_ms) return 1;
  if (o->init) { /* --init: the weights to start from */
    char msg[1024];
    if (!ampc_load_weights(T->ctx, o->init, T->run.model, msg, sizeof msg) ||
        amp_optim_sync_work(T->run.opt) != AMP_OK) {
      fprintf(stderr, "ampc train: --init: %s\n", msg);
      return 1;
    }
  }
  return 0;
}

/* --resume: everything a step depends on comes back: masters (and working
 * copies), moments and step count, the scaler, the loader's position, and
 * this loop's counters. Returns 0, or the exit status. */
static int resume(trainer *T) {
  amp_safetensors *f = NULL;
  if (amp_checkpoint_load(T->ctx, T->o.resume, T->run.model, T->run.opt, T->run.scaler,
                          T->loader) != AMP_OK ||
      amp_safetensors_read(T->ctx, T->o.resume, &f) != AMP_OK) {
    fprintf(stderr, "ampc train: --resume: %s\n", amp_ctx_error(T->ctx));
    return 1;
  }
  int ok = train_meta_count(f, "train.step", &T->step) &&
           train_meta_count(f, "train.skipped", &T->skipped) &&
           train_meta_count(f, "train.bad_losses", &T->bad_losses);
  amp_safetensors_free(f);
  if (!ok) {
    fprintf(stderr,
            "ampc train: --resume: %s has no valid train.step/train.skipped/train.bad_losses "
            "counters (integers in [0, 2^53], written by ampc train)\n",
            T->o.resume);
    return 1;
  }
  return 0;
}

/* Writes --save with the run's counters; returns the status. */
static amp_status save(trainer *T) {
  run_meta meta;
  if (T->D.rank != 0) return AMP_OK; /* rank 0 writes; the ranks' states are equal */
  train_opts_meta(&T->o, T->step, T->skipped, T->bad_losses, &meta);
  char global[32];
  snprintf(global, sizeof global, "%ld", T->D.global);
  const char *kv[50];
  memcpy(kv, meta.kv, sizeof(char *) * 2 * (size_t)meta.n);
  kv[2 * meta.n] = "train.global_batch";
  kv[2 * meta.n + 1] = global;
  return amp_checkpoint_save(T->ctx, T->o.save, T->run.model, T->run.opt, T->run.scaler, T->loader,
                             kv, meta.n + 1);
}

/* Counts a non-finite loss; returns 0 when the run must stop (message
 * printed). */
static int check_loss(trainer *T) {
  if (isfinite(T->loss_v)) {
    T->bad_losses = 0;
    return 1;
  }
  const int64_t bad_loss_limit = 5;
  if (++T->bad_losses < bad_loss_limit) return 1;
  fprintf(stderr,
          "%sampc train: stopping: the loss itself has been %s for %lld consecutive "
          "steps (step %lld, loss scale %g). This is not a gradient overflow that loss "
          "scaling can fix: lower the learning rate or check the data for NaN.\n",
          T->tty && !T->o.quiet ? "\n" : "", isnan(T->loss_v) ? "NaN" : "infinite",
          (long long)T->bad_losses, (long long)T->step,
          (double)amp_scaler_get_scale(T->run.scaler));
  return 0;
}

/* Writes the pending metrics line (if any); returns 0, or -1. */
static int flush_metrics(trainer *T) {
  if (!T->pending) return 0;
  int rc = ampc_json_line(T->metrics, T->pending);
  T->pending = NULL;
  return rc;
}

/* The metrics of one step, as a JSON line: loss (null when not finite),
 * scale, skipped, lr, grad_norm (-1 when not finite: an overflow step).
 * Float32 values are written with the fewest digits that read back to the
 * same bits. The line waits until the next step so that the last step of
 * an epoch can carry the epoch's val_accuracy. */
static void metrics_line(trainer *T, long epoch, float scale, int skipped, float gnorm) {
  flush_metrics(T);
  cJSON *j = cJSON_CreateObject();
  if (!j) return;
  ampc_json_int(j, "step", T->step);
  ampc_json_int(j, "epoch", epoch);
  ampc_json_float(j, "loss", T->loss_v);
  ampc_json_float(j, "scale", scale);
  ampc_json_int(j, "skipped", skipped);
  ampc_json_float(j, "lr", amp_optim_lr(T->run.opt));
  ampc_json_float(j, "grad_norm", isfinite(gnorm) ? gnorm : -1.0f);
  T->pending = j;
}

enum { STEP_OK, STEP_END, STEP_FATAL };

/* One step of the PyTorch AMP loop (the batch already taken):
 *   with autocast(dtype): loss = cross_entropy(model(x), y)
 *   scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
 * STEP_END: the epoch stops here (an error is recorded on ctx); STEP_FATAL:
 * the run stops (message printed). */
static int train_step(trainer *T, long epoch, amp_tensor *x, amp_tensor *y, double t0) {
  amp_ctx *ctx = T->ctx;
  amp_optim *opt = T->run.opt;
  amp_scaler *scaler = T->run.scaler;
  amp_optim_set_lr(opt, amp_lr_at(&T->sched, T->step));
  if (T->D.global != T->o.batch) { /* micro-batches and/or ranks (dist.h) */
    int rc = dist_step_grads(&T->D, ctx, &T->r, &T->run, x, y, T->o.loss_mul, T->step, &T->loss_v);
    if (rc) return rc == 1 ? STEP_END : STEP_FATAL;
    if (!check_loss(T)) return STEP_FATAL;
  } else {
    amp_tensor *loss = ampc_forward_loss(ctx, &T->r, T->run.model, x, y, T->o.loss_mul);
    if (!loss) return STEP_END;
    T->loss_v = *(float *)loss->data; /* cross-entropy is F32 under autocast */
    if (loss->dtype != AMP_F32) amp_convert(&T->loss_v, AMP_F32, loss->data, loss->dtype, 1);
    if (!check_loss(T)) return STEP_FATAL;
    if (amp_backward(ctx, amp_scaler_scale(scaler, loss)) != AMP_OK) return STEP_END;
    if (T->step == T->D.o.dbg_step && T->D.o.dbg_micro == 0) /* --debug-nonfinite-grad */
      amp_optim_grad_buffer(opt)[0] = INFINITY;
  }
  ampc_saved_max(ctx, &T->saved);
  float gnorm = NAN;
  if (T->o.clip > 0 || T->metrics) {
    if (amp_scaler_unscale(scaler, opt) != AMP_OK) return STEP_END;
    amp_optim_clip_grad_norm(opt, (float)T->o.clip, &gnorm);
  }
  float scale_used = amp_scaler_get_scale(scaler);
  int stepped = amp_scaler_step(scaler, opt);
  if (stepped < 0) return STEP_END;
  if (amp_scaler_update(scaler) != AMP_OK) return STEP_END;
  /* Micro-batches (dist.c) held one FP8 step open over all of them. */
  if (T->D.global != T->o.batch) amp_fp8_step_end(ctx);
  /* No amp_optim_zero_grad(): the step zeroed the gradients in its own pass
     (zero_grad_in_step, recipe.c). */
  T->skipped += !stepped;
  double dt_s = ampb_now() - t0;
  T->ran++;
  record_step_ms(T, 1e3 * dt_s);
  T->t_train += dt_s;
  if (T->metrics) metrics_line(T, epoch, scale_used, !stepped, gnorm);
  T->step++;
  if (T->o.save && T->o.save_every && T->step % T->o.save_every == 0 && save(T) != AMP_OK)
    return STEP_END;
  return STEP_OK;
}

/* The steps of one epoch, from `in_epoch` batches into it. Returns 0, or 1
 * when the run must stop. */
static int train_epoch(trainer *T, long epoch, int64_t in_epoch) {
  double t_epoch = ampb_now();
  int64_t ran = 0; /* steps run in this epoch (for the rate) */
  for (;;) {
    if (T->step >= T->total_steps) break;
    double t0 = ampb_now();
    amp_ctx_step_reset(T->ctx);
    amp_tensor *x, *y;
    int got = amp_loader_next(T->loader, &x, &y);
    if (got <= 0) break; /* an error, or the end of the epoch */
    int s = train_step(T, epoch, x, y, t0);
    if (s == STEP_FATAL) return 1;
    if (s == STEP_END) break;
    in_epoch++;
    ran++;
    double now = ampb_now();
    int show = T->tty ? now - T->t_shown >= 0.1 || in_epoch == T->per_epoch
                      : T->o.log_every > 0 && T->step % T->o.log_every == 0;
    if (show && !T->o.quiet) {
      progress(T, epoch, in_epoch, T->per_epoch, ran, now - t_epoch);
      T->t_shown = now;
    }
  }
  return 0;
}

/* The end of a run: a state that is no longer finite is not saved (the
 * last good checkpoint stays) and fails the run; a run whose last losses
 * were not finite saves its (finite) state but fails too. Returns 0, or the
 * exit status (message printed). */
static int finish(trainer *T) {
  const train_opts *o = &T->o;
  const char *nl = T->tty && !o->quiet ? "\n" : "";
  if (amp_checkpoint_check_finite(T->ctx, T->run.model, T->run.opt, T->run.scaler) != AMP_OK) {
    fprintf(stderr, "%sampc train: stopping at step %lld: the %s%s%s%s\n", nl, (long long)T->step,
            amp_ctx_error(T->ctx), o->save ? "; " : "", o->save ? o->save : "",
            o->save ? " is left as it was" : "");
    return 1;
  }
  if (o->save && save(T) != AMP_OK) {
    fprintf(stderr, "ampc train: --save: %s\n", amp_ctx_error(T->ctx));
    return 1;
  }
  if (T->bad_losses > 0) {
    fprintf(stderr,
            "%sampc train: the run ended with a non-finite loss for its last %lld step(s) "
            "(step %lld): the loss diverges\n",
            nl, (long long)T->bad_losses, (long long)T->step);
    return 1;
  }
  return 0;
}

/* The epochs, each followed by a test evaluation; returns 0, or the exit
 * status. */
static int train_all(trainer *T) {
  const train_opts *o = &T->o;
  T->loss_v = NAN;
  T->acc = -1;
  amp_arena_reset_peak(T->ctx, AMP_ARENA_STEP);
  amp_loader_state start = amp_loader_get_state(T->loader);
  for (long epoch = (long)start.epoch; epoch < o->epochs && T->step < T->total_steps; epoch++) {
    if (train_epoch(T, epoch, epoch == start.epoch ? start.next / T->D.global : 0)) return 1;
    if (amp_ctx_status(T->ctx) != AMP_OK) break;
    double peak = (double)amp_arena_peak_bytes(T->ctx, AMP_ARENA_STEP);
    if (peak > T->activation_peak) T->activation_peak = peak;
    T->acc = ampc_evaluate(T->ctx, T->run.model, T->test, T->r.dt, 1000);
    if (T->pending) ampc_json_fmt(T->pending, "val_accuracy", "%.4f", 100 * T->acc);
    amp_arena_reset_peak(T->ctx, AMP_ARENA_STEP);
    if (!o->quiet)
      fprintf(stderr,
              "%sepoch %ld/%ld done: loss %.4f, test accuracy %.2f%%, scale %g, %lld skipped\n",
              T->tty ? "\n" : "", epoch + 1, o->epochs, (double)T->loss_v, 100 * T->acc,
              (double)amp_scaler_get_scale(T->run.scaler), (long long)T->skipped);
  }
  if (amp_ctx_status(T->ctx) != AMP_OK) {
    fprintf(stderr, "ampc train: %s\n", amp_ctx_error(T->ctx));
    return 1;
  }
  if (T->acc < 0) T->acc = ampc_evaluate(T->ctx, T->run.model, T->test, T->r.dt, 1000);
  return finish(T);
}

/* The --json summary: one object on one line. Numbers keep the digits the
 * summary has always had (test_accuracy 4 decimals, final_loss 6
 * significant digits, ...); a non-finite final loss is null. */
static void report_json(trainer *T, double median, double sps, double rss_mb, size_t param_bytes) {
  const train_opts *o = &T->o;
  cJSON *j = cJSON_CreateObject();
  if (!j) return;
  train_json_head(j, o, o->epochs);
  ampc_json_fmt(j, "test_accuracy", "%.4f", 100 * T->acc);
  ampc_json_fmt(j, "final_loss", "%.6g", (double)T->loss_v);
  ampc_json_int(j, "steps", T->step);
  ampc_json_int(j, "skipped_steps", T->skipped);
  ampc_json_float(j, "final_scale", amp_scaler_get_scale(T->run.scaler));
  ampc_json_fmt(j, "step_ms_median", "%.4f", median);
  ampc_json_fmt(j, "samples_per_s", "%.1f", sps);
  train_json_memory(j, o, rss_mb, T->activation_peak, &T->saved, param_bytes, T->run.opt);
  dist_json(&T->D, j, T->t_train);
  if (ampc_json_line(stdout, j) != 0) fprintf(stderr, "ampc train: --json: out of memory\n");
}

/* The summary line (or JSON object) on stdout. */
static void report(trainer *T) {
  const train_opts *o = &T->o;
  int64_t n = T->nms;
  qsort(T->step_ms, (size_t)n, sizeof(double), cmp_double);
  double median = n ? T->step_ms[n / 2] : 0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss_mb = (double)ru.ru_maxrss / 1024.0;
  size_t param_bytes = (size_t)amp_optim_numel(T->run.opt) *
                       (4 + (T->r.dt == AMP_F32 ? 0 : amp_dtype_size(T->r.dt)));
  double sps = T->t_train > 0 ? (double)(T->ran * T->D.global) / T->t_train : 0.0;
  double scale = (double)amp_scaler_get_scale(T->run.scaler);
  if (o->json) {
    report_json(T, median, sps, rss_mb, param_bytes);
  } else {
    printf("%s: test accuracy %.2f%%, final loss %.4f, %lld steps (%lld skipped), final scale "
           "%g, %.3f ms/step, %.0f samples/s, activations %.2f MiB (saved for backward %.3f "
           "MiB + weights %.3f MiB), peak RSS %.0f MiB\n",
           o->precision, 100 * T->acc, (double)T->loss_v, (long long)T->step, (long long)T->skipped,
           scale, median, sps, T->activation_peak / 1048576.0,
           (double)T->saved.activation_bytes / 1048576.0, (double)T->saved.param_bytes / 1048576.0,
           rss_mb);
  }
}

int ampc_train_main(int argc, char **argv) {
  if (ampc_is_model_family(argc, argv)) return ampc_train_model_main(argc, argv);
  trainer *T = calloc(1, sizeof *T);
  if (!T) {
    fprintf(stderr, "ampc train: out of memory\n");
    return 1;
  }
  int rc = dist_opts_extract(&argc, argv, &T->D.o);
  if (!rc) rc = dist_init(&T->D);
  if (!rc) rc = parse_all(argc, argv, T);
  if (!rc) rc = dist_resolve_batch(&T->D, &T->o.batch, T->o.resume, &T->D.global);
  if (!rc && !dist_same_config(&T->D, dist_config_hash(&T->D, &T->o))) rc = 2;
  if (!rc && T->r.qat && T->D.size > 1) { /* each rank would observe other activations */
    fprintf(stderr, "ampc train: --qat runs on one process (its observers would differ between "
                    "ranks); use --accum K instead of mpirun\n");
    rc = 2;
  }
  if (rc) {
    free(T->data_abs);
    dist_finish(&T->D);
    free(T);
    return rc == AMPC_OPTS_HELP ? 0 : rc;
  }
  if (T->D.rank != 0) T->o.quiet = 1; /* rank 0 speaks for all */
  T->ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)T->o.threads});
  if (!T->ctx) {
    fprintf(stderr, "ampc train: out of memory\n");
    dist_finish(&T->D);
    free(T);
    return 1;
  }
  T->tty = isatty(2);
  rc = setup(T);
  if (!rc && T->o.resume) rc = resume(T);
  if (!rc) rc = train_all(T);
  if (!rc && !dist_same_result(&T->D, T->run.opt, amp_scaler_get_scale(T->run.scaler))) rc = 1;
  if (!rc && T->D.rank == 0) report(T);
  int werr = T->metrics ? flush_metrics(T) : 0;
  if (T->metrics && (fclose(T->metrics) != 0 || werr) && rc == 0) {
    fprintf(stderr, "ampc train: --metrics: error writing '%s'\n", T->o.metrics);
    rc = 1;
  }
  free(T->step_ms);
  free(T->data_abs);
  amp_loader_free(T->loader);
  amp_dataset_free(T->train);
  amp_dataset_free(T->test);
  amp_ctx_free(T->ctx);
  dist_finish(&T->D);
  free(T);
  return rc;
}
