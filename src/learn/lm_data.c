/* Language-model corpora: documents and conversations tokenized into
 * windows of next-token targets, with loss masks for chat data.
 *
 * Text documents form one token stream cut into windows of T + 1 tokens
 * that share their boundary token, so window k covers stream[kT, kT + T] and
 * every stream token after the first is a target exactly once.
 * Conversations are rendered by a chat template and kept one per window.
 *
 * A chat mask comes from byte spans (where each message's content and its
 * end-of-turn marker landed in the rendered text) mapped to tokens without
 * an offset table: encode(text[0, b)) shares its first n_b ids with
 * encode(text), and those ids lie wholly before byte b. A token straddling
 * b (rare: templates put markers at span edges) belongs to the span it
 * reaches into at the start and to the text after it at the end. */
#include "agora/json.h"
#include "agora/lm_train.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_TEXT_FIELD "text"
#define FIELD_MAX_BYTES    128
#define FNV_OFFSET         0xcbf29ce484222325ULL
#define FNV_PRIME          0x100000001b3ULL

/* A conversation's tokens: chat_ids[offset, offset + length). */
typedef struct chat_example {
  int64_t offset, length;
} chat_example;

struct ag_lm_data {
  const ag_tokenizer *tok;
  int64_t seq_len;
  ag_lm_data_format format;
  char text_field[FIELD_MAX_BYTES];
  const ag_chat_template *chat_template;
  char *bos_token, *eos_token; /* NULL: the template family's own */
  char *train_names[AG_LM_MAX_TRAIN_NAMES];
  int n_train_names;
  int32_t eos_id; /* appended to every text document (-1: none) */
  /* The template's generation prompt ends in a space ("assistant: "): chat
   * models leave it out of the prompt for the model to write (byte-level BPE
   * joins it to the reply's first word), so a trained turn's targets start
   * at that space, not after it. */
  bool prompt_space;

  int32_t *stream; /* text documents, concatenated */
  int64_t stream_len, stream_cap;
  int32_t *chat_ids;  /* conversations, concatenated */
  uint8_t *chat_mask; /* 1: the token is a trained target */
  int64_t chat_len, chat_cap;
  chat_example *examples;
  int64_t n_examples, examples_cap;
  int64_t skipped, truncated;
};

/* ---- growable arrays ----------------------------------------------------------------- */

static ag_status grow(void **data, int64_t *cap, int64_t need, size_t item) {
  if (need <= *cap) return AG_OK;
  int64_t n = *cap > 0 ? *cap : 1024;
  while (n < need) n *= 2;
  void *p = realloc(*data, (size_t)n * item);
  if (!p) return ag_error_set(AG_ERR_NOMEM, "lm data: out of memory (%lld items)", (long long)n);
  *data = p;
  *cap = n;
  return AG_OK;
}

static ag_status stream_append(ag_lm_data *d, const int32_t *ids, int64_t n) {
  ag_status st = grow((void **)&d->stream, &d->stream_cap, d->stream_len + n, sizeof(int32_t));
  if (st) return st;
  memcpy(d->stream + d->stream_len, ids, (size_t)n * sizeof(int32_t));
  d->stream_len += n;
  return AG_OK;
}

/* Grows the chat arrays to hold `need` tokens (ids and mask together). */
static ag_status chat_reserve(ag_lm_data *d, int64_t need) {
  if (need <= d->chat_cap) return AG_OK;
  int64_t cap = d->chat_cap;
  ag_status st = grow((void **)&d->chat_ids, &cap, need, sizeof(int32_t));
  if (st) return st;
  int64_t mask_cap = d->chat_cap;
  st = grow((void **)&d->chat_mask, &mask_cap, need, sizeof(uint8_t));
  if (st) return st;
  d->chat_cap = cap < mask_cap ? cap : mask_cap;
  return AG_OK;
}

static char *copy_string(const char *s, size_t n) {
  char *c = malloc(n + 1);
  if (c) {
    memcpy(c, s, n);
    c[n] = '\0';
  }
  return c;
}

/* ---- construction -------------------------------------------------------------------- */

/* The text of a special token (BOS/EOS) as templates render it; NULL if the
 * tokenizer has none. */
