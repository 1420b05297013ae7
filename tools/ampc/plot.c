/* `ampc plot`: draws the per-step metrics that `ampc train --metrics` writes
 * (JSON lines) as one SVG figure, written by this file alone (no plotting
 * dependency). Panels, top to bottom: loss (log10 axis), the validation
 * metric when a run has one, the loss scale (log2 axis) with skipped steps
 * marked, the learning rate and the gradient norm, each against the step.
 * Several runs are overlaid, one colour each, with a legend.
 *
 * Input lines that are not JSON objects are skipped and counted (the count
 * and the first such line number are printed); an unreadable file stops the
 * command. The SVG is drawn in memory and written atomically (svg.c), so a
 * failure never leaves a half-written figure. */
#include "cli.h"
#include "opts.h"
#include "svg.h"

#include <stddef.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_LOSS, S_VAL, S_SCALE, S_LR, S_GNORM, S_COUNT };

static const struct {
  const char *key;   /* JSON key read from each line */
  const char *alt;   /* a second key accepted for the same series, or NULL */
  const char *title; /* panel title */
  int log;           /* 0 linear, 10 or 2: logarithmic axis of that base */
} series_info[S_COUNT] = {
    {"loss", NULL, "training loss (log scale)", 10},
    {"val_loss", "val_accuracy", "validation", 0},
    {"scale", NULL, "loss scale (log2); x: skipped step", 2},
    {"lr", NULL, "learning rate", 0},
    {"grad_norm", NULL, "gradient norm", 0},
};

typedef struct {
  double *x, *y;
  size_t n, cap;
} series;

typedef struct {
  const char *path;
  series s[S_COUNT];
  series skipped; /* steps whose update was skipped (y: the scale) */
  const char *val_key;
} run;

static int push(series *s, double x, double y) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    double *nx = realloc(s->x, cap * sizeof *nx);
    if (!nx) return -1;
    s->x = nx;
    double *ny = realloc(s->y, cap * sizeof *ny);
    if (!ny) return -1;
    s->y = ny;
    s->cap = cap;
  }
  s->x[s->n] = x;
  s->y[s->n] = y;
  s->n++;
  return 0;
}

static void run_free(run *r) {
  for (int k = 0; k < S_COUNT; k++) {
    free(r->s[k].x);
    free(r->s[k].y);
  }
  free(r->skipped.x);
  free(r->skipped.y);
}

/* A finite number under `key`, or NAN. */
static double num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

/* Reads one metrics file. Returns 0, or -1 after printing why. */
static int read_run(run *r, long *bad, long *first_bad) {
  FILE *f = fopen(r->path, "r");
  if (!f) {
    fprintf(stderr, "ampc plot: cannot read '%s': %s\n", r->path, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  int rc = 0;
  while (getline(&line, &cap, f) >= 0) {
    lineno++;
    if (strspn(line, " \t\r\n") == strlen(line)) continue;
    cJSON *o = cJSON_Parse(line);
    double step = o ? num(o, "step") : NAN;
    if (!cJSON_IsObject(o) || !isfinite(step)) {
      if ((*bad)++ == 0) *first_bad = lineno;
      cJSON_Delete(o);
      continue;
    }
    for (int k = 0; k < S_COUNT && rc == 0; k++) {
      const char *key = series_info[k].key;
      double y = num(o, key);
      if (isnan(y) && series_info[k].alt) {
        key = series_info[k].alt;
        y = num(o, key);
      }
      if (isnan(y) || (series_info[k].log && y <= 0)) continue;
      if (k == S_VAL) r->val_key = key == series_info[k].key ? "val_loss" : "val_accuracy";
      rc = push(&r->s[k], step, y);
    }
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(o, "skipped");
    double sc = num(o, "scale");
    if (rc == 0 && cJSON_IsNumber(sk) && sk->valuedouble != 0 && sc > 0)
      rc = push(&r->skipped, step, sc);
    cJSON_Delete(o);
    if (rc != 0) {
      fprintf(stderr, "ampc plot: out of memory reading '%s'\n", r->path);
      break;
    }
  }
  if (ferror(f)) {
    fprintf(stderr, "ampc plot: error reading '%s'\n", r->path);
    rc = -1;
  }
  free(line);
  fclose(f);
  return rc;
}

/* Axis value of y on a panel (logarithmic panels plot log_b(y)). */
static double tr(int log, double y) { return log == 10 ? log10(y) : log == 2 ? log2(y) : y; }

enum { W = 900, PH = 170, GAP = 46, LM = 80, RM = 20, TOP = 50 };

typedef struct {
  double x0, x1, y0, y1; /* data range (axis units) */
  int top;               /* panel's top pixel */
} frame;

static double px(const frame *fr, double x) {
  return LM + (x - fr->x0) / (fr->x1 - fr->x0) * (W - LM - RM);
}
static double py(const frame *fr, double y) {
  return fr->top + PH - (y - fr->y0) / (fr->y1 - fr->y0) * PH;
}

/* Axes, title and tick labels of one panel. */
static void draw_frame(FILE *f, const frame *fr, const char *title, int log) {
  fprintf(f,
          "<g class=\"panel\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
          "stroke=\"#444\"/>\n",
          LM, fr->top, W - LM - RM, PH);
  fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\">", LM, fr->top - 6);
  ampc_svg_text(f, title);
  fputs("</text>\n", f);
  for (int i = 0; i <= 4; i++) {
    double v = fr->y0 + (fr->y1 - fr->y0) * i / 4, y = py(fr, v);
    double shown = log == 10 ? pow(10, v) : log == 2 ? pow(2, v) : v;
    fprintf(f,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
            "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n",
            LM, W - RM, y, y, LM - 4, y + 4, shown);
  }
  for (int i = 0; i <= 5; i++) {
    double v = fr->x0 + (fr->x1 - fr->x0) * i / 5;
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.0f</text>\n",
            px(fr, v), fr->top + PH + 14, v);
  }
  fputs("</g>\n", f);
}

