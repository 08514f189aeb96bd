/* agora transformer: a decoder-only language model in two families.
 *
 *   llama  Llama 2/3, Mistral, Qwen2/2.5, SmolLM, TinyLlama: RMSNorm, rotary
 *          embeddings (rope_theta, rope_scaling), SwiGLU MLP, grouped-query
 *          attention, optional q/k/v (Qwen2), o and MLP biases, tied or
 *          separate LM head.
 *   gpt2   GPT-2: LayerNorm, learned positions, GELU (tanh), biases
 *          everywhere, LM head tied to the token embeddings.
 *
 * Parameters live in one ag_params store under their Hugging Face names
 * (model.layers.0.self_attn.q_proj.weight, transformer.h.0.attn.c_attn.weight,
 * ...), every weight in the (out, in) layout ag_linear takes. GPT-2's Conv1D
 * weights are stored (in, out) in its files: agora/hf_model.h transposes them
 * when loading and saving. Every projection goes through ag_linear, so layer
 * hooks (influence functions, per-example gradients) see them all.
 *
 * Training runs the forward pass on a tape; generation appends tokens to a
 * KV cache without recording anything (src/nn/transformer_decode.c). */
#ifndef AGORA_TRANSFORMER_H
#define AGORA_TRANSFORMER_H

#include "agora/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ag_transformer_arch { AG_ARCH_LLAMA = 0, AG_ARCH_GPT2 = 1 } ag_transformer_arch;

typedef struct ag_transformer_config {
  ag_transformer_arch arch;
  int64_t vocab_size;        /* embedding rows */
  int64_t hidden_size;       /* C */
  int64_t intermediate_size; /* MLP width */
  int64_t num_layers;
  int64_t num_heads;     /* query heads */
  int64_t num_kv_heads;  /* key/value heads (= num_heads without GQA; GPT-2 always) */
  int64_t head_dim;      /* usually hidden_size / num_heads */
  int64_t max_positions; /* max_position_embeddings (GPT-2: the rows of wpe) */
  float norm_eps;        /* rms_norm_eps / layer_norm_epsilon */
  ag_rope_config rope;   /* llama only */
  bool tie_embeddings;   /* LM head = token embeddings (GPT-2 always) */
  bool qkv_bias;         /* llama: q/k/v projections have biases (Qwen2) */
  bool o_bias;           /* llama: o_proj has a bias (Llama's attention_bias) */
  bool mlp_bias;         /* llama: gate/up/down have biases (Llama's mlp_bias) */
} ag_transformer_config;

/* Configurations for models trained from scratch, head_dim = hidden / heads. */
ag_transformer_config ag_transformer_llama_config(int64_t vocab_size, int64_t hidden_size,
                                                  int64_t num_layers, int64_t num_heads,
                                                  int64_t num_kv_heads, int64_t max_positions);
ag_transformer_config ag_transformer_gpt2_config(int64_t vocab_size, int64_t hidden_size,
                                                 int64_t num_layers, int64_t num_heads,
                                                 int64_t max_positions);
/* Checks sizes are positive and consistent; the error names the field. */
ag_status ag_transformer_config_check(const ag_transformer_config *c);

typedef struct ag_transformer ag_transformer;

/* A model with its parameters allocated (zero; see ag_transformer_init). */
ag_status ag_transformer_create(const ag_transformer_config *c, ag_transformer **out);
/* A model whose parameters are declared but not allocated (the store is not
 * finalized): the caller points every tensor's data at memory that lives
 * until `release(owner)` runs in ag_transformer_destroy. Used for weights
 * read in place from a memory-mapped file; such a model cannot be trained. */
ag_status ag_transformer_create_external(const ag_transformer_config *c, void *owner,
                                         void (*release)(void *owner), ag_transformer **out);
void ag_transformer_destroy(ag_transformer *m);

/* GPT-2 initialisation: weights N(0, 0.02), the projections that write into
 * the residual stream (o_proj, down_proj, c_proj) N(0, 0.02 / sqrt(2 layers)),
 * norm weights 1, biases 0. Deterministic in seed. */
void ag_transformer_init(ag_transformer *m, uint64_t seed);

const ag_transformer_config *ag_transformer_config_of(const ag_transformer *m);
ag_params *ag_transformer_params(ag_transformer *m);
/* True when the parameters are an allocated, trainable store. */
bool ag_transformer_trainable(const ag_transformer *m);
/* False (with the error naming the first one) if a parameter has no data. */
ag_status ag_transformer_check_weights(const ag_transformer *m);
/* A tokenizer may be used with the model only if every id has an
 * embedding row: an error when tokenizer_vocab_size > vocab_size. */
