/* `ampc eval`: test accuracy of a model's weights; and the loading of a
 * weights file's model that eval and export share. */
#include "cli.h"
#include "guard.h"
#include "int8.h"
#include "json_out.h"
#include "train_opts.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lists the tensors of f ("0.weight [1024, 784], ...") into buf. */
static void tensor_list(const amp_safetensors *f, char *buf, size_t cap) {
  size_t k = 0;
  buf[0] = '\0';
  for (int i = 0; i < amp_safetensors_count(f) && k + 48 < cap; i++) {
    const amp_st_tensor *t = amp_safetensors_at(f, i);
    k += (size_t)snprintf(buf + k, cap - k, "%s%.48s %s [", i ? ", " : "", t->name, t->dtype_name);
    for (int d = 0; d < t->ndim && k + 24 < cap; d++)
      k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    k += (size_t)snprintf(buf + k, cap - k, "]");
  }
}

int ampc_load_model(const char *cmd, const char *path, const char *model, loaded *L) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(L->ctx, path, &f) != AMP_OK) {
    fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(L->ctx));
    return 1;
  }
  L->has_config = amp_safetensors_meta(f, "config.model") != NULL;
  int rc = train_opts_from_checkpoint(f, &L->o);
  if (!rc && model) L->o.model = model;
  if (!rc && !model && !L->has_config) {
    char list[600];
    tensor_list(f, list, sizeof list);
    fprintf(stderr,
            "ampc %s: %s does not say which model it holds (no config.model in its metadata, "
            "as in an ampc export or a plain state dict): give --model, e.g. --model "
            "mlp:784-1024-10 (its tensors: %s)\n",
            cmd, path, list);
    rc = 1;
  }
  L->nsizes = rc ? 0 : ampc_parse_model(L->o.model, L->sizes, 33);
  if (!rc && !L->nsizes) {
    fprintf(stderr, "ampc %s: %s: unknown model '%s'\n", cmd, path, L->o.model);
    rc = 1;
  }
  /* The file's tensors against the model its metadata (or --model) names,
     before that model is built. */
  if (!rc) rc = ampc_guard_checkpoint_model(cmd, path, f, L->o.model, L->sizes, L->nsizes);
  L->qat = L->o.qat != NULL || ampc_file_is_qat(f);
  amp_safetensors_free(f);
  if (rc) return rc;
  char msg[1024];
  L->model = ampc_build_mlp_q(L->ctx, L->sizes, L->nsizes, 0, L->qat);
  if (!L->model) {
    fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(L->ctx));
    return 1;
  }
  if (!ampc_load_weights(L->ctx, path, L->model, msg, sizeof msg)) {
    fprintf(stderr, "ampc %s: %s\n", cmd, msg);
    return 1;
  }
  return 0;
}

/* The test split alone (MNIST's t10k files, or synthetic data's test
 * slice); returns 1, or 0 with the error recorded on ctx. */
static int load_test(amp_ctx *ctx, const train_opts *o, const long *sizes, int n,
                     amp_dataset **test) {
  if (strcmp(o->data, "synthetic") == 0) {
    amp_dataset *train = NULL;
    int ok = train_load_data(ctx, o, sizes, n, &train, test);
    amp_dataset_free(train);
    return ok;
  }
  return amp_mnist_load(ctx, o->data, 0, test) == AMP_OK;
}

typedef struct eval_opts {
  const char *checkpoint, *model, *data, *precision;
  long threads, batch, synthetic_n;
  int json;
} eval_opts;

#define EOPT(name, kind, member, arg, lo, hi, help)                                                \
  { name, 0, kind, offsetof(eval_opts, member), arg, lo, hi, help, NULL }

static const ampc_opt EVAL_OPTS[] = {
    EOPT("checkpoint", AMPC_OPT_STR, checkpoint, "FILE", 0, 0,
         "the weights (or give FILE as the argument)"),
    EOPT("model", AMPC_OPT_STR, model, "mlp:IN-H-...-OUT", 0, 0,
         "the model, when the file does not say it (exports, plain state dicts)"),
    EOPT("data", AMPC_OPT_STR, data, "DIR|synthetic", 0, 0,
         "test data (default: the checkpoint's, else data/mnist); only the test split is read"),
    EOPT("precision", AMPC_OPT_ENUM, precision, "fp32|fp16|bf16", 0, 0,
         "autocast dtype of the evaluation (default: the checkpoint's, else fp32)"),
    EOPT("synthetic-n", AMPC_OPT_LONG, synthetic_n, "N", 2, 1 << 24,
         "size of --data synthetic (default: the checkpoint's, else 12000)"),
    EOPT("batch", AMPC_OPT_LONG, batch, "N", 1, 1 << 20, "evaluation batch size (default 1000)"),
    EOPT("threads", AMPC_OPT_LONG, threads, "N", 1, 1024, "OpenMP threads (default 2)"),
    EOPT("json", AMPC_OPT_FLAG, json, "", 0, 0, "print the result as one JSON object"),
};

