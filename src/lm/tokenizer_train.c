/* Byte-level BPE training (the algorithm of Hugging Face's BpeTrainer).
 *
 * Documents are split into words by a llama.cpp pre-tokenizer regex and the
 * distinct words counted. Each word starts as its bytes. Then, until the
 * vocabulary is full: take the adjacent pair with the highest count over the
 * corpus (ties: the smaller (left, right) ids), add the merged token, and
 * rewrite the words that hold the pair, updating the pair counts by the
 * difference. A pair -> words index keeps each merge proportional to the
 * words it touches, and a max-heap with lazy deletion (an entry whose count
 * is out of date is re-pushed with the current count when popped) finds the
 * best pair in O(log P). */
#include "agora/json.h"
#include "lm/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#define BYTE_COUNT 256

/* ---- growable hash map from byte strings to word index ---------------------------- */

typedef struct word_map {
  int32_t *slots;
  size_t mask;
  tok_strtab words;
  int64_t *counts;
  size_t counts_capacity;
} word_map;

static ag_status word_map_rehash(word_map *m, size_t size) {
  int32_t *slots = malloc(size * sizeof *slots);
  if (!slots) return ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
  memset(slots, 0xff, size * sizeof *slots);
  for (int64_t w = 0; w < m->words.count; w++) {
    size_t n;
    const char *s = tok_strtab_get(&m->words, w, &n);
    size_t i = (size_t)tok_hash_bytes(s, n) & (size - 1);
    while (slots[i] >= 0) i = (i + 1) & (size - 1);
    slots[i] = (int32_t)w;
  }
  free(m->slots);
  m->slots = slots;
  m->mask = size - 1;
  return AG_OK;
}

static ag_status word_map_add(word_map *m, const char *s, size_t n) {
  if (!m->slots || (size_t)m->words.count * 2 >= m->mask) {
    ag_status st = word_map_rehash(m, m->slots ? (m->mask + 1) * 2 : 1024);
    if (st) return st;
  }
  size_t i = (size_t)tok_hash_bytes(s, n) & m->mask;
  for (; m->slots[i] >= 0; i = (i + 1) & m->mask) {
    size_t k;
    const char *other = tok_strtab_get(&m->words, m->slots[i], &k);
    if (k == n && memcmp(other, s, n) == 0) {
      m->counts[m->slots[i]]++;
      return AG_OK;
    }
  }
  if (m->words.count >= INT32_MAX - 1)
    return ag_error_set(AG_ERR_INVALID, "tokenizer trainer: more than 2^31 distinct words");
  if ((size_t)m->words.count + 1 > m->counts_capacity) {
    size_t cap = m->counts_capacity ? m->counts_capacity * 2 : 1024;
    int64_t *c = realloc(m->counts, cap * sizeof *c);
    if (!c) return ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
    m->counts = c;
    m->counts_capacity = cap;
  }
  ag_status st = tok_strtab_push(&m->words, s, n);
  if (st) return st;
  m->counts[m->words.count - 1] = 1;
  m->slots[i] = (int32_t)(m->words.count - 1);
  return AG_OK;
}

static void word_map_free(word_map *m) {
  free(m->slots);
  free(m->counts);
  tok_strtab_free(&m->words);
  *m = (word_map){0};
}

/* ---- the trainer ----------------------------------------------------------------- */

struct ag_tok_trainer {
  int32_t vocab_size;
  int64_t min_frequency;
  char **special;
  int n_special;
  const tok_pre_type *pre;
  ag_tokenizer *splitter; /* only its pre-tokenizer steps are used */
  tok_scratch scratch;
  word_map words;
};

ag_tok_train_config ag_tok_train_defaults(void) {
  static const char *const special[] = {"<|endoftext|>"};
  return (ag_tok_train_config){.vocab_size = 8000,
                               .min_frequency = 2,
                               .pre_tokenizer = "llama3",
                               .special_tokens = special,
                               .n_special = 1};
}

