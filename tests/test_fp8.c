/* FP8 training pieces: the AVX2 encode/amax/decode kernels against their
 * scalar references (bit for bit), amp_gemm_fp8 against amp_gemm on the
 * dequantised F32 matrices (bit for bit; shapes with partial blocks, both
 * transposes, 1 and 2 threads, the scalar, AVX2 and AVX-512 tables), the recipes' scale
 * arithmetic against hand computations (delayed, current, block),
 * stochastic rounding to E5M2 (reproducible, unbiased) and bad input. */
#include "check.h"

#include "ampc.h"
#include "core/internal.h"
#include "dtype/convert_internal.h"
#include "kernels/fp8_internal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 88172645463325252ull;
static uint32_t rnd(void) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return (uint32_t)(rs >> 16);
}
static float frand(void) { return (float)(rnd() % 2000001) / 1e6f - 1.0f; } /* [-1, 1] */
static float bits_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint32_t f_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* ---- kernels: SIMD against the scalar references ---------------------------- */

/* The block-scaling row kernels against per-tile calls of the scalar
 * references: random bit patterns (NaN, inf, subnormals), row lengths with
 * partial tiles and tails, several tile widths, both sources and formats. */
static void test_row_tiles(const amp__kernels *k) {
  enum { N = 1100 };
  float *x = malloc(sizeof(float) * N), a0[N], a1[N], sc[N];
  uint16_t *xb = malloc(sizeof(uint16_t) * N);
  uint8_t *q0 = malloc(N), *q1 = malloc(N);
  const size_t colss[] = {784, 1024, 130, 7, 1, 1100}, bcs[] = {128, 1, 5, 16, 2000};
  long bad = 0;
  for (int round = 0; round < 60; round++) {
    for (int i = 0; i < N; i++) {
      uint32_t u = rnd() << 16 ^ rnd();
      x[i] = round % 3 == 0 ? bits_f(u) : frand() * ldexpf(1.0f, (int)(rnd() % 40) - 20);
      xb[i] = (uint16_t)(f_bits(x[i]) >> 16);
    }
    size_t cols = colss[round % 6], bc = bcs[(round / 6) % 5], nt = (cols + bc - 1) / bc;
    for (int sdt = 0; sdt < 2; sdt++) {
      const void *src = sdt ? (const void *)xb : (const void *)x;
      int dt = sdt ? AMP_BF16 : AMP_F32;
      for (size_t t = 0; t < nt; t++) a0[t] = a1[t] = (float)(t % 3) * 0.5f; /* accumulates */
      for (size_t t = 0; t < nt; t++) {
        size_t c0 = t * bc, len = c0 + bc < cols ? bc : cols - c0;
        float m =
            amp__fp8_amax_scalar(dt, len, sdt ? (const void *)(xb + c0) : (const void *)(x + c0));
        if (m > a0[t]) a0[t] = m;
        sc[t] = ldexpf(1.0f, (int)(rnd() % 60) - 30);
      }
      k->fp8_row_amax(dt, cols, bc, src, a1);
      bad += memcmp(a0, a1, nt * sizeof(float)) != 0;
      for (int fmt = AMP_E4M3; fmt <= AMP_E5M2; fmt++) {
        for (size_t t = 0; t < nt; t++) {
          size_t c0 = t * bc, len = c0 + bc < cols ? bc : cols - c0;
          amp__fp8_quant_scalar(
              fmt, dt, len, sdt ? (const void *)(xb + c0) : (const void *)(x + c0), sc[t], q0 + c0);
        }
        k->fp8_row_quant(fmt, dt, cols, bc, src, sc, q1);
        bad += memcmp(q0, q1, cols) != 0;
      }
    }
  }
  CHECK(bad == 0, "%s: fp8 row tile kernels differ from the scalar reference in %ld cases", k->name,
        bad);
  free(x), free(xb), free(q0), free(q1);
}

