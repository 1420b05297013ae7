/* `ampc sample --checkpoint F [--prompt TEXT] [--tokens N] [--temperature X]
 * [--top-k K] [--seed S] [--threads N]`: text from a GPT trained by `ampc
 * train --model gpt:... --save F`. The model is rebuilt from the
 * checkpoint's config.model and its weights loaded; each new byte is drawn
 * from softmax(logits / temperature) over the top-k bytes (k 0: all;
 * temperature 0: the most likely byte) given the last ctx bytes, with a
 * seeded generator (the same seed, the same text). */
#include "cli.h"
#include "opts.h"
#include "recipe.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sample_opts {
  const char *checkpoint, *prompt;
  double temperature;
  long tokens, top_k, threads;
  unsigned long long seed;
} sample_opts;

#define SOPT(name, kind, member, arg, lo, hi, help)                                                \
  { name, 0, kind, offsetof(sample_opts, member), arg, lo, hi, help, NULL }

static const ampc_opt SAMPLE_OPTS[] = {
    SOPT("checkpoint", AMPC_OPT_STR, checkpoint, "FILE", 0, 0,
         "a GPT checkpoint of `ampc train --model gpt:... --save FILE` (required)"),
    SOPT("prompt", AMPC_OPT_STR, prompt, "TEXT", 0, 0, "the text to continue (default a newline)"),
    SOPT("tokens", AMPC_OPT_LONG, tokens, "N", 0, 1000000, "bytes to generate (default 200)"),
    SOPT("temperature", AMPC_OPT_DOUBLE, temperature, "X", 0, 100,
         "softmax temperature; 0 takes the most likely byte (default 1)"),
    SOPT("top-k", AMPC_OPT_LONG, top_k, "K", 0, 1000000,
         "draw from the K most likely bytes; 0: all (default 0)"),
    SOPT("seed", AMPC_OPT_ULL, seed, "S", 0, 9007199254740992.0,
         "seed of the draws: the same seed, the same text (default 0)"),
    SOPT("threads", AMPC_OPT_LONG, threads, "N", 1, 1024, "OpenMP threads (default 2)"),
};

const ampc_cmd ampc_cmd_sample = {
    "sample",
    "--checkpoint FILE [options]",
    "Generates text from a GPT checkpoint: each new byte is drawn from\n"
    "softmax(logits / temperature) over the top-k bytes, given the last ctx bytes.",
    SAMPLE_OPTS,
    (int)(sizeof SAMPLE_OPTS / sizeof SAMPLE_OPTS[0]),
    0,
    "Exit status: 0 done, 1 failed, 2 bad usage.",
    "text from a GPT checkpoint"};

static int parse(int argc, char **argv, sample_opts *o) {
  *o = (sample_opts){NULL, "\n", 1.0, 200, 0, 2, 0};
  int rc = ampc_opts_parse(&ampc_cmd_sample, argc, argv, o, NULL, NULL);
  if (rc) return rc;
  if (!o->checkpoint) return ampc_opts_error(&ampc_cmd_sample, "--checkpoint FILE is required");
  if (!*o->prompt) return ampc_opts_error(&ampc_cmd_sample, "--prompt must not be empty");
  return 0;
}

/* Draws the next byte from the last row of logits [1,T,V]. */
static int draw(const float *row, int64_t v, const sample_opts *o, amp_rng *rng) {
  int64_t best = 0;
  for (int64_t j = 1; j < v; j++)
    if (row[j] > row[best]) best = j;
  if (o->temperature == 0) return (int)best;
  /* The top-k threshold: the k-th largest logit. */
  float thresh = -INFINITY;
  if (o->top_k > 0 && o->top_k < v) {
    float *s = malloc(sizeof(float) * (size_t)v);
    memcpy(s, row, sizeof(float) * (size_t)v);
    for (long k = 0; k < o->top_k; k++) { /* partial selection, k small */
      int64_t m = k;
      for (int64_t j = k + 1; j < v; j++)
        if (s[j] > s[m]) m = j;
      float t = s[k];
      s[k] = s[m];
      s[m] = t;
    }
    thresh = s[o->top_k - 1];
    free(s);
  }
  double sum = 0, *p = malloc(sizeof(double) * (size_t)v);
  for (int64_t j = 0; j < v; j++) {
    p[j] = row[j] >= thresh ? exp((row[j] - row[best]) / o->temperature) : 0;
    sum += p[j];
  }
  double r = (double)amp_rng_uniform(rng, 0, 1) * sum;
  int64_t pick = best;
  for (int64_t j = 0; j < v; j++) {
    if (p[j] > 0) pick = j;
    if ((r -= p[j]) < 0) break;
  }
  free(p);
  return (int)pick;
}

