/* Vocabularies stored in GGUF files (the tokenizer.ggml.* metadata), read
 * as llama.cpp reads them (src/llama-vocab.cpp):
 *   tokenizer.ggml.model   "gpt2": byte-level BPE, whose word splitting is
 *                          named by tokenizer.ggml.pre; "llama":
 *                          SentencePiece merged by score, with byte tokens;
 *   tokenizer.ggml.tokens, .scores, .token_type, .merges;
 *   tokenizer.ggml.{bos,eos,unknown,padding}_token_id, add_bos_token,
 *   add_eos_token, add_space_prefix.
 * Control, unknown and user-defined tokens are matched in the raw text
 * before the model runs (user-defined always, the others unless
 * AG_TOK_SPLIT_SPECIAL). */
#include "agora/gguf.h"
#include "lm/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE   "tokenizer.ggml.pre"

/* Optional ids and flags: a value of another type or out of range (some
 * converters write -1 for "none") is ignored with a warning, keeping the
 * default, as llama.cpp does for out-of-range ids. */
static void optional_id(const ag_gguf *f, const char *key, int32_t n_vocab, int32_t *id) {
  if (!ag_gguf_find(f, key)) return;
  int64_t v;
  if (ag_gguf_get_i64(f, key, &v) != AG_OK || v < 0 || v >= n_vocab) {
    ag_warn("tokenizer: %s is not an id of the vocabulary, ignored", key);
    return;
  }
  *id = (int32_t)v;
}

static void optional_bool(const ag_gguf *f, const char *key, bool *value) {
  if (ag_gguf_find(f, key) && ag_gguf_get_bool(f, key, value) != AG_OK)
    ag_warn("tokenizer: %s is not a boolean, ignored", key);
}

static ag_status push_piece(ag_tokenizer *t, int32_t id, const char *s, size_t n, char *buf) {
  uint8_t type = t->types[id];
  bool raw = type == TOKT_CONTROL || type == TOKT_UNKNOWN || type == TOKT_USER_DEFINED;
  if (raw) return tok_strtab_push(&t->pieces, s, n);
  if (t->model == TOK_MODEL_BPE) {
    int64_t got = tok_byte_level_decode(s, n, buf);
    return got >= 0 ? tok_strtab_push(&t->pieces, buf, (size_t)got)
                    : tok_strtab_push(&t->pieces, s, n);
  }
  /* SentencePiece: <0xXX> byte tokens are that byte; U+2581 is a space */
  if (type == TOKT_BYTE && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
    char hex[3] = {s[3], s[4], 0}, *end;
    long b = strtol(hex, &end, 16);
    if (*end == '\0') {
      char c = (char)b;
      return tok_strtab_push(&t->pieces, &c, 1);
    }
  }
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    if (n - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
      buf[k++] = ' ';
      i += 3;
    } else {
      buf[k++] = s[i++];
    }
  }
  return tok_strtab_push(&t->pieces, buf, k);
}

static ag_status load_tokens(ag_tokenizer *t, const ag_gguf *f) {
  const ag_gguf_string *tokens;
  uint64_t n;
  ag_status st = ag_gguf_get_string_array(f, "tokenizer.ggml.tokens", &tokens, &n);
  if (st) return st;
  if (n == 0 || n > (1u << 24))
    return ag_error_set(AG_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries",
                        (unsigned long long)n);
  st = tok_alloc_vocab(t, (int32_t)n);
  if (st) return st;
  if (ag_gguf_find(f, "tokenizer.ggml.scores")) {
    t->scores = malloc(n * sizeof *t->scores);
    if (!t->scores) return ag_error_set(AG_ERR_NOMEM, "out of memory");
    st = ag_gguf_get_f32_array(f, "tokenizer.ggml.scores", t->scores, n);
    if (st) return st;
  }
  if (ag_gguf_find(f, "tokenizer.ggml.token_type")) {
    int32_t *types = malloc(n * sizeof *types);
    if (!types) return ag_error_set(AG_ERR_NOMEM, "out of memory");
    st = ag_gguf_get_i32_array(f, "tokenizer.ggml.token_type", types, n);
    for (uint64_t i = 0; !st && i < n; i++)
      t->types[i] =
          types[i] >= TOKT_NORMAL && types[i] <= TOKT_BYTE ? (uint8_t)types[i] : TOKT_UNDEFINED;
    free(types);
    if (st) return st;
  }
  size_t longest = 0;
  for (uint64_t i = 0; i < n; i++)
    if (tokens[i].length > longest) longest = tokens[i].length;
  char *buf = malloc(longest + 1);
  if (!buf) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (uint64_t i = 0; !st && i < n; i++) {
    int32_t id = (int32_t)i;
    const char *s = tokens[i].data;
    size_t len = tokens[i].length;
    uint8_t type = t->types[id];
    /* Every token can come out of the model (llama.cpp looks text up in
     * the whole vocabulary); control, unknown and user-defined ones are
     * also matched in the raw text. */
    t->flags[id] |= TOKF_IN_MODEL;
    if (type == TOKT_CONTROL || type == TOKT_UNKNOWN) t->flags[id] |= TOKF_ADDED | TOKF_SPECIAL;
    if (type == TOKT_USER_DEFINED) t->flags[id] |= TOKF_ADDED;
    st = tok_strtab_push(&t->vocab, s, len);
    if (st) break;
    if (t->model == TOK_MODEL_BPE) {
      int64_t got = tok_byte_level_decode(s, len, buf);
      st = got >= 0 ? tok_strtab_push(&t->keys, buf, (size_t)got)
                    : tok_strtab_push(&t->keys, s, len);
    } else {
      st = tok_strtab_push(&t->keys, s, len);
    }
    if (!st) st = push_piece(t, id, s, len, buf);
  }
  free(buf);
  return st;
}

