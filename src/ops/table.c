/* THE op table: every differentiable op, its autocast category and its
 * backward, one row per line of the op list (ops.def). The category column
 * of that list is the precision policy: which ops run in the low-precision
 * dtype under autocast, which are upcast to F32 for accuracy, which promote
 * and which keep their input's dtype.
 *
 *   lower   — matrix products: their cost is in multiply-adds that F16/BF16
 *             tensor units and half the memory traffic make fast, and FP32
 *             accumulation keeps their error at k·2^-11 relative;
 *   fp32    — exponentials, logarithms, long reductions and normalisation:
 *             their range (exp overflows F16 above 11) or their accumulated
 *             rounding would cost accuracy;
 *   promote — binary arithmetic: the wider input decides, so adding an F32
 *             residual or bias never loses its bits;
 *   same    — monotone or data-movement ops that do no arithmetic worth
 *             widening. */
#include "ops_internal.h"

#include <string.h>

/* One row per line of the op list (ops.def); the backward prototypes come
 * from the same list (ops_internal.h). */
const amp__op_def amp__ops[AMP__OP_COUNT] = {
#define AMP__OP(id, name, category, backward) [AMP__OP_##id] = {name, category, backward},
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
  }
  return "invalid";
}
