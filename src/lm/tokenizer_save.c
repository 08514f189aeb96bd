/* Writing a Hugging Face tokenizer.json.
 *
 * A tokenizer loaded from tokenizer.json writes back its own normalizer,
 * pre_tokenizer, post_processor, decoder and model options; a trained one,
 * or a byte-level vocabulary read from GGUF, gets the sections that
 * describe it: a Sequence of Isolated regex Splits (llama.cpp's list for its
 * pre-tokenizer) followed by a ByteLevel step without its own regex, and a
 * ByteLevel decoder. Merges are written as "a b" strings, which every
 * version of `tokenizers` reads, unless a token holds a space, in which case
 * all merges are written as ["a", "b"] pairs. */
#include "agora/json.h"
#include "lm/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

static json_t *string_n(const char *s, size_t n) { return json_stringn(s, n); }

static ag_status add(json_t *obj, const char *key, json_t *value) {
  if (!value || json_object_set_new(obj, key, value) != 0)
    return ag_error_set(AG_ERR_FORMAT,
                        "tokenizer: cannot write \"%s\" (a token that is not "
                        "valid UTF-8?)",
                        key);
  return AG_OK;
}

static json_t *generated_added_tokens(const ag_tokenizer *t) {
  json_t *list = json_array();
  for (int32_t id = 0; list && id < t->n_vocab; id++) {
    if (!(t->flags[id] & TOKF_ADDED)) continue;
    size_t n;
    const char *s = tok_strtab_get(&t->vocab, id, &n);
    json_t *content = string_n(s, n);
    json_t *e = content ? json_pack("{s:i, s:o, s:b, s:b, s:b, s:b, s:b}", "id", (int)id, "content",
                                    content, "single_word", (t->flags[id] & TOKF_SINGLE_WORD) != 0,
                                    "lstrip", (t->flags[id] & TOKF_LSTRIP) != 0, "rstrip",
                                    (t->flags[id] & TOKF_RSTRIP) != 0, "normalized", 0, "special",
                                    (t->flags[id] & TOKF_SPECIAL) != 0)
                        : NULL;
    if (!e || json_array_append_new(list, e) != 0) {
      json_decref(list);
      return NULL;
    }
  }
  return list;
}

static json_t *generated_pre_tokenizer(const ag_tokenizer *t) {
  json_t *steps = json_array();
  for (int i = 0; steps && t->pre_type && i < t->pre_type->n_regexes; i++) {
    json_t *split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex",
                              t->pre_type->regexes[i], "behavior", "Isolated", "invert", 0);
    if (!split || json_array_append_new(steps, split) != 0) {
      json_decref(steps);
      return NULL;
    }
  }
  json_t *byte_level = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                                 "trim_offsets", 1, "use_regex", 0);
  if (!steps || !byte_level || json_array_append_new(steps, byte_level) != 0) {
    json_decref(steps);
    return NULL;
  }
  return json_pack("{s:s, s:o}", "type", "Sequence", "pretokenizers", steps);
}

/* TemplateProcessing for the prefix/suffix ids, or ByteLevel when none. */
static json_t *generated_post_processor(const ag_tokenizer *t) {
  if (t->prefix.count == 0 && t->suffix.count == 0)
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                     "trim_offsets", 0, "use_regex", 1);
  json_t *single = json_array(), *pair = json_array(), *special = json_object();
  bool ok = single && pair && special;
  for (int part = 0; ok && part < 3; part++) {
    const ag_tok_ids *ids = part == 0 ? &t->prefix : &t->suffix;
    if (part == 1) {
      ok = json_array_append_new(
               single, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "A", "type_id", 0)) == 0 &&
           json_array_append_new(
               pair, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "A", "type_id", 0)) == 0;
      continue;
    }
    for (int64_t i = 0; ok && i < ids->count; i++) {
      size_t n;
      const char *s = tok_strtab_get(&t->vocab, ids->ids[i], &n);
      char *name = strndup(s, n);
      ok = name != NULL;
      if (ok) {
        ok = json_array_append_new(single, json_pack("{s:{s:s, s:i}}", "SpecialToken", "id", name,
                                                     "type_id", 0)) == 0 &&
             json_array_append_new(pair, json_pack("{s:{s:s, s:i}}", "SpecialToken", "id", name,
                                                   "type_id", 0)) == 0 &&
             json_object_set_new(special, name,
                                 json_pack("{s:s, s:[i], s:[s]}", "id", name, "ids",
                                           (int)ids->ids[i], "tokens", name)) == 0;
      }
      free(name);
    }
  }
  if (ok)
    ok = json_array_append_new(
             pair, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "B", "type_id", 1)) == 0;
  if (!ok) {
    json_decref(single), json_decref(pair), json_decref(special);
    return NULL;
  }
  return json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single, "pair",
                   pair, "special_tokens", special);
}

