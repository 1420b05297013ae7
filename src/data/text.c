/* Byte-level text: a corpus of bytes (token = byte, vocabulary 256) split
 * into a training part (the first 90%) and a validation part (the last
 * 10%), and a loader of [B, T] token batches in llm.c's layout. */
#include "data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The largest corpus accepted: 1 GiB. */
#define AMP__TEXT_MAX ((uint64_t)1 << 30)

struct amp_text {
  uint8_t *bytes; /* the whole corpus (malloc) */
  int64_t n;      /* bytes */
  int64_t ntrain; /* the first ntrain are the training split */
};

struct amp_text_loader {
  amp_ctx *ctx;
  const uint8_t *tok;
  int64_t n, b, t, nb; /* split tokens, batch, sequence, batches per epoch */
  int shuffle;
  uint64_t seed;
  int64_t epoch, next; /* the next batch: number `next` of epoch `epoch` */
  int64_t *perm;       /* shuffle: this epoch's batch order */
};

amp_status amp_text_from_bytes(amp_ctx *ctx, const void *bytes, size_t n, amp_text **out) {
  if (!out) return amp__error(ctx, AMP_ERR_INVALID_ARG, "text: out is NULL");
  *out = NULL;
  if ((!bytes && n) || (uint64_t)n > AMP__TEXT_MAX)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "text: %zu bytes (NULL, or more than 1 GiB)", n);
  amp_text *t = calloc(1, sizeof *t);
  if (t) t->bytes = malloc(n ? n : 1);
  if (!t || !t->bytes) {
    amp_text_free(t);
    return amp__error(ctx, AMP_ERR_NOMEM, "text: out of memory for %zu bytes", n);
  }
  if (n) memcpy(t->bytes, bytes, n);
  t->n = (int64_t)n;
  t->ntrain = t->n - t->n / 10;
  *out = t;
  return AMP_OK;
}

/* Appends the regular file `path` to *buf (size *len, capacity *cap). A
 * FIFO or device is refused without blocking (amp__open_regular). */
static amp_status append_file(amp_ctx *ctx, const char *path, uint8_t **buf, size_t *len,
                              size_t *cap) {
  int64_t size = 0;
  int fd = amp__open_regular(path, &size);
  if (fd == -2) return amp__error(ctx, AMP_ERR_IO, "text: %s: not a regular file", path);
  FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
  if (!f) {
    int e = errno;
    if (fd >= 0) close(fd);
    return amp__error(ctx, AMP_ERR_IO, "text: %s: cannot open: %s", path, strerror(e));
  }
  amp_status st = AMP_OK;
  if ((uint64_t)size > AMP__TEXT_MAX - *len)
    st = amp__error(ctx, AMP_ERR_INVALID_ARG, "text: %s: the corpus would exceed 1 GiB", path);
  size_t sz = st == AMP_OK ? (size_t)size : 0;
  if (st == AMP_OK && *len + sz > *cap) {
    size_t nc = *cap ? *cap : 1 << 20;
    while (nc < *len + sz) nc *= 2;
    uint8_t *nb = realloc(*buf, nc);
    if (!nb)
      st = amp__error(ctx, AMP_ERR_NOMEM, "text: out of memory");
    else {
      *buf = nb;
      *cap = nc;
    }
  }
  if (st == AMP_OK && fread(*buf + *len, 1, sz, f) != sz)
    st = amp__error(ctx, AMP_ERR_IO, "text: %s: read error (file shrank while reading?)", path);
  if (st == AMP_OK) *len += sz;
  fclose(f);
  return st;
}

/* Takes over buf (malloc, len bytes) as the corpus. */
static amp_status text_adopt(amp_ctx *ctx, uint8_t *buf, size_t len, amp_text **out) {
  amp_text *t = calloc(1, sizeof *t);
  if (!t) {
    free(buf);
    return amp__error(ctx, AMP_ERR_NOMEM, "text: out of memory");
  }
  t->bytes = buf ? buf : malloc(1);
  t->n = (int64_t)len;
  t->ntrain = t->n - t->n / 10;
  *out = t;
  return t->bytes ? AMP_OK : amp__error(ctx, AMP_ERR_NOMEM, "text: out of memory");
}

amp_status amp_text_load(amp_ctx *ctx, const char *path, amp_text **out) {
  if (!out) return amp__error(ctx, AMP_ERR_INVALID_ARG, "text: out is NULL");
  *out = NULL;
  if (!path) return amp__error(ctx, AMP_ERR_INVALID_ARG, "text: path is NULL");
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  amp_status st = append_file(ctx, path, &buf, &len, &cap);
  if (st != AMP_OK) {
    free(buf);
    return st;
  }
  return text_adopt(ctx, buf, len, out);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of dir's regular files without an extension (no '.'), sorted
 * (strcmp order), into *names (malloc, each malloc). */
static amp_status fortune_names(amp_ctx *ctx, const char *dir, char ***names, size_t *count) {
  DIR *d = opendir(dir);
  if (!d)
    return amp__error(ctx, AMP_ERR_IO,
                      "text: %s: cannot open: %s (install Debian's fortunes package: "
                      "scripts/install-deps --data)",
                      dir, strerror(errno));
  amp_status st = AMP_OK;
  size_t n = 0, cap = 0;
  char **v = NULL;
  for (struct dirent *e; st == AMP_OK && (e = readdir(d));) {
    if (strchr(e->d_name, '.')) continue; /* ., .., the .dat indexes, the .u8 links */
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    if (n == cap) {
      char **nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof *v);
      if (!nv) {
        st = amp__error(ctx, AMP_ERR_NOMEM, "text: out of memory");
        break;
      }
      v = nv;
    }
    if (!(v[n] = strdup(e->d_name)))
      st = amp__error(ctx, AMP_ERR_NOMEM, "text: out of memory");
    else
      n++;
  }
  closedir(d);
  if (st == AMP_OK && n == 0)
    st = amp__error(ctx, AMP_ERR_IO, "text: %s holds no fortune files (files without an extension)",
                    dir);
  if (st == AMP_OK) qsort(v, n, sizeof *v, cmp_names);
  *names = v;
  *count = n;
  return st;
}

