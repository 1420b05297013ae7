/* `ampc diagnose`: what diagnose.c (the run) hands diag_report.c (the text
 * summary, the JSON and the SVG figures). */
#ifndef AMPC_DIAGNOSE_H
#define AMPC_DIAGNOSE_H

#include "diag_stats.h"
#include "train_opts.h"

/* The tensor roles, in report order. */
enum { ROLE_WEIGHTS, ROLE_ACTS, ROLE_ACT_GRADS, ROLE_WEIGHT_GRADS, NROLES };

/* The role's key in the JSON and the figure's file name, and its title. */
extern const char *const diag_role_key[NROLES];
extern const char *const diag_role_title[NROLES];

/* One tensor of one role: a layer's output (activations and their
 * gradients; "0 Linear") or a parameter (weights and weight gradients;
 * "0.weight"). */
typedef struct diag_entry {
  char name[96];
  diag_hist h;
} diag_entry;

typedef struct diag_result {
  const train_opts *o; /* the run's options (model, precision, ...) */
  const char *out_dir; /* --out, or NULL */
  int fmt;             /* the recipe's format in diag_formats[] (F16 for fp32) */
  amp_dtype_range ranges[DIAG_NFMT];
  diag_entry *e[NROLES];
  int n[NROLES];
  long steps, observed, skipped;
  double scale_min, scale_max, final_scale, final_loss;
  double wall_s, cpu_s;
} diag_result;

/* The summary on stdout: tables per role, the worst layers and the
 * recommendation (text), or one JSON object with the full histograms
 * (json != 0). Returns 0, or 1 after a message. */
int diag_report(const diag_result *d, int json);

/* The most layers one figure draws; with more, the ones the recipe's format
 * holds worst are drawn and the rest summarised in one line. */
enum { DIAG_FIG_LAYERS = 8 };

/* Writes DIR/diagnose-<role>.svg for every role (atomically). Returns 0, or
 * 1 after a message. */
int diag_figures(const diag_result *d);

/* The path of a role's figure under d->out_dir, in buf. */
void diag_figure_path(const diag_result *d, int role, char *buf, size_t cap);

/* The recommendation for format f from the activation gradients. */
void diag_result_recommend(const diag_result *d, int f, diag_rec *rec);

#endif
