/* The INT8 inference path: the u8 × s8 → int32 GEMM of every kernel table
 * against an int64 reference (random data with the extremes 0, 255, -128,
 * 127, all tile tails, k = 0 and the largest k), 1 and 2 threads; the
 * quantization rule (ties to even, clamping, NaN); PyTorch's observer
 * parameters; the quantized Linear against an FP64 reference and against
 * the fake-quantized F32 layer it stands for. */
#include "check.h"
#include "core/internal.h"
#include "core/kernels.h"
#include "kernels/qgemm_internal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x1234567;
static uint32_t rnd(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rng >> 33);
}

/* Random bytes, one in four an extreme of its type. */
static void fill(uint8_t *a, int8_t *b, int64_t na, int64_t nb) {
  for (int64_t i = 0; i < na; i++) a[i] = rnd() % 4 == 0 ? (rnd() % 2 ? 255 : 0) : (uint8_t)rnd();
  for (int64_t i = 0; i < nb; i++)
    b[i] = rnd() % 4 == 0 ? (rnd() % 2 ? -128 : 127) : (int8_t)(uint8_t)rnd();
}

/* C of table `k` (threads t) for one shape equals the int64 reference. */
static void check_shape(const amp__kernels *kt, int threads, int64_t m, int64_t n, int64_t k) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = threads});
  CHECK(ctx && amp__ctx_set_kernels(ctx, kt), "table %s", kt->name);
  const int64_t lda = k + 3, ldb = k + 5, ldc = n + 2;
  uint8_t *a = malloc((size_t)(m * lda) + 1);
  int8_t *b = malloc((size_t)(n * ldb) + 1);
  int32_t *c = malloc(sizeof(int32_t) * (size_t)(m * ldc));
  fill(a, b, m * lda, n * ldb);
  for (int64_t i = 0; i < m * ldc; i++) c[i] = 0x5a5a5a5a;
  CHECK(amp_gemm_u8s8(ctx, m, n, k, a, lda, b, ldb, c, ldc) == AMP_OK, "%s", amp_ctx_error(ctx));
  int bad = 0;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < ldc; j++) {
      if (j >= n) { /* padding untouched (B has only n rows) */
        bad += c[i * ldc + j] != 0x5a5a5a5a;
        continue;
      }
      int64_t ref = 0;
      for (int64_t p = 0; p < k; p++) ref += (int64_t)a[i * lda + p] * b[j * ldb + p];
      bad += c[i * ldc + j] != ref;
    }
  CHECK(bad == 0, "%s, %d threads, %lldx%lldx%lld: %d wrong elements", kt->name, threads,
        (long long)m, (long long)n, (long long)k, bad);
  free(a), free(b), free(c);
  amp_ctx_free(ctx);
}

/* The largest k with every product at its extreme: the sums reach
 * ±255·128·65536 and still fit in int32. */
static void check_extreme_k(const amp__kernels *kt) {
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  CHECK(ctx && amp__ctx_set_kernels(ctx, kt), "table %s", kt->name);
  const int64_t k = 65536;
  uint8_t *a = malloc((size_t)(5 * k));
  int8_t *b = malloc((size_t)(3 * k));
  int32_t c[15];
  memset(a, 255, (size_t)(5 * k));
  for (int64_t i = 0; i < 3 * k; i++)
    b[i] = i < k ? -128 : i < 2 * k ? 127 : (int8_t)(i % 2 ? 127 : -128);
  CHECK(amp_gemm_u8s8(ctx, 5, 3, k, a, k, b, k, c, 3) == AMP_OK, "k = 65536");
  for (int i = 0; i < 5; i++)
    CHECK(c[i * 3] == -2139095040 && c[i * 3 + 1] == 255 * 127 * 65536 &&
              c[i * 3 + 2] == -255 * 32768,
          "%s: extreme sums %d %d %d", kt->name, c[i * 3], c[i * 3 + 1], c[i * 3 + 2]);
  CHECK(amp_gemm_u8s8(ctx, 5, 3, k + 1, a, k + 1, b, k + 1, c, 3) == AMP_ERR_INVALID_ARG,
        "k = 65537 is refused (int32 could overflow)");
  amp_ctx_clear_error(ctx);
  free(a), free(b);
  amp_ctx_free(ctx);
}