static void test_kernels(const amp__kernels *k) {
  enum { N = 4099 };
  float *x = malloc(sizeof(float) * N);
  uint16_t *xb = malloc(sizeof(uint16_t) * N);
  uint8_t *q0 = malloc(N), *q1 = malloc(N);
  const float scales[] = {1.0f, 448.0f / 3.0f, 57344.0f / 1e-3f, 1e-30f, 3e38f, 0.3333f};
  long bad = 0;
  for (int round = 0; round < 200; round++) {
    for (int i = 0; i < N; i++) { /* random bit patterns: NaN, inf, subnormals too */
      uint32_t u = rnd() << 16 ^ rnd();
      x[i] = round % 2 ? bits_f(u) : frand() * ldexpf(1.0f, (int)(rnd() % 40) - 20);
      xb[i] = (uint16_t)(f_bits(x[i]) >> 16);
    }
    for (int sdt = 0; sdt < 2; sdt++) {
      const void *src = sdt ? (const void *)xb : (const void *)x;
      int dt = sdt ? AMP_BF16 : AMP_F32;
      size_t n = (size_t)(N - (round % 13)); /* tails of every length */
      float a0 = amp__fp8_amax_scalar(dt, n, src), a1 = k->fp8_amax(dt, n, src);
      bad += f_bits(a0) != f_bits(a1);
      for (int fmt = AMP_E4M3; fmt <= AMP_E5M2; fmt++) {
        float s = scales[round % 6];
        float m0 = amp__fp8_quant_scalar(fmt, dt, n, src, s, q0);
        float m1 = k->fp8_quant(fmt, dt, n, src, s, q1);
        bad += f_bits(m0) != f_bits(a0) || f_bits(m1) != f_bits(a0) || memcmp(q0, q1, n) != 0;
        for (size_t i = 0; i < n && round < 2; i++) /* the element conversions themselves */
          bad += q0[i] != (fmt == AMP_E4M3 ? amp_f32_to_e4m3(x[i] * s, 1).bits
                                           : amp_f32_to_e5m2(x[i] * s, 1).bits) &&
                 sdt == 0;
      }
    }
  }
  CHECK(bad == 0, "%s: fp8 amax/quant differ from the scalar reference in %ld cases", k->name, bad);
  /* boundaries: around every representable value and the rounding points */
  float edge[] = {0.0f,     -0.0f,      448.0f,    464.0f,     464.0001f, 480.0f,
                  57344.0f, 61440.0f,   61439.99f, INFINITY,   -INFINITY, NAN,
                  0x1p-6f,  0x1p-9f,    0x1p-10f,  0x1.8p-10f, 0x1p-14f,  0x1p-16f,
                  0x1p-17f, 0x1.8p-17f, 0x1p-149f, FLT_MAX};
  size_t ne = sizeof edge / sizeof edge[0];
  for (int fmt = AMP_E4M3; fmt <= AMP_E5M2; fmt++) {
    float s = 1.0f;
    amp__fp8_quant_scalar(fmt, AMP_F32, ne, edge, s, q0);
    k->fp8_quant(fmt, AMP_F32, ne, edge, s, q1);
    CHECK(memcmp(q0, q1, ne) == 0, "%s: edge values fmt %d", k->name, fmt);
  }
  /* decode: all 256 codes, several scales */
  uint8_t codes[256];
  float d0[256], d1[256];
  for (int i = 0; i < 256; i++) codes[i] = (uint8_t)i;
  for (int fmt = AMP_E4M3; fmt <= AMP_E5M2; fmt++)
    for (int si = 0; si < 6; si++) {
      amp__fp8_dequant_scalar(fmt, 256, codes, 1.0f / scales[si], d0);
      k->fp8_dequant(fmt, 256, codes, 1.0f / scales[si], d1);
      int diff = 0;
      for (int i = 0; i < 256; i++) diff += f_bits(d0[i]) != f_bits(d1[i]);
      CHECK(diff == 0, "%s: dequant fmt %d scale %g: %d codes differ", k->name, fmt,
            (double)scales[si], diff);
    }
  free(x), free(xb), free(q0), free(q1);
  test_row_tiles(k);
}

/* ---- the GEMM: equal to amp_gemm on the dequantised values -------------- */

/* A random FP8 matrix with random per-block scales (powers of two and
 * others), and its dequantised F32 copy by the descriptor's definition. */
static void make_q(amp_fp8_matrix *q, int64_t r, int64_t c, int64_t br, int64_t bc, amp_dtype fmt,
                   uint8_t *data, float *sc, float *deq) {
  int64_t nbr = (r + br - 1) / br, nbc = (c + bc - 1) / bc;
  for (int64_t i = 0; i < nbr * nbc; i++)
    sc[i] =
        (rnd() % 2) ? ldexpf(1.0f, (int)(rnd() % 20) - 10) : 0.001f + (float)(rnd() % 1000) / 7.0f;
  for (int64_t i = 0; i < r * c; i++) {
    uint8_t v = (uint8_t)rnd();
    if ((v & 0x7f) >= (fmt == AMP_E4M3 ? 0x7f : 0x7c)) v &= 0x80; /* finite values */
    data[i] = v;
  }
  *q = (amp_fp8_matrix){data, fmt, r, c, c, sc, br, bc};
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < c; j++) {
      float v = fmt == AMP_E4M3 ? amp_e4m3_to_f32((amp_e4m3){data[i * c + j]})
                                : amp_e5m2_to_f32((amp_e5m2){data[i * c + j]});
      deq[i * c + j] = v * sc[(i / br) * nbc + j / bc];
    }
}

/* amp_gemm_fp8 on each context's kernel table (whose packers widen the FP8
 * operands) against amp_gemm of the dequantised F32 copies on the same
 * table and on the scalar reference table (ref): the same bits. Shapes with whole and
 * partial slivers (MR = 6 rows, NR = 16 columns, 8-wide chunks along K),
 * the MLP's edges (784, 10, 1024), blocks that are the whole matrix, 1 ×
 * 128, 128 × 128 and odd ones (3 × 5, 7 × 12: block edges inside the
 * packers' 8-wide chunks), both transposes. */
