/* The safetensors writer: checks every tensor and metadata pair, lays the
 * data section out (element size, largest first, then name), builds the JSON
 * header with cJSON (entries in name order) and writes the file atomically. */
#include "io_internal.h"

#include <cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_NAME_FMT AMP__ST_NAME_FMT

typedef struct order_item {
  const amp_st_tensor *t;
  size_t size; /* element size; in the name-ordered copy, the data offset */
} order_item;

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

/* Checks one tensor to write; returns its element size in *esize. */
static amp_status check_out_tensor(amp_ctx *ctx, const char *path, const amp_st_tensor *t,
                                   size_t *esize) {
  if (!t->name)
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "safetensors: %s: a tensor has no name", path);
  if (!amp__utf8_valid(t->name))
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "safetensors: %s: a tensor name is not valid UTF-8",
                      path);
  if (strcmp(t->name, "__metadata__") == 0)
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "safetensors: %s: \"__metadata__\" cannot name a tensor", path);
  const amp__st_dtype *d = amp__st_dtype_by_amp(t->dtype);
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

/* Checks the metadata pairs: no NULL, valid UTF-8, unique keys. `keys` has
 * room for nmeta pointers. */
static amp_status check_meta(amp_ctx *ctx, const char *path, const char *const *meta, int nmeta,
                             const char **keys) {
  for (int i = 0; i < nmeta; i++) {
    if (!meta[2 * i] || !meta[2 * i + 1])
      return amp__error(ctx, AMP_ERR_INVALID_ARG, "safetensors: %s: metadata pair %d has a NULL",
                        path, i);
    if (!amp__utf8_valid(meta[2 * i]) || !amp__utf8_valid(meta[2 * i + 1]))
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "safetensors: %s: metadata pair %d is not valid UTF-8", path, i);
    keys[i] = meta[2 * i];
  }
  qsort(keys, (size_t)nmeta, sizeof *keys, amp__cmp_str_ptr);
  for (int i = 1; i < nmeta; i++)
    if (strcmp(keys[i - 1], keys[i]) == 0)
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "safetensors: %s: duplicate metadata key '" ST_NAME_FMT "'", path, keys[i]);
  return AMP_OK;
}

/* Lays the data section out: `items` (element sizes filled in) is sorted
 * into data order and parts[1..n] point at the data in that order; byname[]
 * gets the tensors in name order with their offsets in `size`. Duplicate
 * names are refused. */
static amp_status layout(amp_ctx *ctx, const char *path, order_item *items, int n,
                         amp__iopart *parts, order_item *byname) {
  qsort(items, (size_t)n, sizeof *items, cmp_data_order);
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    parts[i + 1].data = items[i].t->data;
    parts[i + 1].len = items[i].t->bytes;
    byname[i].t = items[i].t;
    byname[i].size = off;
    off += items[i].t->bytes;
  }
  qsort(byname, (size_t)n, sizeof *byname, cmp_item_name);
  for (int i = 1; i < n; i++)
    if (strcmp(byname[i - 1].t->name, byname[i].t->name) == 0)
      return amp__error(ctx, AMP_ERR_INVALID_ARG,
                        "safetensors: %s: duplicate tensor name '" ST_NAME_FMT "'", path,
                        byname[i].t->name);
  return AMP_OK;
}

static cJSON *raw_u64(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  return cJSON_CreateRaw(buf);
}

/* Appends the unsigned integers v[0, n) to the JSON array `arr`. */
static int add_u64s(cJSON *arr, const uint64_t *v, int n) {
  for (int k = 0; k < n; k++) {
    cJSON *x = raw_u64(v[k]);
    if (!x || !cJSON_AddItemToArray(arr, x)) {
      cJSON_Delete(x);
      return 0;
    }
  }
  return 1;
}

/* Adds the header entry {"dtype", "shape", "data_offsets"} of one tensor
 * whose data start at `begin`. Returns 0 when memory runs out. */
static int add_entry(cJSON *root, const amp_st_tensor *x, uint64_t begin) {
  cJSON *e = cJSON_CreateObject();
  if (!e || !cJSON_AddItemToObject(root, x->name, e)) {
    cJSON_Delete(e);
    return 0;
  }
  if (!cJSON_AddStringToObject(e, "dtype", amp__st_dtype_by_amp(x->dtype)->name)) return 0;
  cJSON *shape = cJSON_AddArrayToObject(e, "shape");
  uint64_t dims[AMP_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) dims[d] = (uint64_t)x->shape[d];
  if (!shape || !add_u64s(shape, dims, x->ndim)) return 0;
  cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
  uint64_t be[2] = {begin, begin + x->bytes};
  return offs && add_u64s(offs, be, 2);
}

/* The JSON header (cJSON_free it), or NULL when memory runs out. */
static char *build_header(const order_item *byname, int n, const char *const *meta, int nmeta) {
  cJSON *root = cJSON_CreateObject();
  int ok = root != NULL;
  if (ok && nmeta > 0) {
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    ok = m != NULL;
    for (int i = 0; ok && i < nmeta; i++)
      ok = cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]) != NULL;
  }
  for (int i = 0; ok && i < n; i++) ok = add_entry(root, byname[i].t, (uint64_t)byname[i].size);
  char *js = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  return js;
}

/* The 8-byte length and the header, padded with spaces so that the data
 * start 8-aligned (malloc; *len gets its size). */
static char *frame_header(const char *js, size_t *len) {
  size_t jlen = strlen(js);
  size_t hlen = (jlen + 7) / 8 * 8;
  char *header = malloc(8 + hlen);
  if (!header) return NULL;
  for (int k = 0; k < 8; k++) header[k] = (char)(((uint64_t)hlen >> (8 * k)) & 0xFF);
  memcpy(header + 8, js, jlen);
  memset(header + 8 + jlen, ' ', hlen - jlen);
  *len = 8 + hlen;
  return header;
}

amp_status amp_safetensors_write(amp_ctx *ctx, const char *path, const amp_st_tensor *t, int n,
                                 const char *const *meta, int nmeta) {
  if (!path || n < 0 || nmeta < 0 || (n > 0 && !t) || (nmeta > 0 && !meta))
    return amp__error(ctx, AMP_ERR_INVALID_ARG,
                      "amp_safetensors_write: NULL path, or NULL arrays with counts > 0");
  amp_status st = AMP_OK;
  order_item *items = calloc((size_t)n + 1, sizeof *items);
  order_item *byname = calloc((size_t)n + 1, sizeof *byname);
  const char **keys = calloc((size_t)nmeta + 1, sizeof *keys);
  amp__iopart *parts = calloc((size_t)n + 1, sizeof *parts);
  char *js = NULL, *header = NULL;
  if (!items || !byname || !keys || !parts) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", path);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    items[i].t = &t[i];
    if ((st = check_out_tensor(ctx, path, &t[i], &items[i].size)) != AMP_OK) goto done;
  }
  if ((st = check_meta(ctx, path, meta, nmeta, keys)) != AMP_OK) goto done;
  if ((st = layout(ctx, path, items, n, parts, byname)) != AMP_OK) goto done;
  js = build_header(byname, n, meta, nmeta);
  if (!js) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory building the header", path);
    goto done;
  }
  header = frame_header(js, &parts[0].len);
  if (!header) {
    st = amp__error(ctx, AMP_ERR_NOMEM, "safetensors: %s: out of memory", path);
    goto done;
  }
  parts[0].data = header;
  st = amp__write_atomic(ctx, path, parts, n + 1);
done:
  free(header);
  if (js) cJSON_free(js);
  free(parts);
  free(keys);
  free(byname);
  free(items);
  return st;
}
