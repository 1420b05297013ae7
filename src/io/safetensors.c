/* The safetensors file format: an atomic writer and a reader that trusts
 * nothing (every length, offset and JSON value is checked before use). The
 * JSON header is built and parsed with cJSON. */
#include "io_internal.h"

#include <cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ull    /* as the reference implementation */
#define ST_MAX_INT 9007199254740992.0 /* 2^53: larger JSON numbers are inexact */
#define ST_NAME_FMT "%.80s"           /* names in messages are cut to 80 bytes */

/* ------------------------------------------------------------------------ */
/* Dtypes                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct st_dtype {
  const char *name;
  amp_dtype dt; /* AMP_DTYPE_COUNT: no ampc type */
  size_t size;
} st_dtype;

/* ampc's dtypes (their rows of the dtype traits table), then the other
 * safetensors dtypes, which a file may hold but ampc cannot load. */
#define ST_ROW(e, name, st_name, size, ...) {st_name, e, size},
static const st_dtype ST_DTYPES[] = {
    AMP__DTYPE_ROWS(ST_ROW){"I64", AMP_DTYPE_COUNT, 8},
    {"F64", AMP_DTYPE_COUNT, 8},
    {"BOOL", AMP_DTYPE_COUNT, 1},
    {"I8", AMP_DTYPE_COUNT, 1},
    {"I16", AMP_DTYPE_COUNT, 2},
    {"U16", AMP_DTYPE_COUNT, 2},
    {"U32", AMP_DTYPE_COUNT, 4},
    {"U64", AMP_DTYPE_COUNT, 8},
};
enum { ST_NDTYPES = (int)(sizeof ST_DTYPES / sizeof ST_DTYPES[0]) };

static const st_dtype *dtype_by_name(const char *s) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (strcmp(ST_DTYPES[i].name, s) == 0) return &ST_DTYPES[i];
  return NULL;
}

static const st_dtype *dtype_by_amp(amp_dtype dt) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (ST_DTYPES[i].dt == dt && dt != AMP_DTYPE_COUNT) return &ST_DTYPES[i];
  return NULL;
}

/* Length of the valid UTF-8 prefix of s[0, n) (n when all of it is valid):
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    i += len;
  }
  return n;
}

static int utf8_valid(const char *s) {
  size_t n = strlen(s);
  return utf8_valid_prefix((const unsigned char *)s, n) == n;
}

/* ------------------------------------------------------------------------ */
/* Atomic writes                                                              */
/* ------------------------------------------------------------------------ */

static int write_all(int fd, const void *buf, size_t len) {
  const unsigned char *p = buf;
  while (len > 0) {
    size_t chunk = len > (size_t)1 << 30 ? (size_t)1 << 30 : len;
    ssize_t w = write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

amp_status amp__write_atomic(amp_ctx *ctx, const char *path, const amp__iopart *parts, int n) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 64);
  char *dir = malloc(plen + 2);
  if (!tmp || !dir) {
    free(tmp);
    free(dir);
    return amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", path);
  }
  /* The directory of path, for the final fsync. */
  const char *slash = strrchr(path, '/');
  if (!slash) {
    strcpy(dir, ".");
  } else if (slash == path) {
    strcpy(dir, "/");
  } else {
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
  }
  int fd = -1;
  for (int k = 0; k < 1000; k++) {
    snprintf(tmp, plen + 64, "%s.tmp.%ld.%d", path, (long)getpid(), k);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) break;
  }
  amp_status st = AMP_OK;
  if (fd < 0) {
    st = amp__error(ctx, AMP_ERR_IO, "safetensors: %s: cannot create the temporary file %s: %s",
                    path, tmp, strerror(errno));
    free(tmp);
    free(dir);
    return st;
  }
  const char *what = NULL;
  int err = 0;
  for (int i = 0; i < n && !what; i++)
    if (parts[i].len > 0 && write_all(fd, parts[i].data, parts[i].len) != 0) {
      what = "cannot write";
      err = errno;
    }
  if (!what && fsync(fd) != 0) {
    what = "cannot sync";
    err = errno;
  }
  if (close(fd) != 0 && !what) {
    what = "cannot close";
    err = errno;
  }
  if (!what && rename(tmp, path) != 0) {
    what = "cannot rename over the target";
    err = errno;
  }
  if (what) {
    unlink(tmp);
    st = amp__error(ctx, AMP_ERR_IO, "safetensors: %s: %s the temporary file %s: %s", path, what,
                    tmp, strerror(err));
    free(tmp);
    free(dir);
    return st;
  }
  /* Make the rename durable. Some file systems cannot sync a directory
   * (EINVAL): the data itself is synced, so that is not an error. */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
      st = amp__error(ctx, AMP_ERR_IO,
                      "safetensors: %s: written, but the directory %s cannot be synced: %s", path,
                      dir, strerror(errno));
    close(dfd);
  } else {
    st = amp__error(ctx, AMP_ERR_IO,
                    "safetensors: %s: written, but the directory %s cannot be opened to sync "
                    "it: %s",
                    path, dir, strerror(errno));
  }
  free(tmp);
  free(dir);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct order_item {
  const amp_st_tensor *t;
  size_t size;
} order_item;

