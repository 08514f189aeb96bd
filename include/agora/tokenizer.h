/* agora tokenizers (lm layer).
 *
 * Two families, loaded from the files other tools write:
 *   - byte-level BPE (GPT-2, Llama-3, Qwen2, Falcon, StarCoder, DeepSeek...):
 *     a regex pre-tokeniser (PCRE2, Unicode properties) splits the text into
 *     words; each word's bytes are merged by rank;
 *   - SentencePiece-style vocabularies (Llama-2, TinyStories): spaces become
 *     U+2581, merges work on characters, and characters missing from the
 *     vocabulary fall back to <0xXX> byte tokens.
 * Sources: a Hugging Face tokenizer.json (or a model folder holding one) and
 * the tokenizer.ggml.* metadata of a GGUF file (llama.cpp's pre-tokeniser
 * names in tokenizer.ggml.pre). Encoding matches the reference tokenizers id
 * for id; decoding returns raw bytes, so decode(encode(x)) == x for any
 * bytes x, invalid UTF-8 included (the references would substitute U+FFFD).
 *
 * A loaded tokenizer is read-only: several threads may encode and decode
 * with one tokenizer at once. */
#ifndef AGORA_TOKENIZER_H
#define AGORA_TOKENIZER_H

#include "agora/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_tokenizer ag_tokenizer;

/* A growable array of token ids. Start it zeroed ({0}); ag_tok_ids_free
 * releases it. Encoding appends, so one array can collect several calls. */
typedef struct ag_tok_ids {
  int32_t *ids;
  int64_t count;
  int64_t capacity;
} ag_tok_ids;

/* A growable byte string, NUL-terminated whenever data != NULL (the NUL is
 * not counted in size; the bytes themselves may contain NULs). */
typedef struct ag_tok_text {
  char *data;
  size_t size;
  size_t capacity;
} ag_tok_text;

void ag_tok_ids_free(ag_tok_ids *ids);
ag_status ag_tok_ids_push(ag_tok_ids *ids, int32_t id);
void ag_tok_text_free(ag_tok_text *text);

/* ---- loading and saving ------------------------------------------------------ */

/* PATH is a tokenizer.json, a GGUF file (told by its magic bytes) or a model
 * folder holding tokenizer.json. Next to a tokenizer.json, the
 * tokenizer_config.json of the same folder (if any) supplies the BOS/EOS/PAD
 * names and add_bos_token/add_eos_token. A malformed, truncated or
 * unsupported file is an error (AG_ERR_FORMAT / AG_ERR_UNSUPPORTED) whose
 * message names the file and the problem. */
ag_status ag_tok_load(const char *path, ag_tokenizer **out);
ag_status ag_tok_load_json(const char *path, ag_tokenizer **out);
/* The same from memory; config_json (tokenizer_config.json text) may be NULL. */
ag_status ag_tok_load_json_text(const char *json, size_t bytes, const char *config_json,
                                size_t config_bytes, ag_tokenizer **out);
ag_status ag_tok_load_gguf(const char *path, ag_tokenizer **out);
/* Writes a Hugging Face tokenizer.json (atomically) that `tokenizers` and
 * `transformers` load and that ag_tok_load reads back to the same encoding.
 * Supported for BPE tokenizers loaded from tokenizer.json, trained ones, and
 * byte-level BPE vocabularies from GGUF. */
ag_status ag_tok_save_json(const ag_tokenizer *t, const char *path);
void ag_tok_free(ag_tokenizer *t);

/* ---- encoding and decoding --------------------------------------------------- */

enum {
  /* Add what the tokenizer adds around a sequence (BOS for Llama, nothing
   * for GPT-2): tokenizer.json's post-processor, or the GGUF add_bos/add_eos
   * flags. Off by default, so the ids are exactly the text's. */
  AG_TOK_ADD_SPECIAL = 1u << 0,
  /* Treat the text of special (control) tokens, e.g. "<|endoftext|>", as
   * plain text. By default such text becomes the special token, as in
   * Hugging Face's encode. Non-special added tokens are always matched. */
  AG_TOK_SPLIT_SPECIAL = 1u << 1,
  /* Decoding: leave special (control) tokens out of the text. */
  AG_TOK_SKIP_SPECIAL = 1u << 2
};

/* Appends the ids of text[0..bytes) to out. Any bytes are accepted. */
ag_status ag_tok_encode(const ag_tokenizer *t, const char *text, size_t bytes, unsigned flags,
                        ag_tok_ids *out);
