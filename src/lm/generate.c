/* Generation: prompts of different lengths prefilled together into one KV
 * cache, then one decoding step per token for the sequences still running;
 * each sequence samples from its own stream, turns its tokens into text as
 * they come (UTF-8 and stop strings held back until settled) and ends at
 * EOS, a stop string, max_new_tokens or the end of the context. */
#include "agora/generate.h"

#include <stdlib.h>
#include <string.h>

/* Prompt tokens per sequence per prefill call: bounds the step's scratch. */
#define PREFILL_CHUNK_TOKENS 256
/* Prompt tokens decoded before the first generated one, so that the
 * decoder's start-of-text rule (SentencePiece's leading space) sees what
 * precedes it. */
#define PIECE_CONTEXT_TOKENS 4

ag_generate_options ag_generate_defaults(void) {
  return (ag_generate_options){.sampling = ag_sampling_defaults(), .max_new_tokens = 256};
}

const char *ag_finish_reason_name(ag_finish_reason r) {
  switch (r) {
  case AG_FINISH_LENGTH: return "length";
  case AG_FINISH_EOS: return "eos";
  case AG_FINISH_STOP: return "stop";
  case AG_FINISH_CONTEXT: return "context";
  }
  return "unknown";
}

void ag_generation_free(ag_generation *g, int64_t n) {
  for (int64_t i = 0; g && i < n; i++) {
    ag_tok_text_free(&g[i].text);
    ag_tok_ids_free(&g[i].tokens);
    memset(&g[i], 0, sizeof g[i]);
  }
}

/* ---- text of a sequence ------------------------------------------------------------- */

typedef struct sequence {
  ag_generation *out;
  const int32_t *prompt; /* after truncation: ids[0..prompt_len) feed the model */
  int64_t prompt_len;
  int32_t *owned_prompt; /* when truncation had to splice BOS back in */
  ag_tok_ids history;    /* prompt + drawn ids, for the repetition penalty */
  ag_rng rng;
  int64_t index;
  size_t emitted; /* bytes of out->text already given to on_text */
  bool done;
} sequence;

static ag_status text_append(ag_tok_text *t, const char *bytes, size_t n) {
  if (t->size + n + 1 > t->capacity) {
    size_t cap = t->capacity ? t->capacity : 64;
    while (cap < t->size + n + 1) cap *= 2;
    char *grown = realloc(t->data, cap);
    if (!grown) return ag_error_set(AG_ERR_NOMEM, "generate: out of memory");
    t->data = grown;
    t->capacity = cap;
  }
  if (n) memcpy(t->data + t->size, bytes, n);
  t->size += n;
  t->data[t->size] = '\0';
  return AG_OK;
}

/* The text the first drawn token adds after the end of the prompt:
 * decode(context + token) minus decode(context). */
static ag_status first_piece(const ag_lm *lm, const sequence *s, int32_t token, ag_tok_text *out) {
  int64_t k = s->prompt_len < PIECE_CONTEXT_TOKENS ? s->prompt_len : PIECE_CONTEXT_TOKENS;
  int32_t ids[PIECE_CONTEXT_TOKENS + 1];
  memcpy(ids, s->prompt + s->prompt_len - k, (size_t)k * sizeof(int32_t));
  ids[k] = token;
  ag_tok_text before = {0}, after = {0};
  ag_status st = ag_tok_decode(lm->tokenizer, ids, k, AG_TOK_SKIP_SPECIAL, &before);
  if (!st) st = ag_tok_decode(lm->tokenizer, ids, k + 1, AG_TOK_SKIP_SPECIAL, &after);
  if (!st) {
    size_t common = after.size >= before.size &&
                            (before.size == 0 || !memcmp(after.data, before.data, before.size))
                        ? before.size
                        : 0;
    st = text_append(out, after.data + common, after.size - common);
  }
  ag_tok_text_free(&before);
  ag_tok_text_free(&after);
  return st;
}

/* Where the earliest stop string starts in text at or after `from`, or -1. */
static int64_t find_stop(const ag_generate_options *o, const ag_tok_text *t, size_t from) {
  int64_t best = -1;
  for (int i = 0; i < o->stop_count; i++) {
    size_t n = strlen(o->stop[i]);
    if (n == 0 || t->size < n) continue;
    size_t start = from >= n - 1 ? from - (n - 1) : 0;
    for (size_t p = start; p + n <= t->size; p++)
      if (!memcmp(t->data + p, o->stop[i], n)) {
        if (best < 0 || (int64_t)p < best) best = (int64_t)p;
        break;
      }
  }
  return best;
}

