/* `ampc export`: the weights of a model alone, as safetensors (ampc's
 * export) or as a PyTorch state dict (torch.save's format). */
#include "cli.h"
#include "int8.h"
#include "train_opts.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct export_opts {
  const char *checkpoint, *out, *dtype, *format, *model;
  int int8;
} export_opts;

#define XOPT(name, s, kind, member, arg, help)                                                     \
  { name, s, kind, offsetof(export_opts, member), arg, 0, 0, help, NULL }

static const ampc_opt EXPORT_OPTS[] = {
    XOPT("checkpoint", 0, AMPC_OPT_STR, checkpoint, "IN",
         "the weights to export (a checkpoint, an export or a state dict)"),
    XOPT("out", 'o', AMPC_OPT_STR, out, "OUT", "the file to write (or give OUT as the argument)"),
    XOPT("format", 0, AMPC_OPT_ENUM, format, "safetensors|pytorch",
         "safetensors: ampc's export (default); pytorch: a torch.save state dict (.pt) that "
         "torch.load + load_state_dict(strict=True) read"),
    XOPT("dtype", 0, AMPC_OPT_ENUM, dtype, "f16|bf16|f32",
         "element type (default f16 for safetensors, f32 for pytorch)"),
    XOPT("model", 0, AMPC_OPT_STR, model, "mlp:IN-H-...-OUT", "the model, when IN does not say it"),
    XOPT("int8", 0, AMPC_OPT_FLAG, int8, "",
         "the INT8 model of a --qat int8 checkpoint: I8 weights with F32 per-channel scales, "
         "F32 biases, each layer's input scale and zero point (ampc eval runs it with integer "
         "GEMMs); other checkpoints are refused"),
};

const ampc_cmd ampc_cmd_export = {
    "export",
    "--checkpoint IN [options] OUT",
    "Writes the weights of IN alone: as safetensors in 16 bits (ampc's export, which ampc\n"
    "eval and ampc train --init read), or as a PyTorch state dict with nn.Sequential's\n"
    "names and layouts (0.weight [out, in], 0.bias, 2.weight, ...). The file is written\n"
    "atomically (a temporary file renamed into place). With --int8, the INT8 model of a\n"
    "checkpoint of `ampc train --qat int8` (per layer i: i.weight I8 [out, in],\n"
    "i.weight_scale F32 [out], i.bias F32, i.input_scale F32 [1], i.input_zero_point\n"
    "I32 [1]; y = (sum (q_x - zp)*q_w) * input_scale * weight_scale + bias).",
    EXPORT_OPTS,
    (int)(sizeof EXPORT_OPTS / sizeof EXPORT_OPTS[0]),
    1,
    "PyTorch: m = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10));\n"
    "         m.load_state_dict(torch.load(\"OUT.pt\"), strict=True)\n"
    "Exit status: 0 done, 1 failed, 2 bad usage.",
    "write the weights alone (safetensors, or a PyTorch state dict)"};

/* --int8: refuses a checkpoint that was not QAT-trained (there are no
 * observer ranges to take the activation scales from; post-training
 * calibration is not done). */
static int export_int8(const export_opts *x) {
  loaded L;
  memset(&L, 0, sizeof L);
  train_opts_default(&L.o);
  L.o.cmd = "export";
  L.ctx = amp_ctx_create(NULL);
  if (!L.ctx) return 1;
  int rc = ampc_load_model("export", x->checkpoint, x->model, &L);
  char msg[600];
  if (!rc && !L.qat) {
    fprintf(stderr,
            "ampc export: --int8: %s was not trained with --qat int8: it has no observer ranges "
            "to take the INT8 scales from (to fine-tune it for INT8: ampc train --init %s --qat "
            "int8 --precision fp32 ...)\n",
            x->checkpoint, x->checkpoint);
    rc = 1;
  }
  if (!rc && !ampc_int8_export(L.ctx, x->out, L.model, L.o.model, L.o.data, L.o.synthetic_n, msg,
                               sizeof msg)) {
    fprintf(stderr, "ampc export: --int8: %s: %s\n", x->checkpoint, msg);
    rc = 1;
  }
  if (!rc)
    printf("wrote %s: %lld parameters in int8 (weights) and f32 (scales, biases)\n", x->out,
           (long long)amp_module_param_numel(L.model));
  amp_ctx_free(L.ctx);
  return rc;
}

int ampc_export_main(int argc, char **argv) {
  export_opts x = {NULL, NULL, NULL, "safetensors", NULL, 0};
  const char *pos[1];
  int npos = 0;
  int rc = ampc_opts_parse(&ampc_cmd_export, argc, argv, &x, pos, &npos);
  if (rc) return rc == AMPC_OPTS_HELP ? 0 : rc;
  if (npos && x.out)
    return ampc_opts_error(&ampc_cmd_export, "two outputs: --out %s and %s", x.out, pos[0]);
  if (npos) x.out = pos[0];
  if (!x.checkpoint || !x.out)
    return ampc_opts_error(&ampc_cmd_export, "export needs --checkpoint IN and an output OUT");
  /* Never replace the input with its own export (the training state would be
     lost): the same path, or another name of the same file. */
  struct stat si, so;
  if (strcmp(x.checkpoint, x.out) == 0 || (stat(x.checkpoint, &si) == 0 && stat(x.out, &so) == 0 &&
                                           si.st_dev == so.st_dev && si.st_ino == so.st_ino))
    return ampc_opts_error(&ampc_cmd_export,
                           "the output %s is the input checkpoint: choose another name", x.out);
  if (x.int8 && (x.dtype || strcmp(x.format, "safetensors") != 0))
    return ampc_opts_error(&ampc_cmd_export, "--int8 writes I8 safetensors: leave out --dtype and "
                                             "--format");
  if (x.int8) return export_int8(&x);
  int torch = strcmp(x.format, "pytorch") == 0;
  amp_dtype dt = AMP_F16;
  if (amp_dtype_parse(x.dtype ? x.dtype : torch ? "f32" : "f16", &dt) != AMP_OK) return 2;
  loaded L;
  memset(&L, 0, sizeof L);
  train_opts_default(&L.o);
  L.o.cmd = "export";
  L.ctx = amp_ctx_create(NULL);
  if (!L.ctx) return 1;
  rc = ampc_load_model("export", x.checkpoint, x.model, &L);
  char msg[512];
  if (!rc && torch && !ampc_write_torch(x.out, L.model, dt, msg, sizeof msg)) {
    fprintf(stderr, "ampc export: %s\n", msg);
    rc = 1;
  }
  if (!rc && !torch && amp_checkpoint_export(L.ctx, x.out, L.model, dt) != AMP_OK) {
    fprintf(stderr, "ampc export: %s\n", amp_ctx_error(L.ctx));
    rc = 1;
  }
  if (!rc)
    printf("wrote %s: %lld parameters in %s (%s)\n", x.out,
           (long long)amp_module_param_numel(L.model), amp_dtype_name(dt), x.format);
  amp_ctx_free(L.ctx);
  return rc;
}
