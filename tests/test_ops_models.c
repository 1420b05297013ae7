/* Focused tests of the ops the models need (issue 13), beyond their rows in
 * test_ops_table: the modes (the attention's causal mask, batch norm's
 * running statistics in train and eval), values computed by hand, the same
 * bits with 1 and 2 threads at sizes where the kernels run in parallel, and
 * bad arguments giving errors. */
#include "check.h"

#include <ampc.h>
#include <math.h>
#include <string.h>

static amp_tensor *tensor(amp_ctx *ctx, int ndim, const int64_t *shape, const float *v) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, ndim, shape);
  if (t && v) memcpy(t->data, v, (size_t)t->numel * sizeof(float));
  return t;
}

static float at(const amp_tensor *t, int64_t i) { return ((const float *)t->data)[i]; }

/* q = k = 0 gives equal scores, so output row i is the mean of the values
 * the row sees: v[0..i] when causal, all of v otherwise. */
static void test_attention_mask(amp_ctx *ctx) {
  int64_t shape[4] = {1, 1, 3, 2};
  float zero[6] = {0}, v[6] = {1, 10, 2, 20, 6, 60};
  amp_tensor *q = tensor(ctx, 4, shape, zero), *k = tensor(ctx, 4, shape, zero);
  amp_tensor *vv = tensor(ctx, 4, shape, v);
  amp_tensor *yc = amp_attention(ctx, q, k, vv, 1), *yn = amp_attention(ctx, q, k, vv, 0);
  CHECK(yc && yn, "attention: %s", amp_ctx_error(ctx));
  if (!yc || !yn) return;
  const float want_c[6] = {1, 10, 1.5f, 15, 3, 30}, want_n[6] = {3, 30, 3, 30, 3, 30};
  for (int i = 0; i < 6; i++) {
    CHECK(fabsf(at(yc, i) - want_c[i]) <= 1e-6f * fabsf(want_c[i]), "causal [%d] %g want %g", i,
          (double)at(yc, i), (double)want_c[i]);
    CHECK(fabsf(at(yn, i) - want_n[i]) <= 1e-6f * fabsf(want_n[i]), "full [%d] %g want %g", i,
          (double)at(yn, i), (double)want_n[i]);
  }
  /* Causality: changing the last key and value changes no earlier row. */
  float k2[6] = {0, 0, 0, 0, 5, -3};
  v[4] = -100;
  amp_tensor *y2 = amp_attention(ctx, q, tensor(ctx, 4, shape, k2), tensor(ctx, 4, shape, v), 1);
  CHECK(y2 && memcmp(y2->data, yc->data, 4 * sizeof(float)) == 0,
        "causal rows 0 and 1 depend on key/value 2");
  /* Under autocast the result has the autocast dtype (category lower). */
  amp_autocast_begin(ctx, AMP_BF16);
  amp_tensor *yb = amp_attention(ctx, q, k, vv, 1);
  amp_autocast_end(ctx);
  CHECK(yb && yb->dtype == AMP_BF16, "attention under bf16 autocast");
  amp_ctx_step_reset(ctx);
}

/* One channel holding 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased
 * 5/3. From running (0, 1) with momentum 0.1: (0.25, 0.9 + 0.1·5/3). */
