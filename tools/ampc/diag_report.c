/* What `ampc diagnose` prints and draws (see diagnose.h): a text summary
 * (a table per role, the layers that lose most, the recommended loss
 * scale), or one JSON object with the full histograms; and one SVG figure
 * per role, the histograms of every layer with each format's range drawn
 * over them (the "activation gradient histogram" of Micikevicius et al.,
 * Mixed Precision Training, 2018). */
#include "diagnose.h"
#include "json_out.h"
#include "svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const diag_role_key[NROLES] = {"weights", "activations", "activation_grads",
                                           "weight_grads"};
const char *const diag_role_title[NROLES] = {"weights (FP32 masters)", "activations",
                                             "activation gradients (x loss scale)",
                                             "weight gradients (x loss scale)"};

void diag_result_recommend(const diag_result *d, int f, diag_rec *rec) {
  int n = d->n[ROLE_ACT_GRADS];
  const diag_hist **h = malloc(sizeof *h * (size_t)(n ? n : 1));
  if (!h) {
    memset(rec, 0, sizeof *rec);
    rec->scale = 1;
    return;
  }
  for (int i = 0; i < n; i++) h[i] = &d->e[ROLE_ACT_GRADS][i].h;
  diag_recommend(h, n, &d->ranges[f], rec);
  free(h);
}

/* A loss of format f: flushed to zero or overflowed, of the non-zero values. */
static double lost(const diag_hist *h, int f) {
  return diag_frac(h, f, DIAG_ZERO) + diag_frac(h, f, DIAG_OVERFLOW);
}

/* The width of the layer column: the longest name, 16 to 40. */
static int name_width(const diag_result *d) {
  int w = 16;
  for (int role = 0; role < NROLES; role++)
    for (int i = 0; i < d->n[role]; i++) {
      int n = (int)strlen(d->e[role][i].name);
      if (n > w) w = n > 40 ? 40 : n;
    }
  return w;
}

static void print_table(const diag_result *d, int role) {
  const int w = name_width(d);
  printf("\n%s: %% of the non-zero values that %s would flush to zero / hold as subnormals / "
         "overflow\n",
         diag_role_title[role], "each format");
  printf("  %-*s %10s %6s", w, "layer", "values", "zero%");
  for (int f = 0; f < DIAG_NFMT; f++)
    printf(" |%5s ->0  sub  ovf", amp_dtype_name(diag_formats[f]));
  printf("\n");
  for (int i = 0; i < d->n[role]; i++) {
    const diag_hist *h = &d->e[role][i].h;
    printf("  %-*.*s %10lld %6.2f", w, w, d->e[role][i].name, (long long)h->n,
           h->n ? 100.0 * (double)h->zeros / (double)h->n : 0.0);
    for (int f = 0; f < DIAG_NFMT; f++)
      printf(" |%9.1f%5.1f%5.1f", 100 * diag_frac(h, f, DIAG_ZERO),
             100 * diag_frac(h, f, DIAG_SUBNORMAL), 100 * diag_frac(h, f, DIAG_OVERFLOW));
    printf("\n");
  }
}

typedef struct worst {
  int role, i;
  double lost;
} worst;

static int cmp_worst(const void *a, const void *b) {
  double x = ((const worst *)a)->lost, y = ((const worst *)b)->lost;
  return (x < y) - (x > y);
}

/* The entries of the gradient roles ordered by what format f loses (most
 * first); returns how many lose anything (at most cap). */
static int worst_layers(const diag_result *d, int f, worst *w, int cap) {
  int n = 0;
  const int roles[3] = {ROLE_ACT_GRADS, ROLE_WEIGHT_GRADS, ROLE_ACTS};
  int total = d->n[ROLE_ACT_GRADS] + d->n[ROLE_WEIGHT_GRADS] + d->n[ROLE_ACTS];
  worst *all = malloc(sizeof *all * (size_t)(total ? total : 1));
  if (!all) return 0;
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < d->n[roles[k]]; i++)
      all[n++] = (worst){roles[k], i, lost(&d->e[roles[k]][i].h, f)};
  qsort(all, (size_t)n, sizeof *all, cmp_worst);
  int m = 0;
  while (m < n && m < cap && all[m].lost > 0) {
    w[m] = all[m];
    m++;
  }
  free(all);
  return m;
}

static const char *scale_mode(const diag_result *d) {
  if (d->o->loss_scale) return d->o->loss_scale;
  return strcmp(d->o->precision, "fp16") == 0 ? "dynamic" : "none";
}

