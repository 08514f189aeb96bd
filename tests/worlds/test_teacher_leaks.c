/* The programmatic teacher never gives the answer away: over 10,000
 * generated tasks of every generated family (all levels), each met with
 * several wrong attempts and with a question, its messages at every
 * feedback level and in both phrasing sets are judged by a checker written
 * here, independently of the families' own leaks():
 *   - numbers (arith, algebra): the answer's value as digits, with
 *     thousands separators, as a decimal (also the rounded or cut decimal
 *     of a fraction), a fraction, a mixed number, \frac{}{}, or in words
 *     ("seven", "twenty-one", "minus three", "three quarters", "one half");
 *     a digit token copied verbatim from the problem is a restated fact;
 *   - move strings (maze): every run of moves in the text, as letters,
 *     words (up, north, ...) or arrows, with any separators and counts
 *     ("3 right", "R x3", "twice"), walked on the grid: a stretch that goes
 *     from S to G is a leak, whether or not it is the canonical path;
 *   - programs (code): the answer with spaces removed inside the text, or
 *     any line, quoted span or clause of the text that the verifier accepts;
 *   - knights and knaves: every person's role stated as in the answer;
 *   - countdown: any substring that is an arithmetic expression and that
 *     the verifier accepts (evaluated candidate by candidate). */
#include "agora/dialogue.h"
#include "test.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- numbers, read independently ------------------------------------------------------ */

typedef struct num {
  long double value;
  int decimals; /* digits after a decimal point; 0 for integers, fractions, words */
  bool digits;  /* written with digits (then it may be a fact copied from the problem) */
  char text[64];
} num;

#define MAX_NUMS 256

static const char *const UNITS[] = {"zero",    "one",     "two",       "three",    "four",
                                    "five",    "six",     "seven",     "eight",    "nine",
                                    "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                    "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const TENS[] = {"",      "",      "twenty",  "thirty", "forty",
                                   "fifty", "sixty", "seventy", "eighty", "ninety"};
/* Denominator words: "half" 2, "third" 3, "quarter" 4, "fourth" 4, ... */
static const struct {
  const char *word;
  int den;
} DENOMS[] = {{"half", 2},     {"halves", 2}, {"third", 3},   {"thirds", 3},   {"quarter", 4},
              {"quarters", 4}, {"fourth", 4}, {"fourths", 4}, {"fifth", 5},    {"fifths", 5},
              {"sixth", 6},    {"sixths", 6}, {"seventh", 7}, {"sevenths", 7}, {"eighth", 8},
              {"eighths", 8},  {"ninth", 9},  {"ninths", 9},  {"tenth", 10},   {"tenths", 10}};

/* w[0..n) equals the lower-case word s, ignoring ASCII case. The checker
 * compares every word of every message with the number words: kept cheap. */
static inline bool word_eq(const char *w, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++) {
    char c = w[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + ('a' - 'A'));
    if (c != s[i]) return false; /* also at the end of s */
  }
  return s[n] == '\0';
}

static int word_value(const char *w, size_t n, bool *tens) {
  *tens = false;
  for (int i = 0; i < 20; i++)
    if (word_eq(w, n, UNITS[i])) return i;
  for (int i = 2; i < 10; i++)
    if (word_eq(w, n, TENS[i])) {
      *tens = true;
      return 10 * i;
    }
  return -1;
}

static int denom_value(const char *w, size_t n) {
  for (size_t i = 0; i < sizeof DENOMS / sizeof *DENOMS; i++)
    if (word_eq(w, n, DENOMS[i].word)) return DENOMS[i].den;
  return 0;
}

static void add_num(num *out, int *count, long double v, int decimals, bool digits,
                    const char *text, size_t n) {
  if (*count >= MAX_NUMS) return;
  num *m = &out[(*count)++];
  m->value = v;
  m->decimals = decimals;
  m->digits = digits;
  if (n > sizeof m->text - 1) n = sizeof m->text - 1;
  memcpy(m->text, text, n);
  m->text[n] = '\0';
}

/* Reads a run of digits with optional thousands separators and a decimal
 * part at s; returns its length (0: none). */
static size_t read_decimal(const char *s, long double *v, int *decimals) {
  size_t i = 0;
  long double x = 0;
  *decimals = 0;
  if (!isdigit((unsigned char)s[0]) && !(s[0] == '.' && isdigit((unsigned char)s[1]))) return 0;
  while (isdigit((unsigned char)s[i]) ||
         (s[i] == ',' && isdigit((unsigned char)s[i + 1]) && isdigit((unsigned char)s[i + 2]) &&
          isdigit((unsigned char)s[i + 3]) && !isdigit((unsigned char)s[i + 4]))) {
    if (s[i] != ',') x = x * 10 + (s[i] - '0');
    i++;
  }
  if (s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
    i++;
    long double scale = 0.1L;
    while (isdigit((unsigned char)s[i])) {
      x += scale * (s[i] - '0');
      scale /= 10;
      (*decimals)++;
      i++;
    }
  }
  *v = x;
  return i;
}

/* Every number in text: digit forms (integers, decimals, p/q, mixed
 * numbers, \frac{p}{q}), and number words (with minus/negative and
 * fraction words). */
