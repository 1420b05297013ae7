/* Small helpers shared by the elementwise ops. Internal. */
#ifndef AMPC_OP_UTIL_H
#define AMPC_OP_UTIL_H

#include "ops_internal.h"

/* The dtype of the buffer that will receive t's gradient (see amp__grad_of()),
 * found without allocating it: F32 for a leaf or a 16-bit copy of a leaf, the
 * tensor's own dtype for an intermediate result. A backward that computes in
 * F32 stores in this dtype, so a leaf's gradient is never rounded to 16 bits
 * on its way into its F32 accumulator. */
static inline amp_dtype amp__grad_dtype(const amp_tensor *t) {
  const amp_tensor *o = amp__master(t) ? amp__master(t) : t;
  if (o->grad) return o->grad->dtype;
  return amp__node_of(o) ? o->dtype : AMP_F32;
}

/* Records "<op>: input has dtype <dt>" and returns 0 unless t is F32, F16 or
 * BF16. */
static inline int amp__check_float(amp_ctx *ctx, amp__op op, const amp_tensor *t) {
  if (amp__dtype(t->dtype)->is_compute) return 1;
  amp__error(ctx, AMP_ERR_UNSUPPORTED, "%s: input has dtype %s; the op takes f32, f16, bf16",
             amp__ops[op].name, amp_dtype_name(t->dtype));
  return 0;
}

/* The start of a one-input op whose result has its input's shape: applies
 * the op's autocast category to x (the input computed on goes to c[0]),
 * checks that it is floating and allocates the result in the compute dtype.
 * NULL (error recorded) on failure. */
static inline amp_tensor *amp__unary_begin(amp_ctx *ctx, amp__op op, amp_tensor *x,
                                           amp_tensor **c) {
  amp_dtype dt;
  if (!amp__op_inputs(ctx, op, 1, &x, c, 0, &dt) || !amp__check_float(ctx, op, c[0])) return NULL;
  return amp__op_result(ctx, dt, c[0]->ndim, c[0]->shape);
}

#endif
