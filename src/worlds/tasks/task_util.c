/* Helpers shared by the task families: exact rationals, number parsing the
 * ways people write numbers, finding a value in free text (the leak guard),
 * growing strings, phrasings, per-task random streams. */
#include "worlds/tasks/task_util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- rationals ------------------------------------------------------------------- */

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static uint64_t abs_u64(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

/* num/den from magnitudes and a sign; false when it does not fit int64. */
static bool rational_from_parts(bool negative, uint64_t num, uint64_t den, ag_rational *out) {
  if (den == 0) return false;
  uint64_t g = gcd_u64(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  if (num == 0) {
    *out = (ag_rational){0, 1};
    return true;
  }
  if (den > (uint64_t)INT64_MAX || num > (uint64_t)INT64_MAX) return false;
  out->num = negative ? -(int64_t)num : (int64_t)num;
  out->den = (int64_t)den;
  return true;
}

static bool rational_norm(int64_t num, int64_t den, ag_rational *out) {
  return rational_from_parts((num < 0) != (den < 0), abs_u64(num), abs_u64(den), out);
}

ag_rational ag_rational_make(int64_t num, int64_t den) {
  ag_rational r = {0, 1};
  /* den == 0 or an unrepresentable result (INT64_MIN / -1) is a caller
   * error; 0 keeps the result normalised instead of undefined. */
  if (!rational_norm(num, den, &r)) r = (ag_rational){0, 1};
  return r;
}

bool ag_rational_equal(ag_rational a, ag_rational b) { return a.num == b.num && a.den == b.den; }

bool ag_rational_add(ag_rational a, ag_rational b, ag_rational *out) {
  /* a/b + c/d = (a*(d/g) + c*(b/g)) / (b/g*d) with g = gcd(b, d): keeps the
   * intermediates small. */
  int64_t g = (int64_t)gcd_u64((uint64_t)a.den, (uint64_t)b.den);
  int64_t t1, t2, num, den;
  if (__builtin_mul_overflow(a.num, b.den / g, &t1)) return false;
  if (__builtin_mul_overflow(b.num, a.den / g, &t2)) return false;
  if (__builtin_add_overflow(t1, t2, &num)) return false;
  if (__builtin_mul_overflow(a.den / g, b.den, &den)) return false;
  return rational_norm(num, den, out);
}

bool ag_rational_sub(ag_rational a, ag_rational b, ag_rational *out) {
  if (b.num == INT64_MIN) return false;
  b.num = -b.num;
  return ag_rational_add(a, b, out);
}

bool ag_rational_mul(ag_rational a, ag_rational b, ag_rational *out) {
  /* Cross-reduce first: (a/b)(c/d) = ((a/g1)(c/g2)) / ((b/g2)(d/g1)). */
  int64_t g1 = (int64_t)gcd_u64(abs_u64(a.num), (uint64_t)b.den);
  int64_t g2 = (int64_t)gcd_u64(abs_u64(b.num), (uint64_t)a.den);
  if (g1 == 0) g1 = 1;
  if (g2 == 0) g2 = 1;
  int64_t num, den;
  if (__builtin_mul_overflow(a.num / g1, b.num / g2, &num)) return false;
  if (__builtin_mul_overflow(a.den / g2, b.den / g1, &den)) return false;
  return rational_norm(num, den, out);
}

bool ag_rational_div(ag_rational a, ag_rational b, ag_rational *out) {
  if (b.num == 0) return false;
  ag_rational inv;
  if (!rational_norm(b.den, b.num, &inv)) return false;
  return ag_rational_mul(a, inv, out);
}

const char *ag_rational_format(ag_rational r, char *buf, size_t size) {
  if (r.den == 1)
    snprintf(buf, size, "%lld", (long long)r.num);
  else
    snprintf(buf, size, "%lld/%lld", (long long)r.num, (long long)r.den);
  return buf;
}

/* ---- parsing numbers -------------------------------------------------------------- */

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static const char *skip_spaces(const char *p) {
  while (is_space(*p)) p++;
  return p;
}

/* Unsigned decimal digits at *p into *v; false on overflow or no digit. */
static bool read_digits(const char **p, uint64_t *v, int *count) {
  const char *s = *p;
  uint64_t x = 0;
  int n = 0;
  while (isdigit((unsigned char)*s)) {
    if (__builtin_mul_overflow(x, (uint64_t)10, &x) ||
        __builtin_add_overflow(x, (uint64_t)(*s - '0'), &x))
      return false;
    s++;
    n++;
  }
  if (!n) return false;
  *p = s;
  *v = x;
  if (count) *count = n;
  return true;
}

/* An integer with optional thousands separators ("1,234,567"): groups of
 * exactly three digits after the first group of one to three. */
static bool read_grouped_int(const char **p, uint64_t *v) {
  const char *s = *p;
  int n;
  uint64_t x;
  if (!read_digits(&s, &x, &n)) return false;
  if (n <= 3 && *s == ',' && isdigit((unsigned char)s[1])) {
    const char *t = s;
    uint64_t y = x;
    bool ok = true;
    while (*t == ',' && isdigit((unsigned char)t[1])) {
      const char *g = t + 1;
      uint64_t part;
      int k;
      if (!read_digits(&g, &part, &k) || k != 3) {
        ok = false;
        break;
      }
      if (__builtin_mul_overflow(y, (uint64_t)1000, &y) || __builtin_add_overflow(y, part, &y))
        return false;
      t = g;
    }
    if (ok) {
      x = y;
      s = t;
    }
  }
  *p = s;
  *v = x;
  return true;
}

/* "{12}" or a single digit (LaTeX "\frac34"), with an optional '-' inside
 * braces. */
static bool read_latex_arg(const char **p, bool *negative, uint64_t *v) {
  const char *s = skip_spaces(*p);
  *negative = false;
  if (*s == '{') {
    s = skip_spaces(s + 1);
    if (*s == '-') {
      *negative = true;
      s = skip_spaces(s + 1);
    }
    if (!read_digits(&s, v, NULL)) return false;
    s = skip_spaces(s);
    if (*s != '}') return false;
    *p = s + 1;
    return true;
  }
  if (!isdigit((unsigned char)*s)) return false;
  *v = (uint64_t)(*s - '0');
  *p = s + 1;
  return true;
}

/* "\frac{a}{b}", "\dfrac", "\tfrac" at *p. */
static bool read_latex_frac(const char **p, bool *negative, uint64_t *num, uint64_t *den) {
  const char *s = *p;
  if (*s != '\\') return false;
  s++;
  if (*s == 'd' || *s == 't') s++;
  if (strncmp(s, "frac", 4) != 0) return false;
  s += 4;
  bool n1, n2;
  if (!read_latex_arg(&s, &n1, num) || !read_latex_arg(&s, &n2, den)) return false;
  *negative = n1 != n2;
  *p = s;
  return true;
}

/* A unit after the number: up to two words of letters ("12 square meters"). */
static const char *skip_unit_words(const char *s) {
  const char *t = s;
  for (int w = 0; w < 2; w++) {
    const char *u = skip_spaces(t);
    if (!isalpha((unsigned char)*u)) break;
    if (u == t && w > 0) break; /* words need a space between them */
    while (isalpha((unsigned char)*u)) u++;
    t = u;
  }
  return t;
}

static bool pow10_u64(int k, uint64_t *out) {
  uint64_t v = 1;
  for (int i = 0; i < k; i++)
    if (__builtin_mul_overflow(v, (uint64_t)10, &v)) return false;
  *out = v;
  return true;
}

/* The number itself (after sign, "$"): a fraction, a mixed number, a decimal
 * or an integer. *p advances past it. */
static bool read_unsigned_number(const char **p, uint64_t *num, uint64_t *den, bool *negative) {
  const char *s = *p;
  bool neg_latex;
  if (*s == '\\') {
    if (!read_latex_frac(&s, &neg_latex, num, den) || *den == 0) return false;
    if (neg_latex) { /* "\frac{-3}{4}" */
      if (!negative) return false;
      *negative = !*negative;
    }
    *p = s;
    return true;
  }
  uint64_t whole = 0;
  bool have_whole = false;
  if (isdigit((unsigned char)*s)) {
    if (!read_grouped_int(&s, &whole)) return false;
    have_whole = true;
  }
  if (*s == '.' && isdigit((unsigned char)s[1])) {
    s++;
    uint64_t frac, scale;
    int k;
    if (!read_digits(&s, &frac, &k) || !pow10_u64(k, &scale)) return false;
    uint64_t n;
    if (__builtin_mul_overflow(whole, scale, &n) || __builtin_add_overflow(n, frac, &n))
      return false;
    *num = n;
    *den = scale;
    *p = s;
    return true;
  }
  if (!have_whole) return false;
  /* A fraction "3/4", "3 / 4". */
  const char *t = skip_spaces(s);
  if (*t == '/') {
    t = skip_spaces(t + 1);
    uint64_t d;
    if (!read_digits(&t, &d, NULL) || d == 0) return false;
    *num = whole;
    *den = d;
    *p = t;
    return true;
  }
  /* A mixed number "1 1/2". */
  if (t != s && isdigit((unsigned char)*t)) {
    const char *u = t;
    uint64_t a, b;
    if (read_digits(&u, &a, NULL)) {
      u = skip_spaces(u);
      if (*u == '/') {
        u = skip_spaces(u + 1);
        if (read_digits(&u, &b, NULL) && b != 0) {
          uint64_t n;
          if (__builtin_mul_overflow(whole, b, &n) || __builtin_add_overflow(n, a, &n))
            return false;
          *num = n;
          *den = b;
          *p = u;
          return true;
        }
      }
    }
  }
  *num = whole;
  *den = 1;
  *p = s;
  return true;
}

/* The bytes of U+2212 MINUS SIGN. */
static const char unicode_minus[] = "\xe2\x88\x92";

static bool read_sign(const char **p, bool *negative) {
  const char *s = *p;
  if (*s == '-' || *s == '+') {
    *negative ^= *s == '-';
    *p = skip_spaces(s + 1);
    return true;
  }
  if (strncmp(s, unicode_minus, 3) == 0) {
    *negative ^= true;
    *p = skip_spaces(s + 3);
    return true;
  }
  return false;
}

bool ag_parse_number(const char *text, ag_rational *out) {
  if (!text) return false;
  const char *s = skip_spaces(text);
  /* "x = 3/4": one variable letter and '='. */
  if (isalpha((unsigned char)s[0])) {
    const char *t = skip_spaces(s + 1);
    if (*t == '=') s = skip_spaces(t + 1);
  }
  bool negative = false;
  read_sign(&s, &negative);
  if (*s == '$') {
    s = skip_spaces(s + 1);
    if (!negative) read_sign(&s, &negative);
  }
  uint64_t num, den;
  if (!read_unsigned_number(&s, &num, &den, &negative)) return false;
  /* Suffix: "%", a unit, a closing period. */
  const char *t = skip_spaces(s);
  if (*t == '%')
    t++;
  else if (*t == '.' && t == s)
    t++; /* "42." */
  else
    t = skip_unit_words(t);
  t = skip_spaces(t);
  if (*t == '.') t = skip_spaces(t + 1);
  if (*t) return false;
  return rational_from_parts(negative, num, den, out);
}

/* ---- finding a value in text ------------------------------------------------------ */

static const char *const small_words[20] = {
    "zero",     "one",     "two",     "three",     "four",     "five",    "six",
    "seven",    "eight",   "nine",    "ten",       "eleven",   "twelve",  "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const tens_words[10] = {"",      "",      "twenty",  "thirty", "forty",
                                           "fifty", "sixty", "seventy", "eighty", "ninety"};
/* Denominator words for 2..12: singular, plural, and a second pair. */
static const char *const denom_words[13][4] = {{NULL, NULL, NULL, NULL},
                                               {NULL, NULL, NULL, NULL},
                                               {"half", "halves", NULL, NULL},
                                               {"third", "thirds", NULL, NULL},
                                               {"quarter", "quarters", "fourth", "fourths"},
                                               {"fifth", "fifths", NULL, NULL},
                                               {"sixth", "sixths", NULL, NULL},
                                               {"seventh", "sevenths", NULL, NULL},
                                               {"eighth", "eighths", NULL, NULL},
                                               {"ninth", "ninths", NULL, NULL},
                                               {"tenth", "tenths", NULL, NULL},
                                               {"eleventh", "elevenths", NULL, NULL},
                                               {"twelfth", "twelfths", NULL, NULL}};

/* Words that extend a number word into a longer number ("twenty" in
 * "twenty one", "two" in "two hundred"). */
static bool is_number_word(const char *w, size_t n) {
  static const char *const extra[] = {"hundred",  "thousand", "million", "half",   "halves",
                                      "and",      "point",    "third",   "thirds", "quarter",
                                      "quarters", "fourths",  "fifths",  "sixths", "eighths"};
  for (int i = 0; i < 20; i++)
    if (strlen(small_words[i]) == n && !memcmp(small_words[i], w, n)) return true;
  for (int i = 2; i < 10; i++)
    if (strlen(tens_words[i]) == n && !memcmp(tens_words[i], w, n)) return true;
  for (size_t i = 0; i < sizeof extra / sizeof *extra; i++)
    if (strlen(extra[i]) == n && !memcmp(extra[i], w, n)) return true;
  return false;
}

/* Writes |n| < 1000 in words ("one hundred and five" as "one hundred five";
 * both are searched). */
static void int_words(uint64_t n, bool with_and, char *buf, size_t size) {
  char tail[64] = "";
  uint64_t rest = n % 100;
  if (rest < 20)
    snprintf(tail, sizeof tail, "%s", small_words[rest]);
  else if (rest % 10 == 0)
    snprintf(tail, sizeof tail, "%s", tens_words[rest / 10]);
  else
    snprintf(tail, sizeof tail, "%s %s", tens_words[rest / 10], small_words[rest % 10]);
  if (n >= 100) {
    if (rest == 0)
      snprintf(buf, size, "%s hundred", small_words[n / 100]);
    else
      snprintf(buf, size, "%s hundred%s %s", small_words[n / 100], with_and ? " and" : "", tail);
  } else {
    snprintf(buf, size, "%s", tail);
  }
}

/* Whether the phrase occurs in the normalised text (lowercase words
 * separated by single spaces, padded with a space at both ends) as whole
 * words not extended by further number words. */
static bool find_phrase(const char *norm, const char *phrase) {
  size_t n = strlen(phrase);
  for (const char *p = strstr(norm, phrase); p; p = strstr(p + 1, phrase)) {
    if (p == norm || p[-1] != ' ' || p[n] != ' ') continue;
    /* The word after. */
    const char *a = p + n + 1;
    size_t an = strcspn(a, " ");
    if (an && is_number_word(a, an)) {
      /* "two and a half" extends "two"; "two and three" does not. */
      if (!(an == 3 && !memcmp(a, "and", 3))) continue;
      const char *b = a + 4;
      if (!strncmp(b, "a ", 2) || !strncmp(b, "one ", 4)) continue;
    }
    /* The word before. */
    if (p - norm >= 2) {
      const char *e = p - 1; /* the space */
      const char *b = e;
      while (b > norm && b[-1] != ' ') b--;
      size_t bn = (size_t)(e - b);
      if (bn && is_number_word(b, bn) && !(bn == 3 && !memcmp(b, "and", 3))) continue;
    }
    return true;
  }
  return false;
}

static bool words_mention(const char *norm, ag_rational r) {
  char buf[128], buf2[128];
  uint64_t num = abs_u64(r.num), den = (uint64_t)r.den;
  if (den == 1) {
    if (num < 1000) {
      int_words(num, false, buf, sizeof buf);
      if (find_phrase(norm, buf)) return true;
      int_words(num, true, buf, sizeof buf);
      if (find_phrase(norm, buf)) return true;
      if (num >= 100 && num < 200) {
        int_words(num, false, buf2, sizeof buf2);
        snprintf(buf, sizeof buf, "a%s", buf2 + 3); /* "a hundred ..." */
        if (find_phrase(norm, buf)) return true;
      }
    } else if (num == 1000) {
      if (find_phrase(norm, "one thousand") || find_phrase(norm, "a thousand")) return true;
    }
    return false;
  }
  if (den > 12) return false;
  uint64_t whole = num / den, part = num % den;
  /* "three quarters", "a third", "one and a half"; improper "five halves". */
  for (int improper = 0; improper < 2; improper++) {
    uint64_t p = improper ? num : part;
    if (improper && whole == 0) break;
    if (p >= 20 || (!improper && whole >= 20)) continue;
    for (int pair = 0; pair < 2; pair++) {
      const char *dw = denom_words[den][2 * pair + (p == 1 ? 0 : 1)];
      if (!dw) continue;
      const char *heads[2] = {small_words[p], p == 1 ? "a" : NULL};
      for (int h = 0; h < 2; h++) {
        if (!heads[h]) continue;
        if (!improper && whole > 0)
          snprintf(buf, sizeof buf, "%s and %s %s", small_words[whole], heads[h], dw);
        else
          snprintf(buf, sizeof buf, "%s %s", heads[h], dw);
        if (find_phrase(norm, buf)) return true;
      }
    }
  }
  return false;
}

/* Lowercase words and digits separated by single spaces, padded. */
static char *normalise_words(const char *text) {
  size_t n = strlen(text);
  char *out = malloc(n + 3);
  if (!out) return NULL;
  size_t j = 0;
  out[j++] = ' ';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)text[i];
    if (isalnum(c)) {
      out[j++] = (char)tolower(c);
    } else if (out[j - 1] != ' ') {
      out[j++] = ' ';
    }
  }
  if (out[j - 1] != ' ') out[j++] = ' ';
  out[j] = '\0';
  return out;
}