static void test_gemm_equal(amp_ctx *const *ctxs, int nctx, amp_ctx *ref, const char *what) {
  const int64_t shapes[][3] = {{1, 1, 1},      {7, 10, 784}, {128, 10, 1024}, {33, 130, 129},
                               {130, 257, 17}, {6, 16, 256}, {10, 40, 128},   {64, 48, 200},
                               {12, 784, 20},  {20, 17, 784}};
  const int64_t blocks[][2] = {{0, 0}, {1, 128}, {128, 128}, {3, 5}, {7, 12}};
  const int nb = (int)(sizeof blocks / sizeof blocks[0]);
  int bad = 0, runs = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int t = 0; t < 4; t++)
      for (int b = 0; b < nb; b++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        amp_trans ta = t & 1 ? AMP_TRANS : AMP_NO_TRANS, tb = t & 2 ? AMP_TRANS : AMP_NO_TRANS;
        int64_t ar = ta ? k : m, ac = ta ? m : k, br_ = tb ? n : k, bc_ = tb ? k : n;
        int64_t abr = blocks[b][0] ? blocks[b][0] : ar, abc = blocks[b][1] ? blocks[b][1] : ac;
        int64_t bbr = blocks[b][0] ? blocks[b][0] : br_, bbc = blocks[b][1] ? blocks[b][1] : bc_;
        uint8_t *qa = malloc((size_t)(ar * ac)), *qb = malloc((size_t)(br_ * bc_));
        float *sa = malloc(sizeof(float) * (size_t)(ar * ac)),
              *sb = malloc(sizeof(float) * (size_t)(br_ * bc_));
        float *da = malloc(sizeof(float) * (size_t)(ar * ac)),
              *db = malloc(sizeof(float) * (size_t)(br_ * bc_));
        float *c0 = malloc(sizeof(float) * (size_t)(m * n)),
              *c1 = malloc(sizeof(float) * (size_t)(m * n)),
              *c2 = malloc(sizeof(float) * (size_t)(m * n)),
              *c3 = malloc(sizeof(float) * (size_t)(m * n));
        amp_fp8_matrix A, B;
        make_q(&A, ar, ac, abr, abc, (s + b) % 3 ? AMP_E4M3 : AMP_E5M2, qa, sa, da);
        make_q(&B, br_, bc_, bbr, bbc, b % 2 ? AMP_E5M2 : AMP_E4M3, qb, sb, db);
        for (int64_t i = 0; i < m * n; i++) c0[i] = c1[i] = c2[i] = frand();
        float bias[800];
        for (int i = 0; i < 800; i++) bias[i] = frand();
        amp_epilogue ep = {.bias = bias, .bias_dtype = AMP_F32, .relu = 1};
        const amp_epilogue *e = s % 2 ? &ep : NULL;
        float beta = t == 3 ? 0.5f : 0.0f;
        amp_status s0 = amp_gemm(ref, ta, tb, m, n, k, 1.5f, da, AMP_F32, ac, db, AMP_F32, bc_,
                                 beta, c0, AMP_F32, n, e);
        for (int x = 0; x < nctx; x++) {
          memcpy(c1, c2, sizeof(float) * (size_t)(m * n)); /* C as it was */
          memcpy(c3, c2, sizeof(float) * (size_t)(m * n));
          amp_status s2 = amp__kernels_of(ctxs[x]) == amp__kernels_of(ref) /* done: c0 */
                              ? (memcpy(c3, c0, sizeof(float) * (size_t)(m * n)), s0)
                              : amp_gemm(ctxs[x], ta, tb, m, n, k, 1.5f, da, AMP_F32, ac, db,
                                         AMP_F32, bc_, beta, c3, AMP_F32, n, e);
          amp_status s1 =
              amp_gemm_fp8(ctxs[x], ta, tb, m, n, k, 1.5f, &A, &B, beta, c1, AMP_F32, n, e);
          bad += s0 != AMP_OK || s1 != AMP_OK || s2 != AMP_OK ||
                 memcmp(c0, c1, sizeof(float) * (size_t)(m * n)) ||
                 memcmp(c3, c1, sizeof(float) * (size_t)(m * n));
          if (memcmp(c0, c1, sizeof(float) * (size_t)(m * n)))
            printf("differs: table %s, m %lld n %lld k %lld, transposes %d, blocks %d\n",
                   amp__kernels_of(ctxs[x])->name, (long long)m, (long long)n, (long long)k, t, b);
          runs++;
        }
        free(qa), free(qb), free(sa), free(sb), free(da), free(db), free(c0), free(c1), free(c2),
            free(c3);
      }
  CHECK(bad == 0, "%s: amp_gemm_fp8 differs from amp_gemm of the dequantised values in %d of %d",
        what, bad, runs);
}

/* ---- block scaling by hand ------------------------------------------------- */