static ag_status load_merges(ag_tokenizer *t, const ag_gguf *f) {
  const ag_gguf_string *merges;
  uint64_t n;
  ag_status st = ag_gguf_get_string_array(f, "tokenizer.ggml.merges", &merges, &n);
  if (st) return st;
  if (n > (uint64_t)INT32_MAX) return ag_error_set(AG_ERR_FORMAT, "too many merges");
  st = tok_merge_map_init(&t->merges, (int64_t)n);
  if (st) return st;
  t->merge_pairs = malloc((n + 1) * 2 * sizeof *t->merge_pairs);
  if (!t->merge_pairs) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_tok_text joined = {0};
  int64_t skipped = 0;
  for (uint64_t i = 0; !st && i < n; i++) {
    const char *s = merges[i].data;
    size_t len = merges[i].length;
    /* "a b", split at the first space after the first character */
    const char *space = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (!space) {
      st = ag_error_set(AG_ERR_FORMAT, "tokenizer.ggml.merges[%llu] is not \"a b\"",
                        (unsigned long long)i);
      break;
    }
    size_t an = (size_t)(space - s), bn = len - an - 1;
    int32_t left = ag_tok_find(t, s, an), right = ag_tok_find(t, space + 1, bn);
    joined.size = 0;
    st = tok_text_append(&joined, s, an);
    if (!st) st = tok_text_append(&joined, space + 1, bn);
    int32_t result = st ? -1 : ag_tok_find(t, joined.data, joined.size);
    if (st) break;
    /* llama.cpp keeps such merges by text, but their result can never be
     * a token, so they cannot change the ids. */
    if (left < 0 || right < 0 || result < 0) {
      skipped++;
      continue;
    }
    int32_t rank = (int32_t)t->merges.count;
    if (tok_merge_map_insert(&t->merges, left, right, rank, result)) {
      t->merge_pairs[2 * rank] = left;
      t->merge_pairs[2 * rank + 1] = right;
    }
  }
  ag_tok_text_free(&joined);
  if (!st && skipped)
    ag_debug("tokenizer: %lld merges name tokens outside the vocabulary", (long long)skipped);
  return st;
}

