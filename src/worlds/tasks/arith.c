/* Task family "arith": multi-step arithmetic, as an expression ("Compute
 * (37 + 12) * 4 - 19.") or a templated word problem ("Tom has 37 apples. He
 * buys 12 more. ..."). Both are a chain: a start value and steps "op
 * operand" applied in order, so a mistake can be located at a step.
 * Difficulty grows with the number of steps and digits; answers are
 * integers by construction (division only where it is exact). */
#include "worlds/tasks/task_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ARITH_MAX_STEPS 5
#define ARITH_FORMAT    "Give your final answer on a line \"Answer: <number>\"."

typedef struct arith_step {
  char op; /* + - * / */
  int64_t value;
  int tmpl; /* word problems: which sentence template */
} arith_step;

typedef struct arith_problem {
  bool word;
  int64_t start;
  int count;
  arith_step steps[ARITH_MAX_STEPS];
  /* word problems */
  const char *name, *pronoun, *item;
  int start_tmpl, question_tmpl;
  int flavour;   /* -1: none */
  int expr_tmpl; /* expressions: "Compute", "What is", ... */
} arith_problem;

/* Per level: steps, operand ranges, which operations. Level 2 (the
 * default) stays small enough for a tiny model trained from scratch. */
typedef struct arith_level {
  int steps_min, steps_max;
  int64_t start_min, start_max;
  int64_t add_max; /* operands of + and - */
  int64_t mul_max; /* operands of * (0: no multiplication) */
  int max_muls;
  int64_t div_max; /* divisors (0: no division) */
  bool negatives;  /* expressions may go below zero */
  int64_t value_max;
} arith_level;

static const arith_level levels[5] = {
    {1, 2, 2, 20, 20, 0, 0, 0, false, 100},
    {2, 2, 2, 50, 50, 5, 1, 0, false, 1000},
    {3, 3, 10, 99, 99, 9, 1, 9, true, 10000},
    {3, 4, 10, 999, 999, 12, 2, 12, true, 100000},
    {4, 5, 100, 9999, 9999, 99, 2, 12, true, 10000000},
};

/* ---- word-problem templates ------------------------------------------------------- */

static const char *const boy_names[] = {"Tom", "Sam", "Leo", "Ben", "Max", "Raj"};
static const char *const girl_names[] = {"Ana", "Mia", "Zoe", "Eva", "Lily", "Nora"};
static const char *const items[] = {"apples", "marbles", "stickers", "coins",  "books",
                                    "shells", "cards",   "pencils",  "stamps", "beads"};
#define COUNT_OF(a) ((int)(sizeof(a) / sizeof *(a)))

static const char *const start_sentences[] = {
    "{N} has {a} {items}.", "{N} starts with {a} {items}.", "{N} collects {a} {items}."};
static const char *const question_sentences[] = {"How many {items} does {N} have now?",
                                                 "How many {items} does {N} have at the end?"};
/* Sentence and the matching clause for localised feedback, per operation. */
typedef struct word_step_template {
  const char *sentence, *clause;
} word_step_template;
static const word_step_template add_templates[] = {
    {"{P} buys {b} more.", "where {N} buys {b} more"},
    {"{P} finds {b} more.", "where {N} finds {b} more"},
    {"A friend gives {O} {b} more.", "where a friend gives {N} {b} more"}};
static const word_step_template sub_templates[] = {
    {"{P} gives away {b}.", "where {N} gives away {b}"},
    {"{P} loses {b}.", "where {N} loses {b}"},
    {"{P} sells {b}.", "where {N} sells {b}"}};
static const word_step_template mul_templates[] = {
    {"Then {p} ends up with {b} times as many {items}.",
     "where {N} ends up with {b} times as many"},
    {"Then the number of {items} {p} has becomes {b} times as large.",
     "where the number of {items} becomes {b} times as large"}};
static const word_step_template div_templates[] = {
    {"{P} splits them into {b} equal groups and keeps just a single group.",
     "where {N} splits them into {b} equal groups"},
    {"{P} divides them into {b} equal piles and keeps a single pile.",
     "where {N} divides them into {b} equal piles"}};
static const char *const flavour_sentences[] = {"{N} keeps the {items} in a box.",
                                                "The {items} are all different colours.",
                                                "{N} likes to count them every evening."};
static const char *const expr_sentences[] = {"Compute {e}.", "What is {e}?", "Evaluate {e}."};

static const word_step_template *step_templates(char op, int *count) {
  switch (op) {
  case '+': *count = COUNT_OF(add_templates); return add_templates;
  case '-': *count = COUNT_OF(sub_templates); return sub_templates;
  case '*': *count = COUNT_OF(mul_templates); return mul_templates;
  default: *count = COUNT_OF(div_templates); return div_templates;
  }
}

static bool is_girl(const char *name) {
  for (int i = 0; i < COUNT_OF(girl_names); i++)
    if (!strcmp(name, girl_names[i])) return true;
  return false;
}

