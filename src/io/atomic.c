/* Atomic file replacement: write a temporary file next to the target, sync
 * it, rename it over the target, sync the directory. */
#include "io_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The pid of a temporary file name "<base>.tmp.<pid>.<k>" of the target
 * whose last component is `base`, or 0 when `name` is not one. */
static long tmp_owner(const char *name, const char *base) {
  size_t bl = strlen(base);
  if (strncmp(name, base, bl) != 0 || strncmp(name + bl, ".tmp.", 5) != 0) return 0;
  const char *p = name + bl + 5;
  long pid = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++) pid = pid * 10 + (*p - '0');
  if (!digits || *p++ != '.') return 0;
  if (*p < '0' || *p > '9') return 0;
  for (digits = 0; *p >= '0' && *p <= '9' && digits < 4; p++) digits++;
  return *p == '\0' ? pid : 0;
}

/* Removes the temporary files of earlier saves of the same target that a
 * killed process left: only names of the scheme above whose process no
 * longer exists. Best effort: a failure changes nothing else. */
static void remove_stale_tmp(const char *dir, const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    long pid = tmp_owner(e->d_name, base);
    if (pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to know */
    unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

amp_status amp__write_atomic_as(amp_ctx *ctx, const char *label, const char *path,
                                const amp__iopart *parts, int n) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 64);
  char *dir = malloc(plen + 2);
  if (!tmp || !dir) {
    free(tmp);
    free(dir);
    return amp__error(ctx, AMP_ERR_NOMEM, "%s: %s: out of memory", label, path);
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
    st = amp__error(ctx, AMP_ERR_IO, "%s: %s: cannot create the temporary file %s: %s", label, path,
                    tmp, strerror(errno));
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
    st = amp__error(ctx, AMP_ERR_IO, "%s: %s: %s the temporary file %s: %s", label, path, what, tmp,
                    strerror(err));
    free(tmp);
    free(dir);
    return st;
  }
  remove_stale_tmp(dir, path);
  /* Make the rename durable. Some file systems cannot sync a directory
   * (EINVAL): the data itself is synced, so that is not an error. */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
      st = amp__error(ctx, AMP_ERR_IO, "%s: %s: written, but the directory %s cannot be synced: %s",
                      label, path, dir, strerror(errno));
    close(dfd);
  } else {
    st = amp__error(ctx, AMP_ERR_IO,
                    "%s: %s: written, but the directory %s cannot be opened to sync "
                    "it: %s",
                    label, path, dir, strerror(errno));
  }
  free(tmp);
  free(dir);
  return st;
}

amp_status amp__write_atomic(amp_ctx *ctx, const char *path, const amp__iopart *parts, int n) {
  return amp__write_atomic_as(ctx, "safetensors", path, parts, n);
}

amp_status amp_file_write_atomic(amp_ctx *ctx, const char *path, const void *data, size_t len) {
  if (!path || (!data && len > 0))
    return amp__error(ctx, AMP_ERR_INVALID_ARG, "amp_file_write_atomic: NULL %s",
                      path ? "data" : "path");
  amp__iopart part = {data, len};
  return amp__write_atomic_as(ctx, "write", path, &part, 1);
}
