/* Optimizers over FP32 master weights: SGD (momentum, dampening, Nesterov,
 * weight decay), Adam and AdamW (bias correction), as torch.optim computes
 * them. The masters, gradients and 16-bit working copies are the model's run
 * of the parameter store (src/nn/params.c); the optimizer adds its moments,
 * one contiguous buffer each. One pass per step reads master and gradient
 * and writes master, moments and the working copy, block by block so that
 * the block is still in L1 when it is rounded to 16 bits. */
#include "optim_internal.h"

#include "../kernels/kernels_internal.h"
#include "../nn/params_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Elements per block of the fused pass (and per OpenMP work item). */
#define BLOCK 4096

amp_optim_params amp_optim_defaults(amp_optim_kind kind) {
  amp_optim_params p;
  memset(&p, 0, sizeof p);
  p.kind = kind;
  p.lr = kind == AMP_OPTIM_SGD ? 1e-2f : 1e-3f;
  p.beta1 = 0.9f;
  p.beta2 = 0.999f;
  p.eps = 1e-8f;
  p.weight_decay = kind == AMP_OPTIM_ADAMW ? 1e-2f : 0.0f;
  p.work_dtype = AMP_F32;
  p.master_weights = 1;
  p.rounding = AMP_ROUND_NEAREST_EVEN;
  return p;
}

static int check_params(amp_ctx *ctx, const amp_optim_params *p) {
  const char *bad = NULL;
  if ((unsigned)p->kind > AMP_OPTIM_ADAMW)
    bad = "unknown optimizer kind";
  else if (!(p->lr >= 0) || !isfinite(p->lr))
    bad = "lr must be a finite number >= 0";
  else if (!(p->weight_decay >= 0))
    bad = "weight_decay must be >= 0";
  else if (p->kind == AMP_OPTIM_SGD && !(p->momentum >= 0))
    bad = "momentum must be >= 0";
  else if (p->kind == AMP_OPTIM_SGD && p->nesterov && (p->momentum <= 0 || p->dampening != 0))
    bad = "Nesterov momentum needs momentum > 0 and dampening 0";
  else if (p->kind != AMP_OPTIM_SGD &&
           (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1)))
    bad = "betas must be in [0, 1)";
  else if (p->kind != AMP_OPTIM_SGD && !(p->eps >= 0))
    bad = "eps must be >= 0";
  else if (p->work_dtype != AMP_F32 && p->work_dtype != AMP_F16 && p->work_dtype != AMP_BF16)
    bad = "work_dtype must be f32, f16 or bf16";
  else if ((unsigned)p->rounding > AMP_ROUND_STOCHASTIC)
    bad = "unknown rounding";
  if (bad) amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_optim_create: %s", bad);
  return bad == NULL;
}

amp_optim *amp_optim_create(amp_ctx *ctx, amp_module *model, const amp_optim_params *p) {
  if (!ctx) return NULL;
  if (!model || !p) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_optim_create: NULL %s", model ? "params" : "model");
    return NULL;
  }
  if (!check_params(ctx, p)) return NULL;
  int np = amp_module_param_count(model);
  int64_t n = amp_module_param_numel(model);
  if (np == 0) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_optim_create: the model has no parameters");
    return NULL;
  }
  /* The model's parameters, as one run of the parameter store's slabs. */
  amp_tensor **params =
      amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, sizeof(amp_tensor *) * (size_t)np);
  if (!params) return NULL;
  for (int i = 0; i < np; i++) params[i] = amp_module_param(model, i, NULL);
  amp__param_range r;
  if (!amp__params_range(ctx, params, np, &r)) return NULL;
  amp_optim *o = amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, sizeof *o);
  if (!o) return NULL;
  memset(o, 0, sizeof *o);
  o->ctx = ctx;
  o->p = *p;
  o->lr = p->lr;
  o->n = n;
  o->grad_factor = 1.0f;
  o->nparams = np;
  o->params = params;
  o->master = r.slab->master + r.off;
  o->grad = r.slab->grad + r.off;
  if (p->work_dtype != AMP_F32 && !(o->work = amp__params_work(ctx, &r, params, np, p->work_dtype)))
    return NULL;
  /* The optimizer adds only its moments. */
  size_t fb = (size_t)n * sizeof(float);
  int nmoments = p->kind == AMP_OPTIM_SGD ? (p->momentum > 0) : 2;
  if (nmoments >= 1 && !(o->m = amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, fb))) return NULL;
  if (nmoments >= 2 && !(o->v = amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, fb))) return NULL;
  o->bytes = fb * (size_t)(2 + nmoments) + (o->work ? (size_t)n * 2 : 0);
  if (p->grads_checked_in_backward &&
      !(o->unchecked =
            amp_arena_alloc(ctx, AMP_ARENA_PERSISTENT, (size_t)((n + BLOCK - 1) / BLOCK))))
    return NULL;
  memset(o->grad, 0, fb);
  amp__optim_forget_checks(o); /* verdicts on gradients just zeroed */
  if (o->m) memset(o->m, 0, fb);
  if (o->v) memset(o->v, 0, fb);
  if (!p->master_weights && o->work) {
    /* Pure 16-bit weights: the masters start as the 16-bit values. */
    amp__convert(o->ctx, o->work, p->work_dtype, o->master, AMP_F32, (size_t)n, NULL);
    amp__convert(o->ctx, o->master, AMP_F32, o->work, p->work_dtype, (size_t)n, NULL);
  }
  if (amp_optim_sync_work(o) != AMP_OK) return NULL;
  return o;
}

