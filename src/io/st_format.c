/* What the safetensors writer and reader share: the dtype names of the
 * format and UTF-8 validation. */
#include "io_internal.h"

#include <string.h>

/* ampc's dtypes (their rows of the dtype traits table), then the other
 * safetensors dtypes, which a file may hold but ampc cannot load. */
#define ST_ROW(e, name, st_name, size, ...) {st_name, e, size},
static const amp__st_dtype ST_DTYPES[] = {
    AMP__DTYPE_ROWS(ST_ROW){"I64", AMP_DTYPE_COUNT, 8},
    {"F64", AMP_DTYPE_COUNT, 8},
    {"BOOL", AMP_DTYPE_COUNT, 1},
    {"I16", AMP_DTYPE_COUNT, 2},
    {"U16", AMP_DTYPE_COUNT, 2},
    {"U32", AMP_DTYPE_COUNT, 4},
    {"U64", AMP_DTYPE_COUNT, 8},
};
enum { ST_NDTYPES = (int)(sizeof ST_DTYPES / sizeof ST_DTYPES[0]) };

const amp__st_dtype *amp__st_dtype_by_name(const char *s) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (strcmp(ST_DTYPES[i].name, s) == 0) return &ST_DTYPES[i];
  return NULL;
}

const amp__st_dtype *amp__st_dtype_by_amp(amp_dtype dt) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (ST_DTYPES[i].dt == dt && dt != AMP_DTYPE_COUNT) return &ST_DTYPES[i];
  return NULL;
}

size_t amp__utf8_valid_prefix(const unsigned char *s, size_t n) {
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

int amp__utf8_valid(const char *s) {
  size_t n = strlen(s);
  return amp__utf8_valid_prefix((const unsigned char *)s, n) == n;
}

int amp__cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}
