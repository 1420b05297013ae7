/* The GPT/CNN run shared by `ampc train`, `ampc eval` and `ampc diagnose`
 * (see model_run.h). */
#include "model_run.h"
#include "model_data.h"

#include <math.h>
#include <stdio.h>

amp_tensor *ampc_model_run_loss(ampc_model_run *m, const ampc_recipe *r, amp_tensor *x,
                                amp_tensor *y) {
  amp_ctx *ctx = m->ctx;
  if (m->spec.kind == AMPC_MODEL_CNN)
    x = amp_reshape(ctx, x, 4, (int64_t[]){x->shape[0], 1, 28, 28});
  if (r->dt != AMP_F32) amp_autocast_begin(ctx, r->dt);
  int fp8 = r->fp8 && amp_grad_enabled(ctx); /* FP8 linears in training (eval: bf16) */
  if (fp8) amp_fp8_begin(ctx);
  amp_tensor *logits = amp_module_forward(ctx, m->model, x);
  if (fp8) amp_fp8_end(ctx);
  if (logits) logits = amp_reshape(ctx, logits, 2, (int64_t[]){y->numel, -1});
  amp_tensor *yy = y ? amp_reshape(ctx, y, 1, (int64_t[]){y->numel}) : NULL;
  amp_tensor *loss = amp_cross_entropy(ctx, logits, yy);
  if (r->dt != AMP_F32) amp_autocast_end(ctx);
  return loss;
}

/* The optimizer and the scaler of the recipe. */
static void make_optim(ampc_model_run *m) {
  const train_opts *o = &m->o;
  amp_ctx *ctx = m->ctx;
  amp_optim_params op = amp_optim_defaults(m->kind);
  if (o->lr >= 0) op.lr = (float)o->lr;
  op.work_dtype = m->r.dt;
  op.master_weights = m->r.master_weights;
  op.rounding = m->r.rounding;
  op.seed = o->seed;
  op.zero_grad_in_step = 1;         /* every step is followed by zero_grad */
  op.grads_checked_in_backward = 1; /* only amp_backward() writes them */
  m->lr = op.lr;
  if (m->model && m->r.fp8 && amp_fp8_create(ctx, m->model, &m->r.fp8p) != AMP_OK) return;
  m->opt = m->model ? amp_optim_create(ctx, m->model, &op) : NULL;
  amp_scaler_params sp = amp_scaler_defaults(m->r.scale_mode);
  sp.init_scale = m->r.scale;
  sp.growth_interval = o->growth_interval;
  m->scaler = amp_scaler_create(ctx, &sp);
}

int ampc_model_run_open(ampc_model_run *m) {
  const train_opts *o = &m->o;
  const char *cmd = o->cmd ? o->cmd : "train";
  amp_ctx *ctx = m->ctx;
  int rc = m->spec.kind == AMPC_MODEL_GPT
               ? ampc_text_open(ctx, cmd, o->data, &m->text)
               : ampc_images_open(ctx, cmd, o->data, &m->train, &m->test);
  if (rc) {
    if (rc == 1 && amp_ctx_status(ctx) != AMP_OK)
      fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(ctx));
    return rc;
  }
  m->model = ampc_build_model(ctx, &m->spec, o->seed);
  if (m->model && o->init && ampc_init_weights(ctx, m->model, o->init)) return 1;
  make_optim(m);
  if (m->spec.kind == AMPC_MODEL_GPT) {
    m->tl =
        amp_text_loader_create(ctx, m->text, AMP_TEXT_TRAIN, o->batch, m->spec.gpt.ctx, 1, o->seed);
    m->per_epoch = m->tl ? amp_text_loader_batches_per_epoch(m->tl) : 0;
  } else {
    amp_loader_params lp = {o->batch, 1, o->seed, 1, m->r.dt, 1};
    m->il = amp_loader_create(ctx, m->train, &lp);
    m->per_epoch = m->il ? amp_loader_batches_per_epoch(m->il) : 0;
  }
  if (!m->model || !m->opt || !m->scaler || (!m->tl && !m->il)) {
    fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(ctx));
    return 1;
  }
  if (m->per_epoch < 1) {
    if (m->tl)
      fprintf(stderr, "ampc %s: --batch %ld of %d tokens is larger than the training text\n", cmd,
              o->batch, (int)m->spec.gpt.ctx);
    else
      fprintf(stderr, "ampc %s: --batch %ld is larger than the training set (%lld images)\n", cmd,
              o->batch, (long long)amp_dataset_size(m->train));
    return 2;
  }
  return 0;
}

int ampc_model_run_next(ampc_model_run *m, amp_tensor **x, amp_tensor **y) {
  if (m->tl) return amp_text_loader_next(m->tl, x, y);
  int got = amp_loader_next(m->il, x, y);
  if (got == 0) got = amp_loader_next(m->il, x, y); /* the next epoch */
  return got;
}

int ampc_model_run_step(ampc_model_run *m, amp_tensor *x, amp_tensor *y, double clip, int want_norm,
                        float *lv, float *gnorm) {
  amp_ctx *ctx = m->ctx;
  *lv = *gnorm = NAN;
  amp_tensor *loss = ampc_model_run_loss(m, &m->r, x, y);
  if (loss && m->o.loss_mul != 1) loss = amp_mul_scalar(ctx, loss, (float)m->o.loss_mul);
  if (!loss) return -1;
  *lv = *(float *)loss->data; /* cross-entropy is F32 */
  if (amp_backward(ctx, amp_scaler_scale(m->scaler, loss)) != AMP_OK) return -1;
  if (clip > 0 || want_norm) {
    if (amp_scaler_unscale(m->scaler, m->opt) != AMP_OK) return -1;
    amp_optim_clip_grad_norm(m->opt, (float)clip, gnorm);
  }
  int stepped = amp_scaler_step(m->scaler, m->opt);
  if (stepped < 0) return -1;
  amp_scaler_update(m->scaler); /* the step zeroed the gradients */
  return stepped;
}

void ampc_model_run_free(ampc_model_run *m) {
  amp_text_loader_free(m->tl);
  amp_loader_free(m->il);
  amp_text_free(m->text);
  amp_dataset_free(m->train);
  amp_dataset_free(m->test);
  m->tl = NULL;
  m->il = NULL;
  m->text = NULL;
  m->train = m->test = NULL;
}
