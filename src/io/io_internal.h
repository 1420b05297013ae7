/* Internal declarations of the I/O layer. Not part of the public API.
 *
 * The layer's files: atomic.c (crash-safe file replacement), st_format.c
 * (what the safetensors writer and reader share: dtype names, UTF-8
 * validity), st_write.c (the writer), st_read.c (the reader), checkpoint.c
 * (training checkpoints on top of them). */
#ifndef AMPC_IO_INTERNAL_H
#define AMPC_IO_INTERNAL_H

#include "../core/internal.h"

#include <stddef.h>

#define AMP__ST_NAME_FMT "%.80s" /* names in messages are cut to 80 bytes */

/* One piece of a file to write. */
typedef struct amp__iopart {
  const void *data;
  size_t len;
} amp__iopart;

/* Writes the concatenation of `n` parts to `path` atomically: a temporary
 * file "<path>.tmp.<pid>.<k>" in the same directory is written, fsynced and
 * renamed over `path`, then the directory is fsynced. On failure the
 * temporary file is removed, `path` is left as it was, and AMP_ERR_IO is
 * returned with a message naming the path (recorded on ctx). After a
 * successful rename, temporary files of the same target that an earlier,
 * killed process left ("<path>.tmp.<pid>.<k>" whose pid no longer exists)
 * are removed. */
amp_status amp__write_atomic(amp_ctx *ctx, const char *path, const amp__iopart *parts, int n);

/* amp__write_atomic() whose messages start with `label` instead of
 * "safetensors" (amp_file_write_atomic: "write"). */
amp_status amp__write_atomic_as(amp_ctx *ctx, const char *label, const char *path,
                                const amp__iopart *parts, int n);

/* A safetensors dtype: its name in the header, the ampc type
 * (AMP_DTYPE_COUNT when ampc has none: such tensors can be read, not
 * converted) and its element size. */
typedef struct amp__st_dtype {
  const char *name;
  amp_dtype dt;
  size_t size;
} amp__st_dtype;

/* The safetensors dtype named `s` (NULL: unknown name). */
const amp__st_dtype *amp__st_dtype_by_name(const char *s);

/* The safetensors dtype of an ampc type (NULL: it has none). */
const amp__st_dtype *amp__st_dtype_by_amp(amp_dtype dt);

/* Length of the valid UTF-8 prefix of s[0, n) (n when all of it is valid):
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
size_t amp__utf8_valid_prefix(const unsigned char *s, size_t n);

/* Non-zero when the NUL-terminated `s` is valid UTF-8. */
int amp__utf8_valid(const char *s);

/* strcmp on two `const char *` array elements, for qsort and bsearch. */
int amp__cmp_str_ptr(const void *a, const void *b);

#endif
