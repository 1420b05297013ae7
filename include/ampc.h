/*
 * ampc.h — automatic mixed precision training in C.
 *
 * This is the only public header of ampc. Everything a user calls is declared
 * here and documented where it is declared. All names carry the `amp_` prefix.
 *
 * Conventions
 *  - Matrices are row-major. A matrix with leading dimension `ld` stores
 *    element (i, j) at index i*ld + j.
 *  - Functions that can fail return an `amp_status`; AMP_OK is zero. When a
 *    context is given, the first failure is also recorded on it with a message
 *    (sticky, like cairo_status): see amp_ctx_status() and amp_ctx_error().
 *  - Nothing in the library aborts, exits or prints on its own.
 *  - The library keeps no global mutable state: all state lives in an
 *    `amp_ctx`. Functions that only read a context are safe to call from
 *    several threads at once.
 */
#ifndef AMPC_H
#define AMPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AMP_VERSION_MAJOR 0
#define AMP_VERSION_MINOR 1
#define AMP_VERSION_PATCH 0

/** The library's version as a string, "MAJOR.MINOR.PATCH". */
const char *amp_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/** Result of every fallible call. AMP_OK (0) means success. */
typedef enum amp_status {
  AMP_OK = 0,
  AMP_ERR_INVALID_ARG = 1, /**< NULL buffer, zero/negative size, bad ld, ... */
  AMP_ERR_UNSUPPORTED = 2, /**< dtype or combination the call does not support */
  AMP_ERR_NOMEM = 3,       /**< an allocation failed */
  AMP_ERR_SHAPE = 4,       /**< shapes do not agree */
  AMP_ERR_IO = 5,          /**< a file could not be read or written */
  AMP_ERR_FORMAT = 6,      /**< a file or input is malformed */
  AMP_ERR_STATE = 7        /**< the call is not allowed in the current state */
} amp_status;

/** A short, static, human-readable name for a status code ("invalid argument"). */
const char *amp_status_string(amp_status s);

/* ------------------------------------------------------------------------ */
/* Number formats                                                            */
/* ------------------------------------------------------------------------ */

/** Element types. Floating types first; integer types are data/labels only. */
typedef enum amp_dtype {
  AMP_F32 = 0,  /**< IEEE binary32 */
  AMP_F16 = 1,  /**< IEEE binary16: 1/5/10, bias 15, max 65504 */
  AMP_BF16 = 2, /**< bfloat16: 1/8/7, bias 127, the top half of an F32 */
  AMP_E4M3 = 3, /**< OCP FP8 E4M3 ("FN"): bias 7, max 448, no inf, NaN S.1111.111 */
  AMP_E5M2 = 4, /**< OCP FP8 E5M2: bias 15, max 57344, IEEE-like inf/NaN */
  AMP_I32 = 5,  /**< 32-bit signed integer (labels, indices) */
  AMP_U8 = 6,   /**< 8-bit unsigned integer (raw image bytes) */
  AMP_DTYPE_COUNT = 7
} amp_dtype;

/** Size in bytes of one element of `t`; 0 for an invalid dtype. */
size_t amp_dtype_size(amp_dtype t);

/** Lower-case name of `t` ("f32", "f16", "bf16", "e4m3", "e5m2", "i32", "u8"),
 *  or "invalid". */
const char *amp_dtype_name(amp_dtype t);

/** Parses a dtype name as printed by amp_dtype_name() (also "fp32", "fp16",
 *  "float32", "float16", "bfloat16"). Returns AMP_OK and sets *out, or
 *  AMP_ERR_INVALID_ARG for an unknown name. */
amp_status amp_dtype_parse(const char *name, amp_dtype *out);

/** Non-zero when `t` is one of the floating-point formats. */
int amp_dtype_is_float(amp_dtype t);

/** An IEEE binary16 value, as its bit pattern. A distinct type so that an F16
 *  bit pattern is never confused with an integer. */
typedef struct amp_f16 {
  uint16_t bits;
} amp_f16;

/** A bfloat16 value, as its bit pattern. */
typedef struct amp_bf16 {
  uint16_t bits;
} amp_bf16;

/** An OCP FP8 E4M3 value, as its bit pattern. */
typedef struct amp_e4m3 {
  uint8_t bits;
} amp_e4m3;

/** An OCP FP8 E5M2 value, as its bit pattern. */
typedef struct amp_e5m2 {
  uint8_t bits;
} amp_e5m2;