/* The scales seen: "1", or "65536 to 1.04858e+06". */
static void scale_text(const diag_result *d, char *buf, size_t cap) {
  if (d->scale_min == d->scale_max)
    snprintf(buf, cap, "%g", d->scale_min);
  else
    snprintf(buf, cap, "%g to %g", d->scale_min, d->scale_max);
}

static void print_text(const diag_result *d) {
  const train_opts *o = d->o;
  char scale[64];
  scale_text(d, scale, sizeof scale);
  printf("ampc diagnose: %s, %s, loss scale %s (S = %s), %ld steps (%ld skipped) of batch %ld, "
         "%ld observed; %.1f s wall, %.1f s CPU\n",
         o->model, o->precision, scale_mode(d), scale, d->steps, d->skipped, o->batch, d->observed,
         d->wall_s, d->cpu_s);
  printf("Values seen in F32 (gradients x S), classified as each format would round them.\n");
  for (int role = 0; role < NROLES; role++) print_table(d, role);
  const char *fname = amp_dtype_name(diag_formats[d->fmt]);
  worst w[5];
  int nw = worst_layers(d, d->fmt, w, 5);
  printf("\nlayers that lose most in %s (flushed to zero or overflowed):%s\n", fname,
         nw ? "" : " none");
  for (int k = 0; k < nw; k++) {
    const diag_hist *h = &d->e[w[k].role][w[k].i].h;
    printf("  %-36s %s: %.2f%% (%.2f%% flushed, %.2f%% overflowed)\n", diag_role_title[w[k].role],
           d->e[w[k].role][w[k].i].name, 100 * w[k].lost, 100 * diag_frac(h, d->fmt, DIAG_ZERO),
           100 * diag_frac(h, d->fmt, DIAG_OVERFLOW));
  }
  printf("\nrecommended loss scale (from the activation gradients; see `ampc help diagnose`):\n");
  for (int f = 0; f < DIAG_NFMT; f++) {
    diag_rec r;
    diag_result_recommend(d, f, &r);
    printf("  %-5s", amp_dtype_name(diag_formats[f]));
    if (r.needed)
      printf("S = %g (2^%d): %.2f%% would flush to zero at S = 1, %.2f%% at S = %g (%.2f%% "
             "below the smallest normal)",
             r.scale, ilogb(r.scale), 100 * r.flush_1, 100 * r.flush_s, r.scale, 100 * r.under_s);
    else
      printf("no scaling needed (S = 1): %.2f%% would flush to zero, %.2f%% below the smallest "
             "normal",
             100 * r.flush_1, 100 * r.under_s);
    printf("%s\n", f == d->fmt ? "  <- this recipe's format" : "");
  }
}

/* The bins [lo, hi] that hold values in any of hists (bins: ubins when
 * unscaled); lo > hi when none. */
static void bin_span(const diag_hist *h, int unscaled, int *lo, int *hi) {
  const int64_t *b = unscaled ? h->ubins : h->bins;
  *lo = DIAG_NBINS;
  *hi = -1;
  for (int i = 0; i < DIAG_NBINS; i++)
    if (b[i]) {
      if (i < *lo) *lo = i;
      *hi = i;
    }
}

/* {"lo": e0, "counts": [...]} of the non-empty span of a histogram. */
static cJSON *hist_json(const diag_hist *h, int unscaled) {
  cJSON *j = cJSON_CreateObject();
  cJSON *c = cJSON_CreateArray();
  if (!j || !c) {
    cJSON_Delete(j);
    cJSON_Delete(c);
    return NULL;
  }
  int lo, hi;
  bin_span(h, unscaled, &lo, &hi);
  ampc_json_int(j, "lo", lo <= hi ? lo + DIAG_EMIN : 0);
  for (int i = lo; i <= hi; i++)
    cJSON_AddItemToArray(c, cJSON_CreateNumber((double)(unscaled ? h->ubins : h->bins)[i]));
  cJSON_AddItemToObject(j, "counts", c);
  return j;
}