static void test_block(amp_ctx *ctx) {
  enum { R = 3, C = 130 };
  float x[R * C];
  for (int i = 0; i < R * C; i++) x[i] = (i % 7 - 3) * 0.25f; /* |x| <= 0.75 */
  x[0 * C + 5] = 3.0f;     /* tile (0,0): amax 3 -> 448/3 = 149.3 -> 128 */
  x[1 * C + 129] = -0.01f; /* tile (1,1) (2 columns): amax 0.01 */
  x[1 * C + 128] = 0.01f;
  uint8_t q[R * C];
  float si[R * 2];
  amp_fp8_matrix m;
  CHECK(amp_fp8_quantize_blocks(ctx, AMP_E4M3, x, AMP_F32, R, C, C, 1, 128, q, si, &m) == AMP_OK,
        "quantize_blocks");
  /* row 0 tile 0: amax 3 -> scale 128; row 0 tile 1 (cols 128, 129): values
     (i%7-3)/4 at i = 128, 129 -> -1/4 and 0 -> amax 0.25 -> 1792 -> 1024;
     row 1 tile 1: amax 0.01 -> 44800 -> 32768; other row-tiles: 0.75 -> 512 */
  CHECK(si[0] == 1.0f / 128 && si[1] == 1.0f / 1024 && si[2] == 1.0f / 512 &&
            si[3] == 1.0f / 32768 && si[4] == 1.0f / 512,
        "1x128 scales %g %g %g %g %g", (double)si[0], (double)si[1], (double)si[2], (double)si[3],
        (double)si[4]);
  CHECK(m.block_rows == 1 && m.block_cols == 128 && m.rows == R && m.cols == C, "descriptor");
  CHECK(amp_e4m3_to_f32((amp_e4m3){q[5]}) == 384.0f, "3·128 = 384 is exact in E4M3");
  float y[R * C];
  amp__fp8_dequant_matrix(amp__kernels_of(ctx), &m, y, 1);
  float err = 0;
  for (int i = 0; i < R * C; i++) err = fmaxf(err, fabsf(y[i] - x[i]) / fmaxf(fabsf(x[i]), 1e-3f));
  CHECK(err <= 1.0f / 16, "block round trip relative error %g <= 2^-4", (double)err);
  /* 128x128 blocks of a 130x130 matrix: 4 blocks, the edge ones partial */
  static float w[130 * 130];
  static uint8_t qw[130 * 130];
  float sw[4];
  for (int i = 0; i < 130 * 130; i++) w[i] = 0.5f;
  w[129 * 130 + 129] = 7.0f; /* block (1,1) alone: 448/7 = 64 */
  w[0] = 1e-3f;
  CHECK(amp_fp8_quantize_blocks(ctx, AMP_E4M3, w, AMP_F32, 130, 130, 130, 128, 128, qw, sw, &m) ==
            AMP_OK,
        "128x128");
  CHECK(sw[0] == 1.0f / 512 && sw[1] == 1.0f / 512 && sw[2] == 1.0f / 512 && sw[3] == 1.0f / 64,
        "128x128 scales %g %g %g %g", (double)sw[0], (double)sw[1], (double)sw[2], (double)sw[3]);
  float zero[4] = {0};
  CHECK(amp_fp8_quantize_blocks(ctx, AMP_E4M3, zero, AMP_F32, 1, 4, 4, 1, 128, qw, sw, &m) ==
                AMP_OK &&
            sw[0] == 1.0f && qw[0] == 0,
        "an all-zero block has scale 1");
}

/* amp_fp8_quantize_blocks against the tile-by-tile algorithm it replaced
 * (per tile: amax over its rows, the power-of-two scale, then the codes),
 * written here with the scalar references: the same codes and scales,
 * bit for bit, for 1 × 128 and 128 × 128 tiles, F32 and BF16 sources with
 * NaN, inf and huge values, a row stride ld > cols, any thread count and
 * kernel table. */
static float ref_pow2(float fmax, float amax) {
  if (!(amax > 0.0f) || !isfinite(amax)) return 1.0f;
  float s = fmax / amax;
  if (!isfinite(s)) s = FLT_MAX;
  return bits_f(f_bits(s) & 0xff800000u);
}

static void test_block_ref(void) {
  enum { R = 300, C = 784, LD = 790 };
  float *x = malloc(sizeof(float) * R * LD);
  uint16_t *xb = malloc(sizeof(uint16_t) * R * LD);
  uint8_t *q0 = malloc(R * C), *q1 = malloc(R * C);
  float s0[3 * 7], s1[3 * 7], s0b[R * 7], s1b[R * 7];
  long bad = 0;
  for (int i = 0; i < R * LD; i++) {
    x[i] = frand() * ldexpf(1.0f, (int)(rnd() % 30) - 15);
    if (rnd() % 5000 == 0) x[i] = bits_f(rnd() << 16 ^ rnd()); /* NaN, inf, huge, tiny */
    xb[i] = (uint16_t)(f_bits(x[i]) >> 16);
  }
  for (int cfg = 0; cfg < 8; cfg++) {
    int threads = 1 + cfg % 2, sdt = (cfg / 2) % 2, simd = cfg / 4;
    amp_ctx_params cp = {.threads = threads, .no_simd = !simd};
    amp_ctx *ctx = amp_ctx_create(&cp);
    const void *src = sdt ? (const void *)xb : (const void *)x;
    int dt = sdt ? AMP_BF16 : AMP_F32;
    for (int wt = 0; wt < 2; wt++) {
      int fmt = wt ? AMP_E4M3 : (cfg % 3 ? AMP_E4M3 : AMP_E5M2);
      int64_t br = wt ? 128 : 1, nbr = (R + br - 1) / br;
      float *sr = wt ? s0 : s0b, *sk = wt ? s1 : s1b;
      for (int64_t bi = 0; bi < nbr; bi++)
        for (int bj = 0; bj < 7; bj++) {
          int64_t r0 = bi * br, r1 = r0 + br < R ? r0 + br : R, c0 = bj * 128;
          size_t len = c0 + 128 < C ? 128 : (size_t)(C - c0);
          float am = 0.0f;
          for (int64_t r = r0; r < r1; r++) {
            size_t off = (size_t)(r * LD + c0);
            float a = amp__fp8_amax_scalar(
                dt, len, sdt ? (const void *)(xb + off) : (const void *)(x + off));
            if (a > am) am = a;
          }
          float sc = ref_pow2(fmt == AMP_E4M3 ? 448.0f : 57344.0f, am);
          sr[bi * 7 + bj] = 1.0f / sc;
          for (int64_t r = r0; r < r1; r++) {
            size_t off = (size_t)(r * LD + c0);
            amp__fp8_quant_scalar(fmt, dt, len,
                                  sdt ? (const void *)(xb + off) : (const void *)(x + off), sc,
                                  q0 + r * C + c0);
          }
        }
      amp_fp8_matrix m;
      bad += amp_fp8_quantize_blocks(ctx, fmt, src, dt, R, C, LD, br, 128, q1, sk, &m) != AMP_OK;
      bad += memcmp(q0, q1, (size_t)R * C) != 0 ||
             memcmp(sr, sk, sizeof(float) * (size_t)(nbr * 7)) != 0;
    }
    amp_ctx_free(ctx);
  }
  CHECK(bad == 0, "amp_fp8_quantize_blocks differs from the tile-by-tile reference in %ld cases",
        bad);
  free(x), free(xb), free(q0), free(q1);
}