static int cmp_name_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Data section order: element size (largest first), then name. */
static int cmp_data_order(const void *a, const void *b) {
  const order_item *x = a, *y = b;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  return strcmp(x->t->name, y->t->name);
}

static int cmp_item_name(const void *a, const void *b) {
  const order_item *x = a, *y = b;
  return strcmp(x->t->name, y->t->name);
}

/* Checks one tensor to write; returns its byte size in *bytes. */
static amp_status check_out_tensor(amp_ctx *ctx, const char *path, const amp_st_tensor *t,
                                   size_t *esize) {
  if (!t->name)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "safetensors: %s: a tensor has no name", path);
  if (!utf8_valid(t->name))
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "safetensors: %s: a tensor name is not valid UTF-8",
                      path);
  if (strcmp(t->name, "__metadata__") == 0)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: \"__metadata__\" cannot name a tensor", path);
  const st_dtype *d = dtype_by_amp(t->dtype);
  if (!d)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': dtype %s cannot be written", path,
                      t->name, amp_dtype_name(t->dtype));
  if (t->ndim < 0 || t->ndim > AMP_MAX_DIMS)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': ndim %d outside 0..%d", path,
                      t->name, t->ndim, AMP_MAX_DIMS);
  uint64_t numel = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0)
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "safetensors: %s: tensor '" ST_NAME_FMT "': negative size %lld", path,
                        t->name, (long long)t->shape[i]);
    uint64_t s = (uint64_t)t->shape[i];
    if (s != 0 && numel > UINT64_MAX / s)
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "safetensors: %s: tensor '" ST_NAME_FMT "': too many elements", path,
                        t->name);
    numel *= s;
  }
  if (numel > SIZE_MAX / d->size || numel * d->size != t->bytes)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: tensor '" ST_NAME_FMT
                      "': %zu bytes given, its shape and dtype need %llu",
                      path, t->name, t->bytes, (unsigned long long)(numel * d->size));
  if (t->bytes > 0 && !t->data)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': NULL data", path, t->name);
  *esize = d->size;
  return AMP_OK;
}

static cJSON *raw_u64(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  return cJSON_CreateRaw(buf);
}

