/* GGUF (llama.cpp) files -> ag_transformer: metadata to config, llama.cpp
 * tensor names to Hugging Face ones, every tensor converted to float32 once,
 * and llama's q/k rows put back in the rotate-half order. GPT-2 files map
 * onto agora's GPT-2 (the converter already turned its Conv1D weights into
 * the (out, in) layout agora keeps). */
#include "agora/gguf_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES  128
#define NAME_BYTES 96
/* Llama 3.1's published rope_scaling: llama.cpp stores its per-frequency
 * divisors as rope_freqs.weight, which is checked against these values. */
#define LLAMA3_FACTOR         8.0f
#define LLAMA3_LOW_FREQ       1.0f
#define LLAMA3_HIGH_FREQ      4.0f
#define LLAMA3_ORIGINAL_CTX   8192
#define ROPE_FREQS_TOLERANCE  1e-4f
#define LLAMA_DEFAULT_THETA   10000.0f /* llama.cpp's default rope.freq_base */
#define LLAMA_DEFAULT_RMS_EPS 1e-5f
#define GPT2_DEFAULT_EPS      1e-5f
/* output.weight of a GPT-2 file is the converter's copy of token_embd.weight
 * (agora's GPT-2 ties them): equal up to this share of the largest |value|,
 * which leaves room for each being quantised its own way. */
#define GPT2_TIED_TOLERANCE (1.0f / 64)

/* ---- the q/k row permutation ------------------------------------------------------ */

/* llama.cpp's converter (convert_hf_to_gguf.py, permute) views each head's
 * D rows as (2, D/2) and swaps the two axes: HF row s*D/2 + i of a head
 * becomes GGUF row 2i + s. */
void ag_gguf_unpermute_rows(const float *src, float *dst, int64_t heads, int64_t head_dim,
                            int64_t cols) {
  int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; h++)
    for (int64_t s = 0; s < 2; s++)
      for (int64_t i = 0; i < half; i++)
        memcpy(dst + (h * head_dim + s * half + i) * cols, src + (h * head_dim + 2 * i + s) * cols,
               (size_t)cols * sizeof(float));
}

void ag_gguf_permute_rows(const float *src, float *dst, int64_t heads, int64_t head_dim,
                          int64_t cols) {
  int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; h++)
    for (int64_t s = 0; s < 2; s++)
      for (int64_t i = 0; i < half; i++)
        memcpy(dst + (h * head_dim + 2 * i + s) * cols, src + (h * head_dim + s * half + i) * cols,
               (size_t)cols * sizeof(float));
}

/* ---- metadata -> config ----------------------------------------------------------- */

typedef enum arch_kind { ARCH_LLAMA = 0, ARCH_QWEN2 = 1, ARCH_GPT2 = 2 } arch_kind;

typedef struct meta_reader {
  const ag_gguf *f;
  char arch[32];
} meta_reader;

static const char *key_of(const meta_reader *r, const char *suffix, char *buf) {
  snprintf(buf, KEY_BYTES, "%s.%s", r->arch, suffix);
  return buf;
}

/* A required integer {arch}.suffix. */
static ag_status meta_int(const meta_reader *r, const char *suffix, int64_t *out) {
  char key[KEY_BYTES];
  ag_status st = ag_gguf_get_i64(r->f, key_of(r, suffix, key), out);
  if (st) return ag_error_wrap(st, "%s: model metadata", r->f->path);
  return AG_OK;
}

/* An optional integer: fallback when absent. */
static ag_status meta_int_or(const meta_reader *r, const char *suffix, int64_t fallback,
                             int64_t *out) {
  char key[KEY_BYTES];
  if (!ag_gguf_find(r->f, key_of(r, suffix, key))) {
    *out = fallback;
    return AG_OK;
  }
  return meta_int(r, suffix, out);
}

static ag_status meta_float_or(const meta_reader *r, const char *suffix, float fallback,
                               float *out) {
  char key[KEY_BYTES];
  if (!ag_gguf_find(r->f, key_of(r, suffix, key))) {
    *out = fallback;
    return AG_OK;
  }
  ag_status st = ag_gguf_get_f32(r->f, key, out);
  if (st) return ag_error_wrap(st, "%s: model metadata", r->f->path);
  return AG_OK;
}