/* ---- delayed and current scaling through a linear -------------------------- */

/* One FP8 step: y = linear(x) (F32 input, no autocast) and backward of
 * sum(y)·gscale, so dY = gscale everywhere. */
static void fp8_step(amp_ctx *ctx, amp_module *lin, const float *xv, float gscale) {
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){2, 4});
  memcpy(x->data, xv, sizeof(float) * 8);
  amp_fp8_begin(ctx);
  amp_tensor *y = amp_module_forward(ctx, lin, x);
  amp_fp8_end(ctx);
  amp_tensor *l = amp_mul_scalar(ctx, amp_sum(ctx, y), gscale);
  CHECK(l && amp_backward(ctx, l) == AMP_OK, "fp8 step: %s", amp_ctx_error(ctx));
  amp_ctx_step_reset(ctx); /* ends the FP8 step */
}

static void test_delayed_current(void) {
  for (int mode = 0; mode < 2; mode++) {
    amp_ctx *ctx = amp_ctx_create(NULL);
    amp_rng rng;
    amp_rng_seed(&rng, 1);
    amp_module *lin = amp_nn_linear(ctx, &rng, 4, 3, 1);
    float *w = amp_module_param(lin, 0, NULL)->data;
    for (int i = 0; i < 12; i++) w[i] = (i % 3 - 1) * 0.5f;
    w[7] = 2.0f; /* amax of the weight: 2 */
    amp_fp8_params p = amp_fp8_defaults(mode ? AMP_FP8_CURRENT : AMP_FP8_DELAYED);
    p.history_len = 2;
    CHECK(amp_fp8_create(ctx, lin, &p) == AMP_OK, "create: %s", amp_ctx_error(ctx));
    float x1[8] = {1, -4, 0.5f, 2, 0, 0, 1, 1}; /* amax 4 */
    float x2[8] = {1, -8, 0.5f, 2, 0, 0, 1, 1}; /* amax 8 */
    float x3[8] = {1, -2, 0.5f, 2, 0, 0, 1, 1}; /* amax 2 */
    CHECK(amp_fp8_scale(ctx, 0, 0, NULL) == 1.0f, "the first step's scale is 1");
    fp8_step(ctx, lin, x1, 0.25f);
    const float *h;
    float s_in = amp_fp8_scale(ctx, 0, 0, &h), s_w = amp_fp8_scale(ctx, 0, 1, NULL);
    float s_g = amp_fp8_scale(ctx, 0, 2, NULL);
    if (!mode) {
      CHECK(s_in == 448.0f / 4 && s_w == 448.0f / 2 && s_g == 57344.0f / 0.25f,
            "delayed after step 1: %g %g %g", (double)s_in, (double)s_w, (double)s_g);
      CHECK(h[0] == 0 && h[1] == 4, "history after step 1: [%g, %g] (newest first)", (double)h[0],
            (double)h[1]);
      fp8_step(ctx, lin, x2, 1.0f);
      s_in = amp_fp8_scale(ctx, 0, 0, NULL), s_g = amp_fp8_scale(ctx, 0, 2, NULL);
      CHECK(s_in == 448.0f / 8 && s_g == 57344.0f / 1, "after step 2: max(4, 8): %g %g",
            (double)s_in, (double)s_g);
      fp8_step(ctx, lin, x3, 0.5f);
      s_in = amp_fp8_scale(ctx, 0, 0, NULL), s_g = amp_fp8_scale(ctx, 0, 2, NULL);
      CHECK(s_in == 448.0f / 8 && s_g == 57344.0f / 1, "after step 3: max(8, 2) (H = 2): %g %g",
            (double)s_in, (double)s_g);
      fp8_step(ctx, lin, x3, 0.5f);
      s_in = amp_fp8_scale(ctx, 0, 0, NULL), s_g = amp_fp8_scale(ctx, 0, 2, NULL);
      CHECK(s_in == 448.0f / 2 && s_g == 57344.0f / 0.5f, "after step 4: 8 left the window: %g %g",
            (double)s_in, (double)s_g);
      CHECK(amp_fp8_scale(ctx, 1, 0, NULL) == 1.0f, "the bias's rows stay unused");
    } else {
      CHECK(s_in == 448.0f / 4 && s_w == 448.0f / 2 && s_g == 57344.0f / 0.25f,
            "current: this step's amax: %g %g %g", (double)s_in, (double)s_w, (double)s_g);
      fp8_step(ctx, lin, x3, 1.0f);
      CHECK(amp_fp8_scale(ctx, 0, 0, NULL) == 448.0f / 2, "current: step 2's own amax");
    }
    amp_ctx_free(ctx);
  }
}