static cJSON *entry_json(const diag_result *d, const diag_entry *e) {
  const diag_hist *h = &e->h;
  cJSON *j = cJSON_CreateObject();
  if (!j) return NULL;
  ampc_json_str(j, "name", e->name);
  ampc_json_int(j, "values", h->n);
  ampc_json_int(j, "zeros", h->zeros);
  ampc_json_int(j, "nans", h->nans);
  ampc_json_int(j, "nonzero", diag_nonzero(h));
  ampc_json_fmt(j, "max_abs", "%.9g", h->max_abs);
  ampc_json_fmt(j, "min_nonzero", "%.9g", diag_nonzero(h) ? h->min_nonzero : 0);
  cJSON_AddItemToObject(j, "log2_hist", hist_json(h, 0));
  cJSON_AddItemToObject(j, "log2_hist_unscaled", hist_json(h, 1));
  static const char *const cls[DIAG_NCLASS] = {"zero", "subnormal", "normal", "overflow"};
  for (int f = 0; f < DIAG_NFMT; f++) {
    cJSON *fj = cJSON_CreateObject();
    if (!fj) continue;
    for (int c = 0; c < DIAG_NCLASS; c++) {
      char key[32];
      ampc_json_int(fj, cls[c], h->cls[f][c]);
      snprintf(key, sizeof key, "%s_frac", cls[c]);
      ampc_json_fmt(fj, key, "%.6g", diag_frac(h, f, c));
    }
    cJSON_AddItemToObject(j, amp_dtype_name(diag_formats[f]), fj);
  }
  (void)d;
  return j;
}

static void add_formats(cJSON *root, const diag_result *d) {
  cJSON *arr = cJSON_AddArrayToObject(root, "formats");
  for (int f = 0; arr && f < DIAG_NFMT; f++) {
    const amp_dtype_range *r = &d->ranges[f];
    cJSON *j = cJSON_CreateObject();
    if (!j) return;
    ampc_json_str(j, "name", amp_dtype_name(diag_formats[f]));
    ampc_json_float(j, "min_subnormal", r->min_subnormal);
    ampc_json_float(j, "min_normal", r->min_normal);
    ampc_json_float(j, "max", r->max);
    ampc_json_float(j, "zero_max", r->zero_max);
    ampc_json_float(j, "normal_min_round", r->normal_min_round);
    ampc_json_float(j, "overflow_min", r->overflow_min);
    diag_rec rec;
    diag_result_recommend(d, f, &rec);
    cJSON *rj = cJSON_AddObjectToObject(j, "recommendation");
    if (rj) {
      ampc_json_fmt(rj, "scale", "%.17g", rec.scale);
      cJSON_AddBoolToObject(rj, "needed", rec.needed);
      ampc_json_fmt(rj, "flush_at_1", "%.6g", rec.flush_1);
      ampc_json_fmt(rj, "flush_at_scale", "%.6g", rec.flush_s);
      ampc_json_fmt(rj, "below_normal_at_scale", "%.6g", rec.under_s);
      ampc_json_fmt(rj, "max_abs_grad_unscaled", "%.9g", rec.max_unscaled);
    }
    cJSON_AddItemToArray(arr, j);
  }
}

static int print_json(const diag_result *d) {
  const train_opts *o = d->o;
  cJSON *root = cJSON_CreateObject();
  if (!root) return 1;
  ampc_json_str(root, "model", o->model);
  ampc_json_str(root, "precision", o->precision);
  ampc_json_str(root, "loss_scale", scale_mode(d));
  ampc_json_str(root, "format", amp_dtype_name(diag_formats[d->fmt]));
  ampc_json_int(root, "steps", d->steps);
  ampc_json_int(root, "observed", d->observed);
  ampc_json_int(root, "skipped_steps", d->skipped);
  ampc_json_int(root, "batch", o->batch);
  ampc_json_int(root, "seed", (long long)o->seed);
  ampc_json_fmt(root, "scale_min", "%.17g", d->scale_min);
  ampc_json_fmt(root, "scale_max", "%.17g", d->scale_max);
  ampc_json_fmt(root, "final_scale", "%.17g", d->final_scale);
  ampc_json_fmt(root, "final_loss", "%.6g", d->steps ? d->final_loss : NAN);
  ampc_json_fmt(root, "wall_s", "%.3f", d->wall_s);
  ampc_json_fmt(root, "cpu_s", "%.3f", d->cpu_s);
  add_formats(root, d);
  cJSON *roles = cJSON_AddObjectToObject(root, "roles");
  for (int role = 0; roles && role < NROLES; role++) {
    cJSON *arr = cJSON_AddArrayToObject(roles, diag_role_key[role]);
    for (int i = 0; arr && i < d->n[role]; i++)
      cJSON_AddItemToArray(arr, entry_json(d, &d->e[role][i]));
  }
  worst w[5];
  int nw = worst_layers(d, d->fmt, w, 5);
  cJSON *wa = cJSON_AddArrayToObject(root, "worst");
  for (int k = 0; wa && k < nw; k++) {
    cJSON *j = cJSON_CreateObject();
    if (!j) break;
    ampc_json_str(j, "role", diag_role_key[w[k].role]);
    ampc_json_str(j, "name", d->e[w[k].role][w[k].i].name);
    ampc_json_fmt(j, "lost_frac", "%.6g", w[k].lost);
    cJSON_AddItemToArray(wa, j);
  }
  cJSON *figs = d->out_dir ? cJSON_AddArrayToObject(root, "figures") : NULL;
  for (int role = 0; figs && role < NROLES; role++) {
    char path[4200];
    diag_figure_path(d, role, path, sizeof path);
    cJSON_AddItemToArray(figs, cJSON_CreateString(path));
  }
  if (ampc_json_line(stdout, root) != 0) {
    fprintf(stderr, "ampc diagnose: --json: out of memory or a write error\n");
    return 1;
  }
  return 0;
}