/* Appends the bytes of ids[0..count) to out, applying the tokenizer's
 * decoder (e.g. the leading space a SentencePiece vocabulary adds is
 * removed from the start of this call's text). An id outside the vocabulary
 * is an error. */
ag_status ag_tok_decode(const ag_tokenizer *t, const int32_t *ids, int64_t count, unsigned flags,
                        ag_tok_text *out);
/* The bytes one token decodes to, without any start-of-text stripping:
 * for streaming output. NULL if id is out of range. Valid while t lives. */
const char *ag_tok_piece(const ag_tokenizer *t, int32_t id, size_t *bytes);

/* ---- the vocabulary ---------------------------------------------------------- */

int32_t ag_tok_vocab_size(const ag_tokenizer *t);
/* The vocabulary string of id as the file stores it ("Ġthe", "▁the",
 * "<0x0A>", "<|endoftext|>"); NULL if id is out of range. */
const char *ag_tok_token_text(const ag_tokenizer *t, int32_t id, size_t *bytes);
/* The id whose vocabulary string is text, or -1. */
int32_t ag_tok_find(const ag_tokenizer *t, const char *text, size_t bytes);
/* Control tokens (BOS, EOS, <|im_end|>...): special in Hugging Face's
 * added_tokens, CONTROL in GGUF token types. */
bool ag_tok_is_special(const ag_tokenizer *t, int32_t id);

typedef enum ag_tok_role {
  AG_TOK_BOS = 0,
  AG_TOK_EOS,
  AG_TOK_UNK,
  AG_TOK_PAD,
  AG_TOK_ROLE_COUNT
} ag_tok_role;
/* The id playing that role, or -1 when the tokenizer has none. */
int32_t ag_tok_special_id(const ag_tokenizer *t, ag_tok_role role);
/* "byte-level BPE", "BPE with byte fallback" or "SentencePiece (llama.cpp)". */
const char *ag_tok_model_name(const ag_tokenizer *t);
/* The pre-tokeniser: a llama.cpp name ("gpt-2", "llama3"...) for GGUF
 * vocabularies and trained tokenizers, "tokenizer.json" for loaded ones. */
const char *ag_tok_pre_name(const ag_tokenizer *t);
int64_t ag_tok_merge_count(const ag_tokenizer *t);

/* The llama.cpp pre-tokeniser names this build knows (NULL-terminated). */
const char *const *ag_tok_pre_names(void);

/* ---- training ----------------------------------------------------------------- */

/* A byte-level BPE trainer (the algorithm of Hugging Face's BpeTrainer with
 * a ByteLevel pre-tokeniser): the 256 bytes start the vocabulary after the
 * special tokens; the most frequent adjacent pair in the corpus (ties: the
 * pair of smaller ids) is merged until vocab_size tokens exist or no pair is
 * seen min_frequency times. Deterministic: the same input gives the same
 * tokenizer. */
typedef struct ag_tok_train_config {
  int32_t vocab_size;    /* total, including the 256 bytes and the special tokens */
  int64_t min_frequency; /* a pair seen fewer times is never merged */
  /* The word-splitting regex, by llama.cpp name: "gpt-2", "llama3", "qwen2"...;
   * NULL means "llama3". */
  const char *pre_tokenizer;
  const char *const *special_tokens; /* ids 0..n_special-1, in order */
  int n_special;
} ag_tok_train_config;

/* vocab_size 8000, min_frequency 2, llama3 words, "<|endoftext|>". */
ag_tok_train_config ag_tok_train_defaults(void);

typedef struct ag_tok_trainer ag_tok_trainer;
ag_status ag_tok_trainer_create(const ag_tok_train_config *config, ag_tok_trainer **out);
/* Adds one document (any bytes) to the word counts. */
ag_status ag_tok_trainer_feed(ag_tok_trainer *tr, const char *text, size_t bytes);
/* Adds a file: JSONL when the name ends in .jsonl or .json (each object's
 * string field `field`, default "text"; an object with "messages" adds each
 * message's content), else plain text line by line. "-" reads stdin. */
ag_status ag_tok_trainer_feed_file(ag_tok_trainer *tr, const char *path, const char *field);
int64_t ag_tok_trainer_word_count(const ag_tok_trainer *tr); /* distinct words so far */
/* Runs the merges and returns the tokenizer (save it with ag_tok_save_json). */
ag_status ag_tok_trainer_finish(ag_tok_trainer *tr, ag_tokenizer **out);
void ag_tok_trainer_free(ag_tok_trainer *tr);

#ifdef __cplusplus
}
#endif
#endif
