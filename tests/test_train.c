/* End-to-end training: every recipe on synthetic data learns; masters and
 * working copies agree after every step; the same seed gives the same bits
 * with 1 and 2 threads; gradients pushed below F16's range (loss × 2^-20) are
 * lost without loss scaling and kept by dynamic scaling, which follows the
 * FP32 loss curve; real MNIST when data/mnist exists. */
#include "check.h"
#include "ampc.h"
#include "recipe.h" /* tools/ampc: the recipes and models of `ampc train` */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A recipe as `ampc train` flags: --precision, --loss-scale (NULL: the
 * precision's default), --master-weights on (1) / off (0). */
typedef struct recipe {
  const char *name;
  const char *precision, *loss_scale;
  int master_weights;
} recipe;

typedef struct run {
  float first_loss, last_loss;
  double accuracy;
  int64_t skipped;
  float *master; /* copy of the final masters (malloc) */
  int64_t n;
  float *losses;    /* per step */
  double zero_frac; /* fraction of parameter-gradient values exactly 0 (mean over steps) */
  int work_ok;
} run;

/* Trains `steps` steps of the PyTorch AMP loop; fills *out. */
static void train(const recipe *rc, const amp_dataset *ds, const amp_dataset *test, int64_t hid,
                  int steps, int threads, float loss_mul, run *out) {
  memset(out, 0, sizeof *out);
  ampc_recipe r;
  char msg[256];
  int bad =
      ampc_recipe_parse(rc->precision, rc->loss_scale, rc->master_weights, &r, msg, sizeof msg);
  CHECK(!bad, "%s: recipe: %s", rc->name, bad ? msg : "");
  if (bad) return;
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = threads});
  long sizes[3] = {(long)amp_dataset_features(ds), (long)hid, (long)amp_dataset_classes(ds)};
  ampc_run run;
  int made = ampc_run_create(ctx, &r, sizes, 3, 0, AMP_OPTIM_ADAM, -1, 0, &run);
  amp_module *m = run.model;
  amp_optim *opt = run.opt;
  amp_scaler *sc = run.scaler;
  amp_loader *ld = amp_loader_create(ctx, ds, &(amp_loader_params){64, 1, 7, 1, r.dt, 1});
  CHECK(made && ld, "%s: setup: %s", rc->name, amp_ctx_error(ctx));
  if (!made || !ld) return;
  out->losses = calloc((size_t)steps, sizeof(float));
  out->work_ok = 1;
  int64_t n = amp_optim_numel(opt);
  float *w32 = malloc(sizeof(float) * (size_t)n);
  for (int s = 0; s < steps; s++) {
    amp_ctx_step_reset(ctx);
    amp_tensor *x, *y;
    if (amp_loader_next(ld, &x, &y) != 1 && amp_loader_next(ld, &x, &y) != 1) break;
    amp_tensor *loss = ampc_forward_loss(ctx, &r, m, x, y, loss_mul);
    CHECK(loss != NULL, "%s: forward: %s", rc->name, amp_ctx_error(ctx));
    if (!loss) break;
    float lv = *(float *)loss->data;
    out->losses[s] = lv / loss_mul;
    if (s == 0) out->first_loss = lv / loss_mul;
    out->last_loss = lv / loss_mul;
    CHECK(amp_backward(ctx, amp_scaler_scale(sc, loss)) == AMP_OK, "%s: backward: %s", rc->name,
          amp_ctx_error(ctx));
    CHECK(amp_scaler_unscale(sc, opt) == AMP_OK, "unscale");
    const float *g = amp_optim_grad_buffer(opt);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) zeros += g[i] == 0;
    out->zero_frac += (double)zeros / (double)n / steps;
    int stepped = amp_scaler_step(sc, opt);
    CHECK(stepped >= 0, "%s: step: %s", rc->name, amp_ctx_error(ctx));
    out->skipped += stepped == 0;
    amp_scaler_update(sc);
    amp_optim_zero_grad(opt);
    /* Every working copy equals its master rounded to the working dtype. */
    if (r.dt != AMP_F32) {
      for (int i = 0; i < amp_module_param_count(m); i++) {
        amp_tensor *p = amp_module_param(m, i, NULL);
        amp_convert(w32, AMP_F32, amp_param_work(p)->data, amp_param_work(p)->dtype,
                    (size_t)p->numel);
        float *r16 = malloc(sizeof(float) * (size_t)p->numel);
        amp_tensor *tmp = amp_tensor_cast(ctx, AMP_ARENA_STEP, p, r.dt);
        amp_convert(r16, AMP_F32, tmp->data, r.dt, (size_t)p->numel);
        out->work_ok &= memcmp(w32, r16, sizeof(float) * (size_t)p->numel) == 0;
        free(r16);
      }
    }
  }
  free(w32);
  out->accuracy = test ? ampc_evaluate(ctx, m, test, r.dt, 500) : 0;
  out->n = n;
  out->master = malloc(sizeof(float) * (size_t)n);
  memcpy(out->master, amp_optim_master_buffer(opt), sizeof(float) * (size_t)n);
  amp_loader_free(ld);
  amp_ctx_free(ctx);
}