/* Inside a parallel region: this thread's static contiguous share [*b0, *b1)
 * of nblocks blocks; returns the number of threads in the region. */
static int64_t my_blocks(int64_t nblocks, int64_t *b0, int64_t *b1) {
#ifdef _OPENMP
  const int64_t tid = omp_get_thread_num(), nt = omp_get_num_threads();
#else
  const int64_t tid = 0, nt = 1;
#endif
  *b0 = nblocks * tid / nt;
  *b1 = nblocks * (tid + 1) / nt;
  return nt;
}

/* Elements in block b (the last block may be short). */
static int64_t block_len(const amp_optim *o, int64_t b) {
  return o->n - b * BLOCK < BLOCK ? o->n - b * BLOCK : BLOCK;
}

void amp__optim_forget_checks(amp_optim *o) {
  for (int i = 0; i < o->nparams; i++) amp__set_grad_check(o->params[i], AMP__GRAD_UNCHECKED);
}

void amp_optim_zero_grad(amp_optim *o) {
  if (!o) return;
  amp__optim_forget_checks(o);
  /* Static contiguous halves (and so on) of the slab, one per thread: the
     stores of one core fill the slab at about half its write bandwidth. */
  const int64_t nblocks = (o->n + BLOCK - 1) / BLOCK;
#pragma omp parallel num_threads(amp__threads(o->ctx)) if (nblocks > 8)
  {
    int64_t b0, b1;
    my_blocks(nblocks, &b0, &b1);
    const int64_t i0 = b0 * BLOCK, i1 = b1 * BLOCK;
    const int64_t end = i1 < o->n ? i1 : o->n;
    if (end > i0) memset(o->grad + i0, 0, (size_t)(end - i0) * sizeof(float));
  }
  o->grad_factor = 1.0f; /* a pending factor belonged to the gradients just dropped */
}

/* Zeroes the gradients of block b (zero_grad_in_step). */
static void zero_block(amp_optim *o, int64_t b) {
  memset(o->grad + b * BLOCK, 0, (size_t)block_len(o, b) * sizeof(float));
}

void amp__optim_skipped(amp_optim *o) {
  if (o->p.zero_grad_in_step) amp_optim_zero_grad(o);
}

/* Rounds master[i0, i0+len) into the working copy (and, without master
 * weights, back into the master). */
static void write_work(amp_optim *o, int64_t i0, int64_t len) {
  if (!o->work) return;
  char *w = (char *)o->work + (size_t)i0 * amp_dtype_size(o->p.work_dtype);
  amp_convert_opts opts = {o->p.rounding, 0, o->p.seed,
                           (uint64_t)o->step * (uint64_t)o->n + (uint64_t)i0};
  amp__convert(o->ctx, w, o->p.work_dtype, o->master + i0, AMP_F32, (size_t)len, &opts);
  if (!o->p.master_weights)
    amp__convert(o->ctx, o->master + i0, AMP_F32, w, o->p.work_dtype, (size_t)len, NULL);
}

amp_status amp_optim_sync_work(amp_optim *o) {
  if (!o) return AMP_ERR_INVALID_ARG;
  if (!o->work) return AMP_OK;
  amp_convert_opts opts = {AMP_ROUND_NEAREST_EVEN, 0, 0, 0};
  if (o->p.rounding == AMP_ROUND_STOCHASTIC && o->step > 0) /* the last step's own rounding */
    opts = (amp_convert_opts){AMP_ROUND_STOCHASTIC, 0, o->p.seed,
                              (uint64_t)(o->step - 1) * (uint64_t)o->n};
  return amp__convert(o->ctx, o->work, o->p.work_dtype, o->master, AMP_F32, (size_t)o->n, &opts);
}

