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

/* Posts a send of g's slice `send_k` and a receive into `into` to and from
 * every other rank q (send_k < 0: send slice q; into == NULL: receive into
 * g's slice q); returns the number of requests. */
static int post(dist *d, float *g, int64_t n, int send_k, float *into, int64_t stride, int tag,
                MPI_Request *rq) {
  int N = d->size, r = d->rank, k = 0;
  for (int q = 0; q < N; q++) {
    if (q == r) continue;
    int sk = send_k < 0 ? q : send_k;
    float *dst = into ? into + (int64_t)q * stride : g + slice_lo(n, N, q);
    int rlen = into ? slice_len(n, N, r) : slice_len(n, N, q);
    int rc = MPI_Irecv(dst, rlen, MPI_FLOAT, q, tag, MPI_COMM_WORLD, &rq[k++]);
    if (rc == MPI_SUCCESS)
      rc = MPI_Isend(g + slice_lo(n, N, sk), slice_len(n, N, sk), MPI_FLOAT, q, tag, MPI_COMM_WORLD,
                     &rq[k++]);
    if (rc != MPI_SUCCESS) fail_mpi(d, rc, "the gradients");
    d->bytes_sent += 4.0 * slice_len(n, N, sk);
  }
  return k;
}

int dist_reduce_grads(dist *d, float *g, int64_t n) {
  int N = d->size, r = d->rank;
  if (N == 1 || !d->mpi) return 1;
  double t0 = now_s();
  int64_t ms = (n + N - 1) / N; /* the longest slice */
  MPI_Request *rq = malloc(sizeof(MPI_Request) * 2 * (size_t)N);
  if (!d->rbuf) d->rbuf = malloc(sizeof(float) * (size_t)(ms * N));
  if (!rq || !d->rbuf) {
    fprintf(stderr, "ampc train: rank %d: out of memory for the gradient exchange\n", r);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
  }
  /* Reduce-scatter: rank r receives slice r from every rank. */
  wait_bounded(d, post(d, g, n, -1, d->rbuf, ms, 1, rq), rq, "the gradients");
  /* Slice r summed in rank order 0, 1, ..., N-1 (s0 + s1) + s2 ..., in
   * slot r of the receive buffer (its own copy is g's slice, unchanged by
   * the sends). One pass per rank, element order kept. */
  int len = slice_len(n, N, r);
  float *own = g + slice_lo(n, N, r), *sum = d->rbuf + (int64_t)r * ms;
  const float *s0 = r == 0 ? own : d->rbuf;
  for (int i = 0; i < len; i++) sum[i] = s0[i];
  for (int q = 1; q < N; q++) {
    const float *sq = q == r ? own : d->rbuf + (int64_t)q * ms;
    for (int i = 0; i < len; i++) sum[i] += sq[i];
  }
  memcpy(own, sum, sizeof(float) * (size_t)len);
  /* All-gather: every rank's summed slice to every rank. */
  wait_bounded(d, post(d, g, n, r, NULL, 0, 2, rq), rq, "the gradients");
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
