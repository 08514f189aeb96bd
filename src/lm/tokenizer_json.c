/* Hugging Face tokenizer.json: loading and saving.
 *
 * Supported: the BPE model (byte-level like GPT-2/Llama-3/Qwen2, or
 * SentencePiece-style with byte_fallback like Llama-2), both spellings of
 * merges ("a b" strings and ["a", "b"] pairs), added tokens with their
 * lstrip/rstrip/single_word/special flags, the normalizers Prepend,
 * Replace, NFC/NFD/NFKC/NFKD, Lowercase, Strip and Sequence, the
 * pre-tokenizers ByteLevel, Split, Digits, Punctuation, Metaspace,
 * Whitespace, WhitespaceSplit, CharDelimiterSplit and Sequence, the
 * post-processors TemplateProcessing, ByteLevel, RobertaProcessing,
 * BertProcessing and Sequence, and the decoders ByteLevel, Replace,
 * ByteFallback, Fuse, Strip, Metaspace and Sequence. Anything else is a
 * clear AG_ERR_UNSUPPORTED rather than a silently different tokenizer.
 *
 * Every value read from the file is type-checked: a corrupt or truncated
 * file fails with a message naming the field. */
#include "agora/json.h"
#include "lm/tokenizer_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define GPT2_PATTERN                                                                               \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* ---- small JSON helpers ------------------------------------------------------------ */

static ag_status bad(const char *what) {
  return ag_error_set(AG_ERR_FORMAT, "tokenizer.json: %s", what);
}

static ag_status field_string(const json_t *obj, const char *key, const char **out, bool required,
                              const char *where) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (!v || json_is_null(v)) {
    if (required)
      return ag_error_set(AG_ERR_FORMAT, "tokenizer.json: %s has no \"%s\"", where, key);
    return AG_OK;
  }
  if (!json_is_string(v))
    return ag_error_set(AG_ERR_FORMAT, "tokenizer.json: %s.%s is not a string", where, key);
  *out = json_string_value(v);
  return AG_OK;
}

static bool field_bool(const json_t *obj, const char *key, bool fallback) {
  json_t *v = json_object_get(obj, key);
  return json_is_boolean(v) ? json_is_true(v) : fallback;
}