/* Micro-batches (amp_fp8_micro_batch): two of them in one FP8 step keep the
 * step's scales, record the larger amax and move the history on once; a
 * reduce (as ranks would) raises the amax; a negative index is refused. */
static struct {
  int n;
  void *user;
} amax_seen;
static void raise_amax(float *amax, int n, void *user) {
  amax_seen.n = n;
  amax_seen.user = user;
  amax[0] = 16.0f; /* another rank's larger input amax (param 0, role 0) */
}

static void test_micro_batches(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_rng rng;
  amp_rng_seed(&rng, 1);
  amp_module *lin = amp_nn_linear(ctx, &rng, 4, 3, 1);
  amp_fp8_params p = amp_fp8_defaults(AMP_FP8_DELAYED);
  p.history_len = 4;
  CHECK(amp_fp8_create(ctx, lin, &p) == AMP_OK, "create: %s", amp_ctx_error(ctx));
  float x1[8] = {1, -4, 0.5f, 2, 0, 0, 1, 1}; /* amax 4 */
  float x2[8] = {1, -8, 0.5f, 2, 0, 0, 1, 1}; /* amax 8 */
  const float *h;
  for (int m = 0; m < 2; m++) { /* two micro-batches of one step */
    amp_ctx_step_reset(ctx);
    CHECK(amp_fp8_micro_batch(ctx, m) == AMP_OK, "micro-batch %d: %s", m, amp_ctx_error(ctx));
    fp8_step(ctx, lin, m ? x2 : x1, 1.0f); /* its reset does not end the step */
    CHECK(amp_fp8_scale(ctx, 0, 0, &h) == 1.0f, "micro-batch %d ran on the step's scale", m);
    CHECK(h[0] == (m ? 8.0f : 4.0f) && h[1] == 0.0f,
          "micro-batch %d: the step's amax so far %g, no step ended (%g)", m, (double)h[0],
          (double)h[1]);
  }
  amax_seen.n = -1;
  CHECK(amp_fp8_reduce_amax(ctx, raise_amax, &amax_seen) == AMP_OK, "reduce: %s",
        amp_ctx_error(ctx));
  CHECK(amax_seen.n == 3 * 2 && amax_seen.user == &amax_seen,
        "reduce sees 3 amaxes per parameter (%d)", amax_seen.n);
  amp_fp8_step_end(ctx);
  CHECK(amp_fp8_scale(ctx, 0, 0, &h) == 448.0f / 16 && h[0] == 0.0f && h[1] == 16.0f,
        "one step ended, on the reduced amax: scale %g, history [%g, %g]",
        (double)amp_fp8_scale(ctx, 0, 0, NULL), (double)h[0], (double)h[1]);
  fp8_step(ctx, lin, x1, 1.0f); /* no micro-batch: the reset ends each step again */
  amp_fp8_scale(ctx, 0, 0, &h);
  CHECK(h[0] == 0.0f && h[1] == 4.0f && h[2] == 16.0f, "plain steps end at the reset again");
  CHECK(amp_fp8_micro_batch(ctx, -1) == AMP_ERR_INVALID_ARG, "a negative index is refused");
  CHECK(amp_fp8_reduce_amax(ctx, NULL, NULL) == AMP_ERR_INVALID_ARG, "reduce needs a function");
  amp_ctx_free(ctx);
}

/* The forward output equals the F32 GEMM of the operands quantised by hand
 * (delayed scaling, first step: scale 1). */
static void test_linear_by_hand(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_rng rng;
  amp_rng_seed(&rng, 3);
  amp_module *lin = amp_nn_linear(ctx, &rng, 5, 2, 0);
  float *w = amp_module_param(lin, 0, NULL)->data;
  amp_fp8_params p = amp_fp8_defaults(AMP_FP8_CURRENT);
  amp_fp8_create(ctx, lin, &p);
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){3, 5});
  float *xv = x->data, xa = 0, wa = 0;
  for (int i = 0; i < 15; i++) xv[i] = frand() * 3, xa = fmaxf(xa, fabsf(xv[i]));
  for (int i = 0; i < 10; i++) wa = fmaxf(wa, fabsf(w[i]));
  amp_fp8_begin(ctx);
  amp_tensor *y = amp_module_forward(ctx, lin, x);
  amp_fp8_end(ctx);
  float sx = 448.0f / xa, sw = 448.0f / wa;
  int bad = 0;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) {
      float acc = 0;
      for (int kk = 0; kk < 5; kk++)
        acc = fmaf(amp_e4m3_to_f32(amp_f32_to_e4m3(xv[i * 5 + kk] * sx, 1)) * (1.0f / sx),
                   amp_e4m3_to_f32(amp_f32_to_e4m3(w[j * 5 + kk] * sw, 1)) * (1.0f / sw), acc);
      bad += f_bits(acc) != f_bits(((float *)y->data)[i * 2 + j]);
    }
  CHECK(y && bad == 0, "current-scaled linear equals the hand-quantised F32 GEMM (%d differ)", bad);
  amp_ctx_free(ctx);
}

/* ---- stochastic rounding ----------------------------------------------------- */

