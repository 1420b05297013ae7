/* `ampc sample --checkpoint F [--prompt TEXT] [--tokens N] [--temperature X]
 * [--top-k K] [--seed S] [--threads N]`: text from a GPT trained by `ampc
 * train --model gpt:... --save F`. The model is rebuilt from the
 * checkpoint's config.model and its weights loaded; each new byte is drawn
 * from softmax(logits / temperature) over the top-k bytes (k 0: all;
 * temperature 0: the most likely byte) given the last ctx bytes, with a
 * seeded generator (the same seed, the same text). */
#include "cli.h"
#include "recipe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sample_opts {
  const char *checkpoint, *prompt;
  double temperature;
  long tokens, top_k, threads;
  unsigned long long seed;
} sample_opts;

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "ampc sample: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(run `ampc help` for the options)\n");
  return 2;
}

static int parse(int argc, char **argv, sample_opts *o) {
  *o = (sample_opts){NULL, "\n", 1.0, 200, 0, 2, 0};
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) return usage_error("unexpected argument '%s'", a);
    if (i + 1 >= argc) return usage_error("%s needs a value", a);
    const char *v = argv[++i];
    double d;
    if (strcmp(a, "--checkpoint") == 0) {
      o->checkpoint = v;
    } else if (strcmp(a, "--prompt") == 0) {
      o->prompt = v;
    } else if (strcmp(a, "--temperature") == 0) {
      if (!ampc_parse_double(v, 0, 100, &o->temperature))
        return usage_error("--temperature: '%s' is not a number in [0, 100]", v);
    } else if (strcmp(a, "--tokens") == 0 || strcmp(a, "--top-k") == 0 ||
               strcmp(a, "--threads") == 0 || strcmp(a, "--seed") == 0) {
      int seed = a[2] == 's';
      if (!ampc_parse_double(v, strcmp(a, "--threads") == 0 ? 1 : 0,
                             seed ? 9.007199254740992e15 : 1e6, &d) ||
          d != floor(d))
        return usage_error(seed ? "--seed: '%s' is not a whole number >= 0"
                                : "%s is not a whole number in range",
                           v);
      if (seed)
        o->seed = (unsigned long long)d;
      else if (strcmp(a, "--tokens") == 0)
        o->tokens = (long)d;
      else if (strcmp(a, "--top-k") == 0)
        o->top_k = (long)d;
      else
        o->threads = (long)d;
    } else {
      return usage_error("unknown option '%s'", a);
    }
  }
  if (!o->checkpoint) return usage_error("%s", "--checkpoint FILE is required");
  if (!*o->prompt) return usage_error("%s", "--prompt must not be empty");
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
  if (rc) return rc;
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