static ag_status special_text(const ag_tokenizer *tok, ag_tok_role role, const char *given,
                              char **out) {
  *out = NULL;
  if (given) {
    *out = copy_string(given, strlen(given));
    return *out ? AG_OK : ag_error_set(AG_ERR_NOMEM, "lm data: out of memory");
  }
  int32_t id = ag_tok_special_id(tok, role);
  size_t bytes = 0;
  const char *text = id >= 0 ? ag_tok_token_text(tok, id, &bytes) : NULL;
  if (!text) return AG_OK;
  *out = copy_string(text, bytes);
  return *out ? AG_OK : ag_error_set(AG_ERR_NOMEM, "lm data: out of memory");
}

ag_status ag_lm_data_create(const ag_tokenizer *tok, const ag_lm_data_options *o,
                            ag_lm_data **out) {
  *out = NULL;
  if (!tok || !o) return ag_error_set(AG_ERR_INVALID, "lm data: NULL tokenizer or options");
  if (o->seq_len < 1 || o->seq_len > ((int64_t)1 << 30))
    return ag_error_set(AG_ERR_INVALID, "lm data: seq_len %lld must be in [1, 2^30]",
                        (long long)o->seq_len);
  if (o->n_train_names < 0 || o->n_train_names > AG_LM_MAX_TRAIN_NAMES)
    return ag_error_set(AG_ERR_INVALID, "lm data: %d train names (at most %d)", o->n_train_names,
                        AG_LM_MAX_TRAIN_NAMES);
  const char *field = o->text_field && *o->text_field ? o->text_field : DEFAULT_TEXT_FIELD;
  if (strlen(field) >= FIELD_MAX_BYTES)
    return ag_error_set(AG_ERR_INVALID, "lm data: text field name is too long");
  ag_lm_data *d = calloc(1, sizeof *d);
  if (!d) return ag_error_set(AG_ERR_NOMEM, "lm data: out of memory");
  d->tok = tok;
  d->seq_len = o->seq_len;
  d->format = o->format;
  snprintf(d->text_field, sizeof d->text_field, "%s", field);
  d->eos_id = ag_tok_special_id(tok, AG_TOK_EOS);
  ag_status st = AG_OK;
  if (o->chat_template)
    d->chat_template = o->chat_template;
  else
    st = ag_chat_template_by_family(AG_CHAT_PLAIN, &d->chat_template);
  if (!st) {
    ag_chat_message probe = {"user", "", NULL};
    ag_chat_render_options ro = {.add_generation_prompt = true};
    char *text = NULL;
    st = ag_chat_render(d->chat_template, &probe, 1, &ro, &text);
    d->prompt_space = !st && text && text[0] && text[strlen(text) - 1] == ' ';
    free(text);
  }
  if (!st) st = special_text(tok, AG_TOK_BOS, o->bos_token, &d->bos_token);
  if (!st) st = special_text(tok, AG_TOK_EOS, o->eos_token, &d->eos_token);
  for (int i = 0; i < o->n_train_names && !st; i++) {
    if (!o->train_names[i]) {
      st = ag_error_set(AG_ERR_INVALID, "lm data: train name %d is NULL", i);
      break;
    }
    d->train_names[i] = copy_string(o->train_names[i], strlen(o->train_names[i]));
    if (!d->train_names[i]) st = ag_error_set(AG_ERR_NOMEM, "lm data: out of memory");
    d->n_train_names = i + 1;
  }
  if (st) {
    ag_lm_data_free(d);
    return st;
  }
  *out = d;
  return AG_OK;
}

void ag_lm_data_free(ag_lm_data *d) {
  if (!d) return;
  free(d->bos_token);
  free(d->eos_token);
  for (int i = 0; i < d->n_train_names; i++) free(d->train_names[i]);
  free(d->stream);
  free(d->chat_ids);
  free(d->chat_mask);
  free(d->examples);
  free(d);
}

/* ---- documents ------------------------------------------------------------------------- */

ag_status ag_lm_data_add_text(ag_lm_data *d, const char *text, size_t bytes) {
  ag_tok_ids ids = {0};
  ag_status st = ag_tok_encode(d->tok, text, bytes, AG_TOK_ADD_SPECIAL, &ids);
  /* EOS closes every document, so a model learns where one ends. */
  if (!st && d->eos_id >= 0 && (ids.count == 0 || ids.ids[ids.count - 1] != d->eos_id))
    st = ag_tok_ids_push(&ids, d->eos_id);
  if (!st) st = stream_append(d, ids.ids, ids.count);
  ag_tok_ids_free(&ids);
  return st;
}

