/* Modules: PyTorch-style initialisation from a seeded generator, the
 * parameter registry with dotted names, training/eval mode, and a small model
 * under autocast against FP32 (a rounding-derived bound) and across thread
 * counts (bit-identical). */
#include "check.h"
#include "ampc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_init(amp_ctx *ctx) {
  amp_rng r1, r2;
  amp_rng_seed(&r1, 7);
  amp_rng_seed(&r2, 7);
  amp_module *a = amp_nn_linear(ctx, &r1, 784, 1024, 1);
  amp_module *b = amp_nn_linear(ctx, &r2, 784, 1024, 1);
  CHECK(a && b, "create: %s", amp_ctx_error(ctx));
  if (!a || !b) return;
  CHECK(amp_module_param_count(a) == 2, "weight and bias");
  const char *name;
  amp_tensor *w = amp_module_param(a, 0, &name);
  CHECK(w && strcmp(name, "weight") == 0 && w->shape[0] == 1024 && w->shape[1] == 784,
        "weight [out,in]");
  CHECK(memcmp(w->data, amp_module_param(b, 0, NULL)->data, amp_tensor_bytes(w)) == 0,
        "same seed, same weights");
  /* U(±1/sqrt(784)): mean 0, variance bound²/3, every value inside. */
  double bound = 1 / sqrt(784.0), s = 0, s2 = 0, mx = 0;
  const float *d = w->data;
  for (int64_t i = 0; i < w->numel; i++) {
    s += d[i];
    s2 += (double)d[i] * d[i];
    mx = fmax(mx, fabs(d[i]));
  }
  double mean = s / (double)w->numel, var = s2 / (double)w->numel - mean * mean;
  CHECK(mx <= bound && mx > 0.999 * bound, "max |w| %.6g vs bound %.6g", mx, bound);
  CHECK(fabs(mean) < 5 * bound / sqrt(3.0 * (double)w->numel), "mean %.3g", mean);
  CHECK(fabs(var / (bound * bound / 3) - 1) < 0.01, "variance ratio %.4f",
        var / (bound * bound / 3));
  amp_tensor *bias = amp_module_param(a, 1, &name);
  CHECK(bias && strcmp(name, "bias") == 0 && bias->numel == 1024, "bias [out]");
  /* The generator's first numbers are fixed on every machine. */
  amp_rng r;
  amp_rng_seed(&r, 0);
  CHECK(amp_rng_next(&r) == 0xE220A8397B1DCDAFull, "splitmix64(0) first output");
  amp_rng_seed(&r, 1);
  float n0 = amp_rng_normal(&r);
  CHECK(isfinite(n0), "normal");
  double ns = 0, ns2 = 0;
  for (int i = 0; i < 100000; i++) {
    double v = amp_rng_normal(&r);
    ns += v;
    ns2 += v * v;
  }
  CHECK(fabs(ns / 1e5) < 0.02 && fabs(ns2 / 1e5 - 1) < 0.02, "N(0,1): mean %.4f var %.4f", ns / 1e5,
        ns2 / 1e5);
}

static amp_module *mlp(amp_ctx *ctx, uint64_t seed, int64_t in, int64_t hid, int64_t out) {
  amp_rng r;
  amp_rng_seed(&r, seed);
  amp_module *l1 = amp_nn_linear(ctx, &r, in, hid, 1);
  amp_module *l2 = amp_nn_linear(ctx, &r, hid, out, 1);
  amp_module *kids[3] = {l1, amp_nn_relu(ctx), l2};
  return amp_nn_sequential(ctx, 3, kids);
}

static void test_registry(amp_ctx *ctx) {
  amp_module *m = mlp(ctx, 0, 784, 1024, 10);
  CHECK(m != NULL, "mlp: %s", amp_ctx_error(ctx));
  if (!m) return;
  const char *want[4] = {"0.weight", "0.bias", "2.weight", "2.bias"};
  CHECK(amp_module_param_count(m) == 4, "4 parameters");
  for (int i = 0; i < 4; i++) {
    const char *name = NULL;
    amp_tensor *t = amp_module_param(m, i, &name);
    CHECK(t && name && strcmp(name, want[i]) == 0, "param %d is %s", i, name ? name : "?");
    CHECK(t && t->requires_grad && t->dtype == AMP_F32 && t->grad && t->grad->dtype == AMP_F32,
          "param %d is an F32 leaf with an F32 gradient", i);
  }
  CHECK(amp_module_param_numel(m) == 784 * 1024 + 1024 + 1024 * 10 + 10, "numel %lld",
        (long long)amp_module_param_numel(m));
  CHECK(amp_module_param(m, 4, NULL) == NULL && amp_module_param(m, -1, NULL) == NULL,
        "out of range");
  CHECK(strcmp(amp_module_type(m), "Sequential") == 0, "type");
  /* Nested containers prefix their index again. */
  amp_module *outer = amp_nn_sequential(ctx, 2, (amp_module *[]){amp_nn_relu(ctx), m});
  const char *name = NULL;
  amp_module_param(outer, 2, &name);
  CHECK(outer && name && strcmp(name, "1.2.weight") == 0, "nested name %s", name ? name : "?");
  /* LayerNorm starts at weight 1, bias 0. */
  amp_module *ln = amp_nn_layer_norm(ctx, 5, 1e-5f);
  CHECK(ln && ((float *)amp_module_param(ln, 0, NULL)->data)[4] == 1.0f &&
            ((float *)amp_module_param(ln, 1, NULL)->data)[4] == 0.0f,
        "LayerNorm init");
  /* Bad arguments: NULL and an error, no crash. */
  CHECK(amp_nn_linear(ctx, NULL, 3, 0, 1) == NULL && amp_ctx_status(ctx) == AMP_ERR_INVALID_ARG,
        "Linear(3, 0)");
  amp_ctx_clear_error(ctx);
  CHECK(amp_nn_dropout(ctx, 1.0f, 0) == NULL, "Dropout(1)");
  amp_ctx_clear_error(ctx);
}

