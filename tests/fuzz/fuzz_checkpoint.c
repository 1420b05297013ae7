/* libFuzzer harness: the metadata path of a resume on arbitrary bytes. A
 * file the safetensors parser accepts goes through what `ampc train
 * --resume` does with it: the configuration allow-list of the command-line
 * tool (train_opts_from_checkpoint, linked in from tools/ampc) and
 * amp_checkpoint_load() into a tiny run (mlp:4-3-2, Adam, dynamic scaler,
 * a shuffling loader: what tests/fuzz/corpus/checkpoint/ was written with).
 * Whatever is accepted must leave finite weights and a scale the scaler
 * can go on with; nothing may crash, leak or read out of bounds (ASan +
 * UBSan). amp_checkpoint_load() takes a path: the bytes go to one temporary
 * file per process. */
#include "ampc.h"
#include "recipe.h"
#include "train_opts.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct rig {
  amp_ctx *ctx;
  ampc_run run;
  amp_dataset *ds;
  amp_loader *loader;
  char path[64];
} rig;

static rig *get_rig(void) {
  static rig r; /* built once: the harness's state, not the library's */
  if (r.ctx) return &r;
  r.ctx = amp_ctx_create(NULL);
  long sizes[3] = {4, 3, 2};
  ampc_recipe rec;
  char msg[256];
  if (!r.ctx || ampc_recipe_parse("fp16", NULL, 1, &rec, msg, sizeof msg) != 0 ||
      !ampc_run_create(r.ctx, &rec, sizes, 3, 0, AMP_OPTIM_ADAM, -1, 0, &r.run) ||
      amp_synthetic_load(r.ctx, 16, 4, 2, 1234, &r.ds) != AMP_OK)
    abort();
  amp_loader_params lp = {4, 1, 0, 0, AMP_F16, 1};
  if (!(r.loader = amp_loader_create(r.ctx, r.ds, &lp))) abort();
  snprintf(r.path, sizeof r.path, "/tmp/fuzz_checkpoint.%ld.st", (long)getpid());
  return &r;
}

/* What a successful load must leave: finite weights and moments, and a
 * scale that is finite and at least the floor. */
static void check_loaded(rig *r) {
  if (amp_checkpoint_check_finite(r->ctx, r->run.model, r->run.opt, r->run.scaler) != AMP_OK)
    __builtin_trap();
  float s = amp_scaler_get_scale(r->run.scaler);
  if (!(s >= AMP_SCALER_FLOOR) || !isfinite(s)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_parse(NULL, data, size, &f) != AMP_OK) return 0;
  /* The command-line tool's allow-list: nothing but the model, recipe,
     optimizer and data options, each value validated. */
  train_opts o;
  train_opts_default(&o);
  int rc = train_opts_from_checkpoint(f, &o);
  if (rc == 0 && (o.save || o.metrics || o.resume)) __builtin_trap(); /* never an output path */
  amp_safetensors_free(f);
  rig *r = get_rig();
  FILE *out = fopen(r->path, "wb");
  if (!out) abort();
  if (size && fwrite(data, 1, size, out) != size) abort();
  if (fclose(out) != 0) abort();
  if (amp_checkpoint_load(r->ctx, r->path, r->run.model, r->run.opt, r->run.scaler, r->loader) ==
      AMP_OK)
    check_loaded(r);
  amp_ctx_clear_error(r->ctx);
  unlink(r->path);
  return 0;
}
