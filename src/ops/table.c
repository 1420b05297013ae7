/* THE op table: every differentiable op, its autocast category and its
 * backward. This is where the precision policy lives: which ops run in the
 * low-precision dtype under autocast, which are upcast to F32 for accuracy,
 * which promote and which keep their input's dtype.
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

amp_status amp__matmul_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__bmm_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__linear_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__conv2d_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__softmax_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__log_softmax_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__cross_entropy_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__mse_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__layer_norm_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__exp_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__log_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__sum_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__mean_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__add_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__sub_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__mul_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__mul_scalar_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__relu_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__gelu_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__dropout_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__reshape_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__max_pool2d_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__cast_backward(amp_ctx *, amp__node *, const amp_tensor *);
amp_status amp__embedding_backward(amp_ctx *, amp__node *, const amp_tensor *);

const amp__op_def amp__ops[AMP__OP_COUNT] = {
    /* op                        name             category          backward */
    [AMP__OP_MATMUL] = {"matmul", AMP_CAT_LOWER, amp__matmul_backward},
    [AMP__OP_BMM] = {"bmm", AMP_CAT_LOWER, amp__bmm_backward},
    [AMP__OP_LINEAR] = {"linear", AMP_CAT_LOWER, amp__linear_backward},
    [AMP__OP_CONV2D] = {"conv2d", AMP_CAT_LOWER, amp__conv2d_backward},
    [AMP__OP_SOFTMAX] = {"softmax", AMP_CAT_FP32, amp__softmax_backward},
    [AMP__OP_LOG_SOFTMAX] = {"log_softmax", AMP_CAT_FP32, amp__log_softmax_backward},
    [AMP__OP_CROSS_ENTROPY] = {"cross_entropy", AMP_CAT_FP32, amp__cross_entropy_backward},
    [AMP__OP_MSE] = {"mse", AMP_CAT_FP32, amp__mse_backward},
    [AMP__OP_LAYER_NORM] = {"layer_norm", AMP_CAT_FP32, amp__layer_norm_backward},
    [AMP__OP_EXP] = {"exp", AMP_CAT_FP32, amp__exp_backward},
    [AMP__OP_LOG] = {"log", AMP_CAT_FP32, amp__log_backward},
    [AMP__OP_SUM] = {"sum", AMP_CAT_FP32, amp__sum_backward},
    [AMP__OP_MEAN] = {"mean", AMP_CAT_FP32, amp__mean_backward},
    [AMP__OP_ADD] = {"add", AMP_CAT_PROMOTE, amp__add_backward},
    [AMP__OP_SUB] = {"sub", AMP_CAT_PROMOTE, amp__sub_backward},
    [AMP__OP_MUL] = {"mul", AMP_CAT_PROMOTE, amp__mul_backward},
    [AMP__OP_MUL_SCALAR] = {"mul_scalar", AMP_CAT_SAME, amp__mul_scalar_backward},
    [AMP__OP_RELU] = {"relu", AMP_CAT_SAME, amp__relu_backward},
    [AMP__OP_GELU] = {"gelu", AMP_CAT_SAME, amp__gelu_backward},
    [AMP__OP_DROPOUT] = {"dropout", AMP_CAT_SAME, amp__dropout_backward},
    [AMP__OP_RESHAPE] = {"reshape", AMP_CAT_SAME, amp__reshape_backward},
    [AMP__OP_FLATTEN] = {"flatten", AMP_CAT_SAME, amp__reshape_backward},
    [AMP__OP_MAX_POOL2D] = {"max_pool2d", AMP_CAT_SAME, amp__max_pool2d_backward},
    [AMP__OP_CAST] = {"cast", AMP_CAT_SAME, amp__cast_backward},
    [AMP__OP_EMBEDDING] = {"embedding", AMP_CAT_SAME, amp__embedding_backward},
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
