/* The GPT/CNN run that `ampc train`, `ampc eval` (train_model.c) and
 * `ampc diagnose` (diagnose.c) share (model_run.c): the data, model,
 * optimizer, scaler and training loader built as `ampc train` builds them,
 * the loss under a recipe's autocast, the next training batch and one
 * training step (the same bits in every command). */
#ifndef AMPC_MODEL_RUN_H
#define AMPC_MODEL_RUN_H

#include "recipe.h"
#include "train_opts.h"

#include <stdint.h>

typedef struct ampc_model_run {
  train_opts o; /* the run's options (o.cmd names the command in messages) */
  ampc_recipe r;
  ampc_model_spec spec;
  amp_optim_kind kind;
  amp_ctx *ctx; /* the caller's; not freed by ampc_model_run_free() */
  amp_module *model;
  amp_optim *opt;
  amp_scaler *scaler;
  amp_text *text;      /* GPT: the corpus ... */
  amp_text_loader *tl; /* ... and its training batches */
  amp_dataset *train, *test;
  amp_loader *il;    /* CNN: the training images */
  float lr;          /* the optimizer's base learning rate */
  int64_t per_epoch; /* training batches per epoch */
} ampc_model_run;

/* Opens the data (o.data), builds the model from o.seed (then --init),
 * the FP8 state of an fp8 recipe, the optimizer, the scaler and the
 * training loader, from m->o, m->r, m->spec, m->kind and m->ctx. Returns 0,
 * or the exit status (message printed). */
int ampc_model_run_open(ampc_model_run *m);

/* Mean cross-entropy of the model's logits on x against y under recipe r's
 * autocast (FP8 linears when r->fp8 and gradients are on); not multiplied
 * by --loss-mul. NULL on error (recorded on the context). */
amp_tensor *ampc_model_run_loss(ampc_model_run *m, const ampc_recipe *r, amp_tensor *x,
                                amp_tensor *y);

/* The next training batch (a new epoch of images when one ends); 1, or 0 /
 * -1 as the loaders return. */
int ampc_model_run_next(ampc_model_run *m, amp_tensor **x, amp_tensor **y);

/* One training step on (x, y) as `ampc train` takes it: the loss (times
 * --loss-mul) in *lv, backward of the scaled loss, with clip > 0 or
 * want_norm the unscale and the clipped gradient norm in *gnorm, the
 * scaler's step and update, the gradients zeroed. Returns 1 (stepped), 0
 * (skipped: overflow) or -1 (an error, recorded on the context; *lv NaN
 * when no loss was computed). */
int ampc_model_run_step(ampc_model_run *m, amp_tensor *x, amp_tensor *y, double clip, int want_norm,
                        float *lv, float *gnorm);

/* Frees the data and loaders (the model, optimizer and scaler live on the
 * context). */
void ampc_model_run_free(ampc_model_run *m);

#endif
