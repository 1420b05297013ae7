/* Bump arenas made of chunks. Allocation is a pointer bump; reset keeps the
 * memory for the next step (merging several chunks into one); peak use is
 * tracked. */
#include "../core/internal.h"

#include <stdint.h>
#include <stdlib.h>

#define ARENA_ALIGN 64
#define ARENA_MIN_CHUNK ((size_t)1 << 20)

/* Chunk payload starts one cache line after the chunk header. */
static unsigned char *chunk_base(amp__chunk *c) { return (unsigned char *)c + ARENA_ALIGN; }

static amp__chunk *chunk_new(size_t size) {
  if (size > SIZE_MAX - ARENA_ALIGN) return NULL;
  void *p = NULL;
  if (posix_memalign(&p, ARENA_ALIGN, size + ARENA_ALIGN) != 0) return NULL;
  amp__chunk *c = p;
  c->next = NULL;
  c->size = size;
  c->used = 0;
  return c;
}

void amp__arena_free(amp__arena *a) {
  amp__chunk *c = a->first;
  while (c) {
    amp__chunk *n = c->next;
    free(c);
    c = n;
  }
  a->first = a->cur = NULL;
  a->used = a->peak = 0;
}

static void *arena_alloc(amp__arena *a, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > SIZE_MAX / 2) return NULL;
  size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  /* Walk the kept chunks (after a reset) until one has room. */
  while (a->cur) {
    amp__chunk *c = a->cur;
    if (c->size - c->used >= need) {
      void *p = chunk_base(c) + c->used;
      c->used += need;
      a->used += need;
      if (a->used > a->peak) a->peak = a->used;
      return p;
    }
    if (!c->next) break;
    /* The rest of this chunk is wasted for this step; count it as used so
       the figure reflects memory actually held for the step. */
    a->used += c->size - c->used;
    c->used = c->size;
    a->cur = c->next;
    a->cur->used = 0;
  }
  size_t size = need > ARENA_MIN_CHUNK ? need : ARENA_MIN_CHUNK;
  if (a->cur && a->cur->size * 2 > size && a->cur->size <= SIZE_MAX / 4) size = a->cur->size * 2;
  amp__chunk *c = chunk_new(size);
  if (!c) return NULL;
  if (a->cur) {
    a->used += a->cur->size - a->cur->used;
    a->cur->used = a->cur->size;
    a->cur->next = c;
  } else {
    a->first = c;
  }
  a->cur = c;
  c->used = need;
  a->used += need;
  if (a->used > a->peak) a->peak = a->used;
  return chunk_base(c);
}

void *amp_arena_alloc(amp_ctx *ctx, amp_arena_kind kind, size_t bytes) {
  if (!ctx) return NULL;
  if (kind != AMP_ARENA_PERSISTENT && kind != AMP_ARENA_STEP) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_arena_alloc: unknown arena %d", (int)kind);
    return NULL;
  }
  void *p = arena_alloc(&ctx->arenas[kind], bytes);
  if (!p)
    amp__error(ctx, AMP_ERR_NOMEM, "amp_arena_alloc: out of memory allocating %zu bytes", bytes);
  return p;
}

void amp__arena_reset(amp__arena *a) {
  /* Several chunks: the last use outgrew the first one. They become one
     chunk of their total size (freed first, so no more memory is held), in
     which a next step of the same shape bumps without leaving chunk tails
     behind: the used figure is then the bytes the step allocated, not
     those plus the tails its walk over the chunks skipped. If the
     allocation fails, the arena starts empty and grows again. */
  if (a->first && a->first->next) {
    size_t total = 0;
    for (amp__chunk *c = a->first; c; c = c->next) total += c->size;
    size_t peak = a->peak;
    amp__arena_free(a);
    a->first = chunk_new(total);
    a->peak = peak;
  }
  a->cur = a->first;
  if (a->cur) a->cur->used = 0;
  a->used = 0;
}

size_t amp_arena_used_bytes(const amp_ctx *ctx, amp_arena_kind kind) {
  if (!ctx || (kind != AMP_ARENA_PERSISTENT && kind != AMP_ARENA_STEP)) return 0;
  return ctx->arenas[kind].used;
}

size_t amp_arena_peak_bytes(const amp_ctx *ctx, amp_arena_kind kind) {
  if (!ctx || (kind != AMP_ARENA_PERSISTENT && kind != AMP_ARENA_STEP)) return 0;
  return ctx->arenas[kind].peak;
}

void amp_arena_reset_peak(amp_ctx *ctx, amp_arena_kind kind) {
  if (!ctx || (kind != AMP_ARENA_PERSISTENT && kind != AMP_ARENA_STEP)) return;
  ctx->arenas[kind].peak = ctx->arenas[kind].used;
}
