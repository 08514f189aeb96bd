/* Internals shared by the tokenizer files (src/lm/tokenizer*.c).
 *
 * A tokenizer runs text through four stages:
 *   added tokens  split the text around added/special token strings;
 *   normalizers   rewrite each remaining segment (Prepend, Replace, NFC...);
 *   pre-tokenizer split the segment into words (PCRE2 regex steps);
 *   model         turn each word into ids (BPE by merge rank, or llama.cpp's
 *                 SentencePiece merge by score), with byte fallback.
 * Decoding concatenates per-token byte pieces computed at load time, then
 * strips what the decoder strips from the start of the text. */
#ifndef AGORA_LM_TOKENIZER_INTERNAL_H
#define AGORA_LM_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "agora/tokenizer.h"

#include <jansson.h>
#include <pcre2.h>

/* Token types: GGUF's tokenizer.ggml.token_type values, used for
 * Hugging Face vocabularies too. */
enum {
  TOKT_UNDEFINED = 0,
  TOKT_NORMAL = 1,
  TOKT_UNKNOWN = 2,
  TOKT_CONTROL = 3,
  TOKT_USER_DEFINED = 4,
  TOKT_UNUSED = 5,
  TOKT_BYTE = 6
};

/* Per-token flags. */
enum {
  TOKF_IN_MODEL = 1u << 0, /* the model may produce it (its key is indexed) */
  TOKF_ADDED = 1u << 1,    /* matched in the raw text before the model runs */
  TOKF_SPECIAL = 1u << 2,  /* control: skipped by AG_TOK_SKIP_SPECIAL */
  TOKF_LSTRIP = 1u << 3,   /* added token swallows whitespace on its left */
  TOKF_RSTRIP = 1u << 4,   /* ... and on its right */
  TOKF_SINGLE_WORD = 1u << 5
};

typedef enum tok_model_kind { TOK_MODEL_BPE = 0, TOK_MODEL_SPM } tok_model_kind;

/* ---- string tables and hash indexes ------------------------------------------ */

/* Strings 0..count-1 packed in one buffer; each is NUL-terminated. */
typedef struct tok_strtab {
  char *data;
  size_t size, capacity;
  uint64_t *offsets; /* count + 1 entries once built */
  int64_t count, offsets_capacity;
} tok_strtab;

ag_status tok_strtab_push(tok_strtab *s, const char *bytes, size_t n);
static inline const char *tok_strtab_get(const tok_strtab *s, int64_t i, size_t *n) {
  *n = (size_t)(s->offsets[i + 1] - s->offsets[i] - 1);
  return s->data + s->offsets[i];
}
void tok_strtab_free(tok_strtab *s);

/* Open-addressing map from the strings of a table to their index (or any id
 * the caller gives). Empty slots hold -1. */
typedef struct tok_index {
  int32_t *slots;
  size_t mask;
} tok_index;

uint64_t tok_hash_bytes(const void *data, size_t n);
ag_status tok_index_init(tok_index *x, int64_t expected);
/* Inserts id for the string `keys[id]`; keeps an existing entry. */
void tok_index_insert(tok_index *x, const tok_strtab *keys, int32_t id);
int32_t tok_index_find(const tok_index *x, const tok_strtab *keys, const char *s, size_t n);
void tok_index_free(tok_index *x);

/* Merge ranks: (left id, right id) -> (rank, merged id). */
typedef struct tok_merge_slot {
  uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
  int32_t rank;
  int32_t result;
} tok_merge_slot;

typedef struct tok_merge_map {
  tok_merge_slot *slots;
  size_t mask;
  int64_t count;
} tok_merge_map;

ag_status tok_merge_map_init(tok_merge_map *m, int64_t expected);
/* Returns false when the pair is already present (the lower rank stays). */
bool tok_merge_map_insert(tok_merge_map *m, int32_t left, int32_t right, int32_t rank,
                          int32_t result);
const tok_merge_slot *tok_merge_map_find(const tok_merge_map *m, int32_t left, int32_t right);
void tok_merge_map_free(tok_merge_map *m);

/* ---- normalizers and pre-tokenizers -------------------------------------------- */

