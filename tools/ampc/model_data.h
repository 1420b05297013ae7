/* Data and initial weights of the GPT and CNN runs (model_data.c). */
#ifndef AMPC_MODEL_DATA_H
#define AMPC_MODEL_DATA_H

#include "ampc.h"

/* Non-zero when --data was not given (the MLP's default, data/mnist). */
int ampc_is_default_data(const char *data);

/* The corpus of --data text:PATH | fortunes (the default). Returns 0, or the
 * exit status (a message "ampc CMD: ..." printed except for load errors,
 * left on ctx). */
int ampc_text_open(amp_ctx *ctx, const char *cmd, const char *data, amp_text **out);

/* Fashion-MNIST's train and test sets for --data fashion-mnist (the
 * default). Returns 0, or the exit status (message "ampc CMD: ..."). */
int ampc_images_open(amp_ctx *ctx, const char *cmd, const char *data, amp_dataset **train,
                     amp_dataset **test);

/* --init FILE: copies every parameter of `model` from the safetensors file
 * tensor of the same name (PyTorch state_dict names; F32, F16 or BF16, the
 * same shape). The file's lm_head.weight (tied to transformer.wte.weight)
 * and BatchNorm buffers are accepted and not loaded, and so are an ampc
 * checkpoint's optimizer moments ("optim.*": a checkpoint's weights). All names and shapes
 * are checked before any weight is written; the first mismatch is named.
 * Returns 0, or 1 (message printed). */
int ampc_init_weights(amp_ctx *ctx, amp_module *model, const char *path);

#endif