static bool same_magnitude(bool ok, uint64_t num, uint64_t den, ag_rational r) {
  ag_rational v;
  if (!ok || !rational_from_parts(false, num, den, &v)) return false;
  return v.num == (int64_t)abs_u64(r.num) && v.den == r.den;
}

/* A decimal with k >= 2 digits that rounds or truncates |r| (1/3 as 0.333,
 * 2/3 as 0.67 or 0.66). */
static bool decimal_approximates(uint64_t num, uint64_t den, int digits, ag_rational r) {
  if (r.den == 1 || digits < 2 || digits > 12) return false;
  double value = (double)num / (double)den;
  double target = (double)abs_u64(r.num) / (double)r.den;
  double ulp = 1.0;
  for (int i = 0; i < digits; i++) ulp /= 10.0;
  return value != 0.0 && value - target < ulp && target - value < ulp;
}

/* Values of the digit runs of the text: each run of digits, ',' and '.'
 * (as one number with thousands separators or a decimal, and split at
 * commas), fractions "a/b" and mixed numbers "w a/b". */
static bool numbers_mention(const char *text, ag_rational r) {
  const char *s = text;
  while (*s) {
    if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1]))) {
      if (*s == '\\') {
        const char *t = s;
        bool neg;
        uint64_t a, b;
        if (read_latex_frac(&t, &neg, &a, &b)) {
          if (b && same_magnitude(true, a, b, r)) return true;
          s = t;
          continue;
        }
      }
      s++;
      continue;
    }
    /* The run. */
    const char *start = s;
    while (isdigit((unsigned char)*s) || *s == '.' || *s == ',') s++;
    const char *end = s;
    while (end > start && (end[-1] == '.' || end[-1] == ',')) end--;
    size_t len = (size_t)(end - start);
    char run[128];
    if (len >= sizeof run) len = sizeof run - 1;
    memcpy(run, start, len);
    run[len] = '\0';
    const char *q = run;
    uint64_t num, den;
    bool whole_ok = read_unsigned_number(&q, &num, &den, NULL) && *q == '\0';
    /* A fraction "a/b": only its value counts, not its parts. */
    if (whole_ok && den == 1 && !strchr(run, ',')) {
      const char *t = skip_spaces(end);
      if (*t == '/') {
        t = skip_spaces(t + 1);
        uint64_t d;
        if (read_digits(&t, &d, NULL) && d) {
          if (same_magnitude(true, num, d, r)) return true;
          s = t;
          continue;
        }
      }
    }
    /* As a whole. */
    int frac_digits = 0;
    const char *dot = strchr(run, '.');
    if (dot) frac_digits = (int)strlen(dot + 1);
    if (whole_ok && (same_magnitude(true, num, den, r) ||
                     (dot && decimal_approximates(num, den, frac_digits, r))))
      return true;
    /* A mixed number "w a/b" (its parts are checked as runs of their own). */
    if (whole_ok && den == 1) {
      const char *t = skip_spaces(end);
      if (t != end && isdigit((unsigned char)*t)) {
        const char *u = t;
        uint64_t a, b;
        if (read_digits(&u, &a, NULL)) {
          u = skip_spaces(u);
          if (*u == '/') {
            u = skip_spaces(u + 1);
            if (read_digits(&u, &b, NULL) && b) {
              uint64_t n;
              if (!__builtin_mul_overflow(num, b, &n) && !__builtin_add_overflow(n, a, &n) &&
                  same_magnitude(true, n, b, r))
                return true;
            }
          }
        }
      }
    }
    /* Split at commas: "1,2" in a list. */
    if (strchr(run, ',')) {
      char *save = NULL;
      for (char *part = strtok_r(run, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        const char *pq = part;
        uint64_t pn, pd;
        if (read_unsigned_number(&pq, &pn, &pd, NULL) && *pq == '\0') {
          const char *pdot = strchr(part, '.');
          if (same_magnitude(true, pn, pd, r) ||
              (pdot && decimal_approximates(pn, pd, (int)strlen(pdot + 1), r)))
            return true;
        }
      }
    }
  }
  return false;
}