static void test_batch_norm_modes(amp_ctx *ctx) {
  int64_t xs[4] = {2, 1, 1, 2}, cs[1] = {1};
  float xv[4] = {1, 2, 3, 4}, one = 1, zero = 0, wv = 2, bv = 0.5f;
  amp_tensor *x = tensor(ctx, 4, xs, xv), *w = tensor(ctx, 1, cs, &wv),
             *b = tensor(ctx, 1, cs, &bv);
  amp_tensor *rm = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 1, cs);
  amp_tensor *rv = amp_tensor_new(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 1, cs);
  memcpy(rm->data, &zero, 4);
  memcpy(rv->data, &one, 4);
  amp_tensor_set_requires_grad(ctx, x, 1);
  amp_tensor *y = amp_batch_norm2d(ctx, x, w, b, rm, rv, 1, 0.1f, 1e-5f);
  CHECK(y, "batch_norm2d train: %s", amp_ctx_error(ctx));
  if (!y) return;
  for (int i = 0; i < 4; i++) {
    double want = (xv[i] - 2.5) / sqrt(1.25 + 1e-5) * 2 + 0.5;
    CHECK(fabs(at(y, i) - want) <= 1e-6, "train y[%d] %g want %g", i, (double)at(y, i), want);
  }
  CHECK(fabsf(at(rm, 0) - 0.25f) <= 1e-7f, "running mean %g want 0.25", (double)at(rm, 0));
  CHECK(fabs(at(rv, 0) - (0.9 + 0.1 * 5.0 / 3.0)) <= 1e-6, "running var %g want %g",
        (double)at(rv, 0), 0.9 + 0.1 * 5.0 / 3.0);
  /* Train: the sum of a normalised channel does not depend on x. */
  CHECK(amp_backward(ctx, amp_sum(ctx, y)) == AMP_OK, "backward: %s", amp_ctx_error(ctx));
  for (int i = 0; x->grad && i < 4; i++)
    CHECK(fabsf(at(x->grad, i)) <= 1e-5f, "train dx[%d] = %g, want 0", i, (double)at(x->grad, i));
  amp_ctx_step_reset(ctx);

  /* Eval: the running statistics normalise and stay as they are. */
  x = tensor(ctx, 4, xs, xv);
  amp_tensor_set_requires_grad(ctx, x, 1);
  float m0 = at(rm, 0), v0 = at(rv, 0);
  y = amp_batch_norm2d(ctx, x, NULL, NULL, rm, rv, 0, 0.1f, 1e-5f);
  CHECK(y && at(rm, 0) == m0 && at(rv, 0) == v0, "eval changed the running statistics");
  if (!y) return;
  for (int i = 0; i < 4; i++) {
    double want = (xv[i] - (double)m0) / sqrt((double)v0 + 1e-5);
    CHECK(fabs(at(y, i) - want) <= 1e-6, "eval y[%d] %g want %g", i, (double)at(y, i), want);
  }
  CHECK(amp_backward(ctx, amp_sum(ctx, y)) == AMP_OK, "backward: %s", amp_ctx_error(ctx));
  for (int i = 0; x->grad && i < 4; i++) /* eval: dx = 1/sqrt(v + eps) */
    CHECK(fabs(at(x->grad, i) - 1 / sqrt((double)v0 + 1e-5)) <= 1e-6, "eval dx[%d] %g", i,
          (double)at(x->grad, i));
  /* Eval without running statistics is an error, not a crash. */
  CHECK(!amp_batch_norm2d(ctx, x, NULL, NULL, NULL, NULL, 0, 0.1f, 1e-5f) &&
            amp_ctx_status(ctx) != AMP_OK,
        "eval without running statistics accepted");
  amp_ctx_clear_error(ctx);
  amp_ctx_step_reset(ctx);
}