/* ---- conversations ---------------------------------------------------------------------- */

static bool is_trained(const ag_lm_data *d, const ag_chat_message *m) {
  if (d->n_train_names == 0) return m->role && strcmp(m->role, "assistant") == 0;
  if (!m->name) return false;
  for (int i = 0; i < d->n_train_names; i++)
    if (strcmp(m->name, d->train_names[i]) == 0) return true;
  return false;
}

/* How many leading ids of encode(text[0, bytes)) equal full's. */
static ag_status shared_prefix(const ag_lm_data *d, const char *text, int64_t bytes,
                               const ag_tok_ids *full, int64_t *n) {
  *n = 0;
  if (bytes <= 0) return AG_OK;
  ag_tok_ids ids = {0};
  ag_status st = ag_tok_encode(d->tok, text, (size_t)bytes, 0, &ids);
  if (!st) {
    int64_t k = 0;
    while (k < ids.count && k < full->count && ids.ids[k] == full->ids[k]) k++;
    *n = k;
  }
  ag_tok_ids_free(&ids);
  return st;
}

ag_status ag_lm_data_add_chat(ag_lm_data *d, const ag_chat_message *messages, int n) {
  if (n < 1 || !messages) return ag_error_set(AG_ERR_INVALID, "lm data: empty conversation");
  bool any = false;
  for (int i = 0; i < n; i++) any = any || is_trained(d, &messages[i]);
  if (!any) {
    d->skipped++;
    return AG_OK;
  }
  ag_chat_span *spans = calloc((size_t)n, sizeof *spans);
  if (!spans) return ag_error_set(AG_ERR_NOMEM, "lm data: out of memory");
  ag_chat_render_options ro = {.bos_token = d->bos_token, .eos_token = d->eos_token};
  char *text = NULL;
  ag_tok_ids full = {0};
  /* Chat templates write special tokens (BOS included) as text: encode it
   * as such, adding nothing, as transformers' apply_chat_template does. */
  ag_status st = ag_chat_render_spans(d->chat_template, messages, n, &ro, &text, spans);
  int64_t text_bytes = text ? (int64_t)strlen(text) : 0;
  if (!st) st = ag_tok_encode(d->tok, text, (size_t)text_bytes, 0, &full);
  int64_t length = full.count < d->seq_len + 1 ? full.count : d->seq_len + 1;
  if (!st) st = chat_reserve(d, d->chat_len + full.count);
  if (!st) memset(d->chat_mask + d->chat_len, 0, (size_t)full.count);
  uint8_t *mask = st ? NULL : d->chat_mask + d->chat_len;
  bool any_target = false;
  for (int i = 0; i < n && !st; i++) {
    if (!is_trained(d, &messages[i]) || spans[i].begin < 0) continue;
    int64_t first, last, begin = spans[i].begin;
    if (d->prompt_space && begin > 0 && text[begin - 1] == ' ') begin--;
    st = shared_prefix(d, text, begin, &full, &first);
    if (!st) {
      if (spans[i].turn_end >= text_bytes)
        last = full.count;
      else
        st = shared_prefix(d, text, spans[i].turn_end, &full, &last);
    }
    for (int64_t k = first; !st && k < last; k++) {
      mask[k] = 1;
      if (k >= 1 && k < length) any_target = true;
    }
  }
  if (!st && (length < 2 || !any_target)) {
    d->skipped++; /* nothing to learn within the window */
  } else if (!st) {
    st = grow((void **)&d->examples, &d->examples_cap, d->n_examples + 1, sizeof *d->examples);
    if (!st) {
      memcpy(d->chat_ids + d->chat_len, full.ids, (size_t)length * sizeof(int32_t));
      d->examples[d->n_examples++] = (chat_example){d->chat_len, length};
      d->chat_len += length;
      if (full.count > length) d->truncated++;
    }
  }
  ag_tok_ids_free(&full);
  free(text);
  free(spans);
  return st;
}

