/* Transformer modules, named as nanoGPT / llm.c name them (so a PyTorch
 * state_dict maps one to one): CausalSelfAttention (c_attn, c_proj), Block
 * (ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj) and GPT (transformer.wte,
 * transformer.wpe, transformer.h.N, transformer.ln_f; the head tied to wte).
 * Initialisation as nanoGPT: Linear and Embedding weights N(0, 0.02), the
 * residual projections N(0, 0.02/sqrt(2·layers)), biases 0, LayerNorm 1/0. */
#include "nn_internal.h"
#include "../ops/ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A Linear(in, out) with bias, weight N(0, std), bias 0. */
static amp_module *gpt_linear(amp_ctx *ctx, amp_rng *rng, int64_t in, int64_t out, float std) {
  amp_module *l = amp_nn_linear(ctx, rng, in, out, 1);
  if (!l) return NULL;
  amp_tensor *w = l->params[0], *b = l->params[1];
  for (int64_t i = 0; i < w->numel; i++) ((float *)w->data)[i] = std * amp_rng_normal(rng);
  memset(b->data, 0, (size_t)b->numel * sizeof(float));
  return l;
}

/* x [B,T,C] → q, k, v [B,heads,T,C/heads] via c_attn, then attention and
 * c_proj → [B,T,C]. */
static amp_tensor *attn_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  if (x->ndim != 3 || x->shape[2] != m->children[0]->params[0]->shape[1]) {
    char s[64];
    amp__error(ctx, AMP_ERR_SHAPE, "CausalSelfAttention: input %s is not [B,T,%lld]",
               amp__shape_str(x, s, sizeof s), (long long)m->children[0]->params[0]->shape[1]);
    return NULL;
  }
  int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2], H = m->heads, D = C / H;
  amp_tensor *qkv = amp_module_forward(ctx, m->children[0], x); /* [B,T,3C] */
  amp_tensor *parts[3] = {NULL, NULL, NULL};
  if (!qkv || amp_split(ctx, qkv, 2, 3, (int64_t[]){C, C, C}, parts) != AMP_OK) return NULL;
  for (int i = 0; i < 3; i++)
    parts[i] = amp_transpose(ctx, amp_reshape(ctx, parts[i], 4, (int64_t[]){B, T, H, D}), 1, 2);
  amp_tensor *y = amp_attention(ctx, parts[0], parts[1], parts[2], 1); /* [B,H,T,D] */
  y = amp_reshape(ctx, amp_transpose(ctx, y, 1, 2), 3, (int64_t[]){B, T, C});
  return amp_module_forward(ctx, m->children[1], y);
}

amp_module *amp_nn_causal_self_attention(amp_ctx *ctx, amp_rng *rng, int64_t dim, int64_t heads,
                                         int64_t layers) {
  if (!ctx) return NULL;
  if (dim < 1 || heads < 1 || layers < 1 || dim % heads != 0 || !rng) {
    amp__error(ctx, AMP_ERR_INVALID_ARG,
               "CausalSelfAttention: dim %lld, heads %lld, layers %lld: %s", (long long)dim,
               (long long)heads, (long long)layers,
               !rng ? "no random generator" : "sizes must be positive and heads must divide dim");
    return NULL;
  }
  amp_module *m = amp__module_new(ctx, "CausalSelfAttention", attn_fwd);
  if (!m) return NULL;
  m->heads = heads;
  float std_proj = 0.02f / sqrtf(2.0f * (float)layers);
  if (!amp__module_adopt(ctx, m, "c_attn", gpt_linear(ctx, rng, dim, 3 * dim, 0.02f)) ||
      !amp__module_adopt(ctx, m, "c_proj", gpt_linear(ctx, rng, dim, dim, std_proj)))
    return NULL;
  return m;
}

/* Pre-LN block: x + attn(ln_1(x)), then + c_proj(gelu_tanh(c_fc(ln_2(x)))). */
static amp_tensor *block_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *x) {
  amp_module **c = m->children; /* ln_1, attn, ln_2, c_fc, c_proj */
  x = amp_add(ctx, x, amp_module_forward(ctx, c[1], amp_module_forward(ctx, c[0], x)));
  amp_tensor *h = amp_module_forward(ctx, c[3], amp_module_forward(ctx, c[2], x));
  return amp_add(ctx, x, amp_module_forward(ctx, c[4], amp_gelu_tanh(ctx, h)));
}

