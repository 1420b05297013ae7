/* Model modules: the GPT (attention, pre-LN blocks, tied head) and CNN
 * stacks (conv, BatchNorm2d, ReLU, pool, linear). Names as PyTorch's
 * state_dict; gradients against central finite differences of the F32 loss
 * (the bound below is derived from F32 rounding of the loss); weight tying
 * accumulates both uses into one F32 gradient; BatchNorm2d buffers in train
 * and eval mode; the same bits with 1 and 2 threads (F32 and F16 autocast);
 * configuration errors. */
#include "check.h"
#include "ampc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { GB = 2, GT = 8, GV = 16 };

static amp_module *small_gpt(amp_ctx *ctx, uint64_t seed) {
  amp_rng r;
  amp_rng_seed(&r, seed);
  amp_gpt_config cfg = {.vocab = GV, .ctx = GT, .layers = 2, .dim = 16, .heads = 2};
  return amp_nn_gpt(ctx, &r, &cfg);
}

/* Persistent I32 [n] tokens in 0..v-1. */
static amp_tensor *tokens(amp_ctx *ctx, int ndim, const int64_t *shape, int v, uint64_t seed) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_I32, ndim, shape);
  amp_rng r;
  amp_rng_seed(&r, seed);
  for (int64_t i = 0; t && i < t->numel; i++)
    ((int32_t *)t->data)[i] = (int32_t)(amp_rng_next(&r) % (uint64_t)v);
  return t;
}

/* Mean cross-entropy of the model's logits (reshaped to [N,classes]) against
 * labels, under autocast `ac` (F32: none); backward when asked. Resets the
 * step arena first. Returns NaN on error. */
static double model_loss(amp_ctx *ctx, amp_module *m, amp_tensor *x, amp_tensor *y, amp_dtype ac,
                         int backward) {
  amp_ctx_step_reset(ctx);
  amp_autocast_begin(ctx, ac);
  amp_tensor *logits = amp_module_forward(ctx, m, x);
  if (logits) logits = amp_reshape(ctx, logits, 2, (int64_t[]){y->numel, -1});
  amp_tensor *loss = amp_cross_entropy(ctx, logits, y);
  amp_autocast_end(ctx);
  if (!loss) return NAN;
  double l = ((float *)loss->data)[0];
  if (backward && amp_backward(ctx, loss) != AMP_OK) return NAN;
  return l;
}

static void zero_grads(amp_module *m) {
  for (int i = 0; i < amp_module_param_count(m); i++)
    amp_tensor_zero_grad(amp_module_param(m, i, NULL));
}

/* For every parameter tensor, the element with the largest gradient and two
 * others against (L(w+h) - L(w-h))/2h. The loss is F32: each evaluation is
 * off by about 8·u·|L| (u = 2^-24, the reductions' rounding), so the
 * difference quotient carries 8·u·|L|/h, plus the O(h²) truncation; the
 * bound is 1e-2 of the tensor's largest gradient plus that noise ×4. The
 * CNN takes a smaller step (h_rel): ReLU, max-pool and batch statistics
 * over 4 images bend its loss within a step of 1e-2. */
static void fd_check(amp_ctx *ctx, const char *what, amp_module *m, amp_tensor *x, amp_tensor *y,
                     double h_rel) {
  zero_grads(m);
  double l0 = model_loss(ctx, m, x, y, AMP_F32, 1);
  CHECK(isfinite(l0), "%s: loss: %s", what, amp_ctx_error(ctx));
  if (!isfinite(l0)) return;
  int np = amp_module_param_count(m);
  double worst = 0;
  for (int i = 0; i < np; i++) {
    const char *name;
    amp_tensor *p = amp_module_param(m, i, &name);
    int64_t n = p->numel;
    float *g = malloc(sizeof(float) * (size_t)n);
    memcpy(g, p->grad->data, sizeof(float) * (size_t)n);
    int64_t big = 0;
    double gmax = 0;
    for (int64_t j = 0; j < n; j++)
      if (fabs(g[j]) > gmax) gmax = fabs(g[big = j]);
    int64_t pick[3] = {big, (big + n / 3) % n, (big + 2 * n / 3 + 1) % n};
    for (int k = 0; k < 3; k++) {
      float *w = (float *)p->data + pick[k], w0 = *w;
      double h = h_rel * fmax(1.0, fabs(w0));
      *w = (float)(w0 + h);
      double hp = *w - (double)w0;
      double lp = model_loss(ctx, m, x, y, AMP_F32, 0);
      *w = (float)(w0 - h);
      double hm = (double)w0 - *w;
      double lm = model_loss(ctx, m, x, y, AMP_F32, 0);
      *w = w0;
      double fd = (lp - lm) / (hp + hm), err = fabs(fd - g[pick[k]]);
      double bound = 1e-2 * gmax + 4 * 8 * 0x1p-24 * fabs(l0) / h;
      worst = fmax(worst, err / (gmax + 1e-30));
      CHECK(err <= bound, "%s: %s[%lld]: backward %.6g, finite differences %.6g (bound %.3g)", what,
            name, (long long)pick[k], (double)g[pick[k]], fd, bound);
    }
    free(g);
  }
  printf("%s: %d tensors, worst |fd - grad| / max|grad| = %.3g\n", what, np, worst);
}