static const char *type_of(const json_t *obj) {
  json_t *v = json_object_get(obj, "type");
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static ag_status behavior_of(const json_t *obj, tok_split_behavior fallback,
                             tok_split_behavior *out) {
  const char *b;
  ag_status st = field_string(obj, "behavior", &b, false, "Split");
  if (st) return st;
  *out = fallback;
  if (!b) return AG_OK;
  if (!strcmp(b, "Isolated"))
    *out = SPLIT_ISOLATED;
  else if (!strcmp(b, "Removed"))
    *out = SPLIT_REMOVED;
  else if (!strcmp(b, "MergedWithPrevious"))
    *out = SPLIT_MERGED_WITH_PREVIOUS;
  else if (!strcmp(b, "MergedWithNext"))
    *out = SPLIT_MERGED_WITH_NEXT;
  else if (!strcmp(b, "Contiguous"))
    *out = SPLIT_CONTIGUOUS;
  else
    return ag_error_set(AG_ERR_FORMAT, "tokenizer.json: unknown split behavior \"%s\"", b);
  return AG_OK;
}

/* The pattern of a Split/Replace: {"String": s} or {"Regex": r}. */
static ag_status pattern_of(const json_t *obj, const char **text, size_t *n, bool *literal) {
  json_t *p = json_object_get(obj, "pattern");
  json_t *s = json_object_get(p, "String"), *r = json_object_get(p, "Regex");
  if (json_is_string(s)) {
    *text = json_string_value(s), *n = json_string_length(s), *literal = true;
    return AG_OK;
  }
  if (json_is_string(r)) {
    *text = json_string_value(r), *n = json_string_length(r), *literal = false;
    return AG_OK;
  }
  return bad("a Split/Replace pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
}

static char *dup_bytes(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    if (n) memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

/* ---- normalizers ----------------------------------------------------------------- */

static ag_status add_norm(ag_tokenizer *t, tok_norm m) {
  tok_norm *grown = realloc(t->norms, (size_t)(t->n_norms + 1) * sizeof *grown);
  if (!grown) {
    free(m.a), free(m.b), pcre2_code_free(m.re);
    return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  }
  t->norms = grown;
  t->norms[t->n_norms++] = m;
  return AG_OK;
}

/* One warning per process is enough; loads may run on several threads. */
static atomic_flag warned_no_icu = ATOMIC_FLAG_INIT;

static ag_status parse_normalizer(ag_tokenizer *t, const json_t *n, int depth) {
  if (!n || json_is_null(n)) return AG_OK;
  if (!json_is_object(n) || depth > 8) return bad("normalizer is not an object");
  const char *type = type_of(n);
  if (!type) return bad("normalizer has no type");
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(n, "normalizers");
    if (!json_is_array(list)) return bad("Sequence normalizer has no \"normalizers\" array");
    for (size_t i = 0; i < json_array_size(list); i++) {
      ag_status st = parse_normalizer(t, json_array_get(list, i), depth + 1);
      if (st) return st;
    }
    return AG_OK;
  }
  tok_norm m = {0};
  if (!strcmp(type, "Prepend")) {
    json_t *p = json_object_get(n, "prepend");
    if (!json_is_string(p)) return bad("Prepend normalizer has no \"prepend\" string");
    m.kind = NORM_PREPEND;
    m.a_len = json_string_length(p);
    if (!(m.a = dup_bytes(json_string_value(p), m.a_len)))
      return ag_error_set(AG_ERR_NOMEM, "out of memory");
    return add_norm(t, m);
  }
  if (!strcmp(type, "Replace")) {
    const char *pat;
    size_t pn;
    bool literal;
    ag_status st = pattern_of(n, &pat, &pn, &literal);
    if (st) return st;
    json_t *c = json_object_get(n, "content");
    if (!json_is_string(c)) return bad("Replace normalizer has no \"content\" string");
    m.kind = NORM_REPLACE;
    m.b_len = json_string_length(c);
    m.b = dup_bytes(json_string_value(c), m.b_len);
    if (literal) {
      m.a_len = pn;
      m.a = dup_bytes(pat, pn);
    } else {
      st = tok_regex_compile(pat, pn, false, "Replace normalizer", &m.re);
    }
    if (!st && (!m.b || (literal && !m.a))) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
    if (st) {
      free(m.a), free(m.b), pcre2_code_free(m.re);
      return st;
    }
    return add_norm(t, m);
  }
  if (!strcmp(type, "NFC") || !strcmp(type, "NFD") || !strcmp(type, "NFKC") ||
      !strcmp(type, "NFKD") || !strcmp(type, "Lowercase")) {
    m.kind = !strcmp(type, "NFC")    ? NORM_NFC
             : !strcmp(type, "NFD")  ? NORM_NFD
             : !strcmp(type, "NFKC") ? NORM_NFKC
             : !strcmp(type, "NFKD") ? NORM_NFKD
                                     : NORM_LOWERCASE;
    if (!tok_have_icu() && !atomic_flag_test_and_set(&warned_no_icu)) {
      ag_warn("tokenizer: built without ICU, the %s normalizer handles ASCII exactly and "
              "leaves other text unchanged",
              type);
    }
    return add_norm(t, m);
  }
  if (!strcmp(type, "Strip")) {
    m.kind = NORM_STRIP;
    m.left = field_bool(n, "strip_left", true);
    m.right = field_bool(n, "strip_right", true);
    return add_norm(t, m);
  }
  return ag_error_set(AG_ERR_UNSUPPORTED, "tokenizer.json: normalizer \"%s\" is not supported",
                      type);
}

/* ---- pre-tokenizers ----------------------------------------------------------------- */

static ag_status add_pre(ag_tokenizer *t, tok_pre p) {
  tok_pre *grown = realloc(t->pres, (size_t)(t->n_pres + 1) * sizeof *grown);
  if (!grown) {
    pcre2_code_free(p.re);
    return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  }
  t->pres = grown;
  t->pres[t->n_pres++] = p;
  return AG_OK;
}

static ag_status add_split(ag_tokenizer *t, const char *pattern, size_t n, bool literal,
                           tok_split_behavior behavior, bool invert, const char *what) {
  tok_pre p = {.kind = PRE_SPLIT, .behavior = behavior, .invert = invert};
  ag_status st = tok_regex_compile(pattern, n, literal, what, &p.re);
  return st ? st : add_pre(t, p);
}

static ag_status parse_pre_tokenizer(ag_tokenizer *t, const json_t *p, int depth) {
  if (!p || json_is_null(p)) return AG_OK;
  if (!json_is_object(p) || depth > 8) return bad("pre_tokenizer is not an object");
  const char *type = type_of(p);
  if (!type) return bad("pre_tokenizer has no type");
  ag_status st = AG_OK;
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(p, "pretokenizers");
    if (!json_is_array(list)) return bad("Sequence pre_tokenizer has no \"pretokenizers\" array");
    for (size_t i = 0; !st && i < json_array_size(list); i++)
      st = parse_pre_tokenizer(t, json_array_get(list, i), depth + 1);
    return st;
  }
  if (!strcmp(type, "ByteLevel")) {
    if (field_bool(p, "add_prefix_space", true))
      st = add_pre(t, (tok_pre){.kind = PRE_PREFIX_SPACE});
    if (!st && field_bool(p, "use_regex", true))
      st = add_split(t, GPT2_PATTERN, strlen(GPT2_PATTERN), false, SPLIT_ISOLATED, false,
                     "ByteLevel");
    return st;
  }
  if (!strcmp(type, "Split")) {
    const char *pat;
    size_t n;
    bool literal;
    tok_split_behavior behavior;
    st = pattern_of(p, &pat, &n, &literal);
    if (!st) st = behavior_of(p, SPLIT_ISOLATED, &behavior);
    if (!st) st = add_split(t, pat, n, literal, behavior, field_bool(p, "invert", false), "Split");
    return st;
  }
  if (!strcmp(type, "Digits")) {
    /* char::is_numeric: the Unicode N categories */
    bool individual = field_bool(p, "individual_digits", false);
    return add_split(t, "\\p{N}", 5, false, individual ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, false,
                     "Digits");
  }
  if (!strcmp(type, "Punctuation")) {
    tok_split_behavior behavior;
    st = behavior_of(p, SPLIT_ISOLATED, &behavior);
    static const char punct[] = "[\\p{P}!-/:-@\\[-`{-~]";
    return st ? st : add_split(t, punct, strlen(punct), false, behavior, false, "Punctuation");
  }
  if (!strcmp(type, "Whitespace")) {
    static const char words[] = "\\w+|[^\\w\\s]+";
    return add_split(t, words, strlen(words), false, SPLIT_REMOVED, true, "Whitespace");
  }
  if (!strcmp(type, "WhitespaceSplit"))
    return add_split(t, "\\s+", 3, false, SPLIT_REMOVED, false, "WhitespaceSplit");
  if (!strcmp(type, "CharDelimiterSplit")) {
    const char *d;
    st = field_string(p, "delimiter", &d, true, "CharDelimiterSplit");
    return st ? st : add_split(t, d, strlen(d), true, SPLIT_REMOVED, false, "CharDelimiterSplit");
  }
  if (!strcmp(type, "Metaspace")) {
    const char *r;
    st = field_string(p, "replacement", &r, false, "Metaspace");
    if (st) return st;
    if (!r) r = "\xe2\x96\x81";
    tok_pre m = {.kind = PRE_METASPACE, .prepend_scheme = PREPEND_ALWAYS};
    m.replacement_len = strlen(r);
    if (m.replacement_len == 0 || m.replacement_len >= sizeof m.replacement)
      return bad("Metaspace replacement must be one character");
    memcpy(m.replacement, r, m.replacement_len);
    const char *scheme;
    st = field_string(p, "prepend_scheme", &scheme, false, "Metaspace");
    if (st) return st;
    if (scheme)
      m.prepend_scheme = !strcmp(scheme, "first")   ? PREPEND_FIRST
                         : !strcmp(scheme, "never") ? PREPEND_NEVER
                                                    : PREPEND_ALWAYS;
    else if (!field_bool(p, "add_prefix_space", true))
      m.prepend_scheme = PREPEND_NEVER;
    st = add_pre(t, m);
    if (!st && field_bool(p, "split", true))
      st = add_split(t, m.replacement, m.replacement_len, true, SPLIT_MERGED_WITH_NEXT, false,
                     "Metaspace");
    return st;
  }
  return ag_error_set(AG_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer \"%s\" is not supported",
                      type);
}

/* ---- post-processor ------------------------------------------------------------------- */

static ag_status push_ids_of(ag_tokenizer *t, const json_t *special, const char *name,
                             ag_tok_ids *to) {
  json_t *entry = json_object_get(special, name);
  json_t *ids = json_object_get(entry, "ids");
  if (json_is_array(ids)) {
    for (size_t i = 0; i < json_array_size(ids); i++) {
      json_t *v = json_array_get(ids, i);
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= t->n_vocab)
        return bad("TemplateProcessing special token id is out of range");
      ag_status st = ag_tok_ids_push(to, (int32_t)json_integer_value(v));
      if (st) return st;
    }
    return AG_OK;
  }
  int32_t id = ag_tok_find(t, name, strlen(name));
  if (id < 0)
    return ag_error_set(AG_ERR_FORMAT,
                        "tokenizer.json: post_processor token \"%s\" is not in the "
                        "vocabulary",
                        name);
  return ag_tok_ids_push(to, id);
}

