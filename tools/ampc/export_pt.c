/* A PyTorch state dict in torch.save's format (a zip archive, stored
 * without compression, holding archive/data.pkl — a pickle of an
 * OrderedDict of tensors rebuilt by torch._utils._rebuild_tensor_v2 from
 * persistent storages — archive/data/<k>, each tensor's bytes little-endian,
 * and archive/version), so that
 *   model.load_state_dict(torch.load("out.pt"), strict=True)
 * reads it with nn.Sequential's names and layouts. No PyTorch needed to
 * write it; public API only. */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct buf {
  unsigned char *p;
  size_t n, cap;
  int oom;
} buf;

static void put(buf *b, const void *src, size_t n) {
  if (b->oom) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    unsigned char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
}

static void put_byte(buf *b, int c) {
  unsigned char u = (unsigned char)c;
  put(b, &u, 1);
}

static void put_le(buf *b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) put_byte(b, (int)(v >> (8 * i)) & 0xff);
}

/* Pickle opcodes (protocol 2). */
static void pk_str(buf *b, const char *s) { /* BINUNICODE */
  put_byte(b, 'X');
  put_le(b, strlen(s), 4);
  put(b, s, strlen(s));
}

static void pk_global(buf *b, const char *module, const char *name) {
  put_byte(b, 'c');
  put(b, module, strlen(module));
  put_byte(b, '\n');
  put(b, name, strlen(name));
  put_byte(b, '\n');
}

static void pk_int(buf *b, int64_t v) {
  if (v >= INT32_MIN && v <= INT32_MAX) { /* BININT */
    put_byte(b, 'J');
    put_le(b, (uint64_t)(uint32_t)(int32_t)v, 4);
  } else { /* LONG1, 8 bytes two's complement */
    put_byte(b, 0x8a);
    put_byte(b, 8);
    put_le(b, (uint64_t)v, 8);
  }
}

static void pk_ordered_dict(buf *b) {
  pk_global(b, "collections", "OrderedDict");
  put_byte(b, ')'); /* EMPTY_TUPLE */
  put_byte(b, 'R'); /* REDUCE */
}

/* data.pkl of the model's parameters (storage k for parameter k). */
static void pickle_state_dict(buf *b, amp_module *model, const char *storage) {
  put(b, "\x80\x02", 2);
  pk_ordered_dict(b);
  put_byte(b, '('); /* MARK for SETITEMS */
  for (int i = 0; i < amp_module_param_count(model); i++) {
    const char *name;
    const amp_tensor *p = amp_module_param(model, i, &name);
    char key[24];
    snprintf(key, sizeof key, "%d", i);
    pk_str(b, name);
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    put_byte(b, '(');
    put_byte(b, '('); /* the persistent id ('storage', type, key, 'cpu', numel) */
    pk_str(b, "storage");
    pk_global(b, "torch", storage);
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, p->numel);
    put_byte(b, 't');
    put_byte(b, 'Q'); /* BINPERSID */
    pk_int(b, 0);     /* storage offset */
    put_byte(b, '(');
    for (int d = 0; d < p->ndim; d++) pk_int(b, p->shape[d]);
    put_byte(b, 't');
    put_byte(b, '('); /* contiguous strides */
    for (int d = 0; d < p->ndim; d++) {
      int64_t stride = 1;
      for (int e = d + 1; e < p->ndim; e++) stride *= p->shape[e];
      pk_int(b, stride);
    }
    put_byte(b, 't');
    put_byte(b, 0x89);  /* NEWFALSE: requires_grad */
    pk_ordered_dict(b); /* backward hooks */
    put_byte(b, 't');
    put_byte(b, 'R');
  }
  put_byte(b, 'u'); /* SETITEMS */
  put_byte(b, '.'); /* STOP */
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return ~c;
}

typedef struct zip {
  buf out, dir;
  int entries;
} zip;

