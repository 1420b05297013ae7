/* Elementwise ops that keep their input's dtype: relu, mul_scalar, gelu,
 * dropout. */
#include "../dtype/dtype_inline.h"
#include "op_util.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* m = the bits x[i] > 0, eight to a byte, from the values' bits: an F32 is
 * > 0 when its bits are 1..0x7f800000 (+inf included, NaN and the
 * negatives not), a BF16 1..0x7f80, an F16 1..0x7c00. */
#define RELU_MASK(T, TOP, i0)                                                                      \
  for (size_t j = (i0) / 8; j < (cnt + 7) / 8; j++) {                                              \
    unsigned b = 0;                                                                                \
    for (size_t k = 0; k < 8 && 8 * j + k < cnt; k++)                                              \
      b |= (unsigned)((T)(((const T *)x)[8 * j + k] - 1u) < (T)(TOP)) << k;                        \
    m[j] = (uint8_t)b;                                                                             \
  }

/* The same test on the lanes of 64-bit words (four 16-bit or two 32-bit
 * lanes, little-endian; wide: 32-bit), eight elements per mask byte: a
 * lane's top bit in LANE_BAD says sign | (|x| > top) | (|x| == 0) (|x| the
 * lane without its sign bit; the additions never carry into the next lane),
 * and a multiplication or shift gathers the lanes' (inverted) top bits into
 * adjacent bits. Returns the elements done. */
#define LANE_BAD(v, one, sign, top)                                                                \
  (((v) | (((v) & ((sign) - (one))) + ((sign) - (one) - (top) * (one))) |                          \
    ~(((v) & ((sign) - (one))) + ((sign) - (one)))) &                                              \
   (sign))
static size_t relu_mask8(int wide, uint64_t top, size_t cnt, const void *x, uint8_t *m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const char *p = x;
  if (!wide) { /* four 16-bit lanes a word, two words a byte */
    const uint64_t one = 0x0001000100010001ull, sign = one << 15;
    const uint64_t gather = 0x0001000200040008ull; /* bit 16k to bit 48 + k */
    for (size_t j = 0; j < cnt / 8; j++, p += 16) {
      uint64_t v0, v1;
      memcpy(&v0, p, 8);
      memcpy(&v1, p + 8, 8);
      const uint64_t ok0 = (~LANE_BAD(v0, one, sign, top) & sign) >> 15; /* bit 16k: lane k */
      const uint64_t ok1 = (~LANE_BAD(v1, one, sign, top) & sign) >> 15;
      m[j] = (uint8_t)((ok0 * gather) >> 48 & 15) | (uint8_t)(((ok1 * gather) >> 48 & 15) << 4);
    }
  } else { /* two 32-bit lanes a word, four words a byte */
    const uint64_t one = 0x0000000100000001ull, sign = one << 31;
    for (size_t j = 0; j < cnt / 8; j++, p += 32) {
      unsigned b = 0;
      for (unsigned q = 0; q < 4; q++) {
        uint64_t v;
        memcpy(&v, p + 8 * q, 8);
        const uint64_t ok = (~LANE_BAD(v, one, sign, top) & sign) >> 31; /* bits 0 and 32 */
        b |= (unsigned)((ok | ok >> 31) & 3) << (2 * q);
      }
      m[j] = (uint8_t)b;
    }
  }
  return cnt & ~(size_t)7;
#else
  (void)wide, (void)top, (void)x, (void)m;
  return 0;
#endif
}
#undef LANE_BAD

static void relu_mask(amp_dtype dt, size_t cnt, const void *x, uint8_t *m) {
  if (dt == AMP_F32) {
    size_t i0 = relu_mask8(1, 0x7f800000u, cnt, x, m);
    RELU_MASK(uint32_t, 0x7f800000u, i0)
  } else if (dt == AMP_BF16) {
    size_t i0 = relu_mask8(0, 0x7f80u, cnt, x, m);
    RELU_MASK(uint16_t, 0x7f80u, i0)
  } else {
    size_t i0 = relu_mask8(0, 0x7c00u, cnt, x, m);
    RELU_MASK(uint16_t, 0x7c00u, i0)
  }
}
#undef RELU_MASK

