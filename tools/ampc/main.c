/* ampc — the command-line program. Uses the public header (and the benchmark
 * helpers in bench/). */
#ifdef __linux__
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#endif
#include "ampc.h"
#include "bench.h"
#include "cli.h"
#include "opts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The commands, in the order `ampc help` lists them. */
static const ampc_cmd *const COMMANDS[] = {
    &ampc_cmd_train,       &ampc_cmd_sample,     &ampc_cmd_eval,       &ampc_cmd_export,
    &ampc_cmd_plot,        &ampc_cmd_diagnose,   &ampc_cmd_bench_gemm, &ampc_cmd_bench_peak,
    &ampc_cmd_bench_triad, &ampc_cmd_bench_int8, &ampc_cmd_bench_all,
};
enum { NCOMMANDS = (int)(sizeof COMMANDS / sizeof COMMANDS[0]) };

static void usage(FILE *f) {
  fprintf(f, "usage: ampc <command> [options]\n\ncommands:\n");
  for (int i = 0; i < NCOMMANDS; i++) {
    fprintf(f, "  %-14s %s\n", COMMANDS[i]->name, COMMANDS[i]->brief);
  }
  fprintf(f, "  %-14s %s\n  %-14s %s\n\n", "version", "print the version", "help [CMD]",
          "this text, or the options of CMD (also: ampc CMD --help)");
  fprintf(f, "Try: ampc train --data synthetic --model mlp:32-64-5 --epochs 2\n"
             "See also: man ampc (docs/ampc.1), README.md.\n");
}

/* `ampc help [CMD [SUB]]`. */
static int help_main(int argc, char **argv) {
  if (argc == 0) {
    usage(stdout);
    return 0;
  }
  char name[64];
  snprintf(name, sizeof name, "%s%s%s", argv[0], argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
  for (int i = 0; i < NCOMMANDS; i++)
    if (strcmp(COMMANDS[i]->name, name) == 0 || strcmp(COMMANDS[i]->name, argv[0]) == 0) {
      if (strcmp(argv[0], "bench") == 0 && argc == 1) break;
      ampc_opts_usage(COMMANDS[i], stdout);
      return 0;
    }
  if (strcmp(argv[0], "bench") == 0) {
    for (int i = 0; i < NCOMMANDS; i++)
      if (strncmp(COMMANDS[i]->name, "bench ", 6) == 0) {
        ampc_opts_usage(COMMANDS[i], stdout);
        printf("\n");
      }
    return 0;
  }
  fprintf(stderr, "ampc help: unknown command '%s'\n", name);
  usage(stderr);
  return 2;
}

typedef struct bench_opts {
  long threads;
  int json;
} bench_opts;

static const ampc_opt BENCH_OPTS[] = {
    {"threads", 0, AMPC_OPT_LONG, offsetof(bench_opts, threads), "N", 1, 1024,
     "OpenMP threads (default 2)", NULL},
    {"json", 0, AMPC_OPT_FLAG, offsetof(bench_opts, json), "", 0, 0,
     "JSON output (always JSON lines; accepted for symmetry)", NULL},
};

const ampc_cmd ampc_cmd_bench_peak = {"bench peak",
                                      "[options]",
                                      "Measured peak FMA rate (GFLOP/s), as a JSON line.",
                                      BENCH_OPTS,
                                      2,
                                      0,
                                      NULL,
                                      "measured peak FMA rate (GFLOP/s)"};
const ampc_cmd ampc_cmd_bench_triad = {"bench triad",
                                       "[options]",
                                       "Triad memory bandwidth (GB/s), as a JSON line.",
                                       BENCH_OPTS,
                                       2,
                                       0,
                                       NULL,
                                       "triad memory bandwidth (GB/s)"};
const ampc_cmd ampc_cmd_bench_int8 = {
    "bench int8",
    "[options]",
    "The INT8 GEMM (u8 x s8, INT32 sums) against our F32 GEMM at the reference MLP's\n"
    "inference shapes (batch 128 and 1000: M x 1024 x 784 and M x 10 x 1024), and the\n"
    "INT8 Linear (quantize, GEMM, requantize) against the F32 Linear: CPU time, the\n"
    "median of alternating rounds (JSON lines).",
    BENCH_OPTS,
    2,
    0,
    NULL,
    "INT8 GEMM vs F32 GEMM at the MLP's inference shapes"};
const ampc_cmd ampc_cmd_bench_all = {
    "bench all",
    "[options]",
    "The standard set of `make bench`: GEMM shapes, conversions and elementwise kernels\n"
    "against their floors (JSON lines).",
    BENCH_OPTS,
    2,
    0,
    NULL,
    "the standard set of `make bench`"};

typedef struct gemm_opts {
  long m, n, k, threads, reps;
  const char *a, *b, *c;
  int ta, tb, json;
} gemm_opts;

#define GOPT(name, kind, member, arg, lo, hi, help)                                                \
  { name, 0, kind, offsetof(gemm_opts, member), arg, lo, hi, help, NULL }

static const ampc_opt GEMM_OPTS[] = {
    GOPT("m", AMPC_OPT_LONG, m, "M", 1, 1 << 20, "rows of C (required)"),
    GOPT("n", AMPC_OPT_LONG, n, "N", 1, 1 << 20, "columns of C (required)"),
    GOPT("k", AMPC_OPT_LONG, k, "K", 1, 1 << 20, "the inner dimension (required)"),
    GOPT("a", AMPC_OPT_ENUM, a, "f32|f16|bf16", 0, 0, "dtype of A (default f16)"),
    GOPT("b", AMPC_OPT_ENUM, b, "f32|f16|bf16", 0, 0, "dtype of B (default f16)"),
    GOPT("c", AMPC_OPT_ENUM, c, "f32|f16|bf16", 0, 0, "dtype of C (default f32)"),
    GOPT("ta", AMPC_OPT_FLAG, ta, "", 0, 0, "A transposed"),
    GOPT("tb", AMPC_OPT_FLAG, tb, "", 0, 0, "B transposed"),
    GOPT("threads", AMPC_OPT_LONG, threads, "N", 1, 1024, "OpenMP threads (default 2)"),
    GOPT("reps", AMPC_OPT_LONG, reps, "R", 1, 100000, "repetitions (default: about 1 s)"),
    GOPT("json", AMPC_OPT_FLAG, json, "", 0, 0, "print one JSON object"),
};

const ampc_cmd ampc_cmd_bench_gemm = {
    "bench gemm",
    "--m M --n N --k K [options]",
    "Times one GEMM shape, C = A·B, and prints the median GFLOP/s (with OpenBLAS sgemm's\n"
    "when the build has it).",
    GEMM_OPTS,
    (int)(sizeof GEMM_OPTS / sizeof GEMM_OPTS[0]),
    0,
    NULL,
    "time one GEMM shape (GFLOP/s)"};

/* Parses with the table, then runs the benchmark's own command line. */
static int gemm_main(int argc, char **argv) {
  gemm_opts g = {0, 0, 0, 0, 0, NULL, NULL, NULL, 0, 0, 0};
  int rc = ampc_opts_parse(&ampc_cmd_bench_gemm, argc, argv, &g, NULL, NULL);
  if (rc) return rc == AMPC_OPTS_HELP ? 0 : rc;
  char *args[24], nums[5][24];
  int n = 0;
  args[n++] = "gemm";
  const struct {
    const char *flag;
    long v;
  } longs[5] = {
      {"--m", g.m}, {"--n", g.n}, {"--k", g.k}, {"--threads", g.threads}, {"--reps", g.reps}};
  for (int i = 0; i < 5; i++)
    if (longs[i].v) {
      snprintf(nums[i], sizeof nums[i], "%ld", longs[i].v);
      args[n++] = (char *)longs[i].flag;
      args[n++] = nums[i];
    }
  if (g.a) args[n++] = "--a", args[n++] = (char *)g.a;
  if (g.b) args[n++] = "--b", args[n++] = (char *)g.b;
  if (g.c) args[n++] = "--c", args[n++] = (char *)g.c;
  if (g.ta) args[n++] = "--ta";
  if (g.tb) args[n++] = "--tb";
  if (g.json) args[n++] = "--json";
  return ampb_gemm_cmd(n, args);
}

static int bench_main(int argc, char **argv) {
  if (argc < 1) {
    fprintf(stderr,
            "ampc bench: which benchmark? (gemm, peak, triad, int8, all; see ampc help bench)\n");
    return 2;
  }
  const char *what = argv[0];
  if (strcmp(what, "gemm") == 0) return gemm_main(argc - 1, argv + 1);
  const ampc_cmd *cmd = strcmp(what, "peak") == 0    ? &ampc_cmd_bench_peak
                        : strcmp(what, "triad") == 0 ? &ampc_cmd_bench_triad
                        : strcmp(what, "int8") == 0  ? &ampc_cmd_bench_int8
                        : strcmp(what, "all") == 0   ? &ampc_cmd_bench_all
                                                     : NULL;
  if (!cmd) {
    fprintf(stderr, "ampc bench: unknown benchmark '%s' (gemm, peak, triad, int8, all)\n", what);
    return 2;
  }
  bench_opts b = {2, 0};
  int rc = ampc_opts_parse(cmd, argc - 1, argv + 1, &b, NULL, NULL);
  if (rc) return rc == AMPC_OPTS_HELP ? 0 : rc;
  int threads = (int)b.threads;
  if (cmd == &ampc_cmd_bench_peak) {
    printf("{\"bench\":\"peak_fma\",\"threads\":%d,\"gflops\":%.2f}\n", threads,
           ampb_peak_fma_gflops(threads, 5));
    return 0;
  }
  if (cmd == &ampc_cmd_bench_triad) {
    printf("{\"bench\":\"triad\",\"threads\":%d,\"array_bytes\":%zu,\"gbs\":%.2f}\n", threads,
           ampb_big_array_bytes(), ampb_triad_gbs(threads, ampb_big_array_bytes(), 5));
    return 0;
  }
  if (cmd == &ampc_cmd_bench_int8) return ampb_int8_suite(threads) ? 1 : 0;
  rc = ampb_gemm_suite(threads);
  rc |= ampb_convert_suite(threads);
  rc |= ampb_eltwise_suite(threads);
  rc |= ampb_int8_suite(threads);
  return rc ? 1 : 0;
}

#ifdef __linux__
/* Tasks of other processes runnable at this instant: the first number of
 * /proc/loadavg's fourth field ("R/T") less this process's own runnable
 * threads (its first, and a library's helper that may be spinning at
 * start, such as OpenBLAS's); -1 if unknown (no such file, a field that
 * does not parse, or a count that cannot be right, as a sandbox's "0/0").
 * AMPC_LOADAVG_FILE names another file in that format: the tests' way to
 * show an idle or a busy machine. */
static int others_runnable(void) {
  const char *path = getenv("AMPC_LOADAVG_FILE");
  /* A regular file only (as /proc/loadavg is): a FIFO or a device named
     there would block the read, so it is opened without blocking first. */
  int fd = open(path ? path : "/proc/loadavg", O_RDONLY | O_NONBLOCK);
  struct stat sb;
  if (fd < 0) return -1;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return -1;
  }
  FILE *f = fdopen(fd, "r");
  if (!f) {
    close(fd);
    return -1;
  }
  double l1, l5, l15;
  int r = -1, t = 0;
  if (fscanf(f, "%lf %lf %lf %d/%d", &l1, &l5, &l15, &r, &t) != 5 || t <= 0 || r < 0 || r > t)
    r = -1;
  fclose(f);
  if (r < 0) return -1;
  if (path) return r > 1 ? r - 1 : 0; /* the file counts this process as one */
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int mine = 0;
  for (struct dirent *e; (e = readdir(d));) {
    char task[64], buf[256];
    if (e->d_name[0] == '.') continue;
    snprintf(task, sizeof task, "/proc/self/task/%.20s/stat", e->d_name);
    FILE *st = fopen(task, "r");
    if (!st) continue;
    size_t n = fread(buf, 1, sizeof buf - 1, st);
    fclose(st);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* the state follows "(comm) " */
    if (rp && rp[1] == ' ' && rp[2] == 'R') mine++;
  }
  closedir(d);
  /* Our own first thread is running as it reads: a count below ours is a
     file that does not show this machine's tasks. */
  return r >= mine ? r - mine : -1;
}