static int find_numbers(const char *text, num *out) {
  int count = 0;
  size_t n = strlen(text);
  for (size_t i = 0; i < n;) {
    const char *s = text + i;
    /* \frac{p}{q}, \dfrac{p}{q}, \frac34 */
    if (s[0] == '\\' && (!strncmp(s, "\\frac", 5) || !strncmp(s, "\\dfrac", 6))) {
      const char *p = s + (s[1] == 'd' ? 6 : 5);
      long a = 0, b = 0;
      int used = 0;
      bool neg = i > 0 && text[i - 1] == '-';
      if (sscanf(p, "{%ld}{%ld}%n", &a, &b, &used) == 2 ||
          (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
           (a = p[0] - '0', b = p[1] - '0', used = 2)))
        if (b != 0)
          add_num(out, &count, (neg ? -1.0L : 1.0L) * a / b, 0, true, s, (size_t)(p - s) + used);
      i += (size_t)(p - s) + (size_t)used;
      continue;
    }
    if (isdigit((unsigned char)s[0]) || (s[0] == '.' && isdigit((unsigned char)s[1]))) {
      if (i > 0 && (isalnum((unsigned char)text[i - 1]) || text[i - 1] == '.')) {
        /* the tail of a word or number: skip the whole token */
        while (i < n && (isalnum((unsigned char)text[i]) || text[i] == '.')) i++;
        continue;
      }
      bool neg =
          i > 0 && (text[i - 1] == '-' || !strncmp(text + (i >= 3 ? i - 3 : 0), "\xe2\x88\x92", 3));
      long double v;
      int decimals;
      size_t len = read_decimal(s, &v, &decimals);
      size_t start = neg ? i - 1 : i;
      /* p/q or p / q, and a mixed number "1 1/2" */
      const char *q = s + len;
      while (*q == ' ') q++;
      long double sign = neg ? -1.0L : 1.0L;
      if (decimals == 0 && *q == '/') {
        const char *r = q + 1;
        while (*r == ' ') r++;
        long double d;
        int dd;
        size_t dl = read_decimal(r, &d, &dd);
        if (dl > 0 && dd == 0 && d != 0) {
          add_num(out, &count, sign * v / d, 0, true, text + start,
                  (size_t)(r + dl - text) - start);
          i = (size_t)(r + dl - text);
          continue;
        }
      }
      if (decimals == 0 && s[len] == ' ' && isdigit((unsigned char)s[len + 1])) {
        long double a, b;
        int da, db;
        size_t al = read_decimal(s + len + 1, &a, &da);
        if (al > 0 && da == 0 && s[len + 1 + al] == '/' &&
            read_decimal(s + len + 2 + al, &b, &db) > 0 && db == 0 && b != 0)
          add_num(out, &count, sign * (v + a / b), 0, true, text + start, len + 1 + al + 1);
      }
      add_num(out, &count, sign * v, decimals, true, text + start, len + (neg ? 1 : 0));
      i += len;
      continue;
    }
    if (isalpha((unsigned char)s[0])) {
      size_t j = i;
      while (j < n && isalpha((unsigned char)text[j])) j++;
      bool is_tens;
      int v = word_value(s, j - i, &is_tens);
      bool neg = false;
      if (v < 0 && (word_eq(s, j - i, "minus") || word_eq(s, j - i, "negative"))) {
        size_t k = j;
        while (k < n && text[k] == ' ') k++;
        size_t e = k;
        while (e < n && isalpha((unsigned char)text[e])) e++;
        if (word_value(text + k, e - k, &is_tens) >= 0 || word_eq(text + k, e - k, "a") ||
            word_eq(text + k, e - k, "half")) {
          neg = true;
          i = k;
          s = text + i;
          j = e;
          v = word_value(s, j - i, &is_tens);
        }
      }
      if (v < 0 && (word_eq(s, j - i, "a") || word_eq(s, j - i, "half"))) {
        /* "a half", "a quarter", "half" */
        size_t k = j, e;
        while (k < n && text[k] == ' ') k++;
        e = k;
        while (e < n && isalpha((unsigned char)text[e])) e++;
        int den = word_eq(s, j - i, "half") ? 2 : denom_value(text + k, e - k);
        if (den > 0) {
          add_num(out, &count, (neg ? -1.0L : 1.0L) / den, 0, false, s,
                  (word_eq(s, j - i, "half") ? j : e) - i);
          i = word_eq(s, j - i, "half") ? j : e;
          continue;
        }
        i = j;
        continue;
      }
      if (v < 0) {
        i = j;
        continue;
      }
      /* A number in words: "twenty-one", "one hundred and five", then an
       * optional denominator word ("three quarters"). */
      long double value = v;
      size_t end = j;
      if (is_tens && (text[end] == '-' || text[end] == ' ')) {
        size_t k = end + 1, e = k;
        while (e < n && isalpha((unsigned char)text[e])) e++;
        bool t2;
        int u = word_value(text + k, e - k, &t2);
        if (u > 0 && u < 10 && !t2) {
          value += u;
          end = e;
        }
      }
      for (;;) {
        size_t k = end;
        while (k < n && text[k] == ' ') k++;
        size_t e = k;
        while (e < n && isalpha((unsigned char)text[e])) e++;
        if (word_eq(text + k, e - k, "hundred"))
          value *= 100;
        else if (word_eq(text + k, e - k, "thousand"))
          value *= 1000;
        else
          break;
        end = e;
        size_t a = end;
        while (a < n && text[a] == ' ') a++;
        size_t ae = a;
        while (ae < n && isalpha((unsigned char)text[ae])) ae++;
        if (word_eq(text + a, ae - a, "and")) {
          size_t k2 = ae;
          while (k2 < n && text[k2] == ' ') k2++;
          size_t e2 = k2;
          while (e2 < n && isalpha((unsigned char)text[e2])) e2++;
          bool t3;
          int u = word_value(text + k2, e2 - k2, &t3);
          if (u > 0) {
            value += u;
            end = e2;
          }
        }
      }
      size_t k = end;
      while (k < n && text[k] == ' ') k++;
      size_t e = k;
      while (e < n && isalpha((unsigned char)text[e])) e++;
      int den = denom_value(text + k, e - k);
      if (den > 0 && value > 0) {
        value /= den;
        end = e;
      }
      add_num(out, &count, neg ? -value : value, 0, false, s, end - i);
      i = end;
      continue;
    }
    i++;
  }
  return count;
}