/* Appends tmpl with {N} {P} {p} {O} {items} {a} {b} {e} replaced. */
static void render(ag_strbuf *b, const char *tmpl, const arith_problem *pr, int64_t a, int64_t v,
                   const char *expr) {
  bool girl = pr->name && is_girl(pr->name);
  for (const char *s = tmpl; *s;) {
    if (*s != '{') {
      size_t n = strcspn(s, "{");
      ag_strbuf_append(b, s, n);
      s += n;
      continue;
    }
    const char *close = strchr(s, '}');
    if (!close) {
      ag_strbuf_append(b, s, strlen(s));
      break;
    }
    size_t k = (size_t)(close - s - 1);
    const char *key = s + 1;
#define KEY(lit) (k == sizeof(lit) - 1 && !memcmp(key, lit, k))
    if (KEY("N"))
      ag_strbuf_printf(b, "%s", pr->name ? pr->name : "");
    else if (KEY("P"))
      ag_strbuf_printf(b, "%s", girl ? "She" : "He");
    else if (KEY("p"))
      ag_strbuf_printf(b, "%s", girl ? "she" : "he");
    else if (KEY("O"))
      ag_strbuf_printf(b, "%s", girl ? "her" : "him");
    else if (KEY("items"))
      ag_strbuf_printf(b, "%s", pr->item ? pr->item : "");
    else if (KEY("a"))
      ag_strbuf_printf(b, "%lld", (long long)a);
    else if (KEY("b"))
      ag_strbuf_printf(b, "%lld", (long long)v);
    else if (KEY("e"))
      ag_strbuf_printf(b, "%s", expr ? expr : "");
    else if (KEY("step") || KEY("what"))
      ag_strbuf_append(b, s, (size_t)(close - s + 1)); /* filled later */
#undef KEY
    s = close + 1;
  }
}

/* ---- expressions ------------------------------------------------------------------ */

static int op_precedence(char op) { return op == '+' || op == '-' ? 1 : 2; }

/* "(37 + 12) * 4 - 19": parentheses only where precedence needs them. The
 * chain is left-deep, so every opening parenthesis goes at the front. */
static void render_expression(const arith_problem *p, char *buf, size_t size) {
  bool wrap[ARITH_MAX_STEPS] = {false};
  int prec = 3, opens = 0;
  for (int i = 0; i < p->count; i++) {
    int o = op_precedence(p->steps[i].op);
    wrap[i] = prec < o;
    opens += wrap[i];
    prec = o;
  }
  ag_strbuf b = {0};
  for (int i = 0; i < opens; i++) ag_strbuf_append(&b, "(", 1);
  ag_strbuf_printf(&b, "%lld", (long long)p->start);
  for (int i = 0; i < p->count; i++)
    ag_strbuf_printf(&b, "%s %c %lld", wrap[i] ? ")" : "", p->steps[i].op,
                     (long long)p->steps[i].value);
  snprintf(buf, size, "%s", b.data && !b.failed ? b.data : "");
  ag_strbuf_free(&b);
}

/* A recursive-descent evaluator over exact rationals: the independent
 * solver for expressions. */
typedef struct expr_parser {
  const char *s;
  bool ok;
} expr_parser;

static void expr_skip(expr_parser *p) {
  while (*p->s == ' ') p->s++;
}

static ag_rational expr_sum(expr_parser *p);

static ag_rational expr_atom(expr_parser *p) {
  expr_skip(p);
  ag_rational r = {0, 1};
  if (*p->s == '(') {
    p->s++;
    r = expr_sum(p);
    expr_skip(p);
    if (*p->s != ')')
      p->ok = false;
    else
      p->s++;
    return r;
  }
  if (*p->s == '-') {
    p->s++;
    ag_rational v = expr_atom(p);
    if (!ag_rational_sub((ag_rational){0, 1}, v, &r)) p->ok = false;
    return r;
  }
  int64_t v = 0;
  int digits = 0;
  while (*p->s >= '0' && *p->s <= '9') {
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p->s - '0', &v))
      p->ok = false;
    p->s++;
    digits++;
  }
  if (!digits) p->ok = false;
  return ag_rational_make(v, 1);
}

static ag_rational expr_product(expr_parser *p) {
  ag_rational r = expr_atom(p);
  for (;;) {
    expr_skip(p);
    char op = *p->s;
    if (op != '*' && op != '/') return r;
    p->s++;
    ag_rational v = expr_atom(p);
    bool fine = op == '*' ? ag_rational_mul(r, v, &r) : ag_rational_div(r, v, &r);
    if (!fine) p->ok = false;
  }
}

static ag_rational expr_sum(expr_parser *p) {
  ag_rational r = expr_product(p);
  for (;;) {
    expr_skip(p);
    char op = *p->s;
    if (op != '+' && op != '-') return r;
    p->s++;
    ag_rational v = expr_product(p);
    bool fine = op == '+' ? ag_rational_add(r, v, &r) : ag_rational_sub(r, v, &r);
    if (!fine) p->ok = false;
  }
}

