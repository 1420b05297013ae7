/* Internal interface of the ops, the tape and autocast. Not public.
 *
 * An op is one line of the op list (ops.def), which makes its row of the op
 * table (table.c): its name, its autocast category and its backward
 * function. Its forward is the public function
 * (amp_linear, amp_softmax, ...), written in three steps:
 *
 *   amp_tensor *in[] = {x, w, b}, *c[3];
 *   amp_dtype dt;
 *   if (!amp__op_inputs(ctx, AMP__OP_LINEAR, 3, in, c, MASK_OPTIONAL(2), &dt)) return NULL;
 *   ... check shapes, allocate the result with amp__op_result(), run kernels ...
 *   amp__node *n = amp__record(ctx, AMP__OP_LINEAR, out, 3, c);
 *   if (n) ... save what backward needs in n ...
 *
 * amp__op_inputs() applies the autocast policy of the op's category and the
 * promotion rule, so every floating input in c[] has the compute dtype dt.
 */
#ifndef AMPC_OPS_INTERNAL_H
#define AMPC_OPS_INTERNAL_H

#include "../core/internal.h"

/* Op identifiers: the lines of the op list (ops.def), in list order. */
typedef enum amp__op {
#define AMP__OP(id, name, category, reads, backward) AMP__OP_##id,
#include "ops.def"
#undef AMP__OP
  AMP__OP_COUNT
} amp__op;

#define AMP__MAX_INPUTS 4

/* One tape entry. Nodes live in the step arena. */
typedef struct amp__node {
  amp__op op;
  int nin;
  amp_tensor *in[AMP__MAX_INPUTS]; /* inputs as the op computed on them (after casts) */
  amp_tensor *out;
  amp_tensor *saved; /* op-specific: a mask, argmax indices, statistics */
  int64_t iarg[6];   /* op-specific integers (strides, padding, ...) */
  float farg[2];     /* op-specific floats (scale, eps, ...) */
  void *aux;         /* op-specific state in the step arena (FP8 linear: its
                        quantised operands) */
} amp__node;

/* Backward of one node: `gout` is the gradient of n->out (dtype of n->out).
 * It adds the gradients of the inputs that require them with amp__grad_add()
 * or writes them through amp__grad_of(). */
typedef amp_status (*amp__backward_fn)(amp_ctx *ctx, amp__node *n, const amp_tensor *gout);

/* The backward of every op of the list (flatten's is reshape's, declared
 * twice, which C allows). */
#define AMP__OP(id, name, category, reads, backward)                                               \
  amp_status backward(amp_ctx *ctx, amp__node *n, const amp_tensor *gout);
#include "ops.def"
#undef AMP__OP

/* How an op takes its floating inputs (the `reads` column of ops.def). */
typedef enum amp__op_reads {
  AMP__READS_CAST = 0, /* cast to the compute dtype by amp__op_inputs() */
  AMP__READS_OWN = 1   /* left in their own dtypes; the op loads each into F32 */
} amp__op_reads;

typedef struct amp__op_def {
  const char *name;
  amp_op_category category;
  amp__op_reads reads;
  amp__backward_fn backward;
} amp__op_def;

/* The op table (table.c), indexed by amp__op. */
extern const amp__op_def amp__ops[AMP__OP_COUNT];

/* Bit i set: input i may be NULL (an optional bias). */
#define AMP__OPTIONAL(i) (1u << (i))

/* Prepares an op's inputs: records an error and returns 0 when a required
 * input is NULL (unless an error is already recorded, which explains the
 * NULL); sets the compute dtype (*dt) from the op's category, the autocast
 * state and promotion and, for an op that reads CAST, casts the floating
 * inputs so that each c[i] has dtype *dt (an op that reads OWN gets them
 * as they are: c[i] = in[i]); integer inputs and NULL optional inputs pass
 * through. Returns 1 on success. */
int amp__op_inputs(amp_ctx *ctx, amp__op op, int nin, amp_tensor *const *in, amp_tensor **c,
                   unsigned optional, amp_dtype *dt);

/* Allocates an op's result in the step arena (uninitialised). */
amp_tensor *amp__op_result(amp_ctx *ctx, amp_dtype dt, int ndim, const int64_t *shape);

/* Records node `op` producing `out` from inputs c[0..nin) when gradient mode
 * is on and some input requires a gradient: out then requires a gradient and
 * points at the node. Returns the node, or NULL when nothing was recorded (or
 * memory ran out, which is recorded on ctx). */
amp__node *amp__record(amp_ctx *ctx, amp__op op, amp_tensor *out, int nin, amp_tensor *const *c);

/* amp_linear() inside an FP8 region (op_linear_fp8.c): c[] the inputs after
 * autocast (bias may be NULL), dt the compute dtype, shape the result's.
 * Its backward, for a node whose aux is set. */
amp_tensor *amp__linear_fp8(amp_ctx *ctx, amp_tensor *const *c, amp_dtype dt, int ndim,
                            const int64_t *shape);
