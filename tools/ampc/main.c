/* ampc — the command-line program. Uses the public header (and the benchmark
 * helpers in bench/). */
#include "ampc.h"
#include "bench.h"
#include "cli.h"
#include "recipe.h"

#define AMPC_GPT_DEFAULT_HELP "layers=4,dim=128,heads=4,ctx=64"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f, "usage: ampc <command> [options]\n"
             "\n"
             "commands:\n"
             "  train [--data DIR|synthetic] [--model mlp:784-1024-10]\n"
             "        [--precision fp32|fp16|bf16] [--optim adam|adamw|sgd] [--lr X]\n"
             "        [--batch N] [--epochs N] [--seed N] [--threads N]\n"
             "        [--loss-scale dynamic|static:N|none] [--master-weights on|off]\n"
             "        [--schedule constant|step:N:GAMMA|cosine:WARMUP] [--clip NORM]\n"
             "        [--metrics FILE.jsonl] [--json] [--quiet] [--max-steps N]\n"
             "        [--synthetic-n N] [--growth-interval N] [--loss-mul X]\n"
             "        [--save FILE [--save-every N]] [--resume FILE]\n"
             "                     train a model (default: the reference MLP on data/mnist\n"
             "                     in fp16 mixed precision with Adam, 5 epochs)\n"
             "  train --model gpt:layers=L,dim=D,heads=H,ctx=T[,vocab=V] | cnn:fashion\n"
             "        [--data fortunes|text:PATH|fashion-mnist] [--steps N] [--eval-every N]\n"
             "        [--init FILE.safetensors] (and the options above)\n"
             "                     a GPT on byte-level text (default: fortunes; val loss in\n"
             "                     nats per token) or the reference CNN on Fashion-MNIST\n"
             "                     (test accuracy); default GPT " AMPC_GPT_DEFAULT_HELP "\n"
             "                     --init: PyTorch state_dict names (nanoGPT's for a GPT:\n"
             "                     transformer.wte.weight, transformer.h.0.attn.c_attn.weight,\n"
             "                     ...; nn.Sequential indices for the CNN)\n"
             "  sample --checkpoint FILE [--prompt TEXT] [--tokens N] [--temperature X]\n"
             "         [--top-k K] [--seed S]\n"
             "                     text from a GPT checkpoint\n"
             "  eval --checkpoint FILE [--data DIR|synthetic] [--json]\n"
             "                     test accuracy of a checkpoint\n"
             "  export --checkpoint IN [--dtype f16|bf16] OUT\n"
             "                     write the 16-bit weights alone (safetensors)\n"
             "  plot RUN.jsonl [MORE.jsonl ...] -o OUT.svg\n"
             "                     draw the metrics of runs (loss, scale, lr, ...) as SVG\n"
             "  bench gemm --m M --n N --k K [--a f16] [--b f16] [--c f32] [--ta] [--tb]\n"
             "             [--threads T] [--reps R] [--json]\n"
             "                     time one GEMM shape (median GFLOP/s)\n"
             "  bench peak [--threads T]    measured peak FMA rate (GFLOP/s)\n"
             "  bench triad [--threads T]   triad memory bandwidth (GB/s)\n"
             "  bench all [--threads T]     the standard set of `make bench` (JSON lines)\n"
             "  version                     print the version\n"
             "  help                        this text\n");
}

/* Parses "--threads T" from argv (anywhere); returns the default when absent.
 * Returns -1 and prints a message on a bad value. */
static int parse_threads(int argc, char **argv, int def) {
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "ampc: --threads needs a value\n");
        return -1;
      }
      char *end;
      long v = strtol(argv[i + 1], &end, 10);
      if (*argv[i + 1] == '\0' || *end != '\0' || v < 1 || v > 1024) {
        fprintf(stderr, "ampc: --threads: '%s' is not a thread count (1..1024)\n", argv[i + 1]);
        return -1;
      }
      return (int)v;
    }
  }
  return def;
}

static int check_only_threads(int argc, char **argv, const char *cmd) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0) {
      i++;
      continue;
    }
    if (strcmp(argv[i], "--json") == 0) continue;
    fprintf(stderr, "ampc bench %s: unknown option '%s'\n", cmd, argv[i]);
    return 0;
  }
  return 1;
}

static int bench_main(int argc, char **argv) {
  if (argc < 1) {
    fprintf(stderr, "ampc bench: which benchmark? (gemm, peak, triad, all)\n");
    return 2;
  }
  const char *what = argv[0];
  if (strcmp(what, "gemm") == 0) return ampb_gemm_cmd(argc, argv);
  int threads = parse_threads(argc, argv, 2);
  if (threads < 0) return 2;
  if (!check_only_threads(argc, argv, what)) return 2;
  if (strcmp(what, "peak") == 0) {
    printf("{\"bench\":\"peak_fma\",\"threads\":%d,\"gflops\":%.2f}\n", threads,
           ampb_peak_fma_gflops(threads, 5));
    return 0;
  }
  if (strcmp(what, "triad") == 0) {
    printf("{\"bench\":\"triad\",\"threads\":%d,\"array_bytes\":%zu,\"gbs\":%.2f}\n", threads,
           ampb_big_array_bytes(), ampb_triad_gbs(threads, ampb_big_array_bytes(), 5));
    return 0;
  }
  if (strcmp(what, "all") == 0) {
    int rc = ampb_gemm_suite(threads);
    rc |= ampb_convert_suite(threads);
    rc |= ampb_eltwise_suite(threads);
    return rc ? 1 : 0;
  }
  fprintf(stderr, "ampc bench: unknown benchmark '%s' (gemm, peak, triad, all)\n", what);
  return 2;
}

/* OpenMP threads that spin while waiting cost up to 10x on a machine shared
 * with other work (measured: 2 threads next to one busy process, 7.5-16 ms
 * per training step spinning vs 6.2 ms sleeping); sleeping costs about 8% on
 * an idle machine (3.9 vs 3.6 ms). Robustness wins for training.
 * libgomp reads its policy when it loads, so the only way to choose it here
 * is to run ourselves again with it set, unless the user set it. */
static void prefer_passive_waits(char **argv) {
#ifdef __linux__
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OMP_WAIT_POLICY"); /* exec failed: go on as we are */
#else
  (void)argv;
#endif
}

int main(int argc, char **argv) {
  /* Training-type commands only: the benchmarks time kernels back to back,
     where sleeping threads would pay a wake-up per call. */
  if (argc >= 2 && (strcmp(argv[1], "train") == 0 || strcmp(argv[1], "eval") == 0 ||
                    strcmp(argv[1], "export") == 0 || strcmp(argv[1], "sample") == 0))
    prefer_passive_waits(argv);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("ampc %s\n", amp_version());
    return 0;
  }
  if (strcmp(cmd, "bench") == 0) return bench_main(argc - 2, argv + 2);
  if (strcmp(cmd, "train") == 0) return ampc_train_main(argc - 2, argv + 2);
  if (strcmp(cmd, "eval") == 0) return ampc_eval_main(argc - 2, argv + 2);
  if (strcmp(cmd, "export") == 0) return ampc_export_main(argc - 2, argv + 2);
  if (strcmp(cmd, "plot") == 0) return ampc_plot_main(argc - 2, argv + 2);
  if (strcmp(cmd, "sample") == 0) return ampc_sample_main(argc - 2, argv + 2);
  fprintf(stderr, "ampc: unknown command '%s'\n", cmd);
  usage(stderr);
  return 2;
}
