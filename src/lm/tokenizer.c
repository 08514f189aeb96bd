/* Tokenizer core: vocabulary tables and indexes, added-token splitting,
 * encode/decode, and the load dispatch. The model algorithms are in
 * tokenizer_bpe.c and tokenizer_spm.c, the text pipeline in
 * tokenizer_pretok.c and tokenizer_normalize.c, the file formats in
 * tokenizer_json.c and tokenizer_gguf.c. */
#include "lm/tokenizer_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A token id must fit this bound: real vocabularies have < 1M entries, and a
 * corrupt file must not make us allocate gigabytes. */
#define TOK_MAX_VOCAB (1 << 24)

/* ---- growable arrays ------------------------------------------------------------ */

static bool grow(void **data, size_t *capacity, size_t need, size_t elem) {
  if (need <= *capacity) return true;
  size_t cap = *capacity ? *capacity : 16;
  while (cap < need) cap *= 2;
  void *p = realloc(*data, cap * elem);
  if (!p) return false;
  *data = p;
  *capacity = cap;
  return true;
}

ag_status tok_text_append(ag_tok_text *t, const void *bytes, size_t n) {
  if (!grow((void **)&t->data, &t->capacity, t->size + n + 1, 1))
    return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  if (n) memcpy(t->data + t->size, bytes, n);
  t->size += n;
  t->data[t->size] = '\0';
  return AG_OK;
}

void ag_tok_text_free(ag_tok_text *text) {
  if (!text) return;
  free(text->data);
  *text = (ag_tok_text){0};
}

ag_status ag_tok_ids_push(ag_tok_ids *v, int32_t id) {
  if (v->count == v->capacity) {
    size_t cap = (size_t)v->capacity;
    if (!grow((void **)&v->ids, &cap, (size_t)v->count + 1, sizeof *v->ids))
      return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
    v->capacity = (int64_t)cap;
  }
  v->ids[v->count++] = id;
  return AG_OK;
}

void ag_tok_ids_free(ag_tok_ids *v) {
  if (!v) return;
  free(v->ids);
  *v = (ag_tok_ids){0};
}

/* ---- string tables ---------------------------------------------------------------- */

ag_status tok_strtab_push(tok_strtab *s, const char *bytes, size_t n) {
  size_t cap = (size_t)s->offsets_capacity;
  if (!grow((void **)&s->offsets, &cap, (size_t)s->count + 2, sizeof *s->offsets) ||
      !grow((void **)&s->data, &s->capacity, s->size + n + 1, 1))
    return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  s->offsets_capacity = (int64_t)cap;
  if (s->count == 0) s->offsets[0] = 0;
  if (n) memcpy(s->data + s->size, bytes, n);
  s->data[s->size + n] = '\0';
  s->size += n + 1;
  s->count++;
  s->offsets[s->count] = s->size;
  return AG_OK;
}

void tok_strtab_free(tok_strtab *s) {
  free(s->data);
  free(s->offsets);
  *s = (tok_strtab){0};
}

/* ---- hashing ---------------------------------------------------------------------- */

/* A multiply-xorshift hash over 8-byte words: fast on short tokens, good
 * enough spread for open addressing with a power-of-two table. */
