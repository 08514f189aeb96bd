/* Real data sets as task families: GSM8K ("#### answer") and MATH
 * ("\boxed{}" answers compared after normalisation), the loaders of all
 * three data sets (plain or gzip'd JSONL), and `agora tasks check`.
 * HumanEval's family is in humaneval.c, the python sandbox in sandbox.c. */
#include "worlds/tasks/dataset_internal.h"
#include "worlds/tasks/task_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- small string helpers ---------------------------------------------------------- */

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static char *dup_range(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* A trimmed copy of s[0..n). */
static char *dup_trimmed(const char *s, size_t n) {
  while (n > 0 && is_ws(*s)) s++, n--;
  while (n > 0 && is_ws(s[n - 1])) n--;
  return dup_range(s, n);
}

static bool starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A copy of s with every `from` replaced by `to`; frees s. NULL on OOM. */
static char *replace_all(char *s, const char *from, const char *to) {
  if (!s) return NULL;
  size_t fn = strlen(from), tn = strlen(to), count = 0;
  for (const char *p = strstr(s, from); p; p = strstr(p + fn, from)) count++;
  if (!count) return s;
  size_t n = strlen(s);
  char *out = malloc(n + count * tn - count * fn + 1);
  if (!out) {
    free(s);
    return NULL;
  }
  char *w = out;
  const char *r = s;
  for (const char *p = strstr(r, from); p; p = strstr(r, from)) {
    memcpy(w, r, (size_t)(p - r));
    w += p - r;
    memcpy(w, to, tn);
    w += tn;
    r = p + fn;
  }
  strcpy(w, r);
  free(s);
  return out;
}

/* Removes a LaTeX command (`name` with its backslash) where it is not the
 * start of a longer command ("\left" but not "\leftarrow"). Frees s. */
static char *remove_command(char *s, const char *name) {
  if (!s) return NULL;
  size_t n = strlen(name);
  char *w = s;
  for (const char *r = s; *r;) {
    if (starts_with(r, name) && !isalpha((unsigned char)r[n])) {
      r += n;
      continue;
    }
    *w++ = *r++;
  }
  *w = '\0';
  return s;
}

void ag_strings_free(char **strings, int count) {
  if (!strings) return;
  for (int i = 0; i < count; i++) free(strings[i]);
  free(strings);
}

/* ---- sentences --------------------------------------------------------------------- */

static bool is_abbreviation(const char *text, size_t dot) {
  /* The word before the '.' at text[dot]. */
  static const char *const words[] = {"Mr", "Mrs", "Ms",  "Dr", "St",   "Jr",     "Sr",
                                      "vs", "e.g", "i.e", "Mt", "Prof", "approx", "No"};
  size_t b = dot;
  while (b > 0 && (isalpha((unsigned char)text[b - 1]) || text[b - 1] == '.')) b--;
  size_t n = dot - b;
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (strlen(words[i]) == n && !memcmp(words[i], text + b, n)) return true;
  return false;
}

static ag_status push_sentence(char ***list, int *count, int *cap, const char *s, size_t n) {
  /* Collapse white space. */
  char *d = malloc(n + 1);
  if (!d) return ag_error_set(AG_ERR_NOMEM, "splitting sentences: out of memory");
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (is_ws(s[i])) {
      if (w > 0 && d[w - 1] != ' ') d[w++] = ' ';
    } else {
      d[w++] = s[i];
    }
  }
  while (w > 0 && d[w - 1] == ' ') w--;
  d[w] = '\0';
  if (!w) {
    free(d);
    return AG_OK;
  }
  if (*count == *cap) {
    int grown_cap = *cap ? *cap * 2 : 8;
    char **grown = realloc(*list, (size_t)grown_cap * sizeof *grown);
    if (!grown) {
      free(d);
      return ag_error_set(AG_ERR_NOMEM, "splitting sentences: out of memory");
    }
    *list = grown;
    *cap = grown_cap;
  }
  (*list)[(*count)++] = d;
  return AG_OK;
}

ag_status ag_split_sentences(const char *text, bool latex, char ***out, int *count) {
  *out = NULL;
  *count = 0;
  if (!text) return AG_OK;
  char **list = NULL;
  int n = 0, cap = 0;
  size_t start = 0, len = strlen(text);
  bool in_math = false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (latex && c == '$' && (i == 0 || text[i - 1] != '\\')) {
      in_math = !in_math;
      continue;
    }
    if (in_math) continue;
    size_t end = 0; /* one past the sentence's last byte */
    if (c == '\n') {
      /* A blank line ends a paragraph, hence a sentence. */
      size_t j = i + 1;
      while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) j++;
      if (j < len && text[j] == '\n') end = i;
    } else if (c == '.' || c == '?' || c == '!') {
      size_t j = i + 1;
      while (j < len && (text[j] == '.' || text[j] == '?' || text[j] == '!')) j++;
      while (j < len && (text[j] == '"' || text[j] == '\'' || text[j] == ')')) j++;
      bool boundary = j >= len || is_ws(text[j]);
      if (c == '.' && i > 0 && isdigit((unsigned char)text[i - 1]) && i + 1 < len &&
          isdigit((unsigned char)text[i + 1]))
        boundary = false;
      if (c == '.' && boundary && j < len && is_abbreviation(text, i)) boundary = false;
      if (boundary) {
        end = j;
        i = j - 1;
      }
    }
    if (end) {
      ag_status st = push_sentence(&list, &n, &cap, text + start, end - start);
      if (st) {
        ag_strings_free(list, n);
        return st;
      }
      start = end;
    }
  }
  ag_status st = push_sentence(&list, &n, &cap, text + start, len - start);
  if (st) {
    ag_strings_free(list, n);
    return st;
  }
  *out = list;
  *count = n;
  return AG_OK;
}

bool ag_sentence_is_question(const char *sentence) {
  size_t n = strlen(sentence);
  while (n > 0 && (is_ws(sentence[n - 1]) || sentence[n - 1] == '"' || sentence[n - 1] == ')' ||
                   sentence[n - 1] == '\''))
    n--;
  return n > 0 && sentence[n - 1] == '?';
}

char *ag_text_without_problem(const char *text, const char *problem) {
  char *s = strdup(text ? text : "");
  char **sentences = NULL;
  int n = 0;
  if (!s || !problem || ag_split_sentences(problem, false, &sentences, &n)) return s;
  for (int i = 0; i < n && s; i++) {
    /* Short fragments ("Yes.") say nothing about the answer either way. */
    if (strlen(sentences[i]) < 12) continue;
    s = replace_all(s, sentences[i], " ");
  }
  ag_strings_free(sentences, n);
  return s;
}

