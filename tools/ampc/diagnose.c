/* `ampc diagnose`: runs N training steps of the MLP in a recipe (or starts
 * from a checkpoint) and reports, layer by layer and per tensor role
 * (weights, activations, activation gradients, weight gradients), the
 * log2-magnitude histogram and the fraction of values F16, BF16, E4M3 and
 * E5M2 would flush to zero, hold as subnormals or overflow at the loss
 * scale in force; it recommends a loss scale and names the layers that
 * lose most.
 *
 * Each step first runs an observation pass: the same batch forward and
 * backward in F32 (no autocast) from the FP32 masters, with the loss
 * multiplied by the current loss scale S. The values seen are therefore
 * the exact values (to F32) that a 16/8-bit format would have to hold:
 * activations as the layers' outputs (a module observer,
 * amp_ctx_set_module_observer()), activation gradients as those outputs'
 * gradients ×S, weights as the FP32 masters and weight gradients as the
 * F32-accumulated gradients ×S. Its parameter gradients are then zeroed
 * and the recipe's own step runs exactly as `ampc train` runs it (the same
 * bits), so the scale and the weights evolve as in training. */
#include "bench.h"
#include "cli.h"
#include "diagnose.h"
#include "guard.h"
#include "model_data.h"
#include "model_run.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct diag_opts {
  train_opts t; /* the flags diagnose shares with train; t.steps: --steps */
  const char *checkpoint, *out;
} diag_opts;

#define DOPT(name, kind, member, arg, lo, hi, help, check)                                         \
  { name, 0, kind, offsetof(diag_opts, member), arg, lo, hi, help, check }

static const ampc_opt DIAG_OPTS[] = {
    DOPT("data", AMPC_OPT_STR, t.data, "DIR|synthetic|fortunes|text:PATH|fashion-mnist", 0, 0,
         "MLP: MNIST directory (IDX files), or synthetic data shaped by the model (default "
         "data/mnist); GPT: fortunes|text:PATH (default fortunes); CNN: fashion-mnist; "
         "default: the checkpoint's",
         NULL),
    DOPT("model", AMPC_OPT_STR, t.model, "mlp:IN-H-...-OUT|gpt:...|cnn:fashion", 0, 0,
         "the model: an MLP's layer sizes, a GPT (gpt:layers=L,dim=D,heads=H,ctx=T[,vocab=V]) "
         "or the CNN, as `ampc train` takes it (default: the checkpoint's, else "
         "mlp:784-1024-10)",
         train_opts_check_model),
    DOPT("precision", AMPC_OPT_ENUM, t.precision, "fp32|fp16|bf16|fp8", 0, 0,
         "the recipe whose steps run (default fp16); its format heads the summary (F16 for "
         "fp32, BF16 for fp8)",
         NULL),
    DOPT("fp8-scaling", AMPC_OPT_STR, t.fp8_scaling, "delayed[:H]|current|block", 0, 0,
         "with --precision fp8: the FP8 scaling of the recipe's steps, as in `ampc train` "
         "(default delayed)",
         NULL),
    DOPT("loss-scale", AMPC_OPT_STR, t.loss_scale, "dynamic|static:N|none", 0, 0,
         "loss scaling (default: dynamic for fp16, none otherwise)", train_opts_check_loss_scale),
    DOPT("growth-interval", AMPC_OPT_LONG, t.growth_interval, "N", 1, 1099511627776.0,
         "steps without overflow before the dynamic scale doubles (default 2000)", NULL),
    DOPT("optim", AMPC_OPT_ENUM, t.optim, "adam|adamw|sgd", 0, 0, "optimizer (default adam)", NULL),
    DOPT("lr", AMPC_OPT_DOUBLE, t.lr, "X", 0, 1e3, "learning rate (default: the optimizer's)",
         NULL),
    DOPT("batch", AMPC_OPT_LONG, t.batch, "N", 1, 1 << 20, "batch size (default 128)", NULL),
    DOPT("seed", AMPC_OPT_ULL, t.seed, "N", 0, 9007199254740992.0,
         "seed of the initialisation and the shuffle (default 0)", NULL),
    DOPT("threads", AMPC_OPT_LONG, t.threads, "N", 1, 1024, "OpenMP threads (default 2)", NULL),
    DOPT("loss-mul", AMPC_OPT_DOUBLE, t.loss_mul, "X", 1e-30, 1e30,
         "multiply the loss by X (to provoke overflow or underflow)", NULL),
    DOPT("synthetic-n", AMPC_OPT_LONG, t.synthetic_n, "N", 2, 1 << 24,
         "training samples of --data synthetic (default 12000)", NULL),
    DOPT("steps", AMPC_OPT_LONG, t.steps, "N", 0, 1099511627776.0,
         "training steps, each observed before its update (default 50); 0: observe one batch "
         "and update nothing",
         NULL),
    DOPT("checkpoint", AMPC_OPT_STR, checkpoint, "FILE", 0, 0,
         "start from this checkpoint (weights, optimizer and scaler state, configuration), or "
         "from an export or state dict's weights (with --model)",
         NULL),
    DOPT("out", AMPC_OPT_STR, out, "DIR", 0, 0,
         "write one SVG figure per role, DIR/diagnose-ROLE.svg (ROLE: weights, activations, "
         "activation_grads, weight_grads); DIR is created when its parent exists",
         NULL),
    DOPT("json", AMPC_OPT_FLAG, t.json, "", 0, 0,
         "print one JSON object with the full histograms instead of the text summary", NULL),
};

