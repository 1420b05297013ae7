/* The messages of data-parallel `ampc train` (see dist.h): MPI when the
 * build found it (AMPC_HAVE_MPI) and mpirun started us, otherwise one rank
 * and no messages. Every collective is non-blocking and polled with a
 * deadline, so a rank that dies or hangs cannot make the others wait
 * forever; the gradient sum is formed here, in rank order, never by an
 * MPI reduction whose order the library picks. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <math.h>
#include <sched.h>
#include <time.h>

#ifdef AMPC_HAVE_MPI
#include <mpi.h>
#endif

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int launched_by_mpirun(int *size) {
  const char *ws = getenv("OMPI_COMM_WORLD_SIZE");
  if (!ws) ws = getenv("PMI_SIZE");
  *size = ws ? atoi(ws) : 1;
  return ws || getenv("PMIX_RANK");
}

#ifdef AMPC_HAVE_MPI

static void fail_mpi(const dist *d, int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fprintf(stderr, "ampc train: rank %d: MPI error in %s: %s; stopping the job\n", d->rank, what,
          msg);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1); /* not reached */
}

/* Waits for the n requests, polling, for at most the timeout. Polls yield
 * the core (sched_yield) so that oversubscribed ranks leave it to the ones
 * still computing, and sleep after the first ~0.1 s. Sleeping from the
 * start cost 3.8 ns per byte on 2 ranks (one 32 KiB fragment of Open MPI's
 * shared-memory transport moves per poll). */
static void wait_bounded(dist *d, int n, MPI_Request *rq, const char *what) {
  double t0 = now_s();
  for (long spins = 0;; spins++) {
    int done = 0;
    int rc = MPI_Testall(n, rq, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) fail_mpi(d, rc, what);
    if (done) break;
    if (now_s() - t0 > d->o.timeout_s) {
      fprintf(stderr,
              "ampc train: rank %d: no answer from the other ranks for %.0f s while exchanging "
              "%s (a rank died or hangs; --mpi-timeout sets the bound): stopping the job\n",
              d->rank, d->o.timeout_s, what);
      MPI_Abort(MPI_COMM_WORLD, 1);
      exit(1); /* not reached */
    }
    if (spins > 100000) /* past ~0.1 s: sleep between polls */
      nanosleep(&(struct timespec){0, 50000}, NULL);
    else /* Open MPI moves large messages in fragments, one per poll */
      sched_yield();
  }
  d->wait_s += now_s() - t0;
}

int dist_comm_init(dist *d) {
  int size;
  d->rank = 0;
  d->size = 1;
  d->mpi = 0;
  if (!launched_by_mpirun(&size)) return 0;
  if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
    fprintf(stderr, "ampc train: MPI_Init failed\n");
    return 1;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &d->size);
  d->mpi = 1;
  return 0;
}

void dist_comm_finish(dist *d) {
  if (d->mpi) MPI_Finalize();
  d->mpi = 0;
}

int dist_allgather(dist *d, const void *send, void *recv, int bytes, const char *what) {
  if (!d->mpi) {
    memcpy(recv, send, (size_t)bytes);
    return 1;
  }
  MPI_Request rq;
  int rc = MPI_Iallgather(send, bytes, MPI_BYTE, recv, bytes, MPI_BYTE, MPI_COMM_WORLD, &rq);
  if (rc != MPI_SUCCESS) fail_mpi(d, rc, what);
  wait_bounded(d, 1, &rq, what);
  return 1;
}

/* Slice k of n values over `size` ranks: [lo, lo + len). */
static int64_t slice_lo(int64_t n, int size, int k) { return n * k / size; }
static int slice_len(int64_t n, int size, int k) {
  return (int)(slice_lo(n, size, k + 1) - slice_lo(n, size, k));
}

/* Posts a send of slice `send_k` of buf (n elements of `elt` bytes, MPI
 * type `type`) and a receive into `into` to and from every other rank q
 * (send_k < 0: send slice q; into == NULL: receive into buf's slice q, else
 * into slot q of `stride` elements); returns the number of requests. */
