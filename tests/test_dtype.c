/* Number formats: element helpers against independent references, round
 * trips of every 8/16-bit pattern, SIMD == scalar, the dtype traits table,
 * amp_convert's dispatch and errors, and stochastic rounding. */
#include "check.h"
#include "dtype_ref.h"

#include "ampc.h"
#include "dtype/convert_internal.h"
#include "dtype/dtype_inline.h"
#include "dtype/dtype_traits.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x243f6a8885a308d3u;
static uint32_t rnd32(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545f4914f6cdd1du) >> 32);
}

/* The element helper of each format, as bits. */
static uint32_t conv(const ref_fmt *F, float f, int sat) {
  if (F == &REF_F16) return amp_f32_to_f16(f).bits;
  if (F == &REF_BF16) return amp_f32_to_bf16(f).bits;
  if (F == &REF_E4M3) return amp_f32_to_e4m3(f, sat).bits;
  return amp_f32_to_e5m2(f, sat).bits;
}
static float widen(const ref_fmt *F, uint32_t c) {
  if (F == &REF_F16) return amp_f16_to_f32((amp_f16){(uint16_t)c});
  if (F == &REF_BF16) return amp_bf16_to_f32((amp_bf16){(uint16_t)c});
  if (F == &REF_E4M3) return amp_e4m3_to_f32((amp_e4m3){(uint8_t)c});
  return amp_e5m2_to_f32((amp_e5m2){(uint8_t)c});
}
static ref_fmt *const FMTS[4] = {&REF_F16, &REF_BF16, &REF_E4M3, &REF_E5M2};

/* One input against both references, for each saturate mode. */
static void check_one(const ref_fmt *F, float f) {
  for (int sat = 0; sat < 2; sat++) {
    if (sat && F->bits == 16) break;
    uint32_t got = conv(F, f, sat), want = ref_enum(F, f, sat), want2 = ref_dbl(F, f, sat);
    CHECK(got == want, "%s sat=%d x=%a (0x%08x): got 0x%x want 0x%x", F->name, sat, (double)f,
          ref_f32_bits(f), got, want);
    CHECK(want2 == want, "%s refs disagree on %a: 0x%x vs 0x%x", F->name, (double)f, want2, want);
  }
}

static void test_round_trips(void) {
  for (int k = 0; k < 4; k++) {
    const ref_fmt *F = FMTS[k];
    const uint32_t count = 1u << F->bits, smask = 1u << (F->bits - 1);
    uint32_t bad = 0, badval = 0;
    for (uint32_t c = 0; c < count; c++) {
      uint32_t mag = c & ~smask;
      float w = widen(F, c);
      int is_nan = F->inf_code ? mag > F->inf_code : mag == 0x7f;
      if (is_nan) {
        uint32_t back = conv(F, w, 0), bmag = back & ~smask;
        int back_nan = F->inf_code ? bmag > F->inf_code : bmag == 0x7f;
        if (!isnan(w) || !back_nan || (back & smask) != (c & smask) || !signbit(w) != !(c & smask))
          bad++;
        continue;
      }
      /* Widening is exact: the value matches the format's definition. */
      double v = mag == F->inf_code && F->inf_code ? INFINITY : ref_decode(F, mag);
      if ((double)fabsf(w) != v || !signbit(w) != !(c & smask)) badval++;
      for (int sat = 0; sat < 2; sat++) {
        int sat_inf = sat && F->bits == 8 && F->inf_code && mag == F->inf_code; /* becomes ±max */
        if (conv(F, w, sat) != (sat_inf ? (c & smask) | F->max_code : c)) bad++;
      }
    }
    CHECK(bad == 0 && badval == 0, "%s round trip: %u bad, %u wrong values", F->name, bad, badval);
  }
}

