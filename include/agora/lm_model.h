/* A language model ready to use (lm layer): the network, its tokenizer, its
 * chat template and the special ids generation needs, opened from one path.
 *
 *   ag_lm *lm;
 *   if (ag_lm_open("../shared/data/models/stories260K", &lm)) {
 *     fprintf(stderr, "%s\n", ag_error_message());
 *     ...
 *   }
 *   ag_tok_ids ids = {0};
 *   ag_lm_encode_prompt(lm, "Once upon a time", 16, &ids);   // BOS added as configured
 *   ...
 *   ag_lm_close(lm);
 *
 * PATH is a Hugging Face model folder (config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json, generation_config.json; see
 * agora/hf_model.h) or a llama.cpp GGUF file (agora/gguf_model.h), told apart
 * by what is on disk. Generation and sampling are in agora/generate.h. */
#ifndef AGORA_LM_MODEL_H
#define AGORA_LM_MODEL_H

#include "agora/chat_template.h"
#include "agora/tokenizer.h"
#include "agora/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_LM_MAX_EOS 16

typedef enum ag_lm_format { AG_LM_HF = 0, AG_LM_GGUF = 1 } ag_lm_format;

/* Fields are read-only after ag_lm_open; the lm owns model and tokenizer. */
typedef struct ag_lm {
  ag_transformer *model;
  ag_tokenizer *tokenizer;
  /* The model's chat template, or NULL when it has none (or one agora does
   * not reimplement: chat_template_note says which). */
  const ag_chat_template *chat_template;
  char chat_template_note[160];
  ag_lm_format format;
  /* BOS: prepended to every prompt when add_bos (the tokenizer's
   * post-processor / tokenizer_config.json add_bos_token / GGUF
   * tokenizer.ggml.add_bos_token say so). bos_id is -1 when there is none. */
  int32_t bos_id;
  bool add_bos;
  /* Ids that end generation: generation_config.json's and config.json's
   * eos_token_id, the tokenizer's EOS, GGUF's eos and eot ids; no repeats. */
  int32_t eos_ids[AG_LM_MAX_EOS];
  int eos_count;
  /* Tokens a sequence may hold: max_position_embeddings / context_length. */
  int64_t context_length;
} ag_lm;

/* Opens a model folder or GGUF file: the weights are memory-mapped or
 * converted once for inference (not trainable), and the tokenizer must fit
 * the embedding table (ag_transformer_check_vocab). A missing path, a
 * malformed file or an unsupported architecture is one error message naming
 * the path and the problem. */
ag_status ag_lm_open(const char *path, ag_lm **out);
void ag_lm_close(ag_lm *lm);

/* Appends the ids of a prompt: BOS (when add_bos), then the text's ids.
 * Special-token text in the prompt ("<|im_start|>") becomes the special
 * token, as chat-template output needs. */
ag_status ag_lm_encode_prompt(const ag_lm *lm, const char *text, size_t bytes, ag_tok_ids *out);
bool ag_lm_is_eos(const ag_lm *lm, int32_t id);

/* ---- scoring text (perplexity) ------------------------------------------------- */

/* Sums of a text's next-token log-likelihood under the model. */
typedef struct ag_lm_score {
  double nll_sum;  /* -sum log p(token | earlier tokens), nats */
  int64_t tokens;  /* tokens predicted */
  int64_t bytes;   /* bytes of text scored */
  int64_t windows; /* context windows the text was cut into */
} ag_lm_score;

/* Scores one document: BOS (when add_bos) + its ids, predicting every id
 * after the first. A document longer than `window` tokens (0: the model's
 * context length) is cut into windows that overlap by one token, each read
 * from a fresh context, so every token is predicted exactly once. Adds into
 * *score, so several documents accumulate. */
ag_status ag_lm_score_text(ag_lm *lm, const char *text, size_t bytes, int64_t window,
                           ag_lm_score *score);

#ifdef __cplusplus
}
#endif
#endif
