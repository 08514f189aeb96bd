/* The decoder-only transformer: parameters under Hugging Face names, the
 * forward pass on a tape, and the loss. Decoding with a KV cache reuses the
 * blocks here through a key/value callback (transformer_decode.c). */
#include "nn/transformer_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2's initialisation (Radford et al. 2019, and llm.c): N(0, 0.02),
 * residual-stream projections scaled by 1/sqrt(2 * layers). */
#define INIT_STD       0.02f
#define NAME_MAX_BYTES 96

/* ---- configuration ------------------------------------------------------------ */

ag_transformer_config ag_transformer_llama_config(int64_t vocab_size, int64_t hidden_size,
                                                  int64_t num_layers, int64_t num_heads,
                                                  int64_t num_kv_heads, int64_t max_positions) {
  /* SwiGLU's width: 8/3 of hidden (three matrices cost what two 4x ones do),
   * rounded up to a multiple of 32 as Llama does (to 256). */
  int64_t intermediate = (8 * hidden_size / 3 + 31) / 32 * 32;
  return (ag_transformer_config){.arch = AG_ARCH_LLAMA,
                                 .vocab_size = vocab_size,
                                 .hidden_size = hidden_size,
                                 .intermediate_size = intermediate,
                                 .num_layers = num_layers,
                                 .num_heads = num_heads,
                                 .num_kv_heads = num_kv_heads,
                                 .head_dim = num_heads > 0 ? hidden_size / num_heads : 0,
                                 .max_positions = max_positions,
                                 .norm_eps = 1e-5f,
                                 .rope = {.theta = 10000.0f},
                                 .tie_embeddings = true};
}

ag_transformer_config ag_transformer_gpt2_config(int64_t vocab_size, int64_t hidden_size,
                                                 int64_t num_layers, int64_t num_heads,
                                                 int64_t max_positions) {
  return (ag_transformer_config){.arch = AG_ARCH_GPT2,
                                 .vocab_size = vocab_size,
                                 .hidden_size = hidden_size,
                                 .intermediate_size = 4 * hidden_size,
                                 .num_layers = num_layers,
                                 .num_heads = num_heads,
                                 .num_kv_heads = num_heads,
                                 .head_dim = num_heads > 0 ? hidden_size / num_heads : 0,
                                 .max_positions = max_positions,
                                 .norm_eps = 1e-5f,
                                 .tie_embeddings = true};
}

