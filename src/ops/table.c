/* THE op table: every differentiable op, its autocast category and its
 * backward, one row per line of the op list (ops.def). The category column
 * of that list is the precision policy: which ops run in the low-precision
 * dtype under autocast, which are upcast to F32 for accuracy, which promote
 * and which keep their input's dtype.
 *
 *   lower   — matrix products: their cost is in multiply-adds that F16/BF16
 *             tensor units and half the memory traffic make fast, and FP32
 *             accumulation keeps their error at k·2^-11 relative;
 *   fp32    — exponentials, logarithms, long reductions and losses:
 *             their range (exp overflows F16 above 11) or their accumulated
 *             rounding would cost accuracy;
 *   norm    — layer and batch normalisation: the statistics (mean,
 *             variance, running statistics) are computed and kept in F32
 *             from the inputs as they are, and the result is stored in the
 *             autocast dtype, as the 16-bit tensors that the next matrix
 *             product would cast it to anyway: what follows a norm (and
 *             what backward saves of it) is 16-bit, half the memory of
 *             F32 (PyTorch's practice for batch norm); outside autocast,
 *             the widest input dtype;
 *   promote — binary arithmetic: the wider input decides, so adding an F32
 *             residual or bias never loses its bits;
 *   same    — monotone or data-movement ops that do no arithmetic worth
 *             widening.
 *
 * The reads column: ops that read OWN load a 16-bit input straight into F32
 * registers instead of computing on an F32 copy made by a cast (cross-
 * entropy of 16-bit logits, a norm of an F32 residual, an F32 residual plus
 * a 16-bit branch): the same values (the upcast is exact) without the copy
 * and its gradient. */
#include "ops_internal.h"

#include <string.h>

/* One row per line of the op list (ops.def); the backward prototypes come
 * from the same list (ops_internal.h). */
const amp__op_def amp__ops[AMP__OP_COUNT] = {
#define AMP__OP(id, name, category, reads, backward)                                               \
  [AMP__OP_##id] = {name, category, AMP__READS_##reads, backward},
#include "ops.def"
#undef AMP__OP
};

int amp_op_count(void) { return AMP__OP_COUNT; }

const char *amp_op_name(int i) { return i >= 0 && i < AMP__OP_COUNT ? amp__ops[i].name : NULL; }

int amp_op_category_of(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < AMP__OP_COUNT; i++)
    if (strcmp(amp__ops[i].name, name) == 0) return (int)amp__ops[i].category;
  return -1;
}

const char *amp_op_category_name(amp_op_category c) {
  switch (c) {
  case AMP_CAT_LOWER: return "lower";
  case AMP_CAT_FP32: return "fp32";
  case AMP_CAT_PROMOTE: return "promote";
  case AMP_CAT_SAME: return "same";
  case AMP_CAT_NORM: return "norm";
  }
  return "invalid";
}