static void test_pool_and_layout_values(amp_ctx *ctx) {
  int64_t xs[4] = {1, 2, 2, 2};
  float xv[8] = {1, 2, 3, 4, 10, 20, 30, 40};
  amp_tensor *x = tensor(ctx, 4, xs, xv);
  amp_tensor *g = amp_global_avg_pool2d(ctx, x);
  CHECK(g && g->ndim == 4 && g->shape[1] == 2 && g->shape[2] == 1 && g->shape[3] == 1 &&
            at(g, 0) == 2.5f && at(g, 1) == 25.0f,
        "global_avg_pool2d");
  amp_tensor *parts[2];
  CHECK(amp_split(ctx, x, 1, 2, (int64_t[]){1, 1}, parts) == AMP_OK && parts[1]->shape[1] == 1 &&
            at(parts[1], 0) == 10.0f,
        "split");
  amp_tensor *cat = amp_concat(ctx, 2, (amp_tensor *[]){parts[1], parts[0]}, 1);
  CHECK(cat && at(cat, 0) == 10.0f && at(cat, 4) == 1.0f, "concat");
  amp_tensor *t = amp_transpose(ctx, x, 1, 3); /* [1,2,2,2]: (c,h,w) → (w,h,c) */
  CHECK(t && at(t, 1) == 10.0f && at(t, 4) == 2.0f, "transpose");
  /* Bad arguments: errors, no crash. */
  CHECK(!amp_transpose(ctx, x, 0, 4), "transpose axis 4 accepted");
  amp_ctx_clear_error(ctx);
  CHECK(!amp_slice(ctx, x, 1, 1, 2), "slice past the end accepted");
  amp_ctx_clear_error(ctx);
  CHECK(amp_split(ctx, x, 1, 2, (int64_t[]){1, 2}, parts) != AMP_OK, "bad split accepted");
  amp_ctx_clear_error(ctx);
  amp_tensor *c0 = amp_concat(ctx, 2, (amp_tensor *[]){x, t}, 0); /* [1,2,2,2] twice */
  CHECK(c0 && c0->shape[0] == 2 && at(c0, 8) == 1.0f, "concat on axis 0: %s", amp_ctx_error(ctx));
  amp_tensor *bad = tensor(ctx, 4, (int64_t[]){1, 3, 2, 2}, NULL);
  CHECK(!amp_concat(ctx, 2, (amp_tensor *[]){x, bad}, 0), "concat of mismatched shapes accepted");
  amp_ctx_clear_error(ctx);
  CHECK(!amp_attention(ctx, x, bad, x, 1), "attention of mismatched shapes accepted");
  amp_ctx_clear_error(ctx);
  amp_ctx_step_reset(ctx);
}

/* Forward and backward of every new op at sizes above the kernels' parallel
 * threshold, in F32 and BF16, give the same bits with 1 and 2 threads. */
static int run_all(amp_ctx *ctx, amp_dtype dt, amp_tensor **out, int nout) {
  amp_rng rng;
  amp_rng_seed(&rng, 7);
  int64_t bs[4] = {4, 8, 48, 48}, as[4] = {1, 2, 64, 32};
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 4, bs);
  amp_tensor *q = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 4, as);
  if (!x || !q) return 0;
  for (int64_t i = 0; i < x->numel; i++)
    ((float *)x->data)[i] = (float)(amp_rng_next(&rng) >> 40) / 16777216.0f * 4 - 2;
  memcpy(q->data, x->data, (size_t)q->numel * 4);
  amp_tensor_set_requires_grad(ctx, x, 1);
  amp_tensor_set_requires_grad(ctx, q, 1);
  amp_autocast_begin(ctx, dt);
  amp_tensor *y[6] = {
      amp_batch_norm2d(ctx, x, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f),
      amp_avg_pool2d(ctx, x, 3, 3, 2, 2),
      amp_tanh(ctx, x),
      amp_gelu_tanh(ctx, x),
      amp_attention(ctx, q, amp_transpose(ctx, amp_transpose(ctx, q, 1, 2), 2, 1),
                    amp_transpose(ctx, q, 2, 2), 1),
      amp_global_avg_pool2d(ctx, x),
  };
  amp_autocast_end(ctx);
  amp_tensor *loss = NULL;
  for (int i = 0; i < 6; i++) {
    if (!y[i]) return 0;
    amp_tensor *m = amp_mean(ctx, amp_mul(ctx, y[i], y[i]));
    loss = loss ? amp_add(ctx, loss, m) : m;
  }
  if (amp_backward(ctx, loss) != AMP_OK) return 0;
  for (int i = 0; i < 6 && i < nout; i++) out[i] = y[i];
  out[6] = x->grad;
  out[7] = q->grad;
  return 1;
}

static void test_threads_same_bits(void) {
  static const amp_dtype dts[2] = {AMP_F32, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_ctx *c1 = amp_ctx_create(&(amp_ctx_params){.threads = 1});
    amp_ctx *c2 = amp_ctx_create(&(amp_ctx_params){.threads = 2});
    amp_tensor *o1[8] = {0}, *o2[8] = {0};
    int ok = run_all(c1, dts[d], o1, 6) && run_all(c2, dts[d], o2, 6);
    CHECK(ok, "run in %s: %s %s", amp_dtype_name(dts[d]), amp_ctx_error(c1), amp_ctx_error(c2));
    for (int i = 0; ok && i < 8; i++)
      CHECK(o1[i] && o2[i] && o1[i]->numel == o2[i]->numel &&
                memcmp(o1[i]->data, o2[i]->data, amp_tensor_bytes(o1[i])) == 0,
            "%s: result %d differs between 1 and 2 threads", amp_dtype_name(dts[d]), i);
    amp_ctx_free(c1);
    amp_ctx_free(c2);
  }
}

