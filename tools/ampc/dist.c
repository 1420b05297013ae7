/* Gradient accumulation and data parallelism of `ampc train`: the options,
 * the global batch, and one step's gradients over micro-batches and ranks
 * (see dist.h for the conventions; the messages are in dist_comm.c). */
#include "dist.h"
#include "json_out.h"
#include "opts.h"
#include "train_opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "STEP:N" into *step, *n; returns 1, or 0 (message printed). */
static int parse_pair(const char *flag, const char *v, long long *step, long *n) {
  char extra;
  if (sscanf(v, "%lld:%ld%c", step, n, &extra) != 2 || *step < 0 || *n < 0) {
    fprintf(stderr, "ampc train: %s: '%s' is not STEP:RANK (two whole numbers >= 0)\n", flag, v);
    return 0;
  }
  return 1;
}

/* The options this file owns (parsed here, before the option table sees
 * the rest; documented in the train command's notes). */
static const char *const DIST_FLAGS[] = {
    "--accum",      "--global-batch", "--mpi-timeout",         "--grad-comm",
    "--debug-exit", "--debug-hang",   "--debug-nonfinite-grad"};

/* The flag of DIST_FLAGS that `a` is (as "--flag" or "--flag=VALUE"), or NULL;
 * *eq is set to the value after '=' (or NULL). */
static const char *dist_flag(const char *a, const char **eq) {
  *eq = NULL;
  for (size_t k = 0; k < sizeof DIST_FLAGS / sizeof *DIST_FLAGS; k++) {
    size_t n = strlen(DIST_FLAGS[k]);
    if (strncmp(a, DIST_FLAGS[k], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
      if (a[n] == '=') *eq = a + n + 1;
      return DIST_FLAGS[k];
    }
  }
  return NULL;
}

/* A whole number in [lo, hi] for `flag`, or 0 after the message. */
static int dist_whole(const char *flag, const char *v, long lo, long hi, long *out) {
  long long x;
  if (ampc_opts_whole(v, (double)lo, (double)hi, &x)) {
    *out = (long)x;
    return 1;
  }
  ampc_opts_error(&ampc_cmd_train, "%s: '%s' is not a whole number in [%ld, %ld]", flag, v, lo, hi);
  return 0;
}

int dist_opts_extract(int *argc, char **argv, dist_opts *o) {
  *o = (dist_opts){1, 0, 0, 120.0, -1, -1, -1, -1, -1, -1, AMP_F32};
  int w = 0;
  for (int i = 0; i < *argc; i++) {
    const char *eq, *a = dist_flag(argv[i], &eq);
    if (strcmp(argv[i], "--batch") == 0 || strncmp(argv[i], "--batch=", 8) == 0) o->batch_given = 1;
    if (!a) {
      argv[w++] = argv[i];
      continue;
    }
    if (!eq && i + 1 >= *argc) return ampc_usage_error("%s needs a value", a);
    const char *v = eq ? eq : argv[++i];
    if (strcmp(a, "--accum") == 0) {
      if (!dist_whole(a, v, 1, 65536, &o->accum)) return 2;
    } else if (strcmp(a, "--global-batch") == 0) {
      if (!dist_whole(a, v, 1, 1 << 24, &o->global_batch)) return 2;
    } else if (strcmp(a, "--mpi-timeout") == 0) {
      if (!ampc_opts_real(v, 0.1, 1e7, &o->timeout_s))
        return ampc_opts_error(&ampc_cmd_train, "%s: '%s' is not a number in [0.1, 1e7]", a, v);
    } else if (strcmp(a, "--debug-nonfinite-grad") == 0) {
      if (!parse_pair(a, v, &o->dbg_step, &o->dbg_micro)) return 2;
    } else if (strcmp(a, "--grad-comm") == 0) {
      if (strcmp(v, "f32") == 0)
        o->grad_comm = AMP_F32;
      else if (strcmp(v, "f16") == 0)
        o->grad_comm = AMP_F16;
      else if (strcmp(v, "bf16") == 0)
        o->grad_comm = AMP_BF16;
      else
        return ampc_usage_error("--grad-comm: '%s' is not f32, f16 or bf16", v);
    } else if (strcmp(a, "--debug-hang") == 0) {
      if (!parse_pair(a, v, &o->hang_step, &o->hang_rank)) return 2;
    } else if (!parse_pair(a, v, &o->exit_step, &o->exit_rank)) {
      return 2;
    }
  }
  *argc = w;
  return 0;
}

int dist_init(dist *d) {
  dist_opts o = d->o;
  memset(d, 0, sizeof *d);
  d->o = o;
  return dist_comm_init(d);
}

void dist_finish(dist *d) {
  dist_comm_finish(d);
  free(d->acc);
  free(d->rbuf);
  free(d->xs);
  free(d->ys);
  free(d->g16);
  free(d->r16);
  d->g16 = d->r16 = NULL;
  d->acc = d->rbuf = NULL;
  d->xs = NULL;
  d->ys = NULL;
}

/* The global batch a checkpoint was trained with: train.global_batch, or
 * (a run without it, one process, no accumulation) config.batch. 0 when
 * unreadable (the resume itself reports it). */
static long checkpoint_global_batch(const char *path) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_safetensors *f = NULL;
  long g = 0;
  if (ctx && amp_safetensors_read(ctx, path, &f) == AMP_OK) {
    const char *v = amp_safetensors_meta(f, "train.global_batch");
    if (!v) v = amp_safetensors_meta(f, "config.batch");
    if (v) g = atol(v);
  }
  amp_safetensors_free(f);
  amp_ctx_free(ctx);
  return g > 0 ? g : 0;
}

