/* Training language models on next tokens (learn layer): corpora cut into
 * token windows with loss masks, and the training loop behind
 * `agora lm train` (docs/lm-training.md).
 *
 * Data (src/learn/lm_data.c). A corpus becomes windows of seq_len input ids
 * and seq_len targets (the next ids; -1 where no loss is taken):
 *   - plain text, and JSONL objects with a "text" field: each document is
 *     tokenized (BOS as the tokenizer adds it, EOS appended), the documents
 *     are concatenated into one stream and the stream is cut into windows of
 *     seq_len + 1 tokens that overlap by one (every token is predicted once);
 *   - JSONL chat data, {"messages": [{"role", "content", "name"?}, ...]}:
 *     each conversation is rendered with a chat template and is one window
 *     (cut at seq_len + 1 tokens, right-padded); loss is taken only on the
 *     tokens of the trained messages, their end-of-turn marker included:
 *     assistant turns, or the messages whose "name" is in a chosen set.
 *
 * Training (src/learn/lm_train.c). AdamW with linear warmup and cosine
 * decay, gradient accumulation, global-norm clipping, periodic evaluation,
 * and checkpoints that make a run restartable exactly: every checkpoint
 * holds the weights (or LoRA adapters), the optimizer state and its step;
 * the windows of update s are a pure function of (seed, s); dropout is
 * reseeded from (seed, s) before each micro-batch. So a run resumed from any
 * checkpoint repeats the uninterrupted run bit for bit (same machine, same
 * thread count). */
#ifndef AGORA_LM_TRAIN_H
#define AGORA_LM_TRAIN_H

#include "agora/chat_template.h"
#include "agora/hf_model.h"
#include "agora/lora.h"
#include "agora/tokenizer.h"
#include "agora/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- data (src/learn/lm_data.c) ------------------------------------------------ */

typedef enum ag_lm_data_format {
  AG_LM_DATA_AUTO = 0, /* .jsonl / .json: chat if the first object has "messages", else
                          the text field; any other name: plain text */
  AG_LM_DATA_TEXT,     /* the whole file is one document */
  AG_LM_DATA_JSONL,    /* one document per object, its text field */
  AG_LM_DATA_CHAT      /* one conversation per object, its "messages" */
} ag_lm_data_format;

#define AG_LM_MAX_TRAIN_NAMES 16

typedef struct ag_lm_data_options {
  int64_t seq_len;          /* T: tokens per window (targets too) */
  ag_lm_data_format format; /* for ag_lm_data_add_file */
  const char *text_field;   /* JSONL text: the field; NULL: "text" */
  /* Chat data: the template (NULL: agora's plain one) and the BOS / EOS
   * texts it renders (NULL: the tokenizer's own, as transformers does). */
  const ag_chat_template *chat_template;
  const char *bos_token, *eos_token;
  /* Messages trained on: those whose "name" is one of these (n > 0), else
   * the assistant's. */
  const char *train_names[AG_LM_MAX_TRAIN_NAMES];
  int n_train_names;
} ag_lm_data_options;

typedef struct ag_lm_data ag_lm_data;

/* An empty corpus over tok (which must outlive it). */
ag_status ag_lm_data_create(const ag_tokenizer *tok, const ag_lm_data_options *o, ag_lm_data **out);
void ag_lm_data_free(ag_lm_data *d);
/* One document of the text stream. */
ag_status ag_lm_data_add_text(ag_lm_data *d, const char *text, size_t bytes);
/* One conversation: a window of its own, masked. A conversation with no
 * trained message adds nothing (counted in ag_lm_data_skipped). */
ag_status ag_lm_data_add_chat(ag_lm_data *d, const ag_chat_message *messages, int n);
/* A whole file in the options' format; errors name the file and line. */
ag_status ag_lm_data_add_file(ag_lm_data *d, const char *path);

int64_t ag_lm_data_seq_len(const ag_lm_data *d);
int64_t ag_lm_data_windows(const ag_lm_data *d);
/* Targets that count (not -1) over all windows. */
int64_t ag_lm_data_target_tokens(const ag_lm_data *d);
/* Conversations left out (no trained message) and cut (longer than a window). */
int64_t ag_lm_data_skipped(const ag_lm_data *d);
int64_t ag_lm_data_truncated(const ag_lm_data *d);
/* Window i: ids (T) and targets (T), padding ids 0 with targets -1 after a
 * short window's end. Returns the targets that count; *inputs (may be
 * NULL) receives the ids that are not padding. */
int64_t ag_lm_data_window(const ag_lm_data *d, int64_t i, int32_t *ids, int32_t *targets,
                          int64_t *inputs);
/* Moves the last `windows` windows (chat ones first, then text) into a new
 * corpus *held_out (for evaluation). At least one window stays. */
ag_status ag_lm_data_split(ag_lm_data *d, int64_t windows, ag_lm_data **held_out);
/* A 64-bit digest of the windows (tokens and masks): a resumed run checks
 * it is training on the same data. */
uint64_t ag_lm_data_fingerprint(const ag_lm_data *d);

/* ---- training (src/learn/lm_train.c) ------------------------------------------- */

/* Everything that shapes the weights; saved in every checkpoint and checked
 * when resuming. */