uint64_t tok_hash_bytes(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xBF58476D1CE4E5B9ull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
  h = (h ^ w) * 0x94D049BB133111EBull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

static size_t table_size_for(int64_t expected) {
  size_t size = 16;
  while (size < (size_t)expected * 2 + 1) size *= 2; /* load factor <= 0.5 */
  return size;
}

ag_status tok_index_init(tok_index *x, int64_t expected) {
  size_t size = table_size_for(expected);
  x->slots = malloc(size * sizeof *x->slots);
  if (!x->slots) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  memset(x->slots, 0xff, size * sizeof *x->slots);
  x->mask = size - 1;
  return AG_OK;
}

void tok_index_insert(tok_index *x, const tok_strtab *keys, int32_t id) {
  size_t n;
  const char *s = tok_strtab_get(keys, id, &n);
  for (size_t i = (size_t)tok_hash_bytes(s, n) & x->mask;; i = (i + 1) & x->mask) {
    int32_t at = x->slots[i];
    if (at < 0) {
      x->slots[i] = id;
      return;
    }
    size_t m;
    const char *other = tok_strtab_get(keys, at, &m);
    if (m == n && memcmp(other, s, n) == 0) return;
  }
}

int32_t tok_index_find(const tok_index *x, const tok_strtab *keys, const char *s, size_t n) {
  if (!x->slots) return -1;
  for (size_t i = (size_t)tok_hash_bytes(s, n) & x->mask;; i = (i + 1) & x->mask) {
    int32_t at = x->slots[i];
    if (at < 0) return -1;
    size_t m;
    const char *other = tok_strtab_get(keys, at, &m);
    if (m == n && memcmp(other, s, n) == 0) return at;
  }
}

void tok_index_free(tok_index *x) {
  free(x->slots);
  *x = (tok_index){0};
}

static uint64_t pair_key(int32_t left, int32_t right) {
  return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

static size_t pair_hash(uint64_t key) {
  key ^= key >> 33;
  key *= 0xFF51AFD7ED558CCDull;
  key ^= key >> 33;
  key *= 0xC4CEB9FE1A85EC53ull;
  key ^= key >> 33;
  return (size_t)key;
}

ag_status tok_merge_map_init(tok_merge_map *m, int64_t expected) {
  size_t size = table_size_for(expected);
  m->slots = malloc(size * sizeof *m->slots);
  if (!m->slots) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  for (size_t i = 0; i < size; i++) m->slots[i].key = UINT64_MAX;
  m->mask = size - 1;
  m->count = 0;
  return AG_OK;
}

bool tok_merge_map_insert(tok_merge_map *m, int32_t left, int32_t right, int32_t rank,
                          int32_t result) {
  uint64_t key = pair_key(left, right);
  for (size_t i = pair_hash(key) & m->mask;; i = (i + 1) & m->mask) {
    if (m->slots[i].key == UINT64_MAX) {
      m->slots[i] = (tok_merge_slot){key, rank, result};
      m->count++;
      return true;
    }
    if (m->slots[i].key == key) return false;
  }
}

const tok_merge_slot *tok_merge_map_find(const tok_merge_map *m, int32_t left, int32_t right) {
  if (!m->slots) return NULL;
  uint64_t key = pair_key(left, right);
  for (size_t i = pair_hash(key) & m->mask;; i = (i + 1) & m->mask) {
    if (m->slots[i].key == key) return &m->slots[i];
    if (m->slots[i].key == UINT64_MAX) return NULL;
  }
}

void tok_merge_map_free(tok_merge_map *m) {
  free(m->slots);
  *m = (tok_merge_map){0};
}

/* ---- heap ------------------------------------------------------------------------- */

static bool heap_less(const tok_heap_entry *a, const tok_heap_entry *b) {
  return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

ag_status tok_heap_push(tok_scratch *s, tok_heap_entry e) {
  if (!grow((void **)&s->heap, &s->cap_heap, s->n_heap + 1, sizeof *s->heap))
    return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  size_t i = s->n_heap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(&e, &s->heap[parent])) break;
    s->heap[i] = s->heap[parent];
    i = parent;
  }
  s->heap[i] = e;
  return AG_OK;
}

tok_heap_entry tok_heap_pop(tok_scratch *s) {
  tok_heap_entry top = s->heap[0];
  tok_heap_entry last = s->heap[--s->n_heap];
  size_t i = 0, n = s->n_heap;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_less(&s->heap[child + 1], &s->heap[child])) child++;
    if (!heap_less(&s->heap[child], &last)) break;
    s->heap[i] = s->heap[child];
    i = child;
  }
  if (n) s->heap[i] = last;
  return top;
}

/* ---- UTF-8 and the byte-level alphabet ----------------------------------------------- */

size_t tok_utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t min;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, min = 0x10000;
  else
    return 0;
  if (n < len) return 0;
  uint32_t cp = c & (0x7F >> len);
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

