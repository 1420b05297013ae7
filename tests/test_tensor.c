/* Tensors, arenas and the context's sticky error. */
#include "check.h"

#include "ampc.h"

#include <stdint.h>
#include <string.h>

static void test_arena(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  CHECK(ctx != NULL, "ctx");
  CHECK(amp_arena_used_bytes(ctx, AMP_ARENA_STEP) == 0, "fresh arena empty");
  /* Allocations are 64-byte aligned and do not overlap. */
  unsigned char *p[100];
  for (int i = 0; i < 100; i++) {
    size_t sz = (size_t)(i * 37 + 1);
    p[i] = amp_arena_alloc(ctx, AMP_ARENA_STEP, sz);
    CHECK(p[i] != NULL && ((uintptr_t)p[i] % 64) == 0, "alloc %d aligned", i);
    memset(p[i], i, sz);
  }
  for (int i = 0; i < 100; i++) CHECK(p[i][0] == (unsigned char)i, "no overlap at %d", i);
  size_t used = amp_arena_used_bytes(ctx, AMP_ARENA_STEP);
  CHECK(used >= 100 * 37 / 2, "used counted: %zu", used);
  /* Large allocations beyond the first chunk. */
  void *big = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)8 << 20);
  CHECK(big != NULL, "big alloc");
  memset(big, 1, (size_t)8 << 20);
  size_t peak = amp_arena_peak_bytes(ctx, AMP_ARENA_STEP);
  CHECK(peak >= ((size_t)8 << 20), "peak %zu", peak);
  amp_ctx_step_reset(ctx);
  CHECK(amp_arena_used_bytes(ctx, AMP_ARENA_STEP) == 0, "reset empties");
  CHECK(amp_arena_peak_bytes(ctx, AMP_ARENA_STEP) == peak, "peak kept after reset");
  CHECK(amp_arena_used_bytes(ctx, AMP_ARENA_PERSISTENT) == 0, "persistent untouched");
  /* After a reset the same pattern of allocations reuses memory: same peak. */
  for (int i = 0; i < 100; i++) amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)(i * 37 + 1));
  big = amp_arena_alloc(ctx, AMP_ARENA_STEP, (size_t)8 << 20);
  CHECK(big != NULL, "big alloc again");
  CHECK(amp_arena_peak_bytes(ctx, AMP_ARENA_STEP) == peak, "same step, same peak");
  amp_ctx_step_reset(ctx);
  amp_arena_reset_peak(ctx, AMP_ARENA_STEP);
  amp_arena_alloc(ctx, AMP_ARENA_STEP, 100);
  CHECK(amp_arena_peak_bytes(ctx, AMP_ARENA_STEP) < peak, "peak restarted");
  /* Many steps do not grow memory. */
  for (int s = 0; s < 1000; s++) {
    amp_ctx_step_reset(ctx);
    CHECK(amp_arena_alloc(ctx, AMP_ARENA_STEP, 3 << 20) != NULL, "step alloc");
  }
  CHECK(amp_arena_used_bytes(ctx, AMP_ARENA_STEP) <= ((size_t)16 << 20), "steady state");
  amp_ctx_free(ctx);
}