static ag_status parse_post_processor(ag_tokenizer *t, const json_t *p, int depth) {
  if (!p || json_is_null(p)) return AG_OK;
  if (!json_is_object(p) || depth > 8) return bad("post_processor is not an object");
  const char *type = type_of(p);
  if (!type) return bad("post_processor has no type");
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(p, "processors");
    if (!json_is_array(list)) return bad("Sequence post_processor has no \"processors\" array");
    for (size_t i = 0; i < json_array_size(list); i++) {
      ag_status st = parse_post_processor(t, json_array_get(list, i), depth + 1);
      if (st) return st;
    }
    return AG_OK;
  }
  if (!strcmp(type, "ByteLevel")) return AG_OK;
  if (!strcmp(type, "TemplateProcessing")) {
    json_t *single = json_object_get(p, "single"), *special = json_object_get(p, "special_tokens");
    if (!json_is_array(single)) return bad("TemplateProcessing has no \"single\" array");
    bool after = false;
    for (size_t i = 0; i < json_array_size(single); i++) {
      json_t *item = json_array_get(single, i);
      json_t *tok = json_object_get(item, "SpecialToken");
      if (json_object_get(item, "Sequence")) {
        after = true;
        continue;
      }
      const char *name;
      ag_status st = field_string(tok, "id", &name, true, "TemplateProcessing SpecialToken");
      if (!st) st = push_ids_of(t, special, name, after ? &t->suffix : &t->prefix);
      if (st) return st;
    }
    return AG_OK;
  }
  if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
    json_t *cls = json_object_get(p, "cls"), *sep = json_object_get(p, "sep");
    json_t *cls_id = json_array_get(cls, 1), *sep_id = json_array_get(sep, 1);
    if (!json_is_integer(cls_id) || !json_is_integer(sep_id) || json_integer_value(cls_id) < 0 ||
        json_integer_value(cls_id) >= t->n_vocab || json_integer_value(sep_id) < 0 ||
        json_integer_value(sep_id) >= t->n_vocab)
      return bad("RobertaProcessing/BertProcessing cls/sep are not [token, id] pairs");
    ag_status st = ag_tok_ids_push(&t->prefix, (int32_t)json_integer_value(cls_id));
    return st ? st : ag_tok_ids_push(&t->suffix, (int32_t)json_integer_value(sep_id));
  }
  return ag_error_set(AG_ERR_UNSUPPORTED, "tokenizer.json: post_processor \"%s\" is not supported",
                      type);
}