static void run_free(run *r) {
  free(r->master);
  free(r->losses);
}

static const recipe FP32 = {"fp32", "fp32", NULL, 1};
static const recipe FP16 = {"fp16", "fp16", NULL, 1};
static const recipe BF16 = {"bf16", "bf16", NULL, 1};
static const recipe FP16_STATIC = {"fp16 static:1024", "fp16", "static:1024", 1};
static const recipe FP16_NOSCALE = {"fp16 no scaling", "fp16", "none", 1};
static const recipe FP16_NOMASTER = {"fp16 no masters", "fp16", NULL, 0};

static void test_recipes(const amp_dataset *tr, const amp_dataset *te) {
  const recipe *all[] = {&FP32, &FP16, &BF16, &FP16_STATIC, &FP16_NOSCALE, &FP16_NOMASTER};
  for (int i = 0; i < 6; i++) {
    run r;
    train(all[i], tr, te, 48, 150, 2, 1.0f, &r);
    CHECK(r.last_loss < 0.3f * r.first_loss, "%s: loss %.4f → %.4f", all[i]->name,
          (double)r.first_loss, (double)r.last_loss);
    CHECK(r.accuracy > 0.9, "%s: accuracy %.3f", all[i]->name, r.accuracy);
    CHECK(r.work_ok, "%s: working copies equal their masters rounded", all[i]->name);
    CHECK(r.skipped <= 1, "%s: %lld skipped steps", all[i]->name, (long long)r.skipped);
    run_free(&r);
  }
}

static void test_determinism(const amp_dataset *tr) {
  run a, b, c;
  train(&FP16, tr, NULL, 48, 40, 1, 1.0f, &a);
  train(&FP16, tr, NULL, 48, 40, 2, 1.0f, &b);
  train(&FP16, tr, NULL, 48, 40, 2, 1.0f, &c);
  CHECK(a.master && b.master && c.master && a.n == b.n &&
            memcmp(a.master, b.master, sizeof(float) * (size_t)a.n) == 0,
        "1 and 2 threads: the same final weights");
  CHECK(b.master && c.master && memcmp(b.master, c.master, sizeof(float) * (size_t)b.n) == 0,
        "two runs: the same final weights");
  run_free(&a);
  run_free(&b);
  run_free(&c);
}

/* Loss × 2^-20: the gradients of the logits, about 1e-3/batch, become
 * ~1e-11 — below F16's smallest subnormal 2^-24 ≈ 6e-8. */