size_t tok_utf8_put(uint32_t cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18);
  out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes take the code points 256, 257, ... in byte order. */
static bool byte_is_printable(unsigned b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

void tok_byte_level_table(uint32_t byte_to_cp[256]) {
  uint32_t next = 256;
  for (unsigned b = 0; b < 256; b++) byte_to_cp[b] = byte_is_printable(b) ? b : next++;
}

/* The inverse: code points 0..323 back to bytes (-1 outside the alphabet),
 * built once. */
static int16_t cp_to_byte[324];
static pthread_once_t cp_to_byte_once = PTHREAD_ONCE_INIT;
static void build_cp_to_byte(void) {
  uint32_t table[256];
  tok_byte_level_table(table);
  for (int cp = 0; cp < 324; cp++) cp_to_byte[cp] = -1;
  for (int b = 0; b < 256; b++) cp_to_byte[table[b]] = (int16_t)b;
}

int64_t tok_byte_level_decode(const char *s, size_t n, char *out) {
  pthread_once(&cp_to_byte_once, build_cp_to_byte);
  const unsigned char *u = (const unsigned char *)s;
  int64_t k = 0;
  for (size_t i = 0; i < n;) {
    size_t len = tok_utf8_len(u + i, n - i);
    if (len == 0 || len > 2) return -1;
    uint32_t cp = len == 1 ? u[i] : ((uint32_t)(u[i] & 0x1F) << 6 | (u[i + 1] & 0x3F));
    if (cp >= 324 || cp_to_byte[cp] < 0) return -1;
    out[k++] = (char)cp_to_byte[cp];
    i += len;
  }
  return k;
}

ag_status tok_byte_level_encode(const char *s, size_t n, ag_tok_text *out) {
  uint32_t table[256];
  tok_byte_level_table(table);
  for (size_t i = 0; i < n; i++) {
    char buf[4];
    size_t k = tok_utf8_put(table[(unsigned char)s[i]], buf);
    ag_status st = tok_text_append(out, buf, k);
    if (st) return st;
  }
  return AG_OK;
}

/* ---- building ------------------------------------------------------------------------- */

ag_tokenizer *tok_new(void) {
  ag_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  for (int r = 0; r < AG_TOK_ROLE_COUNT; r++) t->roles[r] = -1;
  for (int b = 0; b < 256; b++) t->byte_ids[b] = -1;
  tok_byte_level_table(t->byte_to_cp);
  return t;
}

ag_status tok_alloc_vocab(ag_tokenizer *t, int32_t n_vocab) {
  if (n_vocab <= 0 || n_vocab > TOK_MAX_VOCAB)
    return ag_error_set(AG_ERR_FORMAT, "vocabulary size %d is out of range (1..%d)", n_vocab,
                        TOK_MAX_VOCAB);
  t->n_vocab = n_vocab;
  t->types = malloc((size_t)n_vocab);
  t->flags = calloc((size_t)n_vocab, 1);
  if (!t->types || !t->flags) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  memset(t->types, TOKT_NORMAL, (size_t)n_vocab);
  return AG_OK;
}

ag_status tok_compute_byte_ids(ag_tokenizer *t) {
  for (int b = 0; b < 256; b++) {
    static const char hex[] = "0123456789ABCDEF";
    char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
    t->byte_ids[b] = tok_index_find(&t->vocab_index, &t->vocab, name, 6);
  }
  return AG_OK;
}

/* Added tokens sorted by first byte, then longest first: the first match in
 * a bucket is the longest one starting there. */
typedef struct added_key {
  int32_t id;
  unsigned char first;
  size_t len;
} added_key;

static int added_cmp(const void *a, const void *b) {
  const added_key *x = a, *y = b;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  if (x->len != y->len) return x->len > y->len ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

ag_status tok_finish(ag_tokenizer *t, const char *source) {
  if (t->vocab.count != t->n_vocab || t->keys.count != t->n_vocab || t->pieces.count != t->n_vocab)
    return ag_error_set(AG_ERR_INTERNAL, "%s: vocabulary tables are incomplete", source);
  bool have_vocab_index = t->vocab_index.slots != NULL; /* a loader may build it early */
  ag_status st = tok_index_init(&t->key_index, t->n_vocab);
  if (!st && !have_vocab_index) st = tok_index_init(&t->vocab_index, t->n_vocab);
  if (st) return st;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    size_t n;
    tok_strtab_get(&t->keys, id, &n);
    if ((t->flags[id] & TOKF_IN_MODEL) && n > 0) tok_index_insert(&t->key_index, &t->keys, id);
    if (!have_vocab_index) tok_index_insert(&t->vocab_index, &t->vocab, id);
  }
  tok_compute_byte_ids(t);

  int32_t n_added = 0;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    size_t n;
    tok_strtab_get(&t->vocab, id, &n);
    if ((t->flags[id] & TOKF_ADDED) && n > 0) n_added++;
  }
  t->n_added = n_added;
  free(t->added_sorted);
  t->added_sorted = malloc(((size_t)n_added + 1) * sizeof *t->added_sorted);
  added_key *keys = malloc(((size_t)n_added + 1) * sizeof *keys);
  if (!t->added_sorted || !keys) {
    free(keys);
    return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  }
  int32_t k = 0;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    size_t n;
    const char *s = tok_strtab_get(&t->vocab, id, &n);
    if ((t->flags[id] & TOKF_ADDED) && n > 0) keys[k++] = (added_key){id, (unsigned char)s[0], n};
  }
  qsort(keys, (size_t)n_added, sizeof *keys, added_cmp);
  int32_t pos = 0;
  for (int b = 0; b <= 256; b++) {
    t->added_start[b] = pos;
    while (b < 256 && pos < n_added && keys[pos].first == b) pos++;
  }
  for (int32_t i = 0; i < n_added; i++) t->added_sorted[i] = keys[i].id;
  free(keys);
  return AG_OK;
}