/* ---- answers: GSM8K ---------------------------------------------------------------- */

/* Removes thousands separators between digits ("1,234" -> "1234"). */
static void drop_digit_commas(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r == ',' && r > s && isdigit((unsigned char)r[-1]) && isdigit((unsigned char)r[1]))
      continue;
    *w++ = *r;
  }
  *w = '\0';
}

ag_status ag_gsm8k_reference(const char *answer_field, char **out) {
  *out = NULL;
  if (!answer_field) return ag_error_set(AG_ERR_FORMAT, "GSM8K answer: missing");
  const char *mark = NULL;
  for (const char *p = strstr(answer_field, "####"); p; p = strstr(p + 4, "####")) mark = p;
  if (!mark) return ag_error_set(AG_ERR_FORMAT, "GSM8K answer has no \"####\" line");
  const char *s = mark + 4;
  size_t n = strcspn(s, "\n");
  char *ref = dup_trimmed(s, n);
  if (!ref) return ag_error_set(AG_ERR_NOMEM, "GSM8K answer: out of memory");
  drop_digit_commas(ref);
  if (!*ref) {
    free(ref);
    return ag_error_set(AG_ERR_FORMAT, "GSM8K answer has nothing after \"####\"");
  }
  *out = ref;
  return AG_OK;
}

/* ---- answers: \boxed{} and final answers ------------------------------------------- */

/* The balanced {...} group at s ('{' first); its content bounds. */
static bool brace_group(const char *s, const char **content, size_t *n) {
  if (*s != '{') return false;
  int depth = 0;
  for (const char *p = s; *p; p++) {
    if (*p == '\\' && (p[1] == '{' || p[1] == '}')) {
      p++; /* "\{" is a literal brace */
      continue;
    }
    if (*p == '{') depth++;
    if (*p == '}' && --depth == 0) {
      *content = s + 1;
      *n = (size_t)(p - s - 1);
      return true;
    }
  }
  return false;
}

char *ag_math_last_boxed(const char *text) {
  if (!text) return NULL;
  const char *last = NULL;
  size_t skip = 0;
  for (const char *p = strchr(text, '\\'); p; p = strchr(p + 1, '\\')) {
    if (starts_with(p, "\\boxed")) {
      last = p;
      skip = 6;
    } else if (starts_with(p, "\\fbox")) {
      last = p;
      skip = 5;
    }
  }
  if (!last) return NULL;
  const char *s = last + skip;
  const char *content;
  size_t n;
  if (brace_group(s, &content, &n)) return dup_trimmed(content, n);
  /* "\boxed 5": up to the end of the math or the line. */
  if (*s == ' ') {
    s++;
    return dup_trimmed(s, strcspn(s, "$\n"));
  }
  return NULL;
}

/* The last number written in text ("1,234", "-2.5", "3/4"), commas dropped. */
static char *last_number(const char *text) {
  const char *best = NULL;
  size_t best_n = 0;
  for (const char *p = text; *p;) {
    bool starts = isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]));
    if (!starts || (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '.'))) {
      p++;
      continue;
    }
    const char *s = p;
    if (s > text && s[-1] == '-' && (s - 1 == text || !isalnum((unsigned char)s[-2]))) s--;
    const char *e = p;
    while (isdigit((unsigned char)*e) ||
           ((*e == ',' || *e == '.' || *e == '/') && isdigit((unsigned char)e[1])))
      e++;
    best = s;
    best_n = (size_t)(e - s);
    p = e;
  }
  if (!best) return NULL;
  char *d = dup_range(best, best_n);
  if (d) drop_digit_commas(d);
  return d;
}

char *ag_math_extract_final(const char *text) {
  if (!text) return NULL;
  const char *mark = NULL;
  size_t mark_n = 0;
  static const char *const marks[] = {"Answer:", "####"};
  for (int m = 0; m < 2; m++)
    for (const char *p = strstr(text, marks[m]); p; p = strstr(p + 1, marks[m]))
      if (!mark || p > mark) {
        mark = p;
        mark_n = strlen(marks[m]);
      }
  if (mark) {
    const char *s = mark + mark_n;
    while (is_ws(*s)) s++;
    char *line = dup_trimmed(s, strcspn(s, "\n"));
    if (line && strstr(line, "\\boxed")) {
      char *boxed = ag_math_last_boxed(line);
      if (boxed) {
        free(line);
        line = boxed;
      }
    }
    if (line) {
      size_t n = strlen(line);
      if (n > 0 && line[n - 1] == '.') line[--n] = '\0';
      if (n > 0) return line;
      free(line);
    }
  }
  char *boxed = ag_math_last_boxed(text);
  if (boxed) return boxed;
  return last_number(text);
}

/* ---- MATH normalisation ------------------------------------------------------------- */

/* The length of a text command at p ("\text", "\mbox", ...; not the start
 * of a longer command name), 0 when there is none. */
static size_t text_command_length(const char *p) {
  static const char *const commands[] = {"\\text", "\\textbf", "\\textrm", "\\textit",
                                         "\\mbox", "\\mathrm", "\\mathbf", "\\operatorname"};
  for (size_t c = 0; c < sizeof commands / sizeof *commands; c++) {
    size_t n = strlen(commands[c]);
    if (starts_with(p, commands[c]) && !isalpha((unsigned char)p[n])) return n;
  }
  return 0;
}

/* "\text{...}" and its kin unwrapped to " ... " (the spaces keep a unit
 * apart from the number before it), nested ones too. Frees s. */
static char *unwrap_text_commands(char *s) {
  for (int pass = 0; s && pass < 4; pass++) {
    ag_strbuf b = {0};
    bool changed = false;
    for (const char *p = s; *p;) {
      size_t cn = text_command_length(p);
      const char *content;
      size_t n;
      if (cn && brace_group(p + cn, &content, &n)) {
        ag_strbuf_append(&b, " ", 1);
        ag_strbuf_append(&b, content, n);
        ag_strbuf_append(&b, " ", 1);
        p = content + n + 1;
        changed = true;
        continue;
      }
      ag_strbuf_append(&b, p, 1);
      p++;
    }
    free(s);
    s = ag_strbuf_take(&b);
    if (!changed) break;
  }
  return s;
}

/* s[0..n) into b with "\frac12" -> "\frac{1}{2}", "\frac1{2}" ->
 * "\frac{1}{2}", "\sqrt2" -> "\sqrt{2}", inside arguments too. */