int dist_resolve_batch(dist *d, long *batch, const char *resume, long *global) {
  long kn = d->o.accum * d->size, g = d->o.global_batch;
  const char *from = "--global-batch";
  if (!g && resume && !d->o.batch_given) {
    g = checkpoint_global_batch(resume);
    from = "the checkpoint's global batch";
  }
  if (g) {
    if (g % kn != 0 || (d->o.batch_given && *batch * kn != g)) {
      if (d->rank == 0)
        fprintf(stderr,
                "ampc train: %s of %ld samples does not split into %d rank(s) x %ld "
                "micro-batch(es)%s: choose --batch B and --accum K with B x K x ranks = %ld\n",
                from, g, d->size, d->o.accum, d->o.batch_given ? " of --batch" : "", g);
      return 2;
    }
    *batch = g / kn;
  }
  *global = *batch * kn;
  d->global = *global;
  return 0;
}

uint64_t dist_hash(uint64_t h, const char *s) {
  if (!h) h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (h ^ 0xff) * 1099511628211ull; /* a separator between strings */
}

uint64_t dist_config_hash(const dist *d, const train_opts *o) {
  run_meta m;
  char buf[256];
  train_opts_meta(o, 0, 0, 0, &m);
  uint64_t h = 0;
  for (int i = 0; i < 2 * m.n; i++) h = dist_hash(h, m.kv[i]);
  snprintf(buf, sizeof buf, "%s|%s|%s|%ld|%ld|%ld|%ld|%lld:%ld|%lld:%ld|%lld:%ld|%g|%d",
           o->save ? o->save : "", o->resume ? o->resume : "", o->metrics ? o->metrics : "",
           o->save_every, o->max_steps, d->o.accum, d->global, d->o.dbg_step, d->o.dbg_micro,
           d->o.exit_step, d->o.exit_rank, d->o.hang_step, d->o.hang_rank, d->o.timeout_s,
           (int)d->o.grad_comm);
  return dist_hash(h, buf);
}

int dist_same_config(dist *d, uint64_t hash) {
  if (d->size == 1) return 1;
  uint64_t *all = malloc(sizeof(uint64_t) * (size_t)d->size);
  if (!all) return 0;
  double w = d->wait_s; /* the figures count the steps' waits only */
  dist_allgather(d, &hash, all, sizeof hash, "the configuration hash");
  d->wait_s = w;
  int bad = -1;
  for (int q = 0; q < d->size && bad < 0; q++)
    if (all[q] != all[0]) bad = q;
  if (bad >= 0 && (d->rank == 0 || d->rank == bad))
    fprintf(stderr,
            "ampc train: rank %d: the ranks were started with different options (configuration "
            "hash %016llx on rank 0, %016llx on rank %d): give every rank the same command line\n",
            d->rank, (unsigned long long)all[0], (unsigned long long)all[bad], bad);
  free(all);
  return bad < 0;
}

/* Copies the loader's global batch out of the step arena. */
static int stage(dist *d, const amp_tensor *x, const amp_tensor *y) {
  size_t xb = (size_t)x->numel * amp_dtype_size(x->dtype), yb = sizeof(int32_t) * (size_t)y->numel;
  if (xb > d->xcap) {
    free(d->xs);
    d->xcap = (d->xs = malloc(xb)) ? xb : 0;
  }
  if (yb > d->ycap) {
    free(d->ys);
    d->ycap = (d->ys = malloc(yb)) ? yb : 0;
  }
  if (!d->xs || !d->ys) return 0;
  memcpy(d->xs, x->data, xb);
  memcpy(d->ys, y->data, yb);
  return 1;
}