typedef enum tok_norm_kind {
  NORM_PREPEND = 0, /* a: the prefix; only non-empty segments */
  NORM_REPLACE,     /* a -> b (literal), or regex re -> b */
  NORM_NFC,
  NORM_NFD,
  NORM_NFKC,
  NORM_NFKD,
  NORM_LOWERCASE,
  NORM_STRIP /* left/right whitespace */
} tok_norm_kind;

typedef struct tok_norm {
  tok_norm_kind kind;
  char *a, *b;
  size_t a_len, b_len;
  pcre2_code *re;
  bool left, right;
} tok_norm;

typedef enum tok_split_behavior {
  SPLIT_ISOLATED = 0,
  SPLIT_REMOVED,
  SPLIT_MERGED_WITH_PREVIOUS,
  SPLIT_MERGED_WITH_NEXT,
  SPLIT_CONTIGUOUS
} tok_split_behavior;

typedef enum tok_pre_kind {
  PRE_SPLIT = 0,    /* re, behavior, invert */
  PRE_PREFIX_SPACE, /* ByteLevel add_prefix_space: " " before words without one */
  PRE_METASPACE     /* ' ' -> replacement, prepend per scheme */
} tok_pre_kind;

enum { PREPEND_ALWAYS = 0, PREPEND_FIRST, PREPEND_NEVER };

typedef struct tok_pre {
  tok_pre_kind kind;
  pcre2_code *re;
  tok_split_behavior behavior;
  bool invert;
  char replacement[8]; /* PRE_METASPACE: UTF-8 of the replacement char */
  size_t replacement_len;
  int prepend_scheme;
} tok_pre;

/* Compiles pattern with UTF + Unicode properties (PCRE2_UCP), invalid UTF-8
 * in subjects allowed (it never matches), JIT when available. literal: the
 * pattern is a plain string. what names the pattern in the error. */
ag_status tok_regex_compile(const char *pattern, size_t n, bool literal, const char *what,
                            pcre2_code **out);

/* One llama.cpp pre-tokenizer (tokenizer.ggml.pre): its regexes, applied in
 * order as Isolated splits, and the flags llama.cpp sets with it. */
typedef struct tok_pre_type {
  const char *names; /* "llama3|llama-v3|llama-bpe|falcon3" */
  const char *const *regexes;
  int n_regexes;
  bool ignore_merges;
} tok_pre_type;

/* NULL if the name is unknown. */
const tok_pre_type *tok_pre_type_find(const char *name);
/* Appends the Isolated split steps of a pre-type. */
ag_status tok_add_pre_type_steps(ag_tokenizer *t, const tok_pre_type *p);

/* ---- the tokenizer ------------------------------------------------------------- */

struct ag_tokenizer {
  tok_model_kind model;
  bool byte_level;    /* words are bytes mapped through GPT-2's byte<->char table */
  bool byte_fallback; /* unknown chars become <0xXX> tokens */
  bool fuse_unk;
  bool ignore_merges;   /* a word already in the vocabulary is not merged (Llama-3) */
  bool json_no_decoder; /* tokenizer.json without a decoder: HF joins tokens with ' ' */

  int32_t n_vocab;
  tok_strtab vocab;      /* the strings as the file stores them */
  tok_strtab keys;       /* what the model looks up: raw bytes for byte-level BPE */
  tok_strtab pieces;     /* what each token decodes to */
  uint8_t *types;        /* TOKT_* */
  uint8_t *flags;        /* TOKF_* */
  float *scores;         /* SentencePiece scores, NULL for BPE */
  tok_index key_index;   /* keys of TOKF_IN_MODEL tokens */
  tok_index vocab_index; /* vocab strings of all tokens */

  tok_merge_map merges;
  int32_t *merge_pairs;  /* (left, right) by rank: 2 * merges.count */
  int32_t byte_ids[256]; /* <0xXX> tokens, -1 where missing */
  int32_t roles[AG_TOK_ROLE_COUNT];

  /* Added tokens by first byte, longest first, for leftmost-longest search. */
  int32_t *added_sorted;
  int32_t added_start[257];
  int32_t n_added;

  tok_norm *norms;
  int n_norms;
  tok_pre *pres;
  int n_pres;