/* The hyper-parameters of the next step. */
static void next_hyper(const amp_optim *o, amp_optim_hyper *h) {
  h->lr = o->lr;
  h->gmul = o->grad_factor;
  h->wd = o->p.weight_decay;
  h->momentum = o->p.momentum;
  h->dampening = o->p.dampening;
  h->nesterov = o->p.nesterov;
  h->first = o->step == 0;
  h->beta1 = o->p.beta1;
  h->beta2 = o->p.beta2;
  h->eps = o->p.eps;
  int64_t t = o->step + 1;
  /* Bias corrections as PyTorch computes them. */
  h->bc1 = 1.0f - (float)pow((double)o->p.beta1, (double)t);
  h->bc2_sqrt = (float)sqrt(1.0 - pow((double)o->p.beta2, (double)t));
}

/* Updates block b and writes its working copy: an F16 or BF16 copy with
 * nearest rounding inside the update's own pass, other copies (stochastic
 * rounding, no master weights) by converting the block just done (still in
 * L1). */
static void update_block(amp_optim *o, const amp_optim_hyper *h, const amp__kernels *k, int64_t b) {
  const int fused = o->work && (o->p.work_dtype == AMP_F16 || o->p.work_dtype == AMP_BF16) &&
                    o->p.rounding == AMP_ROUND_NEAREST_EVEN && o->p.master_weights;
  const int64_t i0 = b * BLOCK, len = block_len(o, b);
  k->optim_update(o->p.kind, h, len, o->master + i0, o->grad + i0, o->m ? o->m + i0 : NULL,
                  o->v ? o->v + i0 : NULL, fused ? (uint16_t *)o->work + i0 : NULL,
                  (int)o->p.work_dtype);
  if (!fused) write_work(o, i0, len);
  if (o->p.zero_grad_in_step) zero_block(o, b);
}

static void step_done(amp_optim *o) {
  o->step++;
  o->grad_factor = 1.0f;
  if (o->p.zero_grad_in_step) amp__optim_forget_checks(o);
}

/* The verdicts amp_backward() recorded (grads_checked_in_backward): 1 when
 * some parameter's gradient is known to hold an inf or NaN; otherwise marks
 * in o->unchecked the blocks that still need the check (all of them
 * without the setting) and returns 0. */
static int recorded_checks(amp_optim *o, int64_t nblocks) {
  if (!o->unchecked) return 0;
  memset(o->unchecked, 0, (size_t)nblocks);
  for (int i = 0; i < o->nparams; i++) {
    const amp_tensor *t = o->params[i];
    const int c = amp__grad_check(t);
    if (c == AMP__GRAD_NONFINITE) return 1;
    if (c == AMP__GRAD_FINITE) continue;
    const uintptr_t g0 = (uintptr_t)o->grad, at = (uintptr_t)t->grad->data;
    if (at < g0 || (at - g0) / sizeof(float) > (uintptr_t)(o->n - t->numel)) {
      memset(o->unchecked, 1, (size_t)nblocks); /* moved away by a second optimizer */
      return 0;
    }
    const int64_t off = (int64_t)((at - g0) / sizeof(float));
    memset(o->unchecked + off / BLOCK, 1, (size_t)((off + t->numel - 1) / BLOCK - off / BLOCK + 1));
  }
  return 0;
}

amp_status amp_optim_step(amp_optim *o) {
  if (!o) return AMP_ERR_INVALID_ARG;
  amp_optim_hyper h;
  next_hyper(o, &h);
  int64_t nblocks = (o->n + BLOCK - 1) / BLOCK;
  const amp__kernels *k = amp__kernels_of(o->ctx);
#pragma omp parallel for schedule(static) num_threads(amp__threads(o->ctx)) if (nblocks > 8)
  for (int64_t b = 0; b < nblocks; b++) update_block(o, &h, k, b);
  step_done(o);
  return AMP_OK;
}

