/* Pre-tokenization: splitting a normalized segment into words with PCRE2.
 *
 * Each step works on every word the previous steps produced, as Hugging
 * Face's pre-tokenizers do (a lookahead such as `\s+(?!\S)` sees the end of
 * the word, not the text after it). Split behaviours follow tokenizers'
 * SplitDelimiterBehavior; llama.cpp's pre-tokenizers are Isolated splits by
 * their list of regexes.
 *
 * The regexes of the named pre-tokenizers are the ones llama.cpp lists in
 * src/llama-vocab.cpp, which come from the models' tokenizer.json files;
 * where llama.cpp rewrote a pattern for std::regex, the model's original
 * pattern is used, since PCRE2 supports it. */
#include "lm/tokenizer_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- regexes -------------------------------------------------------------------- */

ag_status tok_regex_compile(const char *pattern, size_t n, bool literal, const char *what,
                            pcre2_code **out) {
  int code;
  PCRE2_SIZE at;
  /* PCRE2_LITERAL refuses PCRE2_UCP, which a literal does not need */
  uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  *out = pcre2_compile((PCRE2_SPTR)pattern, n, options, &code, &at, NULL);
  if (!*out) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    return ag_error_set(AG_ERR_FORMAT, "%s: bad regex at offset %zu: %s", what, (size_t)at,
                        (const char *)message);
  }
  /* JIT is an optimisation: without it (unsupported CPU, SELinux) the
   * interpreter gives the same matches. */
  (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
  return AG_OK;
}

/* 32 KiB to 8 MiB: a JIT match on a long word may need more than PCRE2's
 * default machine-stack frame. */
#define JIT_STACK_START (32 * 1024)
#define JIT_STACK_MAX   (8 * 1024 * 1024)

ag_status tok_scratch_match_init(tok_scratch *s) {
  if (s->match) return AG_OK;
  s->match = pcre2_match_data_create(16, NULL);
  s->match_context = pcre2_match_context_create(NULL);
  if (!s->match || !s->match_context) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  s->jit_stack = pcre2_jit_stack_create(JIT_STACK_START, JIT_STACK_MAX, NULL);
  if (s->jit_stack) pcre2_jit_stack_assign(s->match_context, NULL, s->jit_stack);
  return AG_OK;
}

ag_status tok_regex_error(int rc, const char *what) {
  PCRE2_UCHAR message[256];
  pcre2_get_error_message(rc, message, sizeof message);
  return ag_error_set(AG_ERR_INVALID, "tokenizer: %s regex failed on the input: %s", what,
                      (const char *)message);
}

/* ---- split behaviours ------------------------------------------------------------- */

static ag_status push_span(tok_span **spans, size_t *n, size_t *cap, size_t off, size_t len) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    tok_span *p = realloc(*spans, c * sizeof *p);
    if (!p) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
    *spans = p;
    *cap = c;
  }
  (*spans)[(*n)++] = (tok_span){off, len};
  return AG_OK;
}

/* Streams the (piece, is_match) sequence of one word into s->spans2. */
typedef struct splitter {
  tok_scratch *s;
  tok_split_behavior behavior;
  bool previous_match; /* the last piece seen was a match */
  bool has_last;       /* a piece of this word was emitted (MergedWithPrevious) */
  bool pending;        /* MergedWithNext: a match waiting for the next piece */
  size_t pending_off, pending_len;
} splitter;

static ag_status emit(splitter *sp, size_t off, size_t len) {
  sp->has_last = true;
  return push_span(&sp->s->spans2, &sp->s->n_spans2, &sp->s->cap_spans2, off, len);
}

static ag_status piece(splitter *sp, size_t off, size_t len, bool is_match) {
  if (len == 0) return AG_OK;
  ag_status st = AG_OK;
  tok_scratch *s = sp->s;
  switch (sp->behavior) {
  case SPLIT_ISOLATED: st = emit(sp, off, len); break;
  case SPLIT_REMOVED:
    if (!is_match) st = emit(sp, off, len);
    break;
  case SPLIT_MERGED_WITH_PREVIOUS:
    if (is_match && !sp->previous_match && sp->has_last)
      s->spans2[s->n_spans2 - 1].len = off + len - s->spans2[s->n_spans2 - 1].off;
    else
      st = emit(sp, off, len);
    break;
  case SPLIT_MERGED_WITH_NEXT:
    if (sp->pending) {
      if (!is_match) {
        st = emit(sp, sp->pending_off, off + len - sp->pending_off);
        sp->pending = false;
        break;
      }
      st = emit(sp, sp->pending_off, sp->pending_len);
      sp->pending_off = off, sp->pending_len = len;
    } else if (is_match) {
      sp->pending = true;
      sp->pending_off = off, sp->pending_len = len;
    } else {
      st = emit(sp, off, len);
    }
    break;
  case SPLIT_CONTIGUOUS:
    if (is_match && sp->previous_match)
      s->spans2[s->n_spans2 - 1].len = off + len - s->spans2[s->n_spans2 - 1].off;
    else
      st = emit(sp, off, len);
    break;
  }
  sp->previous_match = is_match;
  return st;
}