static void test_gpt_names(amp_ctx *ctx) {
  amp_module *m = small_gpt(ctx, 1);
  CHECK(m != NULL, "gpt: %s", amp_ctx_error(ctx));
  if (!m) return;
  static const char *want[] = {"transformer.wte.weight",
                               "transformer.wpe.weight",
                               "transformer.h.0.ln_1.weight",
                               "transformer.h.0.ln_1.bias",
                               "transformer.h.0.attn.c_attn.weight",
                               "transformer.h.0.attn.c_attn.bias",
                               "transformer.h.0.attn.c_proj.weight",
                               "transformer.h.0.attn.c_proj.bias",
                               "transformer.h.0.ln_2.weight",
                               "transformer.h.0.ln_2.bias",
                               "transformer.h.0.mlp.c_fc.weight",
                               "transformer.h.0.mlp.c_fc.bias",
                               "transformer.h.0.mlp.c_proj.weight",
                               "transformer.h.0.mlp.c_proj.bias"};
  CHECK(amp_module_param_count(m) == 2 + 2 * 12 + 2, "%d parameters", amp_module_param_count(m));
  for (int i = 0; i < 14; i++) {
    const char *name = "";
    amp_module_param(m, i, &name);
    CHECK(strcmp(name, want[i]) == 0, "param %d: %s, want %s", i, name, want[i]);
  }
  const char *last = "";
  amp_tensor *lnf = amp_module_param(m, amp_module_param_count(m) - 1, &last);
  CHECK(strcmp(last, "transformer.ln_f.bias") == 0 && lnf->numel == 16, "last: %s", last);
  amp_tensor *w = amp_module_param(m, 4, NULL);
  CHECK(w->shape[0] == 48 && w->shape[1] == 16, "c_attn weight [3·dim, dim]");
  /* nanoGPT's init: N(0, 0.02) */
  amp_tensor *wte = amp_module_param(m, 0, NULL);
  double s2 = 0;
  for (int64_t i = 0; i < wte->numel; i++)
    s2 += (double)((float *)wte->data)[i] * ((float *)wte->data)[i];
  double sd = sqrt(s2 / (double)wte->numel);
  CHECK(sd > 0.015 && sd < 0.025, "wte std %.4f", sd);
  CHECK(amp_module_buffer_count(m) == 0, "no buffers");
}

/* The head and the embedding share transformer.wte.weight: its gradient is
 * the sum of both uses. Checked by finite differences on the whole model
 * (fd_check) and here directly: with the head's contribution alone
 * (logits from amp_linear on a detached copy of the weight) the gradient
 * differs. */