amp_module *amp_nn_transformer_block(amp_ctx *ctx, amp_rng *rng, int64_t dim, int64_t heads,
                                     int64_t layers) {
  if (!ctx) return NULL;
  /* Created in declaration order, so that the parameters lie back to back
   * in the store in the order the model lists them. */
  amp_module *ln_1 = amp_nn_layer_norm(ctx, dim, 1e-5f);
  amp_module *attn = ln_1 ? amp_nn_causal_self_attention(ctx, rng, dim, heads, layers) : NULL;
  if (!attn) return NULL;
  amp_module *m = amp__module_new(ctx, "Block", block_fwd);
  float std_proj = 0.02f / sqrtf(2.0f * (float)layers);
  if (!m || !amp__module_adopt(ctx, m, "ln_1", ln_1) || !amp__module_adopt(ctx, m, "attn", attn) ||
      !amp__module_adopt(ctx, m, "ln_2", amp_nn_layer_norm(ctx, dim, 1e-5f)) ||
      !amp__module_adopt(ctx, m, "mlp.c_fc", gpt_linear(ctx, rng, dim, 4 * dim, 0.02f)) ||
      !amp__module_adopt(ctx, m, "mlp.c_proj", gpt_linear(ctx, rng, 4 * dim, dim, std_proj)))
    return NULL;
  return m;
}

/* tokens [B,T] (I32) → logits [B,T,vocab]. */
static amp_tensor *gpt_fwd(amp_ctx *ctx, amp_module *m, amp_tensor *idx) {
  if (idx->dtype != AMP_I32 || idx->ndim != 2 || idx->shape[1] > m->ctx_len) {
    char s[64];
    amp__error(ctx, AMP_ERR_SHAPE, "GPT: tokens %s %s are not I32 [B,T] with T <= %lld",
               amp_dtype_name(idx->dtype), amp__shape_str(idx, s, sizeof s), (long long)m->ctx_len);
    return NULL;
  }
  int64_t B = idx->shape[0], T = idx->shape[1];
  amp_tensor *pos = amp_tensor_new(ctx, AMP_ARENA_STEP, AMP_I32, 2, (int64_t[]){B, T});
  if (!pos) return NULL;
  for (int64_t i = 0; i < B * T; i++) ((int32_t *)pos->data)[i] = (int32_t)(i % T);
  amp_module **c = m->children; /* wte, wpe, h.0 .. h.L-1, ln_f */
  amp_tensor *x =
      amp_add(ctx, amp_module_forward(ctx, c[0], idx), amp_module_forward(ctx, c[1], pos));
  for (int i = 2; i < m->nchildren - 1; i++) x = amp_module_forward(ctx, c[i], x);
  x = amp_module_forward(ctx, c[m->nchildren - 1], x);
  return amp_linear(ctx, x, c[0]->params[0], NULL); /* the tied head */
}

/* The configuration's first problem, or NULL. */
static const char *gpt_config_error(const amp_gpt_config *c) {
  if (c->vocab < 1 || c->ctx < 1 || c->layers < 1 || c->dim < 1 || c->heads < 1)
    return "vocab, ctx, layers, dim and heads must be positive";
  if (c->dim % c->heads != 0) return "heads must divide dim";
  if (c->vocab > INT32_MAX || c->ctx > INT32_MAX) return "vocab and ctx must fit in 32 bits";
  return NULL;
}

amp_module *amp_nn_gpt(amp_ctx *ctx, amp_rng *rng, const amp_gpt_config *cfg) {
  if (!ctx) return NULL;
  const char *err = !cfg   ? "no configuration"
                    : !rng ? "no random generator"
                           : gpt_config_error(cfg);
  if (err) {
    amp__error(ctx, AMP_ERR_INVALID_ARG, "GPT: %s", err);
    return NULL;
  }
  amp_module *m = amp__module_new(ctx, "GPT", gpt_fwd);
  if (!m) return NULL;
  m->vocab = cfg->vocab;
  m->ctx_len = cfg->ctx;
  amp_module *wte = amp_nn_embedding(ctx, rng, cfg->vocab, cfg->dim);
  amp_module *wpe = amp_nn_embedding(ctx, rng, cfg->ctx, cfg->dim);
  if (!wte || !wpe) return NULL;
  for (int e = 0; e < 2; e++) {
    amp_tensor *w = (e ? wpe : wte)->params[0];
    for (int64_t i = 0; i < w->numel; i++) ((float *)w->data)[i] *= 0.02f;
  }
  if (!amp__module_adopt(ctx, m, "transformer.wte", wte) ||
      !amp__module_adopt(ctx, m, "transformer.wpe", wpe))
    return NULL;
  for (int64_t l = 0; l < cfg->layers; l++) {
    char prefix[40];
    snprintf(prefix, sizeof prefix, "transformer.h.%lld", (long long)l);
    amp_module *b = amp_nn_transformer_block(ctx, rng, cfg->dim, cfg->heads, cfg->layers);
    if (!amp__module_adopt(ctx, m, prefix, b)) return NULL;
  }
  if (!amp__module_adopt(ctx, m, "transformer.ln_f", amp_nn_layer_norm(ctx, cfg->dim, 1e-5f)))
    return NULL;
  return m;
}