amp_status amp_safetensors_write(amp_ctx *ctx, const char *path, const amp_st_tensor *t, int n,
                                 const char *const *meta, int nmeta) {
  if (!path || n < 0 || nmeta < 0 || (n > 0 && !t) || (nmeta > 0 && !meta))
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_safetensors_write: NULL path, or NULL arrays with counts > 0");
  amp_status st = AMP_OK;
  order_item *items = calloc((size_t)n + 1, sizeof *items);
  const char **keys = calloc((size_t)nmeta + 1, sizeof *keys);
  amp__iopart *parts = calloc((size_t)n + 1, sizeof *parts);
  cJSON *root = NULL;
  char *js = NULL, *header = NULL;
  if (!items || !keys || !parts) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", path);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    items[i].t = &t[i];
    if ((st = check_out_tensor(ctx, path, &t[i], &items[i].size)) != AMP_OK) goto done;
  }
  for (int i = 0; i < nmeta; i++) {
    if (!meta[2 * i] || !meta[2 * i + 1]) {
      st = amp__error(ctx, AMP_ERR_INVALID_ARG, "safetensors: %s: metadata pair %d has a NULL",
                      path, i);
      goto done;
    }
    if (!utf8_valid(meta[2 * i]) || !utf8_valid(meta[2 * i + 1])) {
      st = amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: metadata pair %d is not valid UTF-8", path, i);
      goto done;
    }
    keys[i] = meta[2 * i];
  }
  qsort(keys, (size_t)nmeta, sizeof *keys, cmp_name_ptr);
  for (int i = 1; i < nmeta; i++)
    if (strcmp(keys[i - 1], keys[i]) == 0) {
      st = amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: duplicate metadata key '" ST_NAME_FMT "'", path, keys[i]);
      goto done;
    }
  /* Offsets in data order. */
  qsort(items, (size_t)n, sizeof *items, cmp_data_order);
  order_item *byname = calloc((size_t)n + 1, sizeof *byname);
  if (!byname) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", path);
    goto done;
  }
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    parts[i + 1].data = items[i].t->data;
    parts[i + 1].len = items[i].t->bytes;
    /* Header entries go in name order: the copy keeps the offset in `size`. */
    byname[i].t = items[i].t;
    byname[i].size = off;
    off += items[i].t->bytes;
  }
  qsort(byname, (size_t)n, sizeof *byname, cmp_item_name);
  for (int i = 1; i < n; i++)
    if (strcmp(byname[i - 1].t->name, byname[i].t->name) == 0) {
      st = amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: duplicate tensor name '" ST_NAME_FMT "'", path,
                      byname[i].t->name);
      free(byname);
      goto done;
    }
  root = cJSON_CreateObject();
  int ok = root != NULL;
  if (ok && nmeta > 0) {
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    ok = m != NULL;
    for (int i = 0; ok && i < nmeta; i++)
      ok = cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]) != NULL;
  }
  for (int i = 0; ok && i < n; i++) {
    const amp_st_tensor *x = byname[i].t;
    cJSON *e = cJSON_CreateObject();
    ok = e && cJSON_AddItemToObject(root, x->name, e);
    if (!ok) {
      cJSON_Delete(e);
      break;
    }
    ok = cJSON_AddStringToObject(e, "dtype", dtype_by_amp(x->dtype)->name) != NULL;
    cJSON *shape = ok ? cJSON_AddArrayToObject(e, "shape") : NULL;
    ok = shape != NULL;
    for (int d = 0; ok && d < x->ndim; d++) {
      cJSON *v = raw_u64((uint64_t)x->shape[d]);
      ok = v && cJSON_AddItemToArray(shape, v);
      if (!ok) cJSON_Delete(v);
    }
    cJSON *offs = ok ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
    ok = offs != NULL;
    uint64_t b = (uint64_t)byname[i].size;
    uint64_t be[2] = {b, b + x->bytes};
    for (int k = 0; ok && k < 2; k++) {
      cJSON *v = raw_u64(be[k]);
      ok = v && cJSON_AddItemToArray(offs, v);
      if (!ok) cJSON_Delete(v);
    }
  }
  free(byname);
  js = ok ? cJSON_PrintUnformatted(root) : NULL;
  if (!js) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory building the header", path);
    goto done;
  }
  size_t jlen = strlen(js);
  size_t hlen = (jlen + 7) / 8 * 8; /* pad with spaces: the data start 8-aligned */
  header = malloc(8 + hlen);
  if (!header) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", path);
    goto done;
  }
  for (int k = 0; k < 8; k++) header[k] = (char)(((uint64_t)hlen >> (8 * k)) & 0xFF);
  memcpy(header + 8, js, jlen);
  memset(header + 8 + jlen, ' ', hlen - jlen);
  parts[0].data = header;
  parts[0].len = 8 + hlen;
  st = amp__write_atomic(ctx, path, parts, n + 1);
