/* ampc against PyTorch on identical weights and batches (the llm.c test,
 * tighter): tests/data/models_ref.bin, written by tests/torch_models.py
 * (PyTorch in float64, the weights bf16-exact so they are stored in 16
 * bits), holds a tiny GPT (2 layers, dim 64, 4 heads, ctx 32, batch 4,
 * vocabulary 256) and a small CNN (conv-BN-ReLU-maxpool, conv-BN-ReLU-
 * avgpool, linear-ReLU-linear on 8 images of 1×16×16): initial weights by
 * PyTorch state_dict name, one batch, the logits, the loss, every parameter
 * gradient, BatchNorm's running statistics after the forward, and the
 * losses of 10 AdamW steps (lr 1e-3, weight decay 1e-2) on that batch.
 *
 * FP32: loss within 1e-5 relative, logits and every gradient tensor within
 * 1e-4 of the tensor's largest element, the 10 losses within 1e-4 relative.
 * F16 / BF16 autocast (u = 2^-11 / 2^-8, the unit roundoff): the operands of
 * every matrix product are rounded to the format (relative error u each),
 * the products accumulate in F32, the attention softmax and the loss run in
 * F32, and layer norm and batch norm compute their statistics in F32 and
 * round their result once to the format (u: for layer norm the very rounding
 * the next product's operand cast made before; attention's P is kept rounded
 * to the format, as P·V already used it), so each layer adds O(u) relative
 * error and the model's
 * depth (embeddings, 2 blocks of 4 products, head; or 2 convs and 2 linears)
 * multiplies it by a small constant: the loss within 4u relative, logits
 * within 16u and gradients within 32u of the tensor's largest element
 * (gradients pass the products twice), the 10 losses within 8u relative,
 * all printed with the measured error. Gradients are compared in the FP32
 * gradient buffer (accumulated in F32, unscaled), never rounded to 16
 * bits. F16 trains with a static loss scale of 1024 (no step skipped). */
#include "check.h"
#include "ampc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AMPC_TEST_DATA
#define AMPC_TEST_DATA "tests/data"
#endif

typedef struct rec {
  char name[128];
  int code, ndim;
  int64_t shape[4], numel;
  double *v; /* values as double (i32 and bf16 converted) */
} rec;

static rec recs[256];
static int nrecs;

