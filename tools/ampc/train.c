/* `ampc train`: trains a model with a mixed-precision recipe, written with the
 * public API only, step for step as a PyTorch AMP loop:
 *
 *   with autocast(dtype): logits = model(x); loss = cross_entropy(logits, y)
 *   scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
 */
#include "bench.h"
#include "cli.h"
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
  double *step_ms; /* wall time of each step run here */
  amp_lr_schedule sched;
  int64_t per_epoch, total_steps;
  int64_t step, skipped, bad_losses, ran;
  float loss_v;
  double t_train, activation_peak, acc;
  int tty;
} trainer;

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

/* The options, the recipe, the optimizer kind and the model sizes; returns
 * 0, or the exit status. */
static int parse_all(int argc, char **argv, trainer *T) {
  train_opts *o = &T->o;
  int rc = train_opts_parse(argc, argv, o);
  if (rc) return rc;
  if ((rc = train_opts_recipe(o, &T->r))) return rc;
  if (strcmp(o->optim, "adam") == 0)
    T->kind = AMP_OPTIM_ADAM;
  else if (strcmp(o->optim, "adamw") == 0)
    T->kind = AMP_OPTIM_ADAMW;
  else if (strcmp(o->optim, "sgd") == 0)
    T->kind = AMP_OPTIM_SGD;
  else
    return ampc_usage_error("--optim: '%s' is not adam, adamw or sgd", o->optim);
  T->nsizes = ampc_parse_model(o->model, T->sizes, 33);
  if (!T->nsizes) return ampc_usage_error("--model: '%s' is not mlp:IN-HIDDEN-...-OUT", o->model);
  return 0;
}

/* The data, model, optimizer, scaler, loader, metrics file, schedule and
 * step timer (T->ctx exists); returns 0, or the exit status. */
static int setup(trainer *T) {
  const train_opts *o = &T->o;
  if (!train_load_data(T->ctx, o, T->sizes, T->nsizes, &T->train, &T->test)) {
    fprintf(stderr, "ampc train: %s\n", amp_ctx_error(T->ctx));
    return 1;
  }
  if (amp_dataset_features(T->train) != T->sizes[0] ||
      amp_dataset_classes(T->train) != T->sizes[T->nsizes - 1]) {
    fprintf(stderr,
            "ampc train: --model %s does not fit the data: it has %lld features and %lld "
            "classes\n",
            o->model, (long long)amp_dataset_features(T->train),
            (long long)amp_dataset_classes(T->train));
    return 1;
  }
  int ok = ampc_run_create(T->ctx, &T->r, T->sizes, T->nsizes, o->seed, T->kind, o->lr,
                           o->growth_interval, &T->run);
  amp_loader_params lp = {o->batch, 1, o->seed, 0, T->r.dt, 1};
  T->loader = amp_loader_create(T->ctx, T->train, &lp);
  if (!ok || !T->loader) {
    fprintf(stderr, "ampc train: %s\n", amp_ctx_error(T->ctx));
    return 1;
  }
  if (o->metrics && !(T->metrics = fopen(o->metrics, "w"))) {
    fprintf(stderr, "ampc train: --metrics: cannot write '%s': %s\n", o->metrics, strerror(errno));
    return 1;
  }
  T->per_epoch = amp_loader_batches_per_epoch(T->loader);
  T->total_steps = T->per_epoch * o->epochs;
  if (o->max_steps && o->max_steps < T->total_steps) T->total_steps = o->max_steps;
  float base = o->lr >= 0 ? (float)o->lr : amp_optim_defaults(T->kind).lr;
  if (!train_opts_schedule(o->schedule, base, T->total_steps, &T->sched)) return 2;
  T->step_ms = malloc(sizeof(double) * (size_t)T->total_steps);
  return T->step_ms ? 0 : 1;
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
            "ampc train: --resume: %s has no train.step/train.skipped counters (not "
            "written by ampc train)\n",
            T->o.resume);
    return 1;
  }
  return 0;
}

/* Writes --save with the run's counters; returns the status. */
static amp_status save(trainer *T) {
  run_meta meta;
  train_opts_meta(&T->o, T->step, T->skipped, T->bad_losses, &meta);
  return amp_checkpoint_save(T->ctx, T->o.save, T->run.model, T->run.opt, T->run.scaler, T->loader,
                             meta.kv, meta.n);
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
  amp_tensor *loss = ampc_forward_loss(ctx, &T->r, T->run.model, x, y, T->o.loss_mul);
  if (!loss) return STEP_END;
  T->loss_v = *(float *)loss->data; /* cross-entropy is F32 under autocast */
  if (loss->dtype != AMP_F32) amp_convert(&T->loss_v, AMP_F32, loss->data, loss->dtype, 1);
  if (!check_loss(T)) return STEP_FATAL;
  if (amp_backward(ctx, amp_scaler_scale(scaler, loss)) != AMP_OK) return STEP_END;
  float gnorm = NAN;
  if (T->o.clip > 0 || T->metrics) {
    if (amp_scaler_unscale(scaler, opt) != AMP_OK) return STEP_END;
    amp_optim_clip_grad_norm(opt, (float)T->o.clip, &gnorm);
  }
  float scale_used = amp_scaler_get_scale(scaler);
  int stepped = amp_scaler_step(scaler, opt);
  if (stepped < 0) return STEP_END;
  amp_scaler_update(scaler);
  amp_optim_zero_grad(opt);
  T->skipped += !stepped;
  double dt_s = ampb_now() - t0;
  T->step_ms[T->ran++] = 1e3 * dt_s;
  T->t_train += dt_s;
  if (T->metrics)
    fprintf(T->metrics,
            "{\"step\":%lld,\"epoch\":%ld,\"loss\":%.9g,\"scale\":%g,\"skipped\":%d,"
            "\"lr\":%.9g,\"grad_norm\":%.9g}\n",
            (long long)T->step, epoch, (double)T->loss_v, (double)scale_used, !stepped,
            (double)amp_optim_lr(opt), isfinite(gnorm) ? (double)gnorm : -1.0);
  T->step++;
  if (T->o.save && T->o.save_every && T->step % T->o.save_every == 0 && save(T) != AMP_OK)
    return STEP_END;
  return STEP_OK;
}

