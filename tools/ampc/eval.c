/* `ampc eval`: test accuracy of a checkpoint's model; and the loading of a
 * checkpoint's model that eval and export share. */
#include "cli.h"
#include "guard.h"
#include "train_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ampc_load_checkpoint_model(const char *cmd, const char *path, loaded *L) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(L->ctx, path, &f) != AMP_OK) {
    fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(L->ctx));
    return 1;
  }
  int rc = train_opts_from_checkpoint(f, &L->o);
  L->nsizes = rc ? 0 : ampc_parse_model(L->o.model, L->sizes, 33);
  if (!rc && !L->nsizes) {
    fprintf(stderr, "ampc %s: %s: unknown model '%s'\n", cmd, path, L->o.model);
    rc = 1;
  }
  /* The file's tensors against the model its metadata names, before that
     model is built. */
  if (!rc) rc = ampc_guard_checkpoint_model(cmd, path, f, L->o.model, L->sizes, L->nsizes);
  amp_safetensors_free(f);
  if (rc) return rc;
  L->model = ampc_build_mlp(L->ctx, L->sizes, L->nsizes, 0);
  if (!L->model || amp_checkpoint_load(L->ctx, path, L->model, NULL, NULL, NULL) != AMP_OK) {
    fprintf(stderr, "ampc %s: %s\n", cmd, amp_ctx_error(L->ctx));
    return 1;
  }
  return 0;
}

int ampc_eval_main(int argc, char **argv) {
  loaded L;
  memset(&L, 0, sizeof L);
  train_opts_default(&L.o);
  const char *path = NULL, *data = NULL;
  long threads = 2;
  int json = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      json = 1;
      continue;
    }
    if (i + 1 >= argc) return ampc_usage_error("%s needs a value", argv[i]);
    if (strcmp(argv[i], "--checkpoint") == 0)
      path = argv[++i];
    else if (strcmp(argv[i], "--data") == 0)
      data = argv[++i];
    else if (strcmp(argv[i], "--threads") == 0) {
      if (!ampc_parse_long("--threads", argv[++i], 1, 1024, &threads)) return 2;
    } else
      return ampc_usage_error("unknown option '%s'", argv[i]);
  }
  if (!path) return ampc_usage_error("%s", "eval needs --checkpoint FILE");
  L.ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)threads});
  int rc = ampc_load_checkpoint_model("eval", path, &L);
  amp_dataset *train = NULL, *test = NULL;
  if (!rc) {
    if (data) L.o.data = data;
    ampc_recipe r;
    rc = train_opts_recipe(&L.o, &r);
    if (!rc && !train_load_data(L.ctx, &L.o, L.sizes, L.nsizes, &train, &test)) {
      fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(L.ctx));
      rc = 1;
    }
    if (!rc && (amp_dataset_features(test) != L.sizes[0] ||
                amp_dataset_classes(test) != L.sizes[L.nsizes - 1])) {
      fprintf(stderr, "ampc eval: the checkpoint's model %s does not fit the data\n", L.o.model);
      rc = 1;
    }
    if (!rc) {
      double acc = ampc_evaluate(L.ctx, L.model, test, r.dt, 1000);
      if (acc < 0) {
        fprintf(stderr, "ampc eval: %s\n", amp_ctx_error(L.ctx));
        rc = 1;
      } else if (json) {
        printf("{\"checkpoint\":\"%s\",\"model\":\"%s\",\"precision\":\"%s\",\"test_samples\":%lld,"
               "\"test_accuracy\":%.4f}\n",
               path, L.o.model, L.o.precision, (long long)amp_dataset_size(test), 100 * acc);
      } else {
        printf("%s: %s in %s, test accuracy %.2f%% on %lld samples\n", path, L.o.model,
               L.o.precision, 100 * acc, (long long)amp_dataset_size(test));
      }
    }
  }
  amp_dataset_free(train);
  amp_dataset_free(test);
  amp_ctx_free(L.ctx);
  return rc;
}
