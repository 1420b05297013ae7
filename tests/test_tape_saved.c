/* Memory saved for backward (amp_tape_saved()) and relu's 1-bit mask:
 * relu's backward through the tape equals amp_vec_relu_backward on every
 * 16-bit pattern (F16, BF16: NaN, inf, ±0, subnormals) and on F32 specials
 * and random values; amp_tape_saved gives the exact byte counts of a small
 * graph (inputs kept only when the other operand needs a gradient, the
 * mask, log-softmax's output, a weight apart) and counts a buffer two
 * nodes keep once. */
#include "check.h"

#include "ampc.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rs = 2463534242u;
static uint32_t rnd(void) {
  rs ^= rs << 13, rs ^= rs >> 17, rs ^= rs << 5;
  return rs;
}

/* x: n values of dt (bit patterns), r: dy; checks x's gradient. */
static void relu_case(amp_ctx *ctx, amp_dtype dt, int64_t n, const void *xb, const void *rb) {
  size_t es = amp_dtype_size(dt);
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, dt, 1, &n);
  amp_tensor *r = amp_tensor_new(ctx, AMP_ARENA_STEP, dt, 1, &n);
  memcpy(x->data, xb, (size_t)n * es);
  memcpy(r->data, rb, (size_t)n * es);
  CHECK(amp_tensor_set_requires_grad(ctx, x, 1) == AMP_OK, "requires_grad");
  amp_tensor *loss = amp_sum(ctx, amp_mul(ctx, amp_relu(ctx, x), r));
  CHECK(loss && amp_backward(ctx, loss) == AMP_OK, "%s: backward", amp_dtype_name(dt));
  void *want = malloc((size_t)n * es);
  float *wf = malloc((size_t)n * sizeof(float));
  amp_vec_relu_backward(ctx, dt, (size_t)n, xb, rb, want);
  amp_convert(wf, AMP_F32, want, dt, (size_t)n);
  long bad = 0;
  const float *got = x->grad->data;
  for (int64_t i = 0; i < n; i++) bad += !(got[i] == wf[i] || (isnan(got[i]) && isnan(wf[i])));
  CHECK(bad == 0, "%s: relu backward from the mask differs in %ld of %lld", amp_dtype_name(dt), bad,
        (long long)n);
  free(want), free(wf);
  amp_ctx_step_reset(ctx);
}

static void test_relu(amp_ctx *ctx) {
  enum { N = 65536 };
  uint16_t *h = malloc(N * 2), *g = malloc(N * 2);
  for (int i = 0; i < N; i++) h[i] = (uint16_t)i, g[i] = (uint16_t)(0x3c00 + (rnd() & 0x3ff));
  relu_case(ctx, AMP_F16, N, h, g);
  for (int i = 0; i < N; i++) g[i] = (uint16_t)(0x3f80 + (rnd() & 0x7f));
  relu_case(ctx, AMP_BF16, N, h, g);
  float f[] = {0.0f,  -0.0f, 1e-45f, -1e-45f, INFINITY, -INFINITY, NAN,  -NAN, 1.0f,
               -1.0f, 3e38f, -3e38f, 1e-38f,  2.5f,     -0.5f,     7.0f, 0.1f};
  float gf[sizeof f / sizeof f[0]];
  int64_t n = sizeof f / sizeof f[0]; /* 17: a partial last mask byte */
  for (int64_t i = 0; i < n; i++) gf[i] = (float)(i + 1);
  relu_case(ctx, AMP_F32, n, f, gf);
  free(h), free(g);
}

static void test_counts(amp_ctx *ctx) {
  int64_t xs[2] = {4, 6}, ws[2] = {5, 6}, bs[1] = {5};
  amp_tensor *x = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, xs);
  amp_tensor *w = amp_tensor_zeros(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 2, ws);
  amp_tensor *b = amp_tensor_zeros(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 1, bs);
  amp_tensor_set_requires_grad(ctx, w, 1);
  amp_tensor_set_requires_grad(ctx, b, 1);
  amp_tape_saved_stats st;
  CHECK(amp_tape_saved(ctx, &st) == AMP_OK && st.total_bytes == 0, "empty tape: 0");
  amp_tensor *h = amp_linear(ctx, x, w, b); /* keeps x (96 bytes), not w: x needs no gradient */
  amp_tensor *r = amp_relu(ctx, h);         /* 20 bits: 3 bytes */
  amp_tensor *l = amp_log_softmax(ctx, r);  /* its output, 80 bytes */
  amp_tensor *m = amp_mul(ctx, l, l);       /* keeps l twice: counted once */
  amp_tensor *loss = amp_sum(ctx, m);       /* nothing */
  CHECK(loss != NULL, "graph");
  CHECK(amp_tape_saved(ctx, &st) == AMP_OK && st.activation_bytes == 96 + 3 + 80 &&
            st.param_bytes == 0 && st.total_bytes == 179,
        "saved %zu (activations %zu, params %zu), expected 179", st.total_bytes,
        st.activation_bytes, st.param_bytes);
  CHECK(amp_backward(ctx, loss) == AMP_OK && amp_tape_saved(ctx, &st) == AMP_OK &&
            st.total_bytes == 179,
        "the same after backward");
  amp_ctx_step_reset(ctx);
  /* a second linear whose input needs a gradient keeps its weight (apart) */
  int64_t w2s[2] = {3, 5};
  amp_tensor *w2 = amp_tensor_zeros(ctx, AMP_ARENA_PERSISTENT, AMP_F32, 2, w2s);
  amp_tensor_set_requires_grad(ctx, w2, 1);
  amp_tensor *x2 = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, xs);
  amp_tensor *h2 = amp_linear(ctx, amp_linear(ctx, x2, w, b), w2, NULL);
  CHECK(h2 && amp_tape_saved(ctx, &st) == AMP_OK, "second graph");
  CHECK(st.param_bytes == 60 && st.activation_bytes == 96 + 80,
        "params %zu (want w2, 60), activations %zu (want 176)", st.param_bytes,
        st.activation_bytes);
  CHECK(amp_tape_saved(ctx, NULL) == AMP_ERR_INVALID_ARG, "NULL stats refused");
  amp_ctx_step_reset(ctx);
}

int main(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  test_relu(ctx);
  test_counts(ctx);
  amp_ctx_free(ctx);
  TEST_MAIN_END();
}