void ag_tok_trainer_free(ag_tok_trainer *tr) {
  if (!tr) return;
  for (int i = 0; i < tr->n_special; i++) free(tr->special[i]);
  free(tr->special);
  ag_tok_free(tr->splitter);
  tok_scratch_free(&tr->scratch);
  word_map_free(&tr->words);
  free(tr);
}

ag_status ag_tok_trainer_create(const ag_tok_train_config *config, ag_tok_trainer **out) {
  if (!out || !config) return ag_error_set(AG_ERR_INVALID, "ag_tok_trainer_create: NULL argument");
  *out = NULL;
  if (config->n_special < 0 || (config->n_special > 0 && !config->special_tokens))
    return ag_error_set(AG_ERR_INVALID, "tokenizer trainer: bad special token list");
  if (config->vocab_size < BYTE_COUNT + config->n_special || config->vocab_size > (1 << 24))
    return ag_error_set(AG_ERR_INVALID,
                        "tokenizer trainer: vocab_size %d must be at least 256 + the %d special "
                        "tokens (and at most 2^24)",
                        config->vocab_size, config->n_special);
  const char *pre_name = config->pre_tokenizer ? config->pre_tokenizer : "llama3";
  const tok_pre_type *pre = tok_pre_type_find(pre_name);
  if (!pre)
    return ag_error_set(AG_ERR_INVALID, "tokenizer trainer: unknown pre-tokenizer '%s'", pre_name);
  ag_tok_trainer *tr = calloc(1, sizeof *tr);
  if (!tr) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  tr->vocab_size = config->vocab_size;
  tr->min_frequency = config->min_frequency > 0 ? config->min_frequency : 1;
  tr->pre = pre;
  tr->special = calloc((size_t)config->n_special + 1, sizeof *tr->special);
  tr->splitter = tok_new();
  ag_status st = tr->special && tr->splitter ? AG_OK : ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (int i = 0; !st && i < config->n_special; i++) {
    const char *s = config->special_tokens[i];
    if (!s || !*s) {
      st = ag_error_set(AG_ERR_INVALID, "tokenizer trainer: special token %d is empty", i);
      break;
    }
    for (int j = 0; j < i && !st; j++)
      if (!strcmp(tr->special[j], s))
        st = ag_error_set(AG_ERR_INVALID, "tokenizer trainer: special token '%s' given twice", s);
    if (!st && !(tr->special[i] = strdup(s))) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
    if (!st) tr->n_special = i + 1;
  }
  if (!st) st = tok_add_pre_type_steps(tr->splitter, pre);
  if (st) {
    ag_tok_trainer_free(tr);
    return st;
  }
  *out = tr;
  return AG_OK;
}

static ag_status feed_segment(ag_tok_trainer *tr, const char *text, size_t bytes) {
  if (bytes == 0) return AG_OK;
  tok_scratch *s = &tr->scratch;
  s->norm.size = 0;
  ag_status st = tok_text_append(&s->norm, text, bytes);
  if (!st) st = tok_pretokenize(tr->splitter, s, true);
  for (size_t i = 0; !st && i < s->n_spans; i++)
    st = word_map_add(&tr->words, s->pre.data + s->spans[i].off, s->spans[i].len);
  return st;
}

/* Special tokens in the text (e.g. "<|endoftext|>" between documents) are
 * not counted as words: the text between them is fed separately. */
ag_status ag_tok_trainer_feed(ag_tok_trainer *tr, const char *text, size_t bytes) {
  if (!tr || (!text && bytes)) return ag_error_set(AG_ERR_INVALID, "ag_tok_trainer_feed: NULL");
  size_t seg = 0;
  ag_status st = AG_OK;
  for (size_t pos = 0; !st && pos < bytes; pos++) {
    for (int k = 0; k < tr->n_special; k++) {
      size_t n = strlen(tr->special[k]);
      if (tr->special[k][0] == text[pos] && n <= bytes - pos &&
          !memcmp(text + pos, tr->special[k], n)) {
        st = feed_segment(tr, text + seg, pos - seg);
        seg = pos + n;
        pos = seg - 1;
        break;
      }
    }
  }
  if (!st && seg < bytes) st = feed_segment(tr, text + seg, bytes - seg);
  return st;
}