static int read_exact(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

/* Reads one record's values; 0 when the file is short or malformed. */
static int read_rec(FILE *f, rec *r) {
  uint32_t len, nd;
  uint8_t code;
  if (!read_exact(f, &len, 4) || len >= sizeof r->name || !read_exact(f, r->name, len)) return 0;
  r->name[len] = 0;
  if (!read_exact(f, &code, 1) || !read_exact(f, &nd, 4) || nd > 4 || code > 3) return 0;
  r->code = code;
  r->ndim = (int)nd;
  r->numel = 1;
  for (uint32_t i = 0; i < nd; i++) {
    if (!read_exact(f, &r->shape[i], 8) || r->shape[i] < 0 || r->shape[i] > (1 << 24)) return 0;
    r->numel *= r->shape[i];
  }
  static const size_t size[4] = {4, 4, 8, 2};
  size_t bytes = (size_t)r->numel * size[code];
  unsigned char *raw = malloc(bytes + 1);
  r->v = malloc(sizeof(double) * (size_t)(r->numel + 1));
  if (!raw || !r->v || !read_exact(f, raw, bytes)) return free(raw), 0;
  for (int64_t i = 0; i < r->numel; i++) {
    float fv;
    int32_t iv;
    uint32_t bits;
    uint16_t h;
    switch (code) {
    case 0:
      memcpy(&fv, raw + 4 * i, 4);
      r->v[i] = fv;
      break;
    case 1:
      memcpy(&iv, raw + 4 * i, 4);
      r->v[i] = iv;
      break;
    case 2: memcpy(&r->v[i], raw + 8 * i, 8); break;
    default:
      memcpy(&h, raw + 2 * i, 2);
      bits = (uint32_t)h << 16;
      memcpy(&fv, &bits, 4);
      r->v[i] = fv;
    }
  }
  free(raw);
  return 1;
}

static int load_ref(const char *path) {
  FILE *f = fopen(path, "rb");
  char magic[8];
  uint32_t n;
  if (!f) return 0;
  int ok = read_exact(f, magic, 8) && memcmp(magic, "AMPREF01", 8) == 0 && read_exact(f, &n, 4) &&
           n <= 256;
  for (uint32_t i = 0; ok && i < n; i++) ok = read_rec(f, &recs[nrecs++]);
  fclose(f);
  return ok;
}

static const rec *find(const char *prefix, const char *kind, const char *name) {
  char full[160];
  snprintf(full, sizeof full, "%s%s%s%s", prefix, kind, name ? "." : "", name ? name : "");
  for (int i = 0; i < nrecs; i++)
    if (strcmp(recs[i].name, full) == 0) return &recs[i];
  return NULL;
}

/* Copies the reference's initial weights into the model by name. */
static int load_weights(amp_module *m, const char *prefix) {
  for (int i = 0; i < amp_module_param_count(m); i++) {
    const char *name;
    amp_tensor *p = amp_module_param(m, i, &name);
    const rec *r = find(prefix, ".param", name);
    CHECK(r && r->numel == p->numel, "%s: weight %s missing or of another size", prefix, name);
    if (!r || r->numel != p->numel) return 0;
    for (int64_t j = 0; j < p->numel; j++) ((float *)p->data)[j] = (float)r->v[j];
  }
  return 1;
}

/* Largest |a - ref| over the tensor, relative to its largest |ref|. */
static double tensor_err(const float *a, const rec *r) {
  double mx = 0, err = 0;
  for (int64_t i = 0; i < r->numel; i++) {
    mx = fmax(mx, fabs(r->v[i]));
    err = fmax(err, fabs(a[i] - r->v[i]));
  }
  return err / (mx > 0 ? mx : 1);
}

/* ||a - ref||_2 / ||ref||_2. */
static double norm_err(const float *a, const rec *r) {
  double d2 = 0, r2 = 0;
  for (int64_t i = 0; i < r->numel; i++) {
    d2 += (a[i] - r->v[i]) * (a[i] - r->v[i]);
    r2 += r->v[i] * r->v[i];
  }
  return sqrt(d2 / (r2 > 0 ? r2 : 1));
}

typedef struct tol {
  double loss, logits, grad, grad_norm, losses;
} tol;

/* The logits as F32 values [N,C] (converted from a 16-bit result). */
static float *logits_f32(const amp_tensor *y) {
  float *v = malloc(sizeof(float) * (size_t)y->numel);
  amp_convert(v, AMP_F32, y->data, y->dtype, (size_t)y->numel);
  return v;
}

/* Step 0's logits, loss, gradients (and BatchNorm buffers) against the
 * reference. */
static void check_first(const char *prefix, amp_dtype dt, amp_module *m, const amp_tensor *logits,
                        double loss, const tol *t) {
  const char *dn = amp_dtype_name(dt);
  const rec *rl = find(prefix, ".loss", NULL), *rlog = find(prefix, ".logits", NULL);
  double le = fabs(loss - rl->v[0]) / fabs(rl->v[0]);
  CHECK(le <= t->loss, "%s %s: loss %.8f vs %.8f: relative error %.3g > %.3g", prefix, dn, loss,
        rl->v[0], le, t->loss);
  float *lg = logits_f32(logits);
  double lge = rlog && rlog->numel == logits->numel ? tensor_err(lg, rlog) : INFINITY;
  free(lg);
  CHECK(lge <= t->logits, "%s %s: logits error %.3g > %.3g", prefix, dn, lge, t->logits);
  double worst = 0, worst_norm = 0;
  const char *wname = "";
  for (int i = 0; i < amp_module_param_count(m); i++) {
    const char *name;
    amp_tensor *p = amp_module_param(m, i, &name);
    const rec *r = find(prefix, ".grad", name);
    int ok = r && r->numel == p->numel;
    double e = ok ? tensor_err(p->grad->data, r) : INFINITY;
    double ne = ok ? norm_err(p->grad->data, r) : INFINITY;
    CHECK(e <= t->grad, "%s %s: gradient of %s: error %.3g > %.3g of its largest element", prefix,
          dn, name, e, t->grad);
    CHECK(ne <= t->grad_norm, "%s %s: gradient of %s: norm-wise error %.3g > %.3g", prefix, dn,
          name, ne, t->grad_norm);
    if (e >= worst) worst = e, wname = name;
    worst_norm = fmax(worst_norm, ne);
  }
  for (int i = 0; i < amp_module_buffer_count(m); i++) {
    const char *name;
    amp_tensor *b = amp_module_buffer(m, i, &name);
    const rec *r = find(prefix, ".buffer", name);
    double e = r && r->numel == b->numel ? tensor_err(b->data, r) : INFINITY;
    CHECK(e <= t->logits, "%s %s: buffer %s: error %.3g > %.3g", prefix, dn, name, e, t->logits);
  }
  printf("%s %-4s loss rel err %.2e (tol %.1e)  logits %.2e (tol %.1e)  worst grad %.2e (%s, "
         "tol %.1e), norm-wise %.2e (tol %.1e)\n",
         prefix, dn, le, t->loss, lge, t->logits, worst, wname, t->grad, worst_norm, t->grad_norm);
}

/* Trains `m` for the reference's 10 AdamW steps in precision dt, checking
 * step 0 in detail and every loss. */
static void run(amp_ctx *ctx, const char *prefix, amp_module *m, amp_dtype dt, const tol *t) {
  const rec *rx = find(prefix, ".x", NULL), *ry = find(prefix, ".y", NULL);
  const rec *rls = find(prefix, ".losses", NULL);
  CHECK(rx && ry && rls, "%s: batch and losses in the reference", prefix);
  if (!rx || !ry || !rls || !load_weights(m, prefix)) return;
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, rx->code == 1 ? AMP_I32 : AMP_F32,
                                 rx->ndim, rx->shape);
  amp_tensor *y = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_I32, 1, ry->shape);
  for (int64_t i = 0; i < rx->numel; i++)
    if (rx->code == 1)
      ((int32_t *)x->data)[i] = (int32_t)rx->v[i];
    else
      ((float *)x->data)[i] = (float)rx->v[i];
  for (int64_t i = 0; i < ry->numel; i++) ((int32_t *)y->data)[i] = (int32_t)ry->v[i];
  amp_optim_params op = amp_optim_defaults(AMP_OPTIM_ADAMW);
  op.work_dtype = dt;
  amp_optim *o = amp_optim_create(ctx, m, &op);
  amp_scaler_params sp = amp_scaler_defaults(dt == AMP_F16 ? AMP_SCALER_STATIC : AMP_SCALER_NONE);
  sp.init_scale = 1024;
  amp_scaler *sc = amp_scaler_create(ctx, &sp);
  CHECK(o && sc && amp_optim_sync_work(o) == AMP_OK, "optimizer: %s", amp_ctx_error(ctx));
  if (!o || !sc) return;
  double worst = 0;
  for (int s = 0; s < (int)rls->numel; s++) {
    amp_optim_zero_grad(o);
    amp_ctx_step_reset(ctx);
    amp_autocast_begin(ctx, dt);
    amp_tensor *logits =
        amp_reshape(ctx, amp_module_forward(ctx, m, x), 2, (int64_t[]){ry->numel, -1});
    amp_tensor *loss = amp_cross_entropy(ctx, logits, y);
    amp_autocast_end(ctx);
    int ok = loss && amp_backward(ctx, amp_scaler_scale(sc, loss)) == AMP_OK &&
             amp_scaler_unscale(sc, o) == AMP_OK;
    CHECK(ok, "%s %s step %d: %s", prefix, amp_dtype_name(dt), s, amp_ctx_error(ctx));
    if (!ok) return;
    double l = ((float *)loss->data)[0], e = fabs(l - rls->v[s]) / fabs(rls->v[s]);
    if (s == 0) check_first(prefix, dt, m, logits, l, t);
    worst = fmax(worst, e);
    CHECK(e <= t->losses, "%s %s: loss of step %d: %.7f vs %.7f (rel %.3g > %.3g)", prefix,
          amp_dtype_name(dt), s, l, rls->v[s], e, t->losses);
    CHECK(amp_scaler_step(sc, o) == 1, "%s %s step %d skipped", prefix, amp_dtype_name(dt), s);
    amp_scaler_update(sc);
  }
  printf("%s %-4s %d AdamW losses: worst rel err %.2e (tol %.1e), last %.6f\n", prefix,
         amp_dtype_name(dt), (int)rls->numel, worst, t->losses, rls->v[rls->numel - 1]);
}

