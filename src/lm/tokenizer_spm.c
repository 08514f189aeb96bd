/* SentencePiece BPE as llama.cpp runs it for GGUF "llama" vocabularies.
 *
 * The segment (spaces already turned into U+2581 and a leading one added)
 * starts as one symbol per UTF-8 character. Two adjacent symbols may merge
 * when their concatenation is a vocabulary string; the merge whose result
 * has the highest score goes first (leftmost among equal scores). What is
 * left is looked up; a character missing from the vocabulary falls back to
 * its <0xXX> byte tokens (or <unk> when those are missing too). */
#include "lm/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* A float score as a heap priority: larger scores must pop first, and the
 * heap pops the smallest priority. The bit trick maps floats to integers in
 * the same order (negatives reversed), then the sign is flipped. */
static int64_t score_priority(float score) {
  uint32_t bits;
  memcpy(&bits, &score, sizeof bits);
  uint32_t ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return -(int64_t)ordered;
}

static ag_status push_candidate(const ag_tokenizer *t, tok_scratch *s, const char *word,
                                int32_t left) {
  if (left < 0) return AG_OK;
  int32_t right = s->symbols[left].next;
  if (right < 0) return AG_OK;
  const tok_symbol *a = &s->symbols[left], *b = &s->symbols[right];
  size_t len = (size_t)a->len + b->len;
  int32_t id = tok_index_find(&t->key_index, &t->keys, word + a->start, len);
  if (id < 0) return AG_OK;
  float score = t->scores ? t->scores[id] : 0.0f;
  return tok_heap_push(s, (tok_heap_entry){score_priority(score), left, right, (int32_t)len});
}

static ag_status emit_bytes(const ag_tokenizer *t, const unsigned char *p, size_t n,
                            ag_tok_ids *out) {
  for (size_t k = 0; k < n; k++) {
    int32_t id = t->byte_ids[p[k]];
    if (id < 0) id = t->roles[AG_TOK_UNK];
    if (id < 0) continue; /* nothing can stand for this byte */
    ag_status st = ag_tok_ids_push(out, id);
    if (st) return st;
  }
  return AG_OK;
}

ag_status tok_spm_word(const ag_tokenizer *t, tok_scratch *s, const char *word, size_t n,
                       ag_tok_ids *out) {
  if (n == 0) return AG_OK;
  if (n > INT32_MAX) return ag_error_set(AG_ERR_INVALID, "tokenizer: a segment of %zu bytes", n);
  if (n + 1 > s->cap_symbols) {
    size_t cap = s->cap_symbols ? s->cap_symbols : 64;
    while (cap < n + 1) cap *= 2;
    tok_symbol *p = realloc(s->symbols, cap * sizeof *p);
    if (!p) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
    s->symbols = p;
    s->cap_symbols = cap;
  }
  const unsigned char *u = (const unsigned char *)word;
  int32_t count = 0;
  for (size_t i = 0; i < n;) {
    size_t len = tok_utf8_len(u + i, n - i);
    if (len == 0) len = 1; /* an invalid byte is a symbol of its own */
    s->symbols[count] = (tok_symbol){-1, count - 1, -1, (uint32_t)i, (uint32_t)len};
    if (count > 0) s->symbols[count - 1].next = count;
    count++;
    i += len;
  }

  ag_status st = AG_OK;
  s->n_heap = 0;
  for (int32_t k = 0; k + 1 < count && !st; k++) st = push_candidate(t, s, word, k);
  while (!st && s->n_heap > 0) {
    tok_heap_entry e = tok_heap_pop(s);
    tok_symbol *left = &s->symbols[e.left];
    if (left->len == 0 || left->next != e.right) continue;
    tok_symbol *right = &s->symbols[e.right];
    if ((int64_t)left->len + right->len != e.id) continue; /* stale */
    left->len += right->len;
    right->len = 0;
    left->next = right->next;
    if (right->next >= 0) s->symbols[right->next].prev = e.left;
    st = push_candidate(t, s, word, left->prev);
    if (!st) st = push_candidate(t, s, word, e.left);
  }
  for (int32_t k = 0; !st && k >= 0; k = s->symbols[k].next) {
    const tok_symbol *sym = &s->symbols[k];
    int32_t id = tok_index_find(&t->key_index, &t->keys, word + sym->start, sym->len);
    st = id >= 0 ? ag_tok_ids_push(out, id) : emit_bytes(t, u + sym->start, sym->len, out);
  }
  return st;
}
