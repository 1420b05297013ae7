/* Internal declarations shared by every layer: the context's layout, error
 * recording, the dtype traits and the kernel table. Not part of the public
 * API. */
#ifndef AMPC_INTERNAL_H
#define AMPC_INTERNAL_H

#include "../dtype/dtype_traits.h"
#include "ampc.h"
#include "kernels.h"

#include <stdarg.h>
#include <stdatomic.h>

/* One bump arena made of a list of chunks. Reset keeps the chunks. */
typedef struct amp__chunk {
  struct amp__chunk *next;
  size_t size; /* usable bytes after the header */
  size_t used;
} amp__chunk;

typedef struct amp__arena {
  amp__chunk *first;
  amp__chunk *cur;
  size_t used; /* bytes handed out since the last reset (with padding) */
  size_t peak;
} amp__arena;

/* One autocast cache entry: the cast of a leaf to a dtype, made once per
 * outermost autocast region. */
typedef struct amp__cast_entry {
  const amp_tensor *src;
  amp_dtype dtype;
  amp_tensor *cast;
} amp__cast_entry;

#define AMP__AUTOCAST_DEPTH 32

struct amp_ctx {
  int threads;
  const amp__kernels *k;       /* the kernel table (kernels.h), never NULL */
  amp__gemm_blocking gemm_blk; /* the GEMM blocking for k on this CPU */
  int bf16_dot;                /* 1: BF16 GEMMs use vdpbf16ps (where k has it) */
  amp_status status;
  char message[512];
  amp__arena arenas[2];
  /* Autograd: the tape (node pointers; the nodes live in the step arena). */
  struct amp__node **tape;
  size_t tape_len, tape_cap;
  int no_grad_depth;
  /* Autocast: the region stack (AMP_F16/AMP_BF16 enabled, AMP_F32 disabled)
   * and the cast cache of the outermost region. */
  amp_dtype autocast[AMP__AUTOCAST_DEPTH];
  int autocast_depth;
  amp__cast_entry *cast_cache;
  size_t cast_len, cast_cap;
  /* Kernel scratch (GEMM's packed panels), kept between calls so that each
   * call does not map and fault in fresh pages; see amp__scratch_get. */
  void *scratch;
  size_t scratch_bytes;
  atomic_flag scratch_busy;
  /* The parameter store's slabs (src/nn/params.c): every parameter's FP32
   * master, FP32 gradient and 16-bit working copy. */
  struct amp__param_slab *param_slabs; /* all slabs, newest first */
  struct amp__param_slab *param_cur;   /* where amp_param_new carves */
  /* The module observer (amp_ctx_set_module_observer; src/nn/module.c). */
  amp_module_observer module_observer;
  void *module_observer_user;
  /* FP8 training (src/autocast/fp8.c): the scaling state of amp_fp8_create
   * (NULL: none) and whether an FP8 region is open. */
  struct amp__fp8 *fp8;
  int fp8_active;
};

/* The internal links of a tensor (see amp_tensor.internal_). */
static inline amp_tensor *amp__work(const amp_tensor *t) { return t->internal_.work; }
static inline amp_tensor *amp__master(const amp_tensor *t) { return t->internal_.master; }
static inline struct amp__node *amp__node_of(const amp_tensor *t) { return t->internal_.node; }
static inline void amp__set_work(amp_tensor *t, amp_tensor *w) { t->internal_.work = w; }
static inline void amp__set_master(amp_tensor *t, amp_tensor *m) { t->internal_.master = m; }
static inline void amp__set_node(amp_tensor *t, struct amp__node *n) { t->internal_.node = n; }

/* What the library knows of a leaf's gradient (amp_tensor internal_
 * grad_check): nothing, or that the last writer of all of it (a GEMM that
 * checked its output, amp_epilogue.nonfinite) left it finite or not. Every
 * write through the autograd's gradient accessors resets it to UNCHECKED
 * before the writer may record a verdict (amp__grad_witness), and so do
 * zeroing and unscaling. Trusted only by an optimizer created with
 * amp_optim_params.grads_checked_in_backward. */
enum { AMP__GRAD_UNCHECKED = 0, AMP__GRAD_FINITE = 1, AMP__GRAD_NONFINITE = 2 };
static inline int amp__grad_check(const amp_tensor *t) { return t->internal_.grad_check; }
static inline void amp__set_grad_check(amp_tensor *t, int c) { t->internal_.grad_check = c; }

/* Records the first error on ctx (NULL ctx: nothing is recorded) and returns
 * `s`, so callers can write `return amp__error(ctx, ...)`. */
amp_status amp__error(amp_ctx *ctx, amp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Scratch memory for one kernel call: 64-byte aligned, uninitialised, at
 * least `bytes`. It is the context's buffer (grown as needed and kept until
 * amp_ctx_free; *shared set to 1) unless ctx is NULL or the buffer is in use
 * by another call; then it is a fresh allocation (*shared 0). Returns NULL
 * when out of memory. Pass the result and *shared to amp__scratch_put. */
void *amp__scratch_get(amp_ctx *ctx, size_t bytes, int *shared);
void amp__scratch_put(amp_ctx *ctx, void *p, int shared);

/* Waits until *v >= want (acquire). For threads of one kernel call that
 * arrive within microseconds of each other: spins briefly, then gives the
 * core away (on a busy machine the thread it waits for may need it). */
void amp__wait_at_least(atomic_int *v, int want);

/* The pieces of amp_ctx_step_reset() (src/core/context.c), each owned by its
 * layer: the step arena's chunks rewound (src/tensor/arena.c), the tape
 * emptied (src/autograd/tape.c), the autocast cast cache emptied
 * (src/autocast/autocast.c). */
void amp__arena_reset(amp__arena *a);
void amp__arena_free(amp__arena *a);
void amp__tape_reset(amp_ctx *ctx);
void amp__autocast_reset(amp_ctx *ctx);
/* FP8 (src/autocast/fp8.c): the end of an FP8 step when amaxes were
 * recorded in it (amp_fp8_step_end), and freeing the state with ctx. */
void amp__fp8_step_reset(amp_ctx *ctx);
void amp__fp8_free(amp_ctx *ctx);

/* A tensor struct of the given dtype and shape in `arena`, its data NULL:
 * amp_tensor_new() without the data (the caller points it somewhere). NULL
 * (error recorded) on bad arguments, as amp_tensor_new(). */
amp_tensor *amp__tensor_header(amp_ctx *ctx, amp_arena_kind arena, amp_dtype dtype, int ndim,
                               const int64_t *shape);

/* Frees the parameter store's slabs (amp_ctx_free). */
void amp__params_free(amp_ctx *ctx);

/* amp_convert_ex() with ctx's kernel table and thread count: what the library
 * itself calls, so that no_simd, a swapped table and the context's threads
 * apply to conversions too (dtype/convert.c). */
amp_status amp__convert(amp_ctx *ctx, void *dst, amp_dtype dst_type, const void *src,
                        amp_dtype src_type, size_t n, const amp_convert_opts *opts);

/* Thread count to use for a kernel call (>= 1). */
int amp__threads(const amp_ctx *ctx);

/* Opens `path` read-only if it names a regular file, without blocking on
 * anything else (a FIFO, a device): opened O_NONBLOCK, checked with fstat,
 * the flag then cleared. Returns the descriptor (its size in *size), -1
 * when it cannot be opened (errno set), -2 when it is not a regular file. */
int amp__open_regular(const char *path, int64_t *size);

#endif