static amp_module *build(amp_ctx *ctx, const char *prefix) {
  amp_rng r;
  amp_rng_seed(&r, 1);
  if (strcmp(prefix, "gpt") == 0) {
    const rec *c = find("gpt", ".config", NULL);
    if (!c || c->numel < 5) return NULL;
    amp_gpt_config g = {(int64_t)c->v[0], (int64_t)c->v[1], (int64_t)c->v[2], (int64_t)c->v[3],
                        (int64_t)c->v[4]};
    return amp_nn_gpt(ctx, &r, &g);
  }
  amp_cnn_config cc = {
      .in_channels = 1, .height = 16, .width = 16, .classes = 10, .nstages = 2, .nhidden = 1};
  cc.stages[0] = (amp_cnn_stage){8, 3, AMP_CNN_POOL_MAX, 2};
  cc.stages[1] = (amp_cnn_stage){16, 3, AMP_CNN_POOL_AVG, 2};
  cc.hidden[0] = 32;
  return amp_nn_cnn(ctx, &r, &cc);
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : AMPC_TEST_DATA "/models_ref.bin";
  CHECK(load_ref(path), "cannot read the reference %s", path);
  const double u16 = 0x1p-11, ubf = 0x1p-8;
  const tol t32 = {1e-5, 1e-4, 1e-4, 1e-4, 1e-4};
  const tol th = {4 * u16, 16 * u16, 32 * u16, 32 * u16, 8 * u16};
  const tol tb = {4 * ubf, 16 * ubf, 32 * ubf, 32 * ubf, 8 * ubf};
  /* The CNN's 16-bit gradients, element by element: a ReLU or max-pool
   * decision that the rounded forward flips moves one element's whole
   * contribution, and BatchNorm's backward (dy - mean(dy) - x̂·mean(dy·x̂)
   * over 8 images) cancels, so single elements of the conv weights' and BN
   * parameters' gradients err by up to ~0.06 (f16) and ~0.11 (bf16) of the
   * largest element, and norm-wise by 0.023 (f16) and 0.054 (bf16)
   * (measured; not proportional to u: discrete events). The bounds there
   * are 0.25 element-wise and 0.1 norm-wise; the loss, logits and the 10
   * losses keep their u-derived bounds. */
  const tol th_cnn = {th.loss, th.logits, 0.25, 0.1, th.losses};
  const tol tb_cnn = {tb.loss, tb.logits, 0.25, 0.1, tb.losses};
  const char *models[2] = {"gpt", "cnn"};
  amp_dtype dts[3] = {AMP_F32, AMP_F16, AMP_BF16};
  const tol *tols[2][3] = {{&t32, &th, &tb}, {&t32, &th_cnn, &tb_cnn}};
  for (int mi = 0; mi < 2 && nrecs; mi++)
    for (int d = 0; d < 3; d++) {
      amp_ctx *ctx = amp_ctx_create(NULL);
      amp_ctx_set_threads(ctx, 2);
      amp_module *m = build(ctx, models[mi]);
      CHECK(m != NULL, "%s: %s", models[mi], amp_ctx_error(ctx));
      if (m) run(ctx, models[mi], m, dts[d], tols[mi][d]);
      amp_ctx_free(ctx);
    }
  for (int i = 0; i < nrecs; i++) free(recs[i].v);
  TEST_MAIN_END();
}
