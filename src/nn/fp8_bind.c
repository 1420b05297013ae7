/* amp_fp8_create: the FP8 scaling state of a model, kept in three buffers
 * of the model so that checkpoints save and restore it (see ampc.h). */
#include "../autocast/fp8_state.h"
#include "nn_internal.h"

#include <stdlib.h>

static amp_tensor *filled(amp_ctx *ctx, int ndim, const int64_t *shape, float v) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, ndim, shape);
  for (int64_t i = 0; t && i < t->numel; i++) ((float *)t->data)[i] = v;
  return t;
}

amp_status amp_fp8_create(amp_ctx *ctx, amp_module *model, const amp_fp8_params *p) {
  if (!ctx) return AMP_ERR_INVALID_ARG;
  amp_status st = amp__fp8_check_params(ctx, p);
  if (st != AMP_OK) return st;
  if (!model || model->nparams < 1)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_fp8_create: a model with parameters is needed");
  if (ctx->fp8) return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_fp8_create: ctx has an FP8 state");
  int64_t rows = 3 * (int64_t)model->nparams;
  int64_t h = p->scaling == AMP_FP8_DELAYED ? p->history_len : 1;
  amp_tensor *hist = filled(ctx, 2, (int64_t[]){rows, h}, 0.0f);
  amp_tensor *scale = filled(ctx, 1, &rows, 1.0f);
  amp_tensor *state = filled(ctx, 1, (int64_t[]){2}, 0.0f);
  if (!hist || !scale || !state) return amp_ctx_status(ctx);
  st = amp__fp8_attach(ctx, model->params, model->nparams, p, hist->data, scale->data, state->data);
  if (st != AMP_OK) return st;
  if (!amp__module_push_buffer(ctx, model, hist, "fp8.amax_history") ||
      !amp__module_push_buffer(ctx, model, scale, "fp8.scale") ||
      !amp__module_push_buffer(ctx, model, state, "fp8.state"))
    return amp_ctx_status(ctx) != AMP_OK
               ? amp_ctx_status(ctx)
               : amp__error(ctx, AMP_ERR_NOMEM, "amp_fp8_create: out of memory");
  return AMP_OK;
}