/* Below this many elements relu's mask and backward run on one thread. */
#define RELU_PAR_MIN 65536

/* This thread's share [*lo, *hi) of cnt elements in whole 64-element blocks
 * (inside an OpenMP region; everything on one thread outside one). */
static void relu_share(size_t cnt, size_t *lo, size_t *hi) {
  const size_t nt = (size_t)omp_get_num_threads(), me = (size_t)omp_get_thread_num();
  const size_t blocks = (cnt + 63) / 64;
  *lo = blocks * me / nt * 64;
  *hi = blocks * (me + 1) / nt * 64;
  if (*hi > cnt) *hi = cnt;
  if (*lo > cnt) *lo = cnt;
}

/* ReLU saves for backward one bit per element, x > 0 (the exact test of
 * amp_vec_relu_backward), not x: 1/32 of an F32 input, 1/16 of a 16-bit one
 * (see amp_tape_saved()). */
amp_tensor *amp_relu(amp_ctx *ctx, amp_tensor *x) {
  amp_tensor *c[1];
  amp_tensor *y = amp__unary_begin(ctx, AMP__OP_RELU, x, c);
  if (!y || amp_vec_relu(ctx, y->dtype, (size_t)y->numel, c[0]->data, y->data) != AMP_OK)
    return NULL;
  amp__node *n = amp__record(ctx, AMP__OP_RELU, y, 1, c);
  if (!n) return y;
  size_t cnt = (size_t)y->numel;
  int64_t nb = (int64_t)((cnt + 7) / 8);
  n->saved = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_U8, 1, &nb);
  if (!n->saved) return NULL;
  const size_t es = amp_dtype_size(c[0]->dtype);
  const char *xd = c[0]->data;
  uint8_t *md = n->saved->data;
  /* Elements are independent: each thread takes whole 64-element blocks
     (whole mask bytes), the same bits for any thread count. */
#pragma omp parallel num_threads(amp__threads(ctx)) if (cnt >= RELU_PAR_MIN)
  {
    size_t lo, hi;
    relu_share(cnt, &lo, &hi);
    if (hi > lo) relu_mask(c[0]->dtype, hi - lo, xd + lo * es, md + lo / 8);
  }
  return y;
}

/* Lane masks of four 16-bit (two 32-bit) lanes of a little-endian 64-bit
 * word: lane k all ones where bit k of the index is set. */
#define L16(n)                                                                                     \
  (((n)&1 ? 0xffffull : 0) | ((n)&2 ? 0xffffull << 16 : 0) | ((n)&4 ? 0xffffull << 32 : 0) |       \
   ((n)&8 ? 0xffffull << 48 : 0))
#define L32(n) (((n)&1 ? 0xffffffffull : 0) | ((n)&2 ? 0xffffffffull << 32 : 0))
static const uint64_t lanes16[16] = {L16(0),  L16(1),  L16(2),  L16(3), L16(4),  L16(5),
                                     L16(6),  L16(7),  L16(8),  L16(9), L16(10), L16(11),
                                     L16(12), L16(13), L16(14), L16(15)};
static const uint64_t lanes32[4] = {L32(0), L32(1), L32(2), L32(3)};
#undef L16
#undef L32

/* dy's bits ANDed with all ones or all zeros by the mask's bits: eight
 * elements (one mask byte, 16 or 32 bytes of dy) per iteration, branch free
 * (the mask is data: a branch per element mispredicts about half the time).
 * Returns the elements done. */