/* Forward and backward of global micro-batch m (B rows of f features of
 * dtype dt, staged): the loss times loss_mul, then times inv = 1/(K·N),
 * into *lv; gradients added to the (zeroed) gradient buffer. */
static int micro(dist *d, amp_ctx *ctx, const ampc_recipe *r, const ampc_run *run, long m,
                 int64_t B, int64_t f, amp_dtype dt, double loss_mul, float inv, float *lv) {
  int64_t xs[2] = {B, f};
  amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, dt, 2, xs);
  amp_tensor *y = x ? amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_I32, 1, &B) : NULL;
  if (!y) return 0;
  size_t row = (size_t)f * amp_dtype_size(dt);
  memcpy(x->data, (char *)d->xs + (size_t)(m * B) * row, (size_t)B * row);
  memcpy(y->data, d->ys + m * B, sizeof(int32_t) * (size_t)B);
  amp_tensor *loss = ampc_forward_loss(ctx, r, run->model, x, y, loss_mul);
  if (loss) loss = amp_mul_scalar(ctx, loss, inv);
  if (!loss) return 0;
  *lv = *(float *)loss->data;
  if (loss->dtype != AMP_F32) amp_convert(lv, AMP_F32, loss->data, loss->dtype, 1);
  return amp_backward(ctx, amp_scaler_scale(run->scaler, loss)) == AMP_OK;
}

/* This rank's K micro-batches: their gradient sum (g0 + g1) + g2 ... in the
 * gradient buffer, their loss sum in *part. Returns 1, or 0 on an error
 * (recorded on ctx). */
static int local_grads(dist *d, amp_ctx *ctx, const ampc_recipe *r, const ampc_run *run,
                       amp_tensor *x, amp_tensor *y, double loss_mul, int64_t step, float *part) {
  long K = d->o.accum;
  int64_t n = amp_optim_numel(run->opt), f = x->shape[1], B = x->shape[0] / (K * d->size);
  float *g = amp_optim_grad_buffer(run->opt), inv = 1.0f / (float)(K * d->size);
  amp_dtype dt = x->dtype;
  if (K > 1 && !d->acc && !(d->acc = malloc(sizeof(float) * (size_t)n))) return 0;
  if (!stage(d, x, y)) return 0;
  for (long j = 0; j < K; j++) {
    long m = d->rank * K + j;
    float lv;
    amp_ctx_step_reset(ctx); /* x and y are gone: the staged copy serves */
    /* FP8: one step over the micro-batches, m's own rounding stream (the
       ranks thus round as one process with --accum would). */
    if (amp_fp8_micro_batch(ctx, m) != AMP_OK) return 0;
    if (j > 0) amp_optim_zero_grad(run->opt);
    if (!micro(d, ctx, r, run, m, B, f, dt, loss_mul, inv, &lv)) return 0;
    *part = j == 0 ? lv : *part + lv;
    if (step == d->o.dbg_step && m == d->o.dbg_micro) g[0] = INFINITY; /* the test switch */
    if (K == 1) continue;
    if (j == 0)
      memcpy(d->acc, g, sizeof(float) * (size_t)n);
    else
      for (int64_t i = 0; i < n; i++) d->acc[i] += g[i];
  }
  if (K > 1) memcpy(g, d->acc, sizeof(float) * (size_t)n);
  return 1;
}

/* amp_fp8_reduce_amax's reduce: each amax becomes the maximum over the
 * ranks (max is exact, so the order of the ranks does not matter). */
static void amax_max(float *amax, int n, void *user) {
  dist *d = user;
  float *all = malloc(sizeof(float) * (size_t)n * (size_t)d->size);
  if (!all) {
    fprintf(stderr, "ampc train: rank %d: out of memory for the FP8 amaxes\n", d->rank);
    _exit(1); /* the other ranks' bounded wait ends the job */
  }
  dist_allgather(d, amax, all, (int)sizeof(float) * n, "the FP8 amaxes");
  for (int q = 0; q < d->size; q++)
    for (int i = 0; i < n; i++) {
      float a = all[(size_t)q * (size_t)n + (size_t)i];
      amax[i] = a > amax[i] ? a : amax[i];
    }
  free(all);
}

