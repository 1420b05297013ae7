/* The FP8 scaling state (src/autocast/fp8.c) as the FP8 linear op
 * (src/ops/op_linear_fp8.c) and its binding to a model (src/nn/fp8_bind.c)
 * see it. Internal. */
#ifndef AMPC_FP8_STATE_H
#define AMPC_FP8_STATE_H

#include "../core/internal.h"

/* Tensor roles of one FP8 linear: rows of the state are 3·param + role. */
enum { AMP__FP8_INPUT = 0, AMP__FP8_WEIGHT = 1, AMP__FP8_GRAD = 2 };

typedef struct amp__fp8 {
  amp_fp8_params p;
  int hlen;                /* columns of the history: history_len (delayed) or 1 */
  int nparams;             /* rows: 3 · nparams */
  amp_tensor **params;     /* the model's parameters, in amp_module_param() order */
  float *hist;             /* [3·nparams][hlen], newest first ("fp8.amax_history") */
  float *scale;            /* [3·nparams] ("fp8.scale") */
  float *state;            /* [2]: steps ended, 1 when amaxes are pending ("fp8.state") */
  uint32_t sr_calls;       /* stochastic quantisations in this step (their stream) */
  int held;                /* 1: micro-batches (amp_fp8_micro_batch) until the step ends */
  int64_t micro;           /* the micro-batch running (its rounding stream) */
  struct amp__fp8_wcache { /* per parameter: its quantised weight of this step */
    uint8_t *q;
    float *scale_inv;
    size_t n, ns;
  } * wc;
} amp__fp8;

/* Attaches a state over params[0, n) whose buffers are hist, scale and state
 * (F32 tensors of the shapes above, already filled: zero histories, unit
 * scales, zero state). Validates p; returns the status (recorded). */
amp_status amp__fp8_attach(amp_ctx *ctx, amp_tensor *const *params, int n, const amp_fp8_params *p,
                           float *hist, float *scale, float *state);

/* Checks p (messages name amp_fp8_create). */
amp_status amp__fp8_check_params(amp_ctx *ctx, const amp_fp8_params *p);

/* The state row of a linear's weight w (a parameter or its autocast copy),
 * or -1 with an error recorded. */
int amp__fp8_slot(amp_ctx *ctx, const amp_tensor *w);

/* Quantises t (F32 or BF16, rows × cols packed) for `role` of `slot` with
 * the recipe's format and scaling into the step arena, describing it in
 * *out. Returns 1, or 0 with the error recorded. */
int amp__fp8_quantize(amp_ctx *ctx, int slot, int role, const amp_tensor *t, int64_t rows,
                      int64_t cols, amp_fp8_matrix *out);

#endif
