/* The internal interface between the loss scaler (src/scaler) and the
 * optimizer: what the scaler may ask of an optimizer, without seeing its
 * layout. The scaler keeps its own per-optimizer bookkeeping. */
#ifndef AMPC_OPTIM_SCALER_H
#define AMPC_OPTIM_SCALER_H

#include "ampc.h"

/* The optimizer's FP32 gradients: one contiguous buffer of *n values. */
void amp__optim_grads(amp_optim *o, float **g, int64_t *n);

/* Multiplies the pending gradient factor (which the next step applies in its
 * own pass) by f. */
void amp__optim_mul_factor(amp_optim *o, float f);

/* Drops the pending gradient factor (back to 1): the gradients it belonged
 * to were discarded or are about to be. */
void amp__optim_drop_factor(amp_optim *o);

/* Forgets what amp_backward() recorded of o's gradients' finiteness (see
 * grads_checked_in_backward): they were rewritten (unscaled, zeroed). */
void amp__optim_forget_checks(amp_optim *o);

/* The scaler skipped o's step (inf/NaN): with zero_grad_in_step, the
 * gradients are zeroed as a taken step would have left them. */
void amp__optim_skipped(amp_optim *o);

/* A step of o that happens only if every gradient is finite, with the
 * inf/NaN check (of the gradients without a recorded verdict, see
 * grads_checked_in_backward) and the update in one parallel region; each
 * block's gradients are then multiplied by the pending factor, or zeroed
 * with zero_grad_in_step. Returns 1 (masters, moments and step count
 * unchanged, the pending factor kept) when some gradient is inf or NaN,
 * else 0 (stepped, exactly as amp_optim_step). */
int amp__optim_step_if_finite(amp_optim *o);

#endif