/** F16 → F32. Exact (every F16 value is an F32 value); NaN stays NaN with its
 *  sign and payload shifted into the F32 mantissa. */
float amp_f16_to_f32(amp_f16 h);

/** F32 → F16, round to nearest, ties to even. Values from 65520 up become inf;
 *  NaN stays a (quiet) NaN with its sign. */
amp_f16 amp_f32_to_f16(float f);

/** BF16 → F32. Exact. */
float amp_bf16_to_f32(amp_bf16 h);

/** F32 → BF16, round to nearest, ties to even; NaN stays a quiet NaN with its
 *  sign. */
amp_bf16 amp_f32_to_bf16(float f);

/** E4M3 → F32. Exact; the two NaN patterns give a quiet NaN with their sign. */
float amp_e4m3_to_f32(amp_e4m3 v);

/** F32 → E4M3, round to nearest even (subnormals down to 2^-9). With
 *  `saturate` non-zero, finite values beyond ±448 and ±inf become ±448;
 *  otherwise anything that rounds beyond 448 (magnitudes above 464; 464 itself
 *  is a tie and rounds to even, 448) and ±inf becomes NaN. NaN always gives
 *  NaN, S.1111.111 with the sign kept. */
amp_e4m3 amp_f32_to_e4m3(float f, int saturate);

/** E5M2 → F32. Exact (NaN stays NaN with its sign, as for F16). */
float amp_e5m2_to_f32(amp_e5m2 v);

/** F32 → E5M2, round to nearest even (subnormals down to 2^-16). With
 *  `saturate` non-zero, finite values beyond ±57344 and ±inf become ±57344;
 *  otherwise values that round beyond 57344 (from 61440 up) become ±inf and
 *  ±inf stays ±inf. NaN gives the quiet NaN S.11111.10 (sign kept). */
amp_e5m2 amp_f32_to_e5m2(float f, int saturate);

/** Rounding modes for conversions to a narrower format. */
typedef enum amp_rounding {
  AMP_ROUND_NEAREST_EVEN = 0, /**< IEEE round to nearest, ties to even (default) */
  AMP_ROUND_STOCHASTIC = 1    /**< round the magnitude up with probability
                                   (|x| - lo)/(hi - lo), lo and hi the
                                   neighbours of x (F32 → F16/BF16 only). Exact
                                   except for F16 results below 2^-40, where
                                   it is resolved to 2^-64. Finite values may
                                   round up to inf; inf and NaN convert as
                                   with round to nearest even. */
} amp_rounding;

/** Options for amp_convert_ex(). Zero-initialise for the defaults. */
typedef struct amp_convert_opts {
  amp_rounding rounding; /**< default AMP_ROUND_NEAREST_EVEN */
  int saturate;          /**< FP8 targets: clamp overflow to max finite */
  uint64_t seed;         /**< stochastic rounding: the stream's seed */
  uint64_t offset;       /**< stochastic rounding: index of element 0 in the
                              stream. Element i uses random bits that depend
                              only on (seed, offset + i), so results do not
                              depend on SIMD width or thread count. */
} amp_convert_opts;

/** Converts `n` elements from `src` (type `src_type`) to `dst` (type
 *  `dst_type`), rounding to nearest even; FP8 targets do not saturate (see
 *  amp_f32_to_e4m3()). Any pair of floating dtypes is supported (a conversion
 *  between two 16/8-bit types goes through F32, which is exact for the
 *  widening step); same-type conversion copies. `dst` and `src` must not
 *  overlap unless equal and the types have the same size. n == 0 is a no-op.
 *  Returns AMP_ERR_INVALID_ARG for NULL buffers with n > 0 and
 *  AMP_ERR_UNSUPPORTED for integer or invalid dtypes. Uses AVX2/F16C when the
 *  CPU has them (detected at run time), and gives the same bits either way.
 *  Large arrays are split across OpenMP's default number of threads. */
amp_status amp_convert(void *dst, amp_dtype dst_type, const void *src, amp_dtype src_type,
                       size_t n);

/** amp_convert() with options: stochastic rounding (F32 → F16/BF16 only;
 *  other pairs return AMP_ERR_UNSUPPORTED with it) and FP8 saturation.
 *  `opts` may be NULL for the defaults; an unknown rounding mode gives
 *  AMP_ERR_INVALID_ARG. */
amp_status amp_convert_ex(void *dst, amp_dtype dst_type, const void *src, amp_dtype src_type,
                          size_t n, const amp_convert_opts *opts);

/* ------------------------------------------------------------------------ */
/* CPU features                                                              */
/* ------------------------------------------------------------------------ */

/** Bits returned by amp_cpu_features(). */
enum {
  AMP_CPU_AVX2 = 1u << 0, /**< AVX2 */
  AMP_CPU_FMA = 1u << 1,  /**< FMA3 */
  AMP_CPU_F16C = 1u << 2  /**< F16C half-precision conversions */
};

/** The SIMD features of this CPU that this build of ampc can use (0 in a
 *  build made with -DAMPC_SIMD=OFF or on a CPU without them). Fast paths need
 *  all three bits; otherwise the scalar reference runs. Setting the
 *  environment variable AMPC_SIMD=0 before the first call forces 0. */
unsigned amp_cpu_features(void);

/* ------------------------------------------------------------------------ */
/* Context                                                                   */
/* ------------------------------------------------------------------------ */

/** The library's context: thread count, the sticky error, and the two
 *  memory arenas. Create one per training run (or per thread). */
typedef struct amp_ctx amp_ctx;

/** Options for amp_ctx_create(). Zero-initialise for the defaults. */
typedef struct amp_ctx_params {
  int threads; /**< worker threads for kernels; 0 = OpenMP's default */
  int no_simd; /**< non-zero: use the scalar reference kernels only */
} amp_ctx_params;

/** Creates a context. `params` may be NULL for the defaults. Returns NULL
 *  only when memory runs out. */
amp_ctx *amp_ctx_create(const amp_ctx_params *params);

/** Frees a context and everything allocated from its arenas. NULL is a no-op. */
void amp_ctx_free(amp_ctx *ctx);

/** The first error recorded on the context since the last clear (AMP_OK if
 *  none). */
amp_status amp_ctx_status(const amp_ctx *ctx);

/** The message of the first recorded error, or "" when there is none. The
 *  string lives as long as the context or until amp_ctx_clear_error(). */
const char *amp_ctx_error(const amp_ctx *ctx);

/** Forgets the recorded error. */
void amp_ctx_clear_error(amp_ctx *ctx);

/** The number of threads kernels use with this context (at least 1). */
int amp_ctx_threads(const amp_ctx *ctx);

/** Sets the number of threads kernels use (n <= 0: OpenMP's default). */
void amp_ctx_set_threads(amp_ctx *ctx, int n);

/* ------------------------------------------------------------------------ */
/* Arenas and tensors                                                        */
/* ------------------------------------------------------------------------ */

/** The two arenas of a context. */
typedef enum amp_arena_kind {
  AMP_ARENA_PERSISTENT = 0, /**< parameters, optimizer state: lives with ctx */
  AMP_ARENA_STEP = 1        /**< activations: freed by amp_ctx_step_reset() */
} amp_arena_kind;

/** Allocates `bytes` (64-byte aligned, uninitialised) from an arena of the
 *  context. Arenas grow in chunks as needed; there is no fixed size to
 *  guess. Returns NULL and records AMP_ERR_NOMEM when memory runs out. */
void *amp_arena_alloc(amp_ctx *ctx, amp_arena_kind kind, size_t bytes);

/** Releases everything allocated from the per-step arena since the last
 *  reset, in O(1): its chunks are kept and reused by the next step. */
void amp_ctx_step_reset(amp_ctx *ctx);

/** Bytes currently allocated from an arena (including alignment padding). */
size_t amp_arena_used_bytes(const amp_ctx *ctx, amp_arena_kind kind);

/** The largest value amp_arena_used_bytes() has had for this arena since the
 *  context was created or since amp_arena_reset_peak(). */
size_t amp_arena_peak_bytes(const amp_ctx *ctx, amp_arena_kind kind);

/** Restarts peak tracking of an arena from its current use. */
void amp_arena_reset_peak(amp_ctx *ctx, amp_arena_kind kind);

/** Most dimensions a tensor may have. */
#define AMP_MAX_DIMS 4

/** A dense, contiguous, row-major tensor. Its storage belongs to the arena it
 *  was allocated from. Fields are read-only for users. */
typedef struct amp_tensor {
  amp_dtype dtype;             /**< element type */
  int ndim;                    /**< 1..AMP_MAX_DIMS */
  int64_t shape[AMP_MAX_DIMS]; /**< sizes; entries past ndim are 1 */
  int64_t numel;               /**< product of the sizes */
  void *data;                  /**< numel * amp_dtype_size(dtype) bytes */
  amp_arena_kind arena;        /**< where data and this struct live */
} amp_tensor;

/** Allocates a tensor of the given dtype and shape (1 <= ndim <= 4, every
 *  size > 0) in an arena. Its data are uninitialised. On bad arguments
 *  returns NULL and records an error naming the problem. */
amp_tensor *amp_tensor_new(amp_ctx *ctx, amp_arena_kind arena, amp_dtype dtype, int ndim,
                           const int64_t *shape);

/** amp_tensor_new() followed by filling the data with zeros. */
amp_tensor *amp_tensor_zeros(amp_ctx *ctx, amp_arena_kind arena, amp_dtype dtype, int ndim,
                             const int64_t *shape);

/** Size of a tensor's data in bytes. */
size_t amp_tensor_bytes(const amp_tensor *t);

/** Writes a converted copy of `src` into a new tensor of dtype `dtype` in
 *  `arena` (round to nearest even). Returns NULL (and records the error) on
 *  failure; a NULL `src` gives NULL. */
amp_tensor *amp_tensor_cast(amp_ctx *ctx, amp_arena_kind arena, const amp_tensor *src,
                            amp_dtype dtype);

/* ------------------------------------------------------------------------ */
/* Kernels                                                                   */
/*                                                                           */
/* Kernels work on raw buffers. They accept F32, F16 and BF16 data, compute  */
/* in F32 registers, accumulate in F32 and round once on store. `ctx` gives  */
/* the thread count and receives the error message; it may be NULL (then one */
/* thread per OpenMP default and no message).                               */
/* ------------------------------------------------------------------------ */

/** Transposition of a GEMM operand. */
typedef enum amp_trans {
  AMP_NO_TRANS = 0, /**< op(X) = X */
  AMP_TRANS = 1     /**< op(X) = X^T */
} amp_trans;

/** Optional fused GEMM epilogue, applied after alpha·op(A)·op(B) + beta·C and
 *  before rounding to C's dtype: first the bias, then ReLU. */
typedef struct amp_epilogue {
  const void *bias;     /**< NULL, or n values added to every row of C */
  amp_dtype bias_dtype; /**< F32, F16 or BF16 */
  int relu;             /**< non-zero: C = max(C, 0) */
} amp_epilogue;

/** C = alpha·op(A)·op(B) + beta·C (then the epilogue, if any).
 *
 *  op(A) is m×k and op(B) is k×n; C is m×n. A is stored m×k (lda >= k) when
 *  `ta` is AMP_NO_TRANS and k×m (lda >= m) when it is AMP_TRANS; likewise B
 *  is k×n (ldb >= n) or n×k (ldb >= k); ldc >= n. A and B may each be F32,
 *  F16 or BF16; C may be F32, F16 or BF16. Products accumulate in F32 (16-bit
 *  operands are widened exactly), and C is rounded once, to nearest even.
 *  beta == 0 does not read C (NaN in C is ignored). k == 0 gives beta·C.
 *
 *  Work is split across threads over blocks of M and N, never K, so the
 *  result is bit-identical for any thread count. Returns AMP_ERR_INVALID_ARG
 *  for m or n < 1, k < 0, NULL buffers or bad leading dimensions, and
 *  AMP_ERR_UNSUPPORTED for other dtypes. */
amp_status amp_gemm(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t m, int64_t n, int64_t k,
                    float alpha, const void *a, amp_dtype a_type, int64_t lda, const void *b,
                    amp_dtype b_type, int64_t ldb, float beta, void *c, amp_dtype c_type,
                    int64_t ldc, const amp_epilogue *epilogue);

/* Elementwise kernels. Every buffer holds n elements of dtype `dt` (F32, F16
 * or BF16). The output may be the same buffer as an input (in place). They
 * return AMP_ERR_INVALID_ARG for n == 0 or NULL buffers and
 * AMP_ERR_UNSUPPORTED for other dtypes. */

/** y = a + b. */
amp_status amp_vec_add(amp_ctx *ctx, amp_dtype dt, size_t n, const void *a, const void *b, void *y);