void ag_tok_free(ag_tokenizer *t) {
  if (!t) return;
  tok_strtab_free(&t->vocab);
  tok_strtab_free(&t->keys);
  tok_strtab_free(&t->pieces);
  free(t->types);
  free(t->flags);
  free(t->scores);
  tok_index_free(&t->key_index);
  tok_index_free(&t->vocab_index);
  tok_merge_map_free(&t->merges);
  free(t->merge_pairs);
  free(t->added_sorted);
  for (int i = 0; i < t->n_norms; i++) {
    free(t->norms[i].a);
    free(t->norms[i].b);
    pcre2_code_free(t->norms[i].re);
  }
  free(t->norms);
  for (int i = 0; i < t->n_pres; i++) pcre2_code_free(t->pres[i].re);
  free(t->pres);
  ag_tok_ids_free(&t->prefix);
  ag_tok_ids_free(&t->suffix);
  json_decref(t->hf_sections);
  free(t);
}

/* ---- encoding ------------------------------------------------------------------------- */

void tok_scratch_free(tok_scratch *s) {
  ag_tok_text_free(&s->norm);
  ag_tok_text_free(&s->pre);
  free(s->spans);
  free(s->spans2);
  free(s->symbols);
  free(s->heap);
  pcre2_match_data_free(s->match);
  pcre2_match_context_free(s->match_context);
  pcre2_jit_stack_free(s->jit_stack);
  *s = (tok_scratch){0};
}

static bool is_space_byte(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
         c >= 0x80;
}

/* The added token matching at pos (the longest), or -1. */
static int32_t added_at(const ag_tokenizer *t, const char *text, size_t n, size_t pos,
                        unsigned flags, size_t *len) {
  unsigned char first = (unsigned char)text[pos];
  for (int32_t k = t->added_start[first]; k < t->added_start[first + 1]; k++) {
    int32_t id = t->added_sorted[k];
    size_t m;
    const char *s = tok_strtab_get(&t->vocab, id, &m);
    if (m > n - pos || memcmp(text + pos, s, m) != 0) continue;
    if ((flags & AG_TOK_SPLIT_SPECIAL) && (t->flags[id] & TOKF_SPECIAL)) continue;
    if (t->flags[id] & TOKF_SINGLE_WORD) {
      if (pos > 0 && is_word_byte((unsigned char)text[pos - 1])) continue;
      if (pos + m < n && is_word_byte((unsigned char)text[pos + m])) continue;
    }
    *len = m;
    return id;
  }
  return -1;
}