/* Whether m states the value v: exactly, or as a decimal that rounds or
 * cuts v to its digits. */
static bool num_is(const num *m, long double v) {
  long double tol = m->decimals > 0 ? powl(10.0L, -m->decimals) : 1e-9L;
  return fabsl(m->value - v) < tol;
}

/* The value of an answer such as "7", "-3/4", "x = 22/13". */
static bool parse_value(const char *s, long double *v) {
  while (*s == ' ' || isalpha((unsigned char)*s) || *s == '=') s++;
  long a = 0, b = 1;
  int used = 0;
  if (sscanf(s, "%ld/%ld%n", &a, &b, &used) == 2 && b != 0) {
    *v = (long double)a / b;
    return true;
  }
  char *end = NULL;
  double d = strtod(s, &end);
  if (end == s) return false;
  *v = d;
  return true;
}

/* The numbers of a problem: digit tokens a teacher may restate. Computed
 * once per task (a copy of the problem says which task they belong to). */
typedef struct facts {
  char *problem;
  num found[MAX_NUMS];
  int count;
} facts;

static facts problem_facts;

static const facts *facts_of(const char *problem) {
  facts *f = &problem_facts;
  if (!f->problem || strcmp(f->problem, problem)) {
    free(f->problem);
    f->problem = strdup(problem);
    f->count = find_numbers(problem, f->found);
  }
  return f;
}

/* A number in text equal to v that is not a digit token of the problem. */
static bool mentions_value(const char *text, const char *problem, long double v, char *why,
                           size_t why_size) {
  num found[MAX_NUMS];
  int n = find_numbers(text, found);
  const facts *known = NULL;
  for (int i = 0; i < n; i++) {
    if (!num_is(&found[i], v)) continue;
    if (found[i].digits) {
      if (!known) known = facts_of(problem);
      bool fact = false;
      for (int k = 0; k < known->count && !fact; k++)
        fact = known->found[k].digits && !strcmp(found[i].text, known->found[k].text);
      if (fact) continue;
    }
    snprintf(why, why_size, "states the value as \"%s\"", found[i].text);
    return true;
  }
  return false;
}

/* ---- move strings, walked on the grid --------------------------------------------------- */

typedef struct grid {
  int rows, cols, start, goal;
  char sq[64 * 64];
} grid;

static bool load_grid(const ag_task *t, grid *g) {
  json_t *rows = json_object_get(t->data, "grid");
  g->rows = (int)json_array_size(rows);
  if (g->rows <= 0 || g->rows > 64) return false;
  g->cols = (int)strlen(json_string_value(json_array_get(rows, 0)));
  if (g->cols <= 0 || g->cols > 64) return false;
  g->start = g->goal = -1;
  for (int r = 0; r < g->rows; r++) {
    const char *row = json_string_value(json_array_get(rows, (size_t)r));
    if (!row || (int)strlen(row) != g->cols) return false;
    for (int c = 0; c < g->cols; c++) {
      g->sq[r * g->cols + c] = row[c];
      if (row[c] == 'S') g->start = r * g->cols + c;
      if (row[c] == 'G') g->goal = r * g->cols + c;
    }
  }
  return g->start >= 0 && g->goal >= 0;
}

/* 0 up, 1 down, 2 left, 3 right; -1 when blocked. */
static int step(const grid *g, int at, int move) {
  int r = at / g->cols + (move == 0 ? -1 : move == 1 ? 1 : 0);
  int c = at % g->cols + (move == 2 ? -1 : move == 3 ? 1 : 0);
  if (r < 0 || r >= g->rows || c < 0 || c >= g->cols || g->sq[r * g->cols + c] == '#') return -1;
  return r * g->cols + c;
}

static int move_of_word(const char *w, size_t n) {
  static const char *const words[4][4] = {{"up", "north", "upward", "upwards"},
                                          {"down", "south", "downward", "downwards"},
                                          {"left", "west", "leftward", "leftwards"},
                                          {"right", "east", "rightward", "rightwards"}};
  for (int m = 0; m < 4; m++)
    for (int k = 0; k < 4; k++)
      if (word_eq(w, n, words[m][k])) return m;
  return -1;
}

static int move_of_letter(char c) {
  switch (toupper((unsigned char)c)) {
  case 'U': return 0;
  case 'D': return 1;
  case 'L': return 2;
  case 'R': return 3;
  default: return -1;
  }
}

#define MAX_MOVES 4096