/* Unicode vulgar fractions. */
static bool glyph_mentions(const char *text, ag_rational r) {
  static const struct {
    const char *glyph;
    int num, den;
  } glyphs[] = {{"\xc2\xbd", 1, 2},     {"\xc2\xbc", 1, 4},     {"\xc2\xbe", 3, 4},
                {"\xe2\x85\x93", 1, 3}, {"\xe2\x85\x94", 2, 3}, {"\xe2\x85\x9b", 1, 8}};
  for (size_t i = 0; i < sizeof glyphs / sizeof *glyphs; i++) {
    if (!strstr(text, glyphs[i].glyph)) continue;
    if ((uint64_t)glyphs[i].den == (uint64_t)r.den && abs_u64(r.num) == (uint64_t)glyphs[i].num)
      return true;
  }
  return false;
}

bool ag_text_mentions_value(const char *text, ag_rational r) {
  if (!text || r.den <= 0) return false;
  if (numbers_mention(text, r)) return true;
  if (glyph_mentions(text, r)) return true;
  char *norm = normalise_words(text);
  if (!norm) return true; /* out of memory: err on the side of a leak */
  bool found = words_mention(norm, r);
  free(norm);
  return found;
}

/* ---- strings ---------------------------------------------------------------------- */

static bool strbuf_reserve(ag_strbuf *b, size_t extra) {
  if (b->failed) return false;
  size_t need = b->size + extra + 1;
  if (need <= b->capacity) return true;
  size_t cap = b->capacity ? b->capacity : 64;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->failed = true;
    return false;
  }
  b->data = p;
  b->capacity = cap;
  return true;
}