static ag_status read_arch(const ag_gguf *f, meta_reader *r, arch_kind *kind) {
  r->f = f;
  ag_gguf_string s;
  ag_status st = ag_gguf_get_string(f, "general.architecture", &s);
  if (st) return ag_error_wrap(st, "%s: not a model file", f->path);
  if (s.length >= sizeof r->arch) s.length = sizeof r->arch - 1;
  memcpy(r->arch, s.data, s.length);
  r->arch[s.length] = '\0';
  if (!strcmp(r->arch, "llama")) {
    *kind = ARCH_LLAMA;
  } else if (!strcmp(r->arch, "qwen2")) {
    *kind = ARCH_QWEN2;
  } else if (!strcmp(r->arch, "gpt2")) {
    *kind = ARCH_GPT2;
  } else {
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: general.architecture \"%s\" is not supported (supported: llama, "
                        "qwen2, gpt2)",
                        f->path, r->arch);
  }
  return AG_OK;
}

/* The rows of a 2-d tensor, or an error naming it. */
static ag_status tensor_rows(const ag_gguf *f, const char *name, int64_t cols, int64_t *rows) {
  const ag_gguf_tensor *t;
  ag_status st = ag_gguf_get_tensor(f, name, &t);
  if (st) return st;
  if (t->ndim != 2 || t->shape[1] != cols)
    return ag_error_set(AG_ERR_FORMAT,
                        "%s: tensor %s has %d dims (%lld columns); expected 2 "
                        "dims of %lld columns",
                        f->path, name, t->ndim, (long long)(t->ndim ? t->shape[t->ndim - 1] : 0),
                        (long long)cols);
  *rows = t->shape[0];
  return AG_OK;
}

/* rope.scaling.* keys, or Llama 3.1's rope_freqs.weight. */
static ag_status read_rope_scaling(const meta_reader *r, ag_transformer_config *c) {
  char key[KEY_BYTES];
  const ag_gguf *f = r->f;
  ag_gguf_string type = {"none", 4};
  if (ag_gguf_find(f, key_of(r, "rope.scaling.type", key))) {
    ag_status st = ag_gguf_get_string(f, key, &type);
    if (st) return ag_error_wrap(st, "%s", f->path);
  } else if (ag_gguf_find(f, key_of(r, "rope.scale_linear", key))) {
    type = (ag_gguf_string){"linear", 6}; /* older files */
  }
  if (type.length == 6 && !memcmp(type.data, "linear", 6)) {
    float factor = 1.0f;
    ag_status st = meta_float_or(r, "rope.scaling.factor", 0.0f, &factor);
    if (!st && factor == 0.0f) st = meta_float_or(r, "rope.scale_linear", 1.0f, &factor);
    if (st) return st;
    if (factor != 1.0f) {
      c->rope.scaling = AG_ROPE_LINEAR;
      c->rope.factor = factor;
    }
  } else if (!(type.length == 4 && !memcmp(type.data, "none", 4))) {
    return ag_error_set(AG_ERR_UNSUPPORTED, "%s: %s \"%.*s\" is not supported (none, linear)",
                        f->path, key_of(r, "rope.scaling.type", key), (int)type.length, type.data);
  }
  const ag_gguf_tensor *freqs = ag_gguf_find_tensor(f, "rope_freqs.weight");
  if (!freqs) return AG_OK;
  /* llama.cpp divides each frequency by rope_freqs[i]: accept the file when
   * those divisors are Llama 3.1's rope_scaling, the only published source. */
  int64_t half = c->head_dim / 2;
  if (freqs->numel != half)
    return ag_error_set(AG_ERR_FORMAT, "%s: rope_freqs.weight has %lld values; expected %lld",
                        f->path, (long long)freqs->numel, (long long)half);
  float *divisors = malloc((size_t)half * sizeof(float) * 3);
  if (!divisors) return ag_error_set(AG_ERR_NOMEM, "%s: out of memory", f->path);
  float *plain = divisors + half, *scaled = plain + half;
  ag_status st = ag_gguf_read_f32(f, freqs, divisors);
  ag_rope_config base = {.theta = c->rope.theta};
  ag_rope_config llama3 = {.theta = c->rope.theta,
                           .scaling = AG_ROPE_LLAMA3,
                           .factor = LLAMA3_FACTOR,
                           .low_freq_factor = LLAMA3_LOW_FREQ,
                           .high_freq_factor = LLAMA3_HIGH_FREQ,
                           .original_max_positions = LLAMA3_ORIGINAL_CTX};
  if (!st) st = ag_rope_inv_freq(&base, c->head_dim, 1, plain);
  if (!st) st = ag_rope_inv_freq(&llama3, c->head_dim, 1, scaled);
  bool matches = !st;
  for (int64_t i = 0; matches && i < half; i++)
    matches = fabsf(plain[i] / divisors[i] - scaled[i]) <= ROPE_FREQS_TOLERANCE * scaled[i];
  free(divisors);
  if (st) return ag_error_wrap(st, "%s: rope_freqs.weight", f->path);
  if (!matches)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: rope_freqs.weight is not Llama 3.1's rope scaling (factor 8, "
                        "low/high frequency factors 1 and 4, original context 8192); other "
                        "frequency tables are not supported",
                        f->path);
  c->rope = llama3;
  return AG_OK;
}