const ampc_cmd ampc_cmd_diagnose = {
    "diagnose",
    "[options]",
    "Runs --steps training steps of a model (an MLP, a GPT or the CNN) in a recipe\n"
    "(fp32, fp16, bf16 or fp8; or from --checkpoint) and reports, per layer and\n"
    "tensor role (weights, activations, activation gradients, weight gradients),\n"
    "the log2-magnitude histogram and the fraction of non-zero values that F16,\n"
    "BF16, E4M3 and E5M2 would flush to zero, hold as subnormals or overflow at the\n"
    "loss scale in force; it recommends a loss scale and names the layers that\n"
    "lose most. Values are observed in an F32 pass over each step's batch\n"
    "(gradients times the loss scale), then the recipe's step runs as in `ampc train`.\n"
    "MLP layers are its Linear and ReLU modules; GPT and CNN layers are every module\n"
    "below the model but Sequential containers, named by path\n"
    "(transformer.h.0.attn.c_attn; a module whose output is its last child's is\n"
    "listed as the child). Figures draw at most 8 layers, those the format holds\n"
    "worst, and summarise the rest.",
    DIAG_OPTS,
    (int)(sizeof DIAG_OPTS / sizeof DIAG_OPTS[0]),
    0,
    "Recommended loss scale, per format, from the activation gradients of all layers:\n"
    "1 (no scaling) when at scale 1 at most 0.1% of them flush to zero and the largest\n"
    "is below max/8; else the largest power of two S with max|g|*S <= max/8 (F16:\n"
    "8188), three binades of headroom. A value flushes to zero when |x| <= half the\n"
    "smallest subnormal (round to nearest even: that tie goes to zero).\n"
    "Exit status: 0 done, 1 failed, 2 bad usage.",
    "per-layer histograms: what each format would flush, round or overflow"};

/* The layers observed: leaf modules with their dotted paths. */
typedef struct leaf {
  const amp_module *m;
  const amp_tensor *out; /* its output in this observation pass */
} leaf;

typedef struct diag_run {
  diag_opts d;
  ampc_recipe r;
  long sizes[33];
  int nsizes;
  amp_ctx *ctx;
  ampc_run run;      /* an MLP's run ... */
  ampc_model_run mr; /* ... or a GPT's or the CNN's (family != 0) */
  int family;        /* AMPC_MODEL_GPT or AMPC_MODEL_CNN; 0: an MLP */
  amp_module *model; /* the run's, either kind */
  amp_optim *opt;
  amp_scaler *scaler;
  amp_dataset *train, *test;
  amp_loader *loader;
  leaf *leaves;
  int nleaves;
  diag_result res;
  float *tmp; /* conversions to F32 */
  size_t tmp_n;
} diag_run;

