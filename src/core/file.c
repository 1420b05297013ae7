/* Opening input files without trusting what the path names. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int amp__open_regular(const char *path, int64_t *size) {
  /* O_NONBLOCK: open() of a FIFO without a writer (or of some devices)
   * would otherwise wait forever before fstat could refuse it. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  struct stat sb;
  int flags;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    errno = 0;
    return -2;
  }
  /* Regular files ignore O_NONBLOCK, but the reads that follow expect a
   * blocking descriptor: clear it. */
  if ((flags = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  *size = (int64_t)sb.st_size;
  return fd;
}