static void test_edges(void) {
  static const float specials[] = {
      0.0f,       -0.0f,   INFINITY,         -INFINITY,  65520.0f, 65504.0f, 65519.996f, 65536.0f,
      448.0f,     464.0f,  480.0f,           57344.0f,   61440.0f, 0x1p-24f, 0x1p-25f,   0x1p-26f,
      0x1.8p-25f, 0x1p-9f, 0x1p-10f,         0x1.8p-10f, 0x1p-16f, 0x1p-17f, 0x1p-133f,  0x1p-134f,
      0x1p-149f,  FLT_MAX, 0x1.fffffep-127f, 0x1p-126f,  1.0f,     3.0e38f};
  for (int k = 0; k < 4; k++)
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++) {
      check_one(FMTS[k], specials[i]);
      check_one(FMTS[k], -specials[i]);
      check_one(FMTS[k], nextafterf(specials[i], 0));
      check_one(FMTS[k], nextafterf(specials[i], INFINITY));
    }
  CHECK(amp_f32_to_f16(65520.0f).bits == 0x7c00, "65520 -> inf");
  CHECK(amp_f32_to_f16(nextafterf(65520.0f, 0)).bits == 0x7bff, "65519.996 -> 65504");
  CHECK(amp_f32_to_e4m3(464.0f, 0).bits == 0x7e, "464 ties to even 448");
  CHECK(amp_f32_to_e4m3(nextafterf(464.0f, 1e9f), 0).bits == 0x7f, "above 464 -> NaN");
  CHECK(amp_f32_to_e4m3(-1e9f, 1).bits == 0xfe, "saturate -448");
  CHECK(amp_f32_to_e4m3(-INFINITY, 0).bits == 0xff, "-inf -> NaN");
  CHECK(amp_f32_to_e5m2(61440.0f, 0).bits == 0x7c, "61440 -> inf");
  CHECK(amp_f32_to_e5m2(-INFINITY, 1).bits == 0xfb, "-inf saturates");
  CHECK(amp_f32_to_e5m2(INFINITY, 0).bits == 0x7c, "inf stays inf");
  /* NaN payloads: quiet, sign kept. */
  static const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xffbfffffu, 0x7fa02000u, 0xffc00001u};
  for (size_t i = 0; i < 5; i++)
    for (int k = 0; k < 4; k++) check_one(FMTS[k], ref_bits_f32(nans[i]));
  /* Every value, midpoint and midpoint ± 1 F32 ulp of each format. */
  for (int k = 0; k < 4; k++) {
    const ref_fmt *F = FMTS[k];
    for (uint32_t c = 0; c <= F->max_code; c++) {
      float v = (float)F->tab[c], mid = (float)((F->tab[c] + F->tab[c + 1]) / 2);
      float xs[5] = {v, mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), nextafterf(v, 0)};
      for (int j = 0; j < 5; j++) {
        check_one(F, xs[j]);
        check_one(F, -xs[j]);
      }
    }
  }
}

static void test_random(void) {
  for (int i = 0; i < 3000000; i++) {
    float f = ref_bits_f32(rnd32());
    check_one(FMTS[i & 3], f);
    /* And values in the formats' ranges. */
    float g = ref_bits_f32((rnd32() & 0x87ffffffu) | 0x30000000u);
    check_one(FMTS[(i >> 2) & 3], g);
  }
}

/* The fast kernel table's conversions == the scalar table's, with tails,
 * odd lengths, unaligned pointers (F16 and BF16 here, then every dtype
 * whose entries differ between the tables). */