/* The attention's memory: the forward keeps P, B·H·T² elements of the
 * compute dtype (4 bytes in F32, 2 in F16: half), besides its result, plus
 * one T×T F32 score matrix of scratch in 16 bits; backward writes the
 * gradients of q, k, v in their dtype and adds T² scratch. */
static void test_attention_memory(void) {
  const amp_dtype dts[2] = {AMP_F32, AMP_F16};
  for (int di = 0; di < 2; di++) {
    amp_dtype dt = dts[di];
    size_t es = amp_dtype_size(dt);
    amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 1});
    int64_t shape[4] = {2, 3, 128, 16}, b = 2, h = 3, t = 128, d = 16;
    amp_tensor *x[3];
    for (int i = 0; i < 3; i++) {
      x[i] = amp_tensor_zeros(ctx, AMP_ARENA_STEP, dt, 4, shape);
      amp_tensor_set_requires_grad(ctx, x[i], 1);
    }
    size_t before = amp_arena_used_bytes(ctx, AMP_ARENA_STEP);
    amp_tensor *y = amp_attention(ctx, x[0], x[1], x[2], 1);
    size_t fwd = amp_arena_used_bytes(ctx, AMP_ARENA_STEP) - before;
    size_t p = es * (size_t)(b * h * t * t), out = es * (size_t)(b * h * t * d);
    size_t scratch = dt == AMP_F32 ? 0 : (size_t)(4 * t * t);
    CHECK(y && y->dtype == dt && fwd >= p + out + scratch && fwd <= p + out + scratch + 8192,
          "attention forward (%s) kept %zu bytes; P is %zu, the result %zu, scratch %zu",
          amp_dtype_name(dt), fwd, p, out, scratch);
    amp_arena_reset_peak(ctx, AMP_ARENA_STEP);
    size_t at = amp_arena_used_bytes(ctx, AMP_ARENA_STEP);
    CHECK(y && amp_backward(ctx, amp_sum(ctx, y)) == AMP_OK, "backward: %s", amp_ctx_error(ctx));
    size_t bwd = amp_arena_peak_bytes(ctx, AMP_ARENA_STEP) - at;
    printf("attention B=%lld H=%lld T=%lld D=%lld %s: forward keeps %zu bytes (P: %zu), backward "
           "peak +%zu bytes\n",
           (long long)b, (long long)h, (long long)t, (long long)d, amp_dtype_name(dt), fwd, p, bwd);
    amp_ctx_free(ctx);
  }
}

/* ---- files for the PyTorch comparison (tests/torch_ops.py) ---- */

static void dump(const char *dir, const char *name, const amp_tensor *t) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.f32", dir, name);
  FILE *f = fopen(path, "wb");
  CHECK(f && t && t->dtype == AMP_F32 &&
            fwrite(t->data, 4, (size_t)t->numel, f) == (size_t)t->numel,
        "write %s", path);
  if (f) fclose(f);
}

/* An F32 leaf in [-2, 2) from rng, written as dir/name.f32. */
static amp_tensor *rand_leaf(amp_ctx *ctx, amp_rng *rng, int ndim, const int64_t *shape,
                             const char *dir, const char *name) {
  amp_tensor *t = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, ndim, shape);
  for (int64_t i = 0; i < t->numel; i++)
    ((float *)t->data)[i] = (float)(amp_rng_next(rng) >> 40) / 16777216.0f * 4 - 2;
  amp_tensor_set_requires_grad(ctx, t, 1);
  dump(dir, name, t);
  return t;
}

/* Runs op results y[0..n) through L = Σ_i Σ y_i·w_i (w_i written as
 * <name>.w) and backward, and writes each y_i as <name>.y. */