/* Whether the path's last part is a number (a Sequential's child: its
 * type is added to the name, "0 Conv2d", "transformer.h.0 Block"). */
static int numbered(const char *path) {
  const char *p = strrchr(path, '.');
  p = p ? p + 1 : path;
  if (!*p) return 0;
  while (*p >= '0' && *p <= '9') p++;
  return *p == 0;
}

/* Appends the layers under m (path `path`) in module order: an MLP's leaf
 * modules ("0 Linear"); a GPT's or the CNN's every module below the root
 * but Sequential containers (whose output is their last child's), named by
 * path ("transformer.h.0.attn.c_attn"; the type after a number). */
static int collect_leaves(diag_run *D, const amp_module *m, const char *path) {
  int nc = amp_module_child_count(m);
  int layer = D->family ? *path && strcmp(amp_module_type(m), "Sequential") != 0 : nc == 0;
  if (layer) {
    leaf *l = realloc(D->leaves, sizeof *l * (size_t)(D->nleaves + 1));
    diag_entry *a = realloc(D->res.e[ROLE_ACTS], sizeof *a * (size_t)(D->nleaves + 1));
    if (a) D->res.e[ROLE_ACTS] = a;
    diag_entry *g = realloc(D->res.e[ROLE_ACT_GRADS], sizeof *g * (size_t)(D->nleaves + 1));
    if (g) D->res.e[ROLE_ACT_GRADS] = g;
    if (l) D->leaves = l;
    if (!l || !a || !g) return 0;
    l[D->nleaves] = (leaf){m, NULL};
    const char *type = amp_module_type(m);
    if (D->family && !numbered(path))
      snprintf(a[D->nleaves].name, sizeof a->name, "%s", path);
    else
      snprintf(a[D->nleaves].name, sizeof a->name, "%s%s%s", path, *path ? " " : "", type);
    snprintf(g[D->nleaves].name, sizeof g->name, "%s", a[D->nleaves].name);
    diag_hist_init(&a[D->nleaves].h);
    diag_hist_init(&g[D->nleaves].h);
    D->nleaves++;
    D->res.n[ROLE_ACTS] = D->res.n[ROLE_ACT_GRADS] = D->nleaves;
    if (nc == 0) return 1;
  }
  for (int i = 0; i < nc; i++) {
    const char *name;
    const amp_module *c = amp_module_child(m, i, &name);
    char sub[96];
    snprintf(sub, sizeof sub, "%s%s%s", path, *path && *name ? "." : "", name);
    if (!collect_leaves(D, c, sub)) return 0;
  }
  return 1;
}

/* One entry per parameter for the weights and the weight gradients. */
static int collect_params(diag_run *D) {
  int n = amp_module_param_count(D->model);
  const int roles[2] = {ROLE_WEIGHTS, ROLE_WEIGHT_GRADS};
  for (int k = 0; k < 2; k++) {
    int role = roles[k];
    D->res.e[role] = calloc((size_t)(n ? n : 1), sizeof(diag_entry));
    if (!D->res.e[role]) return 0;
    D->res.n[role] = n;
    for (int i = 0; i < n; i++) {
      const char *name;
      amp_module_param(D->model, i, &name);
      snprintf(D->res.e[role][i].name, sizeof D->res.e[role][i].name, "%s", name);
      diag_hist_init(&D->res.e[role][i].h);
    }
  }
  return 1;
}

/* The module observer: remembers each layer's output (the first one; none
 * when the tensor is already a layer's, e.g. a Block whose output is its
 * residual sum: the innermost module reports it first). */
static void on_output(void *user, const amp_module *m, const amp_tensor *out) {
  diag_run *D = user;
  int at = -1;
  for (int i = 0; i < D->nleaves; i++) {
    if (D->leaves[i].out == out) return;
    if (D->leaves[i].m == m && !D->leaves[i].out) at = i;
  }
  if (at >= 0) D->leaves[at].out = out;
}

