/* Gradient accumulation and MPI data parallelism for `ampc train`.
 *
 * One optimizer step consumes a global batch of G = B·K·N samples: N ranks
 * (1 without mpirun), each running K micro-batches of B samples (--accum K,
 * --batch B). The loader reads global batches of G samples in its seeded
 * order; micro-batch m = r·K + j of a global batch (rank r, its j-th) is
 * rows [m·B, (m+1)·B) of it, which are exactly the samples of loader batch
 * s·K·N + m of a loader with batch B (the shuffle depends on seed and
 * epoch only).
 *
 * Each micro-batch's loss is multiplied by fp32(1/(K·N)) (PyTorch's
 * `loss / accumulation_steps`, as a product) before loss scaling, and its
 * FP32 gradients are computed from zero. The K gradients of a rank are
 * summed in order (g0 + g1) + g2 ...; the N rank sums are then summed in
 * rank order (s0 + s1) + s2 ... by a reduce-scatter (rank r owns slice r of
 * the gradient buffer, receives it from every rank and adds the N copies in
 * rank order) and an all-gather. Every rank thus holds the same bits, and
 * `mpirun -np N ampc train --batch B` holds the bits of `ampc train --batch
 * B --accum N`. The step's loss is the sum of the scaled micro-batch losses
 * in the same order. Everything after the gradients (unscale and inf check,
 * clipping norm, optimizer, scaler update, LR schedule) then runs on every
 * rank on identical inputs, so it agrees without further messages.
 *
 * Every wait on another rank is bounded (--mpi-timeout seconds): a rank
 * that dies or hangs makes the others stop with a message (MPI_Abort), and
 * mpirun exits non-zero. */
#ifndef AMPC_DIST_H
#define AMPC_DIST_H

#include "ampc.h"
#include "recipe.h"

#include <stdint.h>
#include <cjson/cJSON.h>
#include <stdio.h>

/* The options this file owns, taken out of argv before the others are
 * parsed. */
typedef struct dist_opts {
  long accum;          /* --accum K: micro-batches per rank and step (1) */
  long global_batch;   /* --global-batch G (0: B·K·N) */
  int batch_given;     /* --batch was on the command line */
  double timeout_s;    /* --mpi-timeout: bound of every wait on other ranks */
  long long dbg_step;  /* --debug-nonfinite-grad STEP:MICRO (-1: off) */
  long dbg_micro;      /* the global micro-batch (the rank, with --accum 1) */
  long long exit_step; /* --debug-exit STEP:RANK: that rank exits (code 3) */
  long exit_rank;      /*   at the start of that step (-1: off) */
  long long hang_step; /* --debug-hang STEP:RANK: that rank stops answering */
  long hang_rank;      /*   (sleeps) at the start of that step (-1: off) */
  amp_dtype grad_comm; /* --grad-comm f32|f16|bf16: the exchange's dtype */
} dist_opts;

/* The process group and the step's buffers. */
typedef struct dist {
  dist_opts o;
  int rank, size; /* 0 and 1 without mpirun */
  int mpi;        /* MPI was initialised */
  long global;    /* the global batch G */
  float *acc;     /* K > 1: the running sum of this rank's micro-batches */
  float *rbuf;    /* the slices received in the reduce-scatter */
  void *g16;      /* --grad-comm f16/bf16: the narrowed gradient */
  void *r16;      /*   and the narrowed slices received */
  void *xs;       /* the global batch, staged out of the step arena */
  int32_t *ys;
  size_t xcap, ycap;
  /* Communication figures (gradient exchange only): */
  double bytes_sent; /* gradient bytes this rank sent, all steps */
  double comm_s;     /* seconds in exchanges (waiting and summing) */
  double wait_s;     /* of which waiting on other ranks */
  int64_t reductions;
  int64_t numel;
} dist;

/* Takes the options above out of argv (compacting it, *argc updated); the
 * others stay for train_opts_parse. Returns 0, or 2 (message printed). */
int dist_opts_extract(int *argc, char **argv, dist_opts *o);

/* Starts MPI when the process was launched by mpirun (OMPI_COMM_WORLD_SIZE
 * or PMIX_RANK set; a build without MPI refuses such a launch with more
 * than one rank). Returns 0, or 1 (message printed). */
int dist_init(dist *d);

/* Ends MPI (a normal exit: every rank gets here) and frees the buffers. */
void dist_finish(dist *d);

/* The micro-batch size B for the options (B from --batch, the checkpoint's
 * global batch when resuming without --batch, or --global-batch): sets
 * o->batch and *global. Returns 0, or 2 (message printed). */
int dist_resolve_batch(dist *d, long *batch, const char *resume, long *global);

/* Compares `hash` (of the configuration) across ranks. Returns 1 when all
 * agree; otherwise 0 on every rank (message printed). */
int dist_same_config(dist *d, uint64_t hash);

/* FNV-1a over a string, chained from h (start with 0). */
uint64_t dist_hash(uint64_t h, const char *s);

struct train_opts;
/* A hash of everything that must be equal on every rank: the run's
 * configuration (as its checkpoint records it), the outputs, the step
 * limits and this file's options. */
uint64_t dist_config_hash(const dist *d, const struct train_opts *o);

/* One step's gradients, from global batch x, y (the loader's, in the step
 * arena): forward and backward of this rank's micro-batches, their sum, the
 * exchange. On return every rank's gradient buffer holds the step's
 * gradient and *loss the step's loss. Returns 0; 1 on a local error
 * (recorded on ctx); 2 when another rank failed (message printed). */
int dist_step_grads(dist *d, amp_ctx *ctx, const ampc_recipe *r, const ampc_run *run, amp_tensor *x,
                    amp_tensor *y, double loss_mul, int64_t step, float *loss);

/* Checks that every rank ends with the same weights and scale (a hash);
 * returns 1, or 0 (message printed). */
int dist_same_result(dist *d, amp_optim *opt, float scale);

/* ,"ranks":N,... fields of the --json summary (none for a plain run);
 * train_s: the seconds of all steps. */
void dist_json(const dist *d, cJSON *j, double train_s);

/* The messages (dist_comm.c; without MPI, one rank and no messages). */

/* MPI_Init when launched by mpirun: sets d->rank, d->size, d->mpi. Returns
 * 0, or 1 (message printed). */
int dist_comm_init(dist *d);
void dist_comm_finish(dist *d);

/* Every rank's `bytes` bytes at `send`, in rank order, into recv (size ·
 * bytes), waiting at most the timeout. Returns 1 (aborts the job on a
 * timeout or an MPI error). */
int dist_allgather(dist *d, const void *send, void *recv, int bytes, const char *what);

/* The rank-ordered sum of every rank's g[0, n) into g, on every rank. With
 * --grad-comm f16|bf16 the values travel in 16 bits: every rank's gradient
 * is multiplied by a power of two 2^e agreed across ranks (the largest
 * with N · max|g| · 2^e <= 2^15, so neither the values nor their sum
 * overflow F16, and small ones keep clear of its subnormals), rounded to
 * 16 bits (nearest even), sent, widened and summed in F32 in rank order;
 * the sum is rounded to 16 bits once for the all-gather, every rank (the
 * owner too) widens the same 16-bit values and multiplies by 2^-e. A
 * non-finite gradient on any rank sends the step in F32 (it is skipped
 * anyway). */
int dist_reduce_grads(dist *d, float *g, int64_t n);

#endif
