/* `ampc export`: the 16-bit weights of a checkpoint alone, as safetensors. */
#include "cli.h"
#include "train_opts.h"

#include <stdio.h>
#include <string.h>

int ampc_export_main(int argc, char **argv) {
  loaded L;
  memset(&L, 0, sizeof L);
  train_opts_default(&L.o);
  const char *path = NULL, *out = NULL, *dts = "f16";
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "--", 2) != 0) {
      if (out) return ampc_usage_error("unexpected argument '%s'", argv[i]);
      out = argv[i];
      continue;
    }
    if (i + 1 >= argc) return ampc_usage_error("%s needs a value", argv[i]);
    if (strcmp(argv[i], "--checkpoint") == 0)
      path = argv[++i];
    else if (strcmp(argv[i], "--dtype") == 0)
      dts = argv[++i];
    else if (strcmp(argv[i], "--out") == 0)
      out = argv[++i];
    else
      return ampc_usage_error("unknown option '%s'", argv[i]);
  }
  amp_dtype dt;
  if (amp_dtype_parse(dts, &dt) != AMP_OK || (dt != AMP_F16 && dt != AMP_BF16))
    return ampc_usage_error("--dtype: '%s' is not f16 or bf16", dts);
  if (!path || !out)
    return ampc_usage_error("%s", "export needs --checkpoint IN and an output FILE");
  L.ctx = amp_ctx_create(NULL);
  int rc = ampc_load_checkpoint_model("export", path, &L);
  if (!rc && amp_checkpoint_export(L.ctx, out, L.model, dt) != AMP_OK) {
    fprintf(stderr, "ampc export: %s\n", amp_ctx_error(L.ctx));
    rc = 1;
  }
  if (!rc)
    printf("wrote %s: %lld parameters in %s\n", out, (long long)amp_module_param_numel(L.model),
           amp_dtype_name(dt));
  amp_ctx_free(L.ctx);
  return rc;
}