/* All moves in text in reading order, whatever stands between them:
 * letter strings over UDLR (any case, when the word is nothing else),
 * direction words, arrows, with counts before ("3 right", "3R") or after
 * ("R3", "R x3", "right 3 times", "right twice"). */
static int find_moves(const char *text, int *moves) {
  int count = 0;
  int pending = 0;             /* a count waiting for its direction */
  size_t last_move_end = 0;    /* where the text of the last move ended */
  bool last_move_word = false; /* it was a word ("right 3" counts, "R 3" does not) */
  size_t n = strlen(text);
  for (size_t i = 0; i < n && count < MAX_MOVES;) {
    const unsigned char *u = (const unsigned char *)text + i;
    int arrow = -1;
    if (u[0] == 0xE2 && u[1] == 0x86) { /* U+2190..U+2193: left, up, right, down */
      arrow = u[2] == 0x90 ? 2 : u[2] == 0x91 ? 0 : u[2] == 0x92 ? 3 : u[2] == 0x93 ? 1 : -1;
    }
    if (arrow >= 0) {
      int times = pending > 0 ? pending : 1;
      for (int k = 0; k < times && count < MAX_MOVES; k++) moves[count++] = arrow;
      pending = 0;
      i += 3;
      last_move_end = i;
      last_move_word = false;
      continue;
    }
    if (isdigit(u[0])) {
      long v = strtol(text + i, NULL, 10);
      size_t j = i;
      while (j < n && isdigit((unsigned char)text[j])) j++;
      pending = v > 0 && v < 200 ? (int)v : 0;
      /* a count binds only to a move right after it ("3 R", "3R", "3 times R") */
      size_t next = j;
      while (next < n && text[next] == ' ') next++;
      if (next < n && !isalpha((unsigned char)text[next]) && (unsigned char)text[next] != 0xE2)
        pending = 0;
      /* "R3", "R x3", "right 3 times": a count after the last move, with
       * nothing but spaces, 'x' or '*' between them */
      if (count > 0 && last_move_end > 0 && last_move_end <= i) {
        bool between = true, marked = false;
        for (size_t k = last_move_end; k < i && between; k++) {
          between = text[k] == ' ' || text[k] == 'x' || text[k] == '*';
          marked |= text[k] == 'x' || text[k] == '*';
        }
        size_t e = j;
        while (e < n && text[e] == ' ') e++;
        bool times = !strncmp(text + e, "times", 5);
        if (between && (marked || times || last_move_end == i || last_move_word) && v > 1 &&
            v < 200) {
          int last = moves[count - 1];
          for (long k = 1; k < v && count < MAX_MOVES; k++) moves[count++] = last;
          pending = 0;
        }
      }
      i = j;
      continue;
    }
    if (isalpha(u[0])) {
      size_t j = i;
      while (j < n && isalpha((unsigned char)text[j])) j++;
      const char *w = text + i;
      size_t len = j - i;
      int m = move_of_word(w, len);
      bool letters = true;
      for (size_t k = 0; k < len && letters; k++) letters = move_of_letter(w[k]) >= 0;
      /* single lower-case "d", "l", ... are words more often than moves, but
       * a checker should err on the side of finding leaks */
      if (m >= 0) {
        int times = pending > 0 ? pending : 1;
        for (int k = 0; k < times && count < MAX_MOVES; k++) moves[count++] = m;
      } else if (letters) {
        for (size_t k = 0; k < len && count < MAX_MOVES; k++) {
          int times = k == 0 && pending > 0 ? pending : 1;
          for (int t = 0; t < times && count < MAX_MOVES; t++)
            moves[count++] = move_of_letter(w[k]);
        }
      } else if ((word_eq(w, len, "twice") || word_eq(w, len, "thrice")) && count > 0) {
        int extra = word_eq(w, len, "twice") ? 1 : 2;
        for (int k = 0; k < extra && count < MAX_MOVES; k++)
          moves[count] = moves[count - 1], count++;
      } else {
        bool tens;
        int v = word_value(w, len, &tens);
        if (v > 0) {
          pending = v;
          i = j;
          continue;
        }
        if (word_eq(w, len, "times") || word_eq(w, len, "x")) {
          i = j;
          continue;
        }
      }
      if (m >= 0 || letters) {
        last_move_end = j;
        last_move_word = m >= 0;
      }
      pending = 0;
      i = j;
      continue;
    }
    if (text[i] != ' ') pending = 0;
    i++;
  }
  return count;
}

/* Some stretch of the moves walks from S to G. */
static bool walks_to_goal(const grid *g, const int *moves, int n) {
  for (int i = 0; i < n; i++) {
    int at = g->start;
    for (int j = i; j < n; j++) {
      at = step(g, at, moves[j]);
      if (at < 0) break;
      if (at == g->goal) return true;
    }
  }
  return false;
}

/* ---- programs and expressions: candidates the verifier accepts ---------------------------- */

static bool verifies(const ag_task_family *f, const ag_task *t, const char *candidate) {
  ag_verdict v = {0};
  bool ok = f->verify(t, candidate, &v) == AG_OK && v.correct;
  ag_verdict_clear(&v);
  return ok;
}

static void squeeze(const char *s, char *out, size_t size) {
  size_t w = 0;
  for (; *s && w + 1 < size; s++)
    if (!isspace((unsigned char)*s)) out[w++] = *s;
  out[w] = '\0';
}