static void test_underflow(const amp_dataset *tr) {
  const float mul = 0x1p-20f;
  const int steps = 120;
  run f32, none, dyn;
  train(&FP32, tr, NULL, 48, steps, 2, mul, &f32);
  train(&FP16_NOSCALE, tr, NULL, 48, steps, 2, mul, &none);
  train(&FP16, tr, NULL, 48, steps, 2, mul, &dyn);
  printf("loss x 2^-20: fraction of gradient values that are zero: fp32 %.4f, fp16 without "
         "scaling %.4f, fp16 dynamic scaling %.4f\n",
         f32.zero_frac, none.zero_frac, dyn.zero_frac);
  printf("final loss: fp32 %.4f, fp16 none %.4f, fp16 dynamic %.4f\n", (double)f32.last_loss,
         (double)none.last_loss, (double)dyn.last_loss);
  CHECK(none.zero_frac > 0.99, "without scaling the F16 gradients flush to zero (%.4f)",
        none.zero_frac);
  CHECK(f32.zero_frac < 0.2 && dyn.zero_frac < 0.2, "fp32 %.4f and dynamic %.4f keep them",
        f32.zero_frac, dyn.zero_frac);
  CHECK(none.last_loss > 0.9f * none.first_loss, "no scaling: no learning (%.4f → %.4f)",
        (double)none.first_loss, (double)none.last_loss);
  /* Dynamic scaling follows the FP32 loss curve, step by step. */
  double worst = 0;
  for (int s = 0; s < steps; s++) {
    double d = fabs((double)dyn.losses[s] - (double)f32.losses[s]) / fmax(1e-3, f32.losses[s]);
    worst = fmax(worst, d);
  }
  printf("dynamic vs fp32 loss curve: worst relative difference %.4f\n", worst);
  CHECK(f32.last_loss < 0.5f * f32.first_loss, "fp32 learns (%.4f → %.4f)", (double)f32.first_loss,
        (double)f32.last_loss);
  CHECK(worst < 0.1, "dynamic scaling matches the FP32 curve within 10%% (worst %.4f)", worst);
  run_free(&f32);
  run_free(&none);
  run_free(&dyn);
}

static void test_mnist(void) {
  const char *dir = getenv("AMPC_MNIST_DIR");
  char path[1024];
  if (!dir) {
    /* The source tree's data/mnist, found from this file's path. */
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    if (slash) *slash = '\0';
    slash = strrchr(path, '/');
    if (slash) *slash = '\0';
    strncat(path, "/data/mnist", sizeof path - strlen(path) - 1);
    dir = path;
  }
  struct stat st;
  char probe[1100];
  snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte", dir);
  if (stat(probe, &st) != 0) {
    printf("note: %s not found; the real-MNIST check is skipped (scripts/fetch-mnist)\n", dir);
    return;
  }
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *tr = NULL, *te = NULL;
  CHECK(amp_mnist_load(ctx, dir, 1, &tr) == AMP_OK && amp_mnist_load(ctx, dir, 0, &te) == AMP_OK,
        "load MNIST: %s", amp_ctx_error(ctx));
  amp_ctx_free(ctx);
  if (!tr || !te) return;
  run r;
  train(&FP16, tr, te, 256, 300, 2, 1.0f, &r);
  printf("MNIST, fp16, 300 steps of 64: test accuracy %.2f%%\n", 100 * r.accuracy);
  CHECK(r.accuracy > 0.90, "MNIST fp16 accuracy %.3f after 300 steps", r.accuracy);
  run_free(&r);
  amp_dataset_free(tr);
  amp_dataset_free(te);
}

int main(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *all = NULL, *tr = NULL, *te = NULL;
  CHECK(amp_synthetic_load(ctx, 6000, 32, 5, 11, &all) == AMP_OK &&
            amp_dataset_slice(ctx, all, 0, 5000, &tr) == AMP_OK &&
            amp_dataset_slice(ctx, all, 5000, 1000, &te) == AMP_OK,
        "synthetic data: %s", amp_ctx_error(ctx));
  amp_ctx_free(ctx);
  if (tr && te) {
    test_recipes(tr, te);
    test_determinism(tr);
    test_underflow(tr);
  }
  test_mnist();
  amp_dataset_free(all);
  amp_dataset_free(tr);
  amp_dataset_free(te);
  TEST_MAIN_END();
}