static void test_tensor(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  int64_t shape[3] = {2, 3, 5};
  amp_tensor *t = amp_tensor_zeros(ctx, AMP_ARENA_PERSISTENT, AMP_F16, 3, shape);
  CHECK(t != NULL, "tensor");
  CHECK(t->numel == 30 && t->ndim == 3 && t->shape[3] == 1, "shape");
  CHECK(amp_tensor_bytes(t) == 60, "bytes");
  CHECK(((const uint16_t *)t->data)[29] == 0, "zeroed");
  CHECK(amp_arena_used_bytes(ctx, AMP_ARENA_PERSISTENT) >= 60, "persistent used");
  CHECK(amp_ctx_status(ctx) == AMP_OK, "no error");

  /* Bad shapes are errors with a message, never crashes. */
  int64_t bad[2] = {4, 0};
  CHECK(amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, bad) == NULL, "zero size");
  CHECK(amp_ctx_status(ctx) == AMP_ERR_INVALID_ARG, "status");
  CHECK(strstr(amp_ctx_error(ctx), "dimension 1") != NULL, "message: %s", amp_ctx_error(ctx));
  /* Sticky: the first error stays. */
  CHECK(amp_tensor_new(ctx, AMP_ARENA_STEP, (amp_dtype)99, 1, shape) == NULL, "bad dtype");
  CHECK(strstr(amp_ctx_error(ctx), "dimension 1") != NULL, "first error kept");
  amp_ctx_clear_error(ctx);
  CHECK(amp_ctx_status(ctx) == AMP_OK && amp_ctx_error(ctx)[0] == 0, "cleared");
  CHECK(amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 5, shape) == NULL, "ndim 5");
  CHECK(amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 0, shape) == NULL, "ndim 0");
  CHECK(amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 1, NULL) == NULL, "NULL shape");
  int64_t neg[1] = {-3};
  CHECK(amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 1, neg) == NULL, "negative");
  int64_t huge[4] = {INT64_MAX / 2, 4, 4, 4};
  CHECK(amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 4, huge) == NULL, "overflowing shape");
  CHECK(amp_tensor_new(NULL, AMP_ARENA_STEP, AMP_F32, 1, shape) == NULL, "NULL ctx");

  /* Cast round trip F32 → F16 → F32 of representable values is exact. */
  amp_ctx_clear_error(ctx);
  int64_t n[1] = {5};
  amp_tensor *f = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 1, n);
  float vals[5] = {1.0f, -2.5f, 0.0f, 65504.0f, 0.000061035156f};
  memcpy(f->data, vals, sizeof vals);
  amp_tensor *h = amp_tensor_cast(ctx, AMP_ARENA_STEP, f, AMP_F16);
  amp_tensor *g = amp_tensor_cast(ctx, AMP_ARENA_STEP, h, AMP_F32);
  CHECK(h && g && memcmp(g->data, vals, sizeof vals) == 0, "cast round trip");
  CHECK(h && h->dtype == AMP_F16 && h->numel == 5, "cast dtype");
  CHECK(amp_tensor_cast(ctx, AMP_ARENA_STEP, NULL, AMP_F16) == NULL, "NULL src");
  amp_ctx_free(ctx);
}

static void test_dtype_names(void) {
  amp_dtype t;
  for (int i = 0; i < AMP_DTYPE_COUNT; i++) {
    CHECK(amp_dtype_parse(amp_dtype_name((amp_dtype)i), &t) == AMP_OK && t == (amp_dtype)i,
          "name round trip %d", i);
  }
  CHECK(amp_dtype_parse("bfloat16", &t) == AMP_OK && t == AMP_BF16, "alias");
  CHECK(amp_dtype_parse("f64", &t) == AMP_ERR_INVALID_ARG, "unknown");
  CHECK(amp_dtype_parse(NULL, &t) == AMP_ERR_INVALID_ARG, "NULL");
  CHECK(strcmp(amp_dtype_name((amp_dtype)42), "invalid") == 0, "invalid name");
  CHECK(amp_dtype_size(AMP_BF16) == 2 && amp_dtype_size(AMP_E4M3) == 1, "sizes");
  CHECK(amp_dtype_size((amp_dtype)-1) == 0, "bad size");
  CHECK(amp_dtype_is_float(AMP_E5M2) && !amp_dtype_is_float(AMP_I32), "is_float");
  CHECK(strcmp(amp_status_string(AMP_ERR_SHAPE), "shape mismatch") == 0, "status string");
}

int main(void) {
  test_arena();
  test_tensor();
  test_dtype_names();
  TEST_MAIN_END();
}