static void check_table(const amp__kernels *kt) {
  const int64_t shapes[][3] = {{1, 1, 1},    {4, 4, 64},   {5, 7, 65},      {3, 2, 15},
                               {9, 10, 784}, {33, 65, 17}, {128, 10, 1024}, {2, 130, 200},
                               {7, 5, 0},    {1, 70, 129}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int t = 1; t <= 2; t++) check_shape(kt, t, shapes[s][0], shapes[s][1], shapes[s][2]);
  check_extreme_k(kt);
}

/* amp__round_even is nearbyintf (ties to even) on every value that
 * matters: all halves k/2 up to 2^22 in magnitude, their neighbours, and
 * random floats of every exponent. */
static void test_round_even(void) {
  int bad = 0;
  for (int32_t k = -(1 << 23); k <= (1 << 23); k += 1) {
    const float h = (float)k * 0.5f;
    const float v[3] = {h, nextafterf(h, INFINITY), nextafterf(h, -INFINITY)};
    for (int i = 0; i < 3; i++) bad += amp__round_even(v[i]) != nearbyintf(v[i]);
  }
  for (int i = 0; i < 1000000; i++) {
    uint32_t u = rnd() ^ (rnd() << 16);
    float f;
    memcpy(&f, &u, 4);
    if (isnan(f)) continue;
    bad += amp__round_even(f) != nearbyintf(f);
  }
  CHECK(bad == 0, "amp__round_even differs from nearbyintf on %d values", bad);
  CHECK(isnan(amp__round_even(NAN)) && amp__round_even(INFINITY) == INFINITY, "NaN, inf");
}

static void test_quantize(void) {
  /* scale 0.5: x/s = 2.5 -> 2, 3.5 -> 4, -2.5 -> -2 (ties to even), then + zp 10 */
  const float x[] = {1.25f, 1.75f, -1.25f, 0.0f, 1000.0f, -1000.0f, NAN, 0.74f};
  uint8_t q[8];
  CHECK(amp_quantize_u8(NULL, 8, x, 0.5f, 10, q) == AMP_OK, "quantize_u8");
  const uint8_t want[] = {12, 14, 8, 10, 255, 0, 0, 11};
  CHECK(memcmp(q, want, 8) == 0, "u8 codes %u %u %u %u %u %u %u %u", q[0], q[1], q[2], q[3], q[4],
        q[5], q[6], q[7]);
  const float w[] = {0.25f, -0.75f, 100.0f, -100.0f, 0.3f, -0.3f};
  const float ws[] = {0.5f, 0.1f};
  int8_t qw[6];
  CHECK(amp_quantize_s8_rows(NULL, 2, 3, w, ws, qw) == AMP_OK, "quantize_s8_rows");
  const int8_t wantw[] = {0, -2, 127, -128, 3, -3};
  CHECK(memcmp(qw, wantw, 6) == 0, "s8 codes %d %d %d %d %d %d", qw[0], qw[1], qw[2], qw[3], qw[4],
        qw[5]);
  const float bad[] = {0.5f, 0.0f};
  CHECK(amp_quantize_s8_rows(NULL, 2, 3, w, bad, qw) == AMP_ERR_INVALID_ARG, "zero scale refused");
  CHECK(amp_quantize_u8(NULL, 8, x, INFINITY, 0, q) == AMP_ERR_INVALID_ARG, "inf scale refused");
  CHECK(amp_quantize_u8(NULL, 8, x, 1.0f, 256, q) == AMP_ERR_INVALID_ARG, "zero point 256 refused");
}

/* PyTorch 2.x: MovingAveragePerChannelMinMaxObserver(qint8, per_channel_symmetric)
 * on [[-1, 0.5], [0.2, 0.3]] gives scales [1/127.5, 0.3/127.5]; a
 * MovingAverageMinMaxObserver(0..255) on [-0.3, 2.0] scale 2.3/255, zero
 * point 33. */
static void test_qparams(void) {
  CHECK(amp_qparams_symmetric_s8(-1.0f, 0.5f) == 1.0f / 127.5f, "symmetric scale");
  CHECK(amp_qparams_symmetric_s8(0.2f, 0.3f) == 0.3f / 127.5f, "symmetric scale, positive");
  CHECK(amp_qparams_symmetric_s8(0.0f, 0.0f) == FLT_EPSILON, "eps floor");
  float s;
  int32_t z;
  amp_qparams_affine_u8(-0.3f, 2.0f, &s, &z);
  CHECK(s == (2.0f - -0.3f) / 255.0f && z == 33, "affine: scale %g zero point %d", (double)s, z);
  amp_qparams_affine_u8(0.5f, 2.0f, &s, &z);
  CHECK(s == 2.0f / 255.0f && z == 0, "affine: the range includes 0");
}