static void brace_range(ag_strbuf *b, const char *s, size_t n) {
  const char *end = s + n;
  for (const char *p = s; p < end;) {
    bool frac = (size_t)(end - p) >= 5 && starts_with(p, "\\frac") && !isalpha((unsigned char)p[5]);
    bool sqrt = (size_t)(end - p) >= 5 && starts_with(p, "\\sqrt") && !isalpha((unsigned char)p[5]);
    if (!frac && !sqrt) {
      ag_strbuf_append(b, p, 1);
      p++;
      continue;
    }
    ag_strbuf_append(b, p, 5);
    p += 5;
    for (int arg = 0; arg < (frac ? 2 : 1); arg++) {
      while (p < end && *p == ' ') p++;
      const char *content;
      size_t cn;
      if (p < end && *p == '{' && brace_group(p, &content, &cn) && content + cn < end) {
        ag_strbuf_append(b, "{", 1);
        brace_range(b, content, cn);
        ag_strbuf_append(b, "}", 1);
        p = content + cn + 1;
      } else if (p < end && *p != '\\' && *p != '{' && *p != '[') {
        ag_strbuf_printf(b, "{%c}", *p);
        p++;
      } else {
        break; /* "\sqrt[3]{x}", "\frac\pi2": left as written */
      }
    }
  }
}

/* Frees s. */
static char *brace_short_arguments(char *s) {
  if (!s) return NULL;
  ag_strbuf b = {0};
  brace_range(&b, s, strlen(s));
  free(s);
  return ag_strbuf_take(&b);
}

/* A unit word ("cm", "inches") or an exponent ("^2", "^{3}") after one. */
static bool is_unit_token(const char *t, size_t n, bool *alpha) {
  size_t i = 0;
  while (i < n && isalpha((unsigned char)t[i])) i++;
  if (i > 0) *alpha = true;
  if (i == n) return i > 0;
  if (t[i] != '^') return false;
  i++;
  if (i < n && t[i] == '{') i++;
  size_t d = i;
  while (i < n && isdigit((unsigned char)t[i])) i++;
  if (i == d) return false;
  if (i < n && t[i] == '}') i++;
  return i == n;
}

/* Drops trailing unit words after a number-like answer ("5 cm" -> "5",
 * "12 square feet" -> "12"). Leaves answers that are words ("Monday"). */
static void drop_unit_words(char *s) {
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == ' ') n--;
  size_t cut = n;
  bool any_alpha = false;
  for (;;) {
    size_t e = cut;
    while (e > 0 && s[e - 1] == ' ') e--;
    size_t b = e;
    while (b > 0 && s[b - 1] != ' ') b--;
    if (b == e || b == 0) break; /* no token, or the first token */
    bool alpha = false;
    if (!is_unit_token(s + b, e - b, &alpha)) break;
    any_alpha |= alpha;
    cut = b;
  }
  if (cut == n || !any_alpha) return;
  size_t e = cut;
  while (e > 0 && s[e - 1] == ' ') e--;
  char last = e > 0 ? s[e - 1] : '\0';
  if (isdigit((unsigned char)last) || last == '}' || last == ')') s[e] = '\0';
}

/* "x = 3" -> "3": one '=' after a short name. */
static void drop_variable_prefix(char *s) {
  char *eq = strchr(s, '=');
  if (!eq || strchr(eq + 1, '=')) return;
  const char *a = s;
  while (*a == ' ') a++;
  const char *b = eq;
  while (b > a && b[-1] == ' ') b--;
  size_t n = (size_t)(b - a);
  bool name = n > 0 && n <= 8;
  for (size_t i = 0; name && i < n; i++)
    name =
        isalnum((unsigned char)a[i]) || a[i] == '\\' || a[i] == '_' || a[i] == '{' || a[i] == '}';
  if (!name || (n > 2 && !(a[0] == '\\' || isalpha((unsigned char)a[0])))) return;
  memmove(s, eq + 1, strlen(eq + 1) + 1);
}

/* A signed decimal or integer ("-2.50", ".5") as an exact rational; the
 * whole of s[0..n) must be the number. */
static bool parse_decimal(const char *s, size_t n, ag_rational *out) {
  size_t i = 0;
  bool negative = false;
  if (i < n && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
  int64_t num = 0, den = 1;
  int digits = 0;
  bool dot = false;
  for (; i < n; i++) {
    if (s[i] == '.' && !dot) {
      dot = true;
      continue;
    }
    if (!isdigit((unsigned char)s[i])) return false;
    if (__builtin_mul_overflow(num, (int64_t)10, &num) ||
        __builtin_add_overflow(num, (int64_t)(s[i] - '0'), &num))
      return false;
    if (dot && __builtin_mul_overflow(den, (int64_t)10, &den)) return false;
    digits++;
  }
  if (!digits) return false;
  *out = ag_rational_make(negative ? -num : num, den);
  return true;
}

/* The number a normalised (space-free) answer states, if it is one: a
 * decimal, "a/b", "\frac{a}{b}" (signs anywhere sensible). */
static bool parse_normalized_number(const char *s, ag_rational *out) {
  bool negative = false;
  while (*s == '-' || *s == '+') negative ^= *s++ == '-';
  ag_rational v;
  size_t n = strlen(s);
  if (starts_with(s, "\\frac")) {
    const char *a, *b;
    size_t an, bn;
    if (!brace_group(s + 5, &a, &an)) return false;
    const char *rest = a + an + 1;
    if (!brace_group(rest, &b, &bn) || b[bn + 1] != '\0') return false;
    ag_rational num, den;
    if (!parse_decimal(a, an, &num) || !parse_decimal(b, bn, &den) ||
        !ag_rational_div(num, den, &v))
      return false;
  } else {
    const char *slash = strchr(s, '/');
    if (slash) {
      ag_rational num, den;
      if (!parse_decimal(s, (size_t)(slash - s), &num) ||
          !parse_decimal(slash + 1, strlen(slash + 1), &den) || !ag_rational_div(num, den, &v))
        return false;
    } else if (!parse_decimal(s, n, &v)) {
      return false;
    }
  }
  if (negative) {
    if (v.num == INT64_MIN) return false;
    v.num = -v.num;
  }
  *out = v;
  return true;
}

static char *format_normalized_number(ag_rational r) {
  char buf[96];
  if (r.den == 1)
    snprintf(buf, sizeof buf, "%lld", (long long)r.num);
  else
    snprintf(buf, sizeof buf, "%s\\frac{%lld}{%lld}", r.num < 0 ? "-" : "",
             (long long)(r.num < 0 ? -r.num : r.num), (long long)r.den);
  return strdup(buf);
}

/* "1,234,567" (the whole answer) -> "1234567". */
static void drop_thousands_separators(char *s) {
  const char *p = s;
  if (*p == '-') p++;
  size_t lead = 0;
  while (isdigit((unsigned char)p[lead])) lead++;
  if (lead < 1 || lead > 3 || p[lead] != ',') return;
  const char *q = p + lead;
  while (*q == ',') {
    for (int k = 1; k <= 3; k++)
      if (!isdigit((unsigned char)q[k])) return;
    q += 4;
  }
  if (*q == '.') {
    q++;
    while (isdigit((unsigned char)*q)) q++;
  }
  if (*q) return;
  drop_digit_commas(s);
}

char *ag_math_normalize(const char *answer) {
  if (!answer) return NULL;
  char *s = strdup(answer);
  static const char *const to_space[][2] = {
      {"\n", " "},           {"\t", " "},       {"\r", " "},
      {"\\!", ""},           {"\\,", " "},      {"\\;", " "},
      {"\\:", " "},          {"\\ ", " "},      {"~", " "},
      {"\\qquad", " "},      {"\\quad", " "},   {"\\dfrac", "\\frac"},
      {"\\tfrac", "\\frac"}, {"^{\\circ}", ""}, {"^\\circ", ""},
      {"\\circ", ""},        {"\xc2\xb0", ""},  {"\\degree", ""},
      {"{,}", ","}};
  for (size_t i = 0; i < sizeof to_space / sizeof *to_space; i++)
    s = replace_all(s, to_space[i][0], to_space[i][1]);
  s = remove_command(s, "\\left");
  s = remove_command(s, "\\right");
  s = remove_command(s, "\\displaystyle");
  s = unwrap_text_commands(s);
  s = replace_all(s, "\\$", "");
  s = replace_all(s, "$", "");
  s = replace_all(s, "\\%", "");
  s = replace_all(s, "%", "");
  if (!s) return NULL;
  /* A closing period is punctuation, not part of the answer. */
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '.')) s[--n] = '\0';
  drop_variable_prefix(s);
  drop_unit_words(s);
  s = brace_short_arguments(s);
  if (!s) return NULL;
  char *w = s;
  for (char *r = s; *r; r++)
    if (*r != ' ') *w++ = *r;
  *w = '\0';
  drop_thousands_separators(s);
  ag_rational v;
  if (parse_normalized_number(s, &v)) {
    free(s);
    return format_normalized_number(v);
  }
  return s;
}

