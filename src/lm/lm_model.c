/* One entry point for a usable language model: a Hugging Face folder or a
 * GGUF file -> transformer + tokenizer + chat template + BOS/EOS ids; and
 * scoring text under it (loss, perplexity). */
#include "agora/lm_model.h"

#include "agora/gguf.h"
#include "agora/gguf_model.h"
#include "agora/hf_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Rows per decoding call when scoring: bounds the (rows, V) logits. */
#define SCORE_CHUNK_TOKENS 128

void ag_lm_close(ag_lm *lm) {
  if (!lm) return;
  ag_transformer_destroy(lm->model);
  ag_tok_free(lm->tokenizer);
  free(lm);
}

static void add_eos(ag_lm *lm, int64_t id) {
  if (id < 0 || id > INT32_MAX || lm->eos_count == AG_LM_MAX_EOS) return;
  for (int i = 0; i < lm->eos_count; i++)
    if (lm->eos_ids[i] == id) return;
  lm->eos_ids[lm->eos_count++] = (int32_t)id;
}

bool ag_lm_is_eos(const ag_lm *lm, int32_t id) {
  for (int i = 0; i < lm->eos_count; i++)
    if (lm->eos_ids[i] == id) return true;
  return false;
}

static bool is_gguf_file(const char *path) {
  FILE *f = fopen(path, "rb");
  char magic[4] = {0};
  bool yes = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
  if (f) fclose(f);
  return yes;
}

/* A template agora cannot render is not an error until someone chats. */
static void set_template(ag_lm *lm, ag_status st, const ag_chat_template *t) {
  if (!st) {
    lm->chat_template = t;
    return;
  }
  if (st != AG_ERR_NOT_FOUND)
    snprintf(lm->chat_template_note, sizeof lm->chat_template_note, "%s", ag_error_message());
  ag_error_clear();
}

static ag_status open_hf(const char *dir, ag_lm *lm) {
  ag_hf_info info;
  ag_status st = ag_hf_load(dir, AG_HF_LOAD_MAPPED, &lm->model, &info);
  if (st) return st;
  st = ag_tok_load(dir, &lm->tokenizer);
  if (st) return st;
  for (int i = 0; i < info.eos_count; i++) add_eos(lm, info.eos_token_ids[i]);
  const ag_chat_template *t = NULL;
  st = ag_chat_template_load(dir, &t);
  set_template(lm, st, t);
  return AG_OK;
}

static ag_status open_gguf(const char *path, ag_lm *lm) {
  ag_gguf *f = NULL;
  ag_status st = ag_gguf_open(path, &f);
  if (st) return st;
  st = ag_gguf_model_load_file(f, false, &lm->model);
  if (!st) st = ag_tok_load(path, &lm->tokenizer);
  const char *id_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                           "tokenizer.ggml.eom_token_id"};
  for (size_t i = 0; !st && i < sizeof id_keys / sizeof id_keys[0]; i++) {
    int64_t id;
    if (ag_gguf_find(f, id_keys[i]) && ag_gguf_get_i64(f, id_keys[i], &id) == AG_OK)
      add_eos(lm, id);
  }
  ag_gguf_string source;
  if (!st && ag_gguf_find(f, "tokenizer.chat_template") &&
      ag_gguf_get_string(f, "tokenizer.chat_template", &source) == AG_OK) {
    char *text = malloc(source.length + 1);
    if (!text) {
      st = ag_error_set(AG_ERR_NOMEM, "%s: out of memory", path);
    } else {
      memcpy(text, source.data, source.length);
      text[source.length] = '\0';
      const ag_chat_template *t = NULL;
      ag_status found = ag_chat_template_detect(text, &t);
      set_template(lm, found, t);
      free(text);
    }
  }
  ag_gguf_close(f);
  return st;
}

