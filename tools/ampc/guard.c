/* Checks made before a run commits to its work (see guard.h). */
#include "guard.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int ampc_guard_output(const char *cmd, const char *flag, const char *path) {
  struct stat sb;
  if (!*path) {
    fprintf(stderr, "ampc %s: %s: empty path\n", cmd, flag);
    return 2;
  }
  if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    fprintf(stderr, "ampc %s: %s: '%s' exists and is not a regular file\n", cmd, flag, path);
    return 2;
  }
  /* The directory, then a probe file in it (O_EXCL: never an existing one). */
  size_t len = strlen(path);
  char *probe = malloc(len + 64);
  if (!probe) return 1;
  const char *slash = strrchr(path, '/');
  size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
  memcpy(probe, path, dlen);
  snprintf(probe + dlen, len + 64 - dlen, ".ampc-probe.%ld", (long)getpid());
  int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  int err = errno;
  if (fd >= 0) {
    close(fd);
    unlink(probe);
  }
  free(probe);
  if (fd < 0) {
    fprintf(stderr, "ampc %s: %s: cannot create files next to '%s': %s (checked before training)\n",
            cmd, flag, path, strerror(err));
    return 2;
  }
  return 0;
}

ampc_mem_plan ampc_mem_estimate(const long *sizes, int n, long batch, int optim_state,
                                int work_bytes, double data_bytes, double steps) {
  ampc_mem_plan m = {0, 0, 0, 0};
  double width = 0;
  for (int i = 0; i + 1 < n; i++) m.params += (double)sizes[i] * sizes[i + 1] + sizes[i + 1];
  for (int i = 0; i < n; i++) width += (double)sizes[i];
  /* master + gradient (F32), the working copy, one F32 slab per moment, and
   * about 8 bytes per parameter of step temporaries (packed GEMM operands,
   * each layer's weight gradient before it is accumulated): measured 15.9
   * bytes per parameter for FP32 SGD, 25.6 for FP16 Adam. */
  m.state_bytes = m.params * (16.0 + work_bytes + 4.0 * optim_state);
  /* Each layer's input, output, their gradients and casts: a few F32 copies
   * of every activation. */
  m.act_bytes = (double)batch * width * 4.0 * 6.0;
  /* step times: a reservoir of at most 65536 (train.c, STEP_MS_CAP) */
  m.other_bytes = data_bytes + 8.0 * (steps < 65536 ? steps : 65536);
  return m;
}

/* MemAvailable of /proc/meminfo in bytes (Linux), or -1. */
static double mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[128];
  double kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb >= 0 ? kb * 1024.0 : -1;
}

/* The memory this process may use: the available memory (physical memory
 * where the kernel does not say), or the address-space and data limits
 * when lower. */
static double memory_limit(const char **what) {
  double lim = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
  *what = "physical memory";
  if (!(lim > 0)) lim = INFINITY;
  double avail = mem_available();
  if (avail > 0 && avail < lim) {
    lim = avail;
    *what = "the available memory";
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (double)rl.rlim_cur < lim) {
    lim = (double)rl.rlim_cur;
    *what = "the address-space limit (ulimit -v)";
  }
  if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      (double)rl.rlim_cur < lim) {
    lim = (double)rl.rlim_cur;
    *what = "the data-size limit (ulimit -d)";
  }
  return lim;
}

int ampc_guard_memory(const char *cmd, const char *model, const ampc_mem_plan *m) {
  const char *what;
  double lim = memory_limit(&what);
  double total = m->state_bytes + m->act_bytes + m->other_bytes;
  if (total <= lim) return 0;
  const double gib = 1024.0 * 1024.0 * 1024.0;
  fprintf(stderr,
          "ampc %s: the run needs about %.1f GiB (model %s: %.0f parameters, %.1f GiB of "
          "weights, gradients and optimizer state; %.1f GiB of activations; %.1f GiB of data "
          "and timings), more than %s, %.1f GiB: refused before allocating\n",
          cmd, total / gib, model, m->params, m->state_bytes / gib, m->act_bytes / gib,
          m->other_bytes / gib, what, lim / gib);
  return 1;
}

int ampc_guard_checkpoint_model(const char *cmd, const char *path, const amp_safetensors *f,
                                const char *model, const long *sizes, int n) {
  double held = 0;
  for (int i = 0; i < amp_safetensors_count(f); i++) {
    const amp_st_tensor *t = amp_safetensors_at(f, i);
    /* Weights in any float dtype (a checkpoint's F32 masters, an export's
       F16/BF16, a state dict's); the optimizer's moments are not weights. */
    if (strncmp(t->name, "optim.", 6) == 0 || !amp_dtype_is_float(t->dtype)) continue;
    held += (double)t->bytes / (double)amp_dtype_size(t->dtype);
  }
  ampc_mem_plan m = ampc_mem_estimate(sizes, n, 1000, 0, 2, 0, 0);
  /* Refused here only when the model named is far larger than the file's
     weights (a small file must not make us build a huge model); smaller
     mismatches are named tensor by tensor by the loader. */
  if (m.params > 2.0 * held + 1048576.0) {
    fprintf(stderr,
            "ampc %s: %s: its model %.80s has %.0f parameters, the file's weights hold only %.0f "
            "values: not this model's weights (refused before building it)\n",
            cmd, path, model, m.params, held);
    return 1;
  }
  return ampc_guard_memory(cmd, model, &m);
}

const char *ampc_json_num(char *buf, size_t cap, const char *fmt, double v) {
  if (!isfinite(v))
    snprintf(buf, cap, "null");
  else
    snprintf(buf, cap, fmt, v);
  return buf;
}
