/* The context: thread count, kernel table, sticky error, arenas. */
#include "internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *amp_version(void) { return "0.1.0"; }

const char *amp_status_string(amp_status s) {
  switch (s) {
  case AMP_OK: return "ok";
  case AMP_ERR_INVALID_ARG: return "invalid argument";
  case AMP_ERR_UNSUPPORTED: return "unsupported";
  case AMP_ERR_NOMEM: return "out of memory";
  case AMP_ERR_SHAPE: return "shape mismatch";
  case AMP_ERR_IO: return "i/o error";
  case AMP_ERR_FORMAT: return "malformed input";
  case AMP_ERR_STATE: return "invalid state";
  }
  return "unknown status";
}

amp_ctx *amp_ctx_create(const amp_ctx_params *params) {
  amp_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return NULL;
  atomic_flag_clear(&ctx->scratch_busy);
  amp_ctx_set_threads(ctx, params ? params->threads : 0);
  ctx->k = params && params->no_simd ? &amp__kernels_scalar : amp__kernels_native();
  amp__gemm_blocking_for(ctx->k, &ctx->gemm_blk);
  ctx->bf16_dot = amp__bf16_dot_enabled(params ? params->bf16_dot : 0);
  return ctx;
}

void amp_ctx_free(amp_ctx *ctx) {
  if (!ctx) return;
  amp__arena_free(&ctx->arenas[0]);
  amp__arena_free(&ctx->arenas[1]);
  free(ctx->tape);
  free(ctx->cast_cache);
  free(ctx->scratch);
  amp__fp8_free(ctx);
  amp__params_free(ctx);
  free(ctx);
}

void amp_ctx_step_reset(amp_ctx *ctx) {
  if (!ctx) return;
  /* Everything on the tape and in the autocast cache lived in the step
     arena: they are emptied with it. */
  amp__tape_reset(ctx);
  amp__autocast_reset(ctx);
  amp__fp8_step_reset(ctx);
  amp__arena_reset(&ctx->arenas[AMP_ARENA_STEP]);
}

static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

void amp__wait_at_least(atomic_int *v, int want) {
  for (int spin = 0; atomic_load_explicit(v, memory_order_acquire) < want; spin++) {
    if (spin >= 2000) sched_yield();
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    else
      __builtin_ia32_pause();
#endif
  }
}

void *amp__scratch_get(amp_ctx *ctx, size_t bytes, int *shared) {
  *shared = 0;
  if (!ctx || atomic_flag_test_and_set(&ctx->scratch_busy)) return alloc64(bytes);
  if (ctx->scratch_bytes < bytes) {
    free(ctx->scratch);
    ctx->scratch = alloc64(bytes);
    ctx->scratch_bytes = ctx->scratch ? bytes : 0;
    if (!ctx->scratch) {
      atomic_flag_clear(&ctx->scratch_busy);
      return NULL;
    }
  }
  *shared = 1;
  return ctx->scratch;
}

void amp__scratch_put(amp_ctx *ctx, void *p, int shared) {
  if (shared)
    atomic_flag_clear(&ctx->scratch_busy);
  else
    free(p);
}

amp_status amp_ctx_status(const amp_ctx *ctx) { return ctx ? ctx->status : AMP_ERR_INVALID_ARG; }

const char *amp_ctx_error(const amp_ctx *ctx) { return ctx ? ctx->message : "no context"; }

void amp_ctx_clear_error(amp_ctx *ctx) {
  if (!ctx) return;
  ctx->status = AMP_OK;
  ctx->message[0] = '\0';
}

int amp_ctx_threads(const amp_ctx *ctx) { return amp__threads(ctx); }

void amp_ctx_set_threads(amp_ctx *ctx, int n) {
  if (!ctx) return;
#ifdef _OPENMP
  if (n <= 0) n = omp_get_max_threads();
#else
  n = 1;
#endif
  ctx->threads = n < 1 ? 1 : n;
}

int amp__threads(const amp_ctx *ctx) {
  if (ctx) return ctx->threads;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/* Ops may fail inside a parallel region (conv2d's per-image GEMMs share
 * ctx): the first error recorded wins, its message written whole. */
amp_status amp__error(amp_ctx *ctx, amp_status s, const char *fmt, ...) {
  if (!ctx || s == AMP_OK) return s;
  va_list ap;
  va_start(ap, fmt);
#pragma omp critical(amp__error)
  if (ctx->status == AMP_OK) {
    ctx->status = s;
    vsnprintf(ctx->message, sizeof ctx->message, fmt, ap);
  }
  va_end(ap);
  return s;
}