int diag_report(const diag_result *d, int json) {
  if (json) return print_json(d);
  print_text(d);
  if (d->out_dir) {
    char path[4200];
    diag_figure_path(d, ROLE_ACT_GRADS, path, sizeof path);
    printf("\nfigures: %s (and the other roles beside it)\n", path);
  }
  return fflush(stdout) == 0 ? 0 : 1;
}

void diag_figure_path(const diag_result *d, int role, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/diagnose-%s.svg", d->out_dir, diag_role_key[role]);
}

/* The figure of one role. */
enum { FW = 960, FLM = 70, FRM = 24, FTOP = 64, FPH = 300, RULER = 16 };

typedef struct fig {
  const diag_result *d;
  int role;
  double x0, x1, ymax;      /* log2 range, fraction range */
  int sel[DIAG_FIG_LAYERS]; /* the layers drawn, in layer order */
  int nsel;
} fig;

/* What format f does not hold as a normal value: flushed, subnormal or
 * overflowed, of the non-zero values. */
static double not_normal(const diag_hist *h, int f) {
  return diag_frac(h, f, DIAG_ZERO) + diag_frac(h, f, DIAG_SUBNORMAL) +
         diag_frac(h, f, DIAG_OVERFLOW);
}

/* The layers drawn: all of them up to DIAG_FIG_LAYERS, else the
 * DIAG_FIG_LAYERS whose values the headline format holds worst (flushed,
 * subnormal or overflowed; the first layer on ties), in layer order. */
static void fig_select(fig *g) {
  const diag_result *d = g->d;
  int n = d->n[g->role];
  char *pick = n > DIAG_FIG_LAYERS ? calloc((size_t)n, 1) : NULL;
  g->nsel = 0;
  if (!pick) { /* all of them (or, out of memory, the first ones) */
    for (int i = 0; i < n && i < DIAG_FIG_LAYERS; i++) g->sel[g->nsel++] = i;
    return;
  }
  for (int k = 0; k < DIAG_FIG_LAYERS; k++) {
    int best = -1;
    for (int i = 0; i < n; i++)
      if (!pick[i] && (best < 0 || not_normal(&d->e[g->role][i].h, d->fmt) >
                                       not_normal(&d->e[g->role][best].h, d->fmt)))
        best = i;
    pick[best] = 1;
  }
  for (int i = 0; i < n; i++)
    if (pick[i]) g->sel[g->nsel++] = i;
  free(pick);
}

static double fx(const fig *g, double e) {
  return FLM + (e - g->x0) / (g->x1 - g->x0) * (FW - FLM - FRM);
}
static double fy(const fig *g, double v) { return FTOP + FPH - v / g->ymax * FPH; }

/* The x range: the layers' bins and the headline format's whole range. */
static void fig_range(fig *g) {
  const diag_result *d = g->d;
  const amp_dtype_range *r = &d->ranges[d->fmt];
  int lo = ilogb((double)r->min_subnormal) - 2, hi = ilogb((double)r->max) + 2;
  g->ymax = 0.05;
  for (int k = 0; k < g->nsel; k++) {
    const diag_hist *h = &d->e[g->role][g->sel[k]].h;
    int blo, bhi;
    bin_span(h, 0, &blo, &bhi);
    if (blo > bhi) continue;
    if (blo + DIAG_EMIN - 1 < lo) lo = blo + DIAG_EMIN - 1;
    if (bhi + DIAG_EMIN + 2 > hi) hi = bhi + DIAG_EMIN + 2;
    double nz = (double)diag_nonzero(h);
    for (int b = blo; b <= bhi; b++)
      if (nz > 0 && h->bins[b] / nz > g->ymax) g->ymax = h->bins[b] / nz;
  }
  g->x0 = lo;
  g->x1 = hi;
  g->ymax = ceil(g->ymax * 10) / 10;
}

