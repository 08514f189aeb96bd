/* Task family "algebra": linear equations a x + b = c x + d and 2x2 linear
 * systems, with integer or fractional solutions. The answer is written
 * "x = 3/4" (or just "3/4"); a system "x = 1, y = -2" in any order.
 * Levels: 1 a x + b = d, integer x; 2 (default) x on both sides, integer
 * x; 3 fractional x or integer systems; 4 systems with fractional
 * solutions, larger coefficients. */
#include "worlds/tasks/task_util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof *(a)))

/* a x + b = c x + d, or two equations a_i x + b_i y = c_i. */
typedef struct algebra_problem {
  bool system;
  int64_t a, b, c, d;
  int64_t eq[2][3];
  int tmpl;
} algebra_problem;

static const char *const linear_sentences[] = {"Solve for x: {eq}.", "Find x if {eq}.",
                                               "Solve {eq} for x."};
static const char *const system_sentences[] = {"Solve the system: {eq1} and {eq2}.",
                                               "Find x and y if {eq1} and {eq2}."};
#define LINEAR_FORMAT "Give your final answer on a line \"Answer: x = <value>\"."
#define SYSTEM_FORMAT "Give your final answer on a line \"Answer: x = <value>, y = <value>\"."
#define FRACTION_HINT "Write a fraction as p/q."

/* ---- rendering -------------------------------------------------------------------- */

/* "3x", "-x", "x"; appended to b with a leading " + " / " - " unless first. */
static void append_term(ag_strbuf *b, int64_t coef, const char *var, bool first) {
  if (coef == 0) return;
  int64_t mag = coef < 0 ? -coef : coef;
  if (first)
    ag_strbuf_printf(b, "%s", coef < 0 ? "-" : "");
  else
    ag_strbuf_printf(b, " %c ", coef < 0 ? '-' : '+');
  if (var && mag == 1)
    ag_strbuf_printf(b, "%s", var);
  else
    ag_strbuf_printf(b, "%lld%s", (long long)mag, var ? var : "");
}

/* "3x + 5", "-7", "x - 2". */
static void append_side(ag_strbuf *b, int64_t coef, int64_t constant) {
  if (coef == 0 && constant == 0) {
    ag_strbuf_printf(b, "0");
    return;
  }
  append_term(b, coef, "x", true);
  append_term(b, constant, NULL, coef == 0);
}

static void append_linear(ag_strbuf *b, const algebra_problem *p) {
  append_side(b, p->a, p->b);
  ag_strbuf_printf(b, " = ");
  append_side(b, p->c, p->d);
}

static void append_equation(ag_strbuf *b, const int64_t e[3]) {
  append_term(b, e[0], "x", true);
  append_term(b, e[1], "y", e[0] == 0);
  if (e[0] == 0 && e[1] == 0) ag_strbuf_printf(b, "0");
  ag_strbuf_printf(b, " = %lld", (long long)e[2]);
}

/* ---- solving ---------------------------------------------------------------------- */

/* Gaussian elimination over exact rationals on the augmented matrix
 * (n, n + 1); false when singular or on overflow. */
static bool eliminate(int n, ag_rational m[2][3], ag_rational *x) {
  for (int col = 0; col < n; col++) {
    int pivot = -1;
    for (int r = col; r < n; r++)
      if (m[r][col].num != 0) {
        pivot = r;
        break;
      }
    if (pivot < 0) return false;
    if (pivot != col)
      for (int k = 0; k <= n; k++) {
        ag_rational t = m[col][k];
        m[col][k] = m[pivot][k];
        m[pivot][k] = t;
      }
    for (int r = 0; r < n; r++) {
      if (r == col || m[r][col].num == 0) continue;
      ag_rational f;
      if (!ag_rational_div(m[r][col], m[col][col], &f)) return false;
      for (int k = col; k <= n; k++) {
        ag_rational t;
        if (!ag_rational_mul(f, m[col][k], &t) || !ag_rational_sub(m[r][k], t, &m[r][k]))
          return false;
      }
    }
  }
  for (int r = 0; r < n; r++)
    if (!ag_rational_div(m[r][n], m[r][r], &x[r])) return false;
  return true;
}

/* The solution from the problem alone: x (and y). */
static bool solve_problem(const algebra_problem *p, ag_rational *x) {
  ag_rational m[2][3];
  if (!p->system) {
    /* (a - c) x = d - b */
    int64_t k, r;
    if (__builtin_sub_overflow(p->a, p->c, &k) || __builtin_sub_overflow(p->d, p->b, &r))
      return false;
    m[0][0] = ag_rational_make(k, 1);
    m[0][1] = ag_rational_make(r, 1);
    return eliminate(1, m, x);
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) m[i][j] = ag_rational_make(p->eq[i][j], 1);
  return eliminate(2, m, x);
}

/* ---- data <-> problem ------------------------------------------------------------- */

static json_t *problem_to_json(const algebra_problem *p) {
  if (!p->system)
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:i}", "kind", "linear", "a", (json_int_t)p->a, "b",
                     (json_int_t)p->b, "c", (json_int_t)p->c, "d", (json_int_t)p->d, "template",
                     p->tmpl);
  return json_pack("{s:s, s:[[I,I,I],[I,I,I]], s:i}", "kind", "system", "equations",
                   (json_int_t)p->eq[0][0], (json_int_t)p->eq[0][1], (json_int_t)p->eq[0][2],
                   (json_int_t)p->eq[1][0], (json_int_t)p->eq[1][1], (json_int_t)p->eq[1][2],
                   "template", p->tmpl);
}

static ag_status problem_from_task(const ag_task *t, algebra_problem *p) {
  memset(p, 0, sizeof *p);
  const char *kind = json_string_value(json_object_get(t->data, "kind"));
  if (kind && !strcmp(kind, "linear")) {
    const char *keys[4] = {"a", "b", "c", "d"};
    int64_t *dst[4] = {&p->a, &p->b, &p->c, &p->d};
    for (int i = 0; i < 4; i++) {
      json_t *v = json_object_get(t->data, keys[i]);
      if (!json_is_integer(v))
        return ag_error_set(AG_ERR_FORMAT, "algebra task %s: data field \"%s\" is not an integer",
                            t->id, keys[i]);
      *dst[i] = json_integer_value(v);
    }
    if (p->a == p->c)
      return ag_error_set(AG_ERR_FORMAT, "algebra task %s: the equation has no unique solution",
                          t->id);
    return AG_OK;
  }
  if (kind && !strcmp(kind, "system")) {
    p->system = true;
    json_t *eqs = json_object_get(t->data, "equations");
    for (int i = 0; i < 2; i++) {
      json_t *row = json_array_get(eqs, (size_t)i);
      if (json_array_size(eqs) != 2 || json_array_size(row) != 3)
        return ag_error_set(AG_ERR_FORMAT, "algebra task %s: \"equations\" must be 2 rows of 3",
                            t->id);
      for (int j = 0; j < 3; j++) {
        json_t *v = json_array_get(row, (size_t)j);
        if (!json_is_integer(v))
          return ag_error_set(AG_ERR_FORMAT, "algebra task %s: equation coefficient not an integer",
                              t->id);
        p->eq[i][j] = json_integer_value(v);
      }
    }
    return AG_OK;
  }
  return ag_error_set(AG_ERR_FORMAT, "algebra task %s: data \"kind\" must be linear or system",
                      t->id);
}

/* ---- generation ------------------------------------------------------------------- */

static int64_t uniform(ag_rng *rng, int64_t lo, int64_t hi) {
  return lo + (int64_t)ag_rng_below(rng, (uint64_t)(hi - lo + 1));
}
static int64_t nonzero(ag_rng *rng, int64_t mag) {
  int64_t v = uniform(rng, 1, mag);
  return ag_rng_below(rng, 2) ? v : -v;
}

/* Draws a problem for the level; false to draw again. */
static bool draw_problem(int level, ag_rng *rng, algebra_problem *p) {
  memset(p, 0, sizeof *p);
  bool system = level == 4 ? ag_rng_below(rng, 10) < 7 : level == 3 ? ag_rng_below(rng, 2) : false;
  p->system = system;
  if (!system) {
    p->tmpl = (int)ag_rng_below(rng, COUNT_OF(linear_sentences));
    if (level == 1) {
      int64_t x = uniform(rng, 1, 12);
      p->a = uniform(rng, 2, 9);
      p->b = uniform(rng, 1, 30);
      p->c = 0;
      p->d = p->a * x + p->b;
    } else if (level == 2) {
      int64_t x = uniform(rng, -10, 10);
      p->a = nonzero(rng, 9);
      p->c = ag_rng_below(rng, 4) ? nonzero(rng, 9) : 0;
      p->b = uniform(rng, -20, 20);
      p->d = (p->a - p->c) * x + p->b;
      if (p->d < -99 || p->d > 99) return false;
    } else {
      int64_t mag = level == 3 ? 9 : 20;
      p->a = nonzero(rng, mag);
      p->c = ag_rng_below(rng, 4) ? nonzero(rng, mag) : 0;
      p->b = uniform(rng, -30, 30);
      p->d = uniform(rng, -30, 30);
    }
    return p->a != p->c;
  }
  p->tmpl = (int)ag_rng_below(rng, COUNT_OF(system_sentences));
  if (level == 3) {
    int64_t x = uniform(rng, -9, 9), y = uniform(rng, -9, 9);
    for (int i = 0; i < 2; i++) {
      p->eq[i][0] = nonzero(rng, 6);
      p->eq[i][1] = nonzero(rng, 6);
      p->eq[i][2] = p->eq[i][0] * x + p->eq[i][1] * y;
    }
  } else {
    for (int i = 0; i < 2; i++) {
      p->eq[i][0] = nonzero(rng, 9);
      p->eq[i][1] = nonzero(rng, 9);
      p->eq[i][2] = uniform(rng, -30, 30);
    }
  }
  return p->eq[0][0] * p->eq[1][1] - p->eq[1][0] * p->eq[0][1] != 0;
}