static bool expr_evaluate(const char *text, ag_rational *out) {
  expr_parser p = {text, true};
  *out = expr_sum(&p);
  expr_skip(&p);
  return p.ok && *p.s == '\0';
}

/* ---- the chain -------------------------------------------------------------------- */

static bool apply_op(ag_rational v, char op, int64_t operand, ag_rational *out) {
  ag_rational b = ag_rational_make(operand, 1);
  switch (op) {
  case '+': return ag_rational_add(v, b, out);
  case '-': return ag_rational_sub(v, b, out);
  case '*': return ag_rational_mul(v, b, out);
  case '/': return ag_rational_div(v, b, out);
  }
  return false;
}

/* The value after steps [from, to) starting from v. */
static bool chain_run(const arith_problem *p, ag_rational v, int from, int to, ag_rational *out) {
  for (int i = from; i < to; i++)
    if (!apply_op(v, p->steps[i].op, p->steps[i].value, &v)) return false;
  *out = v;
  return true;
}

/* ---- data <-> problem ------------------------------------------------------------- */

static json_t *problem_to_json(const arith_problem *p, const char *expression) {
  json_t *steps = json_array();
  for (int i = 0; i < p->count; i++) {
    char op[2] = {p->steps[i].op, 0};
    json_t *s = json_pack("{s:s, s:I}", "op", op, "value", (json_int_t)p->steps[i].value);
    if (p->word) json_object_set_new(s, "template", json_integer(p->steps[i].tmpl));
    json_array_append_new(steps, s);
  }
  json_t *d = json_pack("{s:s, s:I, s:o}", "form", p->word ? "word" : "expression", "start",
                        (json_int_t)p->start, "steps", steps);
  if (!d) return NULL;
  if (p->word) {
    json_object_set_new(d, "name", json_string(p->name));
    json_object_set_new(d, "item", json_string(p->item));
    json_object_set_new(d, "start_template", json_integer(p->start_tmpl));
    json_object_set_new(d, "question_template", json_integer(p->question_tmpl));
    json_object_set_new(d, "flavour", json_integer(p->flavour));
  } else {
    json_object_set_new(d, "expression", json_string(expression));
    json_object_set_new(d, "template", json_integer(p->expr_tmpl));
  }
  return d;
}

static ag_status malformed(const ag_task *t, const char *what) {
  return ag_error_set(AG_ERR_FORMAT, "arith task %s: malformed data: %s", t->id, what);
}

/* Reads the structured problem back; the strings point into task->data. */
static ag_status problem_from_task(const ag_task *t, arith_problem *p) {
  memset(p, 0, sizeof *p);
  p->flavour = -1;
  json_t *d = t->data;
  const char *form = json_string_value(json_object_get(d, "form"));
  json_t *start = json_object_get(d, "start"), *steps = json_object_get(d, "steps");
  if (!form || !json_is_integer(start) || !json_is_array(steps))
    return malformed(t, "form/start/steps");
  p->word = !strcmp(form, "word");
  if (!p->word && strcmp(form, "expression")) return malformed(t, "form");
  p->start = json_integer_value(start);
  size_t n = json_array_size(steps);
  if (n < 1 || n > ARITH_MAX_STEPS) return malformed(t, "step count");
  p->count = (int)n;
  for (size_t i = 0; i < n; i++) {
    json_t *s = json_array_get(steps, i);
    const char *op = json_string_value(json_object_get(s, "op"));
    json_t *v = json_object_get(s, "value");
    if (!op || strlen(op) != 1 || !strchr("+-*/", op[0]) || !json_is_integer(v))
      return malformed(t, "step");
    p->steps[i].op = op[0];
    p->steps[i].value = json_integer_value(v);
    if (p->steps[i].op == '/' && p->steps[i].value == 0) return malformed(t, "division by zero");
    int count;
    step_templates(op[0], &count);
    json_int_t tmpl = json_integer_value(json_object_get(s, "template"));
    if (p->word && (tmpl < 0 || tmpl >= count)) return malformed(t, "step template");
    p->steps[i].tmpl = (int)tmpl;
  }
  if (p->word) {
    p->name = json_string_value(json_object_get(d, "name"));
    p->item = json_string_value(json_object_get(d, "item"));
    p->start_tmpl = (int)json_integer_value(json_object_get(d, "start_template"));
    p->question_tmpl = (int)json_integer_value(json_object_get(d, "question_template"));
    p->flavour = (int)json_integer_value(json_object_get(d, "flavour"));
    if (!p->name || !p->item || p->start_tmpl < 0 || p->start_tmpl >= COUNT_OF(start_sentences) ||
        p->question_tmpl < 0 || p->question_tmpl >= COUNT_OF(question_sentences) ||
        p->flavour < -1 || p->flavour >= COUNT_OF(flavour_sentences))
      return malformed(t, "word problem fields");
  } else {
    if (!json_is_string(json_object_get(d, "expression"))) return malformed(t, "expression");
  }
  return AG_OK;
}

