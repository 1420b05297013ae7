/* Shared benchmark helpers and the benchmark entry points used by `ampc bench`
 * and `make bench`. Every benchmark prints JSON (one object per line). */
#ifndef AMPC_BENCH_H
#define AMPC_BENCH_H

#include <stddef.h>

/* Monotonic wall-clock time in seconds. */
double ampb_now(void);

/* Median of n values (sorts a copy); 0 for n == 0. */
double ampb_median(const double *v, int n);

/* The largest of v[0..n) (0 when n <= 0). */
double ampb_max(const double *v, int n);

/* The machine's measured peak single-precision FMA rate in GFLOP/s with
 * `threads` threads (AVX2 FMA on independent registers; 0 when the CPU has no
 * AVX2/FMA or the build has no SIMD). The best of `reps` runs: a peak is
 * what the machine can do, and a run that shared a core with another
 * process would understate it (and flatter every fraction of it). */
double ampb_peak_fma_gflops(int threads, int reps);

/* The peak of one ISA: AVX2 FMA (avx512 = 0) or AVX-512F FMA (1, 12 ZMM
 * chains); 0 where the CPU or the build lacks it. ampb_peak_fma_gflops is
 * the larger of the two: the peak of the best kernel this CPU can run. */
double ampb_peak_fma_gflops_isa(int threads, int reps, int avx512);

/* Prints one JSON line describing the machine for benchmark `bench`: the
 * CPU model, its SIMD features, caches, and the kernel table, GEMM
 * micro-tile and blocking a context with `threads` threads uses. */
void ampb_print_machine(const char *bench, int threads);

/* STREAM-style triad a = b + s·c bandwidth in GB/s (bytes counted: 12 per
 * element) over arrays of `bytes_per_array` bytes each, the best of `reps`
 * (as STREAM reports): the bandwidth the machine can deliver. */
double ampb_triad_gbs(int threads, size_t bytes_per_array, int reps);

/* Size of the last-level cache in bytes (a guess of 32 MiB when unknown). */
size_t ampb_llc_bytes(void);

/* Array size used by the memory-bound benchmarks: well past the LLC. */
size_t ampb_big_array_bytes(void);

/* 1 when the build can call OpenBLAS cblas_sgemm. */
int ampb_have_openblas(void);

/* `ampc bench gemm ...`: argv[0] is "gemm". Returns the exit status. */
int ampb_gemm_cmd(int argc, char **argv);

/* The standard GEMM set of `make bench`: ours vs OpenBLAS vs peak. Prints
 * JSON lines and returns 0, or 1 on error. */
int ampb_gemm_suite(int threads);

/* The conversion set: F32 <-> F16/BF16 over arrays larger than the LLC,
 * compared to the triad bandwidth measured in the same run. */
int ampb_convert_suite(int threads);

/* The elementwise set: kernels on F16/BF16 vs F32 arrays larger than the
 * LLC. */
int ampb_eltwise_suite(int threads);

/* The INT8 set: amp_gemm_u8s8 against our F32 GEMM (and the INT8 Linear
 * against the F32 Linear) at the reference MLP's inference shapes, batch
 * 128 and 1000; CPU time, median of alternating rounds. Prints JSON lines
 * (speedup_cpu, floor 1.5) and returns 0, or 1 on error. */
int ampb_int8_suite(int threads);

#endif
