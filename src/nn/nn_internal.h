/* The module record shared by the module families (module.c: layers and
 * Sequential; transformer.c: attention, block, GPT; cnn.c: BatchNorm2d and
 * CNN stacks). A module lists the parameters and buffers of itself and of
 * all its children, with dotted names, in declaration order. */
#ifndef AMPC_NN_INTERNAL_H
#define AMPC_NN_INTERNAL_H

#include "../core/internal.h"

typedef amp_tensor *(*amp__module_forward)(amp_ctx *, amp_module *, amp_tensor *);

struct amp_module {
  const char *type;
  amp__module_forward forward;
  int training;
  /* Parameters of this module and all children, in declaration order. */
  int nparams, cap_params;
  amp_tensor **params;
  const char **names;
  /* Buffers (state that is not trained, e.g. BatchNorm's running
   * statistics), likewise. */
  int nbuffers, cap_buffers;
  amp_tensor **buffers;
  const char **buffer_names;
  /* Children, run by the forward function. */
  int nchildren, cap_children;
  amp_module **children;
  const char **child_names; /* the prefix each child's names carry ("" for none) */
  /* Layer settings. */
  int64_t k, stride, padding;
  float p, eps, momentum;
  uint64_t seed, calls;
  int64_t heads, vocab, ctx_len; /* attention and GPT */
  int pool;                      /* CNN stage pooling (see cnn.c) */
};

/* A new module with no parameters, buffers or children, in training mode. */
amp_module *amp__module_new(amp_ctx *ctx, const char *type, amp__module_forward fwd);

/* Appends a parameter or buffer under `name` (copied). Returns 0 on error. */
int amp__module_push_param(amp_ctx *ctx, amp_module *m, amp_tensor *t, const char *name);
int amp__module_push_buffer(amp_ctx *ctx, amp_module *m, amp_tensor *t, const char *name);

/* Makes `child` a child of m and lists its parameters and buffers as
 * "prefix.name" (prefix NULL: the names unchanged). Returns 0 on error. */
int amp__module_adopt(amp_ctx *ctx, amp_module *m, const char *prefix, amp_module *child);

/* A new F32 parameter filled from U(-bound, bound) (or N(0,1)·(-bound) when
 * bound < 0, or the constant `fill` when rng is NULL), pushed under name. */
amp_tensor *amp__module_add_param(amp_ctx *ctx, amp_module *m, const char *name, int ndim,
                                  const int64_t *shape, amp_rng *rng, float bound, float fill);

#endif