/* ---- generation ------------------------------------------------------------------- */

static int64_t uniform(ag_rng *rng, int64_t lo, int64_t hi) {
  return lo + (int64_t)ag_rng_below(rng, (uint64_t)(hi - lo + 1));
}

static int64_t abs_i64(int64_t v) { return v < 0 ? -v : v; }

/* Draws the chain; false when the draw should be repeated. */
static bool draw_chain(const arith_level *L, ag_rng *rng, arith_problem *p) {
  p->start = uniform(rng, L->start_min, L->start_max);
  p->count = (int)uniform(rng, L->steps_min, L->steps_max);
  int64_t v = p->start;
  int muls = 0;
  bool negatives = L->negatives && !p->word;
  for (int i = 0; i < p->count; i++) {
    arith_step *s = &p->steps[i];
    for (int attempt = 0;; attempt++) {
      if (attempt > 20) return false;
      /* + and - are twice as common as * and /. */
      int pick = (int)ag_rng_below(rng, 6);
      char op = pick < 2 ? '+' : pick < 4 ? '-' : pick == 4 ? '*' : '/';
      if (op == '*' && (L->mul_max < 2 || muls >= L->max_muls || v == 0)) continue;
      if (op == '/') {
        if (L->div_max < 2 || v == 0) continue;
        int64_t divisors[16];
        int nd = 0;
        for (int64_t d = 2; d <= L->div_max; d++)
          if (v % d == 0) divisors[nd++] = d;
        if (!nd) continue;
        s->op = op;
        s->value = divisors[ag_rng_below(rng, (uint64_t)nd)];
        v /= s->value;
        break;
      }
      if (op == '*') {
        s->op = op;
        s->value = uniform(rng, 2, L->mul_max);
        if (abs_i64(v * s->value) > L->value_max) continue;
        v *= s->value;
        muls++;
        break;
      }
      int64_t b = uniform(rng, 1, L->add_max);
      if (op == '-') {
        if (!negatives && b >= v) {
          if (v <= 1) continue;
          b = uniform(rng, 1, v - 1);
        }
        s->op = op;
        s->value = b;
        v -= b;
      } else {
        if (v + b > L->value_max) continue;
        s->op = op;
        s->value = b;
        v += b;
      }
      break;
    }
    s->tmpl = 0;
    if (p->word) {
      int count;
      step_templates(s->op, &count);
      s->tmpl = (int)ag_rng_below(rng, (uint64_t)count);
    }
  }
  return true;
}

static char *render_problem(const arith_problem *p, const char *expression) {
  ag_strbuf b = {0};
  if (p->word) {
    render(&b, start_sentences[p->start_tmpl], p, p->start, 0, NULL);
    for (int i = 0; i < p->count; i++) {
      int count;
      const word_step_template *t = step_templates(p->steps[i].op, &count);
      ag_strbuf_append(&b, " ", 1);
      render(&b, t[p->steps[i].tmpl].sentence, p, 0, p->steps[i].value, NULL);
    }
    ag_strbuf_append(&b, " ", 1);
    render(&b, question_sentences[p->question_tmpl], p, 0, 0, NULL);
  } else {
    render(&b, expr_sentences[p->expr_tmpl], p, 0, 0, expression);
  }
  ag_strbuf_printf(&b, " %s", ARITH_FORMAT);
  return ag_strbuf_take(&b);
}

static char *render_solution(const arith_problem *p, ag_rational answer) {
  ag_strbuf b = {0};
  ag_rational v = ag_rational_make(p->start, 1);
  char x[48], y[48];
  for (int i = 0; i < p->count; i++) {
    ag_rational next;
    if (!apply_op(v, p->steps[i].op, p->steps[i].value, &next)) break;
    ag_strbuf_printf(&b, "%s %c %lld = %s\n", ag_rational_format(v, x, sizeof x), p->steps[i].op,
                     (long long)p->steps[i].value, ag_rational_format(next, y, sizeof y));
    v = next;
  }
  ag_strbuf_printf(&b, "Answer: %s", ag_rational_format(answer, x, sizeof x));
  return ag_strbuf_take(&b);
}

static bool mentions_operand(const arith_problem *p, int64_t answer) {
  if (abs_i64(p->start) == abs_i64(answer)) return true;
  for (int i = 0; i < p->count; i++)
    if (abs_i64(p->steps[i].value) == abs_i64(answer)) return true;
  return false;
}