ag_status ag_transformer_config_check(const ag_transformer_config *c) {
  if (!c) return ag_error_set(AG_ERR_INVALID, "transformer: NULL config");
  if (c->arch != AG_ARCH_LLAMA && c->arch != AG_ARCH_GPT2)
    return ag_error_set(AG_ERR_INVALID, "transformer: unknown architecture %d", (int)c->arch);
  const struct {
    const char *name;
    int64_t value;
  } sizes[] = {{"vocab_size", c->vocab_size},
               {"hidden_size", c->hidden_size},
               {"intermediate_size", c->intermediate_size},
               {"num_layers", c->num_layers},
               {"num_heads", c->num_heads},
               {"num_kv_heads", c->num_kv_heads},
               {"head_dim", c->head_dim},
               {"max_positions", c->max_positions}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (sizes[i].value <= 0 || sizes[i].value > ((int64_t)1 << 31) - 1)
      return ag_error_set(AG_ERR_INVALID, "transformer: %s is %lld; it must be in [1, 2^31)",
                          sizes[i].name, (long long)sizes[i].value);
  if (c->num_heads % c->num_kv_heads)
    return ag_error_set(AG_ERR_INVALID,
                        "transformer: num_heads %lld is not a multiple of num_kv_heads %lld",
                        (long long)c->num_heads, (long long)c->num_kv_heads);
  if (!(c->norm_eps >= 0))
    return ag_error_set(AG_ERR_INVALID, "transformer: norm_eps %g must be >= 0",
                        (double)c->norm_eps);
  if (c->arch == AG_ARCH_GPT2) {
    if (c->num_kv_heads != c->num_heads || c->head_dim * c->num_heads != c->hidden_size)
      return ag_error_set(AG_ERR_INVALID,
                          "transformer: gpt2 needs num_kv_heads = num_heads (%lld, %lld) and "
                          "head_dim * num_heads = hidden_size (%lld * %lld != %lld)",
                          (long long)c->num_kv_heads, (long long)c->num_heads,
                          (long long)c->head_dim, (long long)c->num_heads,
                          (long long)c->hidden_size);
    if (!c->tie_embeddings)
      return ag_error_set(AG_ERR_UNSUPPORTED, "transformer: gpt2 ties its LM head to wte");
  } else {
    if (c->head_dim % 2)
      return ag_error_set(AG_ERR_INVALID,
                          "transformer: head_dim %lld must be even for rotary "
                          "embeddings",
                          (long long)c->head_dim);
    float probe[1];
    ag_rope_config rope = c->rope;
    if (ag_rope_inv_freq(&rope, 2, 1, probe)) return ag_error_wrap(AG_ERR_INVALID, "transformer");
  }
  return AG_OK;
}

/* ---- construction ----------------------------------------------------------------- */

/* Declares a parameter named by printf-style fmt; NULL on failure (the
 * error is set and `failed` raised, so declarations can be chained). */
static ag_tensor *declare(ag_params *p, bool *failed, int64_t rows, int64_t cols, const char *fmt,
                          ...) __attribute__((format(printf, 5, 6)));
static ag_tensor *declare(ag_params *p, bool *failed, int64_t rows, int64_t cols, const char *fmt,
                          ...) {
  if (*failed) return NULL;
  char name[NAME_MAX_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  ag_tensor *x = cols > 0 ? ag_params_add(p, name, 2, (int64_t[]){rows, cols})
                          : ag_params_add(p, name, 1, (int64_t[]){rows});
  if (!x) *failed = true;
  return x;
}

static void declare_llama(ag_transformer *m, bool *failed) {
  const ag_transformer_config *c = &m->config;
  ag_params *p = m->params;
  int64_t C = c->hidden_size, I = c->intermediate_size;
  int64_t q_out = c->num_heads * c->head_dim, kv_out = c->num_kv_heads * c->head_dim;
  m->embed = declare(p, failed, c->vocab_size, C, "model.embed_tokens.weight");
  for (int64_t i = 0; i < c->num_layers; i++) {
    transformer_layer *L = &m->layers[i];
    const char *pre = "model.layers";
    long long li = (long long)i;
    L->norm1_weight = declare(p, failed, C, 0, "%s.%lld.input_layernorm.weight", pre, li);
    L->q_weight = declare(p, failed, q_out, C, "%s.%lld.self_attn.q_proj.weight", pre, li);
    L->k_weight = declare(p, failed, kv_out, C, "%s.%lld.self_attn.k_proj.weight", pre, li);
    L->v_weight = declare(p, failed, kv_out, C, "%s.%lld.self_attn.v_proj.weight", pre, li);
    if (c->qkv_bias) {
      L->q_bias = declare(p, failed, q_out, 0, "%s.%lld.self_attn.q_proj.bias", pre, li);
      L->k_bias = declare(p, failed, kv_out, 0, "%s.%lld.self_attn.k_proj.bias", pre, li);
      L->v_bias = declare(p, failed, kv_out, 0, "%s.%lld.self_attn.v_proj.bias", pre, li);
    }
    L->o_weight = declare(p, failed, C, q_out, "%s.%lld.self_attn.o_proj.weight", pre, li);
    if (c->o_bias) L->o_bias = declare(p, failed, C, 0, "%s.%lld.self_attn.o_proj.bias", pre, li);
    L->norm2_weight = declare(p, failed, C, 0, "%s.%lld.post_attention_layernorm.weight", pre, li);
    L->gate_weight = declare(p, failed, I, C, "%s.%lld.mlp.gate_proj.weight", pre, li);
    L->up_weight = declare(p, failed, I, C, "%s.%lld.mlp.up_proj.weight", pre, li);
    L->down_weight = declare(p, failed, C, I, "%s.%lld.mlp.down_proj.weight", pre, li);
    if (c->mlp_bias) {
      L->gate_bias = declare(p, failed, I, 0, "%s.%lld.mlp.gate_proj.bias", pre, li);
      L->up_bias = declare(p, failed, I, 0, "%s.%lld.mlp.up_proj.bias", pre, li);
      L->down_bias = declare(p, failed, C, 0, "%s.%lld.mlp.down_proj.bias", pre, li);
    }
  }
  m->final_norm_weight = declare(p, failed, C, 0, "model.norm.weight");
  m->lm_head =
      c->tie_embeddings ? m->embed : declare(p, failed, c->vocab_size, C, "lm_head.weight");
}

static void declare_gpt2(ag_transformer *m, bool *failed) {
  const ag_transformer_config *c = &m->config;
  ag_params *p = m->params;
  int64_t C = c->hidden_size, I = c->intermediate_size;
  m->embed = declare(p, failed, c->vocab_size, C, "transformer.wte.weight");
  m->positions = declare(p, failed, c->max_positions, C, "transformer.wpe.weight");
  for (int64_t i = 0; i < c->num_layers; i++) {
    transformer_layer *L = &m->layers[i];
    const char *pre = "transformer.h";
    long long li = (long long)i;
    L->norm1_weight = declare(p, failed, C, 0, "%s.%lld.ln_1.weight", pre, li);
    L->norm1_bias = declare(p, failed, C, 0, "%s.%lld.ln_1.bias", pre, li);
    L->qkv_weight = declare(p, failed, 3 * C, C, "%s.%lld.attn.c_attn.weight", pre, li);
    L->qkv_bias = declare(p, failed, 3 * C, 0, "%s.%lld.attn.c_attn.bias", pre, li);
    L->o_weight = declare(p, failed, C, C, "%s.%lld.attn.c_proj.weight", pre, li);
    L->o_bias = declare(p, failed, C, 0, "%s.%lld.attn.c_proj.bias", pre, li);
    L->norm2_weight = declare(p, failed, C, 0, "%s.%lld.ln_2.weight", pre, li);
    L->norm2_bias = declare(p, failed, C, 0, "%s.%lld.ln_2.bias", pre, li);
    L->up_weight = declare(p, failed, I, C, "%s.%lld.mlp.c_fc.weight", pre, li);
    L->up_bias = declare(p, failed, I, 0, "%s.%lld.mlp.c_fc.bias", pre, li);
    L->down_weight = declare(p, failed, C, I, "%s.%lld.mlp.c_proj.weight", pre, li);
    L->down_bias = declare(p, failed, C, 0, "%s.%lld.mlp.c_proj.bias", pre, li);
  }
  m->final_norm_weight = declare(p, failed, C, 0, "transformer.ln_f.weight");
  m->final_norm_bias = declare(p, failed, C, 0, "transformer.ln_f.bias");
  m->lm_head = m->embed;
}

static ag_status create_model(const ag_transformer_config *c, bool allocate, ag_transformer **out) {
  *out = NULL;
  ag_status st = ag_transformer_config_check(c);
  if (st) return st;
  ag_transformer *m = calloc(1, sizeof *m);
  if (!m) return ag_error_set(AG_ERR_NOMEM, "transformer: out of memory");
  m->config = *c;
  m->params = ag_params_create();
  m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
  m->inv_freq = malloc((size_t)(c->head_dim / 2 + 1) * sizeof(float));
  if (!m->params || !m->layers || !m->inv_freq) {
    ag_transformer_destroy(m);
    return ag_error_set(AG_ERR_NOMEM, "transformer: out of memory");
  }
  bool failed = false;
  if (c->arch == AG_ARCH_LLAMA) {
    declare_llama(m, &failed);
    if (!failed) ag_rope_inv_freq(&c->rope, c->head_dim, 1, m->inv_freq); /* checked above */
  } else {
    declare_gpt2(m, &failed);
  }
  if (!failed && allocate && ag_params_finalize(m->params)) failed = true;
  if (failed) {
    st = ag_error_wrap(AG_ERR_NOMEM, "transformer");
    ag_transformer_destroy(m);
    return st;
  }
  *out = m;
  return AG_OK;
}

ag_status ag_transformer_create(const ag_transformer_config *c, ag_transformer **out) {
  return create_model(c, true, out);
}

ag_status ag_transformer_create_external(const ag_transformer_config *c, void *owner,
                                         void (*release)(void *owner), ag_transformer **out) {
  ag_status st = create_model(c, false, out);
  if (st) return st;
  (*out)->external = true;
  (*out)->owner = owner;
  (*out)->release = release;
  for (int i = 0; i < (*out)->params->count; i++) (*out)->params->tensors[i]->requires_grad = false;
  return AG_OK;
}

void ag_transformer_destroy(ag_transformer *m) {
  if (!m) return;
  if (m->release) m->release(m->owner);
  ag_params_destroy(m->params);
  free(m->layers);
  free(m->inv_freq);
  free(m);
}

static bool is_residual_projection(const ag_transformer *m, const ag_tensor *x) {
  for (int64_t i = 0; i < m->config.num_layers; i++)
    if (x == m->layers[i].o_weight || x == m->layers[i].down_weight) return true;
  return false;
}

static bool is_norm_weight(const ag_transformer *m, const ag_tensor *x) {
  if (x == m->final_norm_weight) return true;
  for (int64_t i = 0; i < m->config.num_layers; i++)
    if (x == m->layers[i].norm1_weight || x == m->layers[i].norm2_weight) return true;
  return false;
}

void ag_transformer_init(ag_transformer *m, uint64_t seed) {
  if (!m || !ag_transformer_trainable(m)) return;
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  float residual_std = INIT_STD / sqrtf(2.0f * (float)m->config.num_layers);
  for (int i = 0; i < m->params->count; i++) {
    ag_tensor *x = m->params->tensors[i];
    if (x->ndim == 1) { /* norm weights 1, biases 0 */
      float v = is_norm_weight(m, x) ? 1.0f : 0.0f;
      for (int64_t j = 0; j < x->numel; j++) x->data[j] = v;
      continue;
    }
    float std = is_residual_projection(m, x) ? residual_std : INIT_STD;
    for (int64_t j = 0; j < x->numel; j++) x->data[j] = std * ag_rng_normal(&rng);
  }
}

const ag_transformer_config *ag_transformer_config_of(const ag_transformer *m) {
  return &m->config;
}
ag_params *ag_transformer_params(ag_transformer *m) { return m->params; }
bool ag_transformer_trainable(const ag_transformer *m) {
  return m && !m->external && m->params->finalized;
}

ag_status ag_transformer_check_weights(const ag_transformer *m) {
  for (int i = 0; i < m->params->count; i++)
    if (!m->params->tensors[i]->data)
      return ag_error_set(AG_ERR_INVALID, "transformer: parameter '%s' has no data",
                          m->params->tensors[i]->name);
  return AG_OK;
}

ag_status ag_transformer_check_vocab(const ag_transformer *m, int64_t tokenizer_vocab_size) {
  if (tokenizer_vocab_size > m->config.vocab_size)
    return ag_error_set(AG_ERR_INVALID,
                        "the tokenizer has %lld ids but the model has only %lld embedding rows "
                        "(vocab_size): ids >= %lld would index past the table; use the "
                        "tokenizer the model was trained with",
                        (long long)tokenizer_vocab_size, (long long)m->config.vocab_size,
                        (long long)m->config.vocab_size);
  return AG_OK;
}

/* ---- forward ----------------------------------------------------------------------- */

static ag_tensor *norm(ag_tape *t, const ag_transformer *m, ag_tensor *x, ag_tensor *weight,
                       ag_tensor *bias) {
  if (m->config.arch == AG_ARCH_GPT2) return ag_layernorm(t, x, weight, bias, m->config.norm_eps);
  return ag_rmsnorm(t, x, weight, m->config.norm_eps);
}

void ag_transformer_set_adapter(ag_transformer *m, ag_transformer_adapter_fn fn, void *ctx) {
  m->adapter = fn;
  m->adapter_ctx = fn ? ctx : NULL;
}

void *ag_transformer_adapter_ctx(const ag_transformer *m) { return m->adapter_ctx; }

/* x (..., in) -> x W[rows]^T + b[rows] (..., rows), then the adapter, if any. */
static ag_tensor *project_rows(ag_tape *t, const ag_transformer *m, ag_tensor *x, ag_tensor *weight,
                               ag_tensor *bias, int64_t begin, int64_t end) {
  ag_tensor *w = weight, *b = bias;
  if (begin != 0 || end != weight->shape[0]) {
    w = ag_slice(t, weight, 0, begin, end);
    b = bias ? ag_slice(t, bias, 0, begin, end) : NULL;
  }
  ag_tensor *y = ag_linear(t, x, w, b);
  if (!y || !m->adapter) return y;
  return m->adapter(t, m->adapter_ctx, weight, begin, end, x, y);
}

static ag_tensor *project(ag_tape *t, const ag_transformer *m, ag_tensor *x, ag_tensor *weight,
                          ag_tensor *bias) {
  return project_rows(t, m, x, weight, bias, 0, weight->shape[0]);
}

static ag_tensor *heads_view(ag_tape *t, ag_tensor *x, int64_t B, int64_t T, int64_t H, int64_t D) {
  return ag_reshape(t, x, 4, (int64_t[]){B, T, H, D}); /* (B, T, H, D) */
}

/* x (B, T, C) -> x + attention(norm(x)). */
static ag_tensor *attention_block(ag_tape *t, ag_transformer *m, int64_t layer, ag_tensor *x,
                                  ag_tensor *rope_table, transformer_kv_fn kv, void *kv_ctx) {
  const ag_transformer_config *c = &m->config;
  const transformer_layer *L = &m->layers[layer];
  int64_t B = x->shape[0], T = x->shape[1], D = c->head_dim;
  int64_t Hq = c->num_heads, Hkv = c->num_kv_heads;
  ag_tensor *h = norm(t, m, x, L->norm1_weight, L->norm1_bias);
  ag_tensor *q, *k, *v;
  if (c->arch == AG_ARCH_GPT2) {
    /* c_attn's rows are [q; k; v]: three row slices are three contiguous
     * (C, C) weights, read in place. */
    int64_t C = c->hidden_size;
    q = project_rows(t, m, h, L->qkv_weight, L->qkv_bias, 0, C);
    k = project_rows(t, m, h, L->qkv_weight, L->qkv_bias, C, 2 * C);
    v = project_rows(t, m, h, L->qkv_weight, L->qkv_bias, 2 * C, 3 * C);
  } else {
    q = project(t, m, h, L->q_weight, L->q_bias);
    k = project(t, m, h, L->k_weight, L->k_bias);
    v = project(t, m, h, L->v_weight, L->v_bias);
  }
  q = heads_view(t, q, B, T, Hq, D);
  k = heads_view(t, k, B, T, Hkv, D);
  v = heads_view(t, v, B, T, Hkv, D);
  if (rope_table) {
    q = ag_rope(t, q, rope_table);
    k = ag_rope(t, k, rope_table);
  }
  if (!q || !k || !v) return NULL;
  ag_tensor *k_all = NULL, *v_all = NULL;
  const ag_attention_spans *spans = NULL;
  if (!kv(t, kv_ctx, layer, k, v, &k_all, &v_all, &spans)) return NULL;
  ag_tensor *a = ag_attention(t, ag_transpose(t, q, 1, 2), k_all, v_all, spans); /* (B,Hq,T,D) */
  a = ag_reshape(t, ag_transpose(t, a, 1, 2), 3, (int64_t[]){B, T, Hq * D});
  return ag_add(t, x, project(t, m, a, L->o_weight, L->o_bias));
}

/* x (B, T, C) -> x + mlp(norm(x)): SwiGLU (llama) or GELU (gpt2). */
static ag_tensor *mlp_block(ag_tape *t, ag_transformer *m, int64_t layer, ag_tensor *x) {
  const transformer_layer *L = &m->layers[layer];
  ag_tensor *h = norm(t, m, x, L->norm2_weight, L->norm2_bias), *inner;
  if (m->config.arch == AG_ARCH_GPT2) {
    inner = ag_gelu(t, project(t, m, h, L->up_weight, L->up_bias));
  } else {
    inner = ag_mul(t, ag_silu(t, project(t, m, h, L->gate_weight, L->gate_bias)),
                   project(t, m, h, L->up_weight, L->up_bias));
  }
  return ag_add(t, x, project(t, m, inner, L->down_weight, L->down_bias));
}

/* Keys and values of this step only: (B, T, H, D) seen as (B, H, T, D). */
static bool kv_from_step(ag_tape *t, void *ctx, int64_t layer, ag_tensor *k, ag_tensor *v,
                         ag_tensor **k_all, ag_tensor **v_all, const ag_attention_spans **spans) {
  *k_all = ag_transpose(t, k, 1, 2);
  *v_all = ag_transpose(t, v, 1, 2);
  *spans = NULL;
  return *k_all && *v_all;
}

/* The rotary table of these tokens: (T, D) shared by the batch, or one row
 * per token when positions are given. */
static ag_tensor *rope_table_for(ag_tape *t, ag_transformer *m, int64_t B, int64_t T,
                                 const int32_t *positions) {
  const ag_transformer_config *c = &m->config;
  int64_t count = positions ? B * T : T;
  int32_t *shared = NULL;
  int32_t max_position = 0;
  if (!positions) {
    shared = ag_arena_alloc(ag_tape_arena(t), (size_t)(T > 0 ? T : 1) * sizeof(int32_t), 64);
    if (!shared) return ag_tape_fail(t, AG_ERR_NOMEM, "transformer: out of memory");
    for (int64_t i = 0; i < T; i++) shared[i] = (int32_t)i;
    positions = shared;
  }
  for (int64_t i = 0; i < count; i++)
    max_position = positions[i] > max_position ? positions[i] : max_position;
  const float *inv_freq = m->inv_freq;
  if (c->rope.scaling == AG_ROPE_DYNAMIC) {
    float *f = ag_arena_alloc(ag_tape_arena(t), (size_t)(c->head_dim / 2) * sizeof(float), 64);
    if (!f || ag_rope_inv_freq(&c->rope, c->head_dim, (int64_t)max_position + 1, f))
      return ag_tape_fail(t, AG_ERR_NOMEM, "transformer: %s", ag_error_message());
    inv_freq = f;
  }
  return ag_rope_table(t, inv_freq, c->head_dim, positions, count);
}

static ag_tensor *embed(ag_tape *t, ag_transformer *m, const int32_t *ids, int64_t B, int64_t T,
                        const int32_t *positions) {
  ag_tensor *x = ag_embedding(t, m->embed, ids, 2, (int64_t[]){B, T}); /* (B, T, C) */
  if (m->config.arch != AG_ARCH_GPT2 || !x) return x;
  if (positions) {
    for (int64_t i = 0; i < B * T; i++)
      if (positions[i] < 0 || positions[i] >= m->config.max_positions)
        return ag_tape_fail(t, AG_ERR_INVALID,
                            "transformer: position %d is beyond the %lld positions gpt2 learned",
                            (int)positions[i], (long long)m->config.max_positions);
    return ag_add(t, x, ag_embedding(t, m->positions, positions, 2, (int64_t[]){B, T}));
  }
  if (T > m->config.max_positions)
    return ag_tape_fail(t, AG_ERR_INVALID,
                        "transformer: %lld tokens are more than the %lld positions gpt2 learned",
                        (long long)T, (long long)m->config.max_positions);
  /* positions 0..T-1: the first T rows of wpe, broadcast over the batch */
  return ag_add(t, x, ag_slice(t, m->positions, 0, 0, T));
}

ag_tensor *ag_transformer_run_blocks(ag_tape *t, ag_transformer *m, const int32_t *ids, int64_t B,
                                     int64_t T, const int32_t *positions, transformer_kv_fn kv,
                                     void *kv_ctx) {
  if (ag_tape_status(t)) return NULL;
  if (!m || B <= 0 || T <= 0 || !ids)
    return ag_tape_fail(t, AG_ERR_INVALID, "transformer: bad input (B %lld, T %lld)", (long long)B,
                        (long long)T);
  if (m->external && ag_transformer_check_weights(m))
    return ag_tape_fail(t, AG_ERR_INVALID, "%s", ag_error_message());
  ag_tensor *x = embed(t, m, ids, B, T, positions);
  ag_tensor *rope_table =
      m->config.arch == AG_ARCH_LLAMA && x ? rope_table_for(t, m, B, T, positions) : NULL;
  for (int64_t i = 0; i < m->config.num_layers && x; i++) {
    x = attention_block(t, m, i, x, rope_table, kv, kv_ctx);
    x = mlp_block(t, m, i, x);
  }
  return norm(t, m, x, m->final_norm_weight, m->final_norm_bias);
}

ag_tensor *ag_transformer_hidden(ag_tape *t, ag_transformer *m, const int32_t *ids, int64_t B,
                                 int64_t T) {
  return ag_transformer_run_blocks(t, m, ids, B, T, NULL, kv_from_step, NULL);
}

ag_tensor *ag_transformer_head(ag_tape *t, ag_transformer *m, ag_tensor *hidden) {
  return ag_linear(t, hidden, m->lm_head, NULL);
}

ag_tensor *ag_transformer_forward(ag_tape *t, ag_transformer *m, const int32_t *ids, int64_t B,
                                  int64_t T) {
  return ag_transformer_head(t, m, ag_transformer_hidden(t, m, ids, B, T));
}

ag_tensor *ag_transformer_loss(ag_tape *t, ag_transformer *m, const int32_t *ids,
                               const int32_t *targets, const float *weights, int64_t B, int64_t T) {
  ag_tensor *logits = ag_transformer_forward(t, m, ids, B, T);
  if (!logits) return NULL;
  logits = ag_reshape(t, logits, 2, (int64_t[]){B * T, m->config.vocab_size});
  return ag_cross_entropy(t, logits, targets, weights, -1, false);
}