/* ---- decoder ---------------------------------------------------------------------------- */

/* The decoder as a list of per-token steps plus a final strip. */
typedef enum dec_kind { DEC_BYTE_LEVEL, DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_STRIP_TOKEN } dec_kind;
typedef struct dec_step {
  dec_kind kind;
  tok_norm replace; /* DEC_REPLACE (literal or regex) */
  char strip[8];
  size_t strip_len;
  int start, stop;
} dec_step;

typedef struct dec_plan {
  dec_step steps[16];
  int n;
  bool fused;
} dec_plan;

static ag_status strip_content(const json_t *d, char out[8], size_t *n) {
  json_t *c = json_object_get(d, "content");
  if (!json_is_string(c) || json_string_length(c) == 0 || json_string_length(c) >= 8)
    return bad("Strip decoder content must be one character");
  *n = json_string_length(c);
  memcpy(out, json_string_value(c), *n);
  return AG_OK;
}

static ag_status parse_decoder(ag_tokenizer *t, dec_plan *plan, const json_t *d, int depth) {
  if (!json_is_object(d) || depth > 8) return bad("decoder is not an object");
  const char *type = type_of(d);
  if (!type) return bad("decoder has no type");
  if (plan->n >= (int)(sizeof plan->steps / sizeof *plan->steps))
    return bad("decoder has too many steps");
  dec_step *step = &plan->steps[plan->n];
  *step = (dec_step){0};
  ag_status st = AG_OK;
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(d, "decoders");
    if (!json_is_array(list)) return bad("Sequence decoder has no \"decoders\" array");
    for (size_t i = 0; !st && i < json_array_size(list); i++)
      st = parse_decoder(t, plan, json_array_get(list, i), depth + 1);
    return st;
  }
  if (!strcmp(type, "ByteLevel")) {
    step->kind = DEC_BYTE_LEVEL;
  } else if (!strcmp(type, "ByteFallback")) {
    step->kind = DEC_BYTE_FALLBACK;
  } else if (!strcmp(type, "Fuse")) {
    plan->fused = true;
    return AG_OK;
  } else if (!strcmp(type, "Replace")) {
    const char *pat;
    size_t pn;
    bool literal;
    st = pattern_of(d, &pat, &pn, &literal);
    json_t *c = json_object_get(d, "content");
    if (!st && !json_is_string(c)) st = bad("Replace decoder has no \"content\" string");
    if (st) return st;
    step->kind = DEC_REPLACE;
    step->replace.kind = NORM_REPLACE;
    step->replace.b_len = json_string_length(c);
    step->replace.b = dup_bytes(json_string_value(c), step->replace.b_len);
    if (literal) {
      step->replace.a_len = pn;
      step->replace.a = dup_bytes(pat, pn);
    } else {
      st = tok_regex_compile(pat, pn, false, "Replace decoder", &step->replace.re);
    }
    plan->n++; /* counted now so the caller frees what was allocated */
    if (!st && (!step->replace.b || (literal && !step->replace.a)))
      st = ag_error_set(AG_ERR_NOMEM, "out of memory");
    return st;
  } else if (!strcmp(type, "Strip")) {
    char c[8];
    size_t cn = 0;
    st = strip_content(d, c, &cn);
    if (st) return st;
    json_t *start = json_object_get(d, "start"), *stop = json_object_get(d, "stop");
    int a = json_is_integer(start) ? (int)json_integer_value(start) : 0;
    int b = json_is_integer(stop) ? (int)json_integer_value(stop) : 0;
    if (a < 0 || b < 0 || a > 1000 || b > 1000) return bad("Strip decoder start/stop out of range");
    if (plan->fused) { /* after Fuse: applies to the whole text */
      memcpy(t->strip, c, cn);
      t->strip_len = cn, t->strip_start = a, t->strip_stop = b;
      return AG_OK;
    }
    step->kind = DEC_STRIP_TOKEN;
    memcpy(step->strip, c, cn);
    step->strip_len = cn, step->start = a, step->stop = b;
  } else if (!strcmp(type, "Metaspace")) {
    const char *r;
    st = field_string(d, "replacement", &r, false, "Metaspace decoder");
    if (st) return st;
    if (!r) r = "\xe2\x96\x81";
    step->kind = DEC_REPLACE;
    step->replace.kind = NORM_REPLACE;
    step->replace.a_len = strlen(r);
    step->replace.a = dup_bytes(r, step->replace.a_len);
    step->replace.b_len = 1;
    step->replace.b = dup_bytes(" ", 1);
    plan->n++;
    if (!step->replace.a || !step->replace.b) return ag_error_set(AG_ERR_NOMEM, "out of memory");
    const char *scheme;
    st = field_string(d, "prepend_scheme", &scheme, false, "Metaspace decoder");
    bool prefix = scheme ? strcmp(scheme, "never") != 0 : field_bool(d, "add_prefix_space", true);
    if (!st && prefix) { /* the first token loses the space the encoder added */
      t->strip[0] = ' ';
      t->strip_len = 1, t->strip_start = 1, t->strip_stop = 0;
    }
    return st;
  } else {
    return ag_error_set(AG_ERR_UNSUPPORTED, "tokenizer.json: decoder \"%s\" is not supported",
                        type);
  }
  plan->n++;
  return AG_OK;
}