typedef struct ag_lm_train_config {
  int64_t batch_size;   /* windows per micro-batch (one forward) */
  int64_t grad_accum;   /* micro-batches per update: an update sees batch_size * grad_accum */
  int64_t steps;        /* updates */
  float lr;             /* peak learning rate */
  float min_lr;         /* where the cosine ends; < 0: lr / 10 */
  int64_t warmup_steps; /* linear warmup from 0; < 0: 5% of steps */
  float weight_decay, beta1, beta2, eps;
  float clip_norm; /* max global gradient norm; 0: no clipping */
  uint64_t seed;   /* data order, dropout, LoRA init */
  /* LoRA: rank 0 trains every parameter of the model; rank > 0 trains
   * adapters on the targeted projections only. */
  ag_lora_config lora;
} ag_lm_train_config;

/* batch 8, accum 1, 1000 steps, lr 3e-4 -> lr / 10, 5% warmup, weight
 * decay 0.1 (applied to every trained parameter), betas (0.9, 0.95), eps
 * 1e-8, clip 1.0, seed 0, no LoRA. */
ag_lm_train_config ag_lm_train_defaults(void);
ag_status ag_lm_train_config_check(const ag_lm_train_config *c);

/* What one update did; given to the callback and written to metrics.jsonl. */
typedef struct ag_lm_train_step {
  int64_t step;             /* updates done (1-based) */
  double loss;              /* mean next-token loss of the update's batch */
  double lr;                /* the learning rate it used */
  double grad_norm;         /* global gradient norm before clipping */
  double tokens_per_second; /* input tokens (padding excluded) per second of training */
  double eval_loss;         /* NAN when this step did not evaluate */
  int64_t tokens;           /* input tokens trained on so far */
} ag_lm_train_step;

typedef void (*ag_lm_train_callback)(void *user, const ag_lm_train_step *step);

/* How a run starts and where it writes. */
typedef struct ag_lm_train_run {
  /* Checkpoints out_dir/checkpoint-N/, metrics.jsonl, and the final model
   * (Hugging Face layout) or adapter (PEFT layout); NULL: nothing written. */
  const char *out_dir;
  bool resume;          /* continue from the last complete checkpoint in out_dir */
  int64_t save_every;   /* updates between checkpoints; 0: only at the end */
  int keep;             /* checkpoints kept (older ones removed); 0: all */
  int64_t eval_every;   /* updates between evaluations; 0: only at the end */
  int64_t eval_batches; /* micro-batches of held-out windows per evaluation; 0: all */
  int64_t log_every;    /* updates between metrics.jsonl lines (evaluations always log) */
  /* > 0: stop after this update, checkpointed (an interruption, for tests). */
  int64_t stop_after;
  /* Copied into the checkpoints and the final folder so they load on their
   * own: tokenizer.json and tokenizer_config.json are taken from
   * tokenizer_path (a folder or a tokenizer.json) when it has them, else
   * tokenizer.json is written from `tokenizer`. Both NULL: no tokenizer. */
  const char *tokenizer_path;
  const ag_tokenizer *tokenizer;
  const ag_chat_template *chat_template; /* recorded in a written tokenizer_config.json */
  /* config.json's model type and special ids for the saved model (NULL:
   * from the config, no special ids). */
  const ag_hf_info *model_info;
  bool progress; /* a progress line on a terminal */
  ag_lm_train_callback on_step;
  void *user;
} ag_lm_train_run;

typedef struct ag_lm_train_result {
  int64_t steps;            /* updates done in total */
  double train_loss;        /* the last update's loss */
  double eval_loss;         /* the last evaluation (NAN if none) */
  int64_t tokens;           /* input tokens trained on in total */
  double seconds;           /* wall clock of this call */
  double tokens_per_second; /* input tokens per second of training in this call */
  bool resumed;             /* started from a checkpoint */
  int64_t start_step;       /* the checkpoint's step (0: fresh) */
} ag_lm_train_result;

/* Trains `model` on `train`, evaluating on `eval` (NULL: on the first
 * windows of train). With c->lora.rank > 0 the model stays as it is and
 * LoRA adapters are trained (then saved); the model may be memory-mapped.
 * Otherwise the model must be trainable and its weights change. A fresh run
 * refuses an out_dir that holds checkpoints; with run->resume the last
 * complete one is loaded (its config and data fingerprint must match). */
ag_status ag_lm_train(ag_transformer *model, const ag_lm_train_config *c, const ag_lm_data *train,
                      const ag_lm_data *eval, const ag_lm_train_run *run,
                      ag_lm_train_result *result);

/* Mean next-token loss of `model` (with any attached adapters) over the
 * first max_batches micro-batches (0: all) of d's windows, gradients off. */
ag_status ag_lm_evaluate(ag_transformer *model, const ag_lm_data *d, int64_t batch_size,
                         int64_t max_batches, double *loss);

/* Loads the Hugging Face model in base_dir (trainable), merges the PEFT
 * adapter in adapter_dir into it and writes the result to out_dir as a
 * Hugging Face folder, with base_dir's tokenizer files. */
ag_status ag_lm_merge_adapter(const char *base_dir, const char *adapter_dir, const char *out_dir);

/* The checkpoint folder name of update `step` under out_dir into buf. */
void ag_lm_checkpoint_path(const char *out_dir, int64_t step, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
