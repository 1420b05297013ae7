/* INT8 models: `ampc export --int8` (the INT8 weights of a QAT checkpoint
 * with their scales) and the integer inference `ampc eval` runs on such a
 * file (int8.c). Public API only. */
#ifndef AMPC_INT8_H
#define AMPC_INT8_H

#include "ampc.h"

#include <stddef.h>

/* Writes the INT8 model of a QAT-trained MLP (`model`, built with
 * ampc_build_mlp_q(..., 1) and loaded from a checkpoint of a --qat int8
 * run) to `path`, atomically: per Linear layer "<i>.weight" I8 [out, in]
 * (quantized with the per-channel symmetric scales of its weight observer),
 * "<i>.weight_scale" F32 [out], "<i>.bias" F32 [out], "<i>.input_scale" F32
 * [1] and "<i>.input_zero_point" I32 [1] (its input observer's quint8
 * parameters); metadata "ampc.int8" = "mlp", "ampc.model" = spec,
 * "ampc.data" = data and (when > 0) "ampc.synthetic-n", which eval uses
 * for its test data unless told otherwise. Returns 1, or 0 with a message in msg (nothing
 * written): a layer without observations, non-finite observers. */
int ampc_int8_export(amp_ctx *ctx, const char *path, amp_module *model, const char *spec,
                     const char *data, long synthetic_n, char *msg, size_t cap);

/* Non-zero when f is an INT8 export (metadata "ampc.int8", or an I8
 * tensor). */
int ampc_int8_is_file(const amp_safetensors *f);

/* The options of an INT8 evaluation. */
typedef struct ampc_int8_eval {
  const char *path; /* the INT8 file */
  const char *data; /* NULL: the file's ampc.data, else data/mnist */
  long batch;
  long synthetic_n;
  int json;
} ampc_int8_eval;

/* Test accuracy of the INT8 file e->path with integer GEMMs (amp_qlinear:
 * u8 activations × s8 weights, INT32 accumulation, F32 between layers,
 * ReLU between the layers); prints the result. Every tensor is checked
 * first (dtype, shape, chained sizes; scales finite and > 0, zero points in
 * [0, 255], finite biases): a message naming the tensor and exit status 1
 * otherwise. Returns the exit status. */
int ampc_int8_eval_main(amp_ctx *ctx, const ampc_int8_eval *e);

#endif