/* Lines, quoted or backticked spans, and the text after each ':' of text,
 * each tried as an answer. */
static bool some_span_verifies(const ag_task_family *f, const ag_task *t, const char *text,
                               char *why, size_t why_size) {
  size_t n = strlen(text);
  char *buf = malloc(n + 1);
  bool found = false;
  for (size_t i = 0; i <= n && !found; i++) {
    /* starts: the text's start, after a newline, a quote, a backtick, ':' */
    if (i > 0 && !strchr("\n\"'`:(", text[i - 1])) continue;
    for (size_t j = i + 1; j <= n && !found; j++) {
      /* Every verifier reads an attempt's first non-empty line, so a span
       * across a newline is judged as its part before it (a candidate
       * already) or as a later line (one starting after the newline). */
      if (text[j - 1] == '\n') break;
      /* ends: end of text, newline, a quote, a backtick, '.', ';' */
      if (j < n && !strchr("\n\"'`.;)", text[j])) continue;
      memcpy(buf, text + i, j - i);
      buf[j - i] = '\0';
      if (verifies(f, t, buf)) {
        snprintf(why, why_size, "contains an accepted answer \"%s\"", buf);
        found = true;
      }
    }
  }
  free(buf);
  return found;
}

/* Countdown: every substring made of digits, operators, parentheses and
 * spaces that the verifier accepts. */
static bool some_expression_verifies(const ag_task_family *f, const ag_task *t, const char *text,
                                     char *why, size_t why_size) {
  size_t n = strlen(text);
  char *buf = malloc(n + 1);
  bool found = false;
  for (size_t i = 0; i < n && !found; i++) {
    if (!isdigit((unsigned char)text[i]) && text[i] != '(') continue;
    if (i > 0 && (isdigit((unsigned char)text[i - 1]))) continue;
    size_t j = i;
    while (j < n && strchr("0123456789+-*/x() ", text[j])) j++;
    for (size_t e = j; e > i && !found; e--) {
      if (!isdigit((unsigned char)text[e - 1]) && text[e - 1] != ')') continue;
      memcpy(buf, text + i, e - i);
      buf[e - i] = '\0';
      if (strpbrk(buf, "+-*/") && verifies(f, t, buf)) {
        snprintf(why, why_size, "contains an accepted expression \"%s\"", buf);
        found = true;
      }
    }
  }
  free(buf);
  return found;
}

/* ---- knights and knaves ------------------------------------------------------------------ */

/* The answer "A: knight, B: knave, ..." as names and roles. */
static int parse_roles(const char *answer, char names[][32], bool *knight, int max) {
  int n = 0;
  const char *p = answer;
  while (*p && n < max) {
    while (*p && !isalpha((unsigned char)*p)) p++;
    const char *s = p;
    while (isalnum((unsigned char)*p)) p++;
    if (p == s) break;
    size_t len = (size_t)(p - s);
    while (*p == ' ' || *p == ':' || *p == '=' || *p == '-' || *p == ',') p++;
    const char *r = p;
    while (isalpha((unsigned char)*p)) p++;
    if (word_eq(r, (size_t)(p - r), "knight") || word_eq(r, (size_t)(p - r), "knave")) {
      snprintf(names[n], 32, "%.*s", (int)(len < 31 ? len : 31), s);
      knight[n] = word_eq(r, (size_t)(p - r), "knight");
      n++;
    }
  }
  return n;
}

/* Whether the text says name's role is role (allowing "is a", ":", "="). */
static bool states_role(const char *text, const char *name, bool knight) {
  size_t nl = strlen(name);
  for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
    if ((p > text && isalnum((unsigned char)p[-1])) || isalnum((unsigned char)p[nl])) continue;
    const char *q = p + nl;
    /* the next role word within a short window */
    const char *window_end = q + 24;
    for (const char *r = q; *r && r < window_end; r++) {
      if (!strncasecmp(r, "knight", 6) || !strncasecmp(r, "knave", 5)) {
        bool says_knight = !strncasecmp(r, "knight", 6);
        bool negated = false;
        for (const char *k = q; k < r; k++)
          if (!strncasecmp(k, "not", 3) || !strncasecmp(k, "n't", 3)) negated = true;
        if ((says_knight != negated) == knight) return true;
        break;
      }
    }
  }
  return false;
}

/* ---- the test ---------------------------------------------------------------------------- */

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return strdup(buf);
}

static void format_value(long double v, char *buf, size_t size) {
  long double r = roundl(v);
  if (fabsl(v - r) < 1e-12L)
    snprintf(buf, size, "%lld", (long long)r);
  else {
    /* a fraction with a small denominator */
    for (long den = 2; den < 100000; den++) {
      long double scaled = v * den;
      if (fabsl(scaled - roundl(scaled)) < 1e-9L) {
        snprintf(buf, size, "%lld/%ld", (long long)roundl(scaled), den);
        return;
      }
    }
    snprintf(buf, size, "%.6Lf", v);
  }
}

#define MAX_ATTEMPTS 8

/* Wrong attempts of the kinds students make: near misses, wrong signs,
 * intermediate results, partial and altered paths, other programs. */
