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
/** @defgroup status_codes Status codes
 *  @{ */

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

/** @} */

/* ------------------------------------------------------------------------ */
/* Number formats                                                            */
/* ------------------------------------------------------------------------ */
/** @defgroup number_formats Number formats
 *  @{ */

/** Element types. Floating types first; integer types are data/labels only. */
typedef enum amp_dtype {
  AMP_F32 = 0,  /**< IEEE binary32 */
  AMP_F16 = 1,  /**< IEEE binary16: 1/5/10, bias 15, max 65504 */
  AMP_BF16 = 2, /**< bfloat16: 1/8/7, bias 127, the top half of an F32 */
  AMP_E4M3 = 3, /**< OCP FP8 E4M3 ("FN"): bias 7, max 448, no inf, NaN S.1111.111 */
  AMP_E5M2 = 4, /**< OCP FP8 E5M2: bias 15, max 57344, IEEE-like inf/NaN */
  AMP_I32 = 5,  /**< 32-bit signed integer (labels, indices) */
  AMP_U8 = 6,   /**< 8-bit unsigned integer (raw image bytes, quantized activations) */
  AMP_I8 = 7,   /**< 8-bit signed integer (quantized weights of an INT8 export) */
  AMP_DTYPE_COUNT = 8
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
  uint16_t bits; /**< the bit pattern */
} amp_f16;

/** A bfloat16 value, as its bit pattern. */
typedef struct amp_bf16 {
  uint16_t bits; /**< the bit pattern */
} amp_bf16;

/** An OCP FP8 E4M3 value, as its bit pattern. */
typedef struct amp_e4m3 {
  uint8_t bits; /**< the bit pattern */
} amp_e4m3;

/** An OCP FP8 E5M2 value, as its bit pattern. */
typedef struct amp_e5m2 {
  uint8_t bits; /**< the bit pattern */
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

/** What a floating format can hold, as F32 values (all exact in F32), and
 *  where round-to-nearest-even conversion from F32 puts a magnitude |x|:
 *  |x| <= zero_max rounds to zero (half the smallest subnormal: that tie
 *  goes to the even neighbour, zero); zero_max < |x| < normal_min_round
 *  rounds to a subnormal; |x| >= overflow_min rounds to inf (or NaN for
 *  E4M3, which has no inf); anything else to a normal value. For F32 itself
 *  zero_max is 0 and overflow_min is +inf. */
typedef struct amp_dtype_range {
  float min_subnormal;    /**< the smallest positive value */
  float min_normal;       /**< the smallest positive normal value */
  float max;              /**< the largest finite value */
  float zero_max;         /**< |x| <= this rounds to zero */
  float normal_min_round; /**< |x| >= this rounds to a normal value (or inf) */
  float overflow_min;     /**< |x| >= this rounds to inf/NaN */
} amp_dtype_range;

/** The range of the floating dtype `t` (from the dtype traits table and the
 *  conversions, never spelled per format). Returns AMP_OK, or
 *  AMP_ERR_UNSUPPORTED for an integer or invalid dtype (*out untouched). */
amp_status amp_dtype_range_of(amp_dtype t, amp_dtype_range *out);

/** @} */

/* ------------------------------------------------------------------------ */
/* CPU features                                                              */
/* ------------------------------------------------------------------------ */
/** @defgroup cpu_features CPU features
 *  @{ */

/** Bits returned by amp_cpu_features(). */
enum {
  AMP_CPU_AVX2 = 1u << 0,       /**< AVX2 */
  AMP_CPU_FMA = 1u << 1,        /**< FMA3 */
  AMP_CPU_F16C = 1u << 2,       /**< F16C half-precision conversions */
  AMP_CPU_AVX512F = 1u << 3,    /**< AVX-512 Foundation (and OS support for ZMM state) */
  AMP_CPU_AVX512BF16 = 1u << 4, /**< AVX512-BF16 (vdpbf16ps, vcvtne2ps2bf16) */
  AMP_CPU_AVX512VNNI = 1u << 5  /**< AVX512-VNNI and AVX512-BW (vpdpbusd: the INT8 GEMM) */
};

/** The SIMD features of this CPU that this build of ampc can use (0 in a
 *  build made with -DAMPC_SIMD=OFF or on a CPU without them). The AVX2 fast
 *  paths need the first three bits, the AVX-512 GEMM also AMP_CPU_AVX512F,
 *  the BF16 dot-product GEMM also AMP_CPU_AVX512BF16; otherwise the next best
 *  path (in the end the scalar reference) runs. Setting the
 *  environment variable AMPC_SIMD=0 before the first call forces 0. */
unsigned amp_cpu_features(void);

/** @} */

/* ------------------------------------------------------------------------ */
/* Context                                                                   */
/* ------------------------------------------------------------------------ */
/** @defgroup context Context
 *  @{ */

/** The library's context: thread count, the sticky error, the two memory
 *  arenas, and a scratch buffer that kernels reuse between calls (GEMM's
 *  packed panels; it grows to the largest call's need and is freed with the
 *  context). Create one per training run (or per thread). */
typedef struct amp_ctx amp_ctx;

/** Options for amp_ctx_create(). Zero-initialise for the defaults. */
typedef struct amp_ctx_params {
  int threads; /**< worker threads for kernels; 0 = OpenMP's default */
  int no_simd; /**< non-zero: use the scalar reference kernels only */
  /** BF16 × BF16 GEMMs with the AVX512-BF16 dot-product kernel (vdpbf16ps):
   *  0 = the default (on where the CPU has AVX512-BF16, unless the
   *  environment variable AMPC_BF16_DOT=0 is set), > 0 = on where the CPU
   *  has it, < 0 = off. This is the only path whose bits differ from the
   *  scalar reference (products summed in pairs, subnormals flushed: see
   *  amp_gemm); off, BF16 GEMMs give the reference's bits. */
  int bf16_dot;
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

/** Writes a description of the kernels the context uses as JSON members
 *  (no braces) into buf (NUL-terminated, truncated to size): the kernel
 *  table, the GEMM micro-tile, the cache sizes the CPU reports, the GEMM
 *  blocking derived from them and whether the BF16 dot-product GEMM is on.
 *  Returns the length it needed (like snprintf). For benchmarks and logs. */
int amp_ctx_describe(const amp_ctx *ctx, char *buf, size_t size);

/** Sets the number of threads kernels use (n <= 0: OpenMP's default). */
void amp_ctx_set_threads(amp_ctx *ctx, int n);

/** @} */

/* ------------------------------------------------------------------------ */
/* Arenas and tensors                                                        */
/* ------------------------------------------------------------------------ */
/** @defgroup arenas_and_tensors Arenas and tensors
 *  @{ */

/** The two arenas of a context. */
typedef enum amp_arena_kind {
  AMP_ARENA_PERSISTENT = 0, /**< modules, parameter structs, optimizer state:
                                 lives with ctx (parameter values and
                                 gradients live in the parameter store, see
                                 amp_param_new()) */
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
  amp_arena_kind arena;        /**< where this struct lives, and its data
                                    unless it is a view (amp_reshape,
                                    amp_flatten share their input's data) */
  /* Autograd (see "Autograd" below). */
  int requires_grad;       /**< gradients flow to this tensor */
  struct amp_tensor *grad; /**< its gradient after amp_backward(), or NULL:
                                F32 for leaves (parameters), the tensor's own
                                dtype for intermediate results */
  /** Internal links of autograd, autocast and the parameter store: not part
   *  of the API (use amp_param_work()); the library reads them through
   *  accessors in src/core/internal.h. */
  struct amp__tensor_links {
    struct amp_tensor *work;   /**< a leaf's 16-bit working copy, or NULL */
    struct amp_tensor *master; /**< a 16-bit copy of a leaf: that leaf */
    struct amp__node *node;    /**< the tape entry that produced it */
    int grad_check;            /**< a leaf's gradient: unchecked, finite or
                                    not (the GEMM that last wrote all of it) */
  } internal_;                 /**< internal: not part of the API */
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

/** @} */

/* ------------------------------------------------------------------------ */
/* Kernels                                                                   */
/*                                                                           */
/* Kernels work on raw buffers. They accept F32, F16 and BF16 data, compute  */
/* in F32 registers, accumulate in F32 and round once on store. `ctx` gives  */
/* the thread count and receives the error message; it may be NULL (then one */
/* thread per OpenMP default and no message).                               */
/* ------------------------------------------------------------------------ */
/** @defgroup kernels Kernels
 *  @{ */

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
  int *nonfinite;       /**< NULL, or, when the call succeeds, set to 1 if
                             any element it wrote to C is inf or NaN (after
                             the rounding to C's dtype), else 0 (left as is
                             on an error): the loss scaler's check,
                             done while C's tile is still in L1 (each tile
                             is read back once; the values do not change) */
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
 *  result is bit-identical for any thread count and any cache blocking
 *  (AMPC_GEMM_BLOCKING=MC,KC,NC in the environment overrides the blocking
 *  derived from the CPU's caches, for experiments).
 *
 *  One exception to "one FMA chain per element, the scalar reference's
 *  bits": with A and B both BF16 on a CPU with AVX512-BF16 (and
 *  amp_ctx_params.bf16_dot not off, AMPC_BF16_DOT not 0), products are
 *  summed in pairs by vdpbf16ps: each output is a chain over k in pairs,
 *  each pair's exact products added with round-to-nearest, subnormal inputs,
 *  products and sums flushed to zero. The products of BF16 values are exact
 *  in F32, so the sum over k has at most k roundings: its error is within
 *  gamma_k·sum|a·b| + 2^-126·(k + sum(|a| + |b|)) of the exact sum
 *  (gamma_k = k·u/(1-k·u), u = 2^-24; the last term covers the flushed
 *  subnormals), like any F32 summation. It is still independent of the
 *  thread count and blocking, but its bits differ from the FMA chain's.
 *
 *  Returns AMP_ERR_INVALID_ARG
 *  for m or n < 1, k < 0, NULL buffers or bad leading dimensions, and
 *  AMP_ERR_UNSUPPORTED for other dtypes. */
amp_status amp_gemm(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t m, int64_t n, int64_t k,
                    float alpha, const void *a, amp_dtype a_type, int64_t lda, const void *b,
                    amp_dtype b_type, int64_t ldb, float beta, void *c, amp_dtype c_type,
                    int64_t ldc, const amp_epilogue *epilogue);

/** A quantised GEMM operand: an FP8 matrix with its scales. Element (i, j)
 *  (row-major as stored, 0 <= i < rows, 0 <= j < cols) stands for
 *
 *      to_f32(data[i·ld + j]) · scale_inv[(i / block_rows)·nbc + j / block_cols]
 *
 *  (one F32 multiplication; nbc = ceil(cols / block_cols)), so the scales
 *  form a ceil(rows / block_rows) × nbc row-major grid. A per-tensor scale
 *  is block_rows = rows, block_cols = cols; DeepSeek-V3 tiles are 1 × 128
 *  (activations, gradients) and 128 × 128 (weights). Blocks at the right
 *  and bottom edges may be partial (784 = 6·128 + 16 columns: the last
 *  column block has 16 columns and its own scale); nothing is padded.
 *  `scale_inv` is the dequantisation multiplier, 1/scale where the value
 *  was quantised as fp8(x · scale) (Transformer Engine's convention). */
typedef struct amp_fp8_matrix {
  const uint8_t *data;    /**< rows × cols FP8 codes, row stride ld */
  amp_dtype dtype;        /**< AMP_E4M3 or AMP_E5M2 */
  int64_t rows;           /**< rows as stored */
  int64_t cols;           /**< columns as stored */
  int64_t ld;             /**< row stride in elements (ld >= cols) */
  const float *scale_inv; /**< the scale grid (finite values) */
  int64_t block_rows;     /**< >= 1 */
  int64_t block_cols;     /**< >= 1 */
} amp_fp8_matrix;

/** amp_gemm() of quantised operands: C = alpha·op(A)·op(B) + beta·C, with A
 *  and B given as FP8 matrices with scales (amp_fp8_matrix; as stored, A
 *  is m×k or, transposed, k×m, and likewise B). Each element is widened
 *  exactly to F32 and multiplied by its block's scale_inv (one rounding,
 *  the same multiplication as the descriptor's definition) as the GEMM
 *  packs it (the scalar reference table: into an F32 copy first), and the
 *  F32 GEMM runs on those values: the result equals, bit for bit,
 *  amp_gemm() with F32 operands holding the dequantised values, for any
 *  thread count and kernel table (FP32 accumulation; there is no FP8
 *  arithmetic on CPUs).
 *  Errors as amp_gemm(), and AMP_ERR_INVALID_ARG for a descriptor whose
 *  dtype is not FP8, whose blocks are < 1, whose shape does not fit m, n,
 *  k, or whose data or scales are NULL; AMP_ERR_NOMEM. */
amp_status amp_gemm_fp8(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t m, int64_t n, int64_t k,
                        float alpha, const amp_fp8_matrix *a, const amp_fp8_matrix *b, float beta,
                        void *c, amp_dtype c_type, int64_t ldc, const amp_epilogue *epilogue);

/** Quantises rows × cols values of `src` (F32 or BF16, row stride ld) to
 *  `fmt` (AMP_E4M3 or AMP_E5M2) in blocks of block_rows × block_cols, each
 *  with the power-of-two scale of DeepSeek-V3 / Transformer Engine's block
 *  recipe: scale = fmt_max / amax rounded down to a power of two (amax the
 *  block's max |x|; 1 when amax is 0 or not finite), q = fmt(x · scale)
 *  rounded to nearest even and saturating. Writes the codes to dst
 *  (rows × cols, packed) and the dequantisation multipliers 1/scale to
 *  scale_inv (the block grid of amp_fp8_matrix), and fills *out to describe
 *  them. AMP_ERR_INVALID_ARG for bad sizes, dtypes or NULL buffers. */
amp_status amp_fp8_quantize_blocks(amp_ctx *ctx, amp_dtype fmt, const void *src, amp_dtype src_type,
                                   int64_t rows, int64_t cols, int64_t ld, int64_t block_rows,
                                   int64_t block_cols, uint8_t *dst, float *scale_inv,
                                   amp_fp8_matrix *out);

/** INT8 GEMM: C = A·Bᵀ with A an m × k matrix of u8 (row stride lda), B an
 *  n × k matrix of s8 (row stride ldb: a Linear weight [out, in]) and C an
 *  m × n matrix of int32 (row stride ldc), overwritten. The sums are exact
 *  (k <= 65536, so that no partial sum of 255 · 128 products leaves int32):
 *  the scalar reference, the AVX2 path (int16 widening and vpmaddwd) and the
 *  AVX-512 path (vpdpbusd, where the CPU has AVX512-VNNI) give the same bits
 *  for any thread count. Returns AMP_ERR_INVALID_ARG for m or n < 1, k
 *  outside [0, 65536], NULL buffers or small leading dimensions. */
amp_status amp_gemm_u8s8(amp_ctx *ctx, int64_t m, int64_t n, int64_t k, const uint8_t *a,
                         int64_t lda, const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc);

/** Quantizes n F32 values to u8 with PyTorch's rule (fake_quantize's):
 *  q = clamp(nearbyint(x · (1/scale)) + zero_point, 0, 255) in F32 arithmetic,
 *  rounding half to even; NaN gives 0. AMP_ERR_INVALID_ARG for a scale that
 *  is not finite and > 0, a zero point outside [0, 255] or NULL buffers. */
amp_status amp_quantize_u8(amp_ctx *ctx, size_t n, const float *x, float scale, int32_t zero_point,
                           uint8_t *q);

/** Quantizes a rows × cols F32 matrix to s8, row r with scale[r] and zero
 *  point 0 (symmetric, per output channel): q = clamp(nearbyint(w ·
 *  (1/scale[r])), -128, 127). AMP_ERR_INVALID_ARG for a scale that is not
 *  finite and > 0 (naming the row), bad sizes or NULL buffers. */
amp_status amp_quantize_s8_rows(amp_ctx *ctx, int64_t rows, int64_t cols, const float *w,
                                const float *scale, int8_t *q);

/** An INT8 Linear layer on F32 input: x (m × k) is quantized to u8 with
 *  (x_scale, x_zp) by amp_quantize_u8(), multiplied by the s8 weight w
 *  (n × k, per-row scales w_scale[n]) with amp_gemm_u8s8() (INT32
 *  accumulation), and requantized to F32: y[i, j] = (float)(acc[i, j] -
 *  x_zp · Σ_p w[j, p]) · (x_scale · w_scale[j]) + bias[j] (bias may be
 *  NULL), the integer part exact, then one rounding, one multiply and one
 *  add. y is m × n. AMP_ERR_INVALID_ARG for bad sizes, NULL buffers, a
 *  scale that is not finite and > 0, or x_zp outside [0, 255];
 *  AMP_ERR_NOMEM. */
amp_status amp_qlinear(amp_ctx *ctx, int64_t m, int64_t n, int64_t k, const float *x, float x_scale,
                       int32_t x_zp, const int8_t *w, const float *w_scale, const float *bias,
                       float *y);

/** The quantization parameters of PyTorch's MinMax observers for quint8
 *  [0, 255], affine (torch.per_tensor_affine): with lo = min(min_val, 0),
 *  hi = max(max_val, 0), scale = max((hi - lo) / 255, FLT_EPSILON) and
 *  zero_point = clamp(0 - round_half_even(lo / scale), 0, 255). */
void amp_qparams_affine_u8(float min_val, float max_val, float *scale, int32_t *zero_point);

/** The scale of PyTorch's symmetric qint8 [-128, 127] observers
 *  (torch.per_channel_symmetric, zero point 0): max(max(-min(min_val, 0),
 *  max(max_val, 0)) / 127.5, FLT_EPSILON). */
float amp_qparams_symmetric_s8(float min_val, float max_val);

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
  int64_t c;        /**< input channels */
  int64_t h;        /**< input height */
  int64_t w;        /**< input width */
  int64_t kh;       /**< kernel height */
  int64_t kw;       /**< kernel width */
  int64_t stride_h; /**< vertical stride (>= 1) */
  int64_t stride_w; /**< horizontal stride (>= 1) */
  int64_t pad_h;    /**< zero padding above and below (>= 0) */
  int64_t pad_w;    /**< zero padding left and right (>= 0) */
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

/** @} */

/* ------------------------------------------------------------------------ */
/* Autograd                                                                  */
/*                                                                           */
/* Ops (below) record themselves on the context's tape, in execution order,  */
/* when any input requires a gradient and gradient mode is on.               */
/* amp_backward() walks the tape in reverse. Gradients of intermediate       */
/* results are kept in the dtype the forward op produced them in (F16        */
/* activations get F16 gradients) and live in the per-step arena. Leaves     */
/* (parameters, inputs marked with amp_tensor_set_requires_grad()) get an    */
/* F32 gradient that accumulates across backward calls until zeroed; a       */
/* 16-bit copy of a leaf sends its gradient straight to the leaf's F32       */
/* gradient (weight gradients are accumulated with beta = 1 GEMMs).          */
/* amp_ctx_step_reset() clears the tape together with the step arena.        */
/* ------------------------------------------------------------------------ */
/** @defgroup autograd Autograd
 *  @{ */

/** Makes `t` a leaf that receives gradients (on != 0), giving it a zeroed
 *  F32 gradient tensor of the same shape in the same arena, or stops it
 *  receiving them (on == 0; the gradient is kept). Only floating tensors can
 *  require gradients. Returns AMP_OK or an error (also recorded on ctx). */
amp_status amp_tensor_set_requires_grad(amp_ctx *ctx, amp_tensor *t, int on);

/** A new leaf parameter that requires gradients, its data and gradient
 *  zeroed: an F32 tensor whose values and gradient are carved from the
 *  context's parameter store, one contiguous buffer per role (FP32 masters,
 *  FP32 gradients, later the 16-bit working copies), so that parameters
 *  created one after another lie back to back and an optimizer works on
 *  them in place. The struct lives in the persistent arena; the store is
 *  freed with the context. NULL (error recorded) on bad arguments. */
amp_tensor *amp_param_new(amp_ctx *ctx, int ndim, const int64_t *shape);

/** A parameter's 16-bit working copy (dtype F16 or BF16; autocast uses it
 *  instead of casting, the optimizer rewrites it after each step), or NULL
 *  when it has none (no optimizer with a 16-bit work_dtype, or not a
 *  parameter). Its data lie in the parameter store's 16-bit slab. */
const amp_tensor *amp_param_work(const amp_tensor *p);

/** Sets a leaf's gradient to zero (no-op when it has none). */
void amp_tensor_zero_grad(amp_tensor *t);

/** Back-propagates from `loss`, which must have one element: its gradient is
 *  seeded with 1 (a loss scaled by amp_scaler_scale() thus back-propagates
 *  the scale) and the tape is walked in reverse. The tape is kept, so a
 *  second call accumulates the leaves' gradients again (intermediate
 *  gradients are recomputed). Returns the first error recorded on ctx (by a
 *  forward op or during backward), or AMP_ERR_INVALID_ARG for a NULL or
 *  non-scalar loss, or AMP_ERR_STATE when `loss` was not produced on this
 *  context's current tape and does not require a gradient. */
amp_status amp_backward(amp_ctx *ctx, amp_tensor *loss);

/** Opens a no-grad region (nestable): ops record nothing and their results
 *  do not require gradients, as in evaluation. */
void amp_no_grad_begin(amp_ctx *ctx);

/** Closes the innermost no-grad region. Unbalanced calls record
 *  AMP_ERR_STATE. */
void amp_no_grad_end(amp_ctx *ctx);

/** Non-zero when ops currently record gradients (no no-grad region open). */
int amp_grad_enabled(const amp_ctx *ctx);

/** Number of entries on the tape (ops recorded since the last step reset). */
size_t amp_tape_length(const amp_ctx *ctx);

/** What the tape holds for backward (amp_tape_saved()). */
typedef struct amp_tape_saved_stats {
  size_t total_bytes;      /**< distinct bytes the recorded ops keep for backward */
  size_t activation_bytes; /**< of which not parameters: activations, masks,
                                statistics, labels, their FP8 copies */
  size_t param_bytes;      /**< of which parameters or their 16-bit / FP8 copies */
} amp_tape_saved_stats;

/** Measures the memory saved for backward by the ops on the tape: for each
 *  recorded op, the buffers its backward will read (the inputs whose values
 *  enter a needed gradient, its saved tensor: relu's 1-bit mask,
 *  log-softmax's result, norm statistics, ...; for an FP8 linear its FP8
 *  operands with their scales instead of x and w), not those it only needs
 *  the shape of. Each buffer counts once however many ops keep it, a view
 *  by the bytes of its storage it covers. Call it after the forward (the
 *  figure stays the same through amp_backward(), until the step reset):
 *  with one forward per step this is the step's peak of saved-for-backward
 *  memory. Returns AMP_OK, or an error (out of memory, NULL argument). */
amp_status amp_tape_saved(amp_ctx *ctx, amp_tape_saved_stats *out);

/** @} */

/* ------------------------------------------------------------------------ */
/* Autocast                                                                  */
/*                                                                           */
/* Inside a region, each op casts its floating inputs according to its       */
/* category in the op table (amp_op_category_of(); the list below mirrors   */
/* src/ops/ops.def, which is authoritative):                                 */
/*   AMP_CAT_LOWER   matmul, linear, conv2d, bmm: to the region's dtype      */
/*                   (F16 or BF16; products still accumulate in F32);        */
/*   AMP_CAT_FP32    softmax, log_softmax, cross_entropy, mse, exp, log,     */
/*                   sum, mean: to F32 (cross_entropy reads 16-bit logits    */
/*                   into F32 itself, without an F32 copy);                  */
/*   AMP_CAT_NORM    layer_norm, batch_norm2d: no cast; statistics in F32,   */
/*                   the result in the region's dtype;                       */
/*   AMP_CAT_PROMOTE add, sub, mul: the widest input dtype (each input read  */
/*                   in its own dtype, without a copy);                      */
/*   AMP_CAT_SAME    relu, gelu, dropout, reshape, flatten, max_pool2d,      */
/*                   mul_scalar, embedding: no cast.                         */
/* Integer tensors pass through. A cast of a leaf (parameter) is made once   */
/* per outermost region and reused (the cast cache), or taken from the       */
/* leaf's working copy (amp_param_work()) when it has the region's dtype.    */
/* A cast of any other tensor is an amp_cast op on the tape. Outside         */
/* autocast, ops run in their inputs' dtype; inputs of different floating    */
/* dtypes promote to the widest (F16 with BF16 gives F32).                   */
/*                                                                           */
/* The region state belongs to the context; a context (with its tape) is     */
/* used by one thread at a time, so the state is per thread of use.          */
/* ------------------------------------------------------------------------ */
/** @defgroup autocast Autocast
 *  @{ */

/** Opens an autocast region (nestable, up to 32 deep). `dt` is AMP_F16 or
 *  AMP_BF16 to enable autocast in that dtype, or AMP_F32 to open a region
 *  with autocast disabled inside an enabled one (like PyTorch's
 *  autocast(enabled=False)). Other dtypes give AMP_ERR_INVALID_ARG. */
amp_status amp_autocast_begin(amp_ctx *ctx, amp_dtype dt);

/** Closes the innermost autocast region. When the outermost one closes, the
 *  cast cache is dropped. Unbalanced calls give AMP_ERR_STATE. */
amp_status amp_autocast_end(amp_ctx *ctx);

/** The dtype lower-precision ops run in now: AMP_F16 or AMP_BF16 inside an
 *  enabled region, AMP_F32 when autocast is off. */
amp_dtype amp_autocast_dtype(const amp_ctx *ctx);

/** Autocast categories of ops (see above). */
typedef enum amp_op_category {
  AMP_CAT_LOWER = 0,   /**< run in the autocast dtype */
  AMP_CAT_FP32 = 1,    /**< run in F32 */
  AMP_CAT_PROMOTE = 2, /**< run in the widest input dtype */
  AMP_CAT_SAME = 3,    /**< run in the input's dtype */
  AMP_CAT_NORM = 4     /**< statistics in F32, the result in the autocast dtype */
} amp_op_category;

/** Number of ops in the op table. */
int amp_op_count(void);

/** Name of op `i` of the table ("linear", "softmax", ...), or NULL when i is
 *  out of range. */
const char *amp_op_name(int i);

/** Category of the op called `name`; returns -1 for an unknown name. */
int amp_op_category_of(const char *name);

/** Short name of a category ("lower", "fp32", "promote", "same"). */
const char *amp_op_category_name(amp_op_category c);

/** @} */

/* ------------------------------------------------------------------------ */
/* Ops                                                                       */
/*                                                                           */
/* Every op allocates its result in the per-step arena and returns it, or    */
/* returns NULL: when an input is NULL (an earlier failure, already          */
/* recorded), or on misuse, which records a sticky error on ctx whose message */
/* names the op and the shapes. A result has the op's compute dtype (see    */
/* Autocast: F32 for fp32-category ops inside a region, the inputs' dtype    */
/* outside). Tensors are row-major; "rows" are all                           */
/* dimensions but the last. Images are NCHW.                                 */
/* ------------------------------------------------------------------------ */
/** @defgroup ops Ops
 *  @{ */

/** [m,k] · [k,n] → [m,n]. Category lower. */
amp_tensor *amp_matmul(amp_ctx *ctx, amp_tensor *a, amp_tensor *b);

/** Batched matmul: [B,m,k] · [B,k,n] → [B,m,n]. Category lower. */
amp_tensor *amp_bmm(amp_ctx *ctx, amp_tensor *a, amp_tensor *b);

/** y = x·wᵀ + b: x [N,in], w [out,in], b [out] or NULL → [N,out]. The bias is
 *  fused into the GEMM. Category lower. */
amp_tensor *amp_linear(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b);

/** 2-D convolution (cross-correlation, as PyTorch): x [N,C,H,W], w
 *  [O,C,kh,kw], b [O] or NULL, stride and zero padding per side →
 *  [N,O,OH,OW]. im2col + GEMM. Category lower. */
amp_tensor *amp_conv2d(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b, int64_t stride_h,
                       int64_t stride_w, int64_t pad_h, int64_t pad_w);

/** Softmax over the last dimension. Category fp32. */
amp_tensor *amp_softmax(amp_ctx *ctx, amp_tensor *x);

/** Log-softmax over the last dimension. Category fp32. */
amp_tensor *amp_log_softmax(amp_ctx *ctx, amp_tensor *x);

/** Cross-entropy from logits [N,C] and I32 labels [N] (each in 0..C-1),
 *  mean over N → [1], in the compute dtype (F32 under autocast).
 *  A label out of range is an error. Category fp32; 16-bit logits are read
 *  into the F32 log-softmax directly (no F32 copy of them). */
amp_tensor *amp_cross_entropy(amp_ctx *ctx, amp_tensor *logits, amp_tensor *labels);

/** Mean squared error mean((a-b)^2) of two tensors of the same shape → [1].
 *  Category fp32. */
amp_tensor *amp_mse(amp_ctx *ctx, amp_tensor *a, amp_tensor *b);

/** Layer normalisation over the last dimension (size D): (x - mean) /
 *  sqrt(var + eps) · w + b, with the biased variance; w and b are [D] or
 *  NULL. Category norm: the row statistics in F32, the inputs read in their
 *  own dtypes, the result in the autocast dtype (else the widest input's). */
amp_tensor *amp_layer_norm(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b, float eps);

/** Elementwise e^x. Category fp32. */
amp_tensor *amp_exp(amp_ctx *ctx, amp_tensor *x);

/** Elementwise natural logarithm. Category fp32. */
amp_tensor *amp_log(amp_ctx *ctx, amp_tensor *x);

/** Sum of all elements → [1]. Category fp32. */
amp_tensor *amp_sum(amp_ctx *ctx, amp_tensor *x);

/** Mean of all elements → [1]. Category fp32. */
amp_tensor *amp_mean(amp_ctx *ctx, amp_tensor *x);

/** a + b. Shapes are equal, or b has the shape of a's last dimension ([C] or
 *  [1,C]) and is added to every row, or b has one element. Category
 *  promote. */
amp_tensor *amp_add(amp_ctx *ctx, amp_tensor *a, amp_tensor *b);

/** a - b, broadcasting b as amp_add(). Category promote. */
amp_tensor *amp_sub(amp_ctx *ctx, amp_tensor *a, amp_tensor *b);

/** a · b (elementwise), broadcasting b as amp_add(). Category promote. */
amp_tensor *amp_mul(amp_ctx *ctx, amp_tensor *a, amp_tensor *b);

/** s · x for a constant s. Category same. */
amp_tensor *amp_mul_scalar(amp_ctx *ctx, amp_tensor *x, float s);

/** max(x, 0). Category same. */
amp_tensor *amp_relu(amp_ctx *ctx, amp_tensor *x);

/** Fake quantization (quantize, then dequantize), as PyTorch's
 *  fake_quantize_per_tensor_affine (nscale == 1) or
 *  fake_quantize_per_channel_affine along axis 0 (nscale == x->shape[0],
 *  e.g. a Linear weight's output channels): q = clamp(nearbyint(x ·
 *  (1/s)) + zp, qmin, qmax) and y = (q - zp) · s, computed in F32 and stored
 *  in x's dtype. Backward is the straight-through estimator with PyTorch's
 *  mask: dy passes where nearbyint(x/s) + zp lies in [qmin, qmax], else 0.
 *  Scales must be finite and > 0, zero points in [qmin, qmax], qmin < qmax
 *  (AMP_ERR_INVALID_ARG otherwise). The arrays are copied. Category same. */
amp_tensor *amp_fake_quant(amp_ctx *ctx, amp_tensor *x, int64_t nscale, const float *scale,
                           const int32_t *zero_point, int32_t qmin, int32_t qmax);

/** GELU (erf form). Category same. */
amp_tensor *amp_gelu(amp_ctx *ctx, amp_tensor *x);

/** Inverted dropout: each element is zeroed with probability p and the rest
 *  are scaled by 1/(1-p). The mask of element i depends only on (seed, i),
 *  so it is reproducible. p in [0,1); p == 0 returns x itself. Category
 *  same. */
amp_tensor *amp_dropout(amp_ctx *ctx, amp_tensor *x, float p, uint64_t seed);

/** The same data with a new shape of equal element count (one entry may be
 *  -1: inferred). Category same. */
amp_tensor *amp_reshape(amp_ctx *ctx, amp_tensor *x, int ndim, const int64_t *shape);

/** [N, ...] → [N, product of the rest]. Category same. */
amp_tensor *amp_flatten(amp_ctx *ctx, amp_tensor *x);

/** 2-D max pooling without padding: x [N,C,H,W], window kh×kw, stride →
 *  [N,C,(H-kh)/sh+1,(W-kw)/sw+1]. The gradient goes to the first maximum of
 *  each window. Category same. */
amp_tensor *amp_max_pool2d(amp_ctx *ctx, amp_tensor *x, int64_t kh, int64_t kw, int64_t stride_h,
                           int64_t stride_w);

/** An explicit, differentiable cast to a floating dtype (round to nearest
 *  even); the gradient is cast back to x's dtype. Same dtype returns x. */
amp_tensor *amp_cast(amp_ctx *ctx, amp_tensor *x, amp_dtype dt);

/** Embedding lookup: weight [V,D], I32 indices of 1 to 3 dimensions [...]
 *  (each in 0..V-1) → [..., D] in the weight's dtype. The gradient is scatter-added
 *  into the weight's F32 gradient. Category same. */
amp_tensor *amp_embedding(amp_ctx *ctx, amp_tensor *weight, amp_tensor *indices);

/** Swaps axes dim0 and dim1 of x (a copy, contiguous in the new order):
 *  permute of two axes. Category same. */
amp_tensor *amp_transpose(amp_ctx *ctx, amp_tensor *x, int dim0, int dim1);

/** The range [start, start+len) of axis `axis` of x (a copy; len >= 1).
 *  The gradient is zero outside the range. Category same. */
amp_tensor *amp_slice(amp_ctx *ctx, amp_tensor *x, int axis, int64_t start, int64_t len);

/** Splits x along `axis` into `parts` consecutive slices of sizes[0..parts)
 *  (each >= 1, adding up to the axis's size), written to out[0..parts); each
 *  is an amp_slice(). */
amp_status amp_split(amp_ctx *ctx, amp_tensor *x, int axis, int parts, const int64_t *sizes,
                     amp_tensor **out);

/** Concatenates n tensors (1 to 4) along `axis`; their other sizes must be
 *  equal. Category promote: the inputs meet in their widest dtype. */
amp_tensor *amp_concat(amp_ctx *ctx, int n, amp_tensor *const *xs, int axis);

/** Scaled dot-product attention softmax(Q·Kᵀ/sqrt(D) [+ causal mask])·V
 *  over q, k, v [B, heads, T, D] → [B, heads, T, D]; causal: query i sees
 *  keys 0..i. Category lower: the two matrix products run in the autocast
 *  dtype (accumulating in F32); the T×T scores, the mask and the softmax are
 *  F32, and the probabilities are rounded once to the compute dtype, which
 *  P·V takes and backward keeps (B·heads·T² elements: 2 bytes each in 16
 *  bits; not fused). */
amp_tensor *amp_attention(amp_ctx *ctx, amp_tensor *q, amp_tensor *k, amp_tensor *v, int causal);

/** GELU with the tanh approximation (GPT-2's; PyTorch's
 *  gelu(approximate='tanh')): 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))).
 *  Category same. */
amp_tensor *amp_gelu_tanh(amp_ctx *ctx, amp_tensor *x);

/** Elementwise tanh. Category same. */
amp_tensor *amp_tanh(amp_ctx *ctx, amp_tensor *x);

/** 2-D batch normalisation of x [N,C,H,W] per channel, w and b [C] or NULL.
 *  training: normalise with the batch mean and biased variance (F32) and,
 *  when running_mean and running_var (F32 [C], both or neither) are given,
 *  update them as PyTorch: r = (1-momentum)·r + momentum·batch statistic,
 *  with the unbiased variance for running_var. Eval (training = 0): normalise
 *  with the running statistics (required), which are not changed. Category
 *  norm: statistics in F32, the result in the autocast dtype. */
amp_tensor *amp_batch_norm2d(amp_ctx *ctx, amp_tensor *x, amp_tensor *w, amp_tensor *b,
                             amp_tensor *running_mean, amp_tensor *running_var, int training,
                             float momentum, float eps);

/** 2-D average pooling without padding: x [N,C,H,W], window kh×kw, stride
 *  → [N,C,(H-kh)/sh+1,(W-kw)/sw+1]; the window's sum in F32 over kh·kw.
 *  Category same. */
amp_tensor *amp_avg_pool2d(amp_ctx *ctx, amp_tensor *x, int64_t kh, int64_t kw, int64_t stride_h,
                           int64_t stride_w);

/** Global average pooling: x [N,C,H,W] → [N,C,1,1] (amp_avg_pool2d with the
 *  whole plane as the window). */
amp_tensor *amp_global_avg_pool2d(amp_ctx *ctx, amp_tensor *x);

/** @} */

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */
/* ------------------------------------------------------------------------ */
/** @defgroup random_numbers Random numbers
 *  @{ */

/** A small deterministic generator (splitmix64); the same seed gives the
 *  same numbers on every machine. */
typedef struct amp_rng {
  uint64_t state; /**< the generator's state (the seed, to begin with) */
} amp_rng;

/** Seeds a generator. */
void amp_rng_seed(amp_rng *rng, uint64_t seed);

/** The next 64 random bits. */
uint64_t amp_rng_next(amp_rng *rng);

/** A float uniform in [lo, hi). */
float amp_rng_uniform(amp_rng *rng, float lo, float hi);

/** A standard normal float (Box-Muller). */
float amp_rng_normal(amp_rng *rng);

/** @} */

/* ------------------------------------------------------------------------ */
/* Modules                                                                   */
/*                                                                           */
/* Modules are built from ops and allocated in the context's persistent      */
/* arena (they live as long as the context). Parameters are F32 leaves,      */
/* initialised as PyTorch does (Kaiming-uniform weights with a = sqrt(5),    */
/* i.e. U(±1/sqrt(fan_in)); biases U(±1/sqrt(fan_in)); LayerNorm 1 and 0;    */
/* Embedding N(0,1)) from the given generator, in the order the module       */
/* declares them (weight, then bias).                                        */
/* ------------------------------------------------------------------------ */
/** @defgroup modules Modules
 *  @{ */

/** A module: a layer or a container of layers. */
typedef struct amp_module amp_module;

/** Linear(in, out), with a bias when `bias` is non-zero. */
amp_module *amp_nn_linear(amp_ctx *ctx, amp_rng *rng, int64_t in, int64_t out, int bias);

/** Linear(in, out) for quantization-aware training with INT8 inference in
 *  view (PyTorch's default QAT qconfig, see README "QAT vs mixed
 *  precision"): the same parameters (and initialisation) as
 *  amp_nn_linear(), and buffers "act_min", "act_max" [1], "weight_min",
 *  "weight_max" [out] and "observed" [1] (0 until the first training
 *  forward). In training mode a forward updates the moving-average min/max
 *  observers (averaging constant 0.01; the first batch sets them) of its
 *  input (per tensor) and its weight (per output channel), then computes
 *  linear(fake_quant(x; quint8 affine), fake_quant(W; qint8 symmetric per
 *  channel), b) with straight-through gradients into the FP32 weights. In
 *  evaluation mode the observers stay; before any observation the layer is
 *  a plain Linear. */
amp_module *amp_nn_qat_linear(amp_ctx *ctx, amp_rng *rng, int64_t in, int64_t out, int bias);

/** Conv2d(in_ch, out_ch, k×k, stride, padding), with a bias when `bias`. */
amp_module *amp_nn_conv2d(amp_ctx *ctx, amp_rng *rng, int64_t in_ch, int64_t out_ch, int64_t k,
                          int64_t stride, int64_t padding, int bias);

/** MaxPool2d(k, stride). */
amp_module *amp_nn_max_pool2d(amp_ctx *ctx, int64_t k, int64_t stride);

/** ReLU. */
amp_module *amp_nn_relu(amp_ctx *ctx);

/** GELU. */
amp_module *amp_nn_gelu(amp_ctx *ctx);

/** Dropout(p): active only in training mode; each forward call uses a new
 *  mask derived from `seed` and a call counter. */
amp_module *amp_nn_dropout(amp_ctx *ctx, float p, uint64_t seed);

/** Flatten: [N, ...] → [N, rest]. */
amp_module *amp_nn_flatten(amp_ctx *ctx);

/** LayerNorm over a last dimension of size d (weight 1, bias 0, eps). */
amp_module *amp_nn_layer_norm(amp_ctx *ctx, int64_t d, float eps);

/** Embedding(num, dim), weight N(0, 1). */
amp_module *amp_nn_embedding(amp_ctx *ctx, amp_rng *rng, int64_t num, int64_t dim);

/** Causal multi-head self-attention over x [B,T,dim] → [B,T,dim], as
 *  nanoGPT's CausalSelfAttention: a fused QKV Linear "c_attn" (dim → 3·dim,
 *  split into q, k, v, each [B,heads,T,dim/heads]), amp_attention() with the
 *  causal mask, and an output Linear "c_proj". heads must divide dim.
 *  Weights N(0, 0.02) (c_proj N(0, 0.02/sqrt(2·layers))), biases 0. */
amp_module *amp_nn_causal_self_attention(amp_ctx *ctx, amp_rng *rng, int64_t dim, int64_t heads,
                                         int64_t layers);

/** Pre-LN transformer block over [B,T,dim]: x += attn(ln_1(x)); x +=
 *  mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(x)))) with a 4·dim hidden layer.
 *  Parameters named as nanoGPT's Block (ln_1.weight, attn.c_attn.weight,
 *  ..., mlp.c_proj.bias); LayerNorm eps 1e-5. */
amp_module *amp_nn_transformer_block(amp_ctx *ctx, amp_rng *rng, int64_t dim, int64_t heads,
                                     int64_t layers);

/** A GPT's shape. */
typedef struct amp_gpt_config {
  int64_t vocab;  /**< token vocabulary (256 for bytes) */
  int64_t ctx;    /**< longest sequence: rows of the position table */
  int64_t layers; /**< transformer blocks */
  int64_t dim;    /**< model width */
  int64_t heads;  /**< attention heads; must divide dim */
} amp_gpt_config;

/** A GPT-2-style model: I32 tokens [B,T] (T <= ctx) → logits [B,T,vocab].
 *  Token + position embeddings, `layers` pre-LN blocks, a final LayerNorm
 *  and a head tied to the token embedding (weight tying: the head is
 *  amp_linear() with transformer.wte.weight, one parameter used twice, its
 *  gradient accumulated once into its one FP32 master). Parameters in
 *  PyTorch state_dict names as nanoGPT / llm.c name them:
 *  transformer.wte.weight [vocab,dim], transformer.wpe.weight [ctx,dim],
 *  transformer.h.N.{ln_1,attn.c_attn,attn.c_proj,ln_2,mlp.c_fc,mlp.c_proj}
 *  .{weight,bias} (Linear weights [out,in] as nn.Linear), transformer.ln_f
 *  .{weight,bias}; nanoGPT's lm_head.weight is the same tensor as
 *  transformer.wte.weight and is not listed again. Initialised as nanoGPT
 *  (N(0, 0.02), residual projections N(0, 0.02/sqrt(2·layers)), biases 0).
 *  NULL (error recorded) when a size is not positive or heads does not
 *  divide dim; a forward with T > ctx is an error. */
amp_module *amp_nn_gpt(amp_ctx *ctx, amp_rng *rng, const amp_gpt_config *cfg);

/** BatchNorm2d(channels) over [N,C,H,W] (amp_batch_norm2d(), category
 *  norm): parameters weight (1) and bias (0); buffers running_mean (0) and
 *  running_var (1), F32, updated with `momentum` (PyTorch: 0.1) in training
 *  mode and used in evaluation mode (amp_module_set_training()). */
amp_module *amp_nn_batch_norm2d(amp_ctx *ctx, int64_t channels, float eps, float momentum);

/** Most stages of an amp_cnn_config. */
#define AMP_CNN_MAX_STAGES 8
/** Most hidden Linear layers of an amp_cnn_config. */
#define AMP_CNN_MAX_HIDDEN 4

/** Pooling at the end of a CNN stage. */
typedef enum amp_cnn_pool {
  AMP_CNN_POOL_NONE = 0,
  AMP_CNN_POOL_MAX = 1,       /**< MaxPool2d(pool_size, pool_size) */
  AMP_CNN_POOL_AVG = 2,       /**< AvgPool2d(pool_size, pool_size) */
  AMP_CNN_POOL_GLOBAL_AVG = 3 /**< AdaptiveAvgPool2d(1) */
} amp_cnn_pool;

/** One stage: Conv2d(k×k, stride 1, padding k/2, no bias) → BatchNorm2d →
 *  ReLU → pool. */
typedef struct amp_cnn_stage {
  int64_t channels;  /**< output channels */
  int64_t kernel;    /**< odd kernel size k (padding k/2) */
  amp_cnn_pool pool; /**< the pooling that ends the stage */
  int64_t pool_size; /**< its window and stride (max/avg pooling) */
} amp_cnn_stage;

/** A CNN: stages on [N,in_channels,height,width] images, then Flatten and
 *  Linear layers (hidden[0..nhidden) with ReLU after each, then `classes`). */
typedef struct amp_cnn_config {
  int64_t in_channels;                      /**< channels of the input images */
  int64_t height;                           /**< input height */
  int64_t width;                            /**< input width */
  int64_t classes;                          /**< outputs of the last Linear layer */
  int nstages;                              /**< stages used (1..AMP_CNN_MAX_STAGES) */
  int nhidden;                              /**< hidden Linear layers (0..AMP_CNN_MAX_HIDDEN) */
  amp_cnn_stage stages[AMP_CNN_MAX_STAGES]; /**< the stages, in order */
  int64_t hidden[AMP_CNN_MAX_HIDDEN];       /**< widths of the hidden Linear layers */
} amp_cnn_config;

/** Builds the CNN as a Sequential of its layers in order (conv, bn, relu,
 *  [pool], ..., flatten, linear, relu, ..., linear), so its names are
 *  PyTorch's for nn.Sequential of the same layers ("0.weight", "1.weight",
 *  "1.bias", "1.running_mean", ...). Conv and Linear initialised as PyTorch.
 *  Output logits [N,classes]. NULL (error recorded) on a bad
 *  configuration (a pool window larger than its input, an even kernel). */
amp_module *amp_nn_cnn(amp_ctx *ctx, amp_rng *rng, const amp_cnn_config *cfg);

/** Sequential container of `n` modules, run in order; child i's parameters
 *  are named "i.<name>". */
amp_module *amp_nn_sequential(amp_ctx *ctx, int n, amp_module *const *children);

/** Runs a module. NULL x gives NULL. */
amp_tensor *amp_module_forward(amp_ctx *ctx, amp_module *m, amp_tensor *x);

/** Training (non-zero, the default) or evaluation mode, for the module and
 *  all its children (affects Dropout). */
void amp_module_set_training(amp_module *m, int training);

/** Number of parameter tensors of the module and its children. */
int amp_module_param_count(const amp_module *m);

/** Parameter `i` (0 <= i < count) in declaration order, and its dotted name
 *  ("weight", "0.bias", ...) in *name when name is not NULL. NULL when i is
 *  out of range. */
amp_tensor *amp_module_param(const amp_module *m, int i, const char **name);

/** Number of buffers (state that is not trained: BatchNorm2d's running
 *  statistics) of the module and its children. */
int amp_module_buffer_count(const amp_module *m);

/** Buffer `i` (0 <= i < count) in declaration order, and its dotted name
 *  ("1.running_mean") through `name` (may be NULL); NULL when out of range. */
amp_tensor *amp_module_buffer(const amp_module *m, int i, const char **name);

/** Total number of parameter elements. */
int64_t amp_module_param_numel(const amp_module *m);

/** The module's type name ("Linear", "Sequential", ...). */
const char *amp_module_type(const amp_module *m);

/** Number of direct children of a module (the layers of a Sequential, the
 *  sub-modules of a block); 0 for a leaf layer or NULL. */
int amp_module_child_count(const amp_module *m);

/** Direct child `i` (0 <= i < count) and, through `name` (may be NULL), the
 *  prefix its parameters carry in the parent ("0", "attn", "mlp.c_fc"; ""
 *  when it has none); NULL when i is out of range. */
amp_module *amp_module_child(const amp_module *m, int i, const char **name);

/** A module observer: called by amp_module_forward() with every module's
 *  output (after the module ran; a Sequential's output is also its last
 *  child's, so the same tensor may come twice, first for the innermost
 *  module). `out` may be read, not changed. Its gradient is in out->grad
 *  after amp_backward() of a loss computed from it, until
 *  amp_ctx_step_reset(). Used by `ampc diagnose` to see activations and
 *  activation gradients layer by layer. */
typedef void (*amp_module_observer)(void *user, const amp_module *m, const amp_tensor *out);

/** Sets the context's module observer (NULL: none, the default), called
 *  with `user` as its first argument; it observes, never changes, the
 *  computation (the same bits with or without it). */
void amp_ctx_set_module_observer(amp_ctx *ctx, amp_module_observer fn, void *user);

/** @} */

/* ------------------------------------------------------------------------ */
/* FP8 training recipes                                                     */
/*                                                                          */
/* Inside an FP8 region (amp_fp8_begin/end, normally nested inside a BF16   */
/* autocast region) every amp_linear() runs its three GEMMs on FP8          */
/* operands, exactly emulated: the forward quantises the input and the      */
/* weight, saves them (not the 16-bit copies) for backward, and the         */
/* backward quantises the output gradient. Products accumulate in F32       */
/* (amp_gemm_fp8); the output is rounded once to the autocast dtype.        */
/* Everything else (ReLU, softmax, loss, norms, convolutions, attention's   */
/* matmuls) runs as autocast says. The scaling state is one row per tensor  */
/* role (0 input, 1 weight, 2 output gradient) per parameter of the model   */
/* (the weight's index in amp_module_param()), kept as three F32 buffers of */
/* the model ("fp8.amax_history" [3·P, H], "fp8.scale" [3·P],               */
/* "fp8.state" [2]: steps done, update pending), so checkpoints save and    */
/* restore it and a resumed run gives the bits of an uninterrupted one.     */
/* ------------------------------------------------------------------------ */

/** @defgroup fp8 FP8 training
 *  @{ */

/** How FP8 scales are chosen. */
typedef enum amp_fp8_scaling {
  AMP_FP8_DELAYED = 0, /**< Transformer Engine DelayedScaling, HYBRID format:
                            E4M3 input and weight, E5M2 gradients; per-tensor
                            scale = (fmt_max / amax) / 2^margin, amax the max
                            over the last `history_len` steps' amaxes (the
                            history before this step); a step's amaxes enter
                            the history after it. amax 0 or not finite keeps
                            the previous scale (1 at the start); an infinite
                            scale becomes FLT_MAX */
  AMP_FP8_CURRENT = 1, /**< per-tensor scale from this tensor's own amax (one
                            extra pass), same formula and formats */
  AMP_FP8_BLOCK = 2    /**< DeepSeek-V3: E4M3 everywhere, 1 × 128 tiles for
                            the input and the gradient, 128 × 128 blocks for
                            the weight, power-of-two scales from each block's
                            own amax (amp_fp8_quantize_blocks()) */
} amp_fp8_scaling;

/** FP8 recipe settings. */
typedef struct amp_fp8_params {
  amp_fp8_scaling scaling;    /**< delayed, current or block */
  int history_len;            /**< delayed: amax history length H >= 1 (16) */
  int margin;                 /**< delayed/current: 0..64 (0) */
  amp_rounding grad_rounding; /**< E5M2 gradients: nearest even or stochastic */
  uint64_t seed;              /**< stochastic rounding stream */
} amp_fp8_params;

/** Defaults for `s`: history 16, margin 0, round to nearest even, seed 0. */
amp_fp8_params amp_fp8_defaults(amp_fp8_scaling s);

/** Creates the FP8 scaling state of `model` and attaches it to ctx (one per
 *  context; it lives as long as ctx): adds the three "fp8.*" buffers to the
 *  model, so create it before saving or loading a checkpoint of the model
 *  (a checkpoint with them does not load into a model without them, and
 *  the reverse). Returns AMP_OK, or AMP_ERR_INVALID_ARG
 *  (recorded) for an unknown scaling, history_len < 1 (or > 65536), a
 *  margin outside 0..64, an unknown rounding, a model without parameters,
 *  or a context that already has a state. */
amp_status amp_fp8_create(amp_ctx *ctx, amp_module *model, const amp_fp8_params *p);

/** Opens (begin) and closes (end) an FP8 region on ctx: amp_linear() calls
 *  in between run in FP8 (weights must be parameters of the model given to
 *  amp_fp8_create(), or their autocast copies). Not nested.
 *  AMP_ERR_STATE when there is no state, on nesting, or end without begin. */
amp_status amp_fp8_begin(amp_ctx *ctx);
/** See amp_fp8_begin(). */
amp_status amp_fp8_end(amp_ctx *ctx);

/** Ends an FP8 step: with delayed scaling, each role's new scale is taken
 *  from its history (which includes the amax just recorded), then the
 *  history moves on by one step. amp_ctx_step_reset() calls it when
 *  amaxes were recorded since the last one, so training loops need not.
 *  No-op without a state. */
void amp_fp8_step_end(amp_ctx *ctx);

/** Starts micro-batch `index` (>= 0: its number in the optimizer step's
 *  global batch, e.g. rank·K + j with K micro-batches per rank) of the
 *  current FP8 step, for gradient accumulation and data-parallel ranks.
 *  From then until amp_fp8_step_end(), amp_ctx_step_reset() does not end
 *  the FP8 step: every micro-batch quantises with the scales the step began
 *  with and records into the same amaxes (their maximum), so the delayed
 *  history moves on once per optimizer step, as for one large batch; and
 *  stochastic rounding draws from a stream of the index's own (index 0's
 *  is the one a step without micro-batches uses), so a micro-batch rounds
 *  alike on whichever rank runs it. Call it after amp_ctx_step_reset() and
 *  before the micro-batch's forward; end the step with amp_fp8_step_end()
 *  after the optimizer step. AMP_ERR_INVALID_ARG (recorded) for index < 0;
 *  AMP_OK and nothing done without a state. */
amp_status amp_fp8_micro_batch(amp_ctx *ctx, int64_t index);

/** Lets data-parallel ranks agree on one amax per tensor, as Transformer
 *  Engine's amax reduction does: copies the amaxes recorded in this FP8
 *  step (3 per parameter, in amp_fp8_scale()'s roles) into one array, calls
 *  reduce(amax, n, user), which must leave each element the maximum over
 *  the ranks (an all-reduce with MAX), and records the result. Call it
 *  after the last micro-batch's backward, before amp_fp8_step_end().
 *  AMP_ERR_INVALID_ARG without reduce, AMP_ERR_NOMEM (recorded); AMP_OK and
 *  nothing done without a state. */
amp_status amp_fp8_reduce_amax(amp_ctx *ctx, void (*reduce)(float *amax, int n, void *user),
                               void *user);

/** The current scale of role `role` (0 input, 1 weight, 2 gradient) of the
 *  linear whose weight is parameter `param` of the model; the amax history
 *  (newest first) through `hist` (may be NULL; H values). -1 when out of
 *  range or without a state. For tests and diagnostics. */
float amp_fp8_scale(const amp_ctx *ctx, int param, int role, const float **hist);

/** @} */

/* ------------------------------------------------------------------------ */
/* Optimizers                                                                */
/*                                                                           */
/* An optimizer works in place on its model's parameters in the context's   */
/* parameter store (see amp_param_new()): one contiguous run of FP32         */
/* masters and of FP32 gradients and, in a 16-bit recipe, of 16-bit working  */
/* copies; it adds only its moments. A step reads master and gradient and    */
/* writes master, moments and working copy in one pass over memory, so the   */
/* cast after the update costs no extra pass.                                */
/* ------------------------------------------------------------------------ */
/** @defgroup optimizers Optimizers
 *  @{ */

/** Optimizer algorithms (PyTorch's torch.optim semantics). */
typedef enum amp_optim_kind {
  AMP_OPTIM_SGD = 0,  /**< SGD with momentum, dampening, Nesterov, L2 weight decay */
  AMP_OPTIM_ADAM = 1, /**< Adam with bias correction, L2 weight decay */
  AMP_OPTIM_ADAMW = 2 /**< AdamW: decoupled weight decay */
} amp_optim_kind;

/** Optimizer settings; get the defaults from amp_optim_defaults(). */
typedef struct amp_optim_params {
  amp_optim_kind kind;           /**< SGD, Adam or AdamW */
  float lr;                      /**< learning rate (default 1e-3; SGD 1e-2) */
  float momentum;                /**< SGD momentum (default 0) */
  float dampening;               /**< SGD dampening (default 0) */
  int nesterov;                  /**< SGD Nesterov momentum (needs momentum > 0) */
  float weight_decay;            /**< L2 (SGD, Adam) or decoupled (AdamW); default 0, AdamW 1e-2 */
  float beta1;                   /**< Adam(W) first-moment decay (default 0.9) */
  float beta2;                   /**< Adam(W) second-moment decay (default 0.999) */
  float eps;                     /**< Adam(W) denominator term (default 1e-8) */
  amp_dtype work_dtype;          /**< AMP_F16 or AMP_BF16: keep a 16-bit working copy
                                      of every parameter for autocast; AMP_F32 (the
                                      default): none */
  int master_weights;            /**< 1 (default): FP32 masters. 0 (with a 16-bit
                                      work_dtype): the weights themselves are 16-bit —
                                      after each update the master is rounded to the
                                      work dtype, so updates smaller than half an ulp
                                      are lost, as in pure 16-bit training */
  amp_rounding rounding;         /**< rounding of the working copy (nearest even, or
                                      stochastic with `seed`) */
  uint64_t seed;                 /**< stochastic rounding stream */
  int zero_grad_in_step;         /**< 0 (default): a step leaves the gradients as they
                                      were (after a scaler step, unscaled). Nonzero:
                                      every step, taken or skipped by
                                      amp_scaler_step(), ends with all gradients zero
                                      and no pending factor, as if
                                      amp_optim_zero_grad() followed it; each block is
                                      zeroed inside the update's own pass while it is
                                      still in cache, which saves the separate pass
                                      over the gradient buffer. For loops that zero
                                      the gradients after every step. */
  int grads_checked_in_backward; /**< 0 (default): the loss scaler's
                              inf/NaN check reads every gradient. Nonzero:
                              the one-pass amp_scaler_step() (no
                              amp_scaler_unscale() before it, scale >= 1)
                              takes the verdict on a parameter's gradient
                              from amp_backward() when one GEMM there wrote
                              all of it and checked what it stored (linear
                              and matmul weight gradients, see
                              amp_epilogue.nonfinite), and reads only the
                              other gradients: bits unchanged, one pass over
                              most of the gradient buffer saved. Set it only
                              when nothing writes a gradient between
                              amp_backward() and the step but the library
                              (amp_backward(), clipping, zeroing): a write
                              through amp_optim_grad_buffer() or a
                              parameter's grad->data is not seen. */
} amp_optim_params;

/** PyTorch's defaults for `kind` (see amp_optim_params). */
amp_optim_params amp_optim_defaults(amp_optim_kind kind);

/** An optimizer over a set of parameters. */
typedef struct amp_optim amp_optim;

/** Creates an optimizer over all parameters of `model` (see the section
 *  comment), their values kept, their gradients zeroed. The parameters stay
 *  where the store put them when they lie back to back in creation order
 *  (the usual case); otherwise (a Sequential of modules created in another
 *  order) the store first moves them into one run of their own, re-pointing
 *  each tensor's data and gradient. With a 16-bit work_dtype every
 *  parameter gets its working copy (amp_param_work()). Allocated in the
 *  persistent arena; give a model to one optimizer only. NULL (error recorded) on bad settings:
 *  lr < 0, betas outside [0,1), eps < 0, nesterov without momentum or with
 *  dampening, a work_dtype other than F32/F16/BF16. */
amp_optim *amp_optim_create(amp_ctx *ctx, amp_module *model, const amp_optim_params *p);

/** Sets every gradient to zero (one memset over the gradient buffer) and
 *  drops the pending gradient factor (amp_optim_grad_factor() becomes 1).
 *  Not needed after a step with amp_optim_params.zero_grad_in_step set. */
void amp_optim_zero_grad(amp_optim *o);

/** One update of every parameter from its FP32 gradient (multiplied by the
 *  pending gradient factor, see amp_optim_grad_factor()), then the
 *  working copies are rewritten in the same pass. Increments the step count
 *  used for Adam's bias correction. Deterministic, and the same bits for any
 *  thread count. Direct use ignores loss scaling: with a scaler, call
 *  amp_scaler_step() instead. */
amp_status amp_optim_step(amp_optim *o);

/** Computes the global L2 norm of all gradients (in a fixed order, in
 *  double) into *norm (may be NULL) and, when it exceeds max_norm > 0,
 *  multiplies every gradient in place by max_norm/(norm + 1e-6), as
 *  torch.nn.utils.clip_grad_norm_ does: afterwards every reader sees the
 *  clipped values. A non-finite norm changes nothing. max_norm <= 0 only
 *  measures. */
amp_status amp_optim_clip_grad_norm(amp_optim *o, float max_norm, float *norm);

/** The pending gradient factor: the next step uses the gradient buffer's
 *  values times this. It is 1 between calls: clipping and unscaling write
 *  their factors into the gradients themselves, and only the scaler's
 *  one-pass step folds 1/S in for the duration of that step (a step,
 *  amp_optim_zero_grad() and amp_scaler_update() reset it to 1). */
float amp_optim_grad_factor(const amp_optim *o);

/** The learning rate used by the next step. */
float amp_optim_lr(const amp_optim *o);

/** Sets the learning rate of the next steps (LR schedules call this). */
void amp_optim_set_lr(amp_optim *o, float lr);

/** Number of updates done (skipped steps do not count). */
int64_t amp_optim_steps(const amp_optim *o);

/** Total parameter elements handled. */
int64_t amp_optim_numel(const amp_optim *o);

/** Bytes of the optimizer's buffers: masters, gradients, moments and
 *  working copies. */
size_t amp_optim_bytes(const amp_optim *o);

/** The FP32 gradient buffer of all parameters (amp_optim_numel() values),
 *  for inspection; the scaler unscales and checks it in one pass. Writing
 *  it is allowed unless the optimizer was created with
 *  grads_checked_in_backward (see there). */
float *amp_optim_grad_buffer(amp_optim *o);

/** The FP32 master buffer of all parameters. */
float *amp_optim_master_buffer(amp_optim *o);

/** The optimizer's internal state for checkpoints: the step count and the
 *  moment buffers (m, v for Adam/AdamW; the momentum buffer for SGD, whose
 *  *v is NULL). Buffers have amp_optim_numel() elements; NULL when unused. */
void amp_optim_state(amp_optim *o, int64_t **step, float **m, float **v);

/** Rewrites every working copy from its master (after loading masters):
 *  round to nearest even, or, with stochastic rounding after step S > 0,
 *  the same random bits as the last step's write (stream offset
 *  (S - 1)·numel), so that a resumed run has the working copy of an
 *  uninterrupted one. */
amp_status amp_optim_sync_work(amp_optim *o);

/** @} */

/* ------------------------------------------------------------------------ */
/* Learning-rate schedules                                                   */
/* ------------------------------------------------------------------------ */
/** @defgroup learning_rate_schedules Learning-rate schedules
 *  @{ */

/** Learning-rate schedules. */
typedef enum amp_lr_kind {
  AMP_LR_CONSTANT = 0, /**< base */
  AMP_LR_STEP = 1,     /**< base · gamma^floor(step / step_size) */
  AMP_LR_COSINE = 2    /**< linear warm-up over warmup steps (base·(step+1)
                            /warmup: base/warmup at step 0, base at step
                            warmup-1), then cosine from base at step warmup
                            down to min_lr at total steps (and after) */
} amp_lr_kind;

/** A schedule's settings. */
typedef struct amp_lr_schedule {
  amp_lr_kind kind;  /**< constant, step or cosine */
  float base;        /**< the base learning rate */
  int64_t step_size; /**< STEP: steps per decay */
  float gamma;       /**< STEP: decay factor */
  int64_t warmup;    /**< COSINE: warm-up steps */
  int64_t total;     /**< COSINE: total steps */
  float min_lr;      /**< COSINE: final learning rate */
} amp_lr_schedule;

/** The learning rate at `step` (0-based). */
float amp_lr_at(const amp_lr_schedule *s, int64_t step);

/** @} */

/* ------------------------------------------------------------------------ */
/* Loss scaling (PyTorch GradScaler semantics)                               */
/*                                                                           */
/*   loss_s = amp_scaler_scale(sc, loss);   backward(loss_s);                */
/*   [amp_scaler_unscale(sc, opt); clip...]                                  */
/*   amp_scaler_step(sc, opt);   amp_scaler_update(sc);                      */
/*                                                                           */
/* Gradients are computed on the loss times the scale S so that small        */
/* gradients do not underflow in F16; unscale multiplies them by 1/S and     */
/* checks for inf/NaN in one pass; step skips the update when any was found; */
/* update backs S off after an overflow and grows it after growth_interval   */
/* consecutive clean steps. Any number of optimizers may share a step: each  */
/* is unscaled and stepped (or skipped) on its own, then one update.         */
/* A disabled scaler (AMP_SCALER_NONE) makes scale, unscale, update and      */
/* set_state no-ops and step a plain amp_optim_step(), so one loop serves    */
/* FP32 training too.                                                        */
/*                                                                           */
/* Gradient accumulation over K micro-batches (PyTorch's recipe): per        */
/* micro-batch, loss_k = amp_mul_scalar(loss, 1.0f / K), then                */
/* amp_backward(ctx, amp_scaler_scale(sc, loss_k)) without zeroing: the      */
/* leaves' FP32 gradients accumulate (see amp_backward()), and the one       */
/* unscale/step/update that follows checks all K micro-batches for inf/NaN   */
/* at once (a non-finite gradient in any of them stays non-finite in the     */
/* sum). The library adds each backward into the existing gradient inside   */
/* its GEMMs, so the rounding of the sum depends on the accumulation;        */
/* `ampc train --accum K` instead computes each micro-batch's gradient from  */
/* zero and adds the K results in order ((g0 + g1) + g2 ...), the order an   */
/* MPI run over K ranks reproduces bit for bit (tools/ampc/dist.h).          */
/* ------------------------------------------------------------------------ */
/** @defgroup loss_scaling Loss scaling (PyTorch GradScaler semantics)
 *  @{ */

/** Scaler modes. */
typedef enum amp_scaler_mode {
  AMP_SCALER_DYNAMIC = 0, /**< grow and back off */
  AMP_SCALER_STATIC = 1,  /**< a fixed scale; overflowing steps are still skipped */
  AMP_SCALER_NONE = 2     /**< disabled: scale 1, no checks (FP32 training) */
} amp_scaler_mode;

/** The default least scale of a dynamic scaler whose min_scale is 0 (as
 *  DeepSpeed's min_loss_scale): 2^-24. A backoff below it clamps to it; an
 *  overflow with the scale already there makes amp_scaler_update() fail.
 *  A static scaler's least scale is FLT_MIN (so 1/S is finite). */
#define AMP_SCALER_FLOOR 0x1p-24f

/** Scaler settings; get the defaults from amp_scaler_defaults(). */
typedef struct amp_scaler_params {
  amp_scaler_mode mode;    /**< dynamic, static or none */
  float init_scale;        /**< 65536 */
  double growth_factor;    /**< 2; a double, as PyTorch's: the grown scale
                                is fp32(S · growth_factor) formed in double */
  double backoff_factor;   /**< 0.5; fp32(S · backoff_factor) in double */
  int64_t growth_interval; /**< 2000 */
  float min_scale;         /**< floor of the scale: the backoff clamps to
                                it (default 0: AMP_SCALER_FLOOR, which stops
                                the run instead); 0 or >= FLT_MIN */
  float max_scale;         /**< ceiling (default 0: none; growth stops at
                                the largest finite float anyway) */
  int hysteresis;          /**< DeepSpeed's hysteresis: the scale backs off
                                at the hysteresis-th overflow since it last
                                grew (earlier ones only skip the step); 1
                                (default) backs off at every overflow */
} amp_scaler_params;

/** PyTorch's defaults, in mode `mode`. */
amp_scaler_params amp_scaler_defaults(amp_scaler_mode mode);

/** The complete state of a scaler (for checkpoints). */
typedef struct amp_scaler_state {
  amp_scaler_params params; /**< the settings */
  float scale;              /**< the current loss scale */
  int64_t growth_tracker;   /**< consecutive clean steps since the last change */
  int hysteresis_left;      /**< overflows still tolerated */
  int64_t skipped;          /**< steps skipped so far */
} amp_scaler_state;

/** A loss scaler. */
typedef struct amp_scaler amp_scaler;

/** Creates a scaler (persistent arena). NULL (error recorded) for bad
 *  settings: init_scale not finite and > 0, growth_factor <= 1,
 *  backoff_factor not in (0,1), growth_interval < 1, hysteresis < 1,
 *  min_scale or max_scale negative, min_scale in (0, FLT_MIN),
 *  min_scale > max_scale (max_scale > 0), init_scale outside [min_scale,
 *  max_scale] or (min_scale 0) below AMP_SCALER_FLOOR (dynamic) or FLT_MIN
 *  (static). */
amp_scaler *amp_scaler_create(amp_ctx *ctx, const amp_scaler_params *p);

/** loss · S as a new tensor on the tape (the loss itself when disabled). */
amp_tensor *amp_scaler_scale(amp_scaler *sc, amp_tensor *loss);

/** Unscales `o`'s gradients in place (each becomes g · fp32(1/S), the
 *  reciprocal formed in double, as PyTorch's unscale_) and records whether
 *  any is inf or NaN, in one pass over the gradient buffer. Afterwards every
 *  reader of the gradients (amp_optim_grad_buffer(), a parameter's grad,
 *  amp_optim_clip_grad_norm()) sees the unscaled values. At most once per
 *  optimizer between updates: a second call, or a call after
 *  amp_scaler_step() for that optimizer, returns AMP_ERR_STATE. Disabled
 *  scaler: changes nothing. */
amp_status amp_scaler_unscale(amp_scaler *sc, amp_optim *o);

/** Unscales if not done yet, then steps `o` unless an inf/NaN gradient was
 *  found (a skipped step also drops a pending clip factor, see
 *  amp_optim_clip_grad_norm()). Without an earlier amp_scaler_unscale() (and
 *  with S >= 1) the check and the update share one parallel pass, with the
 *  same result, 1/S applied inside the update; each block's gradients are
 *  then unscaled while still in cache, so afterwards the buffer holds
 *  g · fp32(1/S) exactly as after amp_scaler_unscale() (stepped or skipped),
 *  or zeros with amp_optim_params.zero_grad_in_step. With
 *  amp_optim_params.grads_checked_in_backward that pass reads only the
 *  gradients whose inf/NaN verdict the backward did not record.
 *  Returns 1 when it stepped, 0 when it skipped, -1 on error (a second step
 *  for the same optimizer before update). Disabled scaler: amp_optim_step(). */
int amp_scaler_step(amp_scaler *sc, amp_optim *o);

/** Ends the step (dynamic mode): after an overflow in any optimizer, backs
 *  the scale off (fp32(S · backoff_factor) formed in double; see hysteresis;
 *  not below min_scale) and restarts the count of clean steps; after exactly
 *  growth_interval consecutive clean steps, grows it (fp32(S ·
 *  growth_factor) in double) if the grown scale is finite (capped at
 *  max_scale). In every enabled mode, counts a skipped step after an
 *  overflow. Forgets the per-optimizer unscale/step state and drops every
 *  such optimizer's pending gradient factor (amp_optim_grad_factor()), so an
 *  unscale or clip whose step never came cannot reach the next step.
 *  Returns AMP_ERR_STATE (recorded, nothing changed) when no inf/NaN check
 *  (amp_scaler_unscale() or amp_scaler_step()) was recorded since the last
 *  update, as PyTorch's update asserts. With min_scale 0, an overflow when
 *  the scale is already at AMP_SCALER_FLOOR ends the step as above, keeps
 *  the scale and returns AMP_ERR_STATE (recorded): the run cannot go on.
 *  Disabled scaler: only forgets. */
amp_status amp_scaler_update(amp_scaler *sc);

/** PyTorch's update(new_scale): ends the step as amp_scaler_update() does
 *  (skipped count, per-optimizer state, pending factors) but sets the scale
 *  to `new_scale` instead of growing or backing off, leaving the growth
 *  tracker and the hysteresis allowance alone. Needs no recorded check.
 *  new_scale must be finite, > 0, not below the least scale (see
 *  AMP_SCALER_FLOOR) and inside [min_scale, max_scale], else
 *  AMP_ERR_INVALID_ARG (recorded, nothing changed). Disabled: no-op. */
amp_status amp_scaler_update_to(amp_scaler *sc, float new_scale);

/** The current scale S (1 when disabled). */
float amp_scaler_get_scale(const amp_scaler *sc);

/** Per step, not per optimizer: non-zero when some amp_scaler_unscale() or
 *  amp_scaler_step() since the last update found an inf or NaN gradient in
 *  any optimizer. amp_scaler_update() clears it (so read it before update;
 *  amp_scaler_step()'s return value says whether one optimizer stepped). */
int amp_scaler_found_inf(const amp_scaler *sc);

/** PyTorch's is_enabled(): non-zero unless the mode is AMP_SCALER_NONE
 *  (0 for NULL). */
int amp_scaler_is_enabled(const amp_scaler *sc);

/** The growth factor (PyTorch's get_growth_factor(); 0 for NULL). */
double amp_scaler_get_growth_factor(const amp_scaler *sc);

/** The backoff factor (PyTorch's get_backoff_factor(); 0 for NULL). */
double amp_scaler_get_backoff_factor(const amp_scaler *sc);

/** The growth interval (PyTorch's get_growth_interval(); 0 for NULL). */
int64_t amp_scaler_get_growth_interval(const amp_scaler *sc);

/** Copies the complete state out. */
amp_scaler_state amp_scaler_get_state(const amp_scaler *sc);

/** Restores a state from amp_scaler_get_state(); invalid values give
 *  AMP_ERR_INVALID_ARG and leave the scaler unchanged. As PyTorch's
 *  load_state_dict: on a disabled scaler it does nothing (AMP_OK); a
 *  disabled scaler's state (mode AMP_SCALER_NONE) given to an enabled scaler
 *  is an error. */
amp_status amp_scaler_set_state(amp_scaler *sc, const amp_scaler_state *st);

/** @} */

/* ------------------------------------------------------------------------ */
/* Checkpoints (safetensors)                                                 */
/*                                                                           */
/* Files are in the safetensors format (huggingface/safetensors): an 8-byte  */
/* little-endian header length N, N bytes of JSON header (an object mapping  */
/* each tensor name to {"dtype", "shape", "data_offsets": [begin, end]},     */
/* plus an optional "__metadata__" object of string values), then the data   */
/* section, every tensor's bytes row-major and little-endian, with offsets   */
/* relative to the start of the data section. Any safetensors reader reads   */
/* what these functions write. Writes are atomic: the file is written under  */
/* a temporary name in the same directory, synced, renamed over the target   */
/* and the directory synced, so a crash or error leaves either the old file  */
/* or the new one, never a mix. The reader trusts nothing: every malformed   */
/* input gives AMP_ERR_FORMAT with a message naming the problem (and the     */
/* tensor), never a crash or a read outside the input.                       */
/* ------------------------------------------------------------------------ */
/** @defgroup checkpoints Checkpoints (safetensors)
 *  @{ */

/** One tensor of a safetensors file. For writing, fill name, dtype, ndim,
 *  shape, data and bytes (dtype_name is ignored); a file read back gives
 *  pointers into the parsed file, valid until amp_safetensors_free(). */
typedef struct amp_st_tensor {
  const char *name;            /**< the tensor's name (UTF-8, unique) */
  amp_dtype dtype;             /**< element type; AMP_DTYPE_COUNT for a file
                                    dtype ampc has no type for (I64, F64, ...:
                                    see dtype_name) */
  int ndim;                    /**< 0 (a scalar) .. AMP_MAX_DIMS */
  int64_t shape[AMP_MAX_DIMS]; /**< sizes (>= 0); entries past ndim are 1 */
  const void *data;            /**< `bytes` bytes, row-major, little-endian.
                                    Read back: aligned to the element size
                                    when the file's offset is (always for
                                    files written here or by the reference
                                    implementation); otherwise use memcpy */
  size_t bytes;                /**< numel × element size */
  const char *dtype_name;      /**< read back: the file's dtype string ("F32",
                                    "F16", "BF16", "F8_E4M3", "F8_E5M2",
                                    "I32", "U8", "I64", "F64", "BOOL", "I8",
                                    "I16", "U16", "U32", "U64") */
} amp_st_tensor;

/* A data loader (declared and documented in "Data" below; C11 allows the
 * repeated typedef). */
/** @cond */
typedef struct amp_loader amp_loader;
/** @endcond */

/** A parsed safetensors file. It owns a copy of the data section. */
typedef struct amp_safetensors amp_safetensors;

/** Writes `n` tensors and `nmeta` metadata pairs (meta[2i] is a key,
 *  meta[2i+1] its value; strings, as the format requires) to `path`,
 *  atomically (see the section comment; the temporary file is
 *  "<path>.tmp.<pid>.<k>"; after a successful write, such files of the same
 *  path whose process no longer exists, left by a kill during an earlier
 *  save, are removed). Tensors may be F32, F16, BF16, E4M3, E5M2
 *  (written as F8_E4M3 / F8_E5M2), I32 or U8, with ndim 0..4 and sizes >= 0;
 *  `bytes` must equal numel × element size and `data` must be non-NULL when
 *  bytes > 0. Names must be unique, non-NULL, valid UTF-8 and not
 *  "__metadata__"; metadata keys must be unique; keys and values must be
 *  valid UTF-8. In the header the tensors appear in name
 *  order; in the data section they are ordered by element size (largest
 *  first) and then name, and the header is padded with spaces to a multiple
 *  of 8 bytes, so every tensor is aligned to its element size in the file.
 *  Errors: AMP_ERR_INVALID_ARG for bad arguments, AMP_ERR_IO when a file
 *  cannot be created, written, synced or renamed (the temporary file is
 *  removed and an existing `path` is left as it was), AMP_ERR_NOMEM; each
 *  recorded on ctx (which may be NULL) with a message naming the path. */
amp_status amp_safetensors_write(amp_ctx *ctx, const char *path, const amp_st_tensor *t, int n,
                                 const char *const *meta, int nmeta);

/** Reads the file at `path` and validates all of it (see
 *  amp_safetensors_parse() for the checks). On success *out is a new parsed
 *  file to free with amp_safetensors_free(); on failure *out is NULL and the
 *  error (AMP_ERR_IO for a file that cannot be opened or read,
 *  AMP_ERR_FORMAT for a malformed one, AMP_ERR_NOMEM) is recorded on ctx
 *  (may be NULL) with a message starting "safetensors: <path>: ". */
amp_status amp_safetensors_read(amp_ctx *ctx, const char *path, amp_safetensors **out);

/** Parses and validates a file image of `len` bytes at `buf` (the data
 *  section is copied; `buf` is not kept). Checks: at least 8 bytes; the
 *  header length N >= 2, <= len - 8 and <= 100,000,000; the header is valid
 *  UTF-8 without NUL bytes, valid JSON and an object; every entry other than
 *  "__metadata__" is an object with exactly the keys "dtype" (a known
 *  dtype string, see amp_st_tensor), "shape" (an array of at most 4
 *  integers >= 0 whose product, times the element size, does not overflow)
 *  and "data_offsets" (two integers, begin <= end, end - begin == numel ×
 *  element size, end within the data section); tensor names are unique;
 *  the tensors, ordered by offset, cover the data section exactly (no
 *  overlap, no gap, no trailing bytes); "__metadata__", when present, is an
 *  object of unique keys with string values. Errors give AMP_ERR_FORMAT
 *  (AMP_ERR_INVALID_ARG for NULL pointers, AMP_ERR_NOMEM) with a message
 *  naming the problem and the tensor, recorded on ctx (may be NULL); *out
 *  is then NULL. Never reads outside [buf, buf + len). */
amp_status amp_safetensors_parse(amp_ctx *ctx, const void *buf, size_t len, amp_safetensors **out);

/** Number of tensors in a parsed file (0 for NULL). */
int amp_safetensors_count(const amp_safetensors *f);

/** Tensor `i` (0 <= i < count), in name order (strcmp); NULL when out of
 *  range. */
const amp_st_tensor *amp_safetensors_at(const amp_safetensors *f, int i);

/** The tensor called `name`, or NULL. */
const amp_st_tensor *amp_safetensors_find(const amp_safetensors *f, const char *name);

/** The value of metadata key `key`, or NULL when absent. */
const char *amp_safetensors_meta(const amp_safetensors *f, const char *key);

/** Number of metadata pairs (0 for NULL). */
int amp_safetensors_meta_count(const amp_safetensors *f);

/** Metadata pair `i` (0 <= i < count), in key order: returns the key and
 *  stores the value in *value (may be NULL); NULL when out of range. */
const char *amp_safetensors_meta_at(const amp_safetensors *f, int i, const char **value);

/** Frees a parsed file. NULL is a no-op. */
void amp_safetensors_free(amp_safetensors *f);

/** Saves everything an exact resume needs to `path` (atomically, via
 *  amp_safetensors_write()):
 *   - every parameter of `model` as an F32 tensor under its dotted name
 *     ("0.weight"): the FP32 masters; then its buffers (amp_module_buffer():
 *     BatchNorm's "1.running_mean", ...), F32, which a load restores too;
 *   - with `opt`: its moments, "optim.exp_avg.<name>" and
 *     "optim.exp_avg_sq.<name>" (Adam, AdamW) or "optim.momentum_buffer.<name>"
 *     (SGD with momentum), F32, the parameter's shape; and in the metadata
 *     "ampc.optim.step", "ampc.optim.lr" and "ampc.optim.state" ("adam",
 *     "momentum" or "none");
 *   - with `scaler`: its complete state, "ampc.scaler.mode" ("dynamic",
 *     "static", "none"), ".init_scale", ".growth_factor", ".backoff_factor",
 *     ".growth_interval", ".min_scale", ".max_scale", ".hysteresis",
 *     ".scale", ".growth_tracker", ".hysteresis_left", ".skipped";
 *   - with `loader`: "ampc.loader.epoch", "ampc.loader.next",
 *     "ampc.loader.seed" and "ampc.loader.shuffle";
 *   - always "ampc.format" = "ampc-checkpoint-1" and "ampc.version";
 *   - the `nextra` key/value pairs of `extra_meta` (as in
 *     amp_safetensors_write(); a key that repeats one of the above is an
 *     error).
 *  Floats are written with "%.9g" and read with strtof, which gives back
 *  the same bits; integers in decimal. Any of opt, scaler and loader may be
 *  NULL (not saved). Errors as for amp_safetensors_write(), and
 *  AMP_ERR_STATE (nothing written) when a master, a moment or the scale is
 *  not finite (see amp_checkpoint_check_finite()). */
amp_status amp_checkpoint_save(amp_ctx *ctx, const char *path, amp_module *model, amp_optim *opt,
                               const amp_scaler *scaler, const amp_loader *loader,
                               const char *const *extra_meta, int nextra);

/** Checks that the training state a checkpoint would hold is finite: every
 *  FP32 master of `model`, the moments of `opt` (may be NULL) and the scale
 *  of `scaler` (may be NULL; finite and > 0). One pass over the masters and
 *  moments, reading the exponent bits only. Returns AMP_OK, or AMP_ERR_STATE
 *  recorded on ctx with a message naming the first non-finite tensor and
 *  the index of its first bad value. amp_checkpoint_save() runs the same
 *  check first and writes nothing when it fails (non-finite state is never
 *  saved over a good checkpoint); AMP_ERR_INVALID_ARG for a NULL model. */
amp_status amp_checkpoint_check_finite(amp_ctx *ctx, amp_module *model, amp_optim *opt,
                                       const amp_scaler *scaler);

/** Loads a checkpoint written by amp_checkpoint_save() into an existing
 *  `model` and, when non-NULL, `opt`, `scaler` and `loader`. Everything is
 *  validated before anything is written, so on any error nothing is
 *  modified: every parameter must be in the file as F32 with exactly its
 *  shape; the file may hold no tensor the model (and `opt`) does not have
 *  ("optim.*" tensors are ignored when opt is NULL); with `opt`, the moments
 *  its kind uses must all be there (and no others) and the metadata must
 *  hold its step (>= 0) and learning rate; with `scaler`, a complete, valid
 *  scaler state; with `loader`, a valid position, and when the loader
 *  shuffles, the same seed (create the loader with "ampc.loader.seed" from
 *  the file, see amp_loader_get_params()). Restores the masters (parameter
 *  data), the moments, the step count and the learning rate, then rewrites
 *  the 16-bit working copies (amp_optim_sync_work()); the scaler state; the
 *  loader position. Errors: AMP_ERR_IO / AMP_ERR_FORMAT as for
 *  amp_safetensors_read(), AMP_ERR_SHAPE for a missing, extra or
 *  mismatched tensor, AMP_ERR_FORMAT for missing or bad metadata or a
 *  tensor holding a non-finite value (named with the index of its first
 *  one), AMP_ERR_STATE for a loader seed that differs; each recorded on ctx with a
 *  message naming the file and the tensor or key. */
amp_status amp_checkpoint_load(amp_ctx *ctx, const char *path, amp_module *model, amp_optim *opt,
                               amp_scaler *scaler, amp_loader *loader);

/** Writes the model's weights alone for export: every parameter converted
 *  from its FP32 value to `dt` (AMP_F16 or AMP_BF16, round to nearest
 *  even; AMP_F32 copies), under the same names, with "ampc.format" =
 *  "ampc-weights-1" and "ampc.dtype" in the metadata. Atomic, like
 *  amp_safetensors_write(). */
amp_status amp_checkpoint_export(amp_ctx *ctx, const char *path, amp_module *model, amp_dtype dt);

/** Writes `len` bytes to `path` atomically, as the checkpoint writers do:
 *  a temporary file "<path>.tmp.<pid>.<k>" beside it is written, synced
 *  and renamed over `path`, then the directory is synced. On failure
 *  (AMP_ERR_IO, or AMP_ERR_NOMEM; recorded on ctx, which may be NULL, with
 *  a message naming the path) the temporary file is removed and `path` is
 *  left as it was. For the tool's other outputs (figures, reports). */
amp_status amp_file_write_atomic(amp_ctx *ctx, const char *path, const void *data, size_t len);

/** @} */

/* ------------------------------------------------------------------------ */
/* Data (datasets and loaders)                                               */
/* ------------------------------------------------------------------------ */
/** @defgroup data Data (datasets and loaders)
 *  @{ */

/** A data set for classification: `size` samples, each a row of `features`
 *  values (stored as U8 for MNIST images, F32 otherwise) and an I32 label in
 *  0..classes-1. Owned by the caller (malloc'd, not in a context arena); free
 *  it with amp_dataset_free(). Read-only once made, so several loaders may
 *  share one data set. */
typedef struct amp_dataset amp_dataset;

/** Loads an MNIST split from the directory `dir`: with `train` non-zero
 *  (each file may instead be gzip-compressed, as NAME.gz, which is read when
 *  NAME is absent; its decompressed size is bounded at 256 MiB and a
 *  corrupt, truncated or oversized gzip file is an AMP_ERR_FORMAT naming the
 *  file)
 *  train-images-idx3-ubyte and train-labels-idx1-ubyte (60000 samples),
 *  otherwise t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (10000). The
 *  images are kept as U8 rows of 784 = 28×28 pixels; 10 classes. Checks the
 *  magic numbers (0x00000803 images, 0x00000801 labels), the 28×28 size, the
 *  exact file sizes (header + payload: no truncation, no trailing bytes),
 *  that both files have the same count and that every label is in 0..9. On
 *  failure sets *out to NULL, returns the error (AMP_ERR_IO for a file that
 *  cannot be opened or read, AMP_ERR_FORMAT for a malformed one) and records
 *  a message on ctx naming the file and the problem, e.g. "mnist:
 *  data/mnist/train-images-idx3-ubyte: truncated: expected 47040016 bytes,
 *  found 1000". A missing file's message says to run scripts/fetch-mnist. */
amp_status amp_mnist_load(amp_ctx *ctx, const char *dir, int train, amp_dataset **out);

/** Where Debian's dataset-fashion-mnist package installs Fashion-MNIST. */
#define AMP_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/** Fashion-MNIST's pixel mean (of x/255 over its train set), which the
 *  loader's `normalize` uses for it. */
#define AMP_FASHION_MNIST_MEAN 0.2860f
/** Fashion-MNIST's pixel standard deviation (of x/255 over its train set). */
#define AMP_FASHION_MNIST_STD 0.3530f

/** Loads a Fashion-MNIST split from `dir` (NULL: AMP_FASHION_MNIST_DIR):
 *  the same four file names, layout and checks as amp_mnist_load() (Debian
 *  ships them gzip-compressed), 10 classes; the data set carries
 *  Fashion-MNIST's mean and standard deviation for the loader's
 *  `normalize`. A missing file's message says to install
 *  dataset-fashion-mnist (scripts/install-deps --data). */
amp_status amp_fashion_mnist_load(amp_ctx *ctx, const char *dir, int train, amp_dataset **out);

/** Parses an IDX file held in memory (`len` bytes at `buf`): the magic
 *  number 0x000008NN (unsigned byte data, NN dimensions) must have NN ==
 *  expect_ndim (1..3), the dimensions (big-endian 32-bit) must be positive
 *  and the length must be exactly header + product of the dimensions bytes
 *  (no truncation, no trailing bytes; a product that would overflow is an
 *  error). On success stores the dimensions in dims[0..expect_ndim-1]
 *  (entries up to index 2 are set to 1) and the address of the first data
 *  byte (inside `buf`) in *payload. Errors: AMP_ERR_INVALID_ARG for NULL
 *  pointers or expect_ndim outside 1..3, AMP_ERR_FORMAT for a malformed
 *  buffer, with a message on ctx (which may be NULL). Does not read past
 *  buf + len and does not allocate. */
amp_status amp_idx_parse(amp_ctx *ctx, const void *buf, size_t len, int expect_ndim, int64_t *dims,
                         const uint8_t **payload);

/** A synthetic classification data set that needs no files: `n` samples of
 *  `features` F32 values in `classes` classes (all three >= 1). Class c has a
 *  centre drawn once per feature from a standard normal; a sample is its
 *  class's centre plus normal noise of standard deviation 0.5 per feature,
 *  and sample i has class i mod classes, so the classes are balanced and,
 *  with a dozen or more features, well separated: a small MLP learns them
 *  to high accuracy in a few epochs. The normals are Irwin-Hall
 *  approximations (the sum of 12 uniforms minus 6) drawn from the data
 *  layer's own splitmix64 generator, with no libm calls, so the same
 *  arguments give the same bits on every machine. On failure sets *out to
 *  NULL, returns the error and records a message on ctx. */
amp_status amp_synthetic_load(amp_ctx *ctx, int64_t n, int64_t features, int64_t classes,
                              uint64_t seed, amp_dataset **out);

/** Makes a data set from caller-supplied F32 rows: `x` holds n × features
 *  values (row i is sample i) and `labels` n labels in 0..classes-1; both are
 *  copied. A NaN or infinite value gives AMP_ERR_INVALID_ARG with a message
 *  naming the sample index (and feature); a label out of range likewise. On
 *  failure sets *out to NULL. */
amp_status amp_dataset_from_f32(amp_ctx *ctx, int64_t n, int64_t features, int64_t classes,
                                const float *x, const int32_t *labels, amp_dataset **out);

/** Frees a data set. NULL is a no-op. Loaders made from it must be freed
 *  first. */
void amp_dataset_free(amp_dataset *ds);

/** Number of samples (0 for NULL). */
int64_t amp_dataset_size(const amp_dataset *ds);

/** Values per sample (784 for MNIST; 0 for NULL). */
int64_t amp_dataset_features(const amp_dataset *ds);

/** Number of classes (10 for MNIST; 0 for NULL). */
int64_t amp_dataset_classes(const amp_dataset *ds);

/** Copies samples [start, start+count) of `ds` into a new data set (*out),
 *  e.g. to split one synthetic draw into train and test sets that share
 *  their class centres. Errors for a range outside the data set. */
amp_status amp_dataset_slice(amp_ctx *ctx, const amp_dataset *ds, int64_t start, int64_t count,
                             amp_dataset **out);

/** Byte-level text (vocabulary 256: a token is a byte): a corpus held in
 *  memory and split into a training part, the first 90% of its bytes, and a
 *  held-out validation part, the last 10% (n/10 bytes, rounded down).
 *  Malloc-owned; free it with amp_text_free(). At most 1 GiB. */
typedef struct amp_text amp_text;

/** The training split of an amp_text (the first 90% of its tokens). */
#define AMP_TEXT_TRAIN 0
/** The validation split of an amp_text (the last 10%). */
#define AMP_TEXT_VAL 1

/** Where Debian's fortunes package installs the English fortune files. */
#define AMP_FORTUNES_DIR "/usr/share/games/fortunes"

/** Reads the file `path` as a corpus into *out. On failure sets *out to
 *  NULL and returns AMP_ERR_IO (cannot open or read, not a regular file)
 *  or AMP_ERR_INVALID_ARG (larger than 1 GiB), with a message naming the
 *  file. */
amp_status amp_text_load(amp_ctx *ctx, const char *path, amp_text **out);

/** The default corpus: the fortune files of `dir` (NULL:
 *  AMP_FORTUNES_DIR) that have no extension (the .dat indexes and .u8
 *  links are skipped, as is anything not a regular file), concatenated in
 *  sorted (strcmp) name order; about 2.5 MB. A missing directory's message
 *  says to install fortunes (scripts/install-deps --data). */
amp_status amp_text_load_fortunes(amp_ctx *ctx, const char *dir, amp_text **out);

/** A corpus from `n` bytes in memory (copied). */
amp_status amp_text_from_bytes(amp_ctx *ctx, const void *bytes, size_t n, amp_text **out);

/** Frees a corpus (NULL is a no-op); its loaders must be freed first. */
void amp_text_free(amp_text *t);

/** Tokens of a split (AMP_TEXT_TRAIN or AMP_TEXT_VAL; 0 for NULL). */
int64_t amp_text_tokens(const amp_text *t, int split);

/** The tokens (bytes) of a split, amp_text_tokens() of them. */
const uint8_t *amp_text_data(const amp_text *t, int split);

/** A loader of token batches of one split of an amp_text. Malloc-owned;
 *  free it with amp_text_loader_free(). */
typedef struct amp_text_loader amp_text_loader;

/** Makes a loader of token batches of `split` in llm.c's layout: batch k reads B·T + 1
 *  consecutive tokens starting at offset k·B·T of the split; the inputs x
 *  are the first B·T, the targets y the next B·T (shifted by one), both I32
 *  [B, T] whose rows are consecutive T-chunks. An epoch is the
 *  floor((n - 1)/(B·T)) batches that fit; in order, batch i of the stream
 *  is batch k = i mod that count. With `shuffle`, each epoch takes the
 *  batch starts in the order of a permutation drawn (Fisher-Yates,
 *  splitmix64) from (seed, epoch) only. Refers to (does not copy) the
 *  corpus. Returns NULL and records an error for bad arguments or a split
 *  shorter than one batch (B·T + 1 tokens). */
amp_text_loader *amp_text_loader_create(amp_ctx *ctx, const amp_text *t, int split, int64_t batch,
                                        int64_t seq, int shuffle, uint64_t seed);

/** The next batch, x and y I32 [B, T] in ctx's step arena; the stream runs
 *  on over epochs. Returns 1, or 0 when memory ran out (recorded on ctx). */
int amp_text_loader_next(amp_text_loader *l, amp_tensor **x, amp_tensor **y);

/** Batches per epoch: floor((n - 1)/(B·T)) for a split of n tokens. */
int64_t amp_text_loader_batches_per_epoch(const amp_text_loader *l);

/** Frees a text loader (NULL is a no-op). */
void amp_text_loader_free(amp_text_loader *l);

/** Iterates over a data set in batches. Malloc-owned; it refers to (does not
 *  copy) the data set, which must outlive it. Free with amp_loader_free(). */
typedef struct amp_loader amp_loader;

/** Options for amp_loader_create(). */
typedef struct amp_loader_params {
  int64_t batch;   /**< samples per batch (>= 1) */
  int shuffle;     /**< non-zero: a new permutation each epoch (Fisher-Yates
                        driven by splitmix64 seeded from (seed, epoch));
                        zero: samples in order */
  uint64_t seed;   /**< shuffle seed */
  int drop_last;   /**< non-zero: skip the final partial batch of an epoch */
  amp_dtype dtype; /**< dtype of the image batch: AMP_F32, AMP_F16 or
                        AMP_BF16 (the recipe's compute dtype) */
  int normalize;   /**< non-zero: U8 data become (x/255 - 0.1307)/0.3081 (the
                        MNIST mean and standard deviation; Fashion-MNIST's
                        own for amp_fashion_mnist_load()); zero: x/255. F32
                        data sets are passed as they are either way */
} amp_loader_params;

/** Creates a loader over `ds` (which it does not copy). Returns NULL and
 *  records AMP_ERR_INVALID_ARG on ctx for a NULL data set or params, batch
 *  < 1, or a dtype other than F32/F16/BF16; AMP_ERR_NOMEM when memory runs
 *  out. The loader starts at epoch 0, sample 0. It keeps `ctx` and
 *  allocates its batches there. */
amp_loader *amp_loader_create(amp_ctx *ctx, const amp_dataset *ds, const amp_loader_params *p);

/** Frees a loader (not its data set). NULL is a no-op. */
void amp_loader_free(amp_loader *l);

/** The next batch of the current epoch: *x is [B, features] in the loader's
 *  dtype and *y is I32 [B], both allocated in the context's per-step arena
 *  (AMP_ARENA_STEP; valid until amp_ctx_step_reset()). B is the batch size,
 *  or fewer for the last batch of an epoch unless drop_last is set. U8 data
 *  are scaled (and normalised) in F32 and converted to F16/BF16 once, with
 *  round to nearest even. Returns 1 when a batch was produced; 0 at the end
 *  of the epoch (*x and *y set to NULL), after which the next call starts
 *  the next epoch with its own permutation; -1 on error, recorded on the
 *  context (*x and *y NULL). */
int amp_loader_next(amp_loader *l, amp_tensor **x, amp_tensor **y);

/** Batches amp_loader_next() produces per epoch (taking drop_last into
 *  account); 0 for NULL. */
int64_t amp_loader_batches_per_epoch(const amp_loader *l);

/** A loader's position, for checkpoints: the epoch number and the index
 *  (within the epoch's order) of the next sample to deliver. */
typedef struct amp_loader_state {
  int64_t epoch; /**< epochs completed (0 during the first epoch) */
  int64_t next;  /**< position of the next sample in the epoch's order */
} amp_loader_state;

/** The loader's current position ({0, 0} for NULL). */
amp_loader_state amp_loader_get_state(const amp_loader *l);

/** Restores a position from amp_loader_get_state(): the epoch's permutation
 *  is recomputed from the seed and epoch, so the following batches are
 *  exactly those the saved loader would have produced. epoch must be >= 0
 *  and next in 0..size; otherwise returns AMP_ERR_INVALID_ARG (recorded on
 *  the loader's context) and leaves the loader unchanged. */
amp_status amp_loader_set_state(amp_loader *l, amp_loader_state s);

/** The settings the loader was created with (all zero for NULL), e.g. its
 *  shuffle seed, which checkpoints record. */
amp_loader_params amp_loader_get_params(const amp_loader *l);

/* (the data section ends here) */

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* AMPC_H */