static void test_sr(void) {
  enum { N = 200000 };
  float *x = malloc(sizeof(float) * N);
  uint8_t *q0 = malloc(N), *q1 = malloc(N);
  const float v = 1.0f + 0.1f; /* E5M2 neighbours 1 and 1.25: P(up) = 0.4 */
  for (int i = 0; i < N; i++) x[i] = v;
  uint64_t key = amp__sr_key(42);
  amp__fp8_quant_sr(AMP_E5M2, AMP_F32, N, x, 1.0f, q0, key, 0);
  amp__fp8_quant_sr(AMP_E5M2, AMP_F32, N, x, 1.0f, q1, key, 0);
  CHECK(memcmp(q0, q1, N) == 0, "SR: the same stream gives the same bits");
  /* split in two calls at any point: element i depends on its index only */
  amp__fp8_quant_sr(AMP_E5M2, AMP_F32, 777, x, 1.0f, q1, key, 0);
  amp__fp8_quant_sr(AMP_E5M2, AMP_F32, N - 777, x + 777, 1.0f, q1 + 777, key, 777);
  CHECK(memcmp(q0, q1, N) == 0, "SR: independent of how the array is split (threads)");
  double sum = 0;
  int other = 0;
  for (int i = 0; i < N; i++) {
    float d = amp_e5m2_to_f32((amp_e5m2){q0[i]});
    other += d != 1.0f && d != 1.25f;
    sum += d;
  }
  double mean = sum / N, sigma = sqrt(0.4 * 0.6) * 0.25 / sqrt((double)N);
  CHECK(other == 0 && fabs(mean - (double)v) < 5 * sigma,
        "SR unbiased: mean %.6f vs %.6f (5σ %.2g)", mean, (double)v, 5 * sigma);
  /* a subnormal and a negative value */
  for (int i = 0; i < N; i++) x[i] = -0x1.4p-16f; /* between -2^-16 and -2^-15: P(up) = 0.25 */
  amp__fp8_quant_sr(AMP_E5M2, AMP_F32, N, x, 1.0f, q0, key, 5);
  sum = 0;
  for (int i = 0; i < N; i++) sum += amp_e5m2_to_f32((amp_e5m2){q0[i]});
  mean = sum / N, sigma = sqrt(0.25 * 0.75) * 0x1p-16 / sqrt((double)N);
  CHECK(fabs(mean - (double)x[0]) < 5 * sigma, "SR subnormal unbiased: %.3g vs %.3g", mean,
        (double)x[0]);
  float big[3] = {1e9f, -INFINITY, NAN};
  amp__fp8_quant_sr(AMP_E5M2, AMP_F32, 3, big, 1.0f, q0, key, 0);
  CHECK(q0[0] == 0x7b && q0[1] == 0xfb && (q0[2] & 0x7f) > 0x7c, "SR saturates, NaN stays NaN");
  free(x), free(q0), free(q1);
}

/* ---- threads: 1 and 2 give the same bits ---------------------------------- */

/* A linear big enough for the chunked quantisation and the parallel block
 * rows, forward and backward in FP8 with `threads`; returns a checksum-free
 * copy of y and the weight gradient in out (64·256 + 256·1024 floats). */
static void run_threads(int threads, amp_fp8_scaling sc, float *out) {
  amp_ctx_params cp = {.threads = threads};
  amp_ctx *ctx = amp_ctx_create(&cp);
  amp_rng rng;
  amp_rng_seed(&rng, 9);
  amp_module *lin = amp_nn_linear(ctx, &rng, 1024, 256, 1);
  amp_fp8_params p = amp_fp8_defaults(sc);
  p.grad_rounding = AMP_ROUND_STOCHASTIC;
  p.seed = 5;
  CHECK(amp_fp8_create(ctx, lin, &p) == AMP_OK, "create");
  for (int step = 0; step < 2; step++) {
    amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){64, 1024});
    amp_rng xr;
    amp_rng_seed(&xr, 100 + (uint64_t)step);
    for (int i = 0; i < 64 * 1024; i++) ((float *)x->data)[i] = amp_rng_uniform(&xr, -2.0f, 2.0f);
    amp_autocast_begin(ctx, AMP_BF16);
    amp_fp8_begin(ctx);
    amp_tensor *y = amp_module_forward(ctx, lin, x);
    amp_fp8_end(ctx);
    amp_tensor *l = amp_mean(ctx, amp_mul(ctx, y, y));
    amp_autocast_end(ctx);
    CHECK(l && amp_backward(ctx, l) == AMP_OK, "threads run: %s", amp_ctx_error(ctx));
    if (step == 1) {
      amp_convert(out, AMP_F32, y->data, y->dtype, 64 * 256);
      memcpy(out + 64 * 256, amp_module_param(lin, 0, NULL)->grad->data,
             sizeof(float) * 256 * 1024);
    }
    amp_ctx_step_reset(ctx);
  }
  amp_ctx_free(ctx);
}

static void test_threads(void) {
  const size_t n = 64 * 256 + 256 * 1024;
  float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
  for (int sc = 0; sc < 3; sc++) {
    run_threads(1, (amp_fp8_scaling)sc, a);
    run_threads(2, (amp_fp8_scaling)sc, b);
    CHECK(memcmp(a, b, sizeof(float) * n) == 0, "scaling %d (SR gradients): 1 and 2 threads differ",
          sc);
  }
  free(a), free(b);
}

/* ---- bad input --------------------------------------------------------------- */