/* One stored entry, its data aligned to 64 bytes (as torch.save does). */
static void zip_add(zip *z, const char *name, const void *data, size_t n) {
  uint32_t crc = crc32_of(data, n);
  size_t off = z->out.n, nlen = strlen(name);
  size_t extra = 64 - (off + 30 + nlen + 4) % 64 + 4;
  if (extra == 68) extra = 4;
  put_le(&z->out, 0x04034b50, 4);
  put_le(&z->out, 20, 2); /* version needed */
  put_le(&z->out, 0, 2);  /* flags */
  put_le(&z->out, 0, 2);  /* stored */
  put_le(&z->out, 0, 2);  /* time */
  put_le(&z->out, 33, 2); /* date: 1980-01-01 */
  put_le(&z->out, crc, 4);
  put_le(&z->out, n, 4);
  put_le(&z->out, n, 4);
  put_le(&z->out, nlen, 2);
  put_le(&z->out, extra, 2);
  put(&z->out, name, nlen);
  put_le(&z->out, 0x4246, 2); /* an extra field of padding ("FB", as torch's writer) */
  put_le(&z->out, extra - 4, 2);
  for (size_t i = 0; i < extra - 4; i++) put_byte(&z->out, 'Z');
  put(&z->out, data, n);
  put_le(&z->dir, 0x02014b50, 4);
  put_le(&z->dir, 20, 2);
  put_le(&z->dir, 20, 2);
  put_le(&z->dir, 0, 2);
  put_le(&z->dir, 0, 2);
  put_le(&z->dir, 0, 2);
  put_le(&z->dir, 33, 2);
  put_le(&z->dir, crc, 4);
  put_le(&z->dir, n, 4);
  put_le(&z->dir, n, 4);
  put_le(&z->dir, nlen, 2);
  put_le(&z->dir, 0, 2); /* extra */
  put_le(&z->dir, 0, 2); /* comment */
  put_le(&z->dir, 0, 2); /* disk */
  put_le(&z->dir, 0, 2); /* internal attributes */
  put_le(&z->dir, 0, 4); /* external attributes */
  put_le(&z->dir, off, 4);
  put(&z->dir, name, nlen);
  z->entries++;
}

static void zip_finish(zip *z) {
  size_t off = z->out.n, len = z->dir.n;
  put(&z->out, z->dir.p, z->dir.n);
  put_le(&z->out, 0x06054b50, 4);
  put_le(&z->out, 0, 2);
  put_le(&z->out, 0, 2);
  put_le(&z->out, (uint64_t)z->entries, 2);
  put_le(&z->out, (uint64_t)z->entries, 2);
  put_le(&z->out, len, 4);
  put_le(&z->out, off, 4);
  put_le(&z->out, 0, 2);
}

/* Writes `n` bytes to `path` through a temporary file renamed into place. */
static int write_atomic(const char *path, const void *data, size_t n, char *msg, size_t cap) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    snprintf(msg, cap, "cannot write '%s'", path);
    return 0;
  }
  int ok = fwrite(data, 1, n, f) == n;
  ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok &= fclose(f) == 0;
  if (ok) ok = rename(tmp, path) == 0;
  if (!ok) {
    remove(tmp);
    snprintf(msg, cap, "error writing '%s'", path);
  }
  return ok;
}

int ampc_write_torch(const char *path, amp_module *model, amp_dtype dt, char *msg, size_t cap) {
  const char *storage = dt == AMP_F32    ? "FloatStorage"
                        : dt == AMP_F16  ? "HalfStorage"
                        : dt == AMP_BF16 ? "BFloat16Storage"
                                         : NULL;
  if (!storage || amp_module_param_numel(model) * 4 > 0xffffffffLL) {
    snprintf(msg, cap, "--format pytorch: dtype %s or size not supported", amp_dtype_name(dt));
    return 0;
  }
  zip z;
  memset(&z, 0, sizeof z);
  buf pkl = {0};
  pickle_state_dict(&pkl, model, storage);
  zip_add(&z, "archive/data.pkl", pkl.p, pkl.n);
  for (int i = 0; i < amp_module_param_count(model); i++) {
    const amp_tensor *p = amp_module_param(model, i, NULL);
    size_t bytes = (size_t)p->numel * amp_dtype_size(dt);
    void *data = malloc(bytes ? bytes : 1);
    if (!data) {
      z.out.oom = 1;
      break;
    }
    amp_convert(data, dt, p->data, AMP_F32, (size_t)p->numel);
    char name[48];
    snprintf(name, sizeof name, "archive/data/%d", i);
    zip_add(&z, name, data, bytes);
    free(data);
  }
  zip_add(&z, "archive/version", "3\n", 2);
  zip_finish(&z);
  int ok = !(z.out.oom || z.dir.oom || pkl.oom);
  if (!ok) snprintf(msg, cap, "out of memory");
  if (ok) ok = write_atomic(path, z.out.p, z.out.n, msg, cap);
  free(pkl.p);
  free(z.out.p);
  free(z.dir.p);
  return ok;
}