static ag_status encode_segment(const ag_tokenizer *t, tok_scratch *s, const char *text, size_t n,
                                bool first, ag_tok_ids *out) {
  if (n == 0) return AG_OK;
  ag_status st = tok_normalize(t, s, text, n);
  if (st || s->norm.size == 0) return st;
  st = tok_pretokenize(t, s, first);
  for (size_t i = 0; !st && i < s->n_spans; i++) {
    const char *word = s->pre.data + s->spans[i].off;
    st = t->model == TOK_MODEL_SPM ? tok_spm_word(t, s, word, s->spans[i].len, out)
                                   : tok_bpe_word(t, s, word, s->spans[i].len, out);
  }
  return st;
}

ag_status ag_tok_encode(const ag_tokenizer *t, const char *text, size_t bytes, unsigned flags,
                        ag_tok_ids *out) {
  if (!t || !out || (!text && bytes))
    return ag_error_set(AG_ERR_INVALID, "ag_tok_encode: NULL argument");
  tok_scratch s = {0};
  ag_status st = AG_OK;
  if (flags & AG_TOK_ADD_SPECIAL)
    for (int64_t i = 0; !st && i < t->prefix.count; i++)
      st = ag_tok_ids_push(out, t->prefix.ids[i]);
  size_t seg = 0, pos = 0;
  while (!st && pos < bytes) {
    size_t len = 0;
    int32_t id = t->n_added ? added_at(t, text, bytes, pos, flags, &len) : -1;
    if (id < 0) {
      pos++;
      continue;
    }
    size_t seg_end = pos, next = pos + len;
    if (t->flags[id] & TOKF_LSTRIP)
      while (seg_end > seg && is_space_byte((unsigned char)text[seg_end - 1])) seg_end--;
    if (t->flags[id] & TOKF_RSTRIP)
      while (next < bytes && is_space_byte((unsigned char)text[next])) next++;
    st = encode_segment(t, &s, text + seg, seg_end - seg, seg == 0, out);
    if (!st) st = ag_tok_ids_push(out, id);
    seg = pos = next;
  }
  if (!st) st = encode_segment(t, &s, text + seg, bytes - seg, seg == 0, out);
  if (flags & AG_TOK_ADD_SPECIAL)
    for (int64_t i = 0; !st && i < t->suffix.count; i++)
      st = ag_tok_ids_push(out, t->suffix.ids[i]);
  tok_scratch_free(&s);
  return st;
}

/* ---- decoding ------------------------------------------------------------------------- */

const char *ag_tok_piece(const ag_tokenizer *t, int32_t id, size_t *bytes) {
  size_t n = 0;
  const char *p = NULL;
  if (t && id >= 0 && id < t->n_vocab) p = tok_strtab_get(&t->pieces, id, &n);
  if (bytes) *bytes = n;
  return p;
}