/* The threads the command will run: its last --threads (either spelling;
 * the option parser keeps the last, and stops at "--"), else its default:
 * 2, or for export (no --threads) OpenMP's, one per CPU. A value out of
 * [1, 1024] counts as the default (the parser rejects it later). */
static long threads_asked(int argc, char **argv, long cpus) {
  long n = strcmp(argv[1], "export") == 0 ? cpus : 2;
  for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *v = NULL;
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      v = argv[++i];
    else if (strncmp(argv[i], "--threads=", 10) == 0)
      v = argv[i] + 10;
    if (v) {
      char *end;
      errno = 0;
      long t = strtol(v, &end, 10);
      if (end != v && *end == '\0' && errno == 0 && t >= 1 && t <= 1024) n = t;
    }
  }
  return n;
}

/* This machine's ranks of an MPI job (Open MPI, MPICH/PMI), each running
 * its own threads; 1 outside one. */
static long local_ranks(void) {
  const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE"};
  for (int i = 0; i < 3; i++) {
    const char *v = getenv(vars[i]);
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (v && end != v && *end == '\0' && n >= 1 && n <= 4096) return n;
  }
  return 1;
}
#endif

/* How OpenMP's threads wait between parallel regions. Spinning briefly
 * before sleeping (libgomp's default) saves a wake-up per region: a step
 * has about 14 regions, and waking a sleeping thread cost 40-50 us each on
 * the 2-vCPU VM this was measured on (reference MLP: 2.6-2.8 ms per fp32
 * step spinning, 3.3-3.4 ms sleeping; bf16 1.55 vs 2.16 ms). But when other
 * processes want the CPUs, a spinning thread holds a core that the thread
 * with work is waiting for (6.5-7.0 ms vs 5.7 ms next to busy processes,
 * and some runs at 112 ms per step). So: when, at start, the other runnable
 * tasks (the least of three looks, 1 ms apart; on a host-wide count, the
 * share of them that falls on the CPUs this process may use) plus our
 * threads (times the MPI ranks on this machine) need more CPUs than this
 * process may use, run again with OMP_WAIT_POLICY=passive; otherwise keep
 * OpenMP's default. A policy the user set (OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT) is kept. libgomp reads its policy when it loads, so the
 * only way to choose it here is to run ourselves again with it set. */
