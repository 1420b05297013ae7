/* The numbers of `ampc diagnose` (diag_stats.c): log2-magnitude histograms
 * of tensors and how each 16/8-bit format would round their values (to
 * zero, to a subnormal, to a normal value, or overflowing), and the loss
 * scale it recommends. Public API only; tests/test_diagnose.c checks it
 * against hand-computed values at the boundaries.
 *
 * A value x is classified by how round-to-nearest-even F32 → format
 * conversion would store it (amp_dtype_range_of()): |x| <= zero_max
 * (half the smallest subnormal: that tie goes to zero) flushes to zero;
 * below normal_min_round it becomes a subnormal; from overflow_min on it
 * overflows (inf, or NaN in E4M3); else it is normal. Values that are
 * exactly zero (a ReLU's masked gradients) lose nothing in any format and
 * are counted apart; fractions are of the non-zero values. */
#ifndef AMPC_DIAG_STATS_H
#define AMPC_DIAG_STATS_H

#include "ampc.h"

#include <stddef.h>
#include <stdint.h>

/* The formats diagnosed, in report order: F16, BF16, E4M3, E5M2. */
enum { DIAG_NFMT = 4 };
extern const amp_dtype diag_formats[DIAG_NFMT];

/* Histogram bins: floor(log2 |x|) of a finite non-zero F32 lies in
 * [-149, 127]; the unscaled values of the recommendation may lie further
 * out and are clamped to [DIAG_EMIN, DIAG_EMAX]. Infinities are counted in
 * the top bin. */
enum { DIAG_EMIN = -160, DIAG_EMAX = 160, DIAG_NBINS = DIAG_EMAX - DIAG_EMIN + 1 };

/* The classes of a non-zero value in a format. */
enum { DIAG_ZERO, DIAG_SUBNORMAL, DIAG_NORMAL, DIAG_OVERFLOW, DIAG_NCLASS };

/* The histogram and classification counts of one tensor role of one layer,
 * over every step observed. */
typedef struct diag_hist {
  int64_t n;                 /* values seen */
  int64_t zeros;             /* exactly zero */
  int64_t nans;              /* NaN (in no bin, no class) */
  int64_t bins[DIAG_NBINS];  /* non-zero values as held (after the loss scale), by floor(log2|x|) */
  int64_t ubins[DIAG_NBINS]; /* the same of |x| / scale */
  int64_t cls[DIAG_NFMT][DIAG_NCLASS];       /* per format, the class of each non-zero value */
  double max_abs, max_unscaled, min_nonzero; /* min_nonzero: +inf until one is seen */
} diag_hist;

/* The ranges of diag_formats[] (amp_dtype_range_of()); 0, or -1 when the
 * library has no range for one (cannot happen for float dtypes). */
int diag_ranges(amp_dtype_range out[DIAG_NFMT]);

/* The class (DIAG_ZERO ... DIAG_OVERFLOW) of the magnitude ax > 0 (may be
 * inf) in a format of range r. */
int diag_class(const amp_dtype_range *r, float ax);

/* floor(log2 ax) for a finite ax > 0 (exact, subnormals included). */
int diag_log2_floor(float ax);

/* An empty histogram. */
void diag_hist_init(diag_hist *h);

/* Adds n values of x (as held, i.e. already multiplied by `scale`, the
 * loss scale in force; 1 for weights and activations). */
void diag_hist_add(diag_hist *h, const amp_dtype_range ranges[DIAG_NFMT], const float *x, size_t n,
                   double scale);

/* The non-zero (finite or infinite, not NaN) values of h. */
int64_t diag_nonzero(const diag_hist *h);

/* The fraction of h's non-zero values in class c of format f (0 when none). */
double diag_frac(const diag_hist *h, int f, int c);

/* The loss scale recommended for a format, from the activation gradients
 * (the tensors a 16/8-bit recipe holds in that format) of every layer:
 *   - scale 1 ("no scaling needed") when at scale 1 at most
 *     DIAG_FLUSH_OK of their non-zero values would flush to zero and the
 *     largest stays below max/8;
 *   - otherwise the largest power of two S with max|g|·S <= max/8 (three
 *     binades of headroom for gradients larger than those seen).
 * flush_* are the predicted fractions flushed to zero at scale 1 and at the
 * recommendation, from the unscaled histograms (exact except for values
 * exactly at zero_max, which the bins cannot tell: their tie would flush). */
#define DIAG_FLUSH_OK 1e-3
typedef struct diag_rec {
  double scale;
  int needed;     /* 0: scale 1 is enough */
  double flush_1; /* flushed fraction at scale 1 */
  double flush_s; /* ... at `scale` */
  double under_s; /* subnormal or flushed at `scale` */
  double max_unscaled;
} diag_rec;

void diag_recommend(const diag_hist *const *grads, int n, const amp_dtype_range *r, diag_rec *out);

/* The fraction of the non-zero values of hists[0, n) whose unscaled
 * magnitude times 2^k is below 2^e_lim (by whole bins). */
double diag_below(const diag_hist *const *hists, int n, int k, int e_lim);

#endif