int dist_step_grads(dist *d, amp_ctx *ctx, const ampc_recipe *r, const ampc_run *run, amp_tensor *x,
                    amp_tensor *y, double loss_mul, int64_t step, float *loss) {
  if (step == d->o.exit_step && d->rank == d->o.exit_rank) {
    fprintf(stderr, "ampc train: rank %d: --debug-exit: exiting at step %lld\n", d->rank,
            (long long)step);
    _exit(3);
  }
  if (step == d->o.hang_step && d->rank == d->o.hang_rank) {
    fprintf(stderr, "ampc train: rank %d: --debug-hang: stops answering at step %lld\n", d->rank,
            (long long)step);
    for (;;) sleep(1000);
  }
  float part = NAN;
  int ok = local_grads(d, ctx, r, run, x, y, loss_mul, step, &part);
  float mine[2] = {part, ok ? 0.0f : 1.0f}, *all = malloc(sizeof mine * (size_t)d->size);
  if (!all) return 1;
  dist_allgather(d, mine, all, sizeof mine, "the step's losses");
  int failed = -1;
  for (int q = 0; q < d->size; q++)
    if (all[2 * q + 1] != 0 && failed < 0) failed = q;
  float sum = all[0];
  for (int q = 1; q < d->size; q++) sum += all[2 * q];
  free(all);
  if (!ok) return 1;
  if (failed >= 0) {
    fprintf(stderr, "ampc train: rank %d stops: rank %d failed at step %lld\n", d->rank, failed,
            (long long)step);
    return 2;
  }
  *loss = sum;
  d->numel = amp_optim_numel(run->opt);
  dist_reduce_grads(d, amp_optim_grad_buffer(run->opt), d->numel);
  /* FP8: every rank records the largest amax of any rank's micro-batches,
     so all keep one history, as one process with --accum does. */
  if (d->size > 1 && amp_fp8_reduce_amax(ctx, amax_max, d) != AMP_OK) return 1;
  return 0;
}

int dist_same_result(dist *d, amp_optim *opt, float scale) {
  if (d->size == 1) return 1;
  const unsigned char *p = (const unsigned char *)amp_optim_master_buffer(opt);
  uint64_t h = 1469598103934665603ull, *all = malloc(sizeof(uint64_t) * (size_t)d->size);
  if (!all) return 0;
  size_t nb = sizeof(float) * (size_t)amp_optim_numel(opt);
  for (size_t i = 0; i < nb; i++) h = (h ^ p[i]) * 1099511628211ull;
  uint32_t sb;
  memcpy(&sb, &scale, sizeof sb);
  h = (h ^ sb) * 1099511628211ull;
  double w = d->wait_s;
  dist_allgather(d, &h, all, sizeof h, "the final weights' hash");
  d->wait_s = w;
  int same = 1;
  for (int q = 1; q < d->size; q++) same &= all[q] == all[0];
  free(all);
  if (!same)
    fprintf(stderr, "ampc train: rank %d: the ranks ended with different weights or scales\n",
            d->rank);
  return same;
}

void dist_json(const dist *d, cJSON *j, double train_s) {
  if (d->size == 1 && d->o.accum == 1) return;
  int N = d->size;
  double per = d->reductions ? d->bytes_sent / (double)d->reductions : 0;
  double opt = 2.0 * (N - 1) / N * 4.0 * (double)d->numel;
  ampc_json_int(j, "ranks", N);
  ampc_json_int(j, "accum", d->o.accum);
  ampc_json_int(j, "global_batch", d->global);
  ampc_json_str(j, "grad_comm", amp_dtype_name(d->o.grad_comm));
  ampc_json_fmt(j, "grad_bytes", "%.0f", 4.0 * (double)d->numel);
  ampc_json_fmt(j, "comm_bytes_per_step", "%.0f", per);
  ampc_json_fmt(j, "comm_optimal_bytes_per_step", "%.0f", opt);
  ampc_json_fmt(j, "comm_ratio", "%.4f", opt > 0 ? per / opt : 0);
  ampc_json_fmt(j, "comm_s_per_step", "%.6f",
                d->reductions ? d->comm_s / (double)d->reductions : 0);
  ampc_json_fmt(j, "mpi_wait_s", "%.4f", d->wait_s);
  ampc_json_fmt(j, "mpi_wait_fraction", "%.4f", train_s > 0 ? d->wait_s / train_s : 0);
  ampc_json_fmt(j, "comm_fraction", "%.4f", train_s > 0 ? d->comm_s / train_s : 0);
}
