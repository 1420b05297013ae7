/* Autograd and autocast: gradients of the matrix ops, relu, mul_scalar and
 * cross-entropy against FP64 finite differences; the tape, leaves, no-grad;
 * the autocast policy (output dtypes, bit equality with hand-cast inputs,
 * the cast cache, FP32 parameter gradients); errors. */
#include "gradcheck.h"

#include <stdio.h>
#include <string.h>

/* ---- forward functions and FP64 references ---- */

static amp_tensor *f_matmul(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  (void)arg;
  return amp_matmul(ctx, in[0], in[1]);
}
static void r_matmul(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  int64_t m = in[0]->shape[0], k = in[0]->shape[1], n = in[1]->shape[1];
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t p = 0; p < k; p++) s += v[0][i * k + p] * v[1][p * n + j];
      out[i * n + j] = s;
    }
}

static amp_tensor *f_bmm(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  (void)arg;
  return amp_bmm(ctx, in[0], in[1]);
}
static void r_bmm(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  int64_t b = in[0]->shape[0], m = in[0]->shape[1], k = in[0]->shape[2], n = in[1]->shape[2];
  for (int64_t q = 0; q < b; q++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t p = 0; p < k; p++) s += v[0][(q * m + i) * k + p] * v[1][(q * k + p) * n + j];
        out[(q * m + i) * n + j] = s;
      }
}

static amp_tensor *f_linear(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  (void)arg;
  return amp_linear(ctx, in[0], in[1], in[2]);
}
static void r_linear(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  int64_t din = in[1]->shape[1], dout = in[1]->shape[0], rows = in[0]->numel / din;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t o = 0; o < dout; o++) {
      double s = in[2] ? v[2][o] : 0;
      for (int64_t p = 0; p < din; p++) s += v[0][i * din + p] * v[1][o * din + p];
      out[i * dout + o] = s;
    }
}

static amp_tensor *f_relu(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  (void)arg;
  return amp_relu(ctx, in[0]);
}
static void r_relu(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  for (int64_t i = 0; i < in[0]->numel; i++) out[i] = v[0][i] > 0 ? v[0][i] : 0;
}

static amp_tensor *f_mul_scalar(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  return amp_mul_scalar(ctx, in[0], *(const float *)arg);
}
static void r_mul_scalar(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  for (int64_t i = 0; i < in[0]->numel; i++) out[i] = *(const float *)arg * v[0][i];
}

static amp_tensor *f_xent(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  (void)arg;
  return amp_cross_entropy(ctx, in[0], in[1]);
}
static void r_xent(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  int64_t n = in[0]->shape[0], c = in[0]->shape[1];
  double total = 0;
  for (int64_t i = 0; i < n; i++) {
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < c; j++) mx = fmax(mx, v[0][i * c + j]);
    for (int64_t j = 0; j < c; j++) s += exp(v[0][i * c + j] - mx);
    total -= v[0][i * c + (int64_t)v[1][i]] - mx - log(s);
  }
  out[0] = total / (double)n;
}

static const int64_t ODD[] = {1, 7, 33};

static void test_gradients(amp_ctx *ctx) {
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 3; b++) {
      int64_t m = ODD[a], k = ODD[b], n = ODD[(a + b) % 3] + 2;
      amp_tensor *in[3] = {gc_leaf(ctx, 2, (int64_t[]){m, k}, -1, 1),
                           gc_leaf(ctx, 2, (int64_t[]){k, n}, -1, 1), NULL};
      gradcheck(ctx, "matmul", f_matmul, r_matmul, 2, in, NULL, 1e-4);
      in[1] = gc_leaf(ctx, 2, (int64_t[]){n, k}, -1, 1);
      in[2] = (a + b) % 2 ? gc_leaf(ctx, 1, (int64_t[]){n}, -1, 1) : NULL;
      gradcheck(ctx, "linear", f_linear, r_linear, 3, in, NULL, 1e-4);
      amp_ctx_step_reset(ctx);
    }
  { /* linear on a 3-D input (rows = all but the last dimension) */
    amp_tensor *in[3] = {gc_leaf(ctx, 3, (int64_t[]){2, 3, 5}, -1, 1),
                         gc_leaf(ctx, 2, (int64_t[]){4, 5}, -1, 1),
                         gc_leaf(ctx, 1, (int64_t[]){4}, -1, 1)};
    gradcheck(ctx, "linear 3-D", f_linear, r_linear, 3, in, NULL, 1e-4);
  }
  {
    amp_tensor *in[2] = {gc_leaf(ctx, 3, (int64_t[]){3, 5, 7}, -1, 1),
                         gc_leaf(ctx, 3, (int64_t[]){3, 7, 2}, -1, 1)};
    gradcheck(ctx, "bmm", f_bmm, r_bmm, 2, in, NULL, 1e-4);
  }
  {
    amp_tensor *in[1] = {gc_leaf(ctx, 2, (int64_t[]){7, 33}, -1, 1)};
    gradcheck(ctx, "relu", f_relu, r_relu, 1, in, NULL, 1e-5);
    float s = -2.5f;
    gradcheck(ctx, "mul_scalar", f_mul_scalar, r_mul_scalar, 1, in, &s, 1e-6);
  }
  for (int c = 0; c < 3; c++) {
    int64_t n = ODD[c] + 1, cls = ODD[(c + 1) % 3] + 1;
    amp_tensor *in[2] = {gc_leaf(ctx, 2, (int64_t[]){n, cls}, -3, 3),
                         gc_labels(ctx, 1, (int64_t[]){n}, (int)cls)};
    gradcheck(ctx, "cross_entropy", f_xent, r_xent, 2, in, NULL, 1e-5);
  }
  amp_ctx_step_reset(ctx);
}