ag_status ag_transformer_check_vocab(const ag_transformer *m, int64_t tokenizer_vocab_size);

/* ---- forward on a tape (training, scoring) ------------------------------------- */

/* ids (B, T), positions 0..T-1 -> final hidden states (B, T, C) after the
 * last norm. Each row sees itself and earlier rows only, so right padding
 * never changes the real tokens' results. */
ag_tensor *ag_transformer_hidden(ag_tape *t, ag_transformer *m, const int32_t *ids, int64_t B,
                                 int64_t T);
/* hidden (..., C) -> logits (..., V) through the LM head. */
ag_tensor *ag_transformer_head(ag_tape *t, ag_transformer *m, ag_tensor *hidden);
/* ids (B, T) -> logits (B, T, V). */
ag_tensor *ag_transformer_forward(ag_tape *t, ag_transformer *m, const int32_t *ids, int64_t B,
                                  int64_t T);
/* Mean cross-entropy of logits(ids) against targets (B, T) (next tokens),
 * scalar. Targets equal to -1 are ignored; weights (B, T) or NULL scale each
 * token's loss (loss masks). */
ag_tensor *ag_transformer_loss(ag_tape *t, ag_transformer *m, const int32_t *ids,
                               const int32_t *targets, const float *weights, int64_t B, int64_t T);

/* ---- adapters (LoRA: agora/lora.h) ------------------------------------------- */

/* Called after every projection inside the blocks (q, k, v, o, gate, up,
 * down; GPT-2's c_attn once for each of its q, k, v row slices) with the
 * input x (..., in), the output y (..., out) = x W^T + b, the weight as the
 * store holds it (GPT-2: all of c_attn) and the rows [row_begin, row_end) of
 * it this projection used. Returns the output to use instead: y itself for
 * a weight without an adapter, NULL on failure (the tape holds the error).
 * Training and decoding both go through it. */
typedef ag_tensor *(*ag_transformer_adapter_fn)(ag_tape *t, void *ctx, const ag_tensor *weight,
                                                int64_t row_begin, int64_t row_end, ag_tensor *x,
                                                ag_tensor *y);
/* Installs fn (NULL removes it); one adapter at a time. */
void ag_transformer_set_adapter(ag_transformer *m, ag_transformer_adapter_fn fn, void *ctx);
void *ag_transformer_adapter_ctx(const ag_transformer *m);

/* ---- incremental decoding with a KV cache (src/nn/transformer_decode.c) ------- */

/* Keys and values of `batch` sequences, each with its own length, up to
 * `capacity` tokens per sequence; plus the scratch a decoding step needs
 * (reused: a step allocates nothing from the heap once warm). */
typedef struct ag_kv_cache ag_kv_cache;
ag_status ag_kv_cache_create(const ag_transformer *m, int64_t batch, int64_t capacity,
                             ag_kv_cache **out);
void ag_kv_cache_destroy(ag_kv_cache *c);
/* Forgets sequence b (b < 0: every sequence): its length becomes 0. */
void ag_kv_cache_clear(ag_kv_cache *c, int64_t b);
int64_t ag_kv_cache_length(const ag_kv_cache *c, int64_t b);
int64_t ag_kv_cache_batch(const ag_kv_cache *c);
int64_t ag_kv_cache_capacity(const ag_kv_cache *c);

typedef enum ag_logits_rows {
  AG_LOGITS_LAST = 0, /* (B, V): each sequence's last appended token */
  AG_LOGITS_ALL = 1   /* (B, T, V): every row, padding rows included */
} ag_logits_rows;

/* Appends tokens (B, T) to the cache and computes their logits, recording
 * nothing (no tape, no gradients). Sequence b appends its first counts[b]
 * tokens (counts NULL: all T) at positions length(b), length(b) + 1, ...;
 * the rest of its row is padding, computed but not kept. A sequence with
 * count 0 is idle: nothing is appended and its LAST logits are zeros.
 * *logits points into the cache and stays valid until the next call. */
ag_status ag_transformer_decode(ag_transformer *m, ag_kv_cache *c, const int32_t *tokens, int64_t T,
                                const int32_t *counts, ag_logits_rows rows, const float **logits);

#ifdef __cplusplus
}
#endif
#endif
