/* What `ampc train` and tests/test_train.c share: the mixed-precision recipe
 * named by the command-line flags, the MLP models, the objects a training
 * run is made of, the forward pass with the loss, and test accuracy. Public
 * API only. */
#ifndef AMPC_RECIPE_H
#define AMPC_RECIPE_H

#include "ampc.h"

#include <stddef.h>
#include <stdint.h>

/* A mixed-precision recipe. */
typedef struct ampc_recipe {
  amp_dtype dt; /* compute dtype; F32: no autocast */
  amp_scaler_mode scale_mode;
  float scale; /* the initial (or static) loss scale */
  int master_weights;
  int fp8;               /* 1: --precision fp8 (dt is BF16; linears in FP8) */
  amp_fp8_params fp8p;   /* its scaling (--fp8-scaling) and gradient rounding */
  amp_rounding rounding; /* --rounding: the optimizer's 16-bit working copy */
  int qat;           /* 1: quantization-aware training for INT8 (--qat int8): QAT Linear layers */
  int grads_checked; /* 1: nothing but amp_backward() writes the gradients before
                        the step (no --accum, ranks or --debug-nonfinite-grad), so
                        the scaler may take the backward's GEMM checks
                        (amp_optim_params.grads_checked_in_backward) */
} ampc_recipe;

/* The recipe of --precision fp32|fp16|bf16, --loss-scale dynamic|static:N|none
 * (NULL: the precision's default) and --master-weights on|off (1|0). Returns
 * 0, or writes a message to msg[0, cap) and returns 1 (a bad value) or 2 (a
 * usage error, to be followed by a pointer to `ampc help`). */
int ampc_recipe_parse(const char *precision, const char *loss_scale, int master_weights,
                      ampc_recipe *r, char *msg, size_t cap);

/* Completes *r with --fp8-scaling delayed[:H]|current|block (NULL: delayed,
 * H 16) and --rounding nearest|stochastic (NULL: nearest) and the seed of
 * stochastic rounding. Returns 0, or 2 with a message in msg[0, cap): an
 * unknown mode, H not in 1..65536, --fp8-scaling without --precision fp8,
 * stochastic rounding with --precision fp32. */
int ampc_recipe_fp8(const char *scaling, const char *rounding, uint64_t seed, ampc_recipe *r,
                    char *msg, size_t cap);

/* Parses the whole of `s` as a number in [lo, hi]; returns 1, else 0. */
int ampc_parse_double(const char *s, double lo, double hi, double *out);

/* Parses "mlp:784-1024-10" into sizes[0, max); returns the count (>= 2) or
 * 0 when the spec is not one. */
int ampc_parse_model(const char *spec, long *sizes, int max);

/* The MLP sizes[0] -> ... -> sizes[n-1] (linear layers with bias, ReLU
 * between them), initialised from `seed`. NULL (error recorded) on failure. */
amp_module *ampc_build_mlp(amp_ctx *ctx, const long *sizes, int n, uint64_t seed);

/* The same MLP with QAT Linear layers (amp_nn_qat_linear: the same
 * parameters and initialisation, plus the observers as buffers) when qat is
 * non-zero; ampc_build_mlp() otherwise. */
amp_module *ampc_build_mlp_q(amp_ctx *ctx, const long *sizes, int n, uint64_t seed, int qat);

/* Non-zero when the safetensors file f holds QAT observers (a checkpoint of
 * a --qat int8 run: "<layer>.act_min" tensors). */
int ampc_file_is_qat(const amp_safetensors *f);

/* A model of the GPT or CNN families, as --model names it:
 *   gpt:layers=L,dim=D,heads=H,ctx=T[,vocab=V]  (any subset of the keys, in
 *       any order; the rest from the default, AMPC_GPT_DEFAULT)
 *   cnn:fashion   the reference CNN for 1×28×28 images, 10 classes: conv3
 *       32 → BN → ReLU → maxpool2, conv3 64 → BN → ReLU → maxpool2, flatten,
 *       linear 128, ReLU, linear 10. */
typedef struct ampc_model_spec {
  int kind; /* AMPC_MODEL_* */
  amp_gpt_config gpt;
  amp_cnn_config cnn;
} ampc_model_spec;

enum { AMPC_MODEL_MLP = 0, AMPC_MODEL_GPT = 1, AMPC_MODEL_CNN = 2 };

/* The default GPT (the demo's): 4 layers, dim 128, 4 heads, ctx 64, bytes. */
#define AMPC_GPT_DEFAULT "gpt:layers=4,dim=128,heads=4,ctx=64,vocab=256"

/* Parses a gpt:/cnn: spec. Returns 1 (parsed), 0 (not one of these families:
 * try mlp:) or -1 with a message in msg[0, cap) (a bad spec of the family:
 * an unknown key, a value that is not a positive whole number, heads not
 * dividing dim, an unknown CNN name). */
int ampc_parse_model_spec(const char *spec, ampc_model_spec *out, char *msg, size_t cap);

/* Builds the model of a parsed spec from `seed`; NULL (error recorded). */
amp_module *ampc_build_model(amp_ctx *ctx, const ampc_model_spec *spec, uint64_t seed);

/* The objects of a training run. */
typedef struct ampc_run {
  amp_module *model;
  amp_optim *opt;
  amp_scaler *scaler;
} ampc_run;

/* Builds the MLP of `sizes` (from `seed`; QAT layers when r->qat), its optimizer of `kind` for the
 * recipe (lr < 0: the optimizer's default) and the recipe's loss scaler
 * (growth_interval <= 0: the scaler's default), in that order. Returns 1, or
 * 0 with the error recorded on ctx. */
int ampc_run_create(amp_ctx *ctx, const ampc_recipe *r, const long *sizes, int n, uint64_t seed,
                    amp_optim_kind kind, double lr, int64_t growth_interval, ampc_run *out);

/* The loss of one batch as in a PyTorch AMP loop: the forward pass under
 * autocast (unless the recipe is F32), cross-entropy, then × loss_mul (when
 * not 1). NULL (error recorded) on failure. */
amp_tensor *ampc_forward_loss(amp_ctx *ctx, const ampc_recipe *r, amp_module *model, amp_tensor *x,
                              amp_tensor *y, double loss_mul);

/* Fraction of correct predictions of `model` on `ds` in batches of `batch`,
 * under autocast to `dt` unless it is F32, without recording gradients; -1
 * on failure or an empty data set. */
double ampc_evaluate(amp_ctx *ctx, amp_module *model, const amp_dataset *ds, amp_dtype dt,
                     int64_t batch);

/* Loads weights into the parameters of `model` (their FP32 values) from the
 * safetensors file `path`: an ampc checkpoint (F32 masters; its "optim.*"
 * and "fp8.*" tensors are ignored), an ampc export (F16/BF16), or a plain state dict
 * such as PyTorch's safetensors.torch.save_file(model.state_dict()) (F32,
 * F16 or BF16) under the model's names ("0.weight", "0.bias", "2.weight",
 * ... as nn.Sequential names them) with PyTorch's layouts (Linear weight
 * [out, in]). Every parameter must be there with its shape, and nothing
 * else, except the model's buffers (a QAT model's observers, "0.act_min",
 * ...), which are loaded when the file has them and left as they are when
 * it has none (a QAT run started with --init from FP32 weights). With an
 * optimizer, call amp_optim_sync_work() afterwards. Returns
 * 1, or 0 with a message (naming the file and what is missing or wrong) in
 * msg[0, cap); nothing is modified then. */
int ampc_load_weights(amp_ctx *ctx, const char *path, amp_module *model, char *msg, size_t cap);

#endif
