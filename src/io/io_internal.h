/* Internal declarations of the I/O layer. Not part of the public API. */
#ifndef AMPC_IO_INTERNAL_H
#define AMPC_IO_INTERNAL_H

#include "../core/internal.h"

#include <stddef.h>

/* One piece of a file to write. */
typedef struct amp__iopart {
  const void *data;
  size_t len;
} amp__iopart;

/* Writes the concatenation of `n` parts to `path` atomically: a temporary
 * file "<path>.tmp.<pid>.<k>" in the same directory is written, fsynced and
 * renamed over `path`, then the directory is fsynced. On failure the
 * temporary file is removed, `path` is left as it was, and AMP_ERR_IO is
 * returned with a message naming the path (recorded on ctx). */
amp_status amp__write_atomic(amp_ctx *ctx, const char *path, const amp__iopart *parts, int n);

#endif
