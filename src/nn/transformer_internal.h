/* Shared by src/nn/transformer.c (model, training forward) and
 * src/nn/transformer_decode.c (KV-cache decoding). Not a public header. */
#ifndef AGORA_NN_TRANSFORMER_INTERNAL_H
#define AGORA_NN_TRANSFORMER_INTERNAL_H

#include "agora/transformer.h"

/* One block's weights; NULL where the family or config has none. GPT-2's
 * c_attn is one (3C, C) weight: q, k and v are row slices of it. */
typedef struct transformer_layer {
  ag_tensor *norm1_weight, *norm1_bias;                                 /* input_layernorm / ln_1 */
  ag_tensor *q_weight, *q_bias, *k_weight, *k_bias, *v_weight, *v_bias; /* llama */
  ag_tensor *qkv_weight, *qkv_bias;                                     /* gpt2 c_attn */
  ag_tensor *o_weight, *o_bias;                                         /* o_proj / c_proj */
  ag_tensor *norm2_weight, *norm2_bias; /* post_attention_layernorm / ln_2 */
  ag_tensor *gate_weight, *gate_bias;   /* llama */
  ag_tensor *up_weight, *up_bias;       /* up_proj / c_fc */
  ag_tensor *down_weight, *down_bias;   /* down_proj / mlp.c_proj */
} transformer_layer;

struct ag_transformer {
  ag_transformer_config config;
  ag_params *params;
  bool external; /* data points at memory owned by `owner` */
  void *owner;
  void (*release)(void *owner);
  ag_tensor *embed;     /* (V, C) embed_tokens / wte */
  ag_tensor *positions; /* (P, C) wpe (gpt2) */
  transformer_layer *layers;
  ag_tensor *final_norm_weight, *final_norm_bias;
  ag_tensor *lm_head; /* (V, C); the embedding table when tied */
  float *inv_freq;    /* (head_dim / 2) rotary frequencies (llama; not dynamic) */
  /* Called after each projection in the blocks; NULL: none (agora/lora.h). */
  ag_transformer_adapter_fn adapter;
  void *adapter_ctx;
};

/* Where a block's keys and values come from. Given this step's rotated keys
 * and values k, v (B, T, Hkv, D), returns the ones attention reads, k_all and
 * v_all (B, Hkv, S, D), and their spans (NULL: plain causal over T). */
typedef bool (*transformer_kv_fn)(ag_tape *t, void *ctx, int64_t layer, ag_tensor *k, ag_tensor *v,
                                  ag_tensor **k_all, ag_tensor **v_all,
                                  const ag_attention_spans **spans);

/* Embeddings, every block and the final norm: ids (B, T) at positions
 * (B*T, or NULL for 0..T-1 in every sequence) -> hidden (B, T, C). */
ag_tensor *ag_transformer_run_blocks(ag_tape *t, ag_transformer *m, const int32_t *ids, int64_t B,
                                     int64_t T, const int32_t *positions, transformer_kv_fn kv,
                                     void *kv_ctx);

/* ---- one token per sequence without the tape (src/nn/decode_fast.c) ---------- */

/* Which path ag_transformer_decode takes for T = 1 steps. For tests and
 * benchmarks (a process-wide setting, not thread-safe): AUTO uses the fast
 * path wherever it applies, on one thread for small models; TAPE forces the
 * tape path; FAST_THREADED is AUTO with every thread even for tiny models
 * (so tests exercise the threaded code). */
typedef enum decode_path { DECODE_AUTO = 0, DECODE_TAPE, DECODE_FAST_THREADED } decode_path;
void ag_decode_path_set(decode_path p);
decode_path ag_decode_path_get(void);
/* The fast path's matrix-vector kernel (tests): AUTO picks the best this
 * CPU runs. False (setting unchanged) when the CPU lacks the instructions. */
typedef enum decode_kernel {
  DECODE_KERNEL_AUTO = 0,
  DECODE_KERNEL_AVX512,
  DECODE_KERNEL_AVX2,
  DECODE_KERNEL_PORTABLE
} decode_kernel;
bool ag_decode_kernel_set(decode_kernel k);

/* NULL when the fast path computes this step, else why it does not (the tape
 * path then does): T > 1, an adapter, AG_LOGITS_ALL with idle sequences. */
const char *ag_decode_fast_refusal(const ag_transformer *m, int64_t batch, int64_t T,
                                   const int32_t *counts, ag_logits_rows rows);

/* One step of the fast path, checked already (transformer_decode.c's
 * prepare_step): the cache's arrays, not its struct. */
typedef struct decode_fast_step {
  int64_t batch, capacity;
  float *keys, *values;     /* (layers, batch, kv_heads, capacity, head_dim) */
  const int64_t *length;    /* (batch) tokens cached before this step */
  const int32_t *tokens;    /* (batch) the new tokens */
  const int32_t *counts;    /* (batch) 1: append tokens[b]; 0: idle (zero logits) */
  const int32_t *positions; /* (batch) each token's position (gpt2: clamped to wpe) */
  ag_arena *arena;          /* scratch, reset by the caller before the step */
} decode_fast_step;

/* Writes each active sequence's new key and value at position length[b]
 * (the caller then advances the lengths) and sets *logits to (batch, V)
 * in the arena. */
ag_status ag_decode_fast(const ag_transformer *m, const decode_fast_step *s, const float **logits);

#endif