static void free_plan(dec_plan *plan) {
  for (int i = 0; i < plan->n; i++) {
    free(plan->steps[i].replace.a);
    free(plan->steps[i].replace.b);
    pcre2_code_free(plan->steps[i].replace.re);
  }
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* "<0xAB>" -> 0xAB, or -1. */
static int byte_token(const char *s, size_t n) {
  if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
  int hi = hex_value(s[3]), lo = hex_value(s[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Runs the per-token decoder steps over every vocabulary string. */
static ag_status build_pieces(ag_tokenizer *t, const dec_plan *plan) {
  ag_tok_text a = {0}, b = {0};
  tok_scratch sc = {0};
  ag_status st = AG_OK;
  for (int32_t id = 0; !st && id < t->n_vocab; id++) {
    size_t n;
    const char *s = tok_strtab_get(&t->vocab, id, &n);
    a.size = 0;
    st = tok_text_append(&a, s, n);
    for (int k = 0; !st && k < plan->n; k++) {
      const dec_step *step = &plan->steps[k];
      b.size = 0;
      st = tok_text_append(&b, "", 0);
      if (st) break;
      if (step->kind == DEC_BYTE_LEVEL) {
        /* A token with chars outside the alphabet decodes to its own UTF-8
         * (as Hugging Face's ByteLevel decoder does). */
        st = tok_text_append(&b, NULL, 0);
        char *buf = malloc(a.size + 1);
        if (!buf) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
        int64_t got = buf ? tok_byte_level_decode(a.data, a.size, buf) : -1;
        if (!st)
          st = got >= 0 ? tok_text_append(&b, buf, (size_t)got)
                        : tok_text_append(&b, a.data, a.size);
        free(buf);
      } else if (step->kind == DEC_BYTE_FALLBACK) {
        int byte = byte_token(a.data, a.size);
        char c = (char)byte;
        st = byte >= 0 ? tok_text_append(&b, &c, 1) : tok_text_append(&b, a.data, a.size);
      } else if (step->kind == DEC_REPLACE) {
        /* reuse the normalizer's Replace on one token */
        ag_tokenizer one = {0};
        one.norms = (tok_norm *)&step->replace;
        one.n_norms = 1;
        st = tok_normalize(&one, &sc, a.data, a.size);
        if (!st) st = tok_text_append(&b, sc.norm.data, sc.norm.size);
      } else { /* DEC_STRIP_TOKEN */
        size_t begin = 0, end = a.size;
        for (int i = 0; i < step->start && end - begin >= step->strip_len &&
                        memcmp(a.data + begin, step->strip, step->strip_len) == 0;
             i++)
          begin += step->strip_len;
        for (int i = 0; i < step->stop && end - begin >= step->strip_len &&
                        memcmp(a.data + end - step->strip_len, step->strip, step->strip_len) == 0;
             i++)
          end -= step->strip_len;
        st = tok_text_append(&b, a.data + begin, end - begin);
      }
      ag_tok_text tmp = a;
      a = b;
      b = tmp;
    }
    if (!st) st = tok_strtab_push(&t->pieces, a.data, a.size);
  }
  ag_tok_text_free(&a);
  ag_tok_text_free(&b);
  tok_scratch_free(&sc);
  return st;
}

/* ---- the model -------------------------------------------------------------------------- */

typedef struct entry {
  const char *text;
  size_t len;
  bool in_model;
} entry;

/* A merge's two halves: "a b" (split at the first space after the first
 * char, as llama.cpp does) or ["a", "b"]. */
static ag_status merge_halves(const json_t *m, size_t index, const char **a, size_t *an,
                              const char **b, size_t *bn) {
  if (json_is_string(m)) {
    const char *s = json_string_value(m);
    size_t n = json_string_length(m);
    const char *space = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
    if (!space)
      return ag_error_set(AG_ERR_FORMAT, "tokenizer.json: merge %zu \"%s\" is not \"a b\"", index,
                          s);
    *a = s, *an = (size_t)(space - s), *b = space + 1, *bn = n - *an - 1;
    return AG_OK;
  }
  if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
      json_is_string(json_array_get(m, 1))) {
    *a = json_string_value(json_array_get(m, 0)), *an = json_string_length(json_array_get(m, 0));
    *b = json_string_value(json_array_get(m, 1)), *bn = json_string_length(json_array_get(m, 1));
    return AG_OK;
  }
  return ag_error_set(AG_ERR_FORMAT,
                      "tokenizer.json: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", index);
}

static ag_status load_merges(ag_tokenizer *t, const json_t *merges) {
  size_t n = json_array_size(merges);
  if (n > (size_t)INT32_MAX) return bad("too many merges");
  ag_status st = tok_merge_map_init(&t->merges, (int64_t)n);
  if (st) return st;
  t->merge_pairs = malloc((n + 1) * 2 * sizeof *t->merge_pairs);
  if (!t->merge_pairs) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_tok_text joined = {0};
  for (size_t i = 0; !st && i < n; i++) {
    const char *a = NULL, *b = NULL;
    size_t an = 0, bn = 0;
    st = merge_halves(json_array_get(merges, i), i, &a, &an, &b, &bn);
    if (st) break;
    int32_t left = ag_tok_find(t, a, an), right = ag_tok_find(t, b, bn);
    joined.size = 0;
    st = tok_text_append(&joined, a, an);
    if (!st) st = tok_text_append(&joined, b, bn);
    if (st) break;
    int32_t result = ag_tok_find(t, joined.data, joined.size);
    if (left < 0 || right < 0 || result < 0) {
      st = ag_error_set(AG_ERR_FORMAT,
                        "tokenizer.json: merge %zu (\"%.*s\" + \"%.*s\") names a token that is not "
                        "in the vocabulary",
                        i, (int)(an > 60 ? 60 : an), a, (int)(bn > 60 ? 60 : bn), b);
      break;
    }
    int32_t rank = (int32_t)t->merges.count;
    if (tok_merge_map_insert(&t->merges, left, right, rank, result)) {
      t->merge_pairs[2 * rank] = left;
      t->merge_pairs[2 * rank + 1] = right;
    }
  }
  ag_tok_text_free(&joined);
  return st;
}

static ag_status load_vocab(ag_tokenizer *t, const json_t *model, const json_t *added) {
  json_t *vocab = json_object_get(model, "vocab");
  if (!json_is_object(vocab)) return bad("model has no \"vocab\" object");
  size_t n_entries = json_object_size(vocab), n_added = json_array_size(added);
  if (added && !json_is_array(added) && !json_is_null(added))
    return bad("\"added_tokens\" is not an array");
  /* ids: the largest id of vocab and added tokens, + 1 */
  int64_t max_id = -1;
  const char *key;
  json_t *value;
  json_object_foreach(vocab, key, value) {
    if (!json_is_integer(value) || json_integer_value(value) < 0 ||
        json_integer_value(value) >= (1 << 24))
      return ag_error_set(AG_ERR_FORMAT, "tokenizer.json: vocab entry \"%.60s\" has a bad id", key);
    if (json_integer_value(value) > max_id) max_id = json_integer_value(value);
  }
  for (size_t i = 0; i < n_added; i++) {
    json_t *a = json_array_get(added, i);
    json_t *id = json_object_get(a, "id"), *content = json_object_get(a, "content");
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24) ||
        !json_is_string(content))
      return ag_error_set(AG_ERR_FORMAT,
                          "tokenizer.json: added_tokens[%zu] needs an \"id\" and a \"content\"", i);
    if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
  }
  if (max_id < 0) return bad("the vocabulary is empty");
  /* Ids may have holes, but not so many that a corrupt id blows up memory. */
  if (max_id + 1 > (int64_t)(n_entries + n_added) * 2 + 1024)
    return ag_error_set(AG_ERR_FORMAT,
                        "tokenizer.json: token id %lld is far beyond the %zu vocabulary entries",
                        (long long)max_id, n_entries + n_added);
  int32_t n_vocab = (int32_t)max_id + 1;
  ag_status st = tok_alloc_vocab(t, n_vocab);
  if (st) return st;
  entry *e = calloc((size_t)n_vocab, sizeof *e);
  if (!e) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  json_object_foreach(vocab, key, value) {
    int32_t id = (int32_t)json_integer_value(value);
    if (e[id].text) {
      ag_status dup = ag_error_set(
          AG_ERR_FORMAT, "tokenizer.json: vocab entries \"%.60s\" and \"%.60s\" share id %d",
          e[id].text, key, id);
      free(e);
      return dup;
    }
    /* jansson keys are NUL-terminated; a key with an embedded NUL is cut,
     * which no real vocabulary has. */
    e[id] = (entry){key, strlen(key), true};
  }
  for (size_t i = 0; i < n_added; i++) {
    json_t *a = json_array_get(added, i);
    int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
    json_t *content = json_object_get(a, "content");
    e[id].text = json_string_value(content);
    e[id].len = json_string_length(content);
    bool special = field_bool(a, "special", false);
    uint8_t f = TOKF_ADDED;
    if (special) f |= TOKF_SPECIAL;
    if (field_bool(a, "lstrip", false)) f |= TOKF_LSTRIP;
    if (field_bool(a, "rstrip", false)) f |= TOKF_RSTRIP;
    if (field_bool(a, "single_word", false)) f |= TOKF_SINGLE_WORD;
    t->flags[id] |= f;
    t->types[id] = special ? TOKT_CONTROL : TOKT_USER_DEFINED;
  }
  for (int32_t id = 0; !st && id < n_vocab; id++) {
    if (!e[id].text) t->types[id] = TOKT_UNUSED;
    if (e[id].in_model) t->flags[id] |= TOKF_IN_MODEL;
    st = tok_strtab_push(&t->vocab, e[id].text ? e[id].text : "", e[id].len);
  }
  free(e);
  return st;
}

/* Keys for the model: byte-level vocabularies are looked up by raw bytes. */
static ag_status build_keys(ag_tokenizer *t) {
  char *buf = NULL;
  size_t cap = 0;
  ag_status st = AG_OK;
  for (int32_t id = 0; !st && id < t->n_vocab; id++) {
    size_t n;
    const char *s = tok_strtab_get(&t->vocab, id, &n);
    if (!(t->flags[id] & TOKF_IN_MODEL)) {
      st = tok_strtab_push(&t->keys, "", 0);
      continue;
    }
    if (!t->byte_level) {
      st = tok_strtab_push(&t->keys, s, n);
      continue;
    }
    if (n + 1 > cap) {
      free(buf);
      cap = 2 * (n + 1);
      buf = malloc(cap);
      if (!buf) return ag_error_set(AG_ERR_NOMEM, "out of memory");
    }
    int64_t got = tok_byte_level_decode(s, n, buf);
    st = got >= 0 ? tok_strtab_push(&t->keys, buf, (size_t)got) : tok_strtab_push(&t->keys, s, n);
  }
  free(buf);
  return st;
}

static bool mentions_byte_level(const json_t *node, int depth) {
  if (!node || depth > 8) return false;
  if (json_is_object(node)) {
    const char *type = type_of(node);
    if (type && !strcmp(type, "ByteLevel")) return true;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)node, key, v) if (mentions_byte_level(v, depth + 1)) return true;
  } else if (json_is_array(node)) {
    for (size_t i = 0; i < json_array_size(node); i++)
      if (mentions_byte_level(json_array_get(node, i), depth + 1)) return true;
  }
  return false;
}