/* The headline format's bands over the plot, and every format's limits as
 * dashed lines, each clipped to the x range. */
static void fig_bands(FILE *f, const fig *g) {
  const amp_dtype_range *r = &g->d->ranges[g->d->fmt];
  double z = log2((double)r->zero_max), n = log2((double)r->min_normal),
         o = log2((double)r->overflow_min);
  const struct {
    double a, b;
    const char *fill, *label;
  } band[3] = {{g->x0, z, "#f4c7c3", "flushes to zero"},
               {z, n, "#fde9c9", "subnormal"},
               {o, g->x1, "#f4c7c3", "overflows"}};
  for (int k = 0; k < 3; k++) {
    double a = fmax(band[k].a, g->x0), b = fmin(band[k].b, g->x1);
    if (!(b > a)) continue;
    fprintf(f,
            "<rect class=\"band\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>",
            fx(g, a), FTOP, fx(g, b) - fx(g, a), FPH, band[k].fill);
    if (fx(g, b) - fx(g, a) > 90) /* room for the label */
      fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"#a33\">%s in %s</text>",
              fx(g, a) + 3, FTOP + 12 + 12 * k, band[k].label,
              amp_dtype_name(diag_formats[g->d->fmt]));
    fputc('\n', f);
  }
  static const char *const lc[DIAG_NFMT] = {"#000", "#777", "#9467bd", "#17becf"};
  for (int fm = 0; fm < DIAG_NFMT; fm++) {
    const amp_dtype_range *q = &g->d->ranges[fm];
    double at[3] = {log2((double)q->min_subnormal), log2((double)q->min_normal),
                    log2((double)q->max)};
    for (int k = 0; k < 3; k++)
      if (at[k] >= g->x0 && at[k] <= g->x1)
        fprintf(f,
                "<line class=\"limit\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" "
                "stroke-dasharray=\"4 3\"/>\n",
                fx(g, at[k]), fx(g, at[k]), FTOP, FTOP + FPH, lc[fm]);
  }
}

/* Axes and ticks. */
static void fig_axes(FILE *f, const fig *g) {
  fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n",
          FLM, FTOP, FW - FLM - FRM, FPH);
  for (int i = 0; i <= 4; i++) {
    double v = g->ymax * i / 4;
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g%%</text>\n",
            FLM - 4, fy(g, v) + 4, 100 * v);
  }
  int step = g->x1 - g->x0 > 80 ? 16 : g->x1 - g->x0 > 40 ? 8 : 4;
  for (int e = (int)ceil(g->x0 / step) * step; e <= g->x1; e += step)
    fprintf(f,
            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#444\"/>"
            "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n",
            fx(g, e), fx(g, e), FTOP + FPH, FTOP + FPH + 4, fx(g, e), FTOP + FPH + 16, e);
  fprintf(
      f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">log2 |value|%s</text>\n",
      FLM + (FW - FLM - FRM) / 2, FTOP + FPH + 32,
      g->role == ROLE_ACT_GRADS || g->role == ROLE_WEIGHT_GRADS ? " (times the loss scale)" : "");
}

/* One ruler per format below the plot: flush, subnormal, normal, overflow. */
static void fig_rulers(FILE *f, const fig *g) {
  static const char *const fill[DIAG_NCLASS] = {"#e06666", "#f6b26b", "#93c47d", "#990000"};
  for (int fm = 0; fm < DIAG_NFMT; fm++) {
    const amp_dtype_range *q = &g->d->ranges[fm];
    int y = FTOP + FPH + 44 + fm * (RULER + 4);
    double cut[DIAG_NCLASS + 1] = {g->x0, log2((double)q->zero_max), log2((double)q->min_normal),
                                   log2((double)q->overflow_min), g->x1};
    for (int c = 0; c < DIAG_NCLASS; c++) {
      double a = fmax(cut[c], g->x0), b = fmin(cut[c + 1], g->x1);
      if (!(b > a)) continue;
      fprintf(
          f, "<rect class=\"ruler\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>",
          fx(g, a), y, fx(g, b) - fx(g, a), RULER, fill[c]);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%s</text>\n", FLM - 4,
            y + 12, amp_dtype_name(diag_formats[fm]));
  }
  int y = FTOP + FPH + 44 + DIAG_NFMT * (RULER + 4) + 12;
  fprintf(f,
          "<text x=\"%d\" y=\"%d\" font-size=\"11\">each format: flushes to zero (red), "
          "subnormal (orange), normal (green), overflows (dark red); dashed: smallest subnormal, "
          "smallest normal, largest</text>\n",
          FLM, y);
}