/* ---- files ------------------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One JSONL object's "messages" into a conversation. */
static ag_status add_messages(ag_lm_data *d, json_t *messages, const char *where) {
  if (!json_is_array(messages) || json_array_size(messages) == 0)
    return ag_error_set(AG_ERR_FORMAT, "%s: \"messages\" must be a non-empty array", where);
  size_t n = json_array_size(messages);
  if (n > 1u << 20) return ag_error_set(AG_ERR_FORMAT, "%s: too many messages", where);
  ag_chat_message *m = calloc(n, sizeof *m);
  if (!m) return ag_error_set(AG_ERR_NOMEM, "lm data: out of memory");
  ag_status st = AG_OK;
  for (size_t i = 0; i < n && !st; i++) {
    json_t *msg = json_array_get(messages, i);
    json_t *role = json_object_get(msg, "role"), *content = json_object_get(msg, "content");
    json_t *name = json_object_get(msg, "name");
    if (!json_is_string(role) || !json_is_string(content))
      st = ag_error_set(AG_ERR_FORMAT,
                        "%s: message %zu needs string \"role\" and \"content\" fields", where, i);
    else if (name && !json_is_string(name) && !json_is_null(name))
      st = ag_error_set(AG_ERR_FORMAT, "%s: message %zu: \"name\" must be a string", where, i);
    else
      m[i] = (ag_chat_message){json_string_value(role), json_string_value(content),
                               json_is_string(name) ? json_string_value(name) : NULL};
  }
  if (!st) st = ag_lm_data_add_chat(d, m, (int)n);
  if (st) st = ag_error_wrap(st, "%s", where);
  free(m);
  return st;
}

static ag_status add_jsonl(ag_lm_data *d, const char *path) {
  ag_jsonl_reader *r;
  ag_status st = ag_jsonl_open(path, &r);
  if (st) return st;
  json_t *obj = NULL;
  char where[512];
  while (!(st = ag_jsonl_next(r, &obj)) && obj) {
    snprintf(where, sizeof where, "%s:%lld", path, (long long)ag_jsonl_line(r));
    json_t *messages = json_object_get(obj, "messages");
    json_t *text = json_object_get(obj, d->text_field);
    bool chat = d->format == AG_LM_DATA_CHAT || (d->format == AG_LM_DATA_AUTO && messages);
    if (!json_is_object(obj))
      st = ag_error_set(AG_ERR_FORMAT, "%s: expected a JSON object", where);
    else if (chat)
      st = add_messages(d, messages, where);
    else if (!json_is_string(text))
      st = ag_error_set(AG_ERR_FORMAT, "%s: no string field \"%s\"%s", where, d->text_field,
                        messages ? " (chat data: use the chat format)" : "");
    else
      st = ag_lm_data_add_text(d, json_string_value(text), json_string_length(text));
    json_decref(obj);
    if (st) break;
  }
  ag_jsonl_close(r);
  return st;
}

ag_status ag_lm_data_add_file(ag_lm_data *d, const char *path) {
  bool jsonl =
      d->format == AG_LM_DATA_JSONL || d->format == AG_LM_DATA_CHAT ||
      (d->format == AG_LM_DATA_AUTO && (ends_with(path, ".jsonl") || ends_with(path, ".json")));
  if (jsonl) return add_jsonl(d, path);
  char *text = NULL;
  size_t bytes = 0;
  ag_status st = ag_read_file(path, &text, &bytes);
  if (st) return st;
  st = ag_lm_data_add_text(d, text, bytes);
  free(text);
  return st;
}

/* ---- windows ---------------------------------------------------------------------------- */

static int64_t text_windows(const ag_lm_data *d) {
  return d->stream_len >= 2 ? (d->stream_len - 2) / d->seq_len + 1 : 0;
}

int64_t ag_lm_data_seq_len(const ag_lm_data *d) { return d->seq_len; }
int64_t ag_lm_data_windows(const ag_lm_data *d) { return text_windows(d) + d->n_examples; }
int64_t ag_lm_data_skipped(const ag_lm_data *d) { return d->skipped; }
int64_t ag_lm_data_truncated(const ag_lm_data *d) { return d->truncated; }

int64_t ag_lm_data_target_tokens(const ag_lm_data *d) {
  int64_t n = d->stream_len >= 2 ? d->stream_len - 1 : 0;
  for (int64_t e = 0; e < d->n_examples; e++)
    for (int64_t k = 1; k < d->examples[e].length; k++)
      n += d->chat_mask[d->examples[e].offset + k];
  return n;
}