done:
  free(header);
  if (js) cJSON_free(js);
  cJSON_Delete(root);
  free(parts);
  free(keys);
  free(items);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                     */
/* ------------------------------------------------------------------------ */

struct amp_safetensors {
  amp_st_tensor *t; /* n, in name order */
  int n;
  char **mkey, **mval; /* nmeta, in key order */
  int nmeta;
  unsigned char *data; /* the data section (64-byte aligned copy) */
  size_t data_len;
};

void amp_safetensors_free(amp_safetensors *f) {
  if (!f) return;
  if (f->t)
    for (int i = 0; i < f->n; i++) free((char *)f->t[i].name);
  for (int i = 0; i < f->nmeta; i++) {
    free(f->mkey[i]);
    free(f->mval[i]);
  }
  free(f->t);
  free(f->mkey);
  free(f->mval);
  free(f->data);
  free(f);
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0) || d > ST_MAX_INT || floor(d) != d) return 0;
  *out = (uint64_t)d;
  return 1;
}

typedef struct parsed_entry {
  const char *name; /* into the cJSON tree */
  const st_dtype *dt;
  int ndim;
  int64_t shape[AMP_MAX_DIMS];
  uint64_t begin, end;
} parsed_entry;

static int cmp_entry_offsets(const void *a, const void *b) {
  const parsed_entry *const *x = a, *const *y = b;
  if ((*x)->begin != (*y)->begin) return (*x)->begin < (*y)->begin ? -1 : 1;
  if ((*x)->end != (*y)->end) return (*x)->end < (*y)->end ? -1 : 1;
  return 0;
}

typedef struct meta_pair {
  char *key, *val;
} meta_pair;

static int cmp_meta_pair(const void *a, const void *b) {
  const meta_pair *x = a, *y = b;
  return strcmp(x->key, y->key);
}

static int cmp_entry_names(const void *a, const void *b) {
  const parsed_entry *x = a, *y = b;
  return strcmp(x->name, y->name);
}

/* Checks that the keys of object `obj` are unique; on a duplicate returns
 * it. `tmp` has room for the object's size. */
static const char *duplicate_key(const cJSON *obj, const char **tmp) {
  int k = 0;
  for (const cJSON *c = obj->child; c; c = c->next) tmp[k++] = c->string ? c->string : "";
  qsort(tmp, (size_t)k, sizeof *tmp, cmp_name_ptr);
  for (int i = 1; i < k; i++)
    if (strcmp(tmp[i - 1], tmp[i]) == 0) return tmp[i];
  return NULL;
}