/* One step-shaped line per layer drawn, the legend, and a line for the
 * layers left out. */
static void fig_series(FILE *f, const fig *g) {
  const diag_result *d = g->d;
  int ly = FTOP + FPH + 44 + DIAG_NFMT * (RULER + 4) + 32;
  for (int k = 0; k < g->nsel; k++) {
    const int i = g->sel[k];
    const diag_hist *h = &d->e[g->role][i].h;
    double nz = (double)diag_nonzero(h);
    int blo, bhi;
    bin_span(h, 0, &blo, &bhi);
    const char *c = ampc_svg_colour(k);
    if (blo <= bhi && nz > 0) {
      fprintf(
          f,
          "<path class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"M%.1f %.1f",
          c, fx(g, blo + DIAG_EMIN), fy(g, 0));
      for (int b = blo; b <= bhi; b++) {
        double y = fy(g, h->bins[b] / nz);
        fprintf(f, " L%.1f %.1f L%.1f %.1f", fx(g, b + DIAG_EMIN), y, fx(g, b + DIAG_EMIN + 1), y);
      }
      fprintf(f, " L%.1f %.1f\"/>\n", fx(g, bhi + DIAG_EMIN + 1), fy(g, 0));
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>", FLM,
            ly + 16 * k - 4, c);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">", FLM + 18, ly + 16 * k + 1);
    ampc_svg_text(f, d->e[g->role][i].name);
    fprintf(f,
            ": %.2f%% exactly zero; of the rest, in %s %.2f%% flush to zero, %.2f%% "
            "subnormal, %.2f%% overflow</text>\n",
            h->n ? 100.0 * (double)h->zeros / (double)h->n : 0.0,
            amp_dtype_name(diag_formats[d->fmt]), 100 * diag_frac(h, d->fmt, DIAG_ZERO),
            100 * diag_frac(h, d->fmt, DIAG_SUBNORMAL), 100 * diag_frac(h, d->fmt, DIAG_OVERFLOW));
  }
  int rest = d->n[g->role] - g->nsel;
  if (rest > 0)
    fprintf(f,
            "<text class=\"rest\" x=\"%d\" y=\"%d\" font-size=\"12\">+ %d more layer(s) not "
            "drawn: %s holds their values no worse than those above (the text summary and "
            "--json list every layer)</text>\n",
            FLM, ly + 16 * g->nsel + 1, rest, amp_dtype_name(diag_formats[d->fmt]));
}

static int draw_role(FILE *f, const void *arg) {
  fig g = *(const fig *)arg;
  fig_select(&g);
  fig_range(&g);
  const diag_result *d = g.d;
  int lines = g.nsel + (d->n[g.role] > g.nsel);
  int height = FTOP + FPH + 44 + DIAG_NFMT * (RULER + 4) + 32 + 16 * lines + 8;
  ampc_svg_begin(f, FW, height);
  fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\">", FLM);
  ampc_svg_text(f, diag_role_title[g.role]);
  fprintf(f, ": share of each layer's non-zero values per binade</text>\n");
  fprintf(f, "<text x=\"%d\" y=\"42\" font-size=\"12\">", FLM);
  char sub[400];
  char scale[64];
  scale_text(d, scale, sizeof scale);
  snprintf(sub, sizeof sub, "%s, %s, loss scale %s (%s), %ld observed step(s) of batch %ld",
           d->o->model, d->o->precision, scale_mode(d), scale, d->observed, d->o->batch);
  ampc_svg_text(f, sub);
  fputs("</text>\n", f);
  fig_bands(f, &g);
  fig_axes(f, &g);
  fig_series(f, &g);
  fig_rulers(f, &g);
  ampc_svg_end(f);
  return 0;
}

int diag_figures(const diag_result *d) {
  for (int role = 0; role < NROLES; role++) {
    char path[4200];
    diag_figure_path(d, role, path, sizeof path);
    fig g = {d, role, 0, 1, 1, {0}, 0};
    if (ampc_svg_save("diagnose", path, draw_role, &g) != 0) return 1;
  }
  return 0;
}