/* Generates o->tokens bytes after the prompt; returns 0 or 1. */
static int generate(amp_ctx *ctx, amp_module *m, const amp_gpt_config *g, const sample_opts *o) {
  size_t np = strlen(o->prompt), n = np + (size_t)o->tokens;
  unsigned char *buf = malloc(n + 1);
  if (!buf) return 1;
  memcpy(buf, o->prompt, np);
  amp_rng rng;
  amp_rng_seed(&rng, o->seed);
  fwrite(o->prompt, 1, np, stdout);
  amp_no_grad_begin(ctx);
  for (size_t len = np; len < n; len++) {
    amp_ctx_step_reset(ctx);
    int64_t t = (int64_t)len < g->ctx ? (int64_t)len : g->ctx;
    amp_tensor *x = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_I32, 2, (int64_t[]){1, t});
    for (int64_t i = 0; x && i < t; i++) ((int32_t *)x->data)[i] = buf[len - (size_t)t + (size_t)i];
    amp_tensor *y = amp_module_forward(ctx, m, x);
    if (!y) break;
    buf[len] = (unsigned char)draw((const float *)y->data + (t - 1) * g->vocab, g->vocab, o, &rng);
    fputc(buf[len], stdout);
    fflush(stdout);
  }
  amp_no_grad_end(ctx);
  fputc('\n', stdout);
  free(buf);
  if (amp_ctx_status(ctx) == AMP_OK) return 0;
  fprintf(stderr, "ampc sample: %s\n", amp_ctx_error(ctx));
  return 1;
}

/* The checkpoint's model spec (a GPT with vocab 256) into *spec; 0 or 1. */
static int read_spec(amp_ctx *ctx, const char *path, ampc_model_spec *spec) {
  amp_safetensors *f = NULL;
  if (amp_safetensors_read(ctx, path, &f) != AMP_OK) {
    fprintf(stderr, "ampc sample: --checkpoint: %s\n", amp_ctx_error(ctx));
    return 1;
  }
  const char *model = amp_safetensors_meta(f, "config.model");
  char msg[256];
  int ok = model && ampc_parse_model_spec(model, spec, msg, sizeof msg) == 1 &&
           spec->kind == AMPC_MODEL_GPT && spec->gpt.vocab == 256;
  if (!ok)
    fprintf(stderr, "ampc sample: %s: not a checkpoint of a byte-level GPT (config.model %.80s)\n",
            path, model ? model : "missing");
  amp_safetensors_free(f);
  return !ok;
}

int ampc_sample_main(int argc, char **argv) {
  sample_opts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc == AMPC_OPTS_HELP ? 0 : rc;
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = (int)o.threads});
  if (!ctx) return 1;
  ampc_model_spec spec;
  rc = read_spec(ctx, o.checkpoint, &spec);
  amp_module *m = rc ? NULL : ampc_build_model(ctx, &spec, 0);
  if (!rc && (!m || amp_checkpoint_load(ctx, o.checkpoint, m, NULL, NULL, NULL) != AMP_OK)) {
    fprintf(stderr, "ampc sample: --checkpoint: %s\n", amp_ctx_error(ctx));
    rc = 1;
  }
  if (!rc) rc = generate(ctx, m, &spec.gpt, &o);
  amp_ctx_free(ctx);
  return rc;
}