/* Adds tensor t's values to h (converted to F32 when needed). */
static int add_tensor(diag_run *D, diag_hist *h, const amp_tensor *t, double scale) {
  const float *x = t->data;
  size_t n = (size_t)t->numel;
  if (t->dtype != AMP_F32) {
    if (n > D->tmp_n) {
      float *p = realloc(D->tmp, n * sizeof *p);
      if (!p) return 0;
      D->tmp = p;
      D->tmp_n = n;
    }
    if (amp_convert(D->tmp, AMP_F32, t->data, t->dtype, n) != AMP_OK) return 0;
    x = D->tmp;
  }
  diag_hist_add(h, D->res.ranges, x, n, scale);
  return 1;
}

/* The observation pass over one batch (see the file comment). Returns 1,
 * or 0 with a message printed. */
static int observe(diag_run *D, amp_tensor *x, amp_tensor *y) {
  amp_ctx *ctx = D->ctx;
  int lowp = x->dtype == AMP_F16 || x->dtype == AMP_BF16; /* images; tokens stay int */
  amp_tensor *x32 = lowp ? amp_tensor_cast(ctx, AMP_ARENA_STEP, x, AMP_F32) : x;
  ampc_recipe r32 = D->r;
  r32.dt = AMP_F32;
  r32.fp8 = 0;
  for (int i = 0; i < D->nleaves; i++) D->leaves[i].out = NULL;
  amp_ctx_set_module_observer(ctx, on_output, D);
  amp_tensor *loss = NULL;
  if (!D->family)
    loss = ampc_forward_loss(ctx, &r32, D->model, x32, y, D->d.t.loss_mul);
  else if ((loss = ampc_model_run_loss(&D->mr, &r32, x32, y)) && D->d.t.loss_mul != 1)
    loss = amp_mul_scalar(ctx, loss, (float)D->d.t.loss_mul);
  amp_ctx_set_module_observer(ctx, NULL, NULL);
  double scale = amp_scaler_is_enabled(D->scaler) ? amp_scaler_get_scale(D->scaler) : 1;
  if (!loss || amp_backward(ctx, amp_scaler_scale(D->scaler, loss)) != AMP_OK) {
    fprintf(stderr, "ampc diagnose: the observation pass failed: %s\n", amp_ctx_error(ctx));
    return 0;
  }
  int ok = 1;
  for (int i = 0; i < D->nleaves; i++) {
    const amp_tensor *out = D->leaves[i].out;
    if (!out) continue;
    ok &= add_tensor(D, &D->res.e[ROLE_ACTS][i].h, out, 1);
    if (out->grad) ok &= add_tensor(D, &D->res.e[ROLE_ACT_GRADS][i].h, out->grad, scale);
  }
  for (int i = 0; i < D->res.n[ROLE_WEIGHTS]; i++) {
    const amp_tensor *p = amp_module_param(D->model, i, NULL);
    ok &= add_tensor(D, &D->res.e[ROLE_WEIGHTS][i].h, p, 1);
    if (p->grad) ok &= add_tensor(D, &D->res.e[ROLE_WEIGHT_GRADS][i].h, p->grad, scale);
  }
  amp_optim_zero_grad(D->opt); /* the recipe's step starts from zero, as in train */
  if (!ok) fprintf(stderr, "ampc diagnose: out of memory\n");
  D->res.observed++;
  if (D->res.observed == 1 || scale < D->res.scale_min) D->res.scale_min = scale;
  if (D->res.observed == 1 || scale > D->res.scale_max) D->res.scale_max = scale;
  return ok;
}

/* One step of the recipe, as `ampc train` runs it (without accumulation).
 * Returns 1, or 0 with a message printed. */
static int recipe_step(diag_run *D, amp_tensor *x, amp_tensor *y) {
  amp_ctx *ctx = D->ctx;
  if (D->family) { /* train_model.c's step (model_run.c) */
    float lv, gnorm;
    int stepped = ampc_model_run_step(&D->mr, x, y, D->d.t.clip, 0, &lv, &gnorm);
    if (stepped < 0) {
      fprintf(stderr, "ampc diagnose: step %ld: %s\n", D->res.steps, amp_ctx_error(ctx));
      return 0;
    }
    D->res.final_loss = lv;
    D->res.skipped += !stepped;
    D->res.steps++;
    return 1;
  }
  amp_tensor *loss = ampc_forward_loss(ctx, &D->r, D->model, x, y, D->d.t.loss_mul);
  float lv = NAN;
  if (loss) amp_convert(&lv, AMP_F32, loss->data, loss->dtype, 1);
  int stepped = -1;
  if (loss && amp_backward(ctx, amp_scaler_scale(D->scaler, loss)) == AMP_OK)
    stepped = amp_scaler_step(D->scaler, D->opt);
  if (stepped < 0 || amp_scaler_update(D->scaler) != AMP_OK) {
    fprintf(stderr, "ampc diagnose: step %ld: %s\n", D->res.steps, amp_ctx_error(ctx));
    return 0;
  }
  /* The step zeroed the gradients (zero_grad_in_step, recipe.c). */
  D->res.final_loss = lv;
  D->res.skipped += !stepped;
  D->res.steps++;
  return 1;
}

