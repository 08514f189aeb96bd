/* Transformers from llama.cpp GGUF files (lm layer).
 *
 * Architectures (general.architecture): "llama" (Llama 1/2/3, Mistral,
 * TinyLlama, SmolLM... as llama.cpp converts them), "qwen2" and "gpt2"
 * (below). The network's shape comes from the metadata
 * ({arch}.context_length, embedding_length,
 * block_count, feed_forward_length, attention.head_count, head_count_kv,
 * attention.key_length, attention.layer_norm_rms_epsilon, rope.freq_base,
 * rope.dimension_count, rope.scaling.*), the weights from the llama.cpp
 * tensor names mapped to the Hugging Face ones agora uses:
 *
 *   token_embd.weight        model.embed_tokens.weight
 *   blk.N.attn_norm.weight   model.layers.N.input_layernorm.weight
 *   blk.N.attn_q/k/v.weight  model.layers.N.self_attn.q/k/v_proj.weight (and .bias)
 *   blk.N.attn_output.weight model.layers.N.self_attn.o_proj.weight
 *   blk.N.ffn_norm.weight    model.layers.N.post_attention_layernorm.weight
 *   blk.N.ffn_gate/up/down   model.layers.N.mlp.gate/up/down_proj.weight
 *   output_norm.weight       model.norm.weight
 *   output.weight            lm_head.weight (absent: tied to the embeddings)
 *
 * Tensors are converted to float32 once at load (F32, F16, BF16, Q8_0; other
 * quantisations are refused naming the tensor and type). llama.cpp's
 * converter reorders the rows of each "llama" q and k head from Hugging
 * Face's rotate-half layout to the interleaved pairs its rotary kernel uses
 * (within a head of D rows, HF row s*D/2 + i becomes row 2i + s); the loader
 * undoes that, so the model runs agora's rotate-half rotary embeddings.
 * Qwen2 files are not permuted (llama.cpp rotates them rotate-half).
 *
 * "gpt2" (as llama.cpp's converter writes GPT-2) maps onto agora's GPT-2
 * (agora/transformer.h): gpt2.context_length, embedding_length, block_count,
 * feed_forward_length, attention.head_count, attention.layer_norm_epsilon;
 *
 *   token_embd / position_embd.weight  transformer.wte / wpe.weight
 *   blk.N.attn_norm.weight, .bias      transformer.h.N.ln_1.weight, .bias
 *   blk.N.attn_qkv.weight, .bias       transformer.h.N.attn.c_attn.weight, .bias
 *   blk.N.attn_output.weight, .bias    transformer.h.N.attn.c_proj.weight, .bias
 *   blk.N.ffn_norm.weight, .bias       transformer.h.N.ln_2.weight, .bias
 *   blk.N.ffn_up / ffn_down            transformer.h.N.mlp.c_fc / c_proj
 *   output_norm.weight, .bias          transformer.ln_f.weight, .bias
 *
 * already in the (out, in) layout (the converter transposed GPT-2's Conv1D
 * weights). output.weight, the converter's copy of token_embd.weight, must
 * equal it (agora's GPT-2 ties its LM head); position_embd.weight must have
 * context_length rows. */
#ifndef AGORA_GGUF_MODEL_H
#define AGORA_GGUF_MODEL_H

#include "agora/gguf.h"
#include "agora/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The network's shape from an open file's metadata and tensor shapes. A
 * missing key, an unsupported architecture or rope variant is an error
 * naming the file and the key. */
ag_status ag_gguf_model_config(const ag_gguf *f, ag_transformer_config *config);

/* Loads the weights of an open file into a new inference-only transformer
 * (one float32 block, no gradients; the file may be closed afterwards).
 * trainable: a model with its own parameter store and gradients instead,
 * for fine-tuning. */
ag_status ag_gguf_model_load_file(const ag_gguf *f, bool trainable, ag_transformer **model);
/* The same from a path. */
ag_status ag_gguf_model_load(const char *path, bool trainable, ag_transformer **model);

/* llama.cpp's q/k row order <-> Hugging Face's, for one weight or bias of
 * `heads` heads of head_dim rows, each row `cols` floats (1 for a bias):
 * src and dst must not overlap. */
void ag_gguf_unpermute_rows(const float *src, float *dst, int64_t heads, int64_t head_dim,
                            int64_t cols);
void ag_gguf_permute_rows(const float *src, float *dst, int64_t heads, int64_t head_dim,
                          int64_t cols);

#ifdef __cplusplus
}
#endif
#endif