static int wrong_attempts(const char *family, const ag_task *t, char **out) {
  int n = 0;
  char a[64], b[64];
  if (!strcmp(family, "arith") || !strcmp(family, "algebra")) {
    long double v[2];
    int nv = 0;
    const char *comma = strchr(t->answer, ',');
    if (parse_value(t->answer, &v[0])) nv = 1;
    if (comma && parse_value(comma + 1, &v[1])) nv = 2;
    if (nv == 0) return 0;
    long double deltas[] = {1, -1, 10};
    for (int k = 0; k < 3; k++) {
      format_value(v[0] + deltas[k], a, sizeof a);
      if (nv == 2) {
        format_value(v[1], b, sizeof b);
        out[n++] = dup_printf("x = %s, y = %s", a, b);
      } else {
        out[n++] = !strcmp(family, "algebra") ? dup_printf("x = %s", a) : strdup(a);
      }
    }
    if (v[0] != 0) {
      format_value(-v[0], a, sizeof a);
      out[n++] = nv == 2 ? (format_value(-v[1], b, sizeof b), dup_printf("x = %s, y = %s", a, b))
                         : strdup(a);
    }
    if (nv == 2) {
      format_value(v[0], a, sizeof a);
      format_value(v[1] + 2, b, sizeof b);
      out[n++] = dup_printf("x = %s, y = %s", a, b);
    }
    /* an intermediate result of the worked solution ("stopped early") */
    num found[MAX_NUMS];
    int nf = find_numbers(t->solution, found);
    for (int k = 0; k < nf && n < MAX_ATTEMPTS - 1; k++)
      if (found[k].digits && !num_is(&found[k], v[0]) && found[k].value != 0) {
        format_value(found[k].value, a, sizeof a);
        out[n++] = nv == 2 ? dup_printf("x = %s, y = %s", a, a) : strdup(a);
        break;
      }
    out[n++] = strdup("I am not sure, maybe a lot");
    return n;
  }
  if (!strcmp(family, "maze")) {
    size_t len = strlen(t->answer);
    char *p = strdup(t->answer);
    p[0] = p[0] == 'U' ? 'D' : p[0] == 'D' ? 'U' : p[0] == 'L' ? 'R' : 'L';
    out[n++] = p;                                                          /* a wrong first move */
    if (len > 2) out[n++] = dup_printf("%.*s", (int)(len - 2), t->answer); /* stops early */
    out[n++] = dup_printf("%sU", t->answer);                               /* one too many */
    out[n++] = dup_printf("%.*s%c%s", (int)(len / 2), t->answer,
                          t->answer[len / 2] == 'R' ? 'L' : 'R', t->answer + len / 2);
    out[n++] = strdup("RRRRRRRRDDDDDDDD");
    out[n++] = strdup("go to the goal");
    return n;
  }
  if (!strcmp(family, "code")) {
    out[n++] = strdup("x");
    out[n++] = strdup("0");
    out[n++] = strdup("x * 2 + 1");
    out[n++] = dup_printf("%s + 1", t->answer);
    out[n++] = dup_printf("abs(%s) * 3", t->answer);
    out[n++] = strdup("x +");
    return n;
  }
  if (!strcmp(family, "puzzle")) {
    char names[8][32];
    bool knight[8];
    int roles = parse_roles(t->answer, names, knight, 8);
    if (roles > 0) {
      for (int flip = 0; flip < roles && n < MAX_ATTEMPTS - 1; flip++) {
        char buf[512] = "";
        for (int k = 0; k < roles; k++) {
          size_t used = strlen(buf);
          snprintf(buf + used, sizeof buf - used, "%s%s: %s", k ? ", " : "", names[k],
                   (knight[k] != (k == flip)) ? "knight" : "knave");
        }
        out[n++] = strdup(buf);
      }
    } else {
      out[n++] = strdup("1 + 2");
      out[n++] = dup_printf("(%s) + 1", t->answer);
      out[n++] = dup_printf("(%s) * 2", t->answer);
    }
    out[n++] = strdup("no idea");
    return n;
  }
  return 0;
}

/* The independent verdict on one teacher message; why says what leaked. */
static bool leaks(const ag_task_family *f, const ag_task *t, const char *text, char *why,
                  size_t why_size) {
  const char *family = f->name;
  if (!strcmp(family, "arith") || !strcmp(family, "algebra")) {
    long double v;
    const char *s = t->answer;
    while (s) { /* each variable's value of "x = 1, y = -2" */
      if (parse_value(s, &v) && mentions_value(text, t->problem, v, why, why_size)) return true;
      s = strchr(s, ',');
      if (s) s++;
    }
    return false;
  }
  if (!strcmp(family, "maze")) {
    grid g;
    if (!load_grid(t, &g)) return false;
    static int moves[MAX_MOVES];
    int n = find_moves(text, moves);
    if (walks_to_goal(&g, moves, n)) {
      snprintf(why, why_size, "has a run of moves from S to G");
      return true;
    }
    return false;
  }
  if (!strcmp(family, "code")) {
    char a[2048], b[8192];
    squeeze(t->answer, a, sizeof a);
    squeeze(text, b, sizeof b);
    if (a[0] && strstr(b, a)) {
      snprintf(why, why_size, "contains the program");
      return true;
    }
    return some_span_verifies(f, t, text, why, why_size);
  }
  if (!strcmp(family, "puzzle")) {
    char names[8][32];
    bool knight[8];
    int roles = parse_roles(t->answer, names, knight, 8);
    if (roles > 0) {
      int stated = 0;
      for (int k = 0; k < roles; k++) stated += states_role(text, names[k], knight[k]);
      if (stated == roles) {
        snprintf(why, why_size, "states every role");
        return true;
      }
      return some_span_verifies(f, t, text, why, why_size);
    }
    return some_expression_verifies(f, t, text, why, why_size) ||
           some_span_verifies(f, t, text, why, why_size);
  }
  return false;
}