static int post(dist *d, void *buf, int elt, MPI_Datatype type, int64_t n, int send_k, void *into,
                int64_t stride, int tag, MPI_Request *rq) {
  int N = d->size, r = d->rank, k = 0;
  char *b = buf, *in = into;
  for (int q = 0; q < N; q++) {
    if (q == r) continue;
    int sk = send_k < 0 ? q : send_k;
    char *dst = in ? in + (size_t)(q * stride) * (size_t)elt : b + slice_lo(n, N, q) * elt;
    int rlen = in ? slice_len(n, N, r) : slice_len(n, N, q);
    int rc = MPI_Irecv(dst, rlen, type, q, tag, MPI_COMM_WORLD, &rq[k++]);
    if (rc == MPI_SUCCESS)
      rc = MPI_Isend(b + slice_lo(n, N, sk) * elt, slice_len(n, N, sk), type, q, tag,
                     MPI_COMM_WORLD, &rq[k++]);
    if (rc != MPI_SUCCESS) fail_mpi(d, rc, "the gradients");
    d->bytes_sent += (double)elt * slice_len(n, N, sk);
  }
  return k;
}

/* sum[0, len) = (s(0) + s(1)) + ... + s(N-1), element by element in rank
 * order, s(q) = slots + q·ms, except s(r) = own. */
static void sum_in_rank_order(const dist *d, float *sum, const float *own, const float *slots,
                              int64_t ms, int len) {
  const float *s0 = d->rank == 0 ? own : slots;
  for (int i = 0; i < len; i++) sum[i] = s0[i];
  for (int q = 1; q < d->size; q++) {
    const float *sq = q == d->rank ? own : slots + (int64_t)q * ms;
    for (int i = 0; i < len; i++) sum[i] += sq[i];
  }
}

/* The F32 exchange: reduce-scatter (rank r receives slice r from every
 * rank), the rank-ordered sum, all-gather. */
static void reduce32(dist *d, float *g, int64_t n, int64_t ms, MPI_Request *rq) {
  int N = d->size, r = d->rank, len = slice_len(n, N, r);
  float *own = g + slice_lo(n, N, r), *sum = d->rbuf + (int64_t)N * ms;
  wait_bounded(d, post(d, g, 4, MPI_FLOAT, n, -1, d->rbuf, ms, 1, rq), rq, "the gradients");
  sum_in_rank_order(d, sum, own, d->rbuf, ms, len); /* own is not being sent */
  memcpy(own, sum, sizeof(float) * (size_t)len);
  wait_bounded(d, post(d, g, 4, MPI_FLOAT, n, r, NULL, 0, 2, rq), rq, "the gradients");
}

/* The power of two 2^e for the 16-bit exchange (see dist.h); 0 in *ok when
 * some rank's gradient is not finite. */
static float exchange_scale(dist *d, const float *g, int64_t n, int *ok) {
  float mx = 0, *all = malloc(sizeof(float) * (size_t)d->size);
  if (!all) fail_mpi(d, MPI_ERR_NO_MEM, "the gradients' range");
  for (int64_t i = 0; i < n; i++) {
    float a = fabsf(g[i]);
    mx = a > mx || a != a ? a : mx; /* NaN sticks */
  }
  dist_allgather(d, &mx, all, sizeof mx, "the gradients' range");
  float gmax = 0;
  *ok = 1;
  for (int q = 0; q < d->size; q++) {
    if (!(all[q] <= FLT_MAX)) *ok = 0;
    if (all[q] > gmax) gmax = all[q];
  }
  free(all);
  if (!*ok || gmax == 0) return 1.0f;
  int k;
  frexpf(gmax * (float)d->size, &k); /* N·max < 2^k */
  int e = 15 - k;
  return ldexpf(1.0f, e < -120 ? -120 : e > 120 ? 120 : e);
}