/* A 3 × 4 → 2 layer: amp_qlinear against FP64 of the same integer codes,
 * and against the fake-quantized F32 layer. */
static void test_qlinear(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  const float x[12] = {0.1f, -0.2f, 0.7f, 1.9f, 0.0f, 0.33f, -0.05f, 2.5f, 1.0f, 1.0f, -1.0f, 0.2f};
  const float w[8] = {0.5f, -0.25f, 0.125f, 0.9f, -0.6f, 0.01f, 0.3f, -0.45f};
  const float bias[2] = {0.05f, -0.1f};
  float xs;
  int32_t xz;
  amp_qparams_affine_u8(-1.0f, 2.5f, &xs, &xz);
  const float ws[2] = {amp_qparams_symmetric_s8(-0.25f, 0.9f),
                       amp_qparams_symmetric_s8(-0.6f, 0.3f)};
  int8_t qw[8];
  uint8_t qx[12];
  float y[6];
  CHECK(amp_quantize_s8_rows(ctx, 2, 4, w, ws, qw) == AMP_OK, "weights");
  CHECK(amp_quantize_u8(ctx, 12, x, xs, xz, qx) == AMP_OK, "input");
  CHECK(amp_qlinear(ctx, 3, 2, 4, x, xs, xz, qw, ws, bias, y) == AMP_OK, "%s", amp_ctx_error(ctx));
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) {
      double acc = 0;
      for (int p = 0; p < 4; p++) acc += ((double)qx[i * 4 + p] - xz) * qw[j * 4 + p];
      double ref = acc * ((double)xs * ws[j]) + bias[j];
      CHECK(fabs(y[i * 2 + j] - ref) <= 4 * FLT_EPSILON * (fabs(ref) + 1),
            "qlinear (%d,%d) %.9g vs FP64 %.9g", i, j, (double)y[i * 2 + j], ref);
    }
  /* The fake-quantized layer computes the same function in F32. */
  amp_tensor *tx = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){3, 4});
  amp_tensor *tw = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){2, 4});
  amp_tensor *tb = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 1, (int64_t[]){2});
  memcpy(tx->data, x, sizeof x), memcpy(tw->data, w, sizeof w), memcpy(tb->data, bias, sizeof bias);
  const int32_t zero[2] = {0, 0};
  amp_tensor *fy = amp_linear(ctx, amp_fake_quant(ctx, tx, 1, &xs, &xz, 0, 255),
                              amp_fake_quant(ctx, tw, 2, ws, zero, -128, 127), tb);
  CHECK(fy != NULL, "%s", amp_ctx_error(ctx));
  for (int i = 0; fy && i < 6; i++)
    CHECK(fabsf(((float *)fy->data)[i] - y[i]) <= 1e-5f, "fake quant %g vs int8 %g",
          (double)((float *)fy->data)[i], (double)y[i]);
  const float badws[2] = {ws[0], NAN};
  CHECK(amp_qlinear(ctx, 3, 2, 4, x, xs, xz, qw, badws, bias, y) == AMP_ERR_INVALID_ARG,
        "a NaN weight scale is refused");
  amp_ctx_free(ctx);
}

int main(void) {
  check_table(&amp__kernels_scalar);
#ifdef AMPC_HAVE_X86_SIMD
  if (amp__kernels_usable(&amp__kernels_avx2))
    check_table(&amp__kernels_avx2);
  else
    printf("skipped: the AVX2 INT8 GEMM (this CPU lacks AVX2)\n");
  if (amp__kernels_usable(&amp__kernels_avx512)) {
    check_table(&amp__kernels_avx512);
    if (!(amp_cpu_features() & AMP_CPU_AVX512VNNI))
      printf("skipped: the VNNI INT8 GEMM (this CPU lacks AVX512-VNNI; the AVX-512 table ran "
             "the AVX2 block)\n");
  } else {
    printf("skipped: the AVX-512 INT8 GEMM (this CPU lacks AVX-512F)\n");
  }
#else
  printf("skipped: the SIMD INT8 GEMMs (built without SIMD)\n");
#endif
  test_round_even();
  test_quantize();
  test_qparams();
  test_qlinear();
  TEST_MAIN_END();
}
