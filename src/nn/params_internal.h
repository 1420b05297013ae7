/* The parameter store: one slab per role (FP32 masters, FP32 gradients,
 * 16-bit working copies), each a contiguous buffer carved into the
 * parameters from the moment a module creates them (amp_param_new). The
 * optimizer takes a model's run of the slabs and adds only its moments. */
#ifndef AMPC_PARAMS_INTERNAL_H
#define AMPC_PARAMS_INTERNAL_H

#include "../core/internal.h"

#include <stdint.h>

/* One slab: `cap` values per role, the first `used` handed out. Slabs never
 * move, so parameter pointers stay valid for the context's life. */
typedef struct amp__param_slab {
  struct amp__param_slab *next;
  float *master, *grad;
  uint16_t *work; /* 16-bit working copies (F16 or BF16 bits), made on demand */
  int64_t cap, used;
} amp__param_slab;

/* A contiguous run of parameters in one slab: values [off, off + n). */
typedef struct amp__param_range {
  amp__param_slab *slab;
  int64_t off, n;
} amp__param_range;

/* The run holding params[0..np) in order. When they do not already lie
 * back to back in one slab (a model assembled out of creation order, or
 * tensors made outside the store), they move into a new slab of their own,
 * values kept, gradients zeroed, each tensor re-pointed. Returns 0 (error
 * recorded) when out of memory or a tensor is not an F32 leaf. */
int amp__params_range(amp_ctx *ctx, amp_tensor *const *params, int np, amp__param_range *r);

/* Gives every parameter of the run a working copy of dtype `dt` (F16 or
 * BF16) in the slab's 16-bit buffer (allocated on first use), linked to its
 * parameter both ways. Returns the run's first 16-bit value, or NULL (error
 * recorded) when out of memory. The values are not written. */
uint16_t *amp__params_work(amp_ctx *ctx, const amp__param_range *r, amp_tensor *const *params,
                           int np, amp_dtype dt);

#endif