/* Validates one tensor entry. */
static amp_status parse_entry(amp_ctx *ctx, const char *who, const cJSON *e, uint64_t data_len,
                              parsed_entry *pe) {
  const char *name = e->string ? e->string : "";
  pe->name = name;
  if (!cJSON_IsObject(e))
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': entry is not a JSON object", who,
                      name);
  const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
  for (const cJSON *c = e->child; c; c = c->next) {
    const char *k = c->string ? c->string : "";
    const cJSON **slot = strcmp(k, "dtype") == 0          ? &dtype
                         : strcmp(k, "shape") == 0        ? &shape
                         : strcmp(k, "data_offsets") == 0 ? &offs
                                                          : NULL;
    if (!slot)
      return amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: tensor '" ST_NAME_FMT "': unknown key '%.40s'", who, name,
                        k);
    if (*slot)
      return amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: tensor '" ST_NAME_FMT "': duplicate key '%s'", who, name,
                        k);
    *slot = c;
  }
  if (!dtype || !shape || !offs)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': missing \"%s\"", who, name,
                      !dtype   ? "dtype"
                      : !shape ? "shape"
                               : "data_offsets");
  if (!cJSON_IsString(dtype) || !dtype->valuestring)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': dtype is not a string", who,
                      name);
  pe->dt = dtype_by_name(dtype->valuestring);
  if (!pe->dt)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': unknown dtype '%.40s'", who, name,
                      dtype->valuestring);
  if (!cJSON_IsArray(shape))
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': shape is not an array", who,
                      name);
  int nd = 0;
  uint64_t numel = 1;
  for (const cJSON *c = shape->child; c; c = c->next, nd++) {
    if (nd >= AMP_MAX_DIMS)
      return amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: tensor '" ST_NAME_FMT
                        "': more than %d dimensions (unsupported)",
                        who, name, AMP_MAX_DIMS);
    uint64_t s;
    if (!json_uint(c, &s))
      return amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: tensor '" ST_NAME_FMT
                        "': shape[%d] is not a non-negative integer",
                        who, name, nd);
    if (s != 0 && numel > UINT64_MAX / s)
      return amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: tensor '" ST_NAME_FMT "': shape overflows", who, name);
    numel *= s;
    pe->shape[nd] = (int64_t)s;
  }
  pe->ndim = nd;
  for (int d = nd; d < AMP_MAX_DIMS; d++) pe->shape[d] = 1;
  if (numel > UINT64_MAX / pe->dt->size)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': byte size overflows", who, name);
  uint64_t bytes = numel * pe->dt->size;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
      !json_uint(offs->child, &pe->begin) || !json_uint(offs->child->next, &pe->end))
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT
                      "': data_offsets is not [begin, end] of non-negative integers",
                      who, name);
  if (pe->end < pe->begin)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT
                      "': data_offsets reversed (end %llu < begin %llu)",
                      who, name, (unsigned long long)pe->end, (unsigned long long)pe->begin);
  if (pe->end > data_len)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT
                      "': data_offsets [%llu, %llu] out of range (data section of %llu bytes)",
                      who, name, (unsigned long long)pe->begin, (unsigned long long)pe->end,
                      (unsigned long long)data_len);
  if (pe->end - pe->begin != bytes)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT
                      "': size mismatch: data_offsets span %llu bytes, dtype %s and shape need "
                      "%llu",
                      who, name, (unsigned long long)(pe->end - pe->begin), pe->dt->name,
                      (unsigned long long)bytes);
  return AMP_OK;
}

/* Validates the header (`hdr`, NUL-terminated, `hlen` bytes) of a file whose
 * data section has `data_len` bytes, and builds *out without its data. */