/* An op wrong by 0.1% must fail the check: y = 1.001·x against y = x. */
static void r_ident(double *const *v, amp_tensor *const *in, double *out, const void *arg) {
  (void)arg;
  for (int64_t i = 0; i < in[0]->numel; i++) out[i] = v[0][i];
}
static amp_tensor *f_bad(amp_ctx *ctx, amp_tensor **in, const void *arg) {
  (void)arg;
  return amp_mul_scalar(ctx, in[0], 1.001f);
}
static void test_harness_catches_errors(amp_ctx *ctx) {
  int before = check_failed_;
  amp_tensor *in[1] = {gc_leaf(ctx, 1, (int64_t[]){9}, -1, 1)};
  double rel =
      gradcheck(ctx, "harness self-test (expected to fail)", f_bad, r_ident, 1, in, NULL, 1e-4);
  int caught = check_failed_ > before;
  check_failed_ = before; /* the failures above were the point */
  CHECK(caught && rel > 1e-4, "the harness did not notice a 0.1%% wrong op (rel %.3g)", rel);
  amp_ctx_step_reset(ctx);
}

/* Under autocast: output dtypes per category, bits equal to running the op
 * on inputs cast by hand, the cast cache, gradient dtypes. */
static void test_autocast(amp_ctx *ctx) {
  const amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int d = 0; d < 2; d++) {
    amp_dtype dt = dts[d];
    amp_tensor *w = amp_param_new(ctx, 2, (int64_t[]){5, 7});
    amp_tensor *b = amp_param_new(ctx, 1, (int64_t[]){5});
    gc_fill(w, -1, 1);
    gc_fill(b, -1, 1);
    amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){3, 7});
    gc_fill(x, -1, 1);
    amp_tensor *lab = gc_labels(ctx, 1, (int64_t[]){3}, 5);

    CHECK(amp_autocast_begin(ctx, dt) == AMP_OK, "begin");
    CHECK(amp_autocast_dtype(ctx) == dt, "region dtype");
    amp_tensor *y = amp_linear(ctx, x, w, b);
    amp_tensor *r = amp_relu(ctx, y);
    amp_tensor *s = amp_mul_scalar(ctx, r, 3.0f);
    amp_tensor *loss = amp_cross_entropy(ctx, s, lab);
    amp_tensor *y2 = amp_linear(ctx, x, w, b); /* second use: cached casts */
    size_t cached = ctx->cast_len;
    CHECK(amp_autocast_begin(ctx, AMP_F32) == AMP_OK, "disable inside");
    amp_tensor *yf = amp_linear(ctx, x, w, b);
    CHECK(yf && yf->dtype == AMP_F32, "disabled region runs in the inputs' dtype");
    CHECK(amp_autocast_end(ctx) == AMP_OK, "end inner");
    CHECK(amp_autocast_dtype(ctx) == dt, "back in the region");
    CHECK(amp_autocast_end(ctx) == AMP_OK, "end");
    CHECK(ctx->cast_len == 0, "cache dropped at the end of the outermost region");
    CHECK(y && y->dtype == dt, "linear (lower) runs in %s", amp_dtype_name(dt));
    CHECK(r && r->dtype == dt, "relu (same) keeps %s", amp_dtype_name(dt));
    CHECK(s && s->dtype == dt, "mul_scalar (same) keeps %s", amp_dtype_name(dt));
    CHECK(loss && loss->dtype == AMP_F32, "cross_entropy (fp32) runs in f32");
    CHECK(cached == 2, "w and b cast once each (cache has %zu)", cached);
    CHECK(y2 && y && memcmp(y2->data, y->data, amp_tensor_bytes(y)) == 0, "same result twice");

    /* The same ops on inputs cast by hand, outside autocast: the same bits. */
    amp_tensor *xh = amp_tensor_cast(ctx, AMP_ARENA_STEP, x, dt);
    amp_tensor *wh = amp_tensor_cast(ctx, AMP_ARENA_STEP, w, dt);
    amp_tensor *bh = amp_tensor_cast(ctx, AMP_ARENA_STEP, b, dt);
    amp_tensor *yh = amp_linear(ctx, xh, wh, bh);
    amp_tensor *rh = amp_relu(ctx, yh);
    amp_tensor *sh = amp_mul_scalar(ctx, rh, 3.0f);
    amp_tensor *lh = amp_cross_entropy(ctx, amp_tensor_cast(ctx, AMP_ARENA_STEP, sh, AMP_F32), lab);
    CHECK(yh && memcmp(yh->data, y->data, amp_tensor_bytes(y)) == 0, "linear bits (%s)",
          amp_dtype_name(dt));
    CHECK(sh && memcmp(sh->data, s->data, amp_tensor_bytes(s)) == 0, "relu·3 bits");
    CHECK(lh && memcmp(lh->data, loss->data, 4) == 0, "cross_entropy bits");

    /* Backward: parameter gradients in F32, activation gradients in dt. */
    CHECK(amp_backward(ctx, loss) == AMP_OK, "backward: %s", amp_ctx_error(ctx));
    CHECK(w->grad->dtype == AMP_F32 && b->grad->dtype == AMP_F32, "parameter grads f32");
    CHECK(y->grad && y->grad->dtype == dt, "activation grad in %s", amp_dtype_name(dt));
    CHECK(s->grad && s->grad->dtype == dt, "activation grad in %s", amp_dtype_name(dt));
    /* dW equals the F32-accumulated product of the 16-bit dY and X. */
    float ref[35] = {0};
    amp_gemm(ctx, AMP_TRANS, AMP_NO_TRANS, 5, 7, 3, 1.0f, y->grad->data, dt, 5,
             amp_tensor_cast(ctx, AMP_ARENA_STEP, x, dt)->data, dt, 7, 0.0f, ref, AMP_F32, 7, NULL);
    CHECK(memcmp(ref, w->grad->data, sizeof ref) == 0, "dW = dYᵀX accumulated in f32");
    float wsum = 0;
    for (int i = 0; i < 35; i++) wsum += fabsf(((float *)w->grad->data)[i]);
    CHECK(wsum > 0, "dW is not zero");
    /* A second backward accumulates: dW doubles exactly. */
    float before[35];
    memcpy(before, w->grad->data, sizeof before);
    CHECK(amp_backward(ctx, loss) == AMP_OK, "second backward");
    int doubled = 1;
    for (int i = 0; i < 35; i++) doubled &= ((float *)w->grad->data)[i] == 2 * before[i];
    CHECK(doubled, "gradients accumulate across backward calls");
    amp_tensor_zero_grad(w);
    CHECK(((float *)w->grad->data)[0] == 0, "zero_grad");
    amp_ctx_step_reset(ctx);
  }
  /* Outside autocast: mixed F16 + F32 promote to F32; the working copy is
     used by autocast instead of a cast. */
  amp_tensor *w = amp_param_new(ctx, 2, (int64_t[]){4, 6});
  gc_fill(w, -1, 1);
  amp__set_work(w, amp_tensor_cast(ctx, AMP_ARENA_PERSISTENT, w, AMP_F16));
  amp__set_master(amp__work(w), w);
  amp__work(w)->requires_grad = 1;
  amp_tensor *x16 = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F16, 2, (int64_t[]){2, 6});
  memset(x16->data, 0, amp_tensor_bytes(x16));
  amp_tensor *y = amp_linear(ctx, x16, w, NULL);
  CHECK(y && y->dtype == AMP_F32, "f16 input with f32 weight promotes to f32 outside autocast");
  amp_autocast_begin(ctx, AMP_F16);
  y = amp_linear(ctx, x16, w, NULL);
  CHECK(ctx->cast_len == 0, "the working copy is used, nothing is cast");
  amp_autocast_end(ctx);
  CHECK(y && amp__node_of(y) && amp__node_of(y)->in[1] == amp__work(w),
        "linear consumed the working copy");
  amp_ctx_step_reset(ctx);
}