const ampc_cmd ampc_cmd_eval = {
    "eval",
    "[options] FILE",
    "Test accuracy of the weights in FILE: an ampc checkpoint (ampc train --save), an\n"
    "ampc export (F16/BF16), or a plain safetensors state dict such as PyTorch's\n"
    "safetensors.torch.save_file(model.state_dict()) of nn.Sequential(nn.Linear,\n"
    "nn.ReLU, nn.Linear, ...) (names 0.weight, 0.bias, 2.weight, ...; then --model).\n"
    "A GPT's or a CNN's checkpoint (ampc train --model gpt:...|cnn:... --save): the\n"
    "validation loss (nats per token, 20 validation batches) or the test accuracy.\n"
    "A checkpoint of a --qat int8 run evaluates fake-quantized; an INT8 export (ampc\n"
    "export --int8) runs integer GEMMs (u8 activations x s8 weights, INT32 sums).",
    EVAL_OPTS,
    (int)(sizeof EVAL_OPTS / sizeof EVAL_OPTS[0]),
    1,
    "Exit status: 0 done, 1 failed, 2 bad usage.",
    "test accuracy of a checkpoint, an export or a state dict"};

/* Scores L's model on the test split and prints the result; returns the
 * exit status. */
static int score(const eval_opts *e, loaded *L) {
  ampc_recipe r;
  amp_dataset *test = NULL;
  int rc = train_opts_recipe(&L->o, &r);
  if (!rc && !load_test(L->ctx, &L->o, L->sizes, L->nsizes, &test)) {
    fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(L->ctx));
    rc = 1;
  }
  if (!rc && (amp_dataset_features(test) != L->sizes[0] ||
              amp_dataset_classes(test) != L->sizes[L->nsizes - 1])) {
    fprintf(stderr, "ampc eval: the model %s does not fit the data (%lld features, %lld classes)\n",
            L->o.model, (long long)amp_dataset_features(test),
            (long long)amp_dataset_classes(test));
    rc = 1;
  }
  double acc = rc ? -1 : ampc_evaluate(L->ctx, L->model, test, r.dt, e->batch);
  if (!rc && acc < 0) {
    fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(L->ctx));
    rc = 1;
  }
  if (!rc && e->json) {
    cJSON *j = cJSON_CreateObject();
    ampc_json_str(j, "checkpoint", e->checkpoint);
    ampc_json_str(j, "model", L->o.model);
    ampc_json_str(j, "precision", L->o.precision);
    if (L->qat) ampc_json_str(j, "qat", "int8 (fake-quantized)");
    ampc_json_str(j, "data", L->o.data);
    ampc_json_int(j, "test_samples", amp_dataset_size(test));
    ampc_json_fmt(j, "test_accuracy", "%.4f", 100 * acc);
    if (ampc_json_line(stdout, j) != 0) rc = 1;
  } else if (!rc) {
    printf("%s: %s in %s%s, test accuracy %.2f%% on %lld samples\n", e->checkpoint, L->o.model,
           L->o.precision, L->qat ? " (QAT, fake-quantized int8)" : "", 100 * acc,
           (long long)amp_dataset_size(test));
  }
  amp_dataset_free(test);
  return rc;
}

/* Non-zero when `path` is a readable INT8 export (else the normal path
 * reports what is wrong with it). */
static int is_int8(amp_ctx *ctx, const char *path) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(ctx, path, &f) != AMP_OK) {
    amp_ctx_clear_error(ctx);
    return 0;
  }
  int r = ampc_int8_is_file(f);
  amp_safetensors_free(f);
  return r;
}

int ampc_eval_main(int argc, char **argv) {
  eval_opts e = {NULL, NULL, NULL, NULL, 2, 1000, 0, 0};
  const char *pos[1];
  int npos = 0;
  int rc = ampc_opts_parse(&ampc_cmd_eval, argc, argv, &e, pos, &npos);
  if (rc) return rc == AMPC_OPTS_HELP ? 0 : rc;
  if (npos && e.checkpoint)
    return ampc_opts_error(&ampc_cmd_eval, "two files: --checkpoint %s and %s", e.checkpoint,
                           pos[0]);
  if (npos) e.checkpoint = pos[0];
  if (!e.checkpoint) return ampc_opts_error(&ampc_cmd_eval, "which weights? (FILE)");
  if (ampc_is_model_checkpoint(e.checkpoint)) { /* a GPT's or a CNN's run */
    if (e.model || e.synthetic_n)
      return ampc_opts_error(&ampc_cmd_eval, "--model and --synthetic-n are for mlp: models (%s)",
                             e.checkpoint);
    return ampc_eval_model(e.checkpoint, e.precision, e.data, e.threads, e.json);
  }
  loaded L;
  memset(&L, 0, sizeof L);
  train_opts_default(&L.o);
  L.o.cmd = "eval";
  L.ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)e.threads});
  if (!L.ctx) return 1;
  int int8 = is_int8(L.ctx, e.checkpoint);
  if (int8 && (e.precision || e.model)) {
    amp_ctx_free(L.ctx);
    return ampc_opts_error(&ampc_cmd_eval,
                           "%s is an INT8 export: --precision and --model do not "
                           "apply (it runs integer GEMMs, its tensors say the model)",
                           e.checkpoint);
  }
  if (int8) {
    ampc_int8_eval ie = {e.checkpoint, e.data, e.batch, e.synthetic_n, e.json};
    rc = ampc_int8_eval_main(L.ctx, &ie);
    amp_ctx_free(L.ctx);
    return rc;
  }
  rc = ampc_load_model("eval", e.checkpoint, e.model, &L);
  if (!rc) {
    if (!L.has_config) L.o.precision = "fp32";
    if (e.precision) L.o.precision = e.precision;
    if (e.data) L.o.data = e.data;
    if (e.synthetic_n) L.o.synthetic_n = e.synthetic_n;
    if (!L.has_config) L.o.loss_scale = NULL;
    rc = score(&e, &L);
  }
  amp_ctx_free(L.ctx);
  return rc;
}