/* GPT-2 (llama.cpp's LLM_ARCH_GPT2): LayerNorm with biases, learned
 * positions (position_embd.weight, context_length rows), fused attn_qkv,
 * GELU MLP, no rotary embeddings and no grouped-query attention. */
static ag_status gpt2_config(const meta_reader *r, ag_transformer_config *c) {
  const ag_gguf *f = r->f;
  int64_t C = 0, I = 0, L = 0, H = 0, Hkv = 0, ctx = 0, V = 0, positions = 0;
  float eps = GPT2_DEFAULT_EPS;
  ag_status st = meta_int(r, "embedding_length", &C);
  if (!st) st = meta_int(r, "block_count", &L);
  if (!st) st = meta_int_or(r, "feed_forward_length", 4 * C, &I);
  if (!st) st = meta_int(r, "attention.head_count", &H);
  if (!st) st = meta_int_or(r, "attention.head_count_kv", H, &Hkv);
  if (!st) st = meta_int(r, "context_length", &ctx);
  if (!st) st = meta_float_or(r, "attention.layer_norm_epsilon", eps, &eps);
  if (!st) st = tensor_rows(f, "token_embd.weight", C, &V);
  if (!st) st = tensor_rows(f, "position_embd.weight", C, &positions);
  if (st) return st;
  if (Hkv != H)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: gpt2.attention.head_count_kv %lld differs from head_count %lld "
                        "(GPT-2 has no grouped-query attention)",
                        f->path, (long long)Hkv, (long long)H);
  if (positions != ctx)
    return ag_error_set(AG_ERR_FORMAT,
                        "%s: position_embd.weight has %lld rows; gpt2.context_length is %lld",
                        f->path, (long long)positions, (long long)ctx);
  *c = ag_transformer_gpt2_config(V, C, L, H, ctx);
  c->intermediate_size = I;
  c->norm_eps = eps;
  st = ag_transformer_config_check(c);
  return st ? ag_error_wrap(st, "%s", f->path) : AG_OK;
}

