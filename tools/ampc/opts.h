/* Command-line options of the ampc subcommands: one table per command, one
 * parser (opts.c). The usage a command prints is generated from its table,
 * so every flag the parser accepts is documented by construction.
 *
 * Accepted forms: `--name VALUE`, `--name=VALUE`, `-x VALUE` (options with a
 * short name), flags without a value, `-h`/`--help` (prints the usage, exit
 * 0), and `--` (everything after it is positional). Numbers are strict: a
 * whole number is optional '-' and decimal digits only (no sign '+', no
 * spaces, no 0x, no exponent, no fraction); a real number is what strtod
 * reads, whole string, finite, without leading spaces or hex; both within
 * the option's range, which the error message names. An unknown option is
 * refused with the nearest valid one suggested (edit distance). */
#ifndef AMPC_OPTS_H
#define AMPC_OPTS_H

#include <stddef.h>
#include <stdio.h>

typedef enum ampc_opt_kind {
  AMPC_OPT_FLAG,   /* no value: sets an int member to 1 */
  AMPC_OPT_STR,    /* const char * member (checked by `check` when set) */
  AMPC_OPT_ENUM,   /* const char * member, one of `arg` ("a|b|c") */
  AMPC_OPT_ONOFF,  /* int member: "on" 1, "off" 0 */
  AMPC_OPT_LONG,   /* long member: a whole number in [lo, hi] */
  AMPC_OPT_ULL,    /* unsigned long long member: a whole number in [lo, hi] */
  AMPC_OPT_DOUBLE, /* double member: a finite number in [lo, hi] */
  AMPC_OPT_INT,    /* int member: a whole number in [lo, hi] */
} ampc_opt_kind;

/* One option of a command. */
typedef struct ampc_opt {
  const char *name; /* long name without "--" */
  char short_name;  /* 0: none */
  ampc_opt_kind kind;
  size_t offset;   /* of the member in the command's options struct */
  const char *arg; /* the value's name in the usage ("N", "FILE"); ENUM: "a|b|c" */
  double lo, hi;   /* LONG, ULL, INT, DOUBLE: the range */
  const char *help;
  /* STR: NULL, or returns 1 for a valid value, else writes the reason
   * ("is not ...") to msg and returns 0. */
  int (*check)(const char *value, char *msg, size_t cap);
} ampc_opt;

/* A command: its name as typed after `ampc` ("train", "bench gemm"), the
 * synopsis after the name, a paragraph on what it does, its options, how
 * many positional arguments it takes, notes printed after the options
 * (NULL: none) and a one-line description for the list of commands. */
typedef struct ampc_cmd {
  const char *name;
  const char *synopsis;
  const char *summary;
  const ampc_opt *opts;
  int nopts;
  int max_positional;
  const char *notes;
  const char *brief; /* one line for `ampc help` */
} ampc_cmd;

/* Exit statuses besides 0 (parsed) and 2 (a usage error, message printed). */
enum { AMPC_OPTS_HELP = -1 };

/* Parses argv[0, argc) into `dst` by cmd's table, and stores up to
 * cmd->max_positional positional arguments in pos[] (count in *npos; pos
 * and npos may be NULL when the command takes none). Returns 0; or
 * AMPC_OPTS_HELP after printing the usage to stdout (the caller exits 0);
 * or 2 after printing "ampc <cmd>: <problem>" and a pointer to the help. */
int ampc_opts_parse(const ampc_cmd *cmd, int argc, char **argv, void *dst, const char **pos,
                    int *npos);

/* The command's usage, generated from its table. */
void ampc_opts_usage(const ampc_cmd *cmd, FILE *f);

/* Prints "ampc <cmd>: " + the message + a pointer to `ampc help <cmd>` to
 * stderr; returns 2. */
int ampc_opts_error(const ampc_cmd *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Strict numbers (see the file comment): 1 and *out set, or 0. */
int ampc_opts_whole(const char *s, double lo, double hi, long long *out);
int ampc_opts_real(const char *s, double lo, double hi, double *out);

/* Levenshtein distance of a and b (bytes), for suggestions. */
int ampc_opts_distance(const char *a, const char *b);

/* The commands, for `ampc help CMD` (defined with their mains). */
extern const ampc_cmd ampc_cmd_train, ampc_cmd_eval, ampc_cmd_export, ampc_cmd_plot,
    ampc_cmd_sample, ampc_cmd_diagnose, ampc_cmd_bench_gemm, ampc_cmd_bench_peak,
    ampc_cmd_bench_triad, ampc_cmd_bench_int8, ampc_cmd_bench_all;

#endif