static ag_status split_word(tok_scratch *s, const tok_pre *step, const char *text, tok_span w) {
  splitter sp = {.s = s, .behavior = step->behavior};
  const unsigned char *subject = (const unsigned char *)text + w.off;
  size_t pos = 0, gap = 0;
  ag_status st = AG_OK;
  while (!st && pos <= w.len) {
    int rc = pcre2_match(step->re, subject, w.len, pos, 0, s->match, s->match_context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return tok_regex_error(rc, "pre-tokenizer");
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->match);
    size_t start = ov[0], end = ov[1];
    if (end <= start) { /* empty match: not a piece; move on one character */
      if (start >= w.len) break;
      size_t len = tok_utf8_len(subject + start, w.len - start);
      pos = start + (len ? len : 1);
      continue;
    }
    st = piece(&sp, w.off + gap, start - gap, step->invert);
    if (!st) st = piece(&sp, w.off + start, end - start, !step->invert);
    gap = pos = end;
  }
  if (!st) st = piece(&sp, w.off + gap, w.len - gap, step->invert);
  if (!st && sp.pending) st = emit(&sp, sp.pending_off, sp.pending_len);
  return st;
}

/* ---- text-rewriting steps ----------------------------------------------------------- */

static void swap_spans(tok_scratch *s) {
  tok_span *p = s->spans;
  size_t c = s->cap_spans;
  s->spans = s->spans2, s->cap_spans = s->cap_spans2, s->n_spans = s->n_spans2;
  s->spans2 = p, s->cap_spans2 = c, s->n_spans2 = 0;
}

/* Rewrites every word into s->norm (as the new text) and swaps it in. */
static ag_status rewrite_words(const tok_pre *step, tok_scratch *s, bool first_segment) {
  ag_tok_text *out = &s->norm;
  out->size = 0;
  s->n_spans2 = 0;
  ag_status st = tok_text_append(out, "", 0);
  for (size_t i = 0; !st && i < s->n_spans; i++) {
    const char *w = s->pre.data + s->spans[i].off;
    size_t n = s->spans[i].len, start = out->size;
    if (step->kind == PRE_PREFIX_SPACE) {
      if (n == 0 || w[0] != ' ') st = tok_text_append(out, " ", 1);
      if (!st) st = tok_text_append(out, w, n);
    } else { /* PRE_METASPACE */
      const char *r = step->replacement;
      size_t rn = step->replacement_len;
      bool prepend =
          step->prepend_scheme == PREPEND_ALWAYS ||
          (step->prepend_scheme == PREPEND_FIRST && first_segment && s->spans[i].off == 0);
      bool starts_with_space = n > 0 && w[0] == ' ';
      bool starts_with_r = n >= rn && memcmp(w, r, rn) == 0;
      if (prepend && !starts_with_space && !starts_with_r) st = tok_text_append(out, r, rn);
      for (size_t k = 0; !st && k < n; k++)
        st = w[k] == ' ' ? tok_text_append(out, r, rn) : tok_text_append(out, w + k, 1);
    }
    if (!st) st = push_span(&s->spans2, &s->n_spans2, &s->cap_spans2, start, out->size - start);
  }
  if (st) return st;
  ag_tok_text tmp = s->pre;
  s->pre = s->norm;
  s->norm = tmp;
  swap_spans(s);
  return AG_OK;
}

ag_status tok_pretokenize(const ag_tokenizer *t, tok_scratch *s, bool first_segment) {
  s->pre.size = 0;
  ag_status st = tok_text_append(&s->pre, s->norm.data, s->norm.size);
  s->n_spans = 0;
  if (!st) st = push_span(&s->spans, &s->n_spans, &s->cap_spans, 0, s->pre.size);
  if (!st && t->n_pres > 0) st = tok_scratch_match_init(s);
  for (int k = 0; !st && k < t->n_pres; k++) {
    const tok_pre *step = &t->pres[k];
    if (step->kind != PRE_SPLIT) {
      st = rewrite_words(step, s, first_segment);
      continue;
    }
    s->n_spans2 = 0;
    for (size_t i = 0; !st && i < s->n_spans; i++)
      st = split_word(s, step, s->pre.data, s->spans[i]);
    if (!st) swap_spans(s);
  }
  return st;
}

/* ---- llama.cpp's named pre-tokenizers ------------------------------------------------- */

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_RE                                                                                  \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                       \
  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_RE                                                                                   \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                            \
  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define BLOOM_RE " ?[^(\\s|.,!?…。，、।۔،)]+"
#define CJK_RE   "[一-龥ࠀ-一가-퟿]+"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+",
                                         "[0-9][0-9][0-9]"};
