/* The option parser of the ampc subcommands (see opts.h). */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int ampc_opts_error(const ampc_cmd *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "ampc %s: ", cmd->name);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n(run `ampc help %s` for the options)\n", cmd->name);
  return 2;
}

int ampc_opts_whole(const char *s, double lo, double hi, long long *out) {
  const char *p = s;
  if (*p == '-') p++;
  if (!isdigit((unsigned char)*p)) return 0;
  for (const char *q = p; *q; q++)
    if (!isdigit((unsigned char)*q)) return 0;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  /* Compare as integers: the bounds are whole numbers, and a double
     comparison would let 2^53 + 1 pass a bound of 2^53. */
  const long long lo_i = lo <= -9.2e18 ? LLONG_MIN : (long long)ceil(lo);
  const long long hi_i = hi >= 9.2e18 ? LLONG_MAX : (long long)floor(hi);
  if (errno || *end || v < lo_i || v > hi_i) return 0;
  *out = v;
  return 1;
}

int ampc_opts_real(const char *s, double lo, double hi, double *out) {
  const char *p = s + (*s == '-' || *s == '+');
  if (!(isdigit((unsigned char)*p) || *p == '.')) return 0; /* no spaces, inf, nan */
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) return 0;
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v) || !(v >= lo && v <= hi)) return 0;
  *out = v;
  return 1;
}