void ag_strbuf_append(ag_strbuf *b, const char *text, size_t bytes) {
  if (!strbuf_reserve(b, bytes)) return;
  memcpy(b->data + b->size, text, bytes);
  b->size += bytes;
  b->data[b->size] = '\0';
}

void ag_strbuf_vprintf(ag_strbuf *b, const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0) {
    b->failed = true;
    return;
  }
  if (!strbuf_reserve(b, (size_t)n)) return;
  vsnprintf(b->data + b->size, (size_t)n + 1, fmt, ap);
  b->size += (size_t)n;
}

void ag_strbuf_printf(ag_strbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ag_strbuf_vprintf(b, fmt, ap);
  va_end(ap);
}

char *ag_strbuf_take(ag_strbuf *b) {
  if (b->failed) {
    ag_strbuf_free(b);
    ag_error_set(AG_ERR_NOMEM, "out of memory building a string");
    return NULL;
  }
  char *s = b->data;
  if (!s) {
    s = malloc(1);
    if (!s) {
      ag_error_set(AG_ERR_NOMEM, "out of memory building a string");
      return NULL;
    }
    s[0] = '\0';
  }
  memset(b, 0, sizeof *b);
  return s;
}

void ag_strbuf_free(ag_strbuf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* ---- phrasings, streams, task plumbing -------------------------------------------- */

const char *ag_pick_phrasing(const char *const *phrasings, int n, ag_phrasing_set set,
                             ag_rng *rng) {
  if (n < 2) return n == 1 ? phrasings[0] : "";
  int half = n / 2;
  int lo = set == AG_PHRASING_HELDOUT ? half : 0;
  int count = set == AG_PHRASING_HELDOUT ? n - half : half;
  return phrasings[lo + (int)ag_rng_below(rng, (uint64_t)count)];
}

void ag_task_rng(ag_rng *rng, const char *family, int level, uint64_t seed, int64_t index) {
  /* FNV-1a over the family name and level: each (family, level) its own
   * streams, so adding a family never shifts another's tasks. */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char *p = family; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
  h = (h ^ (uint64_t)(uint32_t)level) * 0x100000001b3ULL;
  ag_rng_seed2(rng, seed ^ h, (uint64_t)index);
}

static char *dup_or_null(const char *s, bool *failed) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *failed = true;
  return d;
}