static const char *const re_gpt2[] = {GPT2_RE};
static const char *const re_llama3[] = {LLAMA3_RE};
static const char *const re_qwen2[] = {QWEN2_RE};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_RE, "[0-9][0-9][0-9]"};
static const char *const re_starcoder[] = {"\\p{N}", GPT2_RE};
static const char *const re_deepseek_llm[] = {
    "[\r\n]",
    /* cased letters (Lu, Ll, Lt), as code points: several of them have
     * canonical singleton decompositions that editors may normalize away */
    "\\s?["
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}"
    "\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}"
    "\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}"
    "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"
    "\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}"
    "\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}"
    "\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}"
    "\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
    "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}"
    "\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
    "]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", CJK_RE, "\\p{N}+"};
static const char *const re_deepseek_coder[] = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_RE,
                                                "\\p{N}"};
static const char *const re_deepseek_v3[] = {
    "\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
    ("[!\"#$%&'()*+,\\-./"
     ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
     "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+")};
static const char *const re_bloom[] = {BLOOM_RE};
static const char *const re_viking[] = {BLOOM_RE, "\\p{N}"};
static const char *const re_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^"
    "\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}"
    "| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
static const char *const re_gpt4o[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'"
    "s|"
    "'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{"
    "Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
static const char *const re_chameleon[] = {
    "<sentinel:[0-9]+>",      "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    "([\\t\\n]|    |  )",     "\\p{N}",
    "[\\p{P}!-/:-@\\[-`{-~]", GPT2_RE};
static const char *const re_seed_coder[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| "
    "?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
static const char *const re_bailingmoe[] = {
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"};

#define N_OF(a) (int)(sizeof a / sizeof *a)
#define PRE(names, re, ignore)                                                                     \
  { names, re, N_OF(re), ignore }

static const tok_pre_type pre_types[] = {
    PRE("default", re_default, false),
    PRE("llama3|llama-v3|llama-bpe|falcon3", re_llama3, true),
    PRE("dbrx|smaug-bpe|chatglm-bpe", re_llama3, false),
    PRE("deepseek-llm", re_deepseek_llm, false),
    PRE("deepseek-coder", re_deepseek_coder, false),
    PRE("deepseek-v3|hunyuan-dense", re_deepseek_v3, false),
    PRE("falcon", re_falcon, false),
    PRE("starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", re_starcoder, false),
    PRE("gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|"
        "roberta-bpe|mpt|olmo|jais|trillion|granite-docling",
        re_gpt2, false),
    PRE("qwen2|stablelm2|megrez|hunyuan|grok-2", re_qwen2, false),
    PRE("poro-chat|bloom|gpt3-finnish", re_bloom, false),
    PRE("viking", re_viking, false),
    PRE("tekken", re_tekken, true),
    PRE("chameleon", re_chameleon, false),
    PRE("gpt-4o|minimax-m2", re_gpt4o, false),
    PRE("seed-coder", re_seed_coder, false),
    PRE("bailingmoe", re_bailingmoe, false),
};

static bool name_in(const char *names, const char *name) {
  size_t n = strlen(name);
  for (const char *p = names; *p;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == n && memcmp(p, name, n) == 0) return true;
    if (!bar) break;
    p = bar + 1;
  }
  return false;
}

const tok_pre_type *tok_pre_type_find(const char *name) {
  for (int i = 0; i < N_OF(pre_types); i++)
    if (name_in(pre_types[i].names, name)) return &pre_types[i];
  return NULL;
}

/* Every alias of every type, split once from the constant table. */
static const char *pre_names[128];
static char pre_names_storage[1024];
static pthread_once_t pre_names_once = PTHREAD_ONCE_INIT;

static void build_pre_names(void) {
  size_t used = 0;
  int k = 0;
  for (int i = 0; i < N_OF(pre_types); i++) {
    for (const char *p = pre_types[i].names; *p && k + 1 < N_OF(pre_names);) {
      const char *bar = strchr(p, '|');
      size_t len = bar ? (size_t)(bar - p) : strlen(p);
      if (used + len + 1 > sizeof pre_names_storage) return;
      memcpy(pre_names_storage + used, p, len);
      pre_names_storage[used + len] = '\0';
      pre_names[k++] = pre_names_storage + used;
      used += len + 1;
      if (!bar) break;
      p = bar + 1;
    }
  }
  pre_names[k] = NULL;
}

const char *const *ag_tok_pre_names(void) {
  pthread_once(&pre_names_once, build_pre_names);
  return pre_names;
}

ag_status tok_add_pre_type_steps(ag_tokenizer *t, const tok_pre_type *p) {
  tok_pre *grown = realloc(t->pres, (size_t)(t->n_pres + p->n_regexes) * sizeof *grown);
  if (!grown) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  t->pres = grown;
  for (int i = 0; i < p->n_regexes; i++) {
    tok_pre *step = &t->pres[t->n_pres];
    *step = (tok_pre){.kind = PRE_SPLIT, .behavior = SPLIT_ISOLATED};
    ag_status st =
        tok_regex_compile(p->regexes[i], strlen(p->regexes[i]), false, "pre-tokenizer", &step->re);
    if (st) return st;
    t->n_pres++;
  }
  return AG_OK;
}
