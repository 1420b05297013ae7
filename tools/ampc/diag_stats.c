/* Histograms, format classification and the loss-scale recommendation of
 * `ampc diagnose` (see diag_stats.h). */
#include "diag_stats.h"

#include <math.h>
#include <string.h>

const amp_dtype diag_formats[DIAG_NFMT] = {AMP_F16, AMP_BF16, AMP_E4M3, AMP_E5M2};

int diag_ranges(amp_dtype_range out[DIAG_NFMT]) {
  for (int f = 0; f < DIAG_NFMT; f++)
    if (amp_dtype_range_of(diag_formats[f], &out[f]) != AMP_OK) return -1;
  return 0;
}

int diag_class(const amp_dtype_range *r, float ax) {
  if (ax <= r->zero_max) return DIAG_ZERO;
  if (ax < r->normal_min_round) return DIAG_SUBNORMAL;
  if (ax >= r->overflow_min) return DIAG_OVERFLOW;
  return DIAG_NORMAL;
}

int diag_log2_floor(float ax) {
  uint32_t u;
  memcpy(&u, &ax, sizeof u);
  int e = (int)((u >> 23) & 0xffu);
  if (e) return e - 127;
  uint32_t m = u & 0x7fffffu; /* a subnormal: 2^-149 · m */
  int k = -150;
  while (m) {
    m >>= 1;
    k++;
  }
  return k;
}

void diag_hist_init(diag_hist *h) {
  memset(h, 0, sizeof *h);
  h->min_nonzero = INFINITY;
}

static int clamp_bin(long e) {
  return (int)(e < DIAG_EMIN ? DIAG_EMIN : e > DIAG_EMAX ? DIAG_EMAX : e);
}

void diag_hist_add(diag_hist *h, const amp_dtype_range ranges[DIAG_NFMT], const float *x, size_t n,
                   double scale) {
  int exp2;
  const int pow2 = scale > 0 && frexp(scale, &exp2) == 0.5; /* scale = 2^(exp2 - 1) */
  const int shift = exp2 - 1;
  h->n += (int64_t)n;
  for (size_t i = 0; i < n; i++) {
    float a = fabsf(x[i]);
    if (a != a) {
      h->nans++;
      continue;
    }
    if (a == 0) {
      h->zeros++;
      continue;
    }
    int inf = isinf(a), b = inf ? DIAG_EMAX : diag_log2_floor(a);
    long ub = inf ? DIAG_EMAX : pow2 ? (long)b - shift : (long)ilogb((double)a / scale);
    h->bins[clamp_bin(b) - DIAG_EMIN]++;
    h->ubins[clamp_bin(ub) - DIAG_EMIN]++;
    for (int f = 0; f < DIAG_NFMT; f++) h->cls[f][diag_class(&ranges[f], a)]++;
    if (a > h->max_abs) h->max_abs = a;
    if (a < h->min_nonzero) h->min_nonzero = a;
    if ((double)a / scale > h->max_unscaled) h->max_unscaled = (double)a / scale;
  }
}

int64_t diag_nonzero(const diag_hist *h) { return h->n - h->zeros - h->nans; }

double diag_frac(const diag_hist *h, int f, int c) {
  int64_t nz = diag_nonzero(h);
  return nz > 0 ? (double)h->cls[f][c] / (double)nz : 0.0;
}

double diag_below(const diag_hist *const *hists, int n, int k, int e_lim) {
  double below = 0, all = 0;
  for (int i = 0; i < n; i++) {
    all += (double)diag_nonzero(hists[i]);
    for (int b = 0; b < DIAG_NBINS; b++)
      if ((long)(b + DIAG_EMIN) + k + 1 <= e_lim) below += (double)hists[i]->ubins[b];
  }
  return all > 0 ? below / all : 0.0;
}

void diag_recommend(const diag_hist *const *grads, int n, const amp_dtype_range *r, diag_rec *out) {
  memset(out, 0, sizeof *out);
  double gmax = 0;
  for (int i = 0; i < n; i++)
    if (grads[i]->max_unscaled > gmax) gmax = grads[i]->max_unscaled;
  out->max_unscaled = gmax;
  /* zero_max and min_normal are powers of two in every format. */
  const int zl = ilogb((double)r->zero_max), nl = ilogb((double)r->min_normal);
  const double room = (double)r->max / 8;
  out->flush_1 = diag_below(grads, n, 0, zl);
  int k = 0;
  if (gmax > 0 && isfinite(gmax)) {
    k = ilogb(room / gmax); /* the largest k with gmax·2^k <= room */
    k = k < -126 ? -126 : k > 127 ? 127 : k;
  }
  out->needed = !(out->flush_1 <= DIAG_FLUSH_OK && gmax <= room);
  if (!out->needed) k = 0;
  out->scale = ldexp(1.0, k);
  out->flush_s = diag_below(grads, n, k, zl);
  out->under_s = diag_below(grads, n, k, nl);
}
