/* Checks `ampc train`, `eval` and `export` make before they commit to a run:
 * that the output directory takes files, that the model and the run fit in
 * memory, that a checkpoint's tensors are the model its metadata names, and
 * that the state about to be kept is finite. Also the JSON form of a number
 * that may not be finite. Public API only. */
#ifndef AMPC_GUARD_H
#define AMPC_GUARD_H

#include "ampc.h"

#include <stdint.h>

/* --save (or any output file): `path` must not be an existing non-regular
 * file, and its directory must take a new file (probed by creating and
 * removing one, which also catches read-only file systems when running as
 * root). Prints "ampc CMD: FLAG: ..." and returns 2 when not; 0 otherwise. */
int ampc_guard_output(const char *cmd, const char *flag, const char *path);

/* The memory a model of sizes[0..n) takes: parameters, and the bytes per
 * parameter of its masters, gradients, working copies and moments. */
typedef struct ampc_mem_plan {
  double params;      /* number of parameters */
  double state_bytes; /* masters, gradients, working copy, moments */
  double act_bytes;   /* activations of one batch (forward and backward) */
  double other_bytes; /* data set, per-step timings */
} ampc_mem_plan;

/* Estimates a training run's memory (optim_state: 0 none, 1 momentum, 2
 * Adam moments; work_bytes: the 16-bit working copy's element size, 0 for
 * none). */
ampc_mem_plan ampc_mem_estimate(const long *sizes, int n, long batch, int optim_state,
                                int work_bytes, double data_bytes, double steps);

/* Refuses (message "ampc CMD: ...", returns 1) a plan above the memory limit
 * (the available memory, or RLIMIT_AS / RLIMIT_DATA when lower); 0
 * otherwise. */
int ampc_guard_memory(const char *cmd, const char *model, const ampc_mem_plan *m);

/* Before building the model of a checkpoint: the file's F32 tensors other
 * than "optim.*" must hold exactly as many values as the MLP of sizes[0..n)
 * has parameters, and the model must fit in memory. Prints a message and
 * returns 1 when not; 0 otherwise. */
int ampc_guard_checkpoint_model(const char *cmd, const char *path, const amp_safetensors *f,
                                const char *model, const long *sizes, int n);

/* Writes `v` with printf format `fmt` into buf[0, cap), or "null" when it
 * is not finite (JSON has no NaN or infinity); returns buf. */
const char *ampc_json_num(char *buf, size_t cap, const char *fmt, double v);

#endif