static size_t relu_bwd8(size_t es, size_t cnt, const uint8_t *m, const char *g, char *dx) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  for (size_t j = 0; j < cnt / 8; j++) {
    const unsigned b = m[j];
    /* One 64-bit word at a time (a wider copy through the stack stalls on
       store forwarding). */
    for (unsigned q = 0; q < es; q++) {
      uint64_t w;
      memcpy(&w, g + (8 * j * es + 8 * q), 8);
      w &= es == 2 ? lanes16[(b >> (4 * q)) & 15] : lanes32[(b >> (2 * q)) & 3];
      memcpy(dx + (8 * j * es + 8 * q), &w, 8);
    }
  }
  return cnt & ~(size_t)7;
#else
  (void)es, (void)cnt, (void)m, (void)g, (void)dx;
  return 0;
#endif
}

/* dx[0, cnt) from mask m and dy g (cnt elements of es bytes). */
static void relu_bwd_range(size_t es, size_t cnt, const uint8_t *m, const char *g, char *dx) {
  size_t i0 = es == 4 ? relu_bwd8(4, cnt, m, g, dx) : relu_bwd8(2, cnt, m, g, dx);
#define RELU_BWD(T)                                                                                \
  for (size_t i = i0; i < cnt; i++)                                                                \
    ((T *)dx)[i] = ((m[i >> 3] >> (i & 7)) & 1) ? ((const T *)g)[i] : (T)0;
  if (es == 4)
    RELU_BWD(uint32_t)
  else
    RELU_BWD(uint16_t)
#undef RELU_BWD
}

/* dx = dy where the saved bit is set, else +0: bit for bit what
 * amp_vec_relu_backward(x, dy) gives (dy's value passes unchanged). */
amp_status amp__relu_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  void *dx = amp__grad_begin(ctx, x, g->dtype);
  if (!dx) return amp_ctx_status(ctx);
  const uint8_t *m = n->saved->data;
  const size_t cnt = (size_t)g->numel, es = amp_dtype_size(g->dtype);
  const char *gd = g->data;
#pragma omp parallel num_threads(amp__threads(ctx)) if (cnt >= RELU_PAR_MIN)
  {
    size_t lo, hi;
    relu_share(cnt, &lo, &hi);
    if (hi > lo) relu_bwd_range(es, hi - lo, m + lo / 8, gd + lo * es, (char *)dx + lo * es);
  }
  return amp__grad_done(ctx, x, dx, g->dtype);
}

amp_tensor *amp_mul_scalar(amp_ctx *ctx, amp_tensor *x, float s) {
  amp_tensor *c[1];
  amp_tensor *y = amp__unary_begin(ctx, AMP__OP_MUL_SCALAR, x, c);
  if (!y || amp_vec_scale(ctx, y->dtype, (size_t)y->numel, s, c[0]->data, y->data) != AMP_OK)
    return NULL;
  amp__node *n = amp__record(ctx, AMP__OP_MUL_SCALAR, y, 1, c);
  if (n) n->farg[0] = s;
  return y;
}

amp_status amp__mul_scalar_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  void *dx = amp__grad_begin(ctx, x, g->dtype);
  if (!dx) return amp_ctx_status(ctx);
  amp_status s = amp_vec_scale(ctx, g->dtype, (size_t)g->numel, n->farg[0], g->data, dx);
  return s != AMP_OK ? s : amp__grad_done(ctx, x, dx, g->dtype);
}

amp_tensor *amp_gelu(amp_ctx *ctx, amp_tensor *x) {
  amp_tensor *c[1];
  amp_tensor *y = amp__unary_begin(ctx, AMP__OP_GELU, x, c);
  if (!y || amp_vec_gelu(ctx, y->dtype, (size_t)y->numel, c[0]->data, y->data) != AMP_OK)
    return NULL;
  amp__record(ctx, AMP__OP_GELU, y, 1, c);
  return y;
}