ag_status ag_gguf_model_config(const ag_gguf *f, ag_transformer_config *c) {
  meta_reader r;
  arch_kind kind;
  ag_status st = read_arch(f, &r, &kind);
  if (st) return st;
  if (kind == ARCH_GPT2) return gpt2_config(&r, c);
  int64_t C = 0, I = 0, L = 0, H = 0, Hkv = 0, D = 0, ctx = 0, rope_dims = 0, V = 0;
  float eps = LLAMA_DEFAULT_RMS_EPS, theta = LLAMA_DEFAULT_THETA;
  if (!st) st = meta_int(&r, "embedding_length", &C);
  if (!st) st = meta_int(&r, "block_count", &L);
  if (!st) st = meta_int(&r, "feed_forward_length", &I);
  if (!st) st = meta_int(&r, "attention.head_count", &H);
  if (!st) st = meta_int_or(&r, "attention.head_count_kv", H, &Hkv);
  if (!st && H <= 0)
    st = ag_error_set(AG_ERR_FORMAT, "%s: %s.attention.head_count is %lld", f->path, r.arch,
                      (long long)H);
  if (!st) st = meta_int_or(&r, "attention.key_length", H > 0 ? C / H : 0, &D);
  if (!st) st = meta_int(&r, "context_length", &ctx);
  if (!st) st = meta_int_or(&r, "rope.dimension_count", D, &rope_dims);
  if (!st) st = meta_float_or(&r, "attention.layer_norm_rms_epsilon", eps, &eps);
  if (!st) st = meta_float_or(&r, "rope.freq_base", theta, &theta);
  if (!st) st = tensor_rows(f, "token_embd.weight", C, &V);
  if (st) return st;
  if (rope_dims != D)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: %s.rope.dimension_count %lld differs from the head size %lld "
                        "(partial rotary embeddings are not supported)",
                        f->path, r.arch, (long long)rope_dims, (long long)D);
  *c = (ag_transformer_config){.arch = AG_ARCH_LLAMA,
                               .vocab_size = V,
                               .hidden_size = C,
                               .intermediate_size = I,
                               .num_layers = L,
                               .num_heads = H,
                               .num_kv_heads = Hkv,
                               .head_dim = D,
                               .max_positions = ctx,
                               .norm_eps = eps,
                               .rope = {.theta = theta},
                               .tie_embeddings = !ag_gguf_find_tensor(f, "output.weight"),
                               .qkv_bias = ag_gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL,
                               .o_bias = ag_gguf_find_tensor(f, "blk.0.attn_output.bias") != NULL,
                               .mlp_bias = ag_gguf_find_tensor(f, "blk.0.ffn_up.bias") != NULL};
  st = ag_transformer_config_check(c);
  if (!st) st = read_rope_scaling(&r, c);
  if (st) return ag_error_wrap(st, "%s", f->path);
  return AG_OK;
}

/* ---- weights ------------------------------------------------------------------------ */

/* The GGUF name of one of agora's GPT-2 parameter names (those of
 * transformer.c); false when unknown. */
static bool gpt2_name_of(const char *hf, char *out) {
  static const struct {
    const char *hf, *gguf;
  } global_names[] = {{"transformer.wte.weight", "token_embd.weight"},
                      {"transformer.wpe.weight", "position_embd.weight"},
                      {"transformer.ln_f.weight", "output_norm.weight"},
                      {"transformer.ln_f.bias", "output_norm.bias"}},
    layer_names[] = {
        {"ln_1.weight", "attn_norm.weight"},          {"ln_1.bias", "attn_norm.bias"},
        {"attn.c_attn.weight", "attn_qkv.weight"},    {"attn.c_attn.bias", "attn_qkv.bias"},
        {"attn.c_proj.weight", "attn_output.weight"}, {"attn.c_proj.bias", "attn_output.bias"},
        {"ln_2.weight", "ffn_norm.weight"},           {"ln_2.bias", "ffn_norm.bias"},
        {"mlp.c_fc.weight", "ffn_up.weight"},         {"mlp.c_fc.bias", "ffn_up.bias"},
        {"mlp.c_proj.weight", "ffn_down.weight"},     {"mlp.c_proj.bias", "ffn_down.bias"}};
  for (size_t i = 0; i < sizeof global_names / sizeof global_names[0]; i++)
    if (!strcmp(hf, global_names[i].hf))
      return snprintf(out, NAME_BYTES, "%s", global_names[i].gguf) > 0;
  long layer;
  int used = 0;
  if (sscanf(hf, "transformer.h.%ld.%n", &layer, &used) != 1 || used == 0) return false;
  for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++)
    if (!strcmp(hf + used, layer_names[i].hf)) {
      snprintf(out, NAME_BYTES, "blk.%ld.%s", layer, layer_names[i].gguf);
      return true;
    }
  return false;
}