static amp_status parse_header(amp_ctx *ctx, const char *who, const char *hdr, size_t hlen,
                               uint64_t data_len, amp_safetensors **out) {
  *out = NULL;
  if (memchr(hdr, '\0', hlen))
    return amp__error(ctx, AMP_ERR_FORMAT, "safetensors: %s: the header contains a NUL byte", who);
  size_t valid = utf8_valid_prefix((const unsigned char *)hdr, hlen);
  if (valid != hlen)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: the header is not valid UTF-8 (byte %zu of %zu)", who,
                      valid, hlen);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(hdr, &end, 1);
  if (!root) {
    size_t pos = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: the header is not valid JSON (error near byte %zu of %zu)",
                      who, pos, hlen);
  }
  amp_status st = AMP_OK;
  parsed_entry *ents = NULL;
  parsed_entry **byoff = NULL;
  const char **tmp = NULL;
  amp_safetensors *f = NULL;
  if (!cJSON_IsObject(root)) {
    st = amp__error(ctx, AMP_ERR_FORMAT, "safetensors: %s: the header is not a JSON object", who);
    goto done;
  }
  int count = cJSON_GetArraySize(root);
  const cJSON *meta = NULL;
  tmp = malloc(((size_t)count + 1) * sizeof *tmp);
  ents = calloc((size_t)count + 1, sizeof *ents);
  byoff = calloc((size_t)count + 1, sizeof *byoff);
  f = calloc(1, sizeof *f);
  if (!tmp || !ents || !byoff || !f) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
    goto done;
  }
  const char *dup = duplicate_key(root, tmp);
  if (dup) {
    st = amp__error(ctx, AMP_ERR_FORMAT, "safetensors: %s: duplicate entry '" ST_NAME_FMT "'", who,
                    dup);
    goto done;
  }
  int n = 0;
  for (const cJSON *e = root->child; e; e = e->next) {
    if (e->string && strcmp(e->string, "__metadata__") == 0) {
      meta = e;
      continue;
    }
    if ((st = parse_entry(ctx, who, e, data_len, &ents[n])) != AMP_OK) goto done;
    byoff[n] = &ents[n];
    n++;
  }
  int nmeta = 0;
  if (meta) {
    if (!cJSON_IsObject(meta)) {
      st = amp__error(ctx, AMP_ERR_FORMAT, "safetensors: %s: __metadata__ is not a JSON object",
                      who);
      goto done;
    }
    for (const cJSON *c = meta->child; c; c = c->next, nmeta++)
      if (!cJSON_IsString(c) || !c->valuestring) {
        st = amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: __metadata__ value of '" ST_NAME_FMT "' is not a string",
                        who, c->string ? c->string : "");
        goto done;
      }
    const char **mtmp = malloc(((size_t)nmeta + 1) * sizeof *mtmp);
    if (!mtmp) {
      st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
      goto done;
    }
    dup = duplicate_key(meta, mtmp);
    if (dup)
      st = amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: duplicate __metadata__ key '" ST_NAME_FMT "'", who, dup);
    free(mtmp);
    if (st != AMP_OK) goto done;
  }
  /* The tensors must tile the data section: no overlap, no gap, no tail. */
  qsort(byoff, (size_t)n, sizeof *byoff, cmp_entry_offsets);
  uint64_t pos = 0;
  for (int i = 0; i < n; i++) {
    if (byoff[i]->begin < pos) {
      st = amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensors '" ST_NAME_FMT "' and '" ST_NAME_FMT
                      "' overlap in the data section",
                      who, byoff[i - 1]->name, byoff[i]->name);
      goto done;
    }
    if (byoff[i]->begin > pos) {
      st = amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: a gap of %llu bytes before tensor '" ST_NAME_FMT
                      "' in the data section",
                      who, (unsigned long long)(byoff[i]->begin - pos), byoff[i]->name);
      goto done;
    }
    pos = byoff[i]->end;
  }
  if (pos != data_len) {
    st = amp__error(ctx, AMP_ERR_FORMAT,
                    "safetensors: %s: %llu trailing bytes of the data section belong to no tensor",
                    who, (unsigned long long)(data_len - pos));
    goto done;
  }
  /* Build the result, in name order. */
  qsort(ents, (size_t)n, sizeof *ents, cmp_entry_names);
  f->t = calloc((size_t)n + 1, sizeof *f->t);
  f->mkey = calloc((size_t)nmeta + 1, sizeof *f->mkey);
  f->mval = calloc((size_t)nmeta + 1, sizeof *f->mval);
  if (!f->t || !f->mkey || !f->mval) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    amp_st_tensor *x = &f->t[i];
    x->name = dupstr(ents[i].name);
    if (!x->name) {
      st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
      goto done;
    }
    f->n = i + 1;
    x->dtype = ents[i].dt->dt;
    x->dtype_name = ents[i].dt->name;
    x->ndim = ents[i].ndim;
    memcpy(x->shape, ents[i].shape, sizeof x->shape);
    x->bytes = (size_t)(ents[i].end - ents[i].begin);
    x->data = (const void *)(uintptr_t)ents[i].begin; /* an offset until the data are in */
  }
  if (meta) {
    int i = 0;
    for (const cJSON *c = meta->child; c; c = c->next, i++) {
      f->mkey[i] = dupstr(c->string ? c->string : "");
      f->mval[i] = dupstr(c->valuestring);
      f->nmeta = i + 1;
      if (!f->mkey[i] || !f->mval[i]) {
        st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
        goto done;
      }
    }
    /* Key order (keys are unique). */
    meta_pair *pairs = malloc(((size_t)nmeta + 1) * sizeof *pairs);
    if (!pairs) {
      st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
      goto done;
    }
    for (int k = 0; k < nmeta; k++) pairs[k] = (meta_pair){f->mkey[k], f->mval[k]};
    qsort(pairs, (size_t)nmeta, sizeof *pairs, cmp_meta_pair);
    for (int k = 0; k < nmeta; k++) {
      f->mkey[k] = pairs[k].key;
      f->mval[k] = pairs[k].val;
    }
    free(pairs);
  }
  f->data_len = (size_t)data_len;