amp_status amp__gelu_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  size_t cnt = (size_t)g->numel;
  amp_dtype gdt = amp__grad_dtype(x);
  const void *xd = x->data, *gd = g->data;
  if (gdt != g->dtype) {
    /* A 16-bit input whose gradient goes to an F32 leaf: run the kernel in
       F32 so that dx is not rounded to 16 bits before it is accumulated. */
    gdt = AMP_F32;
    float *xf = amp_arena_alloc(ctx, AMP_ARENA_STEP, cnt * sizeof(float));
    float *gf = amp_arena_alloc(ctx, AMP_ARENA_STEP, cnt * sizeof(float));
    if (!xf || !gf) return amp_ctx_status(ctx);
    if (amp__convert(ctx, xf, AMP_F32, xd, x->dtype, cnt, NULL) != AMP_OK ||
        amp__convert(ctx, gf, AMP_F32, gd, g->dtype, cnt, NULL) != AMP_OK)
      return amp__error(ctx, AMP_ERR_UNSUPPORTED, "gelu: backward conversion failed");
    xd = xf;
    gd = gf;
  }
  void *dx = amp__grad_begin(ctx, x, gdt);
  if (!dx) return amp_ctx_status(ctx);
  amp_status s = amp_vec_gelu_backward(ctx, gdt, cnt, xd, gd, dx);
  return s != AMP_OK ? s : amp__grad_done(ctx, x, dx, gdt);
}

/* Uniform in [0, 1) from (seed, i) only: splitmix64 of the i-th state of a
 * stream started at seed, so the mask does not depend on threads or on how
 * the tensor is traversed. */
static double dropout_u(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

/* y = x·scale where kept (u >= p), else 0, computed in F32. */
static void dropout_apply(amp_dtype dt, size_t n, const void *x, void *y, double p, float scale,
                          uint64_t seed) {
  for (size_t i = 0; i < n; i++)
    amp__store_f32(y, dt, i, dropout_u(seed, i) >= p ? amp__load_f32(x, dt, i) * scale : 0.0f);
}

amp_tensor *amp_dropout(amp_ctx *ctx, amp_tensor *x, float p, uint64_t seed) {
  if (!ctx) return NULL;
  if (x && !(p >= 0.0f && p < 1.0f)) {
    char sx[64];
    amp__error(ctx, AMP_ERR_INVALID_ARG, "dropout: p = %g is not in [0,1) (input %s)", (double)p,
               amp__shape_str(x, sx, sizeof sx));
    return NULL;
  }
  if (x && p == 0.0f) /* nothing dropped: x itself (no copy, no node) */
    return amp__check_float(ctx, AMP__OP_DROPOUT, x) ? x : NULL;
  amp_tensor *c[1];
  amp_tensor *y = amp__unary_begin(ctx, AMP__OP_DROPOUT, x, c);
  if (!y) return NULL;
  float scale = 1.0f / (1.0f - p);
  dropout_apply(y->dtype, (size_t)y->numel, c[0]->data, y->data, (double)p, scale, seed);
  amp__node *n = amp__record(ctx, AMP__OP_DROPOUT, y, 1, c);
  if (n) {
    n->farg[0] = p;
    n->farg[1] = scale;
    memcpy(&n->iarg[0], &seed, sizeof seed);
  }
  return y;
}

amp_status amp__dropout_backward(amp_ctx *ctx, amp__node *n, const amp_tensor *g) {
  amp_tensor *x = n->in[0];
  uint64_t seed;
  memcpy(&seed, &n->iarg[0], sizeof seed);
  amp_dtype gdt = amp__grad_dtype(x);
  void *dx = amp__grad_begin(ctx, x, gdt);
  if (!dx) return amp_ctx_status(ctx);
  size_t cnt = (size_t)g->numel;
  double p = (double)n->farg[0];
  float scale = n->farg[1];
  for (size_t i = 0; i < cnt; i++) /* the mask is recomputed from the seed */
    amp__store_f32(dx, gdt, i,
                   dropout_u(seed, i) >= p ? amp__load_f32(g->data, g->dtype, i) * scale : 0.0f);
  return amp__grad_done(ctx, x, dx, gdt);
}