bool ag_math_equivalent(const char *a, const char *b) {
  char *na = ag_math_normalize(a), *nb = ag_math_normalize(b);
  bool equal = false;
  if (na && nb) {
    ag_rational ra, rb;
    if (parse_normalized_number(na, &ra) && parse_normalized_number(nb, &rb))
      equal = ag_rational_equal(ra, rb);
    else
      equal = strcmp(na, nb) == 0 && *na;
  }
  free(na);
  free(nb);
  return equal;
}

/* ---- shared by the two number families ----------------------------------------------- */

static const char gsm8k_instruction[] =
    "Finish with a last line \"Answer: <number>\" giving just the final number.";
static const char math_instruction[] =
    "Finish with a last line \"Answer: <answer>\" giving just the final answer (LaTeX allowed, "
    "fractions and radicals in exact form).";

/* Directional phrasings: [0, n/2) training, [n/2, n) held out. */
/* Phrasings: [0, n/2) training, [n/2, n) held out; none contains a digit
 * or a number word, so feedback cannot state an answer by accident. */
static const char *const too_high[] = {
    "Your answer is too high.",
    "That number is larger than it should be.",
    "You overshot: the right value is smaller.",
    "Your result comes out too large.",
    "That is too big.",
    "Your result is above the correct value.",
    "You went over; the true value is lower.",
    "Aim lower: your number exceeds the right answer.",
};
static const char *const too_low[] = {
    "Your answer is too low.",
    "That number is smaller than it should be.",
    "You undershot: the right value is larger.",
    "Your result comes out too small.",
    "That is too small.",
    "Your result is below the correct value.",
    "You fell short; the true value is higher.",
    "Aim higher: your number is under the right answer.",
};
static const char *const wrong_sign[] = {
    "Check the sign of your answer.",
    "The size looks right, but the sign is wrong.",
    "Look again at the sign: should the result be positive or negative?",
    "Your magnitude is right; flip your attention to the sign.",
    "Your answer has the wrong sign.",
    "Positive or negative? You picked the wrong sign.",
    "The number is right apart from its sign.",
    "Reconsider the sign of your result.",
};
static const char *const unparsed_number[] = {
    "I could not read a number in your answer: write just the number after \"Answer:\".",
    "Your answer line has no number I can check; give only the final number.",
    "Please put a single number on the answer line.",
    "The answer line needs a plain number and nothing else.",
    "The answer line should contain just the final number, nothing else.",
    "I need a number after \"Answer:\" to check your work.",
    "State your final result as a number on the answer line.",
    "Give the answer as a bare number, please.",
};
static const char *const intermediate[] = {
    "That is a quantity from partway through the problem; the question asks for more.",
    "You stopped early: that value is an intermediate result.",
    "You have computed an intermediate quantity, not the quantity the question asks for.",
    "That value is a stepping stone; keep going.",
    "That number comes up along the way, but it is not what the question wants.",
    "You are not done yet: that is only a partial result.",
    "Good progress, but that is a step on the way, not the final quantity.",
    "Read the question again: it asks for something beyond that value.",
};
static const char *const recheck_steps[] = {
    "Go through your steps again and check each calculation.",
    "Recheck the arithmetic in each step.",
    "Look over every step of your working for a slip.",
    "A step of your working has a mistake; check them in order.",
    "Redo the calculation carefully, step by step.",
    "Somewhere in your working there is a slip; find it.",
    "Check how you combined the quantities in each step.",
    "Verify every intermediate result before the final answer.",
};
static const char *const not_equivalent[] = {
    "Your answer is not equivalent to the correct answer.",
    "That expression does not match the correct result.",
    "That is not the right result.",
    "Your final expression is not the expected result.",
    "That does not simplify to the correct answer.",
    "Your result differs from the right answer.",
    "Not quite: your expression is not equal to the answer.",
    "That is not equivalent to what the problem requires.",
};
static const char *const recheck_algebra[] = {
    "Recheck your algebra and your final simplification.",
    "Go back over each step of the derivation.",
    "Check each step, especially the last simplification.",
    "Look for an error in your manipulations.",
    "Review your reasoning from the start.",
    "Trace your work again and test each transformation.",
    "Something in your derivation is off; check each line.",
    "Redo the final steps with care.",
};
static const char *const exact_form[] = {
    "Keep the answer in exact form (fractions, radicals, pi) rather than a rounded decimal.",
    "An exact expression is expected, not an approximation.",
    "Give the exact value rather than a decimal approximation.",
    "Do not round: write the exact expression.",
    "Write the result exactly; a rounded decimal will not match.",
    "The answer needs to be exact, not a decimal estimate.",
    "Express your answer exactly instead of approximating it.",
    "A decimal approximation is not accepted here; keep it exact.",
};