static void loss_backward(amp_ctx *ctx, amp_rng *rng, const char *dir, int n, amp_tensor **y,
                          const char *const *names) {
  amp_tensor *loss = NULL;
  for (int i = 0; i < n; i++) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s.w", names[i]);
    amp_tensor *w = rand_leaf(ctx, rng, y[i]->ndim, y[i]->shape, dir, nm);
    amp_tensor *l = amp_sum(ctx, amp_mul(ctx, y[i], w));
    loss = loss ? amp_add(ctx, loss, l) : l;
    snprintf(nm, sizeof nm, "%s.y", names[i]);
    dump(dir, nm, y[i]);
  }
  CHECK(amp_backward(ctx, loss) == AMP_OK, "backward: %s", amp_ctx_error(ctx));
}

/* Writes inputs, results and gradients of the new ops for torch_ops.py. */
static void write_torch_cases(const char *dir) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  amp_rng rng;
  amp_rng_seed(&rng, 2024);
  int64_t as[4] = {2, 3, 5, 4}, bs[4] = {4, 3, 5, 5}, cs[1] = {3}, ps[4] = {2, 2, 7, 7};
  amp_tensor *q = rand_leaf(ctx, &rng, 4, as, dir, "att.q");
  amp_tensor *k = rand_leaf(ctx, &rng, 4, as, dir, "att.k");
  amp_tensor *v = rand_leaf(ctx, &rng, 4, as, dir, "att.v");
  amp_tensor *x = rand_leaf(ctx, &rng, 4, bs, dir, "bn.x");
  amp_tensor *bw = rand_leaf(ctx, &rng, 1, cs, dir, "bn.weight");
  amp_tensor *bb = rand_leaf(ctx, &rng, 1, cs, dir, "bn.bias");
  amp_tensor *x2 = rand_leaf(ctx, &rng, 4, bs, dir, "bn.x2");
  amp_tensor *rm = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 1, cs);
  amp_tensor *rv = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 1, cs);
  for (int i = 0; i < 3; i++) ((float *)rv->data)[i] = 1.0f;
  amp_tensor *e = rand_leaf(ctx, &rng, 4, ps, dir, "elt.x");
  amp_tensor *y[8] = {
      amp_attention(ctx, q, k, v, 1),
      amp_attention(ctx, q, k, v, 0),
      amp_batch_norm2d(ctx, x, bw, bb, rm, rv, 1, 0.1f, 1e-5f),
      amp_batch_norm2d(ctx, x2, bw, bb, rm, rv, 0, 0.1f, 1e-5f), /* eval, updated stats */
      amp_gelu_tanh(ctx, e),
      amp_tanh(ctx, e),
      amp_avg_pool2d(ctx, e, 3, 3, 2, 2),
      amp_global_avg_pool2d(ctx, e),
  };
  static const char *const names[8] = {"att.causal", "att.full", "bn.train", "bn.eval",
                                       "gelu_tanh",  "tanh",     "avg_pool", "global_pool"};
  for (int i = 0; i < 8; i++) CHECK(y[i], "%s: %s", names[i], amp_ctx_error(ctx));
  dump(dir, "bn.running_mean", rm);
  dump(dir, "bn.running_var", rv);
  loss_backward(ctx, &rng, dir, 8, y, names);
  amp_tensor *leaves[8] = {q, k, v, x, bw, bb, x2, e};
  static const char *const gnames[8] = {"att.q.grad", "att.k.grad",     "att.v.grad",
                                        "bn.x.grad",  "bn.weight.grad", "bn.bias.grad",
                                        "bn.x2.grad", "elt.x.grad"};
  for (int i = 0; i < 8; i++) dump(dir, gnames[i], leaves[i]->grad);
  amp_ctx_free(ctx);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write") == 0) {
    write_torch_cases(argv[2]);
    TEST_MAIN_END();
  }
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  test_attention_mask(ctx);
  test_batch_norm_modes(ctx);
  test_pool_and_layout_values(ctx);
  amp_ctx_free(ctx);
  test_threads_same_bits();
  test_attention_memory();
  TEST_MAIN_END();
}