static void test_simd(void) {
  const amp__kernels *fast = amp__kernels_native(), *ref = &amp__kernels_scalar;
  if (fast == ref) {
    printf("test_dtype: only the scalar kernel table here; SIMD == scalar is skipped\n");
    return;
  }
  const size_t N = 1 << 16, M = 2000000;
  uint16_t *h = malloc(N * 2 + 64), *h2 = malloc(M * 2 + 64), *h3 = malloc(M * 2 + 64);
  float *f = malloc(M * 4 + 64), *f2 = malloc(M * 4 + 64);
  for (size_t i = 0; i < N; i++) h[i] = (uint16_t)i;
  for (size_t i = 0; i < M; i++) f[i] = ref_bits_f32(rnd32());
  for (size_t i = 0; i < N; i++) f[i] = ref_bits_f32((uint32_t)i << 16 | (rnd32() & 0xffffu));
  static const size_t lens[] = {1, 7, 8, 9, 15, 16, 17, 33, 257, 1023};
  for (int dt = AMP_F16; dt <= AMP_BF16; dt++) {
    const char *nm = amp_dtype_name((amp_dtype)dt);
    ref->to_f32[dt](f2, h, N);
    fast->to_f32[dt](f2 + N, h, N);
    CHECK(memcmp(f2, f2 + N, N * 4) == 0, "%s->f32 all patterns", nm);
    for (int nt = 0; nt < 2; nt++) {
      ref->from_f32[dt](h2, f, M, 0);
      fast->from_f32[dt](h3, f, M, nt ? AMP__CVT_NT : 0);
      CHECK(memcmp(h2, h3, M * 2) == 0, "f32->%s random, nt=%d", nm, nt);
    }
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
      for (size_t off = 0; off < 4; off++)
        for (int nt = 0; nt < 2; nt++) {
          size_t n = lens[li];
          const float *src = f + 3 + off;
          uint16_t *d1 = h2 + 1 + off, *d2 = h3 + 1 + off;
          memset(h3, 0xab, 2200);
          ref->from_f32[dt](d1, src, n, 0);
          fast->from_f32[dt](d2, src, n, nt ? AMP__CVT_NT : 0);
          CHECK(memcmp(d1, d2, n * 2) == 0 && d2[n] == 0xabab, "%s tail n=%zu off=%zu", nm, n, off);
          float *g1 = f2 + 1 + off, *g2 = f2 + 1200 + off;
          ref->to_f32[dt](g1, h + 5 + off, n);
          fast->to_f32[dt](g2, h + 5 + off, n);
          CHECK(memcmp(g1, g2, n * 4) == 0, "%s->f32 tail n=%zu off=%zu", nm, n, off);
        }
  }
  free(h), free(h2), free(h3), free(f), free(f2);
}

/* Every row of the dtype traits table agrees with the public functions and
 * with the conversions: names parse back, sizes match, floating formats
 * convert and others do not, and the two non-finite thresholds are exact
 * (the threshold is non-finite, the pattern just below it is finite). */
static int finite_as(amp_dtype dt, uint32_t bits) { /* a stored pattern, widened */
  float v;
  unsigned char b[4];
  memcpy(b, &bits, 4); /* little-endian: the low bytes are the pattern */
  return amp_convert(&v, AMP_F32, b, dt, 1) == AMP_OK && isfinite(v);
}
static int rounds_finite(amp_dtype dt, uint32_t f32_bits) {
  float x = ref_bits_f32(f32_bits);
  uint32_t out = 0;
  return amp_convert(&out, dt, &x, AMP_F32, 1) == AMP_OK && finite_as(dt, out);
}
static void test_traits(void) {
  for (int i = 0; i <= AMP_DTYPE_COUNT; i++) {
    const amp__dtype_traits *t = amp__dtype(i);
    amp_dtype back = AMP_DTYPE_COUNT;
    CHECK(strcmp(amp_dtype_name((amp_dtype)i), t->name) == 0, "name %d", i);
    CHECK(amp_dtype_size((amp_dtype)i) == t->size, "size %d", i);
    CHECK(amp_dtype_is_float((amp_dtype)i) == t->is_float, "is_float %d", i);
    CHECK(!t->is_compute || t->is_float, "compute but not float %d", i);
    if (i == AMP_DTYPE_COUNT) {
      CHECK(t->size == 0 && strcmp(t->name, "invalid") == 0, "sentinel row");
      continue;
    }
    CHECK(amp_dtype_parse(t->name, &back) == AMP_OK && (int)back == i, "parse %s", t->name);
    CHECK(t->st_name && t->size >= 1, "row %s", t->name);
    float one = 1.0f;
    uint32_t out = 0;
    CHECK((amp_convert(&out, (amp_dtype)i, &one, AMP_F32, 1) == AMP_OK) == t->is_float,
          "%s converts iff float", t->name);
    if (!t->is_float) continue;
    const uint32_t sign = 1u << (8 * t->size - 1);
    CHECK(!finite_as((amp_dtype)i, t->inf_bits) && finite_as((amp_dtype)i, t->inf_bits - 1) &&
              !finite_as((amp_dtype)i, t->inf_bits | sign),
          "%s inf_bits", t->name);
    CHECK(!rounds_finite((amp_dtype)i, t->overflow_f32) &&
              rounds_finite((amp_dtype)i, t->overflow_f32 - 1) &&
              !rounds_finite((amp_dtype)i, t->overflow_f32 | 0x80000000u) &&
              rounds_finite((amp_dtype)i, (t->overflow_f32 - 1) | 0x80000000u),
          "%s overflow_f32", t->name);
  }
  CHECK(amp__dtype(-1)->size == 0 && amp__dtype(99)->size == 0, "out of range rows");
  /* The compute dtypes are the ones the kernels instantiate their loops for
   * (the dtype switches of eltwise_avx2.c, gemm_avx2.c's packing) and the
   * kernel tests list: a new one must be added there too. */
  unsigned compute = 0;
  for (int i = 0; i < AMP_DTYPE_COUNT; i++) compute |= (unsigned)amp__dtype(i)->is_compute << i;
  CHECK(compute == (1u << AMP_F32 | 1u << AMP_F16 | 1u << AMP_BF16),
        "compute dtypes changed (0x%x): update the kernels' dtype switches and tests", compute);
}