ag_status ag_lm_open(const char *path, ag_lm **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "lm: NULL output");
  *out = NULL;
  if (!path || !*path) return ag_error_set(AG_ERR_INVALID, "lm: no model path given");
  struct stat info;
  if (stat(path, &info) != 0)
    return ag_error_set(AG_ERR_NOT_FOUND,
                        "%s: no such model (expected a Hugging Face model folder or a .gguf file)",
                        path);
  bool folder = S_ISDIR(info.st_mode);
  if (!folder && !is_gguf_file(path))
    return ag_error_set(AG_ERR_FORMAT, "%s: not a GGUF file (no GGUF magic) and not a model folder",
                        path);
  ag_lm *lm = calloc(1, sizeof *lm);
  if (!lm) return ag_error_set(AG_ERR_NOMEM, "lm: out of memory");
  lm->format = folder ? AG_LM_HF : AG_LM_GGUF;
  /* Loading errors name their files already; the others get the path. */
  ag_status st = folder ? open_hf(path, lm) : open_gguf(path, lm);
  if (!st) {
    st = ag_transformer_check_vocab(lm->model, ag_tok_vocab_size(lm->tokenizer));
    if (st) ag_error_wrap(st, "%s", path);
  }
  if (st) {
    ag_lm_close(lm);
    return st;
  }
  add_eos(lm, ag_tok_special_id(lm->tokenizer, AG_TOK_EOS));
  lm->bos_id = ag_tok_special_id(lm->tokenizer, AG_TOK_BOS);
  /* What the tokenizer adds around an empty text says whether prompts start
   * with BOS (post-processor, add_bos_token, GGUF add_bos_token). */
  ag_tok_ids probe = {0};
  st = ag_tok_encode(lm->tokenizer, "", 0, AG_TOK_ADD_SPECIAL, &probe);
  lm->add_bos = !st && probe.count > 0 && lm->bos_id >= 0 && probe.ids[0] == lm->bos_id;
  ag_tok_ids_free(&probe);
  if (st) {
    st = ag_error_wrap(st, "%s", path);
    ag_lm_close(lm);
    return st;
  }
  lm->context_length = ag_transformer_config_of(lm->model)->max_positions;
  *out = lm;
  return AG_OK;
}

ag_status ag_lm_encode_prompt(const ag_lm *lm, const char *text, size_t bytes, ag_tok_ids *out) {
  if (lm->add_bos) {
    ag_status st = ag_tok_ids_push(out, lm->bos_id);
    if (st) return st;
  }
  return ag_tok_encode(lm->tokenizer, text, bytes, 0, out);
}

/* ---- scoring ------------------------------------------------------------------------ */

/* -log softmax(row)[target], in double. */
static double token_nll(const float *row, int64_t V, int32_t target) {
  float top = row[0];
  for (int64_t i = 1; i < V; i++) top = fmaxf(top, row[i]);
  double sum = 0;
  for (int64_t i = 0; i < V; i++) sum += exp((double)row[i] - top);
  return log(fmax(sum, 1.0)) + top - row[target]; /* sum >= 1: the top term is exp(0) */
}

/* Feeds ids[0..n) from an empty cache, summing the nll of ids[1..n). */
static ag_status score_window(ag_lm *lm, ag_kv_cache *cache, const int32_t *ids, int64_t n,
                              double *nll) {
  int64_t V = ag_transformer_config_of(lm->model)->vocab_size;
  ag_kv_cache_clear(cache, -1);
  for (int64_t start = 0; start < n - 1; start += SCORE_CHUNK_TOKENS) {
    int64_t T = n - 1 - start < SCORE_CHUNK_TOKENS ? n - 1 - start : SCORE_CHUNK_TOKENS;
    const float *logits;
    ag_status st = ag_transformer_decode(lm->model, cache, ids + start, T, NULL, AG_LOGITS_ALL,
                                         &logits); /* (1, T, V) */
    if (st) return st;
    for (int64_t j = 0; j < T; j++) *nll += token_nll(logits + j * V, V, ids[start + j + 1]);
  }
  return AG_OK;
}

ag_status ag_lm_score_text(ag_lm *lm, const char *text, size_t bytes, int64_t window,
                           ag_lm_score *score) {
  if (!lm || !score || (!text && bytes))
    return ag_error_set(AG_ERR_INVALID, "lm score: bad arguments");
  int64_t W = window > 0 && window < lm->context_length ? window : lm->context_length;
  if (W < 2)
    return ag_error_set(AG_ERR_INVALID, "lm score: a window of %lld tokens predicts nothing",
                        (long long)W);
  ag_tok_ids ids = {0};
  ag_status st = ag_lm_encode_prompt(lm, text, bytes, &ids);
  ag_kv_cache *cache = NULL;
  if (!st && ids.count >= 2) st = ag_kv_cache_create(lm->model, 1, W, &cache);
  double nll = 0;
  int64_t windows = 0;
  /* Windows overlap by one token: each predicts what follows its first. */
  for (int64_t start = 0; !st && start < ids.count - 1; start += W - 1) {
    int64_t n = ids.count - start < W ? ids.count - start : W;
    st = score_window(lm, cache, ids.ids + start, n, &nll);
    windows++;
  }
  if (!st) {
    score->nll_sum += nll;
    score->tokens += ids.count > 1 ? ids.count - 1 : 0;
    score->bytes += (int64_t)bytes;
    score->windows += windows;
  }
  ag_kv_cache_destroy(cache);
  ag_tok_ids_free(&ids);
  return st;
}