/* The GGUF name of a Hugging Face parameter name; false when unknown. */
static bool gguf_name_of(const char *hf, char *out) {
  static const struct {
    const char *hf, *gguf;
  } layer_names[] = {{"input_layernorm.weight", "attn_norm.weight"},
                     {"self_attn.q_proj.weight", "attn_q.weight"},
                     {"self_attn.q_proj.bias", "attn_q.bias"},
                     {"self_attn.k_proj.weight", "attn_k.weight"},
                     {"self_attn.k_proj.bias", "attn_k.bias"},
                     {"self_attn.v_proj.weight", "attn_v.weight"},
                     {"self_attn.v_proj.bias", "attn_v.bias"},
                     {"self_attn.o_proj.weight", "attn_output.weight"},
                     {"self_attn.o_proj.bias", "attn_output.bias"},
                     {"post_attention_layernorm.weight", "ffn_norm.weight"},
                     {"mlp.gate_proj.weight", "ffn_gate.weight"},
                     {"mlp.gate_proj.bias", "ffn_gate.bias"},
                     {"mlp.up_proj.weight", "ffn_up.weight"},
                     {"mlp.up_proj.bias", "ffn_up.bias"},
                     {"mlp.down_proj.weight", "ffn_down.weight"},
                     {"mlp.down_proj.bias", "ffn_down.bias"}};
  if (!strcmp(hf, "model.embed_tokens.weight"))
    return snprintf(out, NAME_BYTES, "token_embd.weight") > 0;
  if (!strcmp(hf, "model.norm.weight")) return snprintf(out, NAME_BYTES, "output_norm.weight") > 0;
  if (!strcmp(hf, "lm_head.weight")) return snprintf(out, NAME_BYTES, "output.weight") > 0;
  long layer;
  int used = 0;
  if (sscanf(hf, "model.layers.%ld.%n", &layer, &used) != 1 || used == 0) return false;
  for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++)
    if (!strcmp(hf + used, layer_names[i].hf)) {
      snprintf(out, NAME_BYTES, "blk.%ld.%s", layer, layer_names[i].gguf);
      return true;
    }
  return false;
}

/* Heads of a q or k projection (weight or bias) whose rows llama.cpp
 * permuted; 0 for every other parameter. */
static int64_t permuted_heads(const ag_transformer_config *c, arch_kind kind, const char *hf) {
  if (kind != ARCH_LLAMA) return 0;
  if (strstr(hf, ".self_attn.q_proj.")) return c->num_heads;
  if (strstr(hf, ".self_attn.k_proj.")) return c->num_kv_heads;
  return 0;
}

/* Converts one GGUF tensor into the parameter t (data already set). */
static ag_status read_parameter(const ag_gguf *f, const ag_transformer_config *c, arch_kind kind,
                                ag_tensor *t) {
  char name[NAME_BYTES];
  if (!(kind == ARCH_GPT2 ? gpt2_name_of(t->name, name) : gguf_name_of(t->name, name)))
    return ag_error_set(AG_ERR_INTERNAL, "%s: no GGUF name for parameter %s", f->path, t->name);
  const ag_gguf_tensor *g;
  ag_status st = ag_gguf_get_tensor(f, name, &g);
  if (st) return st;
  bool same_shape = g->ndim == t->ndim;
  for (int d = 0; same_shape && d < t->ndim; d++) same_shape = g->shape[d] == t->shape[d];
  if (!same_shape) {
    char want[64];
    ag_shape_string(t, want, sizeof want);
    return ag_error_set(AG_ERR_FORMAT, "%s: tensor %s has %d dims (%lld, ...); %s needs %s",
                        f->path, name, g->ndim, (long long)(g->ndim ? g->shape[0] : 0), t->name,
                        want);
  }
  int64_t heads = permuted_heads(c, kind, t->name);
  if (!heads) {
    st = ag_gguf_read_f32(f, g, t->data);
    return st ? ag_error_wrap(st, "%s", f->path) : AG_OK;
  }
  float *raw = malloc((size_t)t->numel * sizeof(float));
  if (!raw) return ag_error_set(AG_ERR_NOMEM, "%s: out of memory reading %s", f->path, name);
  st = ag_gguf_read_f32(f, g, raw);
  if (!st) ag_gguf_unpermute_rows(raw, t->data, heads, c->head_dim, t->ndim == 2 ? t->shape[1] : 1);
  free(raw);
  return st ? ag_error_wrap(st, "%s", f->path) : AG_OK;
}

/* agora's GPT-2 reads its LM head from the token embeddings: a GPT-2 file's
 * output.weight (which llama.cpp requires, and its converter writes as a
 * copy of token_embd.weight) must hold the same values. */
