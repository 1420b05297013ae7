/* The safetensors reader, which trusts nothing: every length, offset and
 * JSON value is checked before use, the tensors must tile the data section,
 * and names and metadata keys must be unique. The header is parsed with
 * cJSON. */
#include "io_internal.h"

#include <cJSON.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ull    /* as the reference implementation */
#define ST_MAX_INT 9007199254740992.0 /* 2^53: larger JSON numbers are inexact */
#define ST_NAME_FMT AMP__ST_NAME_FMT

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
  const amp__st_dtype *dt;
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
  qsort(tmp, (size_t)k, sizeof *tmp, amp__cmp_str_ptr);
  for (int i = 1; i < k; i++)
    if (strcmp(tmp[i - 1], tmp[i]) == 0) return tmp[i];
  return NULL;
}

/* Reads the shape array of tensor `name` into pe (whose dtype is known) and
 * its byte size into *bytes. */
static amp_status parse_shape(amp_ctx *ctx, const char *who, const char *name, const cJSON *shape,
                              parsed_entry *pe, uint64_t *bytes) {
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
  *bytes = numel * pe->dt->size;
  return AMP_OK;
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
  pe->dt = amp__st_dtype_by_name(dtype->valuestring);
  if (!pe->dt)
    return amp__error(ctx, AMP_ERR_FORMAT,
                      "safetensors: %s: tensor '" ST_NAME_FMT "': unknown dtype '%.40s'", who, name,
                      dtype->valuestring);
  uint64_t bytes = 0;
  amp_status st = parse_shape(ctx, who, name, shape, pe, &bytes);
  if (st != AMP_OK) return st;
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

/* Checks __metadata__: an object of string values with unique keys; its
 * size goes to *nmeta. */
static amp_status check_metadata(amp_ctx *ctx, const char *who, const cJSON *meta, int *nmeta) {
  *nmeta = 0;
  if (!cJSON_IsObject(meta))
    return amp__error(ctx, AMP_ERR_FORMAT, "safetensors: %s: __metadata__ is not a JSON object",
                      who);
  int n = 0;
  for (const cJSON *c = meta->child; c; c = c->next, n++)
    if (!cJSON_IsString(c) || !c->valuestring)
      return amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: __metadata__ value of '" ST_NAME_FMT "' is not a string",
                        who, c->string ? c->string : "");
  const char **tmp = malloc(((size_t)n + 1) * sizeof *tmp);
  if (!tmp) return amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
  const char *dup = duplicate_key(meta, tmp);
  amp_status st = AMP_OK;
  if (dup)
    st = amp__error(ctx, AMP_ERR_FORMAT,
                    "safetensors: %s: duplicate __metadata__ key '" ST_NAME_FMT "'", who, dup);
  free(tmp);
  *nmeta = n;
  return st;
}

/* The tensors (byoff[0, n), sorted here by offset) must tile the data
 * section of data_len bytes: no overlap, no gap, no tail. */
static amp_status check_tiling(amp_ctx *ctx, const char *who, parsed_entry **byoff, int n,
                               uint64_t data_len) {
  qsort(byoff, (size_t)n, sizeof *byoff, cmp_entry_offsets);
  uint64_t pos = 0;
  for (int i = 0; i < n; i++) {
    if (byoff[i]->begin < pos)
      return amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: tensors '" ST_NAME_FMT "' and '" ST_NAME_FMT
                        "' overlap in the data section",
                        who, byoff[i - 1]->name, byoff[i]->name);
    if (byoff[i]->begin > pos)
      return amp__error(ctx, AMP_ERR_FORMAT,
                        "safetensors: %s: a gap of %llu bytes before tensor '" ST_NAME_FMT
                        "' in the data section",
                        who, (unsigned long long)(byoff[i]->begin - pos), byoff[i]->name);
    pos = byoff[i]->end;
  }
  if (pos != data_len)
    return amp__error(
        ctx, AMP_ERR_FORMAT,
        "safetensors: %s: %llu trailing bytes of the data section belong to no tensor", who,
        (unsigned long long)(data_len - pos));
  return AMP_OK;
}

/* Copies the metadata pairs of `meta` (nmeta of them) into f, in key order. */
static amp_status copy_metadata(amp_ctx *ctx, const char *who, const cJSON *meta, int nmeta,
                                amp_safetensors *f) {
  int i = 0;
  for (const cJSON *c = meta->child; c; c = c->next, i++) {
    f->mkey[i] = dupstr(c->string ? c->string : "");
    f->mval[i] = dupstr(c->valuestring);
    f->nmeta = i + 1;
    if (!f->mkey[i] || !f->mval[i])
      return amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
  }
  /* Key order (keys are unique). */
  meta_pair *pairs = malloc(((size_t)nmeta + 1) * sizeof *pairs);
  if (!pairs) return amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
  for (int k = 0; k < nmeta; k++) pairs[k] = (meta_pair){f->mkey[k], f->mval[k]};
  qsort(pairs, (size_t)nmeta, sizeof *pairs, cmp_meta_pair);
  for (int k = 0; k < nmeta; k++) {
    f->mkey[k] = pairs[k].key;
    f->mval[k] = pairs[k].val;
  }
  free(pairs);
  return AMP_OK;
}

/* Fills f (allocated, empty) with the n entries (sorted here by name) and
 * the metadata; the tensors' data pointers hold offsets for now. */