static void test_tape(amp_ctx *ctx) {
  amp_tensor *w = amp_param_new(ctx, 2, (int64_t[]){3, 3});
  amp_tensor *x = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){2, 3});
  amp_tensor *y = amp_relu(ctx, x);
  CHECK(y && !y->requires_grad && amp_tape_length(ctx) == 0, "nothing requires grad: no tape");
  amp_no_grad_begin(ctx);
  CHECK(!amp_grad_enabled(ctx), "no-grad region");
  y = amp_linear(ctx, x, w, NULL);
  CHECK(y && !y->requires_grad && amp_tape_length(ctx) == 0, "no-grad records nothing");
  amp_no_grad_end(ctx);
  y = amp_linear(ctx, x, w, NULL);
  CHECK(y && y->requires_grad && amp_tape_length(ctx) == 1, "recorded");
  amp_ctx_step_reset(ctx);
  CHECK(amp_tape_length(ctx) == 0, "step reset clears the tape");
  amp_no_grad_end(ctx);
  CHECK(amp_ctx_status(ctx) == AMP_ERR_STATE, "unbalanced no_grad_end is an error");
  amp_ctx_clear_error(ctx);
}

/* add's backward hands its output gradient to its first input without a
 * copy (amp__grad_pass): the sums must stay right when one tensor reaches
 * an add twice (h + h), when the handed-on buffer is added to later
 * (h used by three adds), and through a chain of adds. With h = 3x:
 * y = ((h + h) + h) + (h + 0·h) gives dy/dx = 3·(1 + 1 + 1 + 1) = 12. */
