/* `ampc train --model gpt:...|cnn:...`: the GPT on byte-level text and the
 * CNN on Fashion-MNIST, step for step as a PyTorch AMP loop:
 *
 *   with autocast(dtype): loss = cross_entropy(model(x), y)
 *   scaler.scale(loss).backward(); [unscale; clip]; scaler.step(opt); scaler.update()
 *
 * --steps N (default: 2000 for a GPT, 10 epochs for a CNN), --eval-every N
 * (the validation loss in nats per token over the first 20 validation
 * batches for a GPT; test accuracy for a CNN), --init FILE (PyTorch
 * weights), --save FILE (a checkpoint that `ampc sample` reads). */
#include "bench.h"
#include "cli.h"
#include "model_data.h"
#include "train_opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything one GPT/CNN run holds. */
typedef struct mrun {
  train_opts o;
  ampc_recipe r;
  ampc_model_spec spec;
  amp_optim_kind kind;
  amp_ctx *ctx;
  amp_module *model;
  amp_optim *opt;
  amp_scaler *scaler;
  amp_text *text;
  amp_text_loader *tl;
  amp_dataset *train, *test;
  amp_loader *il;
  amp_lr_schedule sched;
  int64_t steps, step, skipped, nonfinite;
  double t_train, peak;
  amp_tape_saved_stats saved;
} mrun;

enum { VAL_BATCHES = 20 };

/* Mean cross-entropy of logits [..., C] against y (any shape) under the
 * recipe's autocast. */
static amp_tensor *loss_of(mrun *R, amp_tensor *x, amp_tensor *y) {
  amp_ctx *ctx = R->ctx;
  if (R->spec.kind == AMPC_MODEL_CNN)
    x = amp_reshape(ctx, x, 4, (int64_t[]){x->shape[0], 1, 28, 28});
  if (R->r.dt != AMP_F32) amp_autocast_begin(ctx, R->r.dt);
  int fp8 = R->r.fp8 && amp_grad_enabled(ctx); /* FP8 linears in training (eval: bf16) */
  if (fp8) amp_fp8_begin(ctx);
  amp_tensor *logits = amp_module_forward(ctx, R->model, x);
  if (fp8) amp_fp8_end(ctx);
  if (logits) logits = amp_reshape(ctx, logits, 2, (int64_t[]){y->numel, -1});
  amp_tensor *yy = y ? amp_reshape(ctx, y, 1, (int64_t[]){y->numel}) : NULL;
  amp_tensor *loss = amp_cross_entropy(ctx, logits, yy);
  if (R->r.dt != AMP_F32) amp_autocast_end(ctx);
  return loss;
}

/* GPT: the mean loss over the first VAL_BATCHES validation batches (nats
 * per token). CNN: test accuracy in percent. -1 on error. */