/* The steps of one epoch, from `in_epoch` batches into it. Returns 0, or 1
 * when the run must stop. */
static int train_epoch(trainer *T, long epoch, int64_t in_epoch) {
  double t_epoch = ampb_now();
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
    if (T->tty || in_epoch % 100 == 0)
      progress(&T->o, T->tty, epoch, in_epoch, T->per_epoch, T->loss_v,
               amp_scaler_get_scale(T->run.scaler), T->skipped,
               (double)(in_epoch * T->o.batch) / (ampb_now() - t_epoch));
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
    if (train_epoch(T, epoch, epoch == start.epoch ? start.next / o->batch : 0)) return 1;
    if (amp_ctx_status(T->ctx) != AMP_OK) break;
    double peak = (double)amp_arena_peak_bytes(T->ctx, AMP_ARENA_STEP);
    if (peak > T->activation_peak) T->activation_peak = peak;
    T->acc = ampc_evaluate(T->ctx, T->run.model, T->test, T->r.dt, 1000);
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
  if (o->save && save(T) != AMP_OK) {
    fprintf(stderr, "ampc train: --save: %s\n", amp_ctx_error(T->ctx));
    return 1;
  }
  return 0;
}

/* The summary line (or JSON object) on stdout. */
static void report(trainer *T) {
  const train_opts *o = &T->o;
  qsort(T->step_ms, (size_t)T->ran, sizeof(double), cmp_double);
  double median = T->ran ? T->step_ms[T->ran / 2] : 0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss_mb = (double)ru.ru_maxrss / 1024.0;
  size_t param_bytes = (size_t)amp_optim_numel(T->run.opt) *
                       (4 + (T->r.dt == AMP_F32 ? 0 : amp_dtype_size(T->r.dt)));
  double sps = T->t_train > 0 ? (double)(T->ran * o->batch) / T->t_train : 0.0;
  double scale = (double)amp_scaler_get_scale(T->run.scaler);
  if (o->json) {
    printf("{\"precision\":\"%s\",\"optim\":\"%s\",\"model\":\"%s\",\"seed\":%llu,"
           "\"threads\":%ld,\"epochs\":%ld,\"batch\":%ld,\"test_accuracy\":%.4f,"
           "\"final_loss\":%.6g,\"steps\":%lld,\"skipped_steps\":%lld,\"final_scale\":%g,"
           "\"step_ms_median\":%.4f,\"samples_per_s\":%.1f,\"peak_rss_mb\":%.1f,"
           "\"activation_bytes\":%.0f,\"param_bytes\":%zu,\"optimizer_bytes\":%zu}\n",
           o->precision, o->optim, o->model, o->seed, o->threads, o->epochs, o->batch, 100 * T->acc,
           (double)T->loss_v, (long long)T->step, (long long)T->skipped, scale, median, sps, rss_mb,
           T->activation_peak, param_bytes, amp_optim_bytes(T->run.opt));
  } else {
    printf("%s: test accuracy %.2f%%, final loss %.4f, %lld steps (%lld skipped), final scale "
           "%g, %.3f ms/step, %.0f samples/s, activations %.2f MiB, peak RSS %.0f MiB\n",
           o->precision, 100 * T->acc, (double)T->loss_v, (long long)T->step, (long long)T->skipped,
           scale, median, sps, T->activation_peak / 1048576.0, rss_mb);
  }
}

int ampc_train_main(int argc, char **argv) {
  if (ampc_is_model_family(argc, argv)) return ampc_train_model_main(argc, argv);
  trainer *T = calloc(1, sizeof *T);
  if (!T) {
    fprintf(stderr, "ampc train: out of memory\n");
    return 1;
  }
  int rc = parse_all(argc, argv, T);
  if (rc) {
    free(T);
    return rc;
  }
  T->ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)T->o.threads});
  if (!T->ctx) {
    fprintf(stderr, "ampc train: out of memory\n");
    free(T);
    return 1;
  }
  T->tty = isatty(2);
  rc = setup(T);
  if (!rc && T->o.resume) rc = resume(T);
  if (!rc) rc = train_all(T);
  if (!rc) report(T);
  if (T->metrics && fclose(T->metrics) != 0 && rc == 0) {
    fprintf(stderr, "ampc train: --metrics: error writing '%s'\n", T->o.metrics);
    rc = 1;
  }
  free(T->step_ms);
  amp_loader_free(T->loader);
  amp_dataset_free(T->train);
  amp_dataset_free(T->test);
  amp_ctx_free(T->ctx);
  free(T);
  return rc;
}