/* The next batch, starting a new epoch when one ends; 1, or 0 (message). */
static int next_batch(diag_run *D, amp_tensor **x, amp_tensor **y) {
  for (int tries = 0; tries < 2; tries++) {
    int got = D->family ? ampc_model_run_next(&D->mr, x, y) : amp_loader_next(D->loader, x, y);
    if (got == 1) return 1;
    if (got < 0) break;
  }
  fprintf(stderr, "ampc diagnose: no batch: %s\n", amp_ctx_error(D->ctx));
  return 0;
}

/* Drops the layers that never had an output of their own (a module whose
 * output is its last child's, e.g. attn = attn.c_proj: the child holds it). */
static void drop_unseen(diag_run *D) {
  int k = 0;
  for (int i = 0; i < D->nleaves; i++) {
    if (D->res.e[ROLE_ACTS][i].h.n == 0 && D->res.e[ROLE_ACT_GRADS][i].h.n == 0) continue;
    D->res.e[ROLE_ACTS][k] = D->res.e[ROLE_ACTS][i];
    D->res.e[ROLE_ACT_GRADS][k] = D->res.e[ROLE_ACT_GRADS][i];
    D->leaves[k++] = D->leaves[i];
  }
  D->nleaves = D->res.n[ROLE_ACTS] = D->res.n[ROLE_ACT_GRADS] = k;
}

/* The steps: each observed, then (with --steps N > 0) taken. */
static int run_steps(diag_run *D) {
  long n = D->d.t.steps > 0 ? D->d.t.steps : 1;
  for (long s = 0; s < n; s++) {
    amp_ctx_step_reset(D->ctx);
    amp_tensor *x, *y;
    if (!next_batch(D, &x, &y) || !observe(D, x, y)) return 1;
    if (D->d.t.steps > 0 && !recipe_step(D, x, y)) return 1;
  }
  D->res.final_scale = amp_scaler_get_scale(D->scaler);
  if (D->family) drop_unseen(D);
  return 0;
}

/* --out: the directory exists (or is created) and takes files. */
static int prepare_out(const char *dir) {
  struct stat sb;
  if (!*dir) {
    fprintf(stderr, "ampc diagnose: --out: empty path\n");
    return 2;
  }
  if (stat(dir, &sb) != 0) {
    if (mkdir(dir, 0777) != 0) {
      fprintf(stderr, "ampc diagnose: --out: cannot create the directory '%s': %s\n", dir,
              strerror(errno));
      return 2;
    }
  } else if (!S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "ampc diagnose: --out: '%s' is not a directory\n", dir);
    return 2;
  }
  char probe[4200];
  snprintf(probe, sizeof probe, "%s/diagnose-weights.svg", dir);
  return ampc_guard_output("diagnose", "--out", probe);
}

/* Options: defaults, then a checkpoint's configuration, then the command
 * line over it. Returns 0, AMPC_OPTS_HELP or the exit status. */