static void test_errors(void) {
  float f[4] = {1, 2, 3, 4};
  uint16_t h[4];
  amp_convert_opts sr = {AMP_ROUND_STOCHASTIC, 0, 1, 0};
  CHECK(amp_convert(NULL, AMP_F16, f, AMP_F32, 4) == AMP_ERR_INVALID_ARG, "NULL dst");
  CHECK(amp_convert(h, AMP_F16, NULL, AMP_F32, 4) == AMP_ERR_INVALID_ARG, "NULL src");
  CHECK(amp_convert(NULL, AMP_F16, NULL, AMP_F32, 0) == AMP_OK, "n == 0");
  CHECK(amp_convert(h, AMP_I32, f, AMP_F32, 4) == AMP_ERR_UNSUPPORTED, "i32");
  CHECK(amp_convert(h, AMP_F16, f, AMP_U8, 4) == AMP_ERR_UNSUPPORTED, "u8");
  CHECK(amp_convert(h, (amp_dtype)99, f, AMP_F32, 4) == AMP_ERR_UNSUPPORTED, "bad dtype");
  CHECK(amp_convert(h, (amp_dtype)-1, f, AMP_F32, 4) == AMP_ERR_UNSUPPORTED, "negative dtype");
  CHECK(amp_convert_ex(h, AMP_E4M3, f, AMP_F32, 4, &sr) == AMP_ERR_UNSUPPORTED, "SR to e4m3");
  CHECK(amp_convert_ex(f, AMP_F32, h, AMP_F16, 4, &sr) == AMP_ERR_UNSUPPORTED, "SR widening");
  CHECK(amp_convert_ex(f, AMP_F32, f, AMP_F32, 4, &sr) == AMP_ERR_UNSUPPORTED, "SR f32->f32");
  CHECK(amp_convert_ex(h, AMP_F16, f, AMP_F32, 4, &sr) == AMP_OK, "SR f32->f16");
  /* Same type copies, overlapping too. */
  CHECK(amp_convert(f + 1, AMP_F32, f, AMP_F32, 3) == AMP_OK && f[3] == 3 && f[1] == 1, "memmove");
}

/* Every pair of float dtypes equals widening to F32 and rounding by hand;
 * large n takes the threaded path; scalar and SIMD dispatch agree. */