#define PICK(list, set, rng) ag_pick_phrasing(list, (int)(sizeof list / sizeof *list), set, rng)

static const char *diagnostic_string(const ag_verdict *v, const char *key) {
  json_t *x = v && v->diagnostics ? json_object_get(v->diagnostics, key) : NULL;
  return json_is_string(x) ? json_string_value(x) : NULL;
}

/* Diagnostics for a numeric attempt against a numeric reference. */
static ag_status number_verdict(ag_rational attempt, ag_rational ref, ag_verdict *out) {
  bool correct = ag_rational_equal(attempt, ref);
  ag_status st = ag_verdict_init(out, correct, true, correct ? "correct" : "wrong_value");
  if (st || correct) return st;
  ag_rational diff;
  const char *direction = "too_low";
  if (ag_rational_sub(attempt, ref, &diff)
          ? diff.num > 0
          : (double)attempt.num / (double)attempt.den > (double)ref.num / (double)ref.den)
    direction = "too_high";
  json_object_set_new(out->diagnostics, "direction", json_string(direction));
  bool flipped = ref.num != 0 && attempt.num == -ref.num && attempt.den == ref.den;
  json_object_set_new(out->diagnostics, "sign_error", json_boolean(flipped));
  return AG_OK;
}

static ag_status number_feedback(const ag_verdict *v, ag_phrasing_set set, ag_rng *rng,
                                 ag_strbuf *b) {
  const char *kind = diagnostic_string(v, "kind");
  if (kind && !strcmp(kind, "unparsed")) {
    ag_strbuf_printf(b, "%s", PICK(unparsed_number, set, rng));
    return AG_OK;
  }
  json_t *flipped = json_object_get(v->diagnostics, "sign_error");
  const char *direction = diagnostic_string(v, "direction");
  if (json_is_true(flipped))
    ag_strbuf_printf(b, "%s", PICK(wrong_sign, set, rng));
  else if (direction && !strcmp(direction, "too_high"))
    ag_strbuf_printf(b, "%s", PICK(too_high, set, rng));
  else if (direction && !strcmp(direction, "too_low"))
    ag_strbuf_printf(b, "%s", PICK(too_low, set, rng));
  else
    ag_strbuf_printf(b, "%s", PICK(not_equivalent, set, rng));
  return AG_OK;
}

static ag_status take_feedback(ag_strbuf *b, char **out) {
  *out = ag_strbuf_take(b);
  return *out ? AG_OK : ag_error_set(AG_ERR_NOMEM, "feedback: out of memory");
}

/* The attempt's answer text: a \boxed{} when there is one, else the first
 * line; a closing period dropped. */
static char *attempt_text(const char *attempt) {
  char *boxed = ag_math_last_boxed(attempt);
  if (boxed) return boxed;
  char *line = ag_first_line(attempt);
  if (line) {
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '.') line[n - 1] = '\0';
  }
  return line;
}

/* Shards of a word problem: its last question sentence (with the answer
 * instruction) first, then every other sentence in order, all required. */
static ag_status shard_word_problem(ag_task *t, const char *question, bool latex,
                                    const char *instruction) {
  char **sentences = NULL;
  int n = 0;
  ag_status st = ag_split_sentences(question, latex, &sentences, &n);
  if (st) return st;
  if (n == 0) {
    ag_strings_free(sentences, n);
    return ag_error_set(AG_ERR_FORMAT, "task %s: the problem has no sentences to shard", t->id);
  }
  int goal = n - 1;
  for (int i = n - 1; i >= 0; i--)
    if (ag_sentence_is_question(sentences[i])) {
      goal = i;
      break;
    }
  /* Rebuilding the shards from scratch keeps shard() idempotent. */
  for (int i = 0; i < t->shard_count; i++) free(t->shards[i].text);
  free(t->shards);
  t->shards = NULL;
  t->shard_count = 0;
  ag_strbuf b = {0};
  ag_strbuf_printf(&b, "%s %s", sentences[goal], instruction);
  char *goal_text = ag_strbuf_take(&b);
  st = goal_text ? ag_task_add_shard(t, goal_text, true) : AG_ERR_NOMEM;
  free(goal_text);
  for (int i = 0; !st && i < n; i++)
    if (i != goal) st = ag_task_add_shard(t, sentences[i], true);
  ag_strings_free(sentences, n);
  return st;
}