static ag_status arith_generate(int level, uint64_t seed, int64_t index, ag_task *out) {
  memset(out, 0, sizeof *out);
  if (level < 1 || level > 5)
    return ag_error_set(AG_ERR_INVALID, "arith: level %d is not in 1..5", level);
  const arith_level *L = &levels[level - 1];
  ag_rng rng;
  ag_task_rng(&rng, "arith", level, seed, index);
  for (int tries = 0; tries < 1000; tries++) {
    arith_problem p;
    memset(&p, 0, sizeof p);
    p.flavour = -1;
    p.word = ag_rng_below(&rng, 2) == 0;
    if (p.word) {
      bool girl = ag_rng_below(&rng, 2) == 0;
      p.name = girl ? girl_names[ag_rng_below(&rng, COUNT_OF(girl_names))]
                    : boy_names[ag_rng_below(&rng, COUNT_OF(boy_names))];
      p.item = items[ag_rng_below(&rng, COUNT_OF(items))];
      p.start_tmpl = (int)ag_rng_below(&rng, COUNT_OF(start_sentences));
      p.question_tmpl = (int)ag_rng_below(&rng, COUNT_OF(question_sentences));
      p.flavour = ag_rng_below(&rng, 2) ? (int)ag_rng_below(&rng, COUNT_OF(flavour_sentences)) : -1;
    } else {
      p.expr_tmpl = (int)ag_rng_below(&rng, COUNT_OF(expr_sentences));
    }
    if (!draw_chain(L, &rng, &p)) continue;
    ag_rational answer;
    if (!chain_run(&p, ag_rational_make(p.start, 1), 0, p.count, &answer) || answer.den != 1)
      continue;
    /* The answer must not be a number the problem states: then any mention
     * of the problem's facts in feedback is not a leak. */
    if (mentions_operand(&p, answer.num)) continue;
    char expression[512];
    render_expression(&p, expression, sizeof expression);
    char *problem = render_problem(&p, expression);
    if (!problem) return ag_error_wrap(AG_ERR_NOMEM, "arith: ");
    if (ag_text_mentions_value(problem, answer)) {
      free(problem);
      continue;
    }
    char *solution = render_solution(&p, answer);
    char answer_text[48];
    ag_rational_format(answer, answer_text, sizeof answer_text);
    json_t *data = problem_to_json(&p, expression);
    ag_status st = solution && data ? ag_task_fill(out, "arith", level, seed, index, problem,
                                                   answer_text, solution, data)
                                    : ag_error_set(AG_ERR_NOMEM, "arith: out of memory");
    if (!data || !solution) json_decref(data);
    free(problem);
    free(solution);
    return st;
  }
  return ag_error_set(AG_ERR_INTERNAL, "arith: no task found for level %d seed %llu index %lld",
                      level, (unsigned long long)seed, (long long)index);
}

/* ---- verification ----------------------------------------------------------------- */

/* Which step a wrong attempt points at, and the kind of slip: stopping
 * early, a wrong operation, a carry/borrow slip (off by 1, 10, 100 at a
 * step), or ignoring the parentheses of an expression. 0: none found. */
static int locate_slip(const arith_problem *p, const char *expression, ag_rational attempt,
                       const char **slip) {
  ag_rational v = ag_rational_make(p->start, 1), r;
  /* Stopped after step k (the attempt is an intermediate value). */
  for (int k = 0; k + 1 < p->count; k++) {
    if (!apply_op(v, p->steps[k].op, p->steps[k].value, &v)) break;
    if (ag_rational_equal(v, attempt)) {
      *slip = "stopped_early";
      return k + 2;
    }
  }
  /* A wrong operation or a slip of 1, 10 or 100 at step k; only when a
   * single step explains the attempt (in a chain of additions an
   * off-by-one could be anywhere). */
  int op_step = 0, op_matches = 0, slip_step = 0, slip_matches = 0;
  for (int k = 0; k < p->count; k++) {
    ag_rational before, at;
    if (!chain_run(p, ag_rational_make(p->start, 1), 0, k, &before) ||
        !apply_op(before, p->steps[k].op, p->steps[k].value, &at))
      return 0;
    static const char ops[] = "+-*/";
    for (int j = 0; j < 4; j++) {
      ag_rational other;
      if (ops[j] != p->steps[k].op && apply_op(before, ops[j], p->steps[k].value, &other) &&
          chain_run(p, other, k + 1, p->count, &r) && ag_rational_equal(r, attempt)) {
        op_step = k + 1;
        op_matches++;
        break;
      }
    }
    static const int64_t deltas[] = {1, -1, 10, -10, 100, -100};
    for (int j = 0; j < 6; j++) {
      ag_rational bumped;
      if (ag_rational_add(at, ag_rational_make(deltas[j], 1), &bumped) &&
          chain_run(p, bumped, k + 1, p->count, &r) && ag_rational_equal(r, attempt)) {
        slip_step = k + 1;
        slip_matches++;
        break;
      }
    }
  }
  if (op_matches == 1) {
    *slip = "wrong_operation";
    return op_step;
  }
  if (slip_matches == 1) {
    *slip = "arithmetic";
    return slip_step;
  }
  if (!p->word && strchr(expression, '(')) {
    char flat[512];
    size_t j = 0;
    for (const char *s = expression; *s && j + 1 < sizeof flat; s++)
      if (*s != '(' && *s != ')') flat[j++] = *s;
    flat[j] = '\0';
    if (expr_evaluate(flat, &r) && ag_rational_equal(r, attempt)) {
      *slip = "ignored_parentheses";
      /* The first step that needed parentheses. */
      int prec = 3;
      for (int k = 0; k < p->count; k++) {
        int o = op_precedence(p->steps[k].op);
        if (prec < o) return k + 1;
        prec = o;
      }
    }
  }
  return 0;
}