static double evaluate(mrun *R) {
  amp_ctx *ctx = R->ctx;
  double sum = 0;
  int64_t n = 0, correct = 0;
  amp_module_set_training(R->model, 0);
  amp_no_grad_begin(ctx);
  if (R->spec.kind == AMPC_MODEL_GPT) {
    amp_text_loader *vl =
        amp_text_loader_create(ctx, R->text, AMP_TEXT_VAL, R->o.batch, R->spec.gpt.ctx, 0, 0);
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
    amp_loader_params lp = {1000, 0, 0, 0, R->r.dt, 1};
    amp_loader *ld = amp_loader_create(ctx, R->test, &lp);
    amp_tensor *x, *y;
    while (ld && (amp_ctx_step_reset(ctx), amp_loader_next(ld, &x, &y) == 1)) {
      amp_tensor *xi = amp_reshape(ctx, x, 4, (int64_t[]){x->shape[0], 1, 28, 28});
      if (R->r.dt != AMP_F32) amp_autocast_begin(ctx, R->r.dt);
      amp_tensor *lg = amp_module_forward(ctx, R->model, xi);
      if (R->r.dt != AMP_F32) amp_autocast_end(ctx);
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
  amp_module_set_training(R->model, 1);
  amp_ctx_step_reset(ctx);
  if (amp_ctx_status(ctx) != AMP_OK || n == 0) return -1;
  return R->spec.kind == AMPC_MODEL_GPT ? sum / (double)n : 100.0 * (double)correct / (double)n;
}

/* The data, model, optimizer, scaler and schedule; returns 0 or the exit
 * status. */
static int setup(mrun *R) {
  const train_opts *o = &R->o;
  amp_ctx *ctx = R->ctx;
  int rc = R->spec.kind == AMPC_MODEL_GPT ? ampc_text_open(ctx, o->data, &R->text)
                                          : ampc_images_open(ctx, o->data, &R->train, &R->test);
  if (rc) {
    if (rc == 1 && amp_ctx_status(ctx) != AMP_OK)
      fprintf(stderr, "ampc train: %s\n", amp_ctx_error(ctx));
    return rc;
  }
  R->model = ampc_build_model(ctx, &R->spec, o->seed);
  if (R->model && o->init && ampc_init_weights(ctx, R->model, o->init)) return 1;
  amp_optim_params op = amp_optim_defaults(R->kind);
  if (o->lr >= 0) op.lr = (float)o->lr;
  op.work_dtype = R->r.dt;
  op.master_weights = R->r.master_weights;
  op.rounding = R->r.rounding;
  op.seed = o->seed;
  if (R->model && R->r.fp8 && amp_fp8_create(ctx, R->model, &R->r.fp8p) != AMP_OK) return 1;
  R->opt = R->model ? amp_optim_create(ctx, R->model, &op) : NULL;
  amp_scaler_params sp = amp_scaler_defaults(R->r.scale_mode);
  sp.init_scale = R->r.scale;
  sp.growth_interval = o->growth_interval;
  R->scaler = amp_scaler_create(ctx, &sp);
  if (R->spec.kind == AMPC_MODEL_GPT) {
    R->tl =
        amp_text_loader_create(ctx, R->text, AMP_TEXT_TRAIN, o->batch, R->spec.gpt.ctx, 1, o->seed);
    R->steps = o->steps ? o->steps : 2000;
  } else {
    amp_loader_params lp = {o->batch, 1, o->seed, 1, R->r.dt, 1};
    R->il = amp_loader_create(ctx, R->train, &lp);
    R->steps = o->steps ? o->steps : (R->il ? amp_loader_batches_per_epoch(R->il) * o->epochs : 0);
  }
  if (!R->model || !R->opt || !R->scaler || (!R->tl && !R->il)) {
    fprintf(stderr, "ampc train: %s\n", amp_ctx_error(ctx));
    return 1;
  }
  if (!train_opts_schedule(o->schedule, op.lr, R->steps, &R->sched)) return 2;
  return 0;
}

/* The next training batch (a new epoch of images when one ends). */
static int next_batch(mrun *R, amp_tensor **x, amp_tensor **y) {
  if (R->tl) return amp_text_loader_next(R->tl, x, y);
  int got = amp_loader_next(R->il, x, y);
  if (got == 0) got = amp_loader_next(R->il, x, y); /* the next epoch */
  return got;
}

/* One step; returns the loss (NaN after an error, recorded on ctx). */
static float step(mrun *R) {
  amp_ctx *ctx = R->ctx;
  amp_ctx_step_reset(ctx);
  amp_tensor *x, *y;
  if (next_batch(R, &x, &y) != 1) return NAN;
  amp_optim_set_lr(R->opt, amp_lr_at(&R->sched, R->step));
  amp_tensor *loss = loss_of(R, x, y);
  if (!loss) return NAN;
  float lv = *(float *)loss->data;
  if (!isfinite(lv)) R->nonfinite++;
  if (amp_backward(ctx, amp_scaler_scale(R->scaler, loss)) != AMP_OK) return NAN;
  if (R->o.clip > 0) {
    if (amp_scaler_unscale(R->scaler, R->opt) != AMP_OK) return NAN;
    amp_optim_clip_grad_norm(R->opt, (float)R->o.clip, NULL);
  }
  int stepped = amp_scaler_step(R->scaler, R->opt);
  if (stepped < 0) return NAN;
  R->skipped += !stepped;
  amp_scaler_update(R->scaler);
  amp_optim_zero_grad(R->opt);
  double peak = (double)amp_arena_peak_bytes(ctx, AMP_ARENA_STEP);
  if (peak > R->peak) R->peak = peak;
  ampc_saved_max(ctx, &R->saved);
  return lv;
}

static void report_eval(mrun *R, float train_loss) {
  double v = evaluate(R);
  const char *what = R->spec.kind == AMPC_MODEL_GPT ? "val loss" : "test accuracy";
  printf("step %lld: train loss %.4f, %s %.4f%s, scale %g, %lld skipped, %.1f s\n",
         (long long)R->step, (double)train_loss, what, v,
         R->spec.kind == AMPC_MODEL_GPT ? " nats/token" : "%",
         (double)amp_scaler_get_scale(R->scaler), (long long)R->skipped, R->t_train);
  fflush(stdout);
}

static int train_loop(mrun *R) {
  float lv = NAN;
  int64_t every = R->o.eval_every ? R->o.eval_every : R->steps;
  amp_arena_reset_peak(R->ctx, AMP_ARENA_STEP);
  while (R->step < R->steps) {
    double t0 = ampb_now();
    lv = step(R);
    R->t_train += ampb_now() - t0;
    if (amp_ctx_status(R->ctx) != AMP_OK) {
      fprintf(stderr, "ampc train: step %lld: %s\n", (long long)R->step, amp_ctx_error(R->ctx));
      return 1;
    }
    R->step++;
    if (R->step % every == 0 || R->step == R->steps) report_eval(R, lv);
  }
  int64_t units = R->step * R->o.batch * (R->spec.kind == AMPC_MODEL_GPT ? R->spec.gpt.ctx : 1);
  printf("%s: %lld steps (%lld skipped, %lld non-finite losses), final scale %g, %.0f %s/s, "
         "activations %.2f MiB (saved for backward %.3f MiB + weights %.3f MiB)\n",
         R->o.precision, (long long)R->step, (long long)R->skipped, (long long)R->nonfinite,
         (double)amp_scaler_get_scale(R->scaler), (double)units / R->t_train,
         R->spec.kind == AMPC_MODEL_GPT ? "tokens" : "images", R->peak / 1048576.0,
         (double)R->saved.activation_bytes / 1048576.0, (double)R->saved.param_bytes / 1048576.0);
  if (R->o.save) {
    run_meta meta;
    train_opts_meta(&R->o, R->step, R->skipped, R->nonfinite, &meta);
    if (amp_checkpoint_save(R->ctx, R->o.save, R->model, R->opt, R->scaler, NULL, meta.kv,
                            meta.n) != AMP_OK) {
      fprintf(stderr, "ampc train: --save: %s\n", amp_ctx_error(R->ctx));
      return 1;
    }
  }
  return 0;
}

/* The options and the recipe; returns 0 or the exit status. */
static int parse(int argc, char **argv, mrun *R) {
  int rc = train_opts_parse(argc, argv, &R->o);
  if (rc || (rc = train_opts_recipe(&R->o, &R->r))) return rc;
  if (R->o.resume) return ampc_usage_error("%s", "--resume is for mlp: models only");
  char msg[256];
  if (ampc_parse_model_spec(R->o.model, &R->spec, msg, sizeof msg) != 1)
    return ampc_usage_error("%s", msg);
  const char *k = R->o.optim;
  R->kind = strcmp(k, "adam") == 0    ? AMP_OPTIM_ADAM
            : strcmp(k, "adamw") == 0 ? AMP_OPTIM_ADAMW
            : strcmp(k, "sgd") == 0   ? AMP_OPTIM_SGD
                                      : (amp_optim_kind)-1;
  if ((int)R->kind < 0) return ampc_usage_error("--optim: '%s' is not adam, adamw or sgd", k);
  return 0;
}

int ampc_is_model_family(int argc, char **argv) {
  const char *m = NULL; /* the last --model given (as --model X or --model=X) */
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
      m = argv[++i];
    else if (strncmp(argv[i], "--model=", 8) == 0)
      m = argv[i] + 8;
  return m && (strncmp(m, "gpt", 3) == 0 || strncmp(m, "cnn:", 4) == 0);
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
  int rc = parse(argc, argv, R);
  if (!rc) {
    R->ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)R->o.threads});
    rc = R->ctx ? setup(R) : 1;
    if (!rc) rc = train_loop(R);
  }
  amp_text_loader_free(R->tl);
  amp_loader_free(R->il);
  amp_text_free(R->text);
  amp_dataset_free(R->train);
  amp_dataset_free(R->test);
  amp_ctx_free(R->ctx);
  free(R);
  return rc;
}