/* Bytes at the end of text that may still become a stop string. */
static size_t stop_prefix_at_end(const ag_generate_options *o, const ag_tok_text *t) {
  size_t hold = 0;
  for (int i = 0; i < o->stop_count; i++) {
    size_t n = strlen(o->stop[i]);
    for (size_t k = n > 0 ? n - 1 : 0; k > hold; k--)
      if (k <= t->size && !memcmp(t->data + t->size - k, o->stop[i], k)) {
        hold = k;
        break;
      }
  }
  return hold;
}

/* The end of the last whole UTF-8 character at or before `end`: a lead byte
 * whose continuation bytes have not all arrived is held back. */
static size_t utf8_settled(const char *data, size_t end) {
  for (size_t back = 1; back <= 3 && back <= end; back++) {
    unsigned char c = (unsigned char)data[end - back];
    if ((c & 0xC0) == 0x80) continue; /* continuation: look further back */
    size_t need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? end - back : end;
  }
  return end;
}

static void emit(const ag_generate_options *o, sequence *s, size_t end) {
  if (end <= s->emitted) return;
  if (o->on_text) o->on_text(o->user, s->index, s->out->text.data + s->emitted, end - s->emitted);
  s->emitted = end;
}

/* Records a drawn token: text, stop conditions, streaming. */
static ag_status accept_token(const ag_lm *lm, const ag_generate_options *o, sequence *s,
                              int32_t token) {
  ag_generation *g = s->out;
  ag_status st = ag_tok_ids_push(&g->tokens, token);
  if (!st) st = ag_tok_ids_push(&s->history, token);
  if (st) return st;
  bool stop_id = false;
  for (int i = 0; i < o->stop_id_count; i++) stop_id |= o->stop_ids[i] == token;
  if (stop_id || (!o->ignore_eos && ag_lm_is_eos(lm, token))) {
    g->finish = AG_FINISH_EOS;
    s->done = true;
  } else {
    size_t old = g->text.size;
    if (g->tokens.count == 1) {
      st = first_piece(lm, s, token, &g->text);
    } else if (!ag_tok_is_special(lm->tokenizer, token)) {
      size_t n = 0;
      const char *piece = ag_tok_piece(lm->tokenizer, token, &n);
      st = piece ? text_append(&g->text, piece, n)
                 : ag_error_set(AG_ERR_INTERNAL, "generate: token %d has no text", (int)token);
    }
    if (st) return st;
    int64_t at = find_stop(o, &g->text, old);
    if (at >= 0) {
      g->text.size = (size_t)at;
      g->text.data[at] = '\0';
      g->finish = AG_FINISH_STOP;
      s->done = true;
    } else if (g->tokens.count >= o->max_new_tokens) {
      g->finish = AG_FINISH_LENGTH;
      s->done = true;
    }
  }
  if (s->done) {
    emit(o, s, g->text.size);
  } else {
    emit(o, s, utf8_settled(g->text.data, g->text.size - stop_prefix_at_end(o, &g->text)));
  }
  return AG_OK;
}

/* ---- prompts ------------------------------------------------------------------------ */

static ag_status prepare_prompt(const ag_lm *lm, const ag_generate_options *o, const ag_tok_ids *p,
                                int64_t i, sequence *s) {
  int64_t ctx = lm->context_length, n = p->count;
  s->prompt = p->ids;
  s->prompt_len = n;
  if (n == 0)
    return ag_error_set(AG_ERR_INVALID,
                        "generate: prompt %lld has no tokens and the model adds no BOS: there "
                        "is nothing to continue",
                        (long long)(o->index_base + i));
  int64_t room = o->max_new_tokens < ctx / 2 ? o->max_new_tokens : ctx / 2;
  int64_t limit = o->truncate ? ctx - room : ctx;
  if (limit < 1) limit = 1;
  if (n <= limit) return AG_OK;
  if (!o->truncate)
    return ag_error_set(AG_ERR_INVALID,
                        "generate: prompt %lld is %lld tokens, more than the model's context of "
                        "%lld tokens; shorten it or truncate it (--truncate)",
                        (long long)(o->index_base + i), (long long)n, (long long)ctx);
  /* Keep BOS, drop the oldest tokens after it. */
  bool keep_bos = lm->add_bos && p->ids[0] == lm->bos_id && limit > 1;
  s->out->dropped_tokens = n - limit;
  if (!keep_bos) {
    s->prompt = p->ids + (n - limit);
    s->prompt_len = limit;
    return AG_OK;
  }
  s->owned_prompt = malloc((size_t)limit * sizeof(int32_t));
  if (!s->owned_prompt) return ag_error_set(AG_ERR_NOMEM, "generate: out of memory");
  s->owned_prompt[0] = p->ids[0];
  memcpy(s->owned_prompt + 1, p->ids + (n - limit + 1), (size_t)(limit - 1) * sizeof(int32_t));
  s->prompt = s->owned_prompt;
  s->prompt_len = limit;
  return AG_OK;
}