/* One polyline per run and panel; at most about 4000 points (evenly strided). */
static void draw_series(FILE *f, const frame *fr, const series *s, int log, const char *colour) {
  if (s->n == 0) return;
  size_t stride = s->n > 4000 ? (s->n + 3999) / 4000 : 1;
  fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.2\" d=\"", colour);
  for (size_t i = 0; i < s->n; i += stride)
    fprintf(f, "%s%.1f %.1f", i ? " L" : "M", px(fr, s->x[i]), py(fr, tr(log, s->y[i])));
  fputs("\"/>\n", f);
  if (s->n > 50) return;
  /* Few points (the validation metric: one per epoch): a dot on each, so
   * that a single point shows too. */
  for (size_t i = 0; i < s->n; i++)
    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px(fr, s->x[i]),
            py(fr, tr(log, s->y[i])), colour);
}

static void range_of(const run *runs, int nruns, int k, int log, frame *fr) {
  fr->y0 = INFINITY;
  fr->y1 = -INFINITY;
  for (int r = 0; r < nruns; r++)
    for (size_t i = 0; i < runs[r].s[k].n; i++) {
      double y = tr(log, runs[r].s[k].y[i]);
      fr->y0 = fmin(fr->y0, y);
      fr->y1 = fmax(fr->y1, y);
    }
  if (!(fr->y1 > fr->y0)) { /* one value, or none */
    double c = isfinite(fr->y0) ? fr->y0 : 0;
    double h = c != 0 && !log ? fabs(c) / 2 : 1; /* a constant lr of 1e-3: 5e-4 .. 1.5e-3 */
    fr->y0 = c - h;
    fr->y1 = c + h;
  }
}

static int write_svg(FILE *f, const run *runs, int nruns) {
  frame fr = {INFINITY, -INFINITY, 0, 0, 0};
  int panels[S_COUNT], np = 0;
  for (int k = 0; k < S_COUNT; k++) {
    int any = 0;
    for (int r = 0; r < nruns; r++) {
      any |= runs[r].s[k].n > 0;
      for (size_t i = 0; i < runs[r].s[k].n; i++) {
        fr.x0 = fmin(fr.x0, runs[r].s[k].x[i]);
        fr.x1 = fmax(fr.x1, runs[r].s[k].x[i]);
      }
    }
    if (any) panels[np++] = k;
  }
  if (!(fr.x1 > fr.x0)) fr.x1 = fr.x0 + 1;
  int height = TOP + np * (PH + GAP) + 20;
  ampc_svg_begin(f, W, height);
  for (int r = 0; r < nruns; r++) { /* legend */
    const char *c = ampc_svg_colour(r);
    int x = LM + (r % 3) * 270, y = 16 + (r / 3) * 16;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>", x, y - 4, c);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">", x + 18, y + 1);
    ampc_svg_text(f, runs[r].path);
    fputs("</text>\n", f);
  }
  for (int p = 0; p < np; p++) {
    int k = panels[p], log = series_info[k].log;
    fr.top = TOP + p * (PH + GAP) + 14;
    range_of(runs, nruns, k, log, &fr);
    const char *title = series_info[k].title;
    if (k == S_VAL)
      title = runs[0].val_key && strcmp(runs[0].val_key, "val_accuracy") == 0
                  ? "validation accuracy (%)"
                  : "validation loss";
    draw_frame(f, &fr, title, log);
    for (int r = 0; r < nruns; r++) {
      const char *c = ampc_svg_colour(r);
      draw_series(f, &fr, &runs[r].s[k], log, c);
      if (k != S_SCALE) continue;
      for (size_t i = 0; i < runs[r].skipped.n; i++) {
        double x = px(&fr, runs[r].skipped.x[i]), y = py(&fr, tr(2, runs[r].skipped.y[i]));
        fprintf(f, "<path class=\"skipped\" stroke=\"%s\" d=\"M%.1f %.1f l6 6 m0 -6 l-6 6\"/>\n", c,
                x - 3, y - 3);
      }
    }
  }
  fputs("<text x=\"450\" y=\"", f);
  fprintf(f, "%d\" font-size=\"12\" text-anchor=\"middle\">step</text>\n", height - 4);
  ampc_svg_end(f);
  return ferror(f) ? -1 : 0;
}