ag_status ag_task_fill(ag_task *out, const char *family, int level, uint64_t seed, int64_t index,
                       const char *problem, const char *answer, const char *solution,
                       json_t *data) {
  memset(out, 0, sizeof *out);
  if (!family || strlen(family) >= sizeof out->family || !problem || !answer) {
    json_decref(data);
    return ag_error_set(AG_ERR_INVALID, "task fill: missing family, problem or answer");
  }
  snprintf(out->family, sizeof out->family, "%s", family);
  out->level = level;
  snprintf(out->id, sizeof out->id, "%s/%d/%llu/%lld", family, level, (unsigned long long)seed,
           (long long)index);
  bool failed = false;
  out->problem = dup_or_null(problem, &failed);
  out->answer = dup_or_null(answer, &failed);
  out->solution = dup_or_null(solution ? solution : answer, &failed);
  out->data = data ? data : json_object();
  if (failed || !out->data) {
    ag_task_clear(out);
    return ag_error_set(AG_ERR_NOMEM, "task fill: out of memory");
  }
  return AG_OK;
}

ag_status ag_verdict_init(ag_verdict *v, bool correct, bool parsed, const char *kind) {
  v->correct = correct;
  v->parsed = parsed;
  v->diagnostics = json_object();
  if (!v->diagnostics || json_object_set_new(v->diagnostics, "kind", json_string(kind)) != 0) {
    ag_verdict_clear(v);
    return ag_error_set(AG_ERR_NOMEM, "verdict: out of memory");
  }
  return AG_OK;
}