/* The 16-bit exchange (--grad-comm f16|bf16, see dist.h). Returns 0 when
 * a gradient is not finite (the caller exchanges in F32). */
static int reduce16(dist *d, float *g, int64_t n, int64_t ms, MPI_Request *rq) {
  int N = d->size, r = d->rank, len = slice_len(n, N, r), ok;
  amp_dtype dt = d->o.grad_comm;
  float sc = exchange_scale(d, g, n, &ok);
  if (!ok) return 0;
  if (!d->g16) d->g16 = malloc(2 * (size_t)n);
  if (!d->r16) d->r16 = malloc(2 * (size_t)(ms * N));
  if (!d->g16 || !d->r16) fail_mpi(d, MPI_ERR_NO_MEM, "the gradients");
  uint16_t *g16 = d->g16, *own16 = g16 + slice_lo(n, N, r);
  for (int64_t i = 0; i < n; i++) g[i] *= sc; /* a power of two: exact */
  amp_convert(g16, dt, g, AMP_F32, (size_t)n);
  wait_bounded(d, post(d, g16, 2, MPI_UINT16_T, n, -1, d->r16, ms, 3, rq), rq, "the gradients");
  /* Widen every rank's slice r (own included) into the F32 slots, sum. */
  for (int q = 0; q < N; q++)
    amp_convert(d->rbuf + (int64_t)q * ms, AMP_F32,
                q == r ? (void *)own16 : (void *)((uint16_t *)d->r16 + (int64_t)q * ms), dt,
                (size_t)len);
  float *sum = d->rbuf + (int64_t)N * ms;
  sum_in_rank_order(d, sum, d->rbuf + (int64_t)r * ms, d->rbuf, ms, len);
  amp_convert(own16, dt, sum, AMP_F32, (size_t)len); /* one rounding, for every rank */
  wait_bounded(d, post(d, g16, 2, MPI_UINT16_T, n, r, NULL, 0, 4, rq), rq, "the gradients");
  amp_convert(g, AMP_F32, g16, dt, (size_t)n);
  float inv = 1.0f / sc;
  for (int64_t i = 0; i < n; i++) g[i] *= inv;
  return 1;
}

int dist_reduce_grads(dist *d, float *g, int64_t n) {
  int N = d->size;
  if (N == 1 || !d->mpi) return 1;
  double t0 = now_s();
  int64_t ms = (n + N - 1) / N; /* the longest slice */
  MPI_Request *rq = malloc(sizeof(MPI_Request) * 2 * (size_t)N);
  if (!d->rbuf) d->rbuf = malloc(sizeof(float) * (size_t)(ms * (N + 1)));
  if (!rq || !d->rbuf) fail_mpi(d, MPI_ERR_NO_MEM, "the gradients");
  if (d->o.grad_comm == AMP_F32 || !reduce16(d, g, n, ms, rq)) reduce32(d, g, n, ms, rq);
  free(rq);
  d->comm_s += now_s() - t0;
  d->reductions++;
  return 1;
}

#else /* no MPI: one rank */

int dist_comm_init(dist *d) {
  int size;
  d->rank = 0;
  d->size = 1;
  d->mpi = 0;
  if (launched_by_mpirun(&size) && size > 1) {
    fprintf(stderr,
            "ampc train: started by mpirun as one of %d ranks, but this ampc was built without "
            "MPI (install libopenmpi-dev, `scripts/install-deps --mpi`, and rebuild)\n",
            size);
    return 1;
  }
  return 0;
}

void dist_comm_finish(dist *d) { (void)d; }

int dist_allgather(dist *d, const void *send, void *recv, int bytes, const char *what) {
  (void)d;
  (void)what;
  memcpy(recv, send, (size_t)bytes);
  return 1;
}

int dist_reduce_grads(dist *d, float *g, int64_t n) {
  (void)d;
  (void)g;
  (void)n;
  (void)now_s;
  return 1;
}

#endif