typedef struct plot_opts {
  const char *out;
} plot_opts;

static const ampc_opt PLOT_OPTS[] = {
    {"output", 'o', AMPC_OPT_STR, offsetof(plot_opts, out), "OUT.svg", 0, 0,
     "the SVG to write (written atomically)", NULL},
};

const ampc_cmd ampc_cmd_plot = {
    "plot",
    "RUN.jsonl [MORE.jsonl ...] -o OUT.svg",
    "Draws the per-step metrics of `ampc train --metrics` as an SVG figure:\n"
    "training loss (log scale), the validation accuracy when present, the loss\n"
    "scale (log2) with skipped steps marked, the learning rate and the gradient\n"
    "norm, against the step; several runs are overlaid with a legend.",
    PLOT_OPTS,
    1,
    1 << 20,
    "Lines that do not parse as JSON objects with a \"step\" are skipped and counted\n"
    "(the count and the first such line number are printed); an unreadable file stops\n"
    "the command with status 1.",
    "draw the metrics of runs as SVG"};

typedef struct {
  const run *runs;
  int nruns;
} figure;

static int draw(FILE *f, const void *arg) {
  const figure *fig = arg;
  return write_svg(f, fig->runs, fig->nruns);
}

int ampc_plot_main(int argc, char **argv) {
  plot_opts po = {NULL};
  const char **paths = calloc((size_t)argc + 1, sizeof *paths);
  run *runs = calloc((size_t)argc + 1, sizeof *runs);
  int nruns = 0;
  if (!runs || !paths) {
    free(runs);
    free(paths);
    return 1;
  }
  int prc = ampc_opts_parse(&ampc_cmd_plot, argc, argv, &po, paths, &nruns);
  for (int i = 0; i < nruns; i++) runs[i].path = paths[i];
  free(paths);
  if (prc) {
    free(runs);
    return prc == AMPC_OPTS_HELP ? 0 : prc;
  }
  const char *out = po.out;
  if (nruns == 0 || !out) {
    fprintf(stderr, "ampc plot: %s (see ampc plot --help)\n",
            nruns == 0 ? "which metrics files? (RUN.jsonl ...)" : "where to? (-o OUT.svg)");
    free(runs);
    return 2;
  }
  int rc = 0;
  long points = 0;
  for (int r = 0; r < nruns && rc == 0; r++) {
    long bad = 0, first_bad = 0;
    if (read_run(&runs[r], &bad, &first_bad) != 0) rc = 1;
    if (bad)
      fprintf(stderr, "ampc plot: %s: skipped %ld line(s) that are not metrics (first: line %ld)\n",
              runs[r].path, bad, first_bad);
    for (int k = 0; k < S_COUNT; k++) points += (long)runs[r].s[k].n;
  }
  if (rc == 0 && points == 0) {
    fprintf(stderr, "ampc plot: no metrics found in the given files\n");
    rc = 1;
  }
  if (rc == 0 && ampc_svg_save("plot", out, draw, &(figure){runs, nruns}) != 0) rc = 1;
  if (rc == 0)
    fprintf(stderr, "ampc plot: wrote %s (%d run%s)\n", out, nruns, nruns == 1 ? "" : "s");
  for (int r = 0; r < nruns; r++) run_free(&runs[r]);
  free(runs);
  return rc;
}
