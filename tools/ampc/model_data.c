/* The data of the GPT and CNN runs (`ampc train --model gpt:...|cnn:...`):
 * --data text:PATH (any file, bytes as tokens), fortunes (the default for a
 * GPT: Debian's fortune files), fashion-mnist (Debian's
 * dataset-fashion-mnist, the default for a CNN). */
#include "model_data.h"

#include <stdio.h>
#include <string.h>

int ampc_is_default_data(const char *data) { return strcmp(data, "data/mnist") == 0; }

int ampc_text_open(amp_ctx *ctx, const char *cmd, const char *data, amp_text **out) {
  *out = NULL;
  if (ampc_is_default_data(data) || strcmp(data, "fortunes") == 0)
    return amp_text_load_fortunes(ctx, NULL, out) == AMP_OK ? 0 : 1;
  if (strncmp(data, "text:", 5) == 0 && data[5])
    return amp_text_load(ctx, data + 5, out) == AMP_OK ? 0 : 1;
  fprintf(stderr, "ampc %s: --data '%s': a GPT trains on text:PATH or fortunes\n", cmd, data);
  return 2;
}

int ampc_images_open(amp_ctx *ctx, const char *cmd, const char *data, amp_dataset **train,
                     amp_dataset **test) {
  *train = *test = NULL;
  if (!ampc_is_default_data(data) && strcmp(data, "fashion-mnist") != 0) {
    fprintf(stderr, "ampc %s: --data '%s': the CNN trains on fashion-mnist\n", cmd, data);
    return 2;
  }
  if (amp_fashion_mnist_load(ctx, NULL, 1, train) != AMP_OK ||
      amp_fashion_mnist_load(ctx, NULL, 0, test) != AMP_OK) {
    fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(ctx));
    return 1;
  }
  return 0;
}

/* 0 when the file's tensor t fits parameter p (F32, F16 or BF16, the same
 * shape); else 1 with a message. */
static int check_weight(const char *path, const char *name, const amp_st_tensor *t,
                        const amp_tensor *p) {
  if (!t) {
    fprintf(stderr, "ampc: --init %s: the model's parameter %s is not in the file\n", path, name);
    return 1;
  }
  int same = t->ndim == p->ndim;
  for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
  if (same && (t->dtype == AMP_F32 || t->dtype == AMP_F16 || t->dtype == AMP_BF16)) return 0;
  char want[96] = "", got[96] = "";
  for (int d = 0; d < p->ndim; d++)
    snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "",
             (long long)p->shape[d]);
  for (int d = 0; d < t->ndim; d++)
    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "",
             (long long)t->shape[d]);
  fprintf(stderr,
          "ampc: --init %s: tensor %s is %s [%s], the model's is f32 [%s] (f32, f16 or "
          "bf16 accepted)\n",
          path, name, t->dtype < AMP_DTYPE_COUNT ? amp_dtype_name(t->dtype) : "of another dtype",
          got, want);
  return 1;
}

int ampc_init_weights(amp_ctx *ctx, amp_module *model, const char *path) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(ctx, path, &f) != AMP_OK) {
    fprintf(stderr, "ampc: --init: %s\n", amp_ctx_error(ctx));
    return 1;
  }
  int rc = 0, np = amp_module_param_count(model);
  /* Check every name first, so that nothing is half-loaded on an error. */
  for (int i = 0; i < np && !rc; i++) {
    const char *name;
    amp_tensor *p = amp_module_param(model, i, &name);
    rc = check_weight(path, name, amp_safetensors_find(f, name), p);
  }
  for (int i = 0; i < amp_safetensors_count(f) && !rc; i++) {
    const char *n = amp_safetensors_at(f, i)->name;
    int known = strcmp(n, "lm_head.weight") == 0 || strstr(n, "running_") ||
                strstr(n, "num_batches_tracked") || strncmp(n, "optim.", 6) == 0;
    for (int j = 0; j < np && !known; j++) {
      const char *name;
      amp_module_param(model, j, &name);
      known = strcmp(name, n) == 0;
    }
    if (!known) {
      fprintf(stderr, "ampc: --init %s: tensor %s is not a parameter of the model\n", path, n);
      rc = 1;
    }
  }
  for (int i = 0; i < np && !rc; i++) {
    const char *name;
    amp_tensor *p = amp_module_param(model, i, &name);
    const amp_st_tensor *t = amp_safetensors_find(f, name);
    rc = amp_convert(p->data, AMP_F32, t->data, t->dtype, (size_t)p->numel) == AMP_OK ? 0 : 1;
  }
  amp_safetensors_free(f);
  return rc;
}