static ag_status check_gpt2_head(const ag_gguf *f, const ag_tensor *embed) {
  const ag_gguf_tensor *out = ag_gguf_find_tensor(f, "output.weight");
  const ag_gguf_tensor *tok = ag_gguf_find_tensor(f, "token_embd.weight");
  if (!out) return AG_OK;
  if (!embed || !tok) return ag_error_set(AG_ERR_INTERNAL, "%s: no token embeddings", f->path);
  if (out->ndim != 2 || out->shape[0] != embed->shape[0] || out->shape[1] != embed->shape[1])
    return ag_error_set(AG_ERR_FORMAT,
                        "%s: output.weight is not the shape of token_embd.weight (%lld, %lld)",
                        f->path, (long long)embed->shape[0], (long long)embed->shape[1]);
  if (out->type == tok->type && out->bytes == tok->bytes &&
      !memcmp(out->data, tok->data, out->bytes))
    return AG_OK;
  float *head = malloc((size_t)embed->numel * sizeof(float));
  if (!head) return ag_error_set(AG_ERR_NOMEM, "%s: out of memory reading output.weight", f->path);
  ag_status st = ag_gguf_read_f32(f, out, head);
  float largest = 0, worst = 0;
  for (int64_t i = 0; !st && i < embed->numel; i++) {
    largest = fmaxf(largest, fabsf(embed->data[i]));
    worst = fmaxf(worst, fabsf(head[i] - embed->data[i]));
  }
  free(head);
  if (st) return ag_error_wrap(st, "%s", f->path);
  if (!(worst <= GPT2_TIED_TOLERANCE * largest))
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: output.weight differs from token_embd.weight (by up to %g); agora's "
                        "GPT-2 ties its LM head to the token embeddings",
                        f->path, (double)worst);
  return AG_OK;
}

ag_status ag_gguf_model_load_file(const ag_gguf *f, bool trainable, ag_transformer **model) {
  if (!model) return ag_error_set(AG_ERR_INVALID, "gguf model: NULL output");
  *model = NULL;
  ag_transformer_config c;
  ag_status st = ag_gguf_model_config(f, &c);
  if (st) return st;
  meta_reader r;
  arch_kind kind;
  read_arch(f, &r, &kind); /* checked by ag_gguf_model_config */
  ag_transformer *m = NULL;
  float *block = NULL;
  if (trainable) {
    st = ag_transformer_create(&c, &m);
  } else {
    /* One block holds every tensor, each at a 64-byte boundary. */
    int64_t floats = 0;
    ag_transformer *probe = NULL;
    st = ag_transformer_create_external(&c, NULL, NULL, &probe);
    if (!st) {
      ag_params *p = ag_transformer_params(probe);
      for (int i = 0; i < p->count; i++) floats += (p->tensors[i]->numel + 15) / 16 * 16;
      ag_transformer_destroy(probe);
      block = ag_alloc_large((size_t)(floats > 0 ? floats : 16) * sizeof(float));
      if (!block)
        st = ag_error_set(AG_ERR_NOMEM, "%s: cannot allocate %lld MiB for the weights", f->path,
                          (long long)(floats * 4 >> 20));
    }
    if (!st) st = ag_transformer_create_external(&c, block, free, &m);
    if (st) free(block);
    if (!st) {
      ag_params *p = ag_transformer_params(m);
      int64_t offset = 0;
      for (int i = 0; i < p->count; i++) {
        p->tensors[i]->data = block + offset;
        offset += (p->tensors[i]->numel + 15) / 16 * 16;
      }
    }
  }
  if (st) return st;
  ag_params *p = ag_transformer_params(m);
  for (int i = 0; !st && i < p->count; i++) st = read_parameter(f, &c, kind, p->tensors[i]);
  if (!st && kind == ARCH_GPT2)
    st = check_gpt2_head(f, ag_params_find(p, "transformer.wte.weight"));
  if (st) {
    ag_transformer_destroy(m);
    return st;
  }
  *model = m;
  return AG_OK;
}

ag_status ag_gguf_model_load(const char *path, bool trainable, ag_transformer **model) {
  if (model) *model = NULL;
  ag_gguf *f = NULL;
  ag_status st = ag_gguf_open(path, &f);
  if (st) return st;
  st = ag_gguf_model_load_file(f, trainable, model);
  ag_gguf_close(f);
  return st;
}