  ag_tok_ids prefix, suffix; /* AG_TOK_ADD_SPECIAL */
  /* Decoder: leading/trailing copies of strip (UTF-8) removed from the text. */
  char strip[8];
  size_t strip_len;
  int strip_start, strip_stop;

  /* byte <-> char of GPT-2's byte-level alphabet */
  uint32_t byte_to_cp[256];

  /* For ag_tok_save_json: the normalizer, pre_tokenizer, post_processor and
   * decoder objects to write (owned), and the BPE model options. */
  json_t *hf_sections;
  /* Otherwise (GGUF, trained): the llama.cpp pre-tokenizer to write. */
  const tok_pre_type *pre_type;
  char pre_name[64];
};

/* A zeroed tokenizer with no roles and no byte tokens. */
ag_tokenizer *tok_new(void);
/* Allocation of the per-token arrays once n_vocab is known (types NORMAL). */
ag_status tok_alloc_vocab(ag_tokenizer *t, int32_t n_vocab);
/* After vocab/keys/pieces/types/flags are filled: indexes, byte ids, added
 * token search tables. */
ag_status tok_finish(ag_tokenizer *t, const char *source);
/* GPT-2's byte-level table. */
void tok_byte_level_table(uint32_t byte_to_cp[256]);
/* Decodes a byte-level string (e.g. "Ġthe") to raw bytes into out (capacity
 * >= n). Returns the byte count, or -1 if a char is outside the alphabet. */
int64_t tok_byte_level_decode(const char *s, size_t n, char *out);
/* Appends the byte-level form of raw bytes (for writing tokenizer.json). */
ag_status tok_byte_level_encode(const char *s, size_t n, ag_tok_text *out);
/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
size_t tok_utf8_len(const unsigned char *s, size_t n);
size_t tok_utf8_put(uint32_t cp, char out[4]);
ag_status tok_text_append(ag_tok_text *t, const void *bytes, size_t n);
ag_status tok_compute_byte_ids(ag_tokenizer *t);

/* Scratch for one encode call. */
typedef struct tok_span {
  size_t off, len;
} tok_span;

typedef struct tok_symbol {
  int32_t id;
  int32_t prev, next;
  uint32_t start, len;
} tok_symbol;

typedef struct tok_heap_entry {
  int64_t priority; /* smaller first */
  int32_t left, right;
  int32_t id; /* BPE: the merged id; SPM: merged byte length */
} tok_heap_entry;

typedef struct tok_scratch {
  ag_tok_text norm, pre;    /* normalized segment; pre-tokenized text */
  tok_span *spans, *spans2; /* words */
  size_t n_spans, cap_spans, n_spans2, cap_spans2;
  tok_symbol *symbols;
  size_t cap_symbols;
  tok_heap_entry *heap;
  size_t n_heap, cap_heap;
  pcre2_match_data *match;
  pcre2_match_context *match_context;
  pcre2_jit_stack *jit_stack;
} tok_scratch;

void tok_scratch_free(tok_scratch *s);
ag_status tok_normalize(const ag_tokenizer *t, tok_scratch *s, const char *text, size_t n);
/* Splits s->norm into words: s->pre holds the text, s->spans the words. */
ag_status tok_pretokenize(const ag_tokenizer *t, tok_scratch *s, bool first_segment);
ag_status tok_bpe_word(const ag_tokenizer *t, tok_scratch *s, const char *word, size_t n,
                       ag_tok_ids *out);
ag_status tok_spm_word(const ag_tokenizer *t, tok_scratch *s, const char *word, size_t n,
                       ag_tok_ids *out);
/* Matching helpers shared by the pre-tokenizer and normalizers. rc: the
 * pcre2_match result; >0 match, PCRE2_ERROR_NOMATCH none, else an error. */
ag_status tok_scratch_match_init(tok_scratch *s);
bool tok_have_icu(void);
ag_status tok_regex_error(int rc, const char *what);

/* Heap of tok_heap_entry ordered by (priority, left). */
ag_status tok_heap_push(tok_scratch *s, tok_heap_entry e);
tok_heap_entry tok_heap_pop(tok_scratch *s);

#endif