ag_status ag_tok_decode(const ag_tokenizer *t, const int32_t *ids, int64_t count, unsigned flags,
                        ag_tok_text *out) {
  if (!t || !out || (!ids && count > 0))
    return ag_error_set(AG_ERR_INVALID, "ag_tok_decode: NULL argument");
  size_t start = out->size;
  ag_status st = tok_text_append(out, "", 0);
  bool first = true;
  for (int64_t i = 0; !st && i < count; i++) {
    int32_t id = ids[i];
    if (id < 0 || id >= t->n_vocab)
      return ag_error_set(AG_ERR_INVALID, "token id %d is outside the vocabulary (0..%d)", id,
                          t->n_vocab - 1);
    if ((flags & AG_TOK_SKIP_SPECIAL) && (t->flags[id] & TOKF_SPECIAL)) continue;
    if (t->json_no_decoder && !first) st = tok_text_append(out, " ", 1);
    size_t n;
    const char *p = tok_strtab_get(&t->pieces, id, &n);
    if (!st) st = tok_text_append(out, p, n);
    first = false;
  }
  if (st || t->strip_len == 0) return st;
  /* The decoder's Strip: up to strip_start copies at the start of this
   * call's text, strip_stop at its end. */
  char *text = out->data + start;
  size_t len = out->size - start, cut = 0;
  for (int k = 0; k < t->strip_start && len - cut >= t->strip_len &&
                  memcmp(text + cut, t->strip, t->strip_len) == 0;
       k++)
    cut += t->strip_len;
  memmove(text, text + cut, len - cut);
  len -= cut;
  for (int k = 0; k < t->strip_stop && len >= t->strip_len &&
                  memcmp(text + len - t->strip_len, t->strip, t->strip_len) == 0;
       k++)
    len -= t->strip_len;
  out->size = start + len;
  out->data[out->size] = '\0';
  return AG_OK;
}

/* ---- the vocabulary ------------------------------------------------------------------- */

int32_t ag_tok_vocab_size(const ag_tokenizer *t) { return t ? t->n_vocab : 0; }

const char *ag_tok_token_text(const ag_tokenizer *t, int32_t id, size_t *bytes) {
  size_t n = 0;
  const char *p = NULL;
  if (t && id >= 0 && id < t->n_vocab) p = tok_strtab_get(&t->vocab, id, &n);
  if (bytes) *bytes = n;
  return p;
}

int32_t ag_tok_find(const ag_tokenizer *t, const char *text, size_t bytes) {
  if (!t || !text) return -1;
  return tok_index_find(&t->vocab_index, &t->vocab, text, bytes);
}

bool ag_tok_is_special(const ag_tokenizer *t, int32_t id) {
  return t && id >= 0 && id < t->n_vocab && (t->flags[id] & TOKF_SPECIAL);
}

int32_t ag_tok_special_id(const ag_tokenizer *t, ag_tok_role role) {
  if (!t || (int)role < 0 || role >= AG_TOK_ROLE_COUNT) return -1;
  return t->roles[role];
}

const char *ag_tok_model_name(const ag_tokenizer *t) {
  if (!t) return "none";
  if (t->model == TOK_MODEL_SPM) return "SentencePiece (llama.cpp)";
  if (t->byte_level) return "byte-level BPE";
  return t->byte_fallback ? "BPE with byte fallback" : "BPE";
}

const char *ag_tok_pre_name(const ag_tokenizer *t) { return t ? t->pre_name : ""; }

int64_t ag_tok_merge_count(const ag_tokenizer *t) { return t ? t->merges.count : 0; }

/* ---- loading -------------------------------------------------------------------------- */

ag_status ag_tok_load(const char *path, ag_tokenizer **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "ag_tok_load: NULL argument");
  *out = NULL;
  if (!path) return ag_error_set(AG_ERR_INVALID, "ag_tok_load: NULL path");
  struct stat sb;
  if (stat(path, &sb) != 0)
    return ag_error_set(AG_ERR_NOT_FOUND, "tokenizer %s: no such file or folder", path);
  if (S_ISDIR(sb.st_mode)) {
    size_t n = strlen(path);
    char *file = malloc(n + 20);
    if (!file) return ag_error_set(AG_ERR_NOMEM, "out of memory");
    snprintf(file, n + 20, "%s/tokenizer.json", path);
    ag_status st = AG_OK;
    if (!ag_file_exists(file))
      st = ag_error_set(AG_ERR_NOT_FOUND, "model folder %s has no tokenizer.json", path);
    else
      st = ag_tok_load_json(file, out);
    free(file);
    return st;
  }
  FILE *f = fopen(path, "rb");
  if (!f) return ag_error_set(AG_ERR_IO, "cannot open tokenizer %s", path);
  char magic[4] = {0};
  size_t got = fread(magic, 1, 4, f);
  fclose(f);
  if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return ag_tok_load_gguf(path, out);
  return ag_tok_load_json(path, out);
}