static ag_status add_norm(ag_tokenizer *t, tok_norm_kind kind, const char *a, const char *b) {
  tok_norm *grown = realloc(t->norms, (size_t)(t->n_norms + 1) * sizeof *grown);
  if (!grown) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  t->norms = grown;
  tok_norm m = {.kind = kind, .a = strdup(a), .a_len = strlen(a)};
  if (b) m.b = strdup(b), m.b_len = strlen(b);
  if (!m.a || (b && !m.b)) {
    free(m.a), free(m.b);
    return ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  t->norms[t->n_norms++] = m;
  return AG_OK;
}

static ag_status build(ag_tokenizer *t, const ag_gguf *f) {
  ag_gguf_string model, pre = {0};
  ag_status st = ag_gguf_get_string(f, KEY_MODEL, &model);
  if (st) return st;
  bool has_pre = ag_gguf_find(f, KEY_PRE) != NULL;
  if (has_pre && (st = ag_gguf_get_string(f, KEY_PRE, &pre))) return st;
  char model_name[32] = {0}, pre_name[64] = {0};
  snprintf(model_name, sizeof model_name, "%.*s", (int)(model.length < 31 ? model.length : 31),
           model.data);
  snprintf(pre_name, sizeof pre_name, "%.*s", (int)(pre.length < 63 ? pre.length : 63),
           pre.data ? pre.data : "");
  if (memchr(model.data, 0, model.length) || (pre.data && memchr(pre.data, 0, pre.length)))
    return ag_error_set(AG_ERR_FORMAT, "tokenizer.ggml.model/pre holds a NUL byte");

  bool add_bos = false, add_eos = false, add_space_prefix = false;
  int32_t roles[AG_TOK_ROLE_COUNT] = {-1, -1, -1, -1};
  if (!strcmp(model_name, "llama")) {
    t->model = TOK_MODEL_SPM;
    add_bos = true, add_space_prefix = true;
    roles[AG_TOK_BOS] = 1, roles[AG_TOK_EOS] = 2, roles[AG_TOK_UNK] = 0;
    snprintf(t->pre_name, sizeof t->pre_name, "llama");
  } else if (!strcmp(model_name, "gpt2")) {
    t->model = TOK_MODEL_BPE;
    t->byte_level = true;
    roles[AG_TOK_BOS] = 11, roles[AG_TOK_EOS] = 11;
    if (!pre_name[0]) {
      ag_warn("tokenizer: GGUF vocabulary without tokenizer.ggml.pre, using 'default'");
      snprintf(pre_name, sizeof pre_name, "default");
    }
    t->pre_type = tok_pre_type_find(pre_name);
    if (!t->pre_type)
      return ag_error_set(AG_ERR_UNSUPPORTED, "unknown pre-tokenizer '%s' (tokenizer.ggml.pre)",
                          pre_name);
    t->ignore_merges = t->pre_type->ignore_merges;
    /* llama.cpp adds BOS by default for these */
    add_bos = t->pre_type->ignore_merges || !strcmp(pre_name, "chameleon");
    snprintf(t->pre_name, sizeof t->pre_name, "%s", pre_name);
  } else if (!strcmp(model_name, "no_vocab") || !strcmp(model_name, "none")) {
    return ag_error_set(AG_ERR_NOT_FOUND, "the GGUF file has no vocabulary");
  } else {
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "tokenizer model '%s' is not supported (only gpt2 and llama)", model_name);
  }

  st = load_tokens(t, f);
  if (!st) st = tok_index_init(&t->vocab_index, t->n_vocab);
  if (st) return st;
  for (int32_t id = 0; id < t->n_vocab; id++) tok_index_insert(&t->vocab_index, &t->vocab, id);
  if (t->model == TOK_MODEL_BPE)
    st = load_merges(t, f);
  else
    st = tok_merge_map_init(&t->merges, 0);
  if (st) return st;

  for (int r = 0; r < AG_TOK_ROLE_COUNT; r++)
    if (roles[r] >= t->n_vocab) roles[r] = -1;
  optional_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &roles[AG_TOK_BOS]);
  optional_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &roles[AG_TOK_EOS]);
  optional_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &roles[AG_TOK_UNK]);
  optional_id(f, "tokenizer.ggml.padding_token_id", t->n_vocab, &roles[AG_TOK_PAD]);
  optional_bool(f, "tokenizer.ggml.add_bos_token", &add_bos);
  optional_bool(f, "tokenizer.ggml.add_eos_token", &add_eos);
  optional_bool(f, "tokenizer.ggml.add_space_prefix", &add_space_prefix);
  memcpy(t->roles, roles, sizeof roles);
  if (add_bos && roles[AG_TOK_BOS] >= 0) st = ag_tok_ids_push(&t->prefix, roles[AG_TOK_BOS]);
  if (!st && add_eos && roles[AG_TOK_EOS] >= 0) st = ag_tok_ids_push(&t->suffix, roles[AG_TOK_EOS]);
  if (st) return st;

  if (t->model == TOK_MODEL_SPM) {
    /* llama.cpp: " " + text when add_space_prefix, then spaces -> U+2581;
     * decoding drops the leading space of the text again. */
    if (add_space_prefix) st = add_norm(t, NORM_PREPEND, " ", NULL);
    if (!st) st = add_norm(t, NORM_REPLACE, " ", "\xe2\x96\x81");
    if (add_space_prefix) {
      t->strip[0] = ' ';
      t->strip_len = 1, t->strip_start = 1;
    }
  } else {
    st = tok_add_pre_type_steps(t, t->pre_type);
  }
  return st ? st : tok_finish(t, "GGUF vocabulary");
}

ag_status ag_tok_load_gguf(const char *path, ag_tokenizer **out) {
  if (!out || !path) return ag_error_set(AG_ERR_INVALID, "ag_tok_load_gguf: NULL argument");
  *out = NULL;
  ag_gguf *f = NULL;
  ag_status st = ag_gguf_open(path, &f);
  if (st) return st; /* the GGUF reader's message names the file */
  ag_tokenizer *t = tok_new();
  if (!t) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!st) st = build(t, f);
  ag_gguf_close(f);
  if (st) {
    ag_tok_free(t);
    return ag_error_wrap(st, "tokenizer %s", path);
  }
  *out = t;
  return AG_OK;
}