static void render_template(ag_strbuf *b, const char *tmpl, const algebra_problem *p) {
  for (const char *s = tmpl; *s;) {
    if (!strncmp(s, "{eq}", 4)) {
      append_linear(b, p);
      s += 4;
    } else if (!strncmp(s, "{eq1}", 5) || !strncmp(s, "{eq2}", 5)) {
      append_equation(b, p->eq[s[3] - '1']);
      s += 5;
    } else {
      size_t n = strcspn(s + 1, "{") + 1;
      ag_strbuf_append(b, s, n);
      s += n;
    }
  }
}

static char *render_problem(const algebra_problem *p, int level) {
  ag_strbuf b = {0};
  render_template(&b, p->system ? system_sentences[p->tmpl] : linear_sentences[p->tmpl], p);
  if (level >= 3) ag_strbuf_printf(&b, " %s", FRACTION_HINT);
  ag_strbuf_printf(&b, " %s", p->system ? SYSTEM_FORMAT : LINEAR_FORMAT);
  return ag_strbuf_take(&b);
}

static void format_answer(const algebra_problem *p, const ag_rational *x, char *buf, size_t size) {
  char u[48], v[48];
  if (p->system)
    snprintf(buf, size, "x = %s, y = %s", ag_rational_format(x[0], u, sizeof u),
             ag_rational_format(x[1], v, sizeof v));
  else
    snprintf(buf, size, "x = %s", ag_rational_format(x[0], u, sizeof u));
}

/* Worked steps: collect terms and divide, or eliminate y and substitute. */
static char *render_solution(const algebra_problem *p, const ag_rational *x) {
  ag_strbuf b = {0};
  char u[48], v[48], answer[128];
  if (!p->system) {
    append_linear(&b, p);
    ag_strbuf_printf(&b, "\n");
    /* a x - c x = d - b */
    append_term(&b, p->a, "x", true);
    append_term(&b, -p->c, "x", false);
    ag_strbuf_printf(&b, " = ");
    if (p->d == 0 && p->b != 0) {
      append_term(&b, -p->b, NULL, true);
    } else {
      ag_strbuf_printf(&b, "%lld", (long long)p->d);
      append_term(&b, -p->b, NULL, false);
    }
    ag_strbuf_printf(&b, "\n");
    append_term(&b, p->a - p->c, "x", true);
    ag_strbuf_printf(&b, " = %lld\n", (long long)(p->d - p->b));
  } else {
    const int64_t *e1 = p->eq[0], *e2 = p->eq[1];
    append_equation(&b, e1);
    ag_strbuf_printf(&b, " and ");
    append_equation(&b, e2);
    ag_strbuf_printf(&b, "\n");
    /* Multiply the first by b2 and the second by b1 and subtract. */
    int64_t det = e1[0] * e2[1] - e2[0] * e1[1], rhs = e1[2] * e2[1] - e2[2] * e1[1];
    ag_strbuf_printf(&b,
                     "Multiply the first equation by %lld and the second by %lld, then subtract: ",
                     (long long)e2[1], (long long)e1[1]);
    append_term(&b, det, "x", true);
    ag_strbuf_printf(&b, " = %lld\n", (long long)rhs);
    ag_strbuf_printf(&b, "x = %s\n", ag_rational_format(x[0], u, sizeof u));
    /* b1 y = c1 - a1 x */
    ag_rational ax, rest;
    if (ag_rational_mul(ag_rational_make(e1[0], 1), x[0], &ax) &&
        ag_rational_sub(ag_rational_make(e1[2], 1), ax, &rest)) {
      ag_strbuf_printf(&b, "Substitute into the first equation: ");
      append_term(&b, e1[1], "y", true);
      bool minus = ax.num >= 0;
      ax.num = minus ? ax.num : -ax.num;
      ag_strbuf_printf(&b, " = %lld %c %s = %s\n", (long long)e1[2], minus ? '-' : '+',
                       ag_rational_format(ax, u, sizeof u), ag_rational_format(rest, v, sizeof v));
    }
    ag_strbuf_printf(&b, "y = %s\n", ag_rational_format(x[1], u, sizeof u));
  }
  if (!p->system && p->a - p->c != 1)
    ag_strbuf_printf(&b, "x = %s\n", ag_rational_format(x[0], u, sizeof u));
  format_answer(p, x, answer, sizeof answer);
  ag_strbuf_printf(&b, "Answer: %s", answer);
  return ag_strbuf_take(&b);
}

static ag_status algebra_generate(int level, uint64_t seed, int64_t index, ag_task *out) {
  memset(out, 0, sizeof *out);
  if (level < 1 || level > 4)
    return ag_error_set(AG_ERR_INVALID, "algebra: level %d is not in 1..4", level);
  ag_rng rng;
  ag_task_rng(&rng, "algebra", level, seed, index);
  for (int tries = 0; tries < 1000; tries++) {
    algebra_problem p;
    ag_rational x[2];
    if (!draw_problem(level, &rng, &p) || !solve_problem(&p, x)) continue;
    char *problem = render_problem(&p, level);
    if (!problem) return ag_error_wrap(AG_ERR_NOMEM, "algebra: ");
    /* A solution value the problem states would make restating the
     * problem a leak: draw again. */
    bool stated = ag_text_mentions_value(problem, x[0]) ||
                  (p.system && ag_text_mentions_value(problem, x[1]));
    if (stated) {
      free(problem);
      continue;
    }
    char answer[128];
    format_answer(&p, x, answer, sizeof answer);
    char *solution = render_solution(&p, x);
    json_t *data = problem_to_json(&p);
    ag_status st = solution && data ? ag_task_fill(out, "algebra", level, seed, index, problem,
                                                   answer, solution, data)
                                    : ag_error_set(AG_ERR_NOMEM, "algebra: out of memory");
    if (!solution) json_decref(data);
    free(problem);
    free(solution);
    return st;
  }
  return ag_error_set(AG_ERR_INTERNAL, "algebra: no task found for level %d seed %llu index %lld",
                      level, (unsigned long long)seed, (long long)index);
}

/* ---- reading attempts ------------------------------------------------------------- */

/* "x = 1, y = -2", "y=-2; x=1", "(1, -2)", "x = 1 and y = -2", "3/4": the
 * values by variable (x, y in that order when unnamed). false when the
 * text is not of that form. */
static bool parse_assignments(const char *text, int nvars, ag_rational *values) {
  char buf[256];
  size_t n = strlen(text);
  if (n >= sizeof buf) return false;
  memcpy(buf, text, n + 1);
  /* Strip one pair of surrounding parentheses and a final period. */
  char *s = buf;
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) e--;
  if (e > s && e[-1] == '.') e--;
  *e = '\0';
  if (*s == '(' && e > s && e[-1] == ')') {
    s++;
    e[-1] = '\0';
  }
  /* " and " separates like a comma. */
  for (char *a = strstr(s, " and "); a; a = strstr(a, " and ")) memcpy(a, "  ;  ", 5);
  char *parts[3];
  int count = 0;
  char *save = NULL;
  for (char *part = strtok_r(s, ",;", &save); part; part = strtok_r(NULL, ",;", &save)) {
    if (count == 3) return false;
    parts[count++] = part;
  }
  if (count != nvars) return false;
  bool assigned[2] = {false, false};
  ag_rational pending[3];
  int unnamed_count = 0;
  for (int i = 0; i < count; i++) {
    char *q = parts[i];
    while (isspace((unsigned char)*q)) q++;
    ag_rational v;
    if (isalpha((unsigned char)q[0])) {
      char *t = q + 1;
      while (isspace((unsigned char)*t)) t++;
      if (*t != '=') return false;
      int var = q[0] == 'x' ? 0 : q[0] == 'y' ? 1 : -1;
      if (var < 0 || var >= nvars || assigned[var] || !ag_parse_number(t + 1, &v)) return false;
      assigned[var] = true;
      values[var] = v;
    } else {
      if (!ag_parse_number(q, &v)) return false;
      pending[unnamed_count++] = v; /* placed below */
    }
  }
  /* Unnamed values fill the unassigned variables in order. */
  int next = 0;
  for (int var = 0; var < nvars && next < unnamed_count; var++)
    if (!assigned[var]) {
      values[var] = pending[next++];
      assigned[var] = true;
    }
  for (int var = 0; var < nvars; var++)
    if (!assigned[var]) return false;
  return true;
}

/* ---- verification ----------------------------------------------------------------- */

static int compare(ag_rational a, ag_rational b) {
  long double x = (long double)a.num / (long double)a.den;
  long double y = (long double)b.num / (long double)b.den;
  return x < y ? -1 : x > y ? 1 : 0;
}

static json_t *rational_json(ag_rational r) {
  char buf[48];
  return json_string(ag_rational_format(r, buf, sizeof buf));
}

/* Typical slips on a x + b = c x + d: the constant or x term moved without
 * changing sign, dividing the wrong way, not dividing. */
static const char *linear_slip(const algebra_problem *p, ag_rational attempt, int *step) {
  ag_rational k = ag_rational_make(p->a - p->c, 1), m = ag_rational_make(p->d - p->b, 1), r;
  struct {
    int64_t num, den;
    const char *slip;
    int step;
  } cands[] = {{p->d + p->b, p->a - p->c, "constant_sign", 1},
               {p->d - p->b, p->a + p->c, "x_term_sign", 1},
               {p->a - p->c, p->d - p->b, "inverted_division", 2},
               {p->d - p->b, 1, "no_division", 2}};
  for (int i = 0; i < 4; i++) {
    if (cands[i].den == 0) continue;
    r = ag_rational_make(cands[i].num, cands[i].den);
    ag_rational right;
    if (!ag_rational_div(m, k, &right) || ag_rational_equal(r, right)) continue;
    if (ag_rational_equal(r, attempt)) {
      *step = cands[i].step;
      return cands[i].slip;
    }
  }
  return NULL;
}

/* LHS - RHS of equation row (or the linear equation) at the attempt. */
static bool residual(const int64_t coef[3], ag_rational x, ag_rational y, ag_rational *out) {
  ag_rational t1, t2, s;
  return ag_rational_mul(ag_rational_make(coef[0], 1), x, &t1) &&
         ag_rational_mul(ag_rational_make(coef[1], 1), y, &t2) && ag_rational_add(t1, t2, &s) &&
         ag_rational_sub(s, ag_rational_make(coef[2], 1), out);
}

static ag_status algebra_verify(const ag_task *task, const char *attempt, ag_verdict *out) {
  memset(out, 0, sizeof *out);
  algebra_problem p;
  ag_status st = problem_from_task(task, &p);
  if (st) return st;
  int nvars = p.system ? 2 : 1;
  ag_rational answer[2], value[2];
  if (!parse_assignments(task->answer, nvars, answer))
    return ag_error_set(AG_ERR_FORMAT, "algebra task %s: answer \"%s\" is malformed", task->id,
                        task->answer);
  char *line = ag_first_line(attempt);
  if (!line) return ag_error_set(AG_ERR_NOMEM, "algebra: out of memory");
  bool parsed = parse_assignments(line, nvars, value);
  free(line);
  if (!parsed) return ag_verdict_init(out, false, false, "unparsed");
  bool all = true;
  for (int i = 0; i < nvars; i++) all = all && ag_rational_equal(value[i], answer[i]);
  if (all) return ag_verdict_init(out, true, true, "correct");
  if ((st = ag_verdict_init(out, false, true, "wrong_value"))) return st;
  json_t *d = out->diagnostics, *vars = json_object();
  json_object_set_new(d, "variables", vars);
  static const char *const names[2] = {"x", "y"};
  for (int i = 0; i < nvars; i++) {
    bool right = ag_rational_equal(value[i], answer[i]);
    json_t *v = json_object();
    json_object_set_new(vars, names[i], v);
    json_object_set_new(v, "attempt", rational_json(value[i]));
    json_object_set_new(v, "correct", json_boolean(right));
    if (!right) {
      json_object_set_new(v, "direction",
                          json_string(compare(value[i], answer[i]) > 0 ? "too_high" : "too_low"));
      json_object_set_new(v, "sign_error",
                          json_boolean(answer[i].num != 0 && value[i].num == -answer[i].num &&
                                       value[i].den == answer[i].den));
    }
  }
  if (!p.system) {
    json_t *x = json_object_get(vars, "x");
    json_object_set(d, "direction", json_object_get(x, "direction"));
    json_object_set(d, "sign_error", json_object_get(x, "sign_error"));
    int64_t row[3] = {p.a - p.c, 0, p.d - p.b};
    ag_rational r;
    if (residual(row, value[0], ag_rational_make(0, 1), &r))
      json_object_set_new(d, "residual", rational_json(r));
    int step = 0;
    const char *slip = linear_slip(&p, value[0], &step);
    if (slip) {
      json_object_set_new(d, "slip", json_string(slip));
      json_object_set_new(d, "first_wrong_step", json_integer(step));
    }
  } else {
    json_t *res = json_array(), *sat = json_array();
    json_object_set_new(d, "residuals", res);
    json_object_set_new(d, "equations_satisfied", sat);
    for (int i = 0; i < 2; i++) {
      ag_rational r;
      bool ok = residual(p.eq[i], value[0], value[1], &r);
      json_array_append_new(res, ok ? rational_json(r) : json_null());
      json_array_append_new(sat, json_boolean(ok && r.num == 0));
    }
  }
  return AG_OK;
}

/* ---- feedback --------------------------------------------------------------------- */

/* First half training, second half held out. No numbers, no number words
 * (not even "one side"), so no phrasing can state an answer. */
static const char *const too_high_phrasings[] = {"Your value of {v} is too high.",
                                                 "Your {v} is larger than it should be.",
                                                 "The {v} you found is too big.",
                                                 "Try a smaller value for {v}.",
                                                 "Your {v} overshoots; the true value is lower.",
                                                 "{V} should come out lower than that.",
                                                 "That value of {v} is above the solution.",
                                                 "Aim lower for {v}."};
static const char *const too_low_phrasings[] = {"Your value of {v} is too low.",
                                                "Your {v} is smaller than it should be.",
                                                "The {v} you found is too small.",
                                                "Try a larger value for {v}.",
                                                "Your {v} falls short; the true value is higher.",
                                                "{V} should come out higher than that.",
                                                "That value of {v} is below the solution.",
                                                "Aim higher for {v}."};
static const char *const sign_phrasings[] = {
    "Check the sign of {v}.",
    "Your {v} has the wrong sign.",
    "Is {v} positive or negative? Look again.",
    "The sign of your {v} is off.",
    "Think again about the sign of {v}.",
    "Recheck whether {v} should be negative or positive.",
    "Your value of {v} points the wrong way: check its sign.",
    "Look at the sign of {v} once more."};
static const char *const right_phrasings[] = {"Your {v} is right.",
                                              "You have {v} correct.",
                                              "{V} is fine.",
                                              "Your value of {v} checks out.",
                                              "Your {v} is correct.",
                                              "{V} is right as it is.",
                                              "Keep your {v}; it is correct.",
                                              "The value you have for {v} works."};
static const char *const constant_phrasings[] = {
    "Recheck how you moved the constant term: it changes sign when it crosses the equals sign.",
    "When you move a number to the other side, flip its sign.",
    "Look again at the constants: moving them across the equals sign changes their sign.",
    "The constant term went to the other side without changing sign.",
    "A term that crosses the equals sign must change sign; check the constants.",
    "Check the step where you collect the constants on the right.",
    "Your constants are off: subtract, do not add, when you move them.",
    "Recheck the sign of the constant you moved."};
static const char *const xterm_phrasings[] = {
    "Recheck how you gathered the x terms: a term that crosses the equals sign changes sign.",
    "When you move an x term to the other side, flip its sign.",
    "Look again at the step where you collect the x terms on the left.",
    "The x term from the right side went over without changing sign.",
    "Check the coefficient of x after you bring the x terms together.",
    "Your x terms are combined with the wrong sign.",
    "Collect the x terms again, minding the sign of the term you move.",
    "Recheck the coefficient of x you get after moving terms."};
static const char *const divide_phrasings[] = {
    "Recheck the last step: divide the constant by the coefficient of x.",
    "Look at your final division: which number goes on top?",
    "You still need to divide by the coefficient of x.",
    "Check the step where you isolate x by dividing.",
    "In the last step, divide both sides by the number in front of x.",
    "Your division at the end is the wrong way round or missing.",
    "Isolate x properly: divide by its coefficient.",
    "The final step, getting x alone, needs another look."};
static const char *const left_larger_phrasings[] = {
    "Substitute your value back in: the left side comes out larger than the right.",
    "Plug your x into the equation: the left side is bigger than the right.",
    "With your value, the left side exceeds the right side.",
    "Check by substituting: the left side ends up too large.",
    "If you put your x back in, the left side is greater than the right.",
    "Your value makes the left side bigger than the right side.",
    "Try your x in the equation: the left side comes out larger.",
    "Substitution shows the left side is larger; the equation does not hold."};
static const char *const left_smaller_phrasings[] = {
    "Substitute your value back in: the left side comes out smaller than the right.",
    "Plug your x into the equation: the left side is smaller than the right.",
    "With your value, the left side falls below the right side.",
    "Check by substituting: the left side ends up too small.",
    "If you put your x back in, the left side is less than the right.",
    "Your value makes the left side smaller than the right side.",
    "Try your x in the equation: the left side comes out smaller.",
    "Substitution shows the left side is smaller; the equation does not hold."};
static const char *const fits_phrasings[] = {
    "Your values satisfy the {good} equation but not the {bad}.",
    "The {good} equation holds with your values; the {bad} does not.",
    "Substitute into the {bad} equation: it does not hold.",
    "Check the {bad} equation with your values; it fails.",
    "Your pair works in the {good} equation, not in the {bad}.",
    "The {bad} equation is not satisfied by your values.",
    "Only the {good} equation holds; recheck the {bad}.",
    "Plug your values into the {bad} equation: the sides differ."};
static const char *const neither_phrasings[] = {
    "Your values satisfy neither equation; substitute them back to check.",
    "Neither equation holds with your values.",
    "Plug your values into both equations: neither balances.",
    "Recheck the elimination step: your values fail both equations.",
    "Both equations fail with your values.",
    "Substituting your values, neither side matches in either equation.",
    "Your pair does not fit either equation.",
    "Check your elimination: neither equation is satisfied."};
static const char *const unparsed_phrasings[] = {
    "Write your answer as {form} after \"Answer:\".",
    "I could not read your answer; use the form {form}.",
    "Give the answer in the form {form}.",
    "Your final line should look like {form}.",
    "Please answer in the form {form}.",
    "Use the form {form} on the Answer line.",
    "State your result as {form}.",
    "I need an answer shaped like {form}."};

#define PICK(list) ag_pick_phrasing(list, COUNT_OF(list), set, rng)

/* Appends tmpl with {v}/{V} (a variable), {good}/{bad} (ordinals) and
 * {form} filled. */
static void fill(ag_strbuf *b, const char *tmpl, const char *var, const char *good, const char *bad,
                 const char *form) {
  for (const char *s = tmpl; *s;) {
    if (!strncmp(s, "{v}", 3) || !strncmp(s, "{V}", 3)) {
      ag_strbuf_printf(b, "%s", var);
      s += 3;
    } else if (!strncmp(s, "{good}", 6)) {
      ag_strbuf_printf(b, "%s", good);
      s += 6;
    } else if (!strncmp(s, "{bad}", 5)) {
      ag_strbuf_printf(b, "%s", bad);
      s += 5;
    } else if (!strncmp(s, "{form}", 6)) {
      ag_strbuf_printf(b, "%s", form);
      s += 6;
    } else {
      size_t n = strcspn(s + 1, "{") + 1;
      ag_strbuf_append(b, s, n);
      s += n;
    }
  }
}

/* The directional sentence for one variable. */
static void directional(ag_strbuf *b, const json_t *v, const char *name, ag_phrasing_set set,
                        ag_rng *rng) {
  const char *tmpl;
  if (json_is_true(json_object_get(v, "correct")))
    tmpl = PICK(right_phrasings);
  else if (json_is_true(json_object_get(v, "sign_error")))
    tmpl = PICK(sign_phrasings);
  else if (json_string_value(json_object_get(v, "direction")) &&
           !strcmp(json_string_value(json_object_get(v, "direction")), "too_high"))
    tmpl = PICK(too_high_phrasings);
  else
    tmpl = PICK(too_low_phrasings);
  fill(b, tmpl, name, "", "", "");
}

static ag_status algebra_feedback(const ag_task *task, const ag_verdict *verdict,
                                  ag_feedback_level level, ag_phrasing_set set, ag_rng *rng,
                                  char **out) {
  *out = NULL;
  algebra_problem p;
  ag_status st = problem_from_task(task, &p);
  if (st) return st;
  json_t *d = verdict->diagnostics;
  const char *kind = json_string_value(json_object_get(d, "kind"));
  if (!kind)
    return ag_error_set(AG_ERR_INVALID,
                        "algebra feedback on task %s: the verdict has no diagnostics", task->id);
  ag_strbuf b = {0};
  if (!strcmp(kind, "correct")) {
    ag_strbuf_printf(&b, "That is correct.");
  } else if (!strcmp(kind, "unparsed")) {
    fill(&b, PICK(unparsed_phrasings), "", "", "",
         p.system ? "\"x = <value>, y = <value>\"" : "\"x = <value>\"");
  } else if (!p.system) {
    json_t *x = json_object_get(json_object_get(d, "variables"), "x");
    const char *slip = json_string_value(json_object_get(d, "slip"));
    const char *res = json_string_value(json_object_get(d, "residual"));
    if (level != AG_FEEDBACK_LOCALISED) {
      directional(&b, x, "x", set, rng);
    } else if (slip && !strcmp(slip, "constant_sign")) {
      ag_strbuf_printf(&b, "%s", PICK(constant_phrasings));
    } else if (slip && !strcmp(slip, "x_term_sign")) {
      ag_strbuf_printf(&b, "%s", PICK(xterm_phrasings));
    } else if (slip) {
      ag_strbuf_printf(&b, "%s", PICK(divide_phrasings));
    } else {
      /* Where it fails: which side comes out larger with the attempt. */
      ag_rational r;
      bool larger = res && ag_parse_number(res, &r) && r.num > 0;
      ag_strbuf_printf(&b, "%s",
                       larger ? PICK(left_larger_phrasings) : PICK(left_smaller_phrasings));
    }
  } else {
    json_t *vars = json_object_get(d, "variables");
    json_t *vx = json_object_get(vars, "x"), *vy = json_object_get(vars, "y");
    directional(&b, vx, "x", set, rng);
    ag_strbuf_printf(&b, " ");
    directional(&b, vy, "y", set, rng);
    if (level == AG_FEEDBACK_LOCALISED) {
      json_t *sat = json_object_get(d, "equations_satisfied");
      bool s0 = json_is_true(json_array_get(sat, 0)), s1 = json_is_true(json_array_get(sat, 1));
      ag_strbuf_printf(&b, " ");
      if (s0 != s1)
        fill(&b, PICK(fits_phrasings), "", s0 ? "first" : "second", s0 ? "second" : "first", "");
      else
        ag_strbuf_printf(&b, "%s", PICK(neither_phrasings));
    }
  }
  *out = ag_strbuf_take(&b);
  return *out ? AG_OK : AG_ERR_NOMEM;
}

/* ---- leaks, solving, shards ------------------------------------------------------- */

static bool algebra_leaks(const ag_task *task, const char *text) {
  ag_rational v[2];
  int n = json_array_size(json_object_get(task->data, "equations")) == 2 ? 2 : 1;
  if (!parse_assignments(task->answer, n, v)) return text && strstr(text, task->answer) != NULL;
  for (int i = 0; i < n; i++)
    if (ag_text_mentions_value(text, v[i])) return true;
  return false;
}

static ag_status algebra_solve(const ag_task *task, char **answer) {
  *answer = NULL;
  algebra_problem p;
  ag_status st = problem_from_task(task, &p);
  if (st) return st;
  ag_rational x[2];
  if (!solve_problem(&p, x))
    return ag_error_set(AG_ERR_FORMAT, "algebra task %s: no unique solution", task->id);
  char buf[128];
  format_answer(&p, x, buf, sizeof buf);
  *answer = strdup(buf);
  return *answer ? AG_OK : ag_error_set(AG_ERR_NOMEM, "algebra: out of memory");
}

static ag_status add_shard_built(ag_task *t, ag_strbuf *b, bool required) {
  char *text = ag_strbuf_take(b);
  if (!text) return AG_ERR_NOMEM;
  ag_status st = ag_task_add_shard(t, text, required);
  free(text);
  return st;
}

static ag_status algebra_shard(ag_task *task) {
  algebra_problem p;
  ag_status st = problem_from_task(task, &p);
  if (st) return st;
  for (int i = 0; i < task->shard_count; i++) free(task->shards[i].text);
  free(task->shards);
  task->shards = NULL;
  task->shard_count = 0;
  ag_strbuf b = {0};
  if (!p.system) {
    ag_strbuf_printf(&b, "I need to solve a linear equation for x. %s", LINEAR_FORMAT);
    if ((st = add_shard_built(task, &b, false))) return st;
    ag_strbuf_printf(&b, "The left side of the equation is ");
    append_side(&b, p.a, p.b);
    ag_strbuf_printf(&b, ".");
    if ((st = add_shard_built(task, &b, true))) return st;
    ag_strbuf_printf(&b, "The right side of the equation is ");
    append_side(&b, p.c, p.d);
    ag_strbuf_printf(&b, ".");
    if ((st = add_shard_built(task, &b, true))) return st;
    ag_strbuf_printf(&b, "The unknown appears only to the first power.");
    return add_shard_built(task, &b, false);
  }
  ag_strbuf_printf(&b, "I need to find x and y from a pair of linear equations. %s", SYSTEM_FORMAT);
  if ((st = add_shard_built(task, &b, false))) return st;
  for (int i = 0; i < 2; i++) {
    ag_strbuf_printf(&b, "The %s equation is ", i ? "second" : "first");
    append_equation(&b, p.eq[i]);
    ag_strbuf_printf(&b, ".");
    if ((st = add_shard_built(task, &b, true))) return st;
  }
  ag_strbuf_printf(&b, "Both equations are linear in x and y.");
  return add_shard_built(task, &b, false);
}

const ag_task_family ag_task_family_algebra = {
    "algebra",
    "linear equations and 2x2 systems, integer or fractional solutions (levels 1-4)",
    4,
    2,
    algebra_generate,
    algebra_verify,
    algebra_feedback,
    algebra_leaks,
    algebra_solve,
    algebra_shard};