static ag_status arith_verify(const ag_task *task, const char *attempt, ag_verdict *out) {
  memset(out, 0, sizeof *out);
  arith_problem p;
  ag_status st = problem_from_task(task, &p);
  if (st) return st;
  ag_rational answer, value;
  if (!ag_parse_number(task->answer, &answer))
    return ag_error_set(AG_ERR_FORMAT, "arith task %s: answer \"%s\" is not a number", task->id,
                        task->answer);
  char *line = ag_first_line(attempt);
  if (!line) return ag_error_set(AG_ERR_NOMEM, "arith: out of memory");
  bool parsed = ag_parse_number(line, &value);
  free(line);
  if (!parsed) return ag_verdict_init(out, false, false, "unparsed");
  if (ag_rational_equal(value, answer)) return ag_verdict_init(out, true, true, "correct");
  if ((st = ag_verdict_init(out, false, true, "wrong_value"))) return st;
  json_t *d = out->diagnostics;
  char buf[48];
  json_object_set_new(d, "attempt", json_string(ag_rational_format(value, buf, sizeof buf)));
  long double gap_signed = (long double)value.num / (long double)value.den -
                           (long double)answer.num / (long double)answer.den;
  json_object_set_new(d, "direction", json_string(gap_signed > 0 ? "too_high" : "too_low"));
  bool sign_error = answer.num != 0 && value.num == -answer.num && value.den == answer.den;
  json_object_set_new(d, "sign_error", json_boolean(sign_error));
  /* Within a tenth of the answer (at least 1): "close", for encouragement. */
  double gap =
      fabs((double)value.num / (double)value.den - (double)answer.num / (double)answer.den);
  double size = fabs((double)answer.num / (double)answer.den);
  bool close = !sign_error && gap <= fmax(1.0, size / 10.0);
  json_object_set_new(d, "close", json_boolean(close));
  json_object_set_new(d, "step_count", json_integer(p.count));
  const char *slip = NULL;
  const char *expression = json_string_value(json_object_get(task->data, "expression"));
  int step = sign_error ? 0 : locate_slip(&p, expression ? expression : "", value, &slip);
  if (step > 0) {
    json_object_set_new(d, "first_wrong_step", json_integer(step));
    json_object_set_new(d, "slip", json_string(slip));
  }
  return AG_OK;
}

/* ---- feedback --------------------------------------------------------------------- */

/* Each list: the first half is the training set, the second the held-out
 * set (ag_pick_phrasing). None of them contains a number or number word. */
static const char *const too_high_phrasings[] = {"Your answer is too high.",
                                                 "That is more than the right result.",
                                                 "Your number is too big.",
                                                 "The result should be smaller than that.",
                                                 "That overshoots: the correct value is lower.",
                                                 "Too large; aim lower.",
                                                 "You went over the right result.",
                                                 "Your answer needs to come down."};
static const char *const too_low_phrasings[] = {"Your answer is too low.",
                                                "That is less than the right result.",
                                                "Your number is too small.",
                                                "The result should be larger than that.",
                                                "That falls short: the correct value is higher.",
                                                "Too small; aim higher.",
                                                "You came in under the right result.",
                                                "Your answer needs to go up."};
static const char *const sign_phrasings[] = {
    "Check the sign of your answer.",
    "Your answer has the wrong sign.",
    "Look at the sign: should it be positive or negative?",
    "The sign of your result is off.",
    "Think again about whether the result is positive or negative.",
    "Recheck the sign.",
    "Positive or negative? Your sign is wrong.",
    "Your result points the wrong way: look at its sign."};
static const char *const step_phrasings[] = {"Recheck the {step} step, {what}.",
                                             "Something goes wrong in the {step} step, {what}.",
                                             "Look again at the {step} step, {what}.",
                                             "The mistake is in the {step} step, {what}.",
                                             "Go back to the {step} step, {what}.",
                                             "Your error starts at the {step} step, {what}.",
                                             "Check your work on the {step} step, {what}.",
                                             "The {step} step, {what}, needs another look."};
