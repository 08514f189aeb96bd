/* BPE by merge rank: the model of GPT-2-style (byte-level) and
 * Hugging Face BPE tokenizers.
 *
 * A word starts as one symbol per byte (byte-level) or per character. The
 * adjacent pair with the lowest merge rank is merged, leftmost first among
 * equal ranks, until no adjacent pair has a rank. Symbols form a linked list
 * over an array and candidate merges sit in a binary heap, so a word of n
 * symbols costs O(n log n); a popped candidate whose symbols have changed
 * since it was pushed is skipped. */
#include "lm/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

static ag_status push_candidate(const ag_tokenizer *t, tok_scratch *s, int32_t left) {
  if (left < 0) return AG_OK;
  int32_t right = s->symbols[left].next;
  if (right < 0) return AG_OK;
  const tok_merge_slot *m =
      tok_merge_map_find(&t->merges, s->symbols[left].id, s->symbols[right].id);
  if (!m) return AG_OK;
  return tok_heap_push(s, (tok_heap_entry){m->rank, left, right, m->result});
}

static ag_status ensure_symbols(tok_scratch *s, size_t n) {
  if (n <= s->cap_symbols) return AG_OK;
  size_t cap = s->cap_symbols ? s->cap_symbols : 64;
  while (cap < n) cap *= 2;
  tok_symbol *p = realloc(s->symbols, cap * sizeof *p);
  if (!p) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  s->symbols = p;
  s->cap_symbols = cap;
  return AG_OK;
}

static void add_symbol(tok_scratch *s, int32_t *count, int32_t id, uint32_t start, uint32_t len) {
  int32_t k = (*count)++;
  s->symbols[k] = (tok_symbol){id, k - 1, -1, start, len};
  if (k > 0) s->symbols[k - 1].next = k;
}

ag_status tok_bpe_word(const ag_tokenizer *t, tok_scratch *s, const char *word, size_t n,
                       ag_tok_ids *out) {
  if (n == 0) return AG_OK;
  if (n > UINT32_MAX) return ag_error_set(AG_ERR_INVALID, "tokenizer: a word of %zu bytes", n);
  if (t->ignore_merges) {
    int32_t id = tok_index_find(&t->key_index, &t->keys, word, n);
    if (id >= 0) return ag_tok_ids_push(out, id);
  }
  /* Byte fallback can turn one character into 4 symbols. */
  ag_status st = ensure_symbols(s, n + 1);
  if (st) return st;
  const unsigned char *u = (const unsigned char *)word;
  int32_t count = 0;
  int32_t unk = t->roles[AG_TOK_UNK];
  for (size_t i = 0; i < n;) {
    size_t len = 1;
    if (!t->byte_level) {
      len = tok_utf8_len(u + i, n - i);
      if (len == 0) len = 1;
    }
    int32_t id = tok_index_find(&t->key_index, &t->keys, word + i, len);
    if (id >= 0) {
      add_symbol(s, &count, id, (uint32_t)i, (uint32_t)len);
    } else {
      bool all_bytes = t->byte_fallback;
      for (size_t k = 0; all_bytes && k < len; k++) all_bytes = t->byte_ids[u[i + k]] >= 0;
      if (all_bytes) {
        for (size_t k = 0; k < len; k++)
          add_symbol(s, &count, t->byte_ids[u[i + k]], (uint32_t)(i + k), 1);
      } else if (unk >= 0) {
        /* fuse_unk: consecutive unknown characters become one <unk> */
        if (t->fuse_unk && count > 0 && s->symbols[count - 1].id == unk)
          s->symbols[count - 1].len += (uint32_t)len;
        else
          add_symbol(s, &count, unk, (uint32_t)i, (uint32_t)len);
      }
      /* else: no way to represent it, dropped (as llama.cpp does) */
    }
    i += len;
  }

  s->n_heap = 0;
  for (int32_t k = 0; k + 1 < count && !st; k++) st = push_candidate(t, s, k);
  while (!st && s->n_heap > 0) {
    tok_heap_entry e = tok_heap_pop(s);
    tok_symbol *left = &s->symbols[e.left];
    /* Stale: the left symbol was merged away or its neighbour changed. */
    if (left->len == 0 || left->next != e.right) continue;
    tok_symbol *right = &s->symbols[e.right];
    const tok_merge_slot *m = tok_merge_map_find(&t->merges, left->id, right->id);
    if (!m || m->result != e.id) continue;
    left->id = m->result;
    left->len += right->len;
    right->len = 0;
    left->next = right->next;
    if (right->next >= 0) s->symbols[right->next].prev = e.left;
    st = push_candidate(t, s, left->prev);
    if (!st) st = push_candidate(t, s, e.left);
  }
  for (int32_t k = 0; !st && k >= 0 && count > 0; k = s->symbols[k].next)
    st = ag_tok_ids_push(out, s->symbols[k].id);
  return st;
}