static void test_pairs(void) {
  const amp_dtype ts[5] = {AMP_F32, AMP_F16, AMP_BF16, AMP_E4M3, AMP_E5M2};
  const size_t sizes[2] = {1001, (1u << 20) + 4099};
  const size_t n = sizes[1];
  float *f = malloc(n * 4);
  unsigned char *src = malloc(n * 4), *d1 = malloc(n * 4), *d2 = malloc(n * 4);
  for (size_t i = 0; i < n; i++) f[i] = ref_bits_f32((rnd32() & 0x87ffffffu) | 0x30000000u);
  for (int sat = 0; sat < 2; sat++)
    for (int a = 0; a < 5; a++)
      for (int b = 0; b < 5; b++)
        for (int si = 0; si < 2; si++) {
          size_t m = sizes[si];
          amp_convert_opts o = {AMP_ROUND_NEAREST_EVEN, sat, 0, 0};
          CHECK(amp_convert(src, ts[a], f, AMP_F32, m) == AMP_OK, "make src");
          CHECK(amp_convert_ex(d1, ts[b], src, ts[a], m, &o) == AMP_OK, "convert");
          CHECK(amp__convert_impl(d2, ts[b], src, ts[a], m, &o, &amp__kernels_scalar, 0) == AMP_OK,
                "scalar");
          size_t bs = amp_dtype_size(ts[b]);
          CHECK(memcmp(d1, d2, m * bs) == 0, "simd != scalar %d->%d n=%zu", a, b, m);
          size_t bad = 0;
          for (size_t i = 0; i < m; i++) {
            float x = ts[a] == AMP_F32    ? ((float *)src)[i]
                      : ts[a] == AMP_F16  ? widen(&REF_F16, ((uint16_t *)src)[i])
                      : ts[a] == AMP_BF16 ? widen(&REF_BF16, ((uint16_t *)src)[i])
                      : ts[a] == AMP_E4M3 ? widen(&REF_E4M3, src[i])
                                          : widen(&REF_E5M2, src[i]);
            uint32_t want = 0, got = 0;
            switch (ts[b]) {
            case AMP_F32: want = ref_f32_bits(x), got = ((uint32_t *)d1)[i]; break;
            case AMP_F16: want = conv(&REF_F16, x, 0), got = ((uint16_t *)d1)[i]; break;
            case AMP_BF16: want = conv(&REF_BF16, x, 0), got = ((uint16_t *)d1)[i]; break;
            case AMP_E4M3: want = conv(&REF_E4M3, x, sat), got = d1[i]; break;
            default: want = conv(&REF_E5M2, x, sat), got = d1[i]; break;
            }
            bad += want != got;
          }
          CHECK(bad == 0, "pair %s->%s sat=%d n=%zu: %zu bad", amp_dtype_name(ts[a]),
                amp_dtype_name(ts[b]), sat, m, bad);
        }
  free(f), free(src), free(d1), free(d2);
}

/* Probability of rounding up is exactly the discarded fraction: count over
 * every value of the random bits that matter. */
static void sr_exact(float x, int f16, int width) {
  uint16_t lo = f16 ? amp__f32_to_f16_sr(x, 0) : amp__f32_to_bf16_sr(x, 0);
  const ref_fmt *F = f16 ? &REF_F16 : &REF_BF16;
  double vlo = F->tab[lo & 0x7fff], vhi = F->tab[(lo & 0x7fff) + 1];
  uint32_t ups = 0;
  for (uint64_t k = 0; k < (UINT64_C(1) << width); k++) {
    uint64_t r = k << (64 - width);
    uint16_t v = f16 ? amp__f32_to_f16_sr(x, r) : amp__f32_to_bf16_sr(x, r);
    CHECK(v == lo || v == lo + 1, "SR neighbour of %a", (double)x);
    ups += v != lo;
  }
  double p = (fabs((double)x) - vlo) / (vhi - vlo);
  CHECK(ups == (uint32_t)(p * (double)(UINT64_C(1) << width)), "SR exact %a: %u ups, p=%g",
        (double)x, ups, p);
}