int64_t ag_tok_trainer_word_count(const ag_tok_trainer *tr) {
  return tr ? tr->words.words.count : 0;
}

static ag_status feed_jsonl(ag_tok_trainer *tr, const char *path, const char *field) {
  ag_jsonl_reader *r;
  ag_status st = ag_jsonl_open(path, &r);
  if (st) return st;
  for (;;) {
    json_t *v = NULL;
    st = ag_jsonl_next(r, &v);
    if (st || !v) break;
    json_t *text = json_object_get(v, field);
    json_t *messages = json_object_get(v, "messages");
    if (json_is_string(text)) {
      st = ag_tok_trainer_feed(tr, json_string_value(text), json_string_length(text));
    } else if (json_is_array(messages)) {
      for (size_t i = 0; !st && i < json_array_size(messages); i++) {
        json_t *c = json_object_get(json_array_get(messages, i), "content");
        if (json_is_string(c))
          st = ag_tok_trainer_feed(tr, json_string_value(c), json_string_length(c));
      }
    } else {
      st = ag_error_set(AG_ERR_FORMAT, "%s line %lld: no string field \"%s\" and no \"messages\"",
                        path, (long long)ag_jsonl_line(r), field);
    }
    json_decref(v);
    if (st) break;
  }
  ag_jsonl_close(r);
  return st;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

ag_status ag_tok_trainer_feed_file(ag_tok_trainer *tr, const char *path, const char *field) {
  if (!tr || !path) return ag_error_set(AG_ERR_INVALID, "ag_tok_trainer_feed_file: NULL");
  if (ends_with(path, ".jsonl") || ends_with(path, ".json"))
    return feed_jsonl(tr, path, field && *field ? field : "text");
  bool is_stdin = !strcmp(path, "-");
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) return ag_error_set(AG_ERR_NOT_FOUND, "cannot open %s", path);
  /* Line by line, each line with its newline (as Hugging Face reads files). */
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  ag_status st = AG_OK;
  while (!st && (n = getline(&line, &cap, f)) > 0) st = ag_tok_trainer_feed(tr, line, (size_t)n);
  if (!st && ferror(f)) st = ag_error_set(AG_ERR_IO, "cannot read %s", path);
  free(line);
  if (!is_stdin) fclose(f);
  return st;
}

/* ---- merging ---------------------------------------------------------------------- */

typedef struct pair_entry {
  int64_t count;
  int32_t a, b;
} pair_entry;

typedef struct merge_state {
  /* words as symbol arrays */
  int32_t *symbols;
  int64_t *start;
  int32_t *length;
  int64_t *word_count;
  int64_t n_words;
  int64_t *stamp; /* last merge that visited the word */
  /* pairs */
  int32_t *slots; /* hash: pair index, -1 empty */
  size_t mask;
  int32_t *pa, *pb;
  int64_t *pcount;
  int32_t **where;
  int32_t *where_len, *where_cap;
  int64_t n_pairs, cap_pairs;
  /* max-heap of (count, a, b) */
  pair_entry *heap;
  size_t n_heap, cap_heap;
  int32_t *touched;
  size_t n_touched, cap_touched;
} merge_state;

static bool entry_better(const pair_entry *x, const pair_entry *y) {
  if (x->count != y->count) return x->count > y->count;
  if (x->a != y->a) return x->a < y->a;
  return x->b < y->b;
}