int ampc_opts_distance(const char *a, const char *b) {
  size_t n = strlen(b);
  if (n > 63) return 99;
  int row[64];
  for (size_t j = 0; j <= n; j++) row[j] = (int)j;
  for (size_t i = 1; a[i - 1]; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= n; j++) {
      int up = row[j];
      int best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[n];
}

/* A range bound as text: whole numbers in full, others with %g. */
static void bound_text(double v, char *buf, size_t cap) {
  if (v == floor(v) && fabs(v) < 1e18)
    snprintf(buf, cap, "%.0f", v);
  else
    snprintf(buf, cap, "%g", v);
}

/* "a|b|c" as "a, b or c". */
static void choices_text(const char *choices, char *buf, size_t cap) {
  size_t k = 0;
  int n = 1;
  for (const char *c = choices; *c; c++) n += *c == '|';
  int seen = 0;
  for (const char *c = choices; *c && k + 8 < cap; c++) {
    if (*c == '|') {
      seen++;
      const char *sep = seen == n - 1 ? " or " : ", ";
      k += (size_t)snprintf(buf + k, cap - k, "%s", sep);
    } else {
      buf[k++] = *c;
    }
  }
  buf[k] = '\0';
}

static int is_choice(const char *choices, const char *v) {
  size_t len = strlen(v);
  for (const char *c = choices; *c;) {
    const char *bar = strchr(c, '|');
    size_t n = bar ? (size_t)(bar - c) : strlen(c);
    if (n == len && len > 0 && strncmp(c, v, n) == 0) return 1;
    if (!bar) break;
    c = bar + 1;
  }
  return 0;
}

/* Stores `v` for option `o` into dst; 0, or 2 (message printed). */
static int store(const ampc_cmd *cmd, const ampc_opt *o, const char *v, void *dst) {
  char *p = (char *)dst + o->offset, lo[32], hi[32], msg[256];
  long long w = 0;
  double d = 0;
  bound_text(o->lo, lo, sizeof lo);
  bound_text(o->hi, hi, sizeof hi);
  switch (o->kind) {
  case AMPC_OPT_FLAG: *(int *)p = 1; return 0;
  case AMPC_OPT_STR:
    if (o->check && !o->check(v, msg, sizeof msg))
      return ampc_opts_error(cmd, "--%s: '%s' %s", o->name, v, msg);
    *(const char **)p = v;
    return 0;
  case AMPC_OPT_ENUM:
    if (!is_choice(o->arg, v)) {
      choices_text(o->arg, msg, sizeof msg);
      return ampc_opts_error(cmd, "--%s: '%s' is not %s", o->name, v, msg);
    }
    *(const char **)p = v;
    return 0;
  case AMPC_OPT_ONOFF:
    if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
      return ampc_opts_error(cmd, "--%s: '%s' is not on or off", o->name, v);
    *(int *)p = strcmp(v, "on") == 0;
    return 0;
  case AMPC_OPT_LONG:
  case AMPC_OPT_ULL:
  case AMPC_OPT_INT:
    if (!ampc_opts_whole(v, o->lo, o->hi, &w))
      return ampc_opts_error(cmd, "--%s: '%s' is not an integer (whole number) in [%s, %s]",
                             o->name, v, lo, hi);
    if (o->kind == AMPC_OPT_LONG) *(long *)p = (long)w;
    if (o->kind == AMPC_OPT_ULL) *(unsigned long long *)p = (unsigned long long)w;
    if (o->kind == AMPC_OPT_INT) *(int *)p = (int)w;
    return 0;
  case AMPC_OPT_DOUBLE:
    if (!ampc_opts_real(v, o->lo, o->hi, &d))
      return ampc_opts_error(cmd, "--%s: '%s' is not a number in [%s, %s]", o->name, v, lo, hi);
    *(double *)p = d;
    return 0;
  }
  return 2;
}

/* The option named `name` (len bytes), or NULL. */
static const ampc_opt *find_long(const ampc_cmd *cmd, const char *name, size_t len) {
  for (int i = 0; i < cmd->nopts; i++)
    if (strlen(cmd->opts[i].name) == len && strncmp(cmd->opts[i].name, name, len) == 0)
      return &cmd->opts[i];
  return NULL;
}

/* "unknown option" with the nearest valid one suggested. */
static int unknown(const ampc_cmd *cmd, const char *arg) {
  const char *name = arg + strspn(arg, "-");
  char buf[128];
  snprintf(buf, sizeof buf, "%.*s", (int)strcspn(name, "="), name);
  const char *best = NULL;
  int bd = 99;
  for (int i = 0; i < cmd->nopts; i++) {
    int d = ampc_opts_distance(buf, cmd->opts[i].name);
    if (d < bd) bd = d, best = cmd->opts[i].name;
  }
  if (best && strlen(buf) > 0 && bd <= 1 + (int)strlen(buf) / 3)
    return ampc_opts_error(cmd, "unknown option '%s'; did you mean --%s?", arg, best);
  return ampc_opts_error(cmd, "unknown option '%s'", arg);
}

int ampc_opts_parse(const ampc_cmd *cmd, int argc, char **argv, void *dst, const char **pos,
                    int *npos) {
  int n = 0, only_pos = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    const ampc_opt *o = NULL;
    if (only_pos || a[0] != '-' || a[1] == '\0') {
      if (n >= cmd->max_positional) return ampc_opts_error(cmd, "unexpected argument '%s'", a);
      pos[n++] = a;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_pos = 1;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      ampc_opts_usage(cmd, stdout);
      return AMPC_OPTS_HELP;
    }
    if (a[1] == '-') {
      const char *eq = strchr(a + 2, '=');
      o = find_long(cmd, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
      if (eq) v = eq + 1;
    } else if (a[2] == '\0') {
      for (int k = 0; k < cmd->nopts; k++)
        if (cmd->opts[k].short_name == a[1]) o = &cmd->opts[k];
    }
    if (!o) return unknown(cmd, a);
    if (o->kind == AMPC_OPT_FLAG) {
      if (v) return ampc_opts_error(cmd, "--%s takes no value", o->name);
    } else if (!v) {
      if (i + 1 >= argc) return ampc_opts_error(cmd, "--%s needs a value (%s)", o->name, o->arg);
      v = argv[++i];
    }
    int rc = store(cmd, o, v, dst);
    if (rc) return rc;
  }
  if (npos) *npos = n;
  return 0;
}

/* Prints `text` wrapped at 79 columns, continuation lines indented by
 * `indent`, the first line starting at column `col`. */
static void wrap(FILE *f, const char *text, int indent, int col) {
  const char *p = text;
  while (*p) {
    size_t word = strcspn(p, " ");
    if (col > indent && col + 1 + (int)word > 79) {
      fprintf(f, "\n%*s", indent, "");
      col = indent;
    } else if (col > indent) {
      fputc(' ', f);
      col++;
    }
    fprintf(f, "%.*s", (int)word, p);
    col += (int)word;
    p += word;
    while (*p == ' ') p++;
  }
}

void ampc_opts_usage(const ampc_cmd *cmd, FILE *f) {
  fprintf(f, "usage: ampc %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->synopsis, cmd->summary);
  for (int i = 0; i < cmd->nopts; i++) {
    const ampc_opt *o = &cmd->opts[i];
    char head[96], lo[32], hi[32];
    int k = snprintf(head, sizeof head, "  %s%c%s--%s", o->short_name ? "-" : "",
                     o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name);
    if (!o->short_name) k = snprintf(head, sizeof head, "  --%s", o->name);
    if (o->kind != AMPC_OPT_FLAG && o->kind != AMPC_OPT_ONOFF)
      snprintf(head + k, sizeof head - (size_t)k, " %s", o->arg);
    if (o->kind == AMPC_OPT_ONOFF) snprintf(head + k, sizeof head - (size_t)k, " on|off");
    fprintf(f, "%-30s", head);
    if (strlen(head) >= 30) fprintf(f, "\n%30s", "");
    char help[512];
    int n = snprintf(help, sizeof help, "%s", o->help);
    if (o->kind == AMPC_OPT_LONG || o->kind == AMPC_OPT_ULL || o->kind == AMPC_OPT_INT ||
        o->kind == AMPC_OPT_DOUBLE) {
      bound_text(o->lo, lo, sizeof lo);
      bound_text(o->hi, hi, sizeof hi);
      snprintf(help + n, sizeof help - (size_t)n, " [%s, %s]", lo, hi);
    }
    wrap(f, help, 30, 30);
    fputc('\n', f);
  }
  fprintf(f, "  %-28s%s\n", "-h, --help", "print this help and exit");
  if (cmd->notes) fprintf(f, "\n%s\n", cmd->notes);
}