static int parse(diag_run *D, int argc, char **argv, int *has_config) {
  diag_opts *d = &D->d;
  train_opts_default(&d->t);
  d->t.cmd = "diagnose";
  d->t.steps = 50;
  d->t.model = NULL;
  int rc = ampc_opts_parse(&ampc_cmd_diagnose, argc, argv, d, NULL, NULL);
  *has_config = 0;
  if (rc || !d->checkpoint) return rc;
  const char *ck = d->checkpoint;
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_safetensors *f = NULL;
  if (!ctx || amp_safetensors_read(ctx, ck, &f) != AMP_OK) {
    fprintf(stderr, "ampc diagnose: --checkpoint: %s\n", ctx ? amp_ctx_error(ctx) : "no memory");
    amp_ctx_free(ctx);
    return 1;
  }
  *has_config = amp_safetensors_meta(f, "config.model") != NULL;
  train_opts_default(&d->t);
  d->t.cmd = "diagnose";
  d->t.steps = 50;
  d->t.model = NULL;
  d->t.family_ok = 1;
  rc = train_opts_from_checkpoint(f, &d->t);
  amp_safetensors_free(f);
  amp_ctx_free(ctx);
  if (!rc) rc = ampc_opts_parse(&ampc_cmd_diagnose, argc, argv, d, NULL, NULL);
  if (!rc && !d->t.model) {
    fprintf(stderr,
            "ampc diagnose: %s does not say which model it holds (no config.model in its "
            "metadata, as in an ampc export or a plain state dict): give --model, e.g. --model "
            "mlp:784-1024-10\n",
            ck);
    rc = 1;
  }
  return rc;
}

/* The weights (and with an ampc checkpoint the optimizer and scaler state)
 * of --checkpoint. Returns 0, or the exit status. */
static int load_checkpoint(diag_run *D, int has_config) {
  const char *ck = D->d.checkpoint;
  if (D->family) { /* names and shapes checked by the loader */
    if (!has_config) return ampc_init_weights(D->ctx, D->model, ck) ? 1 : 0;
    if (amp_checkpoint_load(D->ctx, ck, D->model, D->opt, D->scaler, D->mr.il) != AMP_OK) {
      fprintf(stderr, "ampc diagnose: --checkpoint: %s is not a checkpoint of %s: %s\n", ck,
              D->d.t.model, amp_ctx_error(D->ctx));
      return 1;
    }
    return 0;
  }
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(D->ctx, ck, &f) != AMP_OK) {
    fprintf(stderr, "ampc diagnose: --checkpoint: %s\n", amp_ctx_error(D->ctx));
    return 1;
  }
  int rc = ampc_guard_checkpoint_model("diagnose", ck, f, D->d.t.model, D->sizes, D->nsizes);
  amp_safetensors_free(f);
  if (rc) return rc;
  char msg[1024];
  if (has_config) {
    if (amp_checkpoint_load(D->ctx, ck, D->model, D->opt, D->scaler, NULL) != AMP_OK) {
      fprintf(stderr, "ampc diagnose: --checkpoint: %s\n", amp_ctx_error(D->ctx));
      return 1;
    }
  } else if (!ampc_load_weights(D->ctx, ck, D->model, msg, sizeof msg) ||
             amp_optim_sync_work(D->opt) != AMP_OK) {
    fprintf(stderr, "ampc diagnose: --checkpoint: %s\n", msg);
    return 1;
  }
  return 0;
}

/* Data, model, optimizer, scaler, loader and the tables of entries. */
/* An MLP's run as `ampc train` makes it. */
static int setup_mlp(diag_run *D, amp_optim_kind kind) {
  train_opts *o = &D->d.t;
  int rc = train_open_data(D->ctx, o, D->sizes, D->nsizes, &D->train, &D->test);
  if (rc) return rc;
  int ok = ampc_run_create(D->ctx, &D->r, D->sizes, D->nsizes, o->seed, kind, o->lr,
                           o->growth_interval, &D->run);
  amp_loader_params lp = {o->batch, 1, o->seed, 0, D->r.dt, 1};
  if (ok) D->loader = amp_loader_create(D->ctx, D->train, &lp);
  if (!ok || !D->loader) {
    fprintf(stderr, "ampc diagnose: %s\n", amp_ctx_error(D->ctx));
    return 1;
  }
  D->model = D->run.model;
  D->opt = D->run.opt;
  D->scaler = D->run.scaler;
  return 0;
}

