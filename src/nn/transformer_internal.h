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

#endif