/* ---- one batch ---------------------------------------------------------------------- */

typedef struct batch_work {
  int32_t *tokens; /* (B, T) step input */
  int32_t *counts; /* (B) */
  float *logits;   /* (B, V) each sequence's next-token logits */
  ag_sampler *sampler;
  ag_kv_cache *cache;
} batch_work;

/* Feeds every prompt in chunks; keeps each one's last-row logits. */
static ag_status prefill(ag_lm *lm, sequence *seq, int64_t B, batch_work *w) {
  int64_t V = ag_transformer_config_of(lm->model)->vocab_size, longest = 0;
  for (int64_t b = 0; b < B; b++)
    longest = seq[b].prompt_len > longest ? seq[b].prompt_len : longest;
  for (int64_t start = 0; start < longest; start += PREFILL_CHUNK_TOKENS) {
    int64_t T = longest - start < PREFILL_CHUNK_TOKENS ? longest - start : PREFILL_CHUNK_TOKENS;
    for (int64_t b = 0; b < B; b++) {
      int64_t left = seq[b].prompt_len - start;
      w->counts[b] = (int32_t)(left <= 0 ? 0 : left < T ? left : T);
      for (int64_t i = 0; i < T; i++)
        w->tokens[b * T + i] = i < w->counts[b] ? seq[b].prompt[start + i] : 0;
    }
    const float *logits;
    ag_status st = ag_transformer_decode(lm->model, w->cache, w->tokens, T, w->counts,
                                         AG_LOGITS_LAST, &logits);
    if (st) return st;
    for (int64_t b = 0; b < B; b++)
      if (w->counts[b] > 0 && start + w->counts[b] == seq[b].prompt_len)
        memcpy(w->logits + b * V, logits + b * V, (size_t)V * sizeof(float));
  }
  return AG_OK;
}

static ag_status run_batch(ag_lm *lm, const ag_generate_options *o, sequence *seq, int64_t B) {
  int64_t V = ag_transformer_config_of(lm->model)->vocab_size, longest = 0;
  for (int64_t b = 0; b < B; b++)
    longest = seq[b].prompt_len > longest ? seq[b].prompt_len : longest;
  int64_t capacity =
      o->max_new_tokens < lm->context_length ? longest + o->max_new_tokens : lm->context_length;
  if (capacity > lm->context_length) capacity = lm->context_length;
  batch_work w = {0};
  int64_t T = longest < PREFILL_CHUNK_TOKENS ? longest : PREFILL_CHUNK_TOKENS;
  w.tokens = malloc((size_t)(B * T) * sizeof(int32_t));
  w.counts = malloc((size_t)B * sizeof(int32_t));
  w.logits = malloc((size_t)(B * V) * sizeof(float));
  ag_status st = !w.tokens || !w.counts || !w.logits
                     ? ag_error_set(AG_ERR_NOMEM, "generate: out of memory")
                     : AG_OK;
  if (!st) st = ag_sampler_create(&o->sampling, V, &w.sampler);
  if (!st) st = ag_kv_cache_create(lm->model, B, capacity, &w.cache);
  if (!st) st = prefill(lm, seq, B, &w);
  bool greedy = o->sampling.temperature == 0.0f;
  bool penalty = o->sampling.repetition_penalty != 1.0f;
  while (!st) {
    int64_t running = 0;
    for (int64_t b = 0; !st && b < B; b++) {
      sequence *s = &seq[b];
      w.counts[b] = 0;
      if (s->done) continue;
      int32_t token = ag_sampler_next(w.sampler, w.logits + b * V, penalty ? s->history.ids : NULL,
                                      s->history.count, greedy ? NULL : &s->rng);
      st = accept_token(lm, o, s, token);
      if (st || s->done) continue;
      if (ag_kv_cache_length(w.cache, b) >= ag_kv_cache_capacity(w.cache)) {
        s->out->finish = AG_FINISH_CONTEXT; /* no room to feed the token back */
        s->done = true;
        emit(o, s, s->out->text.size);
        continue;
      }
      w.tokens[b] = token;
      w.counts[b] = 1;
      running++;
    }
    if (st || running == 0) break;
    const float *logits;
    st = ag_transformer_decode(lm->model, w.cache, w.tokens, 1, w.counts, AG_LOGITS_LAST, &logits);
    if (!st) memcpy(w.logits, logits, (size_t)(B * V) * sizeof(float));
  }
  ag_kv_cache_destroy(w.cache);
  ag_sampler_destroy(w.sampler);
  free(w.tokens);
  free(w.counts);
  free(w.logits);
  return st;
}