static json_t *model_json(const ag_tokenizer *t) {
  json_t *model = NULL;
  json_t *kept = t->hf_sections ? json_object_get(t->hf_sections, "model") : NULL;
  if (kept) {
    model = json_deep_copy(kept);
  } else {
    model =
        json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b}", "type", "BPE", "dropout", "unk_token",
                  "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", (int)t->fuse_unk,
                  "byte_fallback", (int)t->byte_fallback, "ignore_merges", (int)t->ignore_merges);
  }
  json_t *vocab = json_object();
  if (!model || !vocab) goto fail;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    if (!(t->flags[id] & TOKF_IN_MODEL)) continue;
    size_t n;
    const char *s = tok_strtab_get(&t->vocab, id, &n);
    if (memchr(s, 0, n)) goto fail; /* jansson keys are C strings */
    json_t *v = json_integer(id);
    if (!v || json_object_set_new(vocab, s, v) != 0) goto fail;
  }
  bool pairs = false;
  for (int32_t id = 0; id < t->n_vocab && !pairs; id++) {
    size_t n;
    const char *s = tok_strtab_get(&t->vocab, id, &n);
    pairs = (t->flags[id] & TOKF_IN_MODEL) && memchr(s, ' ', n) != NULL;
  }
  json_t *merges = json_array();
  if (!merges) goto fail;
  json_object_set_new(model, "vocab", vocab);
  vocab = NULL;
  json_object_set_new(model, "merges", merges);
  ag_tok_text line = {0};
  for (int64_t r = 0; r < t->merges.count; r++) {
    size_t an, bn;
    const char *a = tok_strtab_get(&t->vocab, t->merge_pairs[2 * r], &an);
    const char *b = tok_strtab_get(&t->vocab, t->merge_pairs[2 * r + 1], &bn);
    json_t *m;
    if (pairs) {
      m = json_array();
      if (m && (json_array_append_new(m, string_n(a, an)) ||
                json_array_append_new(m, string_n(b, bn)))) {
        json_decref(m);
        m = NULL;
      }
    } else {
      line.size = 0;
      if (tok_text_append(&line, a, an) || tok_text_append(&line, " ", 1) ||
          tok_text_append(&line, b, bn))
        m = NULL;
      else
        m = string_n(line.data, line.size);
    }
    if (!m || json_array_append_new(merges, m) != 0) {
      ag_tok_text_free(&line);
      goto fail;
    }
  }
  ag_tok_text_free(&line);
  return model;
fail:
  json_decref(model);
  json_decref(vocab);
  return NULL;
}

ag_status ag_tok_save_json(const ag_tokenizer *t, const char *path) {
  if (!t || !path) return ag_error_set(AG_ERR_INVALID, "ag_tok_save_json: NULL argument");
  if (t->model != TOK_MODEL_BPE)
    return ag_error_set(
        AG_ERR_UNSUPPORTED,
        "cannot write %s: SentencePiece vocabularies from GGUF have scores, not the "
        "merges a tokenizer.json needs",
        path);
  json_t *root = json_object();
  if (!root) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  const json_t *hf = t->hf_sections;
  ag_status st = add(root, "version", json_string("1.0"));
  if (!st) st = add(root, "truncation", json_null());
  if (!st) st = add(root, "padding", json_null());
  json_t *added = hf ? json_object_get(hf, "added_tokens") : NULL;
  if (!st)
    st = add(root, "added_tokens",
             added && json_is_array(added) ? json_deep_copy(added) : generated_added_tokens(t));
  static const char *const kept[] = {"normalizer", "pre_tokenizer", "post_processor", "decoder"};
  for (int i = 0; !st && i < 4; i++) {
    json_t *v = hf ? json_object_get(hf, kept[i]) : NULL;
    if (v) {
      st = add(root, kept[i], json_deep_copy(v));
    } else if (i == 0) {
      st = add(root, kept[i], json_null());
    } else if (i == 1) {
      st = add(root, kept[i], generated_pre_tokenizer(t));
    } else if (i == 2) {
      st = add(root, kept[i], generated_post_processor(t));
    } else {
      st = add(root, kept[i],
               json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                         "trim_offsets", 1, "use_regex", 1));
    }
  }
  if (!st) st = add(root, "model", model_json(t));
  if (!st) {
    ag_atomic_file *f;
    st = ag_atomic_open(path, &f);
    if (!st) {
      if (json_dumpf(root, ag_atomic_stream(f), JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
          fputc('\n', ag_atomic_stream(f)) == EOF) {
        ag_atomic_abort(f);
        st = ag_error_set(AG_ERR_IO, "cannot write %s", path);
      } else {
        st = ag_atomic_commit(f);
      }
    }
  }
  json_decref(root);
  return st;
}
