/* Normalizers: rewrite a text segment before pre-tokenization, as the
 * `normalizer` of a tokenizer.json says (Prepend, Replace, NFC, ...), or as
 * llama.cpp does for SentencePiece vocabularies (a leading space, spaces as
 * U+2581).
 *
 * Unicode normalization forms and lowercasing use ICU when the build found
 * it (AG_HAVE_ICU). Without ICU, ASCII text is handled exactly (every form
 * leaves it unchanged) and other text passes through unchanged: the
 * tokenizer then differs from the reference only on text that is not
 * already in the normalization form, which is rare for NFC. Invalid UTF-8 is
 * never normalized: its bytes pass through as they are, so encoding stays
 * lossless. */
#include "lm/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef AG_HAVE_ICU
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#endif

static bool is_ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) return false;
  return true;
}

static ag_status replace_literal(const tok_norm *m, const char *s, size_t n, ag_tok_text *out) {
  if (m->a_len == 0) return tok_text_append(out, s, n);
  ag_status st = AG_OK;
  size_t i = 0, copied = 0;
  while (!st && i + m->a_len <= n) {
    if (s[i] == m->a[0] && memcmp(s + i, m->a, m->a_len) == 0) {
      st = tok_text_append(out, s + copied, i - copied);
      if (!st) st = tok_text_append(out, m->b, m->b_len);
      i += m->a_len;
      copied = i;
    } else {
      i++;
    }
  }
  if (!st) st = tok_text_append(out, s + copied, n - copied);
  return st;
}

static ag_status replace_regex(const tok_norm *m, tok_scratch *sc, const char *s, size_t n,
                               ag_tok_text *out) {
  ag_status st = tok_scratch_match_init(sc);
  size_t pos = 0, copied = 0;
  while (!st && pos <= n) {
    int rc = pcre2_match(m->re, (PCRE2_SPTR)s, n, pos, 0, sc->match, sc->match_context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return tok_regex_error(rc, "normalizer");
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->match);
    size_t start = ov[0], end = ov[1];
    if (end <= start) {
      if (start >= n) break;
      size_t len = tok_utf8_len((const unsigned char *)s + start, n - start);
      pos = start + (len ? len : 1);
      continue;
    }
    st = tok_text_append(out, s + copied, start - copied);
    if (!st) st = tok_text_append(out, m->b, m->b_len);
    copied = pos = end;
  }
  if (!st) st = tok_text_append(out, s + copied, n - copied);
  return st;
}

static bool is_unicode_space(const unsigned char *s, size_t n, size_t *len) {
  *len = 1;
  if (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r')) return true;
  size_t k = tok_utf8_len(s, n);
  if (k < 2) return false;
  uint32_t cp = k == 2 ? ((uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F))
                : k == 3
                    ? ((uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F))
                    : 0;
  *len = k;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static ag_status strip_spaces(const tok_norm *m, const char *s, size_t n, ag_tok_text *out) {
  const unsigned char *u = (const unsigned char *)s;
  size_t begin = 0, end = n, len;
  if (m->left)
    while (begin < n && is_unicode_space(u + begin, n - begin, &len)) begin += len;
  if (m->right) {
    /* Scan forward remembering where the trailing run of spaces starts. */
    size_t run = n;
    for (size_t i = begin; i < n;) {
      bool space = is_unicode_space(u + i, n - i, &len);
      if (space && run == n) run = i;
      if (!space) run = n;
      i += len;
    }
    end = run;
  }
  return tok_text_append(out, s + begin, end - begin);
}

#ifdef AG_HAVE_ICU
/* Normalizes (or lowercases) one valid UTF-8 run through UTF-16. */
static ag_status icu_run(tok_norm_kind kind, const char *s, size_t n, ag_tok_text *out) {
  UErrorCode err = U_ZERO_ERROR;
  int32_t n16 = 0;
  if (n > INT32_MAX / 4) return ag_error_set(AG_ERR_INVALID, "tokenizer: segment too long");
  u_strFromUTF8(NULL, 0, &n16, s, (int32_t)n, &err);
  if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err)) return tok_text_append(out, s, n);
  err = U_ZERO_ERROR;
  /* NFKC/NFKD and lowercasing can expand a character up to 18 times
   * (U+FDFA); start at 4x and retry with the size ICU asks for. */
  int32_t cap = n16 * 4 + 16;
  UChar *src = malloc((size_t)(n16 + 1) * sizeof *src), *dst = NULL;
  ag_status st = AG_OK;
  if (!src) return ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
  u_strFromUTF8(src, n16 + 1, NULL, s, (int32_t)n, &err);
  const UNormalizer2 *norm = NULL;
  if (kind == NORM_NFC)
    norm = unorm2_getNFCInstance(&err);
  else if (kind == NORM_NFD)
    norm = unorm2_getNFDInstance(&err);
  else if (kind == NORM_NFKC)
    norm = unorm2_getNFKCInstance(&err);
  else if (kind == NORM_NFKD)
    norm = unorm2_getNFKDInstance(&err);
  for (int attempt = 0; attempt < 2 && !st; attempt++) {
    free(dst);
    dst = malloc((size_t)cap * sizeof *dst);
    if (!dst) {
      st = ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
      break;
    }
    err = U_ZERO_ERROR;
    int32_t got = norm ? unorm2_normalize(norm, src, n16, dst, cap, &err)
                       : u_strToLower(dst, cap, src, n16, "", &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
      cap = got + 1;
      continue;
    }
    if (U_FAILURE(err)) {
      st = tok_text_append(out, s, n); /* leave the text as it is */
      break;
    }
    int32_t n8 = 0;
    err = U_ZERO_ERROR;
    u_strToUTF8(NULL, 0, &n8, dst, got, &err);
    char *utf8 = malloc((size_t)n8 + 1);
    if (!utf8) {
      st = ag_error_set(AG_ERR_NOMEM, "tokenizer: out of memory");
      break;
    }
    err = U_ZERO_ERROR;
    u_strToUTF8(utf8, n8 + 1, NULL, dst, got, &err);
    st = U_FAILURE(err) ? tok_text_append(out, s, n) : tok_text_append(out, utf8, (size_t)n8);
    free(utf8);
    break;
  }
  free(src);
  free(dst);
  return st;
}
#endif