/* Dropout is active in training mode only. */
static void test_dropout_mode(amp_ctx *ctx) {
  amp_module *dr = amp_nn_dropout(ctx, 0.5f, 3);
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){4, 256});
  for (int64_t i = 0; i < x->numel; i++) ((float *)x->data)[i] = 1.0f;
  amp_tensor *y = amp_module_forward(ctx, dr, x);
  int zeros = 0;
  for (int64_t i = 0; y && i < y->numel; i++) zeros += ((float *)y->data)[i] == 0;
  CHECK(y && zeros > 400 && zeros < 624, "training: about half dropped (%d of 1024)", zeros);
  amp_tensor *y2 = amp_module_forward(ctx, dr, x);
  CHECK(y2 && memcmp(y->data, y2->data, amp_tensor_bytes(y)) != 0, "a new mask per call");
  amp_module_set_training(dr, 0);
  CHECK(amp_module_forward(ctx, dr, x) == x, "eval: identity");
  amp_ctx_step_reset(ctx);
}

/* |y| computed through the absolute values of the network: the scale that
 * rounding errors are relative to. */
static void abs_net(amp_module *m, const float *x, int64_t n, int64_t in, int64_t hid, int64_t out,
                    double *a) {
  const float *w1 = amp_module_param(m, 0, NULL)->data, *b1 = amp_module_param(m, 1, NULL)->data;
  const float *w2 = amp_module_param(m, 2, NULL)->data, *b2 = amp_module_param(m, 3, NULL)->data;
  double *h = malloc(sizeof(double) * (size_t)hid);
  for (int64_t r = 0; r < n; r++) {
    for (int64_t j = 0; j < hid; j++) {
      double s = fabs(b1[j]);
      for (int64_t k = 0; k < in; k++) s += fabs(x[r * in + k] * w1[j * in + k]);
      h[j] = s;
    }
    for (int64_t o = 0; o < out; o++) {
      double s = fabs(b2[o]);
      for (int64_t j = 0; j < hid; j++) s += h[j] * fabs(w2[o * hid + j]);
      a[r * out + o] = s;
    }
  }
  free(h);
}

/* The model under autocast against FP32: every logit within c·u·|net|(x),
 * u the unit roundoff of the 16-bit format; and bit-identical results
 * (logits and all gradients) with 1 and 2 threads. */