static void test_gpt_grad(amp_ctx *ctx) {
  amp_module *m = small_gpt(ctx, 2);
  if (!m) return;
  /* Larger weights than nanoGPT's 0.02 so that every gradient is well
   * above the finite differences' noise. */
  for (int i = 0; i < amp_module_param_count(m); i++) {
    amp_tensor *p = amp_module_param(m, i, NULL);
    if (p->ndim == 2)
      for (int64_t j = 0; j < p->numel; j++) ((float *)p->data)[j] *= 15;
  }
  amp_tensor *x = tokens(ctx, 2, (int64_t[]){GB, GT}, GV, 3);
  amp_tensor *y = tokens(ctx, 1, (int64_t[]){GB * GT}, GV, 4);
  fd_check(ctx, "gpt", m, x, y, 1e-2);
  /* A token that never appears in x still gets a gradient (from the head);
   * one that appears gets embedding + head. */
  amp_tensor *wte = amp_module_param(m, 0, NULL);
  int seen[GV] = {0};
  for (int i = 0; i < GB * GT; i++) seen[((int32_t *)x->data)[i]] = 1;
  int unseen = -1;
  for (int v = 0; v < GV; v++)
    if (!seen[v]) unseen = v;
  if (unseen >= 0) {
    double gn = 0;
    for (int j = 0; j < 16; j++) gn += fabs(((float *)wte->grad->data)[unseen * 16 + j]);
    CHECK(gn > 0, "an unseen token's row gets the head's gradient");
  }
  /* A sequence longer than the position table is an error. */
  amp_tensor *longx = tokens(ctx, 2, (int64_t[]){1, GT + 1}, GV, 5);
  amp_ctx_step_reset(ctx);
  CHECK(amp_module_forward(ctx, m, longx) == NULL && strstr(amp_ctx_error(ctx), "T <= 8"),
        "T > ctx: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
}

static amp_cnn_config small_cnn_config(void) {
  amp_cnn_config c = {
      .in_channels = 2, .height = 8, .width = 8, .classes = 3, .nstages = 2, .nhidden = 1};
  c.stages[0] = (amp_cnn_stage){4, 3, AMP_CNN_POOL_MAX, 2};
  c.stages[1] = (amp_cnn_stage){6, 3, AMP_CNN_POOL_AVG, 2};
  c.hidden[0] = 8;
  return c;
}

static void test_cnn(amp_ctx *ctx) {
  amp_rng r;
  amp_rng_seed(&r, 5);
  amp_cnn_config c = small_cnn_config();
  amp_module *m = amp_nn_cnn(ctx, &r, &c);
  CHECK(m != NULL, "cnn: %s", amp_ctx_error(ctx));
  if (!m) return;
  static const char *want[] = {"0.weight", "1.weight", "1.bias", "4.weight",  "5.weight",
                               "5.bias",   "9.weight", "9.bias", "11.weight", "11.bias"};
  CHECK(amp_module_param_count(m) == 10, "%d parameters", amp_module_param_count(m));
  for (int i = 0; i < 10 && i < amp_module_param_count(m); i++) {
    const char *name = "";
    amp_module_param(m, i, &name);
    CHECK(strcmp(name, want[i]) == 0, "param %d: %s, want %s", i, name, want[i]);
  }
  const char *bn = "";
  CHECK(amp_module_buffer_count(m) == 4 && amp_module_buffer(m, 3, &bn) &&
            strcmp(bn, "5.running_var") == 0,
        "buffers: %d, last %s", amp_module_buffer_count(m), bn);
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 4, (int64_t[]){4, 2, 8, 8});
  for (int64_t i = 0; i < x->numel; i++) ((float *)x->data)[i] = amp_rng_uniform(&r, -1, 2);
  amp_tensor *y = tokens(ctx, 1, (int64_t[]){4}, 3, 6);
  fd_check(ctx, "cnn", m, x, y, 1e-3);
  /* Training mode moved the running statistics; eval mode uses and keeps them. */
  amp_tensor *rm = amp_module_buffer(m, 0, NULL), *rv = amp_module_buffer(m, 1, NULL);
  CHECK(((float *)rm->data)[0] != 0 && ((float *)rv->data)[0] != 1, "running stats updated");
  float keep = ((float *)rm->data)[0];
  amp_module_set_training(m, 0);
  amp_ctx_step_reset(ctx);
  amp_tensor *out = amp_module_forward(ctx, m, x);
  CHECK(out && out->shape[0] == 4 && out->shape[1] == 3 && ((float *)rm->data)[0] == keep,
        "eval: %s", amp_ctx_error(ctx));
  amp_module_set_training(m, 1);
  /* Checkpoints carry the buffers: a fresh CNN loads the running stats. */
  const char *path = "test_models_cnn.st";
  amp_rng_seed(&r, 99);
  amp_module *m2 = amp_nn_cnn(ctx, &r, &c);
  CHECK(amp_checkpoint_save(ctx, path, m, NULL, NULL, NULL, NULL, 0) == AMP_OK &&
            amp_checkpoint_load(ctx, path, m2, NULL, NULL, NULL) == AMP_OK,
        "checkpoint: %s", amp_ctx_error(ctx));
  for (int i = 0; i < amp_module_buffer_count(m); i++) {
    amp_tensor *a = amp_module_buffer(m, i, NULL), *b = amp_module_buffer(m2, i, NULL);
    CHECK(b && memcmp(a->data, b->data, amp_tensor_bytes(a)) == 0, "buffer %d restored", i);
  }
  remove(path);
  amp_ctx_clear_error(ctx);
}