amp_status amp__linear_fp8_backward(amp_ctx *ctx, amp__node *nd, const amp_tensor *g);
/* The FP8 operands such a node keeps for its backward: the quantised x when
 * w needs a gradient, the quantised w (weight[i] = 1) when x does. Returns
 * how many (0..2) it wrote to q[] and weight[]. */
int amp__linear_fp8_saved(const amp__node *nd, amp_fp8_matrix *q, int *weight);

/* The tensor that receives t's gradient, or NULL when t needs none: a leaf's
 * F32 gradient; for a 16-bit copy of a leaf, the leaf's F32 gradient; for an
 * intermediate result, t->grad in t's dtype, allocated in the step arena on
 * first use. *accumulate is set to 1 when the target already holds a value
 * to add to (use beta = 1), 0 when it must be overwritten. */
amp_tensor *amp__grad_of(amp_ctx *ctx, amp_tensor *t, int *accumulate);

/* As amp__grad_of(), for a caller that writes every element of the target
 * when *accumulate is 0 (a beta = 0 GEMM over all of it): a target allocated
 * here is not zeroed first. */
amp_tensor *amp__grad_of_overwrite(amp_ctx *ctx, amp_tensor *t, int *accumulate);

/* 1 when t's gradient is a leaf's (t a parameter, or a 16-bit copy of
 * one): the gradients whose inf/NaN verdict amp__grad_witness records. */
int amp__grad_is_leaf(const amp_tensor *t);

/* Records that a write which covered all of t's gradient (t a leaf, or a
 * 16-bit copy of one; nothing otherwise) left it finite or not (nonfinite),
 * as a GEMM's epilogue saw the values it stored (amp_epilogue.nonfinite). */
void amp__grad_witness(amp_tensor *t, int nonfinite);

/* Adds t->numel values g (dtype gdt) to t's gradient (see amp__grad_of()),
 * converting as needed. No-op when t needs no gradient. */
amp_status amp__grad_add(amp_ctx *ctx, amp_tensor *t, const void *g, amp_dtype gdt);

/* Where a backward writes a freshly computed gradient for t in dtype dt:
 * t's gradient buffer itself when it holds no value yet and has dtype dt,
 * else a scratch buffer in the step arena. Follow with amp__grad_done().
 * Returns NULL when t needs no gradient or memory ran out (check
 * ctx->status). */
void *amp__grad_begin(amp_ctx *ctx, amp_tensor *t, amp_dtype dt);

/* amp__grad_begin() for an F32 gradient that may already hold a value: when
 * t's gradient buffer is F32 and holds one (*acc = 1), the buffer itself, to
 * which the caller adds its values (dst = dst + v: the F32 addition that
 * amp__grad_done() would do with a scratch buffer, so the same bits, without
 * the scratch). Otherwise amp__grad_begin() with *acc = 0. Follow with
 * amp__grad_done(). */
void *amp__grad_begin_acc(amp_ctx *ctx, amp_tensor *t, amp_dtype dt, int *acc);

/* Gives t the gradient g (t's element count) without a copy when t is an
 * intermediate result with no gradient yet and g has t's dtype: t's
 * gradient becomes a view of g's data. Otherwise amp__grad_add(). For a
 * backward whose input gradient is its output gradient unchanged (add, a
 * view): nothing reads g after that backward, and whatever is added to t's
 * gradient later may overwrite it. */
amp_status amp__grad_pass(amp_ctx *ctx, amp_tensor *t, const amp_tensor *g);

/* Completes amp__grad_begin(): adds the scratch buffer into t's gradient when
 * one was used. */
amp_status amp__grad_done(amp_ctx *ctx, amp_tensor *t, void *buf, amp_dtype dt);

/* Back-propagates from t with t's gradient seeded by t->numel values `seed`
 * (dtype sdt); amp_backward() is this with a scalar 1. Intermediate
 * gradients are cleared first (recomputed on every call). */
amp_status amp__backward_seeded(amp_ctx *ctx, amp_tensor *t, const void *seed, amp_dtype sdt);

/* Formats a tensor's shape as "[2,3,4] f16" into buf (for messages). */
const char *amp__shape_str(const amp_tensor *t, char *buf, size_t size);

/* The widest of two floating dtypes (F16 with BF16 gives F32). */
amp_dtype amp__promote(amp_dtype a, amp_dtype b);

/* A cast without autograd into the step arena (round to nearest even). */
amp_tensor *amp__cast_raw(amp_ctx *ctx, const amp_tensor *x, amp_dtype dt);

/* Cast of a leaf to dt for autocast: the leaf's working copy when it has
 * dtype dt, else the cached cast for this outermost region (made on first
 * use). The result's gradient goes to the leaf. */
amp_tensor *amp__autocast_leaf(amp_ctx *ctx, amp_tensor *leaf, amp_dtype dt);

/* A leaf: requires a gradient and was not produced by an op. */
static inline int amp__is_leaf(const amp_tensor *t) {
  return t->requires_grad && !amp__node_of(t) && !amp__master(t);
}

#endif