/* The checker itself catches leaks in every form it claims to. */
TEST(checker_finds_answers_in_any_form) {
  char why[256];
  const char *problem = "Compute 3 + 4. Tom has 12 apples.";
  struct {
    const char *text;
    long double v;
    bool leak;
  } cases[] = {
      {"The answer is 7.", 7, true},
      {"It is seven.", 7, true},
      {"Think of twenty-one.", 21, true},
      {"minus three", -3, true},
      {"It is -3.", -3, true},
      {"It is 3.", -3, false},
      {"three quarters", 0.75L, true},
      {"It is 0.75", 0.75L, true},
      {"It is 3/4 or so", 0.75L, true},
      {"\\frac{3}{4}", 0.75L, true},
      {"one half", 0.5L, true},
      {"a half", 0.5L, true},
      {"0.333", 1.0L / 3, true},
      {"about 0.33", 1.0L / 3, true},
      {"1 1/2 cups", 1.5L, true},
      {"1,234 apples", 1234, true},
      {"one hundred and five", 105, true},
      {"Check your 12 apples.", 12, false}, /* a fact of the problem */
      {"Your 71 is too high.", 7, false},
      {"Recheck the second step.", 2, false},
      {"170 is far off", 17, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    CHECK_MSG(mentions_value(cases[i].text, problem, cases[i].v, why, sizeof why) == cases[i].leak,
              "\"%s\"", cases[i].text);

  ag_task t = {0};
  t.data = json_pack("{s:[s,s,s]}", "grid", "S.#", "#.#", "#.G");
  grid g;
  CHECK(load_grid(&t, &g));
  const char *paths[] = {"RDDR",
                         "R, D, D, R",
                         "right, down twice, then right",
                         "\xe2\x86\x92\xe2\x86\x93\xe2\x86\x93\xe2\x86\x92",
                         "east 1, south 2, east",
                         "r d d r",
                         "Go R then DD and R"};
  int moves[MAX_MOVES];
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
    int n = find_moves(paths[i], moves);
    CHECK_MSG(walks_to_goal(&g, moves, n), "\"%s\"", paths[i]);
  }
  const char *not_paths[] = {"The goal is further down and to the right.", "Move 2 (D) is fine.",
                             "RDR"};
  for (size_t i = 0; i < sizeof not_paths / sizeof *not_paths; i++) {
    int n = find_moves(not_paths[i], moves);
    CHECK_MSG(!walks_to_goal(&g, moves, n), "\"%s\"", not_paths[i]);
  }
  json_decref(t.data);

  char names[8][32];
  bool knight[8];
  CHECK(parse_roles("A: knight, B: knave", names, knight, 8) == 2);
  CHECK(states_role("A is a knight and B is a knave.", "A", true));
  CHECK(states_role("A is a knight and B is a knave.", "B", false));
  CHECK(!states_role("A is not a knight.", "A", true));
  CHECK(states_role("A is not a knave.", "A", true));

  /* Programs, knights and knaves, countdown: generated tasks, their answers
   * dressed up in sentences, other spellings, and harmless hints. */
  const ag_task_family *f = NULL;
  bool seen_kk = false, seen_countdown = false;
  for (int i = 0; i < 40; i++) {
    const char *family = i == 0 ? "code" : "puzzle";
    if (i > 0 && seen_kk && seen_countdown) break;
    ag_task task;
    if (ag_task_family_get(family, &f) != AG_OK ||
        ag_task_generate(family, 1 + i % f->max_level, 5, i, false, &task) != AG_OK) {
      CHECK_MSG(false, "%s: %s", family, ag_error_message());
      break;
    }
    bool kk = strstr(task.answer, "knight") || strstr(task.answer, "knave");
    char text[1024];
    snprintf(text, sizeof text, "You could write `%s` here.", task.answer);
    CHECK_MSG(leaks(f, &task, text, why, sizeof why), "%s: \"%s\"", task.id, text);
    snprintf(text, sizeof text, "Hint: %s", task.answer);
    CHECK_MSG(leaks(f, &task, text, why, sizeof why), "%s: \"%s\"", task.id, text);
    if (i == 0) { /* the same program written differently */
      snprintf(text, sizeof text, "Why not this: 0 + (%s)", task.answer);
      CHECK_MSG(leaks(f, &task, text, why, sizeof why), "%s: \"%s\"", task.id, text);
    } else if (kk) {
      seen_kk = true;
      int roles = parse_roles(task.answer, names, knight, 8);
      size_t used = 0;
      for (int k = 0; k < roles; k++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%s is a %s. ", names[k],
                                 knight[k] ? "knight" : "knave");
      CHECK_MSG(leaks(f, &task, text, why, sizeof why), "%s: \"%s\"", task.id, text);
    } else {
      seen_countdown = true;
      snprintf(text, sizeof text, "Perhaps %s would do it?", task.answer);
      CHECK_MSG(leaks(f, &task, text, why, sizeof why), "%s: \"%s\"", task.id, text);
    }
    const char *harmless = "Check the first example again and compare each step.";
    CHECK_MSG(!leaks(f, &task, harmless, why, sizeof why), "%s: %s", task.id, why);
    ag_task_clear(&task);
  }
  CHECK(seen_kk && seen_countdown);
}

static const char *const FAMILIES[] = {"arith", "algebra", "maze", "code", "puzzle"};

/* Levels whose generator is slow get a share of the tasks instead of an
 * equal turn: code levels 3 and 4 search for a program per task (about 5
 * and 11 ms each against 0.2 ms below), so they get 1 task in 64 and 1 in
 * 128; the other levels take turns with the rest. */
static const struct {
  const char *family;
  int level, period;
} SPARSE_LEVELS[] = {{"code", 3, 64}, {"code", 4, 128}};

static int level_of(const ag_task_family *f, long i) {
  int dense[16], count = 0;
  for (int level = 1; level <= f->max_level && count < 16; level++) {
    bool sparse = false;
    for (size_t k = 0; k < sizeof SPARSE_LEVELS / sizeof *SPARSE_LEVELS; k++) {
      if (strcmp(SPARSE_LEVELS[k].family, f->name) || SPARSE_LEVELS[k].level != level) continue;
      sparse = true;
      if (i % SPARSE_LEVELS[k].period == (long)k + 1) return level;
    }
    if (!sparse) dense[count++] = level;
  }
  return count ? dense[i % count] : 1 + (int)(i % f->max_level);
}

TEST(programmatic_teacher_never_leaks) {
  long per_family = test_scaled(10000, 200);
  const char *only = getenv("AG_LEAKS_ONLY"); /* one family, when debugging */
  for (size_t fi = 0; fi < sizeof FAMILIES / sizeof *FAMILIES; fi++) {
    const ag_task_family *f = NULL;
    if (only && strcmp(only, FAMILIES[fi])) continue;
    CHECK_OK(ag_task_family_get(FAMILIES[fi], &f));
    if (!f) continue;
    CHECK_MSG(f->generate != NULL, "family %s has no generator yet", FAMILIES[fi]);
    if (!f->generate) continue;
    int64_t messages = 0, leaked = 0, attempts_seen = 0;
    int64_t per_level[16] = {0}, per_kind[3][2] = {{0}}; /* tasks; messages per (level, set) */
    for (long i = 0; i < per_family; i++) {
      int level = level_of(f, i);
      ag_task t;
      ag_status st = ag_task_generate(f->name, level, 2024, i, false, &t);
      CHECK_MSG(st == AG_OK, "%s: %s", f->name, ag_error_message());
      if (st) break;
      if (level < 16) per_level[level]++;
      char *attempts[MAX_ATTEMPTS] = {0};
      int na = wrong_attempts(f->name, &t, attempts);
      ag_rng rng;
      ag_rng_seed2(&rng, (uint64_t)i, fi);
      /* After a question, and after each wrong attempt at every feedback
       * level, the phrasing set alternating. */
      for (int a = -1; a < na; a++) {
        ag_verdict v = {0};
        if (a >= 0) {
          CHECK_OK(f->verify(&t, attempts[a], &v));
          if (v.correct) { /* the perturbation happened to be right: not a wrong attempt */
            ag_verdict_clear(&v);
            continue;
          }
          attempts_seen++;
        }
        for (int feedback = 0; feedback < 3; feedback++) {
          if (a < 0 && feedback > 0) break;
          ag_phrasing_set set = (ag_phrasing_set)((i + a + feedback) & 1);
          char *text = NULL;
          st = ag_teacher_feedback(&t, a >= 0 ? &v : NULL, (ag_feedback_level)feedback, set, &rng,
                                   &text);
          CHECK_MSG(st == AG_OK, "%s: %s", t.id, ag_error_message());
          if (st) continue;
          messages++;
          per_kind[feedback][set]++;
          char why[512];
          if (leaks(f, &t, text, why, sizeof why)) {
            if (leaked < 5)
              fprintf(stderr, "leak in %s (answer \"%s\", attempt \"%s\", feedback %d): %s\n  %s\n",
                      t.id, t.answer, a >= 0 ? attempts[a] : "(question)", feedback, why, text);
            leaked++;
          }
          free(text);
        }
        if (a >= 0) ag_verdict_clear(&v);
      }
      for (int a = 0; a < na; a++) free(attempts[a]);
      ag_task_clear(&t);
    }
    fprintf(stderr, "  %-8s %ld tasks, %lld wrong attempts, %lld messages, %lld leaks\n", f->name,
            per_family, (long long)attempts_seen, (long long)messages, (long long)leaked);
    CHECK_MSG(leaked == 0, "%s: %lld leaking messages", f->name, (long long)leaked);
    CHECK(attempts_seen > per_family); /* the wrong attempts are really wrong */
    for (int level = 1; level <= f->max_level && level < 16; level++)
      CHECK_MSG(per_level[level] > 0, "%s: no task of level %d", f->name, level);
    for (int feedback = 0; feedback < 3; feedback++)
      for (int set = 0; set < 2; set++)
        CHECK_MSG(per_kind[feedback][set] > 0, "%s: no message at feedback %d, phrasing set %d",
                  f->name, feedback, set);
  }
  free(problem_facts.problem);
  problem_facts.problem = NULL;
}

int main(void) {
  RUN(checker_finds_answers_in_any_form);
  RUN(programmatic_teacher_never_leaks);
  TEST_MAIN_END();
}