static void test_add_gradient_pass(amp_ctx *ctx) {
  amp_tensor *x = amp_param_new(ctx, 1, (int64_t[]){5});
  for (int i = 0; i < 5; i++) ((float *)x->data)[i] = (float)i - 2.0f;
  amp_tensor *h = amp_mul_scalar(ctx, x, 3.0f);
  amp_tensor *a = amp_add(ctx, amp_add(ctx, h, h), h);
  amp_tensor *b = amp_add(ctx, h, amp_mul_scalar(ctx, h, 0.0f));
  amp_tensor *y = amp_sum(ctx, amp_add(ctx, a, b));
  CHECK(y && amp_backward(ctx, y) == AMP_OK, "backward: %s", amp_ctx_error(ctx));
  int good = x->grad != NULL;
  for (int i = 0; good && i < 5; i++) good = ((float *)x->grad->data)[i] == 12.0f;
  CHECK(good, "d/dx of 3x+3x+3x+(3x+0) is 12 everywhere");
  amp_ctx_step_reset(ctx);
}

static void test_errors(amp_ctx *ctx) {
  amp_tensor *a = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){2, 3});
  amp_tensor *b = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){4, 5});
  amp_tensor *y = amp_matmul(ctx, a, b);
  CHECK(y == NULL && amp_ctx_status(ctx) == AMP_ERR_SHAPE, "shape mismatch");
  CHECK(strstr(amp_ctx_error(ctx), "matmul") && strstr(amp_ctx_error(ctx), "[2,3]") &&
            strstr(amp_ctx_error(ctx), "[4,5]"),
        "message names the op and shapes: %s", amp_ctx_error(ctx));
  CHECK(amp_relu(ctx, y) == NULL, "NULL propagates");
  CHECK(amp_ctx_status(ctx) == AMP_ERR_SHAPE, "the first error stays");
  amp_tensor *w = amp_param_new(ctx, 2, (int64_t[]){3, 3});
  amp_tensor *lab = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_I32, 1, (int64_t[]){2});
  amp_tensor *l = amp_cross_entropy(ctx, amp_linear(ctx, a, w, NULL), lab);
  CHECK(l != NULL, "a valid loss after the error");
  CHECK(amp_backward(ctx, l) == AMP_ERR_SHAPE, "backward returns the first error");
  amp_ctx_clear_error(ctx);
  ((int32_t *)lab->data)[1] = 3;
  CHECK(amp_cross_entropy(ctx, a, lab) == NULL && strstr(amp_ctx_error(ctx), "label 3"),
        "label out of range: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_backward(ctx, a) == AMP_ERR_INVALID_ARG, "non-scalar loss");
  amp_ctx_clear_error(ctx);
  amp_tensor *s1 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){1});
  CHECK(amp_backward(ctx, s1) == AMP_ERR_STATE, "loss without gradient");
  amp_ctx_clear_error(ctx);
  CHECK(amp_autocast_begin(ctx, AMP_I32) == AMP_ERR_INVALID_ARG, "autocast dtype");
  amp_ctx_clear_error(ctx);
  CHECK(amp_autocast_end(ctx) == AMP_ERR_STATE, "unbalanced autocast_end");
  amp_ctx_clear_error(ctx);
  CHECK(amp_op_category_of("linear") == AMP_CAT_LOWER &&
            amp_op_category_of("softmax") == AMP_CAT_FP32 &&
            amp_op_category_of("add") == AMP_CAT_PROMOTE &&
            amp_op_category_of("relu") == AMP_CAT_SAME && amp_op_category_of("nope") == -1,
        "the op table");
  amp_ctx_step_reset(ctx);
}