static amp_status build_result(amp_ctx *ctx, const char *who, parsed_entry *ents, int n,
                               const cJSON *meta, int nmeta, amp_safetensors *f) {
  qsort(ents, (size_t)n, sizeof *ents, cmp_entry_names);
  f->t = calloc((size_t)n + 1, sizeof *f->t);
  f->mkey = calloc((size_t)nmeta + 1, sizeof *f->mkey);
  f->mval = calloc((size_t)nmeta + 1, sizeof *f->mval);
  if (!f->t || !f->mkey || !f->mval)
    return amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
  for (int i = 0; i < n; i++) {
    amp_st_tensor *x = &f->t[i];
    x->name = dupstr(ents[i].name);
    if (!x->name) return amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", who);
    f->n = i + 1;
    x->dtype = ents[i].dt->dt;
    x->dtype_name = ents[i].dt->name;
    x->ndim = ents[i].ndim;
    memcpy(x->shape, ents[i].shape, sizeof x->shape);
    x->bytes = (size_t)(ents[i].end - ents[i].begin);
    x->data = (const void *)(uintptr_t)ents[i].begin; /* an offset until the data are in */
  }
  return meta ? copy_metadata(ctx, who, meta, nmeta, f) : AMP_OK;
}

/* What cJSON lets through and a strict JSON parser (the reference
 * implementation's) does not: a UTF-8 byte-order mark before the header, a
 * raw control character (inside a string, or outside one other than the
 * JSON whitespace), and a \u0000 escape, which would cut a C string short.
 * Returns the offending byte's offset and sets *what, or returns hlen. */
static size_t lax_json_at(const char *hdr, size_t hlen, const char **what) {
  const unsigned char *s = (const unsigned char *)hdr;
  if (hlen >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) {
    *what = "starts with a UTF-8 byte-order mark";
    return 0;
  }
  int in_string = 0;
  for (size_t i = 0; i < hlen; i++) {
    unsigned c = s[i];
    if (c < 0x20 && (in_string || (c != '\t' && c != '\n' && c != '\r'))) {
      *what = "has a raw control character";
      return i;
    }
    if (!in_string) {
      in_string = c == '"';
    } else if (c == '"') {
      in_string = 0;
    } else if (c == '\\' && i + 1 < hlen) {
      if (s[i + 1] == 'u' && hlen - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0) {
        *what = "has a \\u0000 escape in a string";
        return i;
      }
      i++; /* the escaped character */
    }
  }
  return hlen;
}

/* Parses the header text (NUL-terminated, hlen bytes) as JSON after checking
 * that it is UTF-8 without NUL bytes. NULL (error recorded) on failure. */
static cJSON *parse_json(amp_ctx *ctx, const char *who, const char *hdr, size_t hlen) {
  if (memchr(hdr, '\0', hlen)) {
    amp__error(ctx, AMP_ERR_FORMAT, "safetensors: %s: the header contains a NUL byte", who);
    return NULL;
  }
  size_t valid = amp__utf8_valid_prefix((const unsigned char *)hdr, hlen);
  if (valid != hlen) {
    amp__error(ctx, AMP_ERR_FORMAT,
               "safetensors: %s: the header is not valid UTF-8 (byte %zu of %zu)", who, valid,
               hlen);
    return NULL;
  }
  const char *what = NULL;
  size_t at = lax_json_at(hdr, hlen, &what);
  if (at != hlen) {
    amp__error(ctx, AMP_ERR_FORMAT, "safetensors: %s: the header %s (byte %zu)", who, what, at);
    return NULL;
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(hdr, &end, 1);
  if (!root) {
    size_t pos = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
    amp__error(ctx, AMP_ERR_FORMAT,
               "safetensors: %s: the header is not valid JSON (error near byte %zu of %zu)", who,
               pos, hlen);
    return NULL;
  }
  if (!cJSON_IsObject(root)) {
    amp__error(ctx, AMP_ERR_FORMAT, "safetensors: %s: the header is not a JSON object", who);
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

/* Validates the header (`hdr`, NUL-terminated, `hlen` bytes) of a file whose
 * data section has `data_len` bytes, and builds *out without its data. */
static amp_status parse_header(amp_ctx *ctx, const char *who, const char *hdr, size_t hlen,
                               uint64_t data_len, amp_safetensors **out) {
  *out = NULL;
  cJSON *root = parse_json(ctx, who, hdr, hlen);
  if (!root) return AMP_ERR_FORMAT; /* every failure of parse_json is one */
  amp_status st = AMP_OK;
  int count = cJSON_GetArraySize(root);
  const cJSON *meta = NULL;
  const char **tmp = malloc(((size_t)count + 1) * sizeof *tmp);
  parsed_entry *ents = calloc((size_t)count + 1, sizeof *ents);
  parsed_entry **byoff = calloc((size_t)count + 1, sizeof *byoff);
  amp_safetensors *f = calloc(1, sizeof *f);
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
  int n = 0, nmeta = 0;
  for (const cJSON *e = root->child; e; e = e->next) {
    if (e->string && strcmp(e->string, "__metadata__") == 0) {
      meta = e;
      continue;
    }
    if ((st = parse_entry(ctx, who, e, data_len, &ents[n])) != AMP_OK) goto done;
    byoff[n] = &ents[n];
    n++;
  }
  if (meta && (st = check_metadata(ctx, who, meta, &nmeta)) != AMP_OK) goto done;
  if ((st = check_tiling(ctx, who, byoff, n, data_len)) != AMP_OK) goto done;
  if ((st = build_result(ctx, who, ents, n, meta, nmeta, f)) != AMP_OK) goto done;
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
  int64_t size = 0;
  int fd = amp__open_regular(path, &size);
  if (fd == -2) return amp__error(ctx, AMP_ERR_IO, "safetensors: %s: not a regular file", path);
  if (fd < 0)
    return amp__error(ctx, AMP_ERR_IO, "safetensors: %s: cannot open: %s", path, strerror(errno));
  amp_status st = AMP_OK;
  char *hdr = NULL;
  amp_safetensors *f = NULL;
  uint64_t total = (uint64_t)size;
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
