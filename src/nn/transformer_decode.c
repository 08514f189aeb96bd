/* Incremental decoding: a KV cache for a batch of sequences of different
 * lengths, and a forward step that appends tokens to it without recording
 * anything. Weights are read where they are (ag_linear on the parameter
 * memory); scratch comes from the cache's own tape arena, reset each step.
 * A step of one token per sequence goes through decode_fast.c instead of
 * the tape's ops, unless ag_decode_fast_refusal says why not. */
#include "nn/transformer_internal.h"

#include <stdlib.h>
#include <string.h>

struct ag_kv_cache {
  const ag_transformer *model;
  int64_t batch, capacity, layers, kv_heads, head_dim;
  float *keys, *values; /* (layers, batch, kv_heads, capacity, head_dim) */
  int64_t *length;      /* (batch) tokens kept per sequence */
  ag_tape *tape;        /* scratch only: grad disabled */
  /* per step (arena) */
  const int32_t *counts;
  ag_attention_spans spans;
};

ag_status ag_kv_cache_create(const ag_transformer *m, int64_t batch, int64_t capacity,
                             ag_kv_cache **out) {
  *out = NULL;
  if (!m || batch <= 0 || capacity <= 0 || capacity > INT32_MAX)
    return ag_error_set(AG_ERR_INVALID, "kv cache: batch %lld and capacity %lld must be positive",
                        (long long)batch, (long long)capacity);
  const ag_transformer_config *c = &m->config;
  ag_kv_cache *kv = calloc(1, sizeof *kv);
  if (!kv) return ag_error_set(AG_ERR_NOMEM, "kv cache: out of memory");
  kv->model = m;
  kv->batch = batch;
  kv->capacity = capacity;
  kv->layers = c->num_layers;
  kv->kv_heads = c->num_kv_heads;
  kv->head_dim = c->head_dim;
  size_t floats = (size_t)(kv->layers * batch * kv->kv_heads * capacity * kv->head_dim);
  kv->keys = ag_alloc_large(floats * sizeof(float));
  kv->values = ag_alloc_large(floats * sizeof(float));
  kv->length = calloc((size_t)batch, sizeof *kv->length);
  kv->tape = ag_tape_create();
  if (!kv->keys || !kv->values || !kv->length || !kv->tape) {
    ag_kv_cache_destroy(kv);
    return ag_error_set(AG_ERR_NOMEM, "kv cache: cannot allocate %zu MiB for %lld x %lld tokens",
                        2 * floats * sizeof(float) >> 20, (long long)batch, (long long)capacity);
  }
  ag_tape_set_grad_enabled(kv->tape, false);
  ag_tape_set_training(kv->tape, false);
  *out = kv;
  return AG_OK;
}

void ag_kv_cache_destroy(ag_kv_cache *c) {
  if (!c) return;
  free(c->keys);
  free(c->values);
  free(c->length);
  ag_tape_destroy(c->tape);
  free(c);
}

void ag_kv_cache_clear(ag_kv_cache *c, int64_t b) {
  if (b < 0) {
    memset(c->length, 0, (size_t)c->batch * sizeof *c->length);
  } else if (b < c->batch) {
    c->length[b] = 0;
  }
}

int64_t ag_kv_cache_length(const ag_kv_cache *c, int64_t b) {
  return b >= 0 && b < c->batch ? c->length[b] : 0;
}
int64_t ag_kv_cache_batch(const ag_kv_cache *c) { return c->batch; }
int64_t ag_kv_cache_capacity(const ag_kv_cache *c) { return c->capacity; }

/* Layer l's keys (or values) of sequence b, head h, from position p. */
static float *cache_at(const ag_kv_cache *c, float *base, int64_t l, int64_t b, int64_t h,
                       int64_t p) {
  return base + (((l * c->batch + b) * c->kv_heads + h) * c->capacity + p) * c->head_dim;
}