/** y = a · b. */
amp_status amp_vec_mul(amp_ctx *ctx, amp_dtype dt, size_t n, const void *a, const void *b, void *y);

/** y = s · x. */
amp_status amp_vec_scale(amp_ctx *ctx, amp_dtype dt, size_t n, float s, const void *x, void *y);

/** y = max(x, 0). NaN and -0 pass through unchanged. */
amp_status amp_vec_relu(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, void *y);

/** dx = dy where x > 0, else 0 (the ReLU derivative times dy). */
amp_status amp_vec_relu_backward(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x,
                                 const void *dy, void *dx);

/** y = GELU(x) = x·Φ(x) with the exact (erf) form, as PyTorch's default. */
amp_status amp_vec_gelu(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, void *y);

/** dx = dy · GELU'(x), GELU'(x) = Φ(x) + x·φ(x). */
amp_status amp_vec_gelu_backward(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x,
                                 const void *dy, void *dx);

/** Unscales gradients in place and detects non-finite values in one pass:
 *  g[i] *= inv_scale, and *found_inf is set to 1 if any g[i] (before or after
 *  the multiply) is inf or NaN, else 0; a finite value that the multiply, or
 *  rounding to dt, takes to inf counts too. inv_scale == 1 skips the multiply
 *  (g is not written). */
amp_status amp_vec_unscale_check(amp_ctx *ctx, amp_dtype dt, size_t n, void *g, float inv_scale,
                                 int *found_inf);

/* Reductions (F32 accumulation; the result is an F32 value). Sums use a
 * fixed order (chunks of 32768 elements, 32 interleaved partial sums per
 * chunk, chunk results added in order), so the bits do not depend on the
 * thread count or on the SIMD path; error <= n·2^-24·sum|x|. */

/** *out = sum of the n elements of x. */
amp_status amp_vec_sum(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, float *out);

/** *out = largest of the n elements of x (a quiet NaN if any is NaN). */
amp_status amp_vec_max(amp_ctx *ctx, amp_dtype dt, size_t n, const void *x, float *out);

/** Row reductions over a rows×cols matrix x (row stride `cols`):
 *  out[r] = sum of row r (F32), bit-identical to amp_vec_sum() of that row. */
amp_status amp_sum_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                        float *out);

/** Column sums of a rows×cols matrix: out[c] (+)= sum over rows of x[r][c]
 *  (F32). With accumulate non-zero the sums are added to out (bias
 *  gradients accumulate this way). Each column adds its rows in order. */
amp_status amp_sum_cols(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                        float *out, int accumulate);

/** Softmax of each row of a rows×cols matrix: y = exp(x - max) / sum, with
 *  max and sum computed in F32. x and y have dtype dt (may be the same). */
amp_status amp_softmax_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols, const void *x,
                            void *y);

/** Log-softmax of each row: y = x - max - log(sum(exp(x - max))). */
amp_status amp_log_softmax_rows(amp_ctx *ctx, amp_dtype dt, int64_t rows, int64_t cols,
                                const void *x, void *y);

/** Geometry of a 2-D convolution over one image of c×h×w (CHW). */
typedef struct amp_conv_geom {
  int64_t c, h, w;            /**< input channels, height, width */
  int64_t kh, kw;             /**< kernel height, width */
  int64_t stride_h, stride_w; /**< strides (>= 1) */
  int64_t pad_h, pad_w;       /**< zero padding on each side (>= 0) */
} amp_conv_geom;

/** Output height and width of a convolution; 0 in both when the geometry is
 *  invalid. */
void amp_conv_out_size(const amp_conv_geom *g, int64_t *out_h, int64_t *out_w);

/** im2col: writes col, a (c·kh·kw) × (out_h·out_w) matrix, from img (c×h×w),
 *  padding with zeros. Both have dtype dt. */
amp_status amp_im2col(amp_ctx *ctx, amp_dtype dt, const amp_conv_geom *g, const void *img,
                      void *col);

/** col2im: the adjoint of im2col. Adds each entry of col (dtype dt) into its
 *  pixel of img, an F32 c×h×w buffer (the caller zeroes it first when
 *  needed), so gradients accumulate in F32. */
amp_status amp_col2im(amp_ctx *ctx, amp_dtype dt, const amp_conv_geom *g, const void *col,
                      float *img);

#ifdef __cplusplus
}
#endif

#endif /* AMPC_H */