static void test_bad(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_rng rng;
  amp_rng_seed(&rng, 1);
  amp_module *lin = amp_nn_linear(ctx, &rng, 4, 3, 1);
  amp_fp8_params p = amp_fp8_defaults(AMP_FP8_DELAYED);
  p.history_len = 0;
  CHECK(amp_fp8_create(ctx, lin, &p) == AMP_ERR_INVALID_ARG &&
            strstr(amp_ctx_error(ctx), "history"),
        "history 0 refused: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  p = amp_fp8_defaults((amp_fp8_scaling)7);
  CHECK(amp_fp8_create(ctx, lin, &p) == AMP_ERR_INVALID_ARG, "unknown scaling refused");
  amp_ctx_clear_error(ctx);
  CHECK(amp_fp8_begin(ctx) == AMP_ERR_STATE, "begin without a state");
  amp_ctx_clear_error(ctx);
  CHECK(amp_module_buffer_count(lin) == 0, "nothing added on failure");
  p = amp_fp8_defaults(AMP_FP8_BLOCK);
  CHECK(amp_fp8_create(ctx, lin, &p) == AMP_OK && amp_module_buffer_count(lin) == 3, "block");
  CHECK(amp_fp8_create(ctx, lin, &p) == AMP_ERR_INVALID_ARG, "a second state refused");
  amp_ctx_clear_error(ctx);
  amp_fp8_begin(ctx);
  CHECK(amp_fp8_begin(ctx) == AMP_ERR_STATE, "nested begin refused");
  amp_ctx_clear_error(ctx);
  amp_rng_seed(&rng, 2);
  amp_module *other = amp_nn_linear(ctx, &rng, 4, 3, 1);
  amp_tensor *x = amp_tensor_zeros(ctx, AMP_ARENA_STEP, AMP_F32, 2, (int64_t[]){2, 4});
  CHECK(amp_module_forward(ctx, other, x) == NULL && strstr(amp_ctx_error(ctx), "not a parameter"),
        "a weight of another model: %s", amp_ctx_error(ctx));
  amp_fp8_end(ctx);
  amp_ctx_clear_error(ctx);
  uint8_t d[4] = {0};
  float s = 1;
  amp_fp8_matrix a = {d, AMP_F32, 2, 2, 2, &s, 2, 2}, b = {d, AMP_E4M3, 2, 2, 2, &s, 0, 2};
  float c[4];
  CHECK(amp_gemm_fp8(ctx, AMP_NO_TRANS, AMP_NO_TRANS, 2, 2, 2, 1, &a, &b, 0, c, AMP_F32, 2, NULL) ==
            AMP_ERR_INVALID_ARG,
        "a descriptor with dtype f32 refused");
  a.dtype = AMP_E4M3, b.block_rows = 2;
  CHECK(amp_gemm_fp8(ctx, AMP_NO_TRANS, AMP_NO_TRANS, 2, 2, 3, 1, &a, &b, 0, c, AMP_F32, 2, NULL) ==
            AMP_ERR_INVALID_ARG,
        "shapes that do not fit refused");
  CHECK(amp_gemm_fp8(ctx, AMP_NO_TRANS, AMP_NO_TRANS, 2, 2, 2, 1, &a, &b, 0, c, AMP_F32, 2, NULL) ==
            AMP_OK,
        "a valid call");
  amp_ctx_free(ctx);
}

int main(void) {
  test_kernels(&amp__kernels_scalar);
#ifdef AMPC_HAVE_X86_SIMD
  if (amp__kernels_usable(&amp__kernels_avx2))
    test_kernels(&amp__kernels_avx2);
  else
    printf("skipped: the AVX2 FP8 kernel tests (this CPU lacks AVX2/FMA/F16C)\n");
  if (amp__kernels_usable(&amp__kernels_avx512))
    test_kernels(&amp__kernels_avx512);
  else
    printf("skipped: the AVX-512 FP8 kernel tests (this CPU lacks AVX-512F)\n");
#endif
  for (int threads = 1; threads <= 2; threads++) {
    char what[128] = "";
    amp_ctx_params sp = {.threads = threads, .no_simd = 1};
    amp_ctx *ref = amp_ctx_create(&sp), *ctxs[3];
    const amp__kernels *tables[] = {
        &amp__kernels_scalar,
#ifdef AMPC_HAVE_X86_SIMD
        &amp__kernels_avx2,
        &amp__kernels_avx512,
#endif
    };
    int nctx = 0;
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
      amp_ctx_params cp = {.threads = threads};
      ctxs[nctx] = amp_ctx_create(&cp);
      if (amp__ctx_set_kernels(ctxs[nctx], tables[i])) {
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s ", tables[i]->name);
        nctx++;
      } else {
        printf("skipped: the FP8 GEMM on the %s table (this CPU lacks it)\n", tables[i]->name);
        amp_ctx_free(ctxs[nctx]);
      }
    }
    snprintf(what + strlen(what), sizeof what - strlen(what), "tables, %d thread(s)", threads);
    test_gemm_equal(ctxs, nctx, ref, what);
    for (int i = 0; i < nctx; i++) amp_ctx_free(ctxs[i]);
    amp_ctx_free(ref);
  }
  amp_ctx *ctx = amp_ctx_create(NULL);
  test_block(ctx);
  amp_ctx_free(ctx);
  test_block_ref();
  test_delayed_current();
  test_micro_batches();
  test_linear_by_hand();
  test_sr();
  test_threads();
  test_bad();
  TEST_MAIN_END();
}