static ag_status heap_push(merge_state *m, pair_entry e) {
  if (m->n_heap == m->cap_heap) {
    size_t cap = m->cap_heap ? m->cap_heap * 2 : 1024;
    pair_entry *p = realloc(m->heap, cap * sizeof *p);
    if (!p) return ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
    m->heap = p;
    m->cap_heap = cap;
  }
  size_t i = m->n_heap++;
  while (i > 0 && entry_better(&e, &m->heap[(i - 1) / 2])) {
    m->heap[i] = m->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  m->heap[i] = e;
  return AG_OK;
}

static pair_entry heap_pop(merge_state *m) {
  pair_entry top = m->heap[0], last = m->heap[--m->n_heap];
  size_t i = 0, n = m->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && entry_better(&m->heap[c + 1], &m->heap[c])) c++;
    if (!entry_better(&m->heap[c], &last)) break;
    m->heap[i] = m->heap[c];
    i = c;
  }
  if (n) m->heap[i] = last;
  return top;
}

static size_t pair_slot(const merge_state *m, int32_t a, int32_t b) {
  uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
  key ^= key >> 33;
  key *= 0xFF51AFD7ED558CCDull;
  key ^= key >> 33;
  return (size_t)key & m->mask;
}

static ag_status pairs_grow(merge_state *m) {
  int64_t cap = m->cap_pairs ? m->cap_pairs * 2 : 4096;
  int32_t *pa = realloc(m->pa, (size_t)cap * sizeof *pa);
  if (pa) m->pa = pa;
  int32_t *pb = realloc(m->pb, (size_t)cap * sizeof *pb);
  if (pb) m->pb = pb;
  int64_t *pc = realloc(m->pcount, (size_t)cap * sizeof *pc);
  if (pc) m->pcount = pc;
  int32_t **w = realloc(m->where, (size_t)cap * sizeof *w);
  if (w) m->where = w;
  int32_t *wl = realloc(m->where_len, (size_t)cap * sizeof *wl);
  if (wl) m->where_len = wl;
  int32_t *wc = realloc(m->where_cap, (size_t)cap * sizeof *wc);
  if (wc) m->where_cap = wc;
  if (!pa || !pb || !pc || !w || !wl || !wc)
    return ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
  m->cap_pairs = cap;
  /* the hash table stays at most half full */
  size_t size = (size_t)cap * 2;
  int32_t *slots = malloc(size * sizeof *slots);
  if (!slots) return ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
  memset(slots, 0xff, size * sizeof *slots);
  free(m->slots);
  m->slots = slots;
  m->mask = size - 1;
  for (int64_t p = 0; p < m->n_pairs; p++) {
    size_t i = pair_slot(m, m->pa[p], m->pb[p]);
    while (m->slots[i] >= 0) i = (i + 1) & m->mask;
    m->slots[i] = (int32_t)p;
  }
  return AG_OK;
}

/* The index of pair (a, b), created with count 0 if new; -1 on failure. */
static int32_t pair_get(merge_state *m, int32_t a, int32_t b, bool create) {
  if (m->slots) {
    for (size_t i = pair_slot(m, a, b); m->slots[i] >= 0; i = (i + 1) & m->mask) {
      int32_t p = m->slots[i];
      if (m->pa[p] == a && m->pb[p] == b) return p;
    }
  }
  if (!create) return -1;
  if (m->n_pairs == m->cap_pairs && pairs_grow(m)) return -1;
  if (m->n_pairs >= INT32_MAX) return -1;
  int32_t p = (int32_t)m->n_pairs++;
  m->pa[p] = a, m->pb[p] = b, m->pcount[p] = 0;
  m->where[p] = NULL, m->where_len[p] = 0, m->where_cap[p] = 0;
  size_t i = pair_slot(m, a, b);
  while (m->slots[i] >= 0) i = (i + 1) & m->mask;
  m->slots[i] = p;
  return p;
}