amp_status amp_text_load_fortunes(amp_ctx *ctx, const char *dir, amp_text **out) {
  if (!out) return amp__error(ctx, AMP_ERR_INVALID_ARG, "text: out is NULL");
  *out = NULL;
  if (!dir) dir = AMP_FORTUNES_DIR;
  char **names = NULL;
  size_t count = 0, len = 0, cap = 0;
  uint8_t *buf = NULL;
  amp_status st = fortune_names(ctx, dir, &names, &count);
  for (size_t i = 0; st == AMP_OK && i < count; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    st = append_file(ctx, path, &buf, &len, &cap);
  }
  for (size_t i = 0; i < count; i++) free(names[i]);
  free(names);
  if (st != AMP_OK) {
    free(buf);
    return st;
  }
  return text_adopt(ctx, buf, len, out);
}

void amp_text_free(amp_text *t) {
  if (!t) return;
  free(t->bytes);
  free(t);
}

int64_t amp_text_tokens(const amp_text *t, int split) {
  if (!t) return 0;
  return split == AMP_TEXT_VAL ? t->n - t->ntrain : t->ntrain;
}

const uint8_t *amp_text_data(const amp_text *t, int split) {
  if (!t) return NULL;
  return split == AMP_TEXT_VAL ? t->bytes + t->ntrain : t->bytes;
}

/* Fisher-Yates over the epoch's batch starts, from (seed, epoch) only. */
static void text_perm(amp_text_loader *l) {
  uint64_t st = l->seed ^ ((uint64_t)l->epoch * 0xD1B54A32D192ED03ull);
  for (int64_t i = 0; i < l->nb; i++) l->perm[i] = i;
  for (int64_t i = l->nb - 1; i > 0; i--) {
    int64_t j = (int64_t)amp__data_below(&st, (uint64_t)i + 1);
    int64_t s = l->perm[i];
    l->perm[i] = l->perm[j];
    l->perm[j] = s;
  }
}

amp_text_loader *amp_text_loader_create(amp_ctx *ctx, const amp_text *t, int split, int64_t batch,
                                        int64_t seq, int shuffle, uint64_t seed) {
  if (!ctx) return NULL;
  const char *sname = split == AMP_TEXT_VAL ? "validation" : "training";
  if (!t || (split != AMP_TEXT_TRAIN && split != AMP_TEXT_VAL) || batch < 1 || seq < 1 ||
      batch > INT32_MAX / seq) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "text loader: bad arguments (text %s, split %d, batch %lld, sequence %lld)",
               t ? "given" : "NULL", split, (long long)batch, (long long)seq);
    return NULL;
  }
  int64_t n = amp_text_tokens(t, split), bt = batch * seq;
  if (n < bt + 1) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "text loader: the %s split has %lld tokens; a batch of %lld x %lld needs %lld "
               "(B·T + 1)",
               sname, (long long)n, (long long)batch, (long long)seq, (long long)(bt + 1));
    return NULL;
  }
  amp_text_loader *l = calloc(1, sizeof *l);
  int64_t nb = (n - 1) / bt;
  if (l && shuffle) l->perm = malloc((size_t)nb * sizeof(int64_t));
  if (!l || (shuffle && !l->perm)) {
    amp_text_loader_free(l);
    amp__error(ctx, AMP_ERR_NOMEM, "text loader: out of memory");
    return NULL;
  }
  *l = (amp_text_loader){ctx,    amp_text_data(t, split), n, batch, seq, nb, shuffle, seed, 0, 0,
                         l->perm};
  if (shuffle) text_perm(l);
  return l;
}

int64_t amp_text_loader_batches_per_epoch(const amp_text_loader *l) { return l ? l->nb : 0; }

int amp_text_loader_next(amp_text_loader *l, amp_tensor **x, amp_tensor **y) {
  if (!l || !x || !y) return 0;
  int64_t shape[2] = {l->b, l->t}, bt = l->b * l->t;
  amp_tensor *xt = amp_tensor_new(l->ctx, AMP_ARENA_STEP, AMP_I32, 2, shape);
  amp_tensor *yt = amp_tensor_new(l->ctx, AMP_ARENA_STEP, AMP_I32, 2, shape);
  if (!xt || !yt) return 0;
  int64_t k = l->shuffle ? l->perm[l->next] : l->next;
  const uint8_t *src = l->tok + k * bt; /* B·T + 1 tokens: inside the split */
  int32_t *xd = xt->data, *yd = yt->data;
  for (int64_t i = 0; i < bt; i++) {
    xd[i] = src[i];
    yd[i] = src[i + 1];
  }
  if (++l->next == l->nb) { /* the next epoch */
    l->next = 0;
    l->epoch++;
    if (l->shuffle) text_perm(l);
  }
  *x = xt;
  *y = yt;
  return 1;
}

void amp_text_loader_free(amp_text_loader *l) {
  if (!l) return;
  free(l->perm);
  free(l);
}