static const char *data_string(const ag_task *t, const char *key) {
  json_t *v = t->data ? json_object_get(t->data, key) : NULL;
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- the gsm8k family ---------------------------------------------------------------- */

static ag_status gsm8k_reference_value(const ag_task *t, ag_rational *ref) {
  if (!t->answer || !ag_parse_number(t->answer, ref))
    return ag_error_set(AG_ERR_FORMAT, "task %s: reference answer \"%s\" is not a number", t->id,
                        t->answer ? t->answer : "");
  return AG_OK;
}

/* The number of an attempt line: the whole line as a number ("$1,200",
 * "18 dollars"), else its only number ("The total is 18"). */
static bool attempt_number(const char *line, ag_rational *v) {
  if (ag_parse_number(line, v)) return true;
  char *last = last_number(line);
  if (!last) return false;
  const char *p = line;
  int numbers = 0;
  for (; *p; p++)
    if (isdigit((unsigned char)*p) && (p == line || !isdigit((unsigned char)p[-1])) &&
        (p == line || (p[-1] != '.' && p[-1] != ',' && p[-1] != '/')))
      numbers++;
  bool ok = numbers == 1 && ag_parse_number(last, v);
  free(last);
  return ok;
}

static ag_status gsm8k_verify(const ag_task *t, const char *attempt, ag_verdict *out) {
  memset(out, 0, sizeof *out);
  ag_rational ref, v;
  ag_status st = gsm8k_reference_value(t, &ref);
  if (st) return st;
  char *line = attempt_text(attempt ? attempt : "");
  if (!line) return ag_error_set(AG_ERR_NOMEM, "verify: out of memory");
  bool parsed = *line && attempt_number(line, &v);
  free(line);
  if (!parsed) return ag_verdict_init(out, false, false, "unparsed");
  st = number_verdict(v, ref, out);
  if (!st && !out->correct) {
    /* The attempt's value, so that localised feedback can recognise an
     * intermediate result. */
    char buf[64];
    json_object_set_new(out->diagnostics, "attempt", json_string(ag_rational_format(v, buf, 64)));
  }
  return st;
}

/* Whether the attempt is one of the solution's intermediate results. */
static bool is_intermediate(const ag_task *t, const ag_verdict *v) {
  json_t *attempt = json_object_get(v->diagnostics, "attempt");
  json_t *values = t->data ? json_object_get(t->data, "intermediates") : NULL;
  ag_rational a, x;
  if (!json_is_string(attempt) || !json_is_array(values) ||
      !ag_parse_number(json_string_value(attempt), &a))
    return false;
  size_t i;
  json_t *e;
  json_array_foreach(values, i, e) {
    if (json_is_string(e) && ag_parse_number(json_string_value(e), &x) && ag_rational_equal(a, x))
      return true;
  }
  return false;
}

static ag_status gsm8k_feedback(const ag_task *t, const ag_verdict *v, ag_feedback_level level,
                                ag_phrasing_set set, ag_rng *rng, char **out) {
  *out = NULL;
  if (!v || !v->diagnostics) return ag_error_set(AG_ERR_INVALID, "feedback: no verdict");
  ag_strbuf b = {0};
  ag_status st = number_feedback(v, set, rng, &b);
  const char *kind = diagnostic_string(v, "kind");
  if (!st && level >= AG_FEEDBACK_LOCALISED && kind && strcmp(kind, "unparsed")) {
    if (is_intermediate(t, v))
      ag_strbuf_printf(&b, " %s", PICK(intermediate, set, rng));
    else
      ag_strbuf_printf(&b, " %s", PICK(recheck_steps, set, rng));
  }
  if (st) {
    ag_strbuf_free(&b);
    return st;
  }
  return take_feedback(&b, out);
}

static bool gsm8k_leaks(const ag_task *t, const char *text) {
  ag_rational ref;
  if (!text || gsm8k_reference_value(t, &ref)) return false;
  const char *question = data_string(t, "question");
  char *rest = ag_text_without_problem(text, question ? question : t->problem);
  if (!rest) return true; /* out of memory: assume the worst */
  bool leak = ag_text_mentions_value(rest, ref);
  free(rest);
  return leak;
}

static ag_status reference_solve(const ag_task *t, char **answer) {
  *answer = t->answer ? strdup(t->answer) : NULL;
  if (!*answer) return ag_error_set(AG_ERR_INVALID, "task %s has no reference answer", t->id);
  return AG_OK;
}

static ag_status gsm8k_shard(ag_task *t) {
  const char *question = data_string(t, "question");
  return shard_word_problem(t, question ? question : t->problem, false, gsm8k_instruction);
}

const ag_task_family ag_task_family_gsm8k = {
    .name = "gsm8k",
    .summary = "GSM8K grade-school word problems (data set; the answer is a number)",
    .max_level = 0,
    .default_level = 0,
    .generate = NULL,
    .verify = gsm8k_verify,
    .feedback = gsm8k_feedback,
    .leaks = gsm8k_leaks,
    .solve = reference_solve,
    .shard = gsm8k_shard,
};

/* ---- the math family ----------------------------------------------------------------- */

static bool normalized_number(const char *answer, ag_rational *v) {
  char *n = ag_math_normalize(answer);
  bool ok = n && parse_normalized_number(n, v);
  free(n);
  return ok;
}

static ag_status math_verify(const ag_task *t, const char *attempt, ag_verdict *out) {
  memset(out, 0, sizeof *out);
  if (!t->answer || !*t->answer)
    return ag_error_set(AG_ERR_FORMAT, "task %s has no reference answer", t->id);
  char *text = attempt_text(attempt ? attempt : "");
  if (!text) return ag_error_set(AG_ERR_NOMEM, "verify: out of memory");
  char *norm = ag_math_normalize(text);
  bool empty = !norm || !*norm;
  free(norm);
  if (empty) {
    free(text);
    return ag_verdict_init(out, false, false, "unparsed");
  }
  ag_rational a, r;
  ag_status st;
  if (normalized_number(text, &a) && normalized_number(t->answer, &r)) {
    st = number_verdict(a, r, out);
  } else {
    bool correct = ag_math_equivalent(text, t->answer);
    st = ag_verdict_init(out, correct, true, correct ? "correct" : "wrong_value");
    /* A decimal against an exact reference: say so. */
    if (!st && !correct && normalized_number(text, &a) && strchr(text, '.'))
      json_object_set_new(out->diagnostics, "approximate", json_true());
  }
  free(text);
  return st;
}

static ag_status math_feedback(const ag_task *t, const ag_verdict *v, ag_feedback_level level,
                               ag_phrasing_set set, ag_rng *rng, char **out) {
  (void)t;
  *out = NULL;
  if (!v || !v->diagnostics) return ag_error_set(AG_ERR_INVALID, "feedback: no verdict");
  ag_strbuf b = {0};
  const char *kind = diagnostic_string(v, "kind");
  if (json_is_true(json_object_get(v->diagnostics, "approximate")))
    ag_strbuf_printf(&b, "%s", PICK(exact_form, set, rng));
  else
    number_feedback(v, set, rng, &b);
  if (level >= AG_FEEDBACK_LOCALISED && kind && strcmp(kind, "unparsed"))
    ag_strbuf_printf(&b, " %s", PICK(recheck_algebra, set, rng));
  return take_feedback(&b, out);
}

/* text without spaces, "$", "\left", "\right", "\!" and with \dfrac as
 * \frac: what a LaTeX answer looks like wherever it is written. */
static char *compact_latex(const char *text) {
  char *s = strdup(text);
  s = replace_all(s, "\\dfrac", "\\frac");
  s = replace_all(s, "\\tfrac", "\\frac");
  s = replace_all(s, "\\!", "");
  s = remove_command(s, "\\left");
  s = remove_command(s, "\\right");
  if (!s) return NULL;
  char *w = s;
  for (char *r = s; *r; r++)
    if (!is_ws(*r) && *r != '$') *w++ = *r;
  *w = '\0';
  return brace_short_arguments(s);
}

static bool math_leaks(const ag_task *t, const char *text) {
  if (!text || !t->answer) return false;
  const char *question = data_string(t, "question");
  char *rest = ag_text_without_problem(text, question ? question : t->problem);
  if (!rest) return true;
  bool leak = false;
  ag_rational r;
  if (normalized_number(t->answer, &r)) {
    leak = ag_text_mentions_value(rest, r);
  } else {
    /* An expression: written out anywhere, or boxed in an equivalent form. */
    char *a = compact_latex(t->answer), *b = compact_latex(rest);
    if (!a || !b)
      leak = true;
    else
      leak = strlen(a) >= 3 && strstr(b, a) != NULL;
    free(a);
    free(b);
    char *boxed = leak ? NULL : ag_math_last_boxed(rest);
    if (boxed && ag_math_equivalent(boxed, t->answer)) leak = true;
    free(boxed);
  }
  free(rest);
  return leak;
}

static ag_status math_shard(ag_task *t) {
  const char *question = data_string(t, "question");
  return shard_word_problem(t, question ? question : t->problem, true, math_instruction);
}

const ag_task_family ag_task_family_math = {
    .name = "math",
    .summary = "MATH competition problems (data set; \\boxed{} answers, LaTeX normalised)",
    .max_level = 0,
    .default_level = 0,
    .generate = NULL,
    .verify = math_verify,
    .feedback = math_feedback,
    .leaks = math_leaks,
    .solve = reference_solve,
    .shard = math_shard,
};

/* ---- loading ----------------------------------------------------------------------- */

/* Lines of a plain or gzip'd file (zlib reads both). */
typedef struct line_reader {
  gzFile file;
  char *buf;
  size_t capacity;
  int64_t line;
} line_reader;

/* 1: a line in r->buf (newline stripped); 0: end of file; -1: a read
 * error; -2: out of memory. */
static int read_line(line_reader *r, size_t *length) {
  size_t n = 0;
  for (;;) {
    if (r->capacity - n < 2) {
      size_t cap = r->capacity ? r->capacity * 2 : 1 << 16;
      char *grown = realloc(r->buf, cap);
      if (!grown) return -2;
      r->buf = grown;
      r->capacity = cap;
    }
    if (!gzgets(r->file, r->buf + n,
                (int)(r->capacity - n > INT32_MAX ? INT32_MAX : r->capacity - n))) {
      int err;
      gzerror(r->file, &err);
      if (err != Z_OK && err != Z_BUF_ERROR) return -1;
      if (n == 0) return 0;
      break;
    }
    n += strlen(r->buf + n);
    if (n > 0 && r->buf[n - 1] == '\n') break;
    if (gzeof(r->file)) break;
  }
  r->line++;
  if (n > 0 && r->buf[n - 1] == '\n') n--;
  if (n > 0 && r->buf[n - 1] == '\r') n--;
  r->buf[n] = '\0';
  *length = n;
  return 1;
}

static ag_status need_string(const json_t *record, const char *key, const char *where,
                             const char **out) {
  json_t *v = json_object_get(record, key);
  if (!json_is_string(v))
    return ag_error_set(AG_ERR_FORMAT, "%s: %s string field \"%s\"", where,
                        v ? "expected a" : "missing the", key);
  *out = json_string_value(v);
  return AG_OK;
}

/* "<<48/2=24>>" calculator notes removed, "#### 72" turned into "Answer: 72";
 * the values the notes computed collected as intermediates. */
static char *gsm8k_solution(const char *answer_field, const char *reference,
                            json_t *intermediates) {
  ag_strbuf b = {0};
  const char *p = answer_field;
  ag_rational ref, v;
  bool have_ref = ag_parse_number(reference, &ref);
  while (*p) {
    if (starts_with(p, "<<")) {
      const char *close = strstr(p, ">>");
      if (close) {
        const char *eq = NULL;
        for (const char *q = p; q < close; q++)
          if (*q == '=') eq = q;
        if (eq) {
          char *value = dup_trimmed(eq + 1, (size_t)(close - eq - 1));
          if (value && ag_parse_number(value, &v) && !(have_ref && ag_rational_equal(v, ref)))
            json_array_append_new(intermediates, json_string(value));
          free(value);
        }
        p = close + 2;
        continue;
      }
    }
    if (starts_with(p, "####") && (p == answer_field || p[-1] == '\n')) {
      ag_strbuf_printf(&b, "Answer: %s", reference);
      p += strcspn(p, "\n");
      continue;
    }
    ag_strbuf_append(&b, p, 1);
    p++;
  }
  return ag_strbuf_take(&b);
}

static ag_status gsm8k_from_record(const json_t *record, const char *where, int64_t line,
                                   ag_task *out) {
  const char *question = NULL, *answer_field = NULL;
  ag_status st;
  if ((st = need_string(record, "question", where, &question)) ||
      (st = need_string(record, "answer", where, &answer_field)))
    return st;
  char *ref = NULL;
  if ((st = ag_gsm8k_reference(answer_field, &ref))) return ag_error_wrap(st, "%s", where);
  ag_rational value;
  if (!ag_parse_number(ref, &value)) {
    st = ag_error_set(AG_ERR_FORMAT, "%s: the reference answer \"%s\" is not a number", where, ref);
    free(ref);
    return st;
  }
  json_t *data = json_pack("{s:s, s:s, s:[]}", "question", question, "reference_solution",
                           answer_field, "intermediates");
  char *solution =
      data ? gsm8k_solution(answer_field, ref, json_object_get(data, "intermediates")) : NULL;
  ag_strbuf pb = {0};
  ag_strbuf_printf(&pb, "%s\n\n%s", question, gsm8k_instruction);
  char *problem = ag_strbuf_take(&pb);
  if (!data || !solution || !problem) {
    json_decref(data);
    st = ag_error_set(AG_ERR_NOMEM, "%s: out of memory", where);
  } else {
    st = ag_task_fill(out, "gsm8k", 0, 0, line, problem, ref, solution, data);
    if (!st) snprintf(out->id, sizeof out->id, "gsm8k/%lld", (long long)line);
  }
  free(problem);
  free(solution);
  free(ref);
  return st;
}

static ag_status math_from_record(const json_t *record, const char *where, int64_t line,
                                  ag_task *out) {
  const char *problem_text = NULL, *solution_text = NULL;
  ag_status st;
  if ((st = need_string(record, "problem", where, &problem_text))) return st;
  json_t *s = json_object_get(record, "solution"), *a = json_object_get(record, "answer");
  if (s && !json_is_string(s))
    return ag_error_set(AG_ERR_FORMAT, "%s: expected a string field \"solution\"", where);
  if (a && !json_is_string(a))
    return ag_error_set(AG_ERR_FORMAT, "%s: expected a string field \"answer\"", where);
  solution_text = s ? json_string_value(s) : NULL;
  char *ref = a ? strdup(json_string_value(a)) : ag_math_last_boxed(solution_text);
  if (!ref || !*ref) {
    free(ref);
    return ag_error_set(AG_ERR_FORMAT,
                        "%s: no reference answer (neither an \"answer\" field nor a \\boxed{} "
                        "in \"solution\")",
                        where);
  }
  json_t *data = json_pack("{s:s, s:s}", "question", problem_text, "reference_solution",
                           solution_text ? solution_text : "");
  json_t *level = json_object_get(record, "level"), *type = json_object_get(record, "type");
  if (data && json_is_string(level)) json_object_set(data, "level", level);
  if (data && json_is_string(type)) json_object_set(data, "type", type);
  ag_strbuf pb = {0}, sb = {0};
  ag_strbuf_printf(&pb, "%s\n\n%s", problem_text, math_instruction);
  if (solution_text)
    ag_strbuf_printf(&sb, "%s\nAnswer: %s", solution_text, ref);
  else
    ag_strbuf_printf(&sb, "Answer: %s", ref);
  char *problem = ag_strbuf_take(&pb), *solution = ag_strbuf_take(&sb);
  if (!data || !problem || !solution) {
    json_decref(data);
    st = ag_error_set(AG_ERR_NOMEM, "%s: out of memory", where);
  } else {
    st = ag_task_fill(out, "math", 0, 0, line, problem, ref, solution, data);
    if (!st) snprintf(out->id, sizeof out->id, "math/%lld", (long long)line);
  }
  free(problem);
  free(solution);
  free(ref);
  return st;
}

static ag_status check_dataset_name(const char *dataset) {
  if (dataset &&
      (!strcmp(dataset, "gsm8k") || !strcmp(dataset, "math") || !strcmp(dataset, "humaneval")))
    return AG_OK;
  return ag_error_set(AG_ERR_INVALID, "unknown data set \"%s\" (known: gsm8k, math, humaneval)",
                      dataset ? dataset : "");
}

ag_status ag_dataset_load(const char *dataset, const char *path, int64_t limit, ag_task **tasks,
                          int64_t *count) {
  *tasks = NULL;
  *count = 0;
  ag_status st = check_dataset_name(dataset);
  if (st) return st;
  if (!path) return ag_error_set(AG_ERR_INVALID, "%s: no file given", dataset);
  errno = 0;
  gzFile file = gzopen(path, "rb");
  if (!file) {
    int err = errno ? errno : ENOMEM;
    return ag_error_set(err == ENOENT ? AG_ERR_NOT_FOUND : AG_ERR_IO, "cannot open %s: %s", path,
                        strerror(err));
  }
  line_reader r = {.file = file};
  ag_task *list = NULL;
  int64_t n = 0, cap = 0;
  size_t length;
  int got;
  while ((limit <= 0 || n < limit) && (got = read_line(&r, &length)) != 0) {
    if (got < 0) {
      int err;
      const char *msg = got == -2 ? "out of memory" : gzerror(file, &err);
      st = ag_error_set(got == -2 ? AG_ERR_NOMEM : AG_ERR_IO, "%s:%lld: cannot read: %s", path,
                        (long long)r.line + 1, msg);
      break;
    }
    char *text = r.buf;
    if (r.line == 1 && length >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, length -= 3;
    size_t k = 0;
    while (k < length && is_ws(text[k])) k++;
    if (k == length) continue;
    char where[600];
    snprintf(where, sizeof where, "%s:%lld", path, (long long)r.line);
    json_error_t error;
    json_t *record = json_loadb(text, length, 0, &error);
    if (!record || !json_is_object(record)) {
      st = ag_error_set(AG_ERR_FORMAT, "%s: %s", where,
                        record ? "expected a JSON object" : error.text);
      json_decref(record);
      break;
    }
    if (n == cap) {
      int64_t grown_cap = cap ? cap * 2 : 256;
      ag_task *grown = realloc(list, (size_t)grown_cap * sizeof *grown);
      if (!grown) {
        json_decref(record);
        st = ag_error_set(AG_ERR_NOMEM, "%s: out of memory", where);
        break;
      }
      list = grown;
      cap = grown_cap;
    }
    if (!strcmp(dataset, "gsm8k"))
      st = gsm8k_from_record(record, where, r.line, &list[n]);
    else if (!strcmp(dataset, "math"))
      st = math_from_record(record, where, r.line, &list[n]);
    else
      st = ag_humaneval_task_from_record(record, where, &list[n]);
    json_decref(record);
    if (st) break;
    n++;
  }
  gzclose(file);
  free(r.buf);
  if (st) {
    for (int64_t i = 0; i < n; i++) ag_task_clear(&list[i]);
    free(list);
    return st;
  }
  *tasks = list;
  *count = n;
  return AG_OK;
}

/* ---- checking a data set ----------------------------------------------------------- */

/* A GSM8K or MATH record: agora's extractor reads the final answer out of
 * the reference solution, and the family's verifier must accept it. */
static ag_status check_reference(const ag_task *t, bool *verified, char *detail, size_t size) {
  const ag_task_family *f;
  ag_status st = ag_task_family_get(t->family, &f);
  if (st) return st;
  const char *solution = data_string(t, "reference_solution");
  char *extracted = ag_math_extract_final(solution && *solution ? solution : t->solution);
  *verified = false;
  if (!extracted) {
    snprintf(detail, size, "no final answer found in the reference solution");
    return AG_OK;
  }
  ag_verdict v = {0};
  st = f->verify(t, extracted, &v);
  if (!st) {
    *verified = v.correct;
    if (!v.correct)
      snprintf(detail, size, "extracted \"%.200s\", expected \"%.200s\"", extracted, t->answer);
  }
  ag_verdict_clear(&v);
  free(extracted);
  return st;
}

ag_status ag_dataset_check(const char *dataset, const char *path, int64_t limit,
                           const ag_sandbox_limits *limits, ag_dataset_check_fn on_record,
                           void *user, int64_t *verified, int64_t *total) {
  *verified = 0;
  *total = 0;
  ag_task *tasks = NULL;
  int64_t n = 0;
  ag_status st = ag_dataset_load(dataset, path, limit, &tasks, &n);
  if (st) return st;
  *total = n;
  if (!strcmp(dataset, "humaneval")) {
    st = ag_humaneval_check_tasks(tasks, n, limits, on_record, user, verified);
  } else {
    for (int64_t i = 0; i < n && !st; i++) {
      bool ok = false;
      char detail[512] = "";
      st = check_reference(&tasks[i], &ok, detail, sizeof detail);
      if (st) break;
      *verified += ok;
      if (on_record) on_record(user, &tasks[i], ok, detail);
    }
  }
  for (int64_t i = 0; i < n; i++) ag_task_clear(&tasks[i]);
  free(tasks);
  return st;
}