/* Loss and every gradient with 1 and 2 threads, F32 and F16 autocast. */
static void same_bits_threads(amp_ctx *ctx, const char *what, amp_module *m, amp_tensor *x,
                              amp_tensor *y) {
  if (!m || !x || !y) return;
  int64_t n = amp_module_param_numel(m);
  amp_dtype dts[2] = {AMP_F32, AMP_F16};
  for (int d = 0; d < 2; d++) {
    float *g[2];
    double l[2];
    for (int t = 0; t < 2; t++) {
      amp_ctx_set_threads(ctx, t + 1);
      zero_grads(m);
      l[t] = model_loss(ctx, m, x, y, dts[d], 1);
      g[t] = malloc(sizeof(float) * (size_t)n);
      int64_t o = 0;
      for (int i = 0; i < amp_module_param_count(m); i++) {
        amp_tensor *p = amp_module_param(m, i, NULL);
        memcpy(g[t] + o, p->grad->data, sizeof(float) * (size_t)p->numel);
        o += p->numel;
      }
    }
    CHECK(isfinite(l[0]) && l[0] == l[1] && memcmp(g[0], g[1], sizeof(float) * (size_t)n) == 0,
          "%s %s: 1 and 2 threads give the same loss and gradient bits", what,
          amp_dtype_name(dts[d]));
    free(g[0]);
    free(g[1]);
  }
  amp_ctx_set_threads(ctx, 1);
}

static void test_threads(amp_ctx *ctx) {
  amp_tensor *x = tokens(ctx, 2, (int64_t[]){GB, GT}, GV, 10);
  amp_tensor *y = tokens(ctx, 1, (int64_t[]){GB * GT}, GV, 11);
  same_bits_threads(ctx, "gpt", small_gpt(ctx, 9), x, y);
  /* A CNN wide enough for the kernels to split work between threads. */
  amp_rng r;
  amp_rng_seed(&r, 12);
  amp_cnn_config c = {
      .in_channels = 3, .height = 16, .width = 16, .classes = 10, .nstages = 2, .nhidden = 1};
  c.stages[0] = (amp_cnn_stage){32, 3, AMP_CNN_POOL_MAX, 2};
  c.stages[1] = (amp_cnn_stage){64, 3, AMP_CNN_POOL_GLOBAL_AVG, 0};
  c.hidden[0] = 64;
  amp_tensor *img =
      amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 4, (int64_t[]){16, 3, 16, 16});
  for (int64_t i = 0; img && i < img->numel; i++) ((float *)img->data)[i] = amp_rng_normal(&r);
  same_bits_threads(ctx, "cnn", amp_nn_cnn(ctx, &r, &c), img,
                    tokens(ctx, 1, (int64_t[]){16}, 10, 13));
}

static void test_errors(amp_ctx *ctx) {
  amp_rng r;
  amp_rng_seed(&r, 1);
  amp_gpt_config bad = {.vocab = 256, .ctx = 32, .layers = 2, .dim = 64, .heads = 5};
  CHECK(amp_nn_gpt(ctx, &r, &bad) == NULL && strstr(amp_ctx_error(ctx), "heads must divide dim"),
        "heads: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  bad.heads = 4;
  bad.layers = 0;
  CHECK(amp_nn_gpt(ctx, &r, &bad) == NULL, "layers 0");
  amp_ctx_clear_error(ctx);
  amp_cnn_config c = small_cnn_config();
  c.stages[1].pool_size = 8;
  CHECK(amp_nn_cnn(ctx, &r, &c) == NULL && strstr(amp_ctx_error(ctx), "pooling window"), "pool: %s",
        amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_nn_batch_norm2d(ctx, 4, 0, 0.1f) == NULL, "eps 0");
  amp_ctx_clear_error(ctx);
}

int main(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_ctx_set_threads(ctx, 1);
  test_gpt_names(ctx);
  test_gpt_grad(ctx);
  test_cnn(ctx);
  test_threads(ctx);
  test_errors(ctx);
  amp_ctx_free(ctx);
  TEST_MAIN_END();
}