static const char *const early_phrasings[] = {
    "You stopped too early: you still need the {step} step, {what}.",
    "Not finished yet: do the {step} step, {what}.",
    "There is more to do: the {step} step, {what}.",
    "That is only part of the way; continue with the {step} step, {what}.",
    "You left out the {step} step, {what}.",
    "Keep going: the {step} step, {what}, is still missing.",
    "Your work ends before the {step} step, {what}.",
    "Do not stop there; the {step} step, {what}, comes next."};
static const char *const paren_phrasings[] = {
    "Work out the part in parentheses first.",
    "Check the order of operations: parentheses come first.",
    "You seem to have ignored the parentheses.",
    "Do the bracketed part before anything else.",
    "Mind the brackets: they are evaluated first.",
    "Recheck the order in which you did the operations.",
    "The parentheses change the order; start inside them.",
    "Start from the part inside the parentheses."};
static const char *const generic_phrasings[] = {"Go through each step again and recompute it.",
                                                "Some step has a calculation mistake.",
                                                "Recompute every step carefully.",
                                                "A step along the way is off; check each in turn.",
                                                "Redo the calculation step by step.",
                                                "There is a slip somewhere in your steps.",
                                                "Work through the steps again slowly.",
                                                "Check each intermediate result again."};
static const char *const unparsed_phrasings[] = {
    "Write your final answer as a plain number after \"Answer:\".",
    "I could not read a number in your answer.",
    "Give just a number on the Answer line.",
    "Your answer should be a plain number.",
    "Put only the number after \"Answer:\".",
    "I need a number as your final answer.",
    "Your final line should hold a single number.",
    "State the result as a number on the Answer line."};

#define PICK(list) ag_pick_phrasing(list, COUNT_OF(list), set, rng)

static const char *const ordinals[] = {"first", "second", "third", "fourth", "fifth", "sixth"};

/* "where you multiply by 4", "where Tom buys 12 more": the step, never its
 * result. */
static void describe_step(ag_strbuf *b, const arith_problem *p, int k) {
  const arith_step *s = &p->steps[k];
  if (p->word) {
    int count;
    const word_step_template *t = step_templates(s->op, &count);
    render(b, t[s->tmpl].clause, p, 0, s->value, NULL);
    return;
  }
  if (k == 0) {
    long long a = (long long)p->start, v = (long long)s->value;
    switch (s->op) {
    case '+': ag_strbuf_printf(b, "where you add %lld and %lld", a, v); break;
    case '-': ag_strbuf_printf(b, "where you subtract %lld from %lld", v, a); break;
    case '*': ag_strbuf_printf(b, "where you multiply %lld by %lld", a, v); break;
    default: ag_strbuf_printf(b, "where you divide %lld by %lld", a, v); break;
    }
    return;
  }
  long long v = (long long)s->value;
  switch (s->op) {
  case '+': ag_strbuf_printf(b, "where you add %lld to the result so far", v); break;
  case '-': ag_strbuf_printf(b, "where you subtract %lld from the result so far", v); break;
  case '*': ag_strbuf_printf(b, "where you multiply the result so far by %lld", v); break;
  default: ag_strbuf_printf(b, "where you divide the result so far by %lld", v); break;
  }
}

/* Appends tmpl with {step} and {what} filled. */
static void fill_step(ag_strbuf *b, const char *tmpl, const arith_problem *p, int k) {
  for (const char *s = tmpl; *s;) {
    if (!strncmp(s, "{step}", 6)) {
      ag_strbuf_printf(b, "%s", ordinals[k < 6 ? k : 5]);
      s += 6;
    } else if (!strncmp(s, "{what}", 6)) {
      describe_step(b, p, k);
      s += 6;
    } else {
      size_t n = strcspn(s + 1, "{") + 1;
      ag_strbuf_append(b, s, n);
      s += n;
    }
  }
}

static ag_status arith_feedback(const ag_task *task, const ag_verdict *verdict,
                                ag_feedback_level level, ag_phrasing_set set, ag_rng *rng,
                                char **out) {
  *out = NULL;
  arith_problem p;
  ag_status st = problem_from_task(task, &p);
  if (st) return st;
  json_t *d = verdict->diagnostics;
  const char *kind = json_string_value(json_object_get(d, "kind"));
  if (!kind)
    return ag_error_set(AG_ERR_INVALID, "arith feedback on task %s: the verdict has no diagnostics",
                        task->id);
  ag_strbuf b = {0};
  if (!strcmp(kind, "correct")) {
    ag_strbuf_printf(&b, "That is correct.");
  } else if (!strcmp(kind, "unparsed")) {
    ag_strbuf_printf(&b, "%s", PICK(unparsed_phrasings));
  } else {
    bool sign = json_is_true(json_object_get(d, "sign_error"));
    const char *direction = json_string_value(json_object_get(d, "direction"));
    const char *directional = sign ? PICK(sign_phrasings)
                              : direction && !strcmp(direction, "too_high")
                                  ? PICK(too_high_phrasings)
                                  : PICK(too_low_phrasings);
    json_int_t step = json_integer_value(json_object_get(d, "first_wrong_step"));
    const char *slip = json_string_value(json_object_get(d, "slip"));
    if (level != AG_FEEDBACK_LOCALISED || sign) {
      ag_strbuf_printf(&b, "%s", directional);
    } else if (step >= 1 && step <= p.count && slip) {
      if (!strcmp(slip, "ignored_parentheses"))
        ag_strbuf_printf(&b, "%s", PICK(paren_phrasings));
      else
        fill_step(&b, !strcmp(slip, "stopped_early") ? PICK(early_phrasings) : PICK(step_phrasings),
                  &p, (int)step - 1);
    } else {
      ag_strbuf_printf(&b, "%s %s", directional, PICK(generic_phrasings));
    }
  }
  *out = ag_strbuf_take(&b);
  return *out ? AG_OK : AG_ERR_NOMEM;
}