/* A (B, Hkv, S, D) view of layer l's cache, as attention reads it. */
static ag_tensor *cache_view(ag_kv_cache *c, float *base, int64_t l, int64_t S) {
  ag_tensor *x = ag_tape_wrap(c->tape, cache_at(c, base, l, 0, 0, 0), 4,
                              (int64_t[]){c->batch, c->kv_heads, S, c->head_dim});
  if (!x) return NULL;
  x->stride[0] = c->kv_heads * c->capacity * c->head_dim;
  x->stride[1] = c->capacity * c->head_dim;
  x->stride[2] = c->head_dim;
  x->stride[3] = 1;
  return x;
}

/* Appends the kept rows of this step's keys and values (B, T, Hkv, D) and
 * returns views of everything cached so far. */
static bool kv_from_cache(ag_tape *t, void *ctx, int64_t layer, ag_tensor *k, ag_tensor *v,
                          ag_tensor **k_all, ag_tensor **v_all, const ag_attention_spans **spans) {
  ag_kv_cache *c = ctx;
  k = ag_contiguous(t, k); /* (B, T, Hkv, D); already contiguous in practice */
  v = ag_contiguous(t, v);
  if (!k || !v) return false;
  int64_t T = k->shape[1], H = c->kv_heads, D = c->head_dim, S = 0;
  for (int64_t b = 0; b < c->batch; b++) {
    for (int64_t i = 0; i < c->counts[b]; i++)
      for (int64_t h = 0; h < H; h++) {
        int64_t src = ((b * T + i) * H + h) * D;
        memcpy(cache_at(c, c->keys, layer, b, h, c->length[b] + i), k->data + src,
               (size_t)D * sizeof(float));
        memcpy(cache_at(c, c->values, layer, b, h, c->length[b] + i), v->data + src,
               (size_t)D * sizeof(float));
      }
    int64_t end = c->length[b] + c->counts[b];
    S = end > S ? end : S;
  }
  *k_all = cache_view(c, c->keys, layer, S);
  *v_all = cache_view(c, c->values, layer, S);
  *spans = &c->spans;
  return *k_all && *v_all;
}

/* Checks the step fits and fills counts, positions and spans (arena). */
static ag_status prepare_step(ag_kv_cache *c, const int32_t *tokens, int64_t T,
                              const int32_t *counts, int32_t **positions) {
  const ag_transformer_config *cfg = &c->model->config;
  int64_t B = c->batch;
  ag_arena *arena = ag_tape_arena(c->tape);
  int32_t *n = ag_arena_alloc(arena, (size_t)B * sizeof(int32_t), 64);
  int32_t *spans = ag_arena_alloc(arena, (size_t)(3 * B) * sizeof(int32_t), 64);
  int32_t *pos = ag_arena_alloc(arena, (size_t)(B * T) * sizeof(int32_t), 64);
  if (!n || !spans || !pos) return ag_error_set(AG_ERR_NOMEM, "decode: out of memory");
  for (int64_t b = 0; b < B; b++) {
    n[b] = counts ? counts[b] : (int32_t)T;
    if (n[b] < 0 || n[b] > T)
      return ag_error_set(AG_ERR_INVALID, "decode: counts[%lld] = %d is outside [0, T = %lld]",
                          (long long)b, (int)n[b], (long long)T);
    int64_t end = c->length[b] + n[b];
    if (end > c->capacity)
      return ag_error_set(AG_ERR_INVALID,
                          "decode: sequence %lld would hold %lld tokens, more than the cache's "
                          "capacity %lld",
                          (long long)b, (long long)end, (long long)c->capacity);
    if (cfg->arch == AG_ARCH_GPT2 && end > cfg->max_positions)
      return ag_error_set(AG_ERR_INVALID,
                          "decode: sequence %lld would reach position %lld; gpt2 learned %lld",
                          (long long)b, (long long)end - 1, (long long)cfg->max_positions);
    for (int64_t i = 0; i < T; i++) {
      int32_t id = tokens[b * T + i];
      if (i < n[b] && (id < 0 || id >= cfg->vocab_size))
        return ag_error_set(AG_ERR_INVALID,
                            "decode: token %d of sequence %lld is outside the vocabulary [0, %lld)",
                            (int)id, (long long)b, (long long)cfg->vocab_size);
      /* padding rows sit at the last kept position: any valid position will do */
      int64_t p = c->length[b] + (i < n[b] ? i : (n[b] > 0 ? n[b] - 1 : 0));
      pos[b * T + i] =
          (int32_t)(cfg->arch == AG_ARCH_GPT2 && p >= cfg->max_positions ? cfg->max_positions - 1
                                                                         : p);
    }
    spans[b] = (int32_t)c->length[b]; /* query_start */
    spans[B + b] = 0;                 /* key_start */
    spans[2 * B + b] = (int32_t)end;  /* key_end */
  }
  c->counts = n;
  c->spans = (ag_attention_spans){spans, spans + B, spans + 2 * B};
  *positions = pos;
  return AG_OK;
}