static void test_stochastic(void) {
  sr_exact(1.0f + 0x1.234p-12f, 1, 13);
  sr_exact(-3.3f, 1, 13);
  sr_exact(65519.0f, 1, 13);      /* rounds up to inf */
  sr_exact(0x1.2345p-15f, 1, 14); /* subnormal F16: 14 discarded bits */
  sr_exact(1.3f, 0, 16);
  sr_exact(-0x1.23456p-130f, 0, 16);
  CHECK(amp__f32_to_f16_sr(INFINITY, ~0ull) == 0x7c00, "inf stays inf");
  CHECK(amp__f32_to_bf16_sr(-INFINITY, ~0ull) == 0xff80, "-inf stays -inf");
  CHECK(amp__f32_to_f16_sr(ref_bits_f32(0xff800001u), 123) ==
            amp__f32_to_f16(ref_bits_f32(0xff800001u)),
        "NaN as RNE");
  CHECK(amp__f32_to_f16_sr(0x1p-60f, 0) == 0, "tiny rounds down with r = 0");

  /* Means converge to the value; same seed, same bits; chunking and threads
   * do not matter. */
  const size_t n = (1u << 21) + 77;
  float *x = malloc(n * 4);
  uint16_t *a = malloc(n * 2), *b = malloc(n * 2);
  const float vals[4] = {1.0f + 0x1.4cccccp-11f, -7.77e-6f, 0x1.3p-22f, 3.14159f};
  for (int t = 0; t < 2; t++) {
    amp_dtype dt = t ? AMP_BF16 : AMP_F16;
    for (int k = 0; k < 4; k++) {
      for (size_t i = 0; i < n; i++) x[i] = vals[k];
      amp_convert_opts o = {AMP_ROUND_STOCHASTIC, 0, 42 + (uint64_t)k, 1000};
      CHECK(amp_convert_ex(a, dt, x, AMP_F32, n, &o) == AMP_OK, "SR convert");
      double sum = 0;
      for (size_t i = 0; i < n; i++) sum += t ? amp__bf16_to_f32(a[i]) : amp__f16_to_f32(a[i]);
      const ref_fmt *F = t ? &REF_BF16 : &REF_F16;
      uint16_t lo = t ? amp__f32_to_bf16_sr(vals[k], 0) : amp__f32_to_f16_sr(vals[k], 0);
      double ulp = F->tab[(lo & 0x7fff) + 1] - F->tab[lo & 0x7fff];
      double err = fabs(sum / (double)n - (double)vals[k]);
      CHECK(err < 5 * 0.5 * ulp / sqrt((double)n), "SR mean %s %a: err %g ulp %g",
            amp_dtype_name(dt), (double)vals[k], err, ulp);
      /* Pieces with matching offsets give the same bits as one call. */
      size_t cuts[4] = {0, 13, 70001, n};
      for (int c = 0; c < 3; c++) {
        amp_convert_opts oc = o;
        oc.offset = o.offset + cuts[c];
        amp_convert_ex(b + cuts[c], dt, x + cuts[c], AMP_F32, cuts[c + 1] - cuts[c], &oc);
      }
      CHECK(memcmp(a, b, n * 2) == 0, "SR chunking %s", amp_dtype_name(dt));
      CHECK(amp__convert_impl(b, dt, x, AMP_F32, n, &o, &amp__kernels_scalar, 0) == AMP_OK &&
                memcmp(a, b, n * 2) == 0,
            "SR scalar dispatch");
      o.seed++;
      amp_convert_ex(b, dt, x, AMP_F32, n, &o);
      if (lo != (t ? amp__f32_to_bf16_sr(vals[k], ~0ull) : amp__f32_to_f16_sr(vals[k], ~0ull)))
        CHECK(memcmp(a, b, n * 2) != 0, "another seed, other bits");
    }
  }
  /* Random inputs: same seed reproduces; results are a neighbour of the RNE
   * value's interval. */
  for (size_t i = 0; i < n; i++) x[i] = ref_bits_f32(rnd32());
  amp_convert_opts o = {AMP_ROUND_STOCHASTIC, 0, 7, 0};
  amp_convert_ex(a, AMP_F16, x, AMP_F32, n, &o);
  amp_convert_ex(b, AMP_F16, x, AMP_F32, n, &o);
  CHECK(memcmp(a, b, n * 2) == 0, "SR reproducible");
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(x[i])) {
      bad += a[i] != amp__f32_to_f16(x[i]);
      continue;
    }
    float v = amp__f16_to_f32(a[i]);
    uint16_t down = amp__f32_to_f16_sr(x[i], 0);
    bad += a[i] != down && a[i] != down + 1;
    bad += !(fabsf(v) >= fabsf(amp__f16_to_f32(down)));
  }
  CHECK(bad == 0, "SR random neighbours: %zu bad", bad);
  free(x), free(a), free(b);
}

int main(void) {
  ref_init();
  test_round_trips();
  test_edges();
  test_random();
  test_simd();
  test_traits();
  test_errors();
  test_pairs();
  test_stochastic();
  TEST_MAIN_END();
}