/* A token name from tokenizer_config.json: "x" or {"content": "x"}. */
static int32_t config_token(ag_tokenizer *t, const json_t *config, const char *key) {
  json_t *v = json_object_get(config, key);
  if (json_is_object(v)) v = json_object_get(v, "content");
  if (!json_is_string(v)) return -1;
  return ag_tok_find(t, json_string_value(v), json_string_length(v));
}

static void guess_roles(ag_tokenizer *t, const json_t *config, const char *unk_name) {
  for (int r = 0; r < AG_TOK_ROLE_COUNT; r++) t->roles[r] = -1;
  if (unk_name) t->roles[AG_TOK_UNK] = ag_tok_find(t, unk_name, strlen(unk_name));
  if (config) {
    int32_t id;
    if ((id = config_token(t, config, "bos_token")) >= 0) t->roles[AG_TOK_BOS] = id;
    if ((id = config_token(t, config, "eos_token")) >= 0) t->roles[AG_TOK_EOS] = id;
    if ((id = config_token(t, config, "pad_token")) >= 0) t->roles[AG_TOK_PAD] = id;
    if ((id = config_token(t, config, "unk_token")) >= 0) t->roles[AG_TOK_UNK] = id;
  }
  if (t->roles[AG_TOK_BOS] < 0 && t->prefix.count > 0) t->roles[AG_TOK_BOS] = t->prefix.ids[0];
  if (t->roles[AG_TOK_EOS] < 0 && t->suffix.count > 0)
    t->roles[AG_TOK_EOS] = t->suffix.ids[t->suffix.count - 1];
  /* The usual names, when nothing said otherwise. */
  static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"};
  static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>",
                                          "<|im_end|>"};
  for (size_t i = 0; t->roles[AG_TOK_BOS] < 0 && i < sizeof bos_names / sizeof *bos_names; i++)
    t->roles[AG_TOK_BOS] = ag_tok_find(t, bos_names[i], strlen(bos_names[i]));
  for (size_t i = 0; t->roles[AG_TOK_EOS] < 0 && i < sizeof eos_names / sizeof *eos_names; i++)
    t->roles[AG_TOK_EOS] = ag_tok_find(t, eos_names[i], strlen(eos_names[i]));
}