/* Padding ids become 0 so the embedding never reads outside its table. */
static const int32_t *safe_tokens(ag_kv_cache *c, const int32_t *tokens, int64_t T) {
  int32_t *ids =
      ag_arena_alloc(ag_tape_arena(c->tape), (size_t)(c->batch * T) * sizeof(int32_t), 64);
  if (!ids) return NULL;
  for (int64_t b = 0; b < c->batch; b++)
    for (int64_t i = 0; i < T; i++) ids[b * T + i] = i < c->counts[b] ? tokens[b * T + i] : 0;
  return ids;
}

ag_status ag_transformer_decode(ag_transformer *m, ag_kv_cache *c, const int32_t *tokens, int64_t T,
                                const int32_t *counts, ag_logits_rows rows, const float **logits) {
  *logits = NULL;
  if (!m || !c || !tokens || T <= 0)
    return ag_error_set(AG_ERR_INVALID, "decode: bad arguments (T = %lld)", (long long)T);
  if (c->model != m)
    return ag_error_set(AG_ERR_INVALID, "decode: the cache belongs to another model");
  ag_tape *t = c->tape;
  ag_tape_reset(t);
  int32_t *positions = NULL;
  ag_status st = prepare_step(c, tokens, T, counts, &positions);
  if (st) return st;
  if (!ag_decode_fast_refusal(m, c->batch, T, c->counts, rows)) {
    /* one new token per sequence: the tape-free path (decode_fast.c) */
    decode_fast_step step = {.batch = c->batch,
                             .capacity = c->capacity,
                             .keys = c->keys,
                             .values = c->values,
                             .length = c->length,
                             .tokens = tokens,
                             .counts = c->counts,
                             .positions = positions,
                             .arena = ag_tape_arena(t)};
    st = ag_decode_fast(m, &step, logits);
    if (st) return st;
    for (int64_t b = 0; b < c->batch; b++) c->length[b] += c->counts[b];
    return AG_OK;
  }
  const int32_t *ids = safe_tokens(c, tokens, T);
  if (!ids) return ag_error_set(AG_ERR_NOMEM, "decode: out of memory");
  int64_t B = c->batch, C = m->config.hidden_size, V = m->config.vocab_size;
  ag_tensor *hidden = ag_transformer_run_blocks(t, m, ids, B, T, positions, kv_from_cache, c);
  if (hidden && rows == AG_LOGITS_LAST) {
    /* Only each sequence's last kept row goes through the LM head. */
    ag_tensor *last = ag_tape_zeros(t, 2, (int64_t[]){B, C});
    for (int64_t b = 0; last && b < B; b++)
      if (c->counts[b] > 0)
        memcpy(last->data + b * C, hidden->data + (b * T + c->counts[b] - 1) * C,
               (size_t)C * sizeof(float));
    hidden = last;
  }
  ag_tensor *out = hidden ? ag_transformer_head(t, m, hidden) : NULL;
  if (!out)
    return ag_error_set(ag_tape_status(t) ? ag_tape_status(t) : AG_ERR_INTERNAL, "decode: %s",
                        ag_tape_error(t));
  if (rows == AG_LOGITS_LAST)
    for (int64_t b = 0; b < B; b++)
      if (c->counts[b] == 0) memset(out->data + b * V, 0, (size_t)V * sizeof(float));
  for (int64_t b = 0; b < B; b++) c->length[b] += c->counts[b];
  *logits = out->data;
  return AG_OK;
}