ag_status ag_generate_ids(ag_lm *lm, const ag_tok_ids *prompts, int64_t n,
                          const ag_generate_options *o, ag_generation *out) {
  if (!lm || !o || !out || (n > 0 && !prompts) || n < 0)
    return ag_error_set(AG_ERR_INVALID, "generate: bad arguments");
  memset(out, 0, (size_t)n * sizeof *out);
  ag_status st = ag_sampling_check(&o->sampling);
  if (st) return ag_error_wrap(st, "generate");
  if (o->max_new_tokens < 0 || o->stop_count < 0 || o->stop_count > AG_GENERATE_MAX_STOPS ||
      o->stop_id_count < 0 || o->stop_id_count > AG_GENERATE_MAX_STOPS || o->max_batch < 0)
    return ag_error_set(AG_ERR_INVALID,
                        "generate: max_new_tokens %lld, %d stop strings, %d "
                        "stop ids or max_batch %lld out of range",
                        (long long)o->max_new_tokens, o->stop_count, o->stop_id_count,
                        (long long)o->max_batch);
  for (int i = 0; i < o->stop_count; i++)
    if (!o->stop[i] || !o->stop[i][0])
      return ag_error_set(AG_ERR_INVALID, "generate: stop string %d is empty", i);
  sequence *seq = calloc((size_t)(n > 0 ? n : 1), sizeof *seq);
  if (!seq) return ag_error_set(AG_ERR_NOMEM, "generate: out of memory");
  for (int64_t i = 0; !st && i < n; i++) {
    seq[i].out = &out[i];
    seq[i].index = o->index_base + i;
    ag_rng_seed2(&seq[i].rng, o->seed, o->streams ? o->streams[i] : (uint64_t)seq[i].index);
    st = prepare_prompt(lm, o, &prompts[i], i, &seq[i]);
    out[i].prompt_tokens = seq[i].prompt_len;
    for (int64_t j = 0; !st && j < seq[i].prompt_len; j++)
      st = ag_tok_ids_push(&seq[i].history, seq[i].prompt[j]);
    if (o->max_new_tokens == 0) seq[i].done = true; /* finish LENGTH, no text */
  }
  int64_t per_batch = o->max_batch > 0 ? o->max_batch : (n > 0 ? n : 1);
  for (int64_t first = 0; !st && o->max_new_tokens > 0 && first < n; first += per_batch)
    st = run_batch(lm, o, seq + first, n - first < per_batch ? n - first : per_batch);
  for (int64_t i = 0; i < n; i++) {
    free(seq[i].owned_prompt);
    ag_tok_ids_free(&seq[i].history);
  }
  free(seq);
  return st;
}

ag_status ag_generate(ag_lm *lm, const char *const *prompts, int64_t n,
                      const ag_generate_options *o, ag_generation *out) {
  if (!lm || !o || !out || n < 0 || (n > 0 && !prompts))
    return ag_error_set(AG_ERR_INVALID, "generate: bad arguments");
  ag_tok_ids *ids = calloc((size_t)(n > 0 ? n : 1), sizeof *ids);
  if (!ids) return ag_error_set(AG_ERR_NOMEM, "generate: out of memory");
  ag_status st = AG_OK;
  for (int64_t i = 0; !st && i < n; i++)
    st = ag_lm_encode_prompt(lm, prompts[i], strlen(prompts[i]), &ids[i]);
  if (st) {
    memset(out, 0, (size_t)n * sizeof *out);
  } else {
    st = ag_generate_ids(lm, ids, n, o, out);
  }
  for (int64_t i = 0; i < n; i++) ag_tok_ids_free(&ids[i]);
  free(ids);
  return st;
}