static void test_autocast_model(amp_ctx *ctx) {
  const int64_t n = 16, in = 64, hid = 96, out = 10;
  amp_module *m = mlp(ctx, 42, in, hid, out);
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 2, (int64_t[]){n, in});
  amp_tensor *lab = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_I32, 1, (int64_t[]){n});
  amp_rng r;
  amp_rng_seed(&r, 5);
  for (int64_t i = 0; i < x->numel; i++) ((float *)x->data)[i] = amp_rng_uniform(&r, -1, 1);
  for (int64_t i = 0; i < n; i++) ((int32_t *)lab->data)[i] = (int32_t)(i % out);
  double *a = malloc(sizeof(double) * (size_t)(n * out));
  abs_net(m, x->data, n, in, hid, out, a);
  amp_tensor *y32 = amp_module_forward(ctx, m, x);
  float *ref = malloc(amp_tensor_bytes(y32));
  memcpy(ref, y32->data, amp_tensor_bytes(y32));
  amp_ctx_step_reset(ctx);

  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  const double u[2] = {0x1p-11, 0x1p-8};
  for (int d = 0; d < 2; d++) {
    float *logits[2] = {0}, *grads[2] = {0};
    size_t gbytes = 0;
    for (int threads = 1; threads <= 2; threads++) {
      amp_ctx_set_threads(ctx, threads);
      for (int i = 0; i < amp_module_param_count(m); i++)
        amp_tensor_zero_grad(amp_module_param(m, i, NULL));
      amp_autocast_begin(ctx, dts[d]);
      amp_tensor *y = amp_module_forward(ctx, m, x);
      amp_tensor *loss = amp_cross_entropy(ctx, y, lab);
      amp_autocast_end(ctx);
      CHECK(y && y->dtype == dts[d] && loss, "autocast forward: %s", amp_ctx_error(ctx));
      if (!y || !loss) return;
      CHECK(amp_backward(ctx, loss) == AMP_OK, "backward: %s", amp_ctx_error(ctx));
      logits[threads - 1] = malloc(sizeof(float) * (size_t)y->numel);
      amp_convert(logits[threads - 1], AMP_F32, y->data, y->dtype, (size_t)y->numel);
      gbytes = 0;
      for (int i = 0; i < amp_module_param_count(m); i++)
        gbytes += amp_tensor_bytes(amp_module_param(m, i, NULL)->grad);
      grads[threads - 1] = malloc(gbytes);
      size_t o = 0;
      for (int i = 0; i < amp_module_param_count(m); i++) {
        amp_tensor *g = amp_module_param(m, i, NULL)->grad;
        memcpy((char *)grads[threads - 1] + o, g->data, amp_tensor_bytes(g));
        o += amp_tensor_bytes(g);
      }
      amp_ctx_step_reset(ctx);
    }
    CHECK(memcmp(logits[0], logits[1], sizeof(float) * (size_t)(n * out)) == 0 &&
              memcmp(grads[0], grads[1], gbytes) == 0,
          "%s: 1 and 2 threads give the same bits", amp_dtype_name(dts[d]));
    /* Inputs, weights, the hidden layer and the logits are each rounded once
       (relative u), products exact in F32: 6u·|net| bounds the difference. */
    double worst = 0, maxdiff = 0;
    for (int64_t i = 0; i < n * out; i++) {
      double diff = fabs(logits[0][i] - ref[i]);
      worst = fmax(worst, diff / (6 * u[d] * a[i]));
      maxdiff = fmax(maxdiff, diff);
    }
    CHECK(worst <= 1.0, "%s vs f32: error %.3g of the rounding bound", amp_dtype_name(dts[d]),
          worst);
    CHECK(maxdiff > 0, "%s really ran in 16 bits", amp_dtype_name(dts[d]));
    free(logits[0]);
    free(logits[1]);
    free(grads[0]);
    free(grads[1]);
  }
  free(ref);
  free(a);
}

/* A small CNN built from every spatial module runs forward and backward. */
static void test_cnn(amp_ctx *ctx) {
  amp_rng r;
  amp_rng_seed(&r, 1);
  amp_module *kids[7] = {amp_nn_conv2d(ctx, &r, 1, 4, 3, 1, 1, 1),
                         amp_nn_relu(ctx),
                         amp_nn_max_pool2d(ctx, 2, 2),
                         amp_nn_flatten(ctx),
                         amp_nn_layer_norm(ctx, 4 * 4 * 4, 1e-5f),
                         amp_nn_gelu(ctx),
                         amp_nn_linear(ctx, &r, 64, 10, 1)};
  amp_module *m = amp_nn_sequential(ctx, 7, kids);
  CHECK(m && amp_module_param_count(m) == 6, "CNN parameters: %s", amp_ctx_error(ctx));
  if (!m) return;
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 4, (int64_t[]){3, 1, 8, 8});
  for (int64_t i = 0; i < x->numel; i++) ((float *)x->data)[i] = amp_rng_uniform(&r, -1, 1);
  amp_tensor *lab = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_I32, 1, (int64_t[]){3});
  amp_autocast_begin(ctx, AMP_F16);
  amp_tensor *y = amp_module_forward(ctx, m, x);
  amp_tensor *loss = amp_cross_entropy(ctx, y, lab);
  amp_autocast_end(ctx);
  CHECK(loss && amp_backward(ctx, loss) == AMP_OK, "CNN step: %s", amp_ctx_error(ctx));
  const char *name;
  amp_tensor *w = amp_module_param(m, 0, &name);
  double gs = 0;
  for (int64_t i = 0; i < w->numel; i++) gs += fabs(((float *)w->grad->data)[i]);
  CHECK(strcmp(name, "0.weight") == 0 && gs > 0, "conv weight gradient reached (%g)", gs);
  amp_module *emb = amp_nn_embedding(ctx, &r, 11, 4);
  amp_tensor *idx = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_I32, 1, (int64_t[]){5});
  amp_tensor *e = amp_module_forward(ctx, emb, idx);
  CHECK(e && e->ndim == 2 && e->shape[0] == 5 && e->shape[1] == 4, "Embedding output");
  amp_ctx_step_reset(ctx);
}

int main(void) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  test_init(ctx);
  test_registry(ctx);
  test_dropout_mode(ctx);
  test_autocast_model(ctx);
  test_cnn(ctx);
  amp_ctx_free(ctx);
  TEST_MAIN_END();
}