static ag_status add_where(merge_state *m, int32_t p, int32_t w) {
  if (m->where_len[p] > 0 && m->where[p][m->where_len[p] - 1] == w) return AG_OK;
  if (m->where_len[p] == m->where_cap[p]) {
    int32_t cap = m->where_cap[p] ? m->where_cap[p] * 2 : 4;
    int32_t *grown = realloc(m->where[p], (size_t)cap * sizeof *grown);
    if (!grown) return ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
    m->where[p] = grown;
    m->where_cap[p] = cap;
  }
  m->where[p][m->where_len[p]++] = w;
  return AG_OK;
}

/* count(a, b) += delta; new occurrences record the word and the pair. */
static ag_status change(merge_state *m, int32_t a, int32_t b, int64_t delta, int32_t w) {
  int32_t p = pair_get(m, a, b, delta > 0);
  if (p < 0) {
    if (delta > 0) return ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
    return AG_OK;
  }
  m->pcount[p] += delta;
  if (delta <= 0) return AG_OK;
  ag_status st = add_where(m, p, w);
  if (st) return st;
  if (m->n_touched == m->cap_touched) {
    size_t cap = m->cap_touched ? m->cap_touched * 2 : 256;
    int32_t *t = realloc(m->touched, cap * sizeof *t);
    if (!t) return ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
    m->touched = t;
    m->cap_touched = cap;
  }
  m->touched[m->n_touched++] = p;
  return AG_OK;
}

static void merge_state_free(merge_state *m) {
  free(m->symbols), free(m->start), free(m->length), free(m->word_count), free(m->stamp);
  free(m->slots), free(m->pa), free(m->pb), free(m->pcount), free(m->where_len), free(m->where_cap);
  for (int64_t p = 0; p < m->n_pairs; p++) free(m->where[p]);
  free(m->where), free(m->heap), free(m->touched);
}

/* Rewrites word w, replacing each (a, b) with n left to right. */
static ag_status merge_word(merge_state *m, int32_t w, int32_t a, int32_t b, int32_t n) {
  int32_t *sym = m->symbols + m->start[w];
  int32_t len = m->length[w], out = 0;
  int64_t c = m->word_count[w];
  ag_status st = AG_OK;
  for (int32_t i = 0; !st && i < len;) {
    if (i + 1 < len && sym[i] == a && sym[i + 1] == b) {
      if (out > 0) {
        st = change(m, sym[out - 1], a, -c, w);
        if (!st) st = change(m, sym[out - 1], n, c, w);
      }
      if (!st && i + 2 < len) {
        st = change(m, b, sym[i + 2], -c, w);
        if (!st) st = change(m, n, sym[i + 2], c, w);
      }
      if (!st) st = change(m, a, b, -c, w);
      sym[out++] = n;
      i += 2;
    } else {
      sym[out++] = sym[i++];
    }
  }
  m->length[w] = out;
  return st;
}

/* The 256 bytes in the order of their byte-level characters (as the
 * Hugging Face trainer sorts its alphabet): printable ASCII first. */
static void byte_order(const uint32_t byte_to_cp[256], int order[256]) {
  for (int b = 0; b < 256; b++) order[b] = b;
  for (int i = 1; i < 256; i++) /* insertion sort: 256 elements, once */
    for (int j = i; j > 0 && byte_to_cp[order[j]] < byte_to_cp[order[j - 1]]; j--) {
      int tmp = order[j];
      order[j] = order[j - 1];
      order[j - 1] = tmp;
    }
}

static int32_t find_any(const ag_tokenizer *t, const char *const *names, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int32_t id = ag_tok_find(t, names[i], strlen(names[i]));
    if (id >= 0) return id;
  }
  return -1;
}