/* tokenizer_config.json's add_bos_token/add_eos_token, when present, decide
 * what AG_TOK_ADD_SPECIAL adds (transformers' Llama tokenizers rebuild their
 * post-processor from them). */
static ag_status apply_config_flags(ag_tokenizer *t, const json_t *config) {
  json_t *bos = json_object_get(config, "add_bos_token"),
         *eos = json_object_get(config, "add_eos_token");
  ag_status st = AG_OK;
  if (json_is_boolean(bos) && t->roles[AG_TOK_BOS] >= 0) {
    t->prefix.count = 0;
    if (json_is_true(bos)) st = ag_tok_ids_push(&t->prefix, t->roles[AG_TOK_BOS]);
  }
  if (!st && json_is_boolean(eos) && t->roles[AG_TOK_EOS] >= 0) {
    t->suffix.count = 0;
    if (json_is_true(eos)) st = ag_tok_ids_push(&t->suffix, t->roles[AG_TOK_EOS]);
  }
  return st;
}

static ag_status build(ag_tokenizer *t, json_t *root, const json_t *config) {
  json_t *model = json_object_get(root, "model");
  if (!json_is_object(model)) return bad("no \"model\" object");
  const char *type = type_of(model);
  if (type && strcmp(type, "BPE") != 0)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "tokenizer.json: the %s model is not supported (only BPE)", type);
  const char *prefix, *suffix, *unk_name;
  ag_status st = field_string(model, "continuing_subword_prefix", &prefix, false, "model");
  if (!st) st = field_string(model, "end_of_word_suffix", &suffix, false, "model");
  if (!st) st = field_string(model, "unk_token", &unk_name, false, "model");
  if (st) return st;
  if ((prefix && *prefix) || (suffix && *suffix))
    return ag_error_set(AG_ERR_UNSUPPORTED, "tokenizer.json: BPE with continuing_subword_prefix "
                                            "or end_of_word_suffix is not supported");
  json_t *merges = json_object_get(model, "merges");
  if (merges && !json_is_array(merges) && !json_is_null(merges))
    return bad("model.merges is not an array");
  json_t *added = json_object_get(root, "added_tokens");

  t->model = TOK_MODEL_BPE;
  t->byte_fallback = field_bool(model, "byte_fallback", false);
  t->fuse_unk = field_bool(model, "fuse_unk", false);
  t->ignore_merges = field_bool(model, "ignore_merges", false);
  t->byte_level = mentions_byte_level(json_object_get(root, "pre_tokenizer"), 0) ||
                  mentions_byte_level(json_object_get(root, "decoder"), 0);
  snprintf(t->pre_name, sizeof t->pre_name, "tokenizer.json");

  st = load_vocab(t, model, added);
  if (!st) st = build_keys(t);
  if (!st) st = tok_index_init(&t->vocab_index, t->n_vocab);
  if (st) return st;
  for (int32_t id = 0; id < t->n_vocab; id++) tok_index_insert(&t->vocab_index, &t->vocab, id);
  if (merges && json_is_array(merges))
    st = load_merges(t, merges);
  else
    st = tok_merge_map_init(&t->merges, 0);
  if (!st) st = parse_normalizer(t, json_object_get(root, "normalizer"), 0);
  if (!st) st = parse_pre_tokenizer(t, json_object_get(root, "pre_tokenizer"), 0);
  if (!st) st = parse_post_processor(t, json_object_get(root, "post_processor"), 0);
  if (st) return st;

  json_t *decoder = json_object_get(root, "decoder");
  dec_plan plan = {0};
  if (!decoder || json_is_null(decoder))
    t->json_no_decoder = true;
  else
    st = parse_decoder(t, &plan, decoder, 0);
  if (!st) st = build_pieces(t, &plan);
  free_plan(&plan);
  if (st) return st;

  guess_roles(t, config, unk_name);
  if (config) st = apply_config_flags(t, config);
  if (st) return st;

  /* What ag_tok_save_json writes back besides the vocabulary. */
  t->hf_sections = json_object();
  if (!t->hf_sections) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  static const char *const keep[] = {"added_tokens", "normalizer", "pre_tokenizer",
                                     "post_processor", "decoder"};
  for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
    json_t *v = json_object_get(root, keep[i]);
    json_object_set(t->hf_sections, keep[i], v ? v : json_null());
  }
  json_t *options = json_copy(model);
  if (options) {
    json_object_del(options, "vocab");
    json_object_del(options, "merges");
    json_object_set_new(t->hf_sections, "model", options);
  }
  return tok_finish(t, "tokenizer.json");
}

