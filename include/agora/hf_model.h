/* Models in the Hugging Face directory layout (lm layer).
 *
 * Reads config.json and model.safetensors (or the shards listed by
 * model.safetensors.index.json) of LlamaForCausalLM, Qwen2ForCausalLM,
 * MistralForCausalLM (no sliding window) and GPT2LMHeadModel checkpoints,
 * F32, F16 or BF16; writes config.json, generation_config.json and
 * model.safetensors that transformers' from_pretrained loads. Tokenizer files
 * are copied by whoever holds the tokenizer (agora/tokenizer.h). A truncated
 * or inconsistent file is an error naming the file and the problem. */
#ifndef AGORA_HF_MODEL_H
#define AGORA_HF_MODEL_H

#include "agora/safetensors.h"
#include "agora/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_HF_MAX_EOS 8

/* What config.json says beyond the network's shape. */
typedef struct ag_hf_info {
  char model_type[32];                  /* "llama", "qwen2", "mistral", "gpt2" */
  char architecture[64];                /* "LlamaForCausalLM", ... */
  char torch_dtype[16];                 /* "float32", "bfloat16", ... ("" when absent) */
  int32_t bos_token_id;                 /* -1 when absent */
  int32_t pad_token_id;                 /* -1 when absent */
  int32_t eos_token_ids[AG_HF_MAX_EOS]; /* eos_token_id: one id or a list */
  int eos_count;
} ag_hf_info;

/* Reads DIR/config.json (and DIR/generation_config.json's token ids when
 * present). info may be NULL. An unknown architecture is an error naming
 * the field and the supported values. */
ag_status ag_hf_read_config(const char *dir, ag_transformer_config *config, ag_hf_info *info);

typedef enum ag_hf_load_mode {
  /* Every tensor converted once into the model's flat parameter store, with
   * gradient buffers: for training and fine-tuning. */
  AG_HF_LOAD_TRAINABLE = 0,
  /* Inference: F32 tensors are used in place from the memory-mapped files
   * (no copy); F16/BF16 ones, and GPT-2's transposed Conv1D weights, are
   * converted once into one block. No gradient memory; the model cannot be
   * trained (ag_transformer_trainable is false). */
  AG_HF_LOAD_MAPPED = 1
} ag_hf_load_mode;

/* Loads a model folder. info may be NULL. */
ag_status ag_hf_load(const char *dir, ag_hf_load_mode mode, ag_transformer **model,
                     ag_hf_info *info);

/* Writes DIR/config.json, DIR/generation_config.json and DIR/model.safetensors
 * (dtype F32 or BF16), each atomically; creates DIR. info NULL: model_type
 * and architecture follow from the config, no special token ids. */
ag_status ag_hf_save(const char *dir, const ag_transformer *model, const ag_hf_info *info,
                     ag_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif
