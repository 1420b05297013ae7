/* Internal layout of the optimizer and its update kernels. */
#ifndef AMPC_OPTIM_INTERNAL_H
#define AMPC_OPTIM_INTERNAL_H

#include "../core/internal.h"
#include "optim_scaler.h"

struct amp_optim {
  amp_ctx *ctx;
  amp_optim_params p;
  float lr;
  int64_t n;     /* parameter elements */
  float *master; /* FP32 masters (the parameters' data point in here) */
  float *grad;   /* FP32 gradients */
  float *m, *v;  /* Adam moments; SGD momentum buffer in m */
  void *work;    /* 16-bit working copies, or NULL */
  int nparams;
  amp_tensor **params;
  int64_t step;      /* updates done */
  float grad_factor; /* pending gradient multiplier (clipping; 1/S in the
                        scaler's one-pass step) */
  size_t bytes;
  unsigned char *unchecked; /* grads_checked_in_backward: per block, 1 when
                               some parameter's gradient in it needs the
                               scaler's check this step */
};

/* Hyper-parameters of one step. */
typedef struct amp_optim_hyper {
  float lr, gmul, wd;
  float momentum, dampening;
  int nesterov, first;
  float beta1, beta2, eps;
  float bc1;      /* 1 - beta1^t */
  float bc2_sqrt; /* sqrt(1 - beta2^t) */
} amp_optim_hyper;

/* The update rule over n parameters, in place: the entries of the kernel
 * tables (core/kernels.h; callers run amp__kernels_of(ctx)->optim_update).
 * The scalar reference and the AVX2 path do the same operations in the same
 * order (no FMA contraction): the same bits. With w16 non-NULL, also writes
 * each new value rounded to nearest even to wdt (AMP_F16 or AMP_BF16) there,
 * in the same pass: the bits amp_convert gives. */
void amp__optim_update_scalar(amp_optim_kind kind, const amp_optim_hyper *h, int64_t n, float *p,
                              const float *g, float *m, float *v, uint16_t *w16, int wdt);
#ifdef AMPC_HAVE_X86_SIMD
void amp__optim_update_avx2(amp_optim_kind kind, const amp_optim_hyper *h, int64_t n, float *p,
                            const float *g, float *m, float *v, uint16_t *w16, int wdt);
#endif

#endif