ag_status ag_tok_trainer_finish(ag_tok_trainer *tr, ag_tokenizer **out) {
  if (!tr || !out) return ag_error_set(AG_ERR_INVALID, "ag_tok_trainer_finish: NULL argument");
  *out = NULL;
  ag_tokenizer *t = tok_new();
  merge_state m = {0};
  ag_tok_text key = {0}, text = {0};
  tok_strtab keys = {0}; /* raw bytes of every token, by id */
  ag_status st = t ? AG_OK : ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (st) return st;
  t->model = TOK_MODEL_BPE;
  t->byte_level = true;
  t->pre_type = tr->pre;
  snprintf(t->pre_name, sizeof t->pre_name, "%s", tr->pre->names);
  char *bar = strchr(t->pre_name, '|');
  if (bar) *bar = '\0';

  /* ids: special tokens, then the 256 bytes */
  int order[256] = {0}, byte_id[256] = {0};
  byte_order(t->byte_to_cp, order);
  for (int i = 0; !st && i < tr->n_special; i++)
    st = tok_strtab_push(&keys, tr->special[i], strlen(tr->special[i]));
  for (int i = 0; !st && i < BYTE_COUNT; i++) {
    char c = (char)order[i];
    byte_id[order[i]] = tr->n_special + i;
    st = tok_strtab_push(&keys, &c, 1);
  }

  /* words as symbol arrays */
  m.n_words = tr->words.words.count;
  int64_t total = (int64_t)tr->words.words.size; /* bytes + NULs: enough for every symbol */
  m.symbols = malloc((size_t)(total + 1) * sizeof *m.symbols);
  m.start = malloc((size_t)(m.n_words + 1) * sizeof *m.start);
  m.length = malloc((size_t)(m.n_words + 1) * sizeof *m.length);
  m.word_count = malloc((size_t)(m.n_words + 1) * sizeof *m.word_count);
  m.stamp = calloc((size_t)m.n_words + 1, sizeof *m.stamp);
  if (!st && (!m.symbols || !m.start || !m.length || !m.word_count || !m.stamp))
    st = ag_error_set(AG_ERR_NOMEM, "tokenizer trainer: out of memory");
  int64_t at = 0;
  for (int64_t w = 0; !st && w < m.n_words; w++) {
    size_t n;
    const char *s = tok_strtab_get(&tr->words.words, w, &n);
    if (n > INT32_MAX) n = INT32_MAX;
    m.start[w] = at;
    m.length[w] = (int32_t)n;
    m.word_count[w] = tr->words.counts[w];
    for (size_t i = 0; i < n; i++) m.symbols[at++] = byte_id[(unsigned char)s[i]];
  }
  for (int64_t w = 0; !st && w < m.n_words; w++) {
    const int32_t *sym = m.symbols + m.start[w];
    for (int32_t i = 0; !st && i + 1 < m.length[w]; i++)
      st = change(&m, sym[i], sym[i + 1], m.word_count[w], (int32_t)w);
  }
  for (int64_t p = 0; !st && p < m.n_pairs; p++)
    st = heap_push(&m, (pair_entry){m.pcount[p], m.pa[p], m.pb[p]});
  m.n_touched = 0;

  /* merge */
  int32_t *pairs_out = NULL;
  int64_t n_merges = 0, target = tr->vocab_size - keys.count;
  if (!st && target > 0) {
    pairs_out = malloc((size_t)target * 2 * sizeof *pairs_out);
    if (!pairs_out) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  ag_progress *progress = target > 0 ? ag_progress_begin("merges", target, "merges") : NULL;
  while (!st && n_merges < target && m.n_heap > 0) {
    pair_entry e = heap_pop(&m);
    int32_t p = pair_get(&m, e.a, e.b, false);
    if (p < 0) continue;
    if (m.pcount[p] != e.count) { /* out of date */
      if (m.pcount[p] > 0) st = heap_push(&m, (pair_entry){m.pcount[p], e.a, e.b});
      continue;
    }
    if (e.count < tr->min_frequency) break;
    int32_t new_id = (int32_t)keys.count;
    size_t an, bn;
    const char *a = tok_strtab_get(&keys, e.a, &an);
    key.size = 0;
    st = tok_text_append(&key, a, an);
    const char *b = tok_strtab_get(&keys, e.b, &bn);
    if (!st) st = tok_text_append(&key, b, bn);
    if (!st) st = tok_strtab_push(&keys, key.data, key.size);
    if (st) break;
    pairs_out[2 * n_merges] = e.a;
    pairs_out[2 * n_merges + 1] = e.b;
    n_merges++;
    /* Rewrite every word holding the pair. The where list may name a word
     * twice or a word that lost the pair; the stamp and merge_word's scan
     * make both harmless. */
    m.n_touched = 0;
    for (int32_t k = 0; !st && k < m.where_len[p]; k++) {
      int32_t w = m.where[p][k];
      if (m.stamp[w] == n_merges) continue;
      m.stamp[w] = n_merges;
      st = merge_word(&m, w, e.a, e.b, new_id);
    }
    free(m.where[p]);
    m.where[p] = NULL;
    m.where_len[p] = m.where_cap[p] = 0;
    for (size_t k = 0; !st && k < m.n_touched; k++) {
      int32_t q = m.touched[k];
      if (m.pcount[q] > 0) st = heap_push(&m, (pair_entry){m.pcount[q], m.pa[q], m.pb[q]});
    }
    if (n_merges % 64 == 0) ag_progress_update(progress, n_merges);
  }
  ag_progress_update(progress, n_merges);
  ag_progress_end(progress);

  /* the tokenizer */
  int32_t n_vocab = (int32_t)keys.count;
  if (!st) st = tok_alloc_vocab(t, n_vocab);
  for (int32_t id = 0; !st && id < n_vocab; id++) {
    size_t n;
    const char *s = tok_strtab_get(&keys, id, &n);
    t->flags[id] = TOKF_IN_MODEL;
    st = tok_strtab_push(&t->keys, s, n);
    if (!st) st = tok_strtab_push(&t->pieces, s, n);
    if (st) break;
    if (id < tr->n_special) {
      t->flags[id] |= TOKF_ADDED | TOKF_SPECIAL;
      t->types[id] = TOKT_CONTROL;
      st = tok_strtab_push(&t->vocab, s, n);
    } else {
      text.size = 0;
      st = tok_byte_level_encode(s, n, &text);
      if (!st) st = tok_strtab_push(&t->vocab, text.data, text.size);
    }
  }
  if (!st) st = tok_merge_map_init(&t->merges, n_merges);
  if (!st) {
    t->merge_pairs = pairs_out;
    pairs_out = NULL;
    for (int64_t r = 0; r < n_merges; r++)
      tok_merge_map_insert(&t->merges, t->merge_pairs[2 * r], t->merge_pairs[2 * r + 1], (int32_t)r,
                           tr->n_special + BYTE_COUNT + (int32_t)r);
  }
  if (!st) st = tok_add_pre_type_steps(t, tr->pre);
  if (!st) st = tok_finish(t, "trained tokenizer");
  if (!st) {
    static const char *const bos[] = {"<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>"};
    static const char *const eos[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"};
    static const char *const pad[] = {"<|pad|>", "<pad>"};
    static const char *const unk[] = {"<unk>", "<|unk|>"};
    t->roles[AG_TOK_BOS] = find_any(t, bos, sizeof bos / sizeof *bos);
    t->roles[AG_TOK_EOS] = find_any(t, eos, sizeof eos / sizeof *eos);
    t->roles[AG_TOK_PAD] = find_any(t, pad, sizeof pad / sizeof *pad);
    t->roles[AG_TOK_UNK] = find_any(t, unk, sizeof unk / sizeof *unk);
  }
  free(pairs_out);
  merge_state_free(&m);
  ag_tok_text_free(&key);
  ag_tok_text_free(&text);
  tok_strtab_free(&keys);
  if (st) {
    ag_tok_free(t);
    return st;
  }
  *out = t;
  return AG_OK;
}