done:
  cJSON_Delete(root);
  free(tmp);
  free(ents);
  free(byoff);
  if (st != AMP_OK) {
    amp_safetensors_free(f);
    f = NULL;
  }
  *out = f;
  return st;
}

/* Allocates the data section (64-byte aligned) and turns the offsets into
 * pointers. The caller fills it. */
static amp_status alloc_data(amp_ctx *ctx, const char *who, amp_safetensors *f) {
  void *p = NULL;
  if (posix_memalign(&p, 64, f->data_len > 0 ? f->data_len : 64) != 0 || !p)
    return amp__error(ctx, AMP_ERR_NOMEM,
                      "safetensors: %s: out of memory for a data section of %zu bytes", who,
                      f->data_len);
  f->data = p;
  for (int i = 0; i < f->n; i++) f->t[i].data = f->data + (uintptr_t)f->t[i].data;
  return AMP_OK;
}

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* Checks the header length against the file's size. */
static amp_status check_header_len(amp_ctx *ctx, const char *who, uint64_t hlen, uint64_t total) {
  if (total < 8)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: %llu bytes, too short for the 8-byte header length", who,
                      (unsigned long long)total);
  if (hlen > ST_MAX_HEADER)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: header length %llu exceeds the limit of %llu bytes", who,
                      (unsigned long long)hlen, ST_MAX_HEADER);
  if (hlen > total - 8)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: header length %llu exceeds the %llu bytes that follow it",
                      who, (unsigned long long)hlen, (unsigned long long)(total - 8));
  if (hlen < 2)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: header length %llu is too small (at least 2: \"{}\")", who,
                      (unsigned long long)hlen);
  return AMP_OK;
}

amp_status amp_safetensors_parse(amp_ctx *ctx, const void *buf, size_t len, amp_safetensors **out) {
  if (out) *out = NULL;
  if (!out || (!buf && len > 0))
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_safetensors_parse: NULL buffer or out");
  const unsigned char *b = buf;
  const char *who = "buffer";
  amp_status st = check_header_len(ctx, who, len >= 8 ? le64(b) : 0, len);
  if (st != AMP_OK) return st;
  size_t hlen = (size_t)le64(b);
  char *hdr = malloc(hlen + 1);
  if (!hdr) return amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
  memcpy(hdr, b + 8, hlen);
  hdr[hlen] = '\0';
  amp_safetensors *f;
  st = parse_header(ctx, who, hdr, hlen, (uint64_t)(len - 8 - hlen), &f);
  free(hdr);
  if (st != AMP_OK) return st;
  if ((st = alloc_data(ctx, who, f)) != AMP_OK) {
    amp_safetensors_free(f);
    return st;
  }
  if (f->data_len) memcpy(f->data, b + 8 + hlen, f->data_len);
  *out = f;
  return AMP_OK;
}