ag_status ag_task_add_shard(ag_task *t, const char *text, bool required) {
  char *copy = strdup(text ? text : "");
  ag_task_shard *grown =
      copy ? realloc(t->shards, (size_t)(t->shard_count + 1) * sizeof *grown) : NULL;
  if (!grown) {
    free(copy);
    return ag_error_set(AG_ERR_NOMEM, "task %s: out of memory adding a shard", t->id);
  }
  t->shards = grown;
  t->shards[t->shard_count].text = copy;
  t->shards[t->shard_count].required = required;
  t->shard_count++;
  return AG_OK;
}

char *ag_first_line(const char *attempt) {
  const char *s = attempt ? attempt : "";
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    if (*s != '\n') break;
    s++;
  }
  size_t n = strcspn(s, "\n");
  while (n > 0 && is_space(s[n - 1])) n--;
  char *line = malloc(n + 1);
  if (!line) return NULL;
  memcpy(line, s, n);
  line[n] = '\0';
  return line;
}

void ag_fill_template(ag_strbuf *b, const char *tmpl, const char *const *args, int nargs) {
  const char *p = tmpl;
  while (*p) {
    if (p[0] == '{' && p[1] >= '0' && p[1] <= '9' && p[2] == '}' && p[1] - '0' < nargs) {
      ag_strbuf_printf(b, "%s", args[p[1] - '0']);
      p += 3;
      continue;
    }
    const char *q = p + 1;
    while (*q && *q != '{') q++;
    ag_strbuf_append(b, p, (size_t)(q - p));
    p = q;
  }
}

void ag_pick_fill(ag_strbuf *b, const char *const *set, int n, ag_phrasing_set which, ag_rng *rng,
                  const char *const *args, int nargs) {
  if (b->size > 0) ag_strbuf_append(b, " ", 1);
  ag_fill_template(b, ag_pick_phrasing(set, n, which, rng), args, nargs);
}