/* NFC/NFD/NFKC/NFKD/lowercase over the valid UTF-8 runs of s; invalid
 * bytes are copied as they are. */
static ag_status unicode_rewrite(tok_norm_kind kind, const char *s, size_t n, ag_tok_text *out) {
  if (is_ascii(s, n)) {
    if (kind != NORM_LOWERCASE) return tok_text_append(out, s, n);
    size_t at = out->size;
    ag_status st = tok_text_append(out, s, n);
    for (size_t i = at; !st && i < out->size; i++)
      if (out->data[i] >= 'A' && out->data[i] <= 'Z') out->data[i] = (char)(out->data[i] + 32);
    return st;
  }
#ifdef AG_HAVE_ICU
  const unsigned char *u = (const unsigned char *)s;
  ag_status st = AG_OK;
  for (size_t i = 0; !st && i < n;) {
    size_t j = i;
    while (j < n) {
      size_t len = tok_utf8_len(u + j, n - j);
      if (!len) break;
      j += len;
    }
    if (j > i) st = icu_run(kind, s + i, j - i, out);
    if (!st && j < n) st = tok_text_append(out, s + j, 1), j++;
    i = j;
  }
  return st;
#else
  if (kind == NORM_LOWERCASE) {
    size_t at = out->size;
    ag_status st = tok_text_append(out, s, n);
    for (size_t i = at; !st && i < out->size; i++)
      if (out->data[i] >= 'A' && out->data[i] <= 'Z') out->data[i] = (char)(out->data[i] + 32);
    return st;
  }
  return tok_text_append(out, s, n);
#endif
}

ag_status tok_normalize(const ag_tokenizer *t, tok_scratch *s, const char *text, size_t n) {
  s->norm.size = 0;
  ag_status st = tok_text_append(&s->norm, text, n);
  for (int k = 0; !st && k < t->n_norms; k++) {
    const tok_norm *m = &t->norms[k];
    ag_tok_text *out = &s->pre; /* scratch: swapped in below */
    out->size = 0;
    st = tok_text_append(out, "", 0);
    const char *in = s->norm.data;
    size_t len = s->norm.size;
    if (st) break;
    switch (m->kind) {
    case NORM_PREPEND:
      if (len > 0) st = tok_text_append(out, m->a, m->a_len);
      if (!st) st = tok_text_append(out, in, len);
      break;
    case NORM_REPLACE:
      st = m->re ? replace_regex(m, s, in, len, out) : replace_literal(m, in, len, out);
      break;
    case NORM_STRIP: st = strip_spaces(m, in, len, out); break;
    default: st = unicode_rewrite(m->kind, in, len, out); break;
    }
    ag_tok_text tmp = s->norm;
    s->norm = *out;
    *out = tmp;
  }
  return st;
}

bool tok_have_icu(void) {
#ifdef AG_HAVE_ICU
  return true;
#else
  return false;
#endif
}