/* ---- leaks, solving, shards ------------------------------------------------------- */

static bool arith_leaks(const ag_task *task, const char *text) {
  ag_rational answer;
  if (!ag_parse_number(task->answer, &answer)) return text && strstr(text, task->answer) != NULL;
  return ag_text_mentions_value(text, answer);
}

static ag_status arith_solve(const ag_task *task, char **answer) {
  *answer = NULL;
  arith_problem p;
  ag_status st = problem_from_task(task, &p);
  if (st) return st;
  ag_rational v;
  bool ok;
  if (p.word) {
    ok = chain_run(&p, ag_rational_make(p.start, 1), 0, p.count, &v);
  } else {
    /* Parse the expression as the student sees it, not the chain. */
    ok = expr_evaluate(json_string_value(json_object_get(task->data, "expression")), &v);
  }
  if (!ok) return ag_error_set(AG_ERR_FORMAT, "arith task %s: cannot evaluate", task->id);
  char buf[48];
  *answer = strdup(ag_rational_format(v, buf, sizeof buf));
  return *answer ? AG_OK : ag_error_set(AG_ERR_NOMEM, "arith: out of memory");
}

static ag_status add_rendered_shard(ag_task *t, const char *tmpl, const arith_problem *p, int64_t a,
                                    int64_t v, bool required) {
  ag_strbuf b = {0};
  render(&b, tmpl, p, a, v, NULL);
  char *text = ag_strbuf_take(&b);
  if (!text) return AG_ERR_NOMEM;
  ag_status st = ag_task_add_shard(t, text, required);
  free(text);
  return st;
}

static ag_status arith_shard(ag_task *task) {
  arith_problem p;
  ag_status st = problem_from_task(task, &p);
  if (st) return st;
  for (int i = 0; i < task->shard_count; i++) free(task->shards[i].text);
  free(task->shards);
  task->shards = NULL;
  task->shard_count = 0;
  if (p.word) {
    if ((st = add_rendered_shard(
             task, "I need to find how many {items} {N} has at the end. " ARITH_FORMAT, &p, 0, 0,
             false)) ||
        (st = add_rendered_shard(task, start_sentences[p.start_tmpl], &p, p.start, 0, true)))
      return st;
    for (int i = 0; i < p.count; i++) {
      int count;
      const word_step_template *t = step_templates(p.steps[i].op, &count);
      if ((st = add_rendered_shard(task, t[p.steps[i].tmpl].sentence, &p, 0, p.steps[i].value,
                                   true)))
        return st;
      /* The flavour sentence (not needed for the answer) after the first step. */
      if (i == 0 && p.flavour >= 0 &&
          (st = add_rendered_shard(task, flavour_sentences[p.flavour], &p, 0, 0, false)))
        return st;
    }
    return AG_OK;
  }
  if ((st = ag_task_add_shard(task,
                              "I need the value of an arithmetic expression that is built up "
                              "step by step. " ARITH_FORMAT,
                              false)))
    return st;
  char buf[96];
  snprintf(buf, sizeof buf, "It starts with %lld.", (long long)p.start);
  if ((st = ag_task_add_shard(task, buf, true))) return st;
  for (int i = 0; i < p.count; i++) {
    long long v = (long long)p.steps[i].value;
    switch (p.steps[i].op) {
    case '+': snprintf(buf, sizeof buf, "Then add %lld.", v); break;
    case '-': snprintf(buf, sizeof buf, "Then subtract %lld.", v); break;
    case '*': snprintf(buf, sizeof buf, "Then multiply the result by %lld.", v); break;
    default: snprintf(buf, sizeof buf, "Then divide the result by %lld.", v); break;
    }
    if ((st = ag_task_add_shard(task, buf, true))) return st;
  }
  return AG_OK;
}

const ag_task_family ag_task_family_arith = {
    "arith",
    "multi-step arithmetic: expressions and word problems (levels 1-5: steps and digits)",
    5,
    2,
    arith_generate,
    arith_verify,
    arith_feedback,
    arith_leaks,
    arith_solve,
    arith_shard};