int amp__optim_step_if_finite(amp_optim *o) {
  amp_optim_hyper h;
  next_hyper(o, &h);
  const int64_t nblocks = (o->n + BLOCK - 1) / BLOCK;
  const amp__kernels *k = amp__kernels_of(o->ctx);
  atomic_int arrived, bad;
  atomic_init(&arrived, 0);
  atomic_init(&bad, recorded_checks(o, nblocks));
  const unsigned char *unchecked = o->unchecked;
  /* One parallel region, not a check pass and an update pass: each thread
     checks the blocks it will update (with grads_checked_in_backward only
     those holding a gradient no GEMM checked, see recorded_checks), the
     threads meet, and each updates its blocks unless some thread saw
     inf/NaN. This saves waking the threads twice, and each thread updates
     the blocks it checked. */
#pragma omp parallel num_threads(amp__threads(o->ctx)) if (nblocks > 8)
  {
    int64_t b0, b1;
    const int64_t nt = my_blocks(nblocks, &b0, &b1);
    int mine = 0;
    for (int64_t b = b0; b < b1 && !atomic_load_explicit(&bad, memory_order_relaxed); b++) {
      if (!unchecked || unchecked[b])
        mine |= amp__check_finite_f32(k, (size_t)block_len(o, b), o->grad + b * BLOCK);
    }
    if (mine) atomic_store(&bad, 1);
    atomic_fetch_add_explicit(&arrived, 1, memory_order_acq_rel);
    amp__wait_at_least(&arrived, (int)nt);
    const int step = !atomic_load(&bad);
    /* Updated in the order checked. Updating the blocks checked last first
       (they are still in this thread's L2) breaks every array's stream at
       each block, which the prefetchers follow only going forward: on the
       reference MLP (AVX2 table, Zen 4) that made the step 2% slower. */
    for (int64_t b = b0; b < b1; b++) {
      if (step) update_block(o, &h, k, b); /* zeroes the block when asked */
      if (o->p.zero_grad_in_step) {
        if (!step) zero_block(o, b);
      } else if (h.gmul != 1.0f) {
        /* Leave the gradients unscaled, as an explicit unscale would (g
           times the same factor): the block is still in this thread's
           cache. */
        float *g = o->grad + b * BLOCK;
        k->elt(AMP__SCALE, AMP_F32, (size_t)block_len(o, b), h.gmul, g, NULL, g);
      }
    }
  }
  if (atomic_load(&bad)) {
    if (o->p.zero_grad_in_step) amp__optim_forget_checks(o); /* the zeroes are unchecked */
    return 1;
  }
  step_done(o);
  return 0;
}

amp_status amp_optim_clip_grad_norm(amp_optim *o, float max_norm, float *norm) {
  if (!o) return AMP_ERR_INVALID_ARG;
  /* Fixed order: blocks summed in double, block sums added in order. */
  double total = 0;
  for (int64_t i0 = 0; i0 < o->n; i0 += BLOCK) {
    const int64_t len = block_len(o, i0 / BLOCK);
    double s = 0;
    const float *g = o->grad + i0;
    for (int64_t i = 0; i < len; i++) s += (double)g[i] * g[i];
    total += s;
  }
  float nrm = (float)sqrt(total) * o->grad_factor;
  if (norm) *norm = nrm;
  /* As torch.nn.utils.clip_grad_norm_: the gradients themselves are
     multiplied by the clip coefficient, so every reader sees the clipped
     values. (The step's g times its factor 1 then gives the same bits as g
     times a pending factor c would.) */
  if (max_norm > 0 && isfinite(nrm) && nrm > max_norm)
    return amp_vec_scale(o->ctx, AMP_F32, (size_t)o->n, max_norm / (nrm + 1e-6f), o->grad, o->grad);
  return AMP_OK;
}

float amp_optim_grad_factor(const amp_optim *o) { return o ? o->grad_factor : 1.0f; }

void amp__optim_grads(amp_optim *o, float **g, int64_t *n) {
  *g = o->grad;
  *n = o->n;
}

void amp__optim_mul_factor(amp_optim *o, float f) { o->grad_factor *= f; }

void amp__optim_drop_factor(amp_optim *o) { o->grad_factor = 1.0f; }
float amp_optim_lr(const amp_optim *o) { return o ? o->lr : 0.0f; }
void amp_optim_set_lr(amp_optim *o, float lr) {
  if (o && lr >= 0 && isfinite(lr)) o->lr = lr;
}
int64_t amp_optim_steps(const amp_optim *o) { return o ? o->step : 0; }
int64_t amp_optim_numel(const amp_optim *o) { return o ? o->n : 0; }
size_t amp_optim_bytes(const amp_optim *o) { return o ? o->bytes : 0; }
float *amp_optim_grad_buffer(amp_optim *o) { return o ? o->grad : NULL; }
float *amp_optim_master_buffer(amp_optim *o) { return o ? o->master : NULL; }

void amp_optim_state(amp_optim *o, int64_t **step, float **m, float **v) {
  if (step) *step = o ? &o->step : NULL;
  if (m) *m = o ? o->m : NULL;
  if (v) *v = o ? o->v : NULL;
}