int64_t ag_lm_data_window(const ag_lm_data *d, int64_t i, int32_t *ids, int32_t *targets,
                          int64_t *inputs) {
  int64_t T = d->seq_len, tw = text_windows(d), n = 0, counted = 0;
  const int32_t *tokens = NULL;
  const uint8_t *mask = NULL;
  if (i >= 0 && i < tw) {
    int64_t start = i * T;
    tokens = d->stream + start;
    n = d->stream_len - start < T + 1 ? d->stream_len - start : T + 1;
  } else if (i >= tw && i < tw + d->n_examples) {
    const chat_example *e = &d->examples[i - tw];
    tokens = d->chat_ids + e->offset;
    mask = d->chat_mask + e->offset;
    n = e->length;
  }
  for (int64_t j = 0; j < T; j++) {
    if (j + 1 < n) {
      ids[j] = tokens[j];
      bool trained = !mask || mask[j + 1];
      targets[j] = trained ? tokens[j + 1] : -1;
      counted += trained;
    } else {
      ids[j] = j < n ? tokens[j] : 0;
      targets[j] = -1;
    }
  }
  /* the inputs that are followed by a token, trained on or not */
  if (inputs) *inputs = n > 1 ? n - 1 : 0; /* n <= T + 1 */
  return counted;
}

ag_status ag_lm_data_split(ag_lm_data *d, int64_t windows, ag_lm_data **held_out) {
  *held_out = NULL;
  int64_t total = ag_lm_data_windows(d);
  if (windows < 1 || windows >= total)
    return ag_error_set(AG_ERR_INVALID,
                        "lm data: cannot hold out %lld of %lld windows (at least one must stay "
                        "for training)",
                        (long long)windows, (long long)total);
  ag_lm_data_options o = {.seq_len = d->seq_len,
                          .format = d->format,
                          .text_field = d->text_field,
                          .chat_template = d->chat_template,
                          .bos_token = d->bos_token,
                          .eos_token = d->eos_token,
                          .n_train_names = d->n_train_names};
  for (int i = 0; i < d->n_train_names; i++) o.train_names[i] = d->train_names[i];
  ag_lm_data *h;
  ag_status st = ag_lm_data_create(d->tok, &o, &h);
  if (st) return st;
  /* Chat examples from the end first. */
  int64_t chats = windows < d->n_examples ? windows : d->n_examples;
  int64_t first = d->n_examples - chats;
  int64_t from = chats > 0 ? d->examples[first].offset : d->chat_len;
  int64_t tokens = d->chat_len - from;
  if (chats > 0) {
    st = chat_reserve(h, tokens);
    if (!st) st = grow((void **)&h->examples, &h->examples_cap, chats, sizeof *h->examples);
    if (!st) {
      memcpy(h->chat_ids, d->chat_ids + from, (size_t)tokens * sizeof(int32_t));
      memcpy(h->chat_mask, d->chat_mask + from, (size_t)tokens);
      for (int64_t e = 0; e < chats; e++)
        h->examples[e] =
            (chat_example){d->examples[first + e].offset - from, d->examples[first + e].length};
      h->n_examples = chats;
      h->chat_len = tokens;
    }
  }
  /* Then text windows: the held-out stream starts at the first moved
   * window; the training stream keeps that boundary token as its last
   * target. */
  int64_t texts = windows - chats;
  if (!st && texts > 0) {
    int64_t keep = text_windows(d) - texts, start = keep * d->seq_len;
    st = stream_append(h, d->stream + start, d->stream_len - start);
    if (!st) d->stream_len = keep > 0 ? start + 1 : 0;
  }
  if (st) {
    ag_lm_data_free(h);
    return st;
  }
  d->n_examples = first;
  d->chat_len = from;
  *held_out = h;
  return AG_OK;
}

static uint64_t fnv(uint64_t h, const void *data, size_t bytes) {
  const unsigned char *p = data;
  for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * FNV_PRIME;
  return h;
}

uint64_t ag_lm_data_fingerprint(const ag_lm_data *d) {
  uint64_t h = FNV_OFFSET;
  h = fnv(h, &d->seq_len, sizeof d->seq_len);
  if (d->stream_len) h = fnv(h, d->stream, (size_t)d->stream_len * sizeof(int32_t));
  for (int64_t e = 0; e < d->n_examples; e++) {
    const chat_example *x = &d->examples[e];
    h = fnv(h, &x->length, sizeof x->length);
    h = fnv(h, d->chat_ids + x->offset, (size_t)x->length * sizeof(int32_t));
    h = fnv(h, d->chat_mask + x->offset, (size_t)x->length);
  }
  return h;
}