/* ReLU's backward from the saved bit mask (op_activation.c, eight elements
 * per mask byte with a scalar tail) equals amp_vec_relu_backward on x, and
 * its forward amp_vec_relu, bit for bit: random bit patterns with zeros of
 * both signs, infinities, NaNs, subnormals and the largest finite values, at
 * lengths around multiples of 8. */
static void test_relu_bits(amp_ctx *ctx) {
  static const amp_dtype dts[3] = {AMP_F32, AMP_F16, AMP_BF16};
  static const uint32_t sp32[] = {0,           0x80000000u, 0x7f800000u, 0xff800000u,
                                  0x7fc00000u, 0x7f800001u, 0xffc00000u, 1,
                                  0x80000001u, 0x7f7fffffu, 0x3f800000u};
  static const uint16_t sp16[] = {0,      0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0x7f80, 0xff80,
                                  0x7fc0, 0x7f81, 1,      0x8001, 0x7bff, 0x7f7f, 0x3c00};
  uint64_t r = 0x9E3779B97F4A7C15ull;
  for (int d = 0; d < 3; d++)
    for (int64_t n = 1; n <= 1043; n = n < 20 ? n + 1 : n * 3 + 1) {
      amp_dtype dt = dts[d];
      size_t es = amp_dtype_size(dt);
      amp_tensor *x0 = amp_tensor_new(ctx, AMP_ARENA_STEP, dt, 1, &n);
      amp_tensor *gt = amp_tensor_new(ctx, AMP_ARENA_STEP, dt, 1, &n);
      for (int64_t i = 0; i < n; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t bits = (uint32_t)(r >> 32), gb = (uint32_t)r & 0x3fffffffu;
        if (i % 3 == 0) bits = es == 4 ? sp32[(r >> 8) % 11] : sp16[(r >> 8) % 15];
        if (i % 5 == 0) gb |= 0x80000000u; /* negative, and -0 below */
        if (i % 7 == 0) gb &= 0x80000000u;
        if (es == 4) {
          ((uint32_t *)x0->data)[i] = bits;
          ((uint32_t *)gt->data)[i] = gb;
        } else {
          ((uint16_t *)x0->data)[i] = (uint16_t)bits;
          ((uint16_t *)gt->data)[i] = (uint16_t)((gb >> 16 & 0x8000) | (gb & 0x3bff));
        }
      }
      amp_tensor_set_requires_grad(ctx, x0, 1);
      amp_tensor *x = amp_mul_scalar(ctx, x0, 1.0f); /* not a leaf: its gradient is dx */
      amp_tensor *y = amp_relu(ctx, x);
      amp_tensor *loss = amp_sum(ctx, amp_mul(ctx, y, gt));
      CHECK(loss && amp_backward(ctx, loss) == AMP_OK, "relu backward (%s, n %lld)",
            amp_dtype_name(dt), (long long)n);
      if (!loss || !x->grad || !y->grad) {
        amp_ctx_step_reset(ctx);
        continue;
      }
      void *ry = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)n * es);
      void *rdx = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)n * es);
      amp_vec_relu(ctx, dt, (size_t)n, x->data, ry);
      amp_vec_relu_backward(ctx, dt, (size_t)n, x->data, y->grad->data, rdx);
      CHECK(memcmp(ry, y->data, (size_t)n * es) == 0, "relu forward bits (%s, n %lld)",
            amp_dtype_name(dt), (long long)n);
      CHECK(x->grad->dtype == dt && memcmp(rdx, x->grad->data, (size_t)n * es) == 0,
            "relu backward bits (%s, n %lld)", amp_dtype_name(dt), (long long)n);
      amp_ctx_step_reset(ctx);
    }
}

int main(void) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  test_gradients(ctx);
  test_harness_catches_errors(ctx);
  test_autocast(ctx);
  test_tape(ctx);
  test_relu_bits(ctx);
  test_add_gradient_pass(ctx);
  test_errors(ctx);
  amp_ctx_free(ctx);
  TEST_MAIN_END();
}