static void choose_waits(int argc, char **argv, int always_passive) {
#ifdef __linux__
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
  if (!always_passive) {
    /* The CPUs this process may run on (taskset, a container's cpuset),
       else those online. */
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : online;
    if (cpus < 1 || online < cpus) return;
    int others = -1;
    for (int look = 0; look < 3; look++) {
      if (look) nanosleep(&(struct timespec){0, 1000000}, NULL);
      int r = others_runnable();
      if (r < 0) return; /* unknown: keep the default */
      if (others < 0 || r < others) others = r;
    }
    const long demand = threads_asked(argc, argv, cpus) * local_ranks();
    if ((long long)others * cpus / online + demand <= cpus) return;
  }
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OMP_WAIT_POLICY"); /* exec failed: go on as we are */
#else
  (void)argc, (void)argv, (void)always_passive;
#endif
}

int main(int argc, char **argv) {
  /* Training-type commands only: the benchmarks time kernels back to back,
     where sleeping threads would pay a wake-up per call. */
  if (argc >= 2 && (strcmp(argv[1], "train") == 0 || strcmp(argv[1], "eval") == 0 ||
                    strcmp(argv[1], "export") == 0 || strcmp(argv[1], "sample") == 0 ||
                    strcmp(argv[1], "diagnose") == 0))
    choose_waits(argc, argv, 0);
  /* bench int8 compares CPU times, which spinning threads would inflate by
     however long the other thread waits for a core on a loaded host. */
  if (argc >= 3 && strcmp(argv[1], "bench") == 0 && strcmp(argv[2], "int8") == 0)
    choose_waits(argc, argv, 1);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "help") == 0) return help_main(argc - 2, argv + 2);
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("ampc %s\n", amp_version());
    return 0;
  }
  if (strcmp(cmd, "bench") == 0) return bench_main(argc - 2, argv + 2);
  if (strcmp(cmd, "train") == 0) return ampc_train_main(argc - 2, argv + 2);
  if (strcmp(cmd, "eval") == 0) return ampc_eval_main(argc - 2, argv + 2);
  if (strcmp(cmd, "export") == 0) return ampc_export_main(argc - 2, argv + 2);
  if (strcmp(cmd, "plot") == 0) return ampc_plot_main(argc - 2, argv + 2);
  if (strcmp(cmd, "sample") == 0) return ampc_sample_main(argc - 2, argv + 2);
  if (strcmp(cmd, "diagnose") == 0) return ampc_diagnose_main(argc - 2, argv + 2);
  const char *best = "help";
  int bd = 99;
  const char *names[] = {"train",    "eval",  "export",  "plot", "sample",
                         "diagnose", "bench", "version", "help"};
  for (int i = 0; i < 9; i++) {
    int d = ampc_opts_distance(cmd, names[i]);
    if (d < bd) bd = d, best = names[i];
  }
  if (bd <= 2)
    fprintf(stderr, "ampc: unknown command '%s'; did you mean '%s'?\n", cmd, best);
  else
    fprintf(stderr, "ampc: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}