/* A GPT's or the CNN's run as `ampc train` makes it (model_run.c). */
static int setup_family(diag_run *D, amp_optim_kind kind) {
  ampc_model_run *m = &D->mr;
  m->o = D->d.t;
  m->r = D->r;
  m->kind = kind;
  m->ctx = D->ctx;
  int rc = ampc_model_run_open(m);
  if (rc) return rc;
  D->model = m->model;
  D->opt = m->opt;
  D->scaler = m->scaler;
  return 0;
}

static int setup(diag_run *D, int has_config) {
  train_opts *o = &D->d.t;
  amp_optim_kind kind = strcmp(o->optim, "adamw") == 0 ? AMP_OPTIM_ADAMW
                        : strcmp(o->optim, "sgd") == 0 ? AMP_OPTIM_SGD
                                                       : AMP_OPTIM_ADAM;
  int rc = D->family ? setup_family(D, kind) : setup_mlp(D, kind);
  if (rc) return rc;
  if (D->d.checkpoint && (rc = load_checkpoint(D, has_config))) return rc;
  if (!collect_leaves(D, D->model, "") || !collect_params(D)) {
    fprintf(stderr, "ampc diagnose: out of memory\n");
    return 1;
  }
  return 0;
}

static void run_free(diag_run *D) {
  for (int r = 0; r < NROLES; r++) free(D->res.e[r]);
  free(D->leaves);
  free(D->tmp);
  amp_loader_free(D->loader);
  amp_dataset_free(D->train);
  amp_dataset_free(D->test);
  ampc_model_run_free(&D->mr);
  amp_ctx_free(D->ctx);
  free(D);
}

/* Options, recipe and model sizes; 0, or the exit status. */
static int configure(diag_run *D, int argc, char **argv, int *has_config) {
  int rc = parse(D, argc, argv, has_config);
  if (rc) return rc;
  train_opts *o = &D->d.t;
  if (!o->model) o->model = "mlp:784-1024-10";
  if ((rc = train_opts_recipe(o, &D->r))) return rc;
  char msg[256];
  int fam = ampc_parse_model_spec(o->model, &D->mr.spec, msg, sizeof msg);
  if (fam < 0) {
    fprintf(stderr, "ampc diagnose: %s\n", msg);
    return 1;
  }
  D->family = fam == 1 ? D->mr.spec.kind : 0;
  if (D->family && ampc_is_default_data(o->data)) /* the model's own data, as train's */
    o->data = D->family == AMPC_MODEL_GPT ? "fortunes" : "fashion-mnist";
  D->nsizes = D->family ? 0 : ampc_parse_model(o->model, D->sizes, 33);
  if (!D->family && !D->nsizes) {
    fprintf(stderr,
            "ampc diagnose: unknown model '%s' (diagnose runs mlp:, gpt: and cnn: models)\n",
            o->model);
    return 1;
  }
  D->res.o = o;
  D->res.out_dir = D->d.out;
  D->res.fmt = D->r.dt == AMP_BF16 ? 1 : 0;
  if (diag_ranges(D->res.ranges) != 0) {
    fprintf(stderr, "ampc diagnose: the library has no range for a format\n");
    return 1;
  }
  return 0;
}

int ampc_diagnose_main(int argc, char **argv) {
  diag_run *D = calloc(1, sizeof *D);
  if (!D) {
    fprintf(stderr, "ampc diagnose: out of memory\n");
    return 1;
  }
  double t0 = ampb_now();
  clock_t c0 = clock();
  int has_config = 0;
  int rc = configure(D, argc, argv, &has_config);
  if (rc) {
    free(D);
    return rc == AMPC_OPTS_HELP ? 0 : rc;
  }
  D->ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)D->d.t.threads});
  if (!D->ctx) {
    fprintf(stderr, "ampc diagnose: out of memory\n");
    free(D);
    return 1;
  }
  rc = setup(D, has_config);
  if (!rc && D->d.out) rc = prepare_out(D->d.out); /* once the inputs are good */
  if (!rc) rc = run_steps(D);
  D->res.wall_s = ampb_now() - t0;
  D->res.cpu_s = (double)(clock() - c0) / CLOCKS_PER_SEC;
  if (!rc && D->d.out) rc = diag_figures(&D->res);
  if (!rc) rc = diag_report(&D->res, D->d.t.json);
  run_free(D);
  return rc;
}