ag_status ag_tok_load_json_text(const char *json, size_t bytes, const char *config_json,
                                size_t config_bytes, ag_tokenizer **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "ag_tok_load_json_text: NULL argument");
  *out = NULL;
  if (!json) return ag_error_set(AG_ERR_INVALID, "ag_tok_load_json_text: NULL text");
  json_error_t err;
  json_t *root = json_loadb(json, bytes, 0, &err);
  if (!root)
    return ag_error_set(AG_ERR_FORMAT, "tokenizer.json is not valid JSON (line %d, column %d): %s",
                        err.line, err.column, err.text);
  json_t *config = NULL;
  if (config_json) {
    config = json_loadb(config_json, config_bytes, 0, &err);
    if (!config || !json_is_object(config)) {
      json_decref(root);
      json_decref(config);
      return ag_error_set(AG_ERR_FORMAT,
                          "tokenizer_config.json is not a JSON object (line %d, column %d): %s",
                          err.line, err.column, err.text);
    }
  }
  ag_tokenizer *t = tok_new();
  ag_status st = t ? AG_OK : ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!st && !json_is_object(root)) st = bad("the top level is not an object");
  if (!st) st = build(t, root, config);
  json_decref(root);
  json_decref(config);
  if (st) {
    ag_tok_free(t);
    return st;
  }
  *out = t;
  return AG_OK;
}

ag_status ag_tok_load_json(const char *path, ag_tokenizer **out) {
  if (!out || !path) return ag_error_set(AG_ERR_INVALID, "ag_tok_load_json: NULL argument");
  *out = NULL;
  char *text = NULL, *config = NULL;
  size_t bytes = 0, config_bytes = 0;
  ag_status st = ag_read_file(path, &text, &bytes);
  if (st) return st;
  /* tokenizer_config.json beside it */
  const char *slash = strrchr(path, '/');
  size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
  char *config_path = malloc(dir + 32);
  if (config_path) {
    memcpy(config_path, path, dir);
    strcpy(config_path + dir, "tokenizer_config.json");
    if (ag_file_exists(config_path)) st = ag_read_file(config_path, &config, &config_bytes);
  }
  free(config_path);
  if (!st) st = ag_tok_load_json_text(text, bytes, config, config_bytes, out);
  if (st) st = ag_error_wrap(st, "tokenizer %s", path);
  free(text);
  free(config);
  return st;
}