/* Reads exactly len bytes; returns 0, or -1 with errno (0 at end of file). */
static int read_all(int fd, void *buf, size_t len) {
  unsigned char *p = buf;
  while (len > 0) {
    size_t chunk = len > (size_t)1 << 30 ? (size_t)1 << 30 : len;
    ssize_t r = read(fd, p, chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) {
      errno = 0;
      return -1;
    }
    p += r;
    len -= (size_t)r;
  }
  return 0;
}

amp_status amp_safetensors_read(amp_ctx *ctx, const char *path, amp_safetensors **out) {
  if (out) *out = NULL;
  if (!path || !out)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_safetensors_read: NULL path or out");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return amp__error(ctx, AMP_ERR_IO, "safetensors: %s: cannot open: %s", path, strerror(errno));
  amp_status st = AMP_OK;
  char *hdr = NULL;
  amp_safetensors *f = NULL;
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    st = amp__error(ctx, AMP_ERR_IO, "safetensors: %s: not a regular file", path);
    goto done;
  }
  uint64_t total = (uint64_t)sb.st_size;
  unsigned char lenbuf[8] = {0};
  if (total >= 8 && read_all(fd, lenbuf, 8) != 0) {
    st = amp__error(ctx, AMP_ERR_IO, "safetensors: %s: cannot read: %s", path,
                    errno ? strerror(errno) : "unexpected end of file");
    goto done;
  }
  if ((st = check_header_len(ctx, path, le64(lenbuf), total)) != AMP_OK) goto done;
  size_t hlen = (size_t)le64(lenbuf);
  uint64_t data_len = total - 8 - hlen;
  if (data_len > SIZE_MAX) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: too large", path);
    goto done;
  }
  hdr = malloc(hlen + 1);
  if (!hdr) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", path);
    goto done;
  }
  if (read_all(fd, hdr, hlen) != 0) {
    st = amp__error(ctx, AMP_ERR_IO, "safetensors: %s: cannot read the header: %s", path,
                    errno ? strerror(errno) : "unexpected end of file");
    goto done;
  }
  hdr[hlen] = '\0';
  if ((st = parse_header(ctx, path, hdr, hlen, data_len, &f)) != AMP_OK) goto done;
  if ((st = alloc_data(ctx, path, f)) != AMP_OK) goto done;
  if (f->data_len && read_all(fd, f->data, f->data_len) != 0) {
    st = amp__error(ctx, AMP_ERR_IO, "safetensors: %s: cannot read the data: %s", path,
                    errno ? strerror(errno) : "unexpected end of file");
    goto done;
  }
done:
  close(fd);
  free(hdr);
  if (st != AMP_OK) {
    amp_safetensors_free(f);
    f = NULL;
  }
  *out = f;
  return st;
}

int amp_safetensors_count(const amp_safetensors *f) { return f ? f->n : 0; }

const amp_st_tensor *amp_safetensors_at(const amp_safetensors *f, int i) {
  return f && i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const amp_st_tensor *amp_safetensors_find(const amp_safetensors *f, const char *name) {
  if (!f || !name) return NULL;
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(f->t[mid].name, name);
    if (c == 0) return &f->t[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return NULL;
}

const char *amp_safetensors_meta(const amp_safetensors *f, const char *key) {
  if (!f || !key) return NULL;
  int lo = 0, hi = f->nmeta - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(f->mkey[mid], key);
    if (c == 0) return f->mval[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return NULL;
}

int amp_safetensors_meta_count(const amp_safetensors *f) { return f ? f->nmeta : 0; }

const char *amp_safetensors_meta_at(const amp_safetensors *f, int i, const char **value) {
  if (!f || i < 0 || i >= f->nmeta) {
    if (value) *value = NULL;
    return NULL;
  }
  if (value) *value = f->mval[i];
  return f->mkey[i];
}
