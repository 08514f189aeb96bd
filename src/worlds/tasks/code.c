/* The `code` task family: find a one-expression program f(x) from a few
 * input/output examples; checked on those and on hidden tests. The language
 * and the search live in code_lang.c; see docs/tasks.md ("code"). */
#include "worlds/tasks/code_lang.h"
#include "worlds/tasks/task_util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Inputs come from [-10, 10]; outputs on all of it stay within +-99, so
 * the numbers stay short for a small model. */
enum {
  DOMAIN_LO = -10,
  DOMAIN_HI = 10,
  DOMAIN_SIZE = DOMAIN_HI - DOMAIN_LO + 1,
  OUTPUT_BOUND = 99,
  MIN_VISIBLE = 3,
  MAX_VISIBLE = 5,
  MAX_LEVEL = 4,
  DEFAULT_LEVEL = 2,
  MAX_DRAWS = 5000, /* programs drawn per task before giving up (a few suffice) */
  MAX_TESTS = 16,
  LEAK_SPAN_TOKENS = 48 /* longest program-looking span the leak scan parses */
};

static const char FORMAT_LINE[] = "Give your final answer on a line \"Answer: <expression>\".";

static const char *goal_text(int level) {
  return level <= 2 ? "Write a function f of an integer x as one expression using + - * / % abs "
                      "min max (/ rounds down)."
                    : "Write a function f of an integer x as one expression using + - * / % abs "
                      "min max, comparisons, and or not, if then else (/ rounds down).";
}

/* ---- tests in task->data: {"visible": [[x, y], ...], "hidden": [[x, y], ...]} ---- */

typedef struct code_tests {
  int64_t x[MAX_TESTS], y[MAX_TESTS];
  int visible; /* tests [0, visible) are the examples in the problem */
  int total;
} code_tests;

static ag_status read_pairs(const json_t *data, const char *key, code_tests *t) {
  const json_t *list = json_object_get(data, key);
  if (!json_is_array(list))
    return ag_error_set(AG_ERR_FORMAT, "code task: data.%s is missing or not an array", key);
  for (size_t i = 0; i < json_array_size(list); i++) {
    const json_t *pair = json_array_get(list, i);
    if (!json_is_array(pair) || json_array_size(pair) != 2 ||
        !json_is_integer(json_array_get(pair, 0)) || !json_is_integer(json_array_get(pair, 1)))
      return ag_error_set(AG_ERR_FORMAT, "code task: data.%s[%zu] is not a pair of integers", key,
                          i);
    if (t->total >= MAX_TESTS)
      return ag_error_set(AG_ERR_FORMAT, "code task: more than %d tests", MAX_TESTS);
    t->x[t->total] = json_integer_value(json_array_get(pair, 0));
    t->y[t->total] = json_integer_value(json_array_get(pair, 1));
    t->total++;
  }
  return AG_OK;
}

static ag_status read_tests(const ag_task *task, code_tests *t) {
  memset(t, 0, sizeof *t);
  if (!task || !task->data) return ag_error_set(AG_ERR_FORMAT, "code task: no data");
  ag_status st = read_pairs(task->data, "visible", t);
  if (st) return st;
  t->visible = t->total;
  if ((st = read_pairs(task->data, "hidden", t))) return st;
  if (t->visible < 1) return ag_error_set(AG_ERR_FORMAT, "code task: no visible examples");
  return AG_OK;
}

static json_t *pairs_json(const int64_t *x, const int64_t *y, int from, int to) {
  json_t *list = json_array();
  for (int i = from; list && i < to; i++) {
    json_t *pair = json_pack("[II]", (json_int_t)x[i], (json_int_t)y[i]);
    if (!pair || json_array_append_new(list, pair)) {
      json_decref(list);
      return NULL;
    }
  }
  return list;
}

/* ---- generator ---------------------------------------------------------------------- */

static int pick(ag_rng *rng, int lo, int hi) {
  return lo + (int)ag_rng_below(rng, (uint64_t)(hi - lo + 1));
}

/* A literal; negative ones are NEG(CONST), as the parser builds them. */
static int literal(ag_code_program *p, int v) {
  int c = ag_code_add(p, AG_CODE_CONST, -1, -1, -1, v < 0 ? -v : v);
  return v < 0 ? ag_code_add(p, AG_CODE_NEG, c, -1, -1, 0) : c;
}

/* A literal suited to op: multipliers and divisors from 2, bounds of min
 * and max from -5. */
static int literal_for(ag_code_program *p, ag_rng *rng, ag_code_op op, int level) {
  switch (op) {
  case AG_CODE_MUL: return literal(p, pick(rng, 2, level == 1 ? 9 : 5));
  case AG_CODE_DIV:
  case AG_CODE_MOD: return literal(p, pick(rng, 2, 5));
  case AG_CODE_MIN:
  case AG_CODE_MAX: return literal(p, pick(rng, -5, 9));
  default: return literal(p, pick(rng, 1, 9));
  }
}

/* An operator for a step at level (0: + - * only, for the branches of an
 * if, so that each branch is a straight line and the examples can pin it
 * down). */
static ag_code_op draw_op(ag_rng *rng, int level) {
  static const ag_code_op LINEAR[] = {AG_CODE_ADD, AG_CODE_SUB, AG_CODE_MUL};
  if (level == 0) return LINEAR[ag_rng_below(rng, 3)];
  /* addition, subtraction and multiplication twice as often as the rest */
  static const ag_code_op SIMPLE[] = {AG_CODE_ADD, AG_CODE_ADD, AG_CODE_SUB, AG_CODE_SUB,
                                      AG_CODE_MUL, AG_CODE_MUL, AG_CODE_MIN, AG_CODE_MAX};
  static const ag_code_op ALL[] = {AG_CODE_ADD, AG_CODE_ADD, AG_CODE_SUB, AG_CODE_SUB,
                                   AG_CODE_MUL, AG_CODE_MUL, AG_CODE_DIV, AG_CODE_MOD,
                                   AG_CODE_ABS, AG_CODE_MIN, AG_CODE_MAX};
  return level == 1 ? SIMPLE[ag_rng_below(rng, sizeof SIMPLE / sizeof *SIMPLE)]
                    : ALL[ag_rng_below(rng, sizeof ALL / sizeof *ALL)];
}

/* A chain of `ops` steps applied to x, each with a literal: "add 3, then
 * double, then take the remainder by 5" is (x + 3) * 2 % 5. The literal
 * goes right, except in `c - e` and now and then `c + e`, `c * e`. */
static int gen_chain(ag_code_program *p, ag_rng *rng, int ops, int level) {
  int e = ag_code_add(p, AG_CODE_VAR, -1, -1, -1, 0);
  for (int k = 0; k < ops && e >= 0; k++) {
    ag_code_op op = draw_op(rng, level);
    if (op == AG_CODE_ABS) {
      e = ag_code_add(p, AG_CODE_ABS, e, -1, -1, 0);
      continue;
    }
    int c = literal_for(p, rng, op, level);
    bool left = (op == AG_CODE_SUB && ag_rng_below(rng, 3) == 0) ||
                ((op == AG_CODE_ADD || op == AG_CODE_MUL) && ag_rng_below(rng, 5) == 0);
    e = left ? ag_code_add(p, op, c, e, -1, 0) : ag_code_add(p, op, e, c, -1, 0);
  }
  return e;
}

/* A random expression with exactly `ops` operators whose leaves are x or
 * literals: x may occur several times (x * x + 1, max(x, 4 - x)). */
static int gen_tree(ag_code_program *p, ag_rng *rng, int ops, int level) {
  if (ops == 0) {
    if (ag_rng_below(rng, 3)) return ag_code_add(p, AG_CODE_VAR, -1, -1, -1, 0);
    return literal(p, pick(rng, 1, 9));
  }
  ag_code_op op = draw_op(rng, level);
  if (op == AG_CODE_ABS) {
    int a = gen_tree(p, rng, ops - 1, level);
    return a < 0 ? -1 : ag_code_add(p, op, a, -1, -1, 0);
  }
  int left = pick(rng, 0, ops - 1);
  int a = gen_tree(p, rng, left, level);
  int b = gen_tree(p, rng, ops - 1 - left, level);
  return a < 0 || b < 0 ? -1 : ag_code_add(p, op, a, b, -1, 0);
}

/* Mostly chains; one in four a tree. */
static int gen_arith(ag_code_program *p, ag_rng *rng, int ops, int level) {
  if (ops == 0)
    return ag_rng_below(rng, 3) ? ag_code_add(p, AG_CODE_VAR, -1, -1, -1, 0)
                                : literal(p, pick(rng, 0, 9));
  return ag_rng_below(rng, 4) ? gen_chain(p, rng, ops, level) : gen_tree(p, rng, ops, level);
}

/* x compared with a threshold. */
static int gen_comparison(ag_code_program *p, ag_rng *rng, bool equality) {
  static const ag_code_op ORDER[] = {AG_CODE_LT, AG_CODE_LE, AG_CODE_GT, AG_CODE_GE};
  ag_code_op op =
      equality ? (ag_rng_below(rng, 2) ? AG_CODE_EQ : AG_CODE_NE) : ORDER[ag_rng_below(rng, 4)];
  int x = ag_code_add(p, AG_CODE_VAR, -1, -1, -1, 0);
  return ag_code_add(p, op, x, literal(p, pick(rng, -5, 8)), -1, 0);
}

/* Level 4 conditions: a remainder or an equality. (Ranges, x > 2 and
 * x < 6, are not drawn: pinning down both ends and both branches takes
 * more than five examples.) */
static int gen_special_condition(ag_code_program *p, ag_rng *rng) {
  if (ag_rng_below(rng, 2)) return gen_comparison(p, rng, true);
  int x = ag_code_add(p, AG_CODE_VAR, -1, -1, -1, 0);
  int k = pick(rng, 2, 3), r = pick(rng, 0, k - 1);
  int m = ag_code_add(p, AG_CODE_MOD, x, literal(p, k), -1, 0);
  return ag_code_add(p, ag_rng_below(rng, 4) ? AG_CODE_EQ : AG_CODE_NE, m, literal(p, r), -1, 0);
}

/* if cond then a else b: one branch a leaf (x or a literal), the other a
 * chain of lo_ops..hi_ops steps of + - *, so that a few examples can pin
 * both down. */
static int gen_conditional(ag_code_program *p, ag_rng *rng, int cond, int lo_ops, int hi_ops,
                           int level) {
  int a = gen_arith(p, rng, 0, level);
  int b = gen_chain(p, rng, pick(rng, lo_ops, hi_ops), 0);
  if (cond < 0 || a < 0 || b < 0) return -1;
  return ag_rng_below(rng, 2) ? ag_code_add(p, AG_CODE_IF, cond, a, b, 0)
                              : ag_code_add(p, AG_CODE_IF, cond, b, a, 0);
}

/* Kinds of program per level, drawn once per task (so that rejecting
 * drafts does not shift the mix towards the kinds rejected least). */
static int kinds_of(int level) { return level <= 2 ? 1 : level == 3 ? 2 : 3; }

/* Level 1: one operation; 2: two; 3: three, or if-then-else on a
 * threshold; 4: three or four, or if-then-else on a remainder or an
 * equality, or on a threshold with a longer branch. */
static void gen_program(ag_code_program *p, ag_rng *rng, int level, int kind) {
  ag_code_init(p);
  int root;
  if (level <= 2)
    root = gen_arith(p, rng, level, level);
  else if (kind == 0)
    root = gen_arith(p, rng, level == 3 ? 3 : pick(rng, 3, 4), level);
  else if (level == 3)
    root = gen_conditional(p, rng, gen_comparison(p, rng, false), 1, 1, 3);
  else if (kind == 1)
    root = gen_conditional(p, rng, gen_special_condition(p, rng), 1, 2, 4);
  else
    root = gen_conditional(p, rng, gen_comparison(p, rng, false), 2, 2, 4);
  p->root = root;
}

/* Nodes of the shortest way to write a*x + b: x, -x, x + 3, 3 - x, x * 2,
 * -x - 3, x * 2 + 1. */
static int linear_size(int64_t a, int64_t b) {
  if (b == 0) return a == 1 ? 1 : a == -1 ? 2 : 3;
  if (a == 1 || (a == -1 && b > 0)) return 3;
  return a == -1 ? 4 : 5;
}

/* A program that computes a*x + b on the domain in more nodes than that
 * needs (x + 8 + 4, x * 2 * 3): constants the search cannot fold when their
 * sum leaves its literal range. */
static bool needlessly_linear(const ag_code_program *p, const int64_t *y) {
  int64_t a = y[1] - y[0], b = y[-DOMAIN_LO]; /* f(0) */
  for (int i = 1; i < DOMAIN_SIZE; i++)
    if (y[i] - y[i - 1] != a) return false;
  return ag_code_size(p) > linear_size(a, b);
}

static bool is_literal(const ag_code_program *p, int node) {
  const ag_code_node *n = &p->nodes[node];
  return n->op == AG_CODE_CONST ||
         (n->op == AG_CODE_NEG && p->nodes[n->kid[0]].op == AG_CODE_CONST);
}

static int64_t literal_value(const ag_code_program *p, int node) {
  const ag_code_node *n = &p->nodes[node];
  return n->op == AG_CODE_CONST ? n->value : -p->nodes[n->kid[0]].value;
}

static bool same_tree(const ag_code_program *p, int a, int b) {
  if (a < 0 || b < 0) return a == b;
  const ag_code_node *m = &p->nodes[a], *n = &p->nodes[b];
  if (m->op != n->op || m->value != n->value) return false;
  for (int i = 0; i < 3; i++)
    if (!same_tree(p, m->kid[i], n->kid[i])) return false;
  return true;
}

/* Literals in the chain of `op` (or + and - together) below node: two of
 * them fold into one (x + 8 - 3, x * 2 * 3, min(min(x, 3), 5)). */
static int chain_literals(const ag_code_program *p, int node, int op) {
  const ag_code_node *n = &p->nodes[node];
  if (is_literal(p, node)) return 1;
  bool additive = op == AG_CODE_ADD || op == AG_CODE_SUB;
  bool same = additive ? n->op == AG_CODE_ADD || n->op == AG_CODE_SUB : n->op == op;
  if (!same) return 0;
  return chain_literals(p, n->kid[0], op) + chain_literals(p, n->kid[1], op);
}

/* A program a person would write: no constant subterms but literals
 * (2 + 3, abs(4)), no operator that does nothing (x + 0, x * 1, x / 1,
 * abs(abs(x)), --x), no operator on two equal operands (x - x, min(x, x)),
 * no literals left to fold, no if-then-else with equal branches. */
static bool natural(const ag_code_program *p, int node) {
  const ag_code_node *n = &p->nodes[node];
  if (n->op == AG_CODE_CONST || n->op == AG_CODE_VAR || is_literal(p, node)) return true;
  if (!ag_code_uses_x(p, node)) return false;
  int a = n->kid[0], b = n->kid[1];
  switch ((ag_code_op)n->op) {
  case AG_CODE_ABS:
  case AG_CODE_NEG:
    if (p->nodes[a].op == AG_CODE_ABS || p->nodes[a].op == AG_CODE_NEG) return false;
    break;
  case AG_CODE_ADD:
  case AG_CODE_SUB:
  case AG_CODE_MUL:
  case AG_CODE_MIN:
  case AG_CODE_MAX:
    if (chain_literals(p, node, n->op) >= 2) return false;
    /* fall through */
  case AG_CODE_DIV:
  case AG_CODE_MOD:
    /* / and % divide by a literal, and not twice in a row (x / 2 / 3 is
     * x / 6): the search enumerates no other form */
    if ((n->op == AG_CODE_DIV || n->op == AG_CODE_MOD) &&
        (!is_literal(p, b) || p->nodes[a].op == n->op))
      return false;
    if (same_tree(p, a, b)) return false;
    if (is_literal(p, b) || is_literal(p, a)) {
      int64_t k = literal_value(p, is_literal(p, b) ? b : a);
      bool right = is_literal(p, b);
      if ((n->op == AG_CODE_ADD || n->op == AG_CODE_SUB) && k == 0) return false;
      if (n->op == AG_CODE_MUL && (k == 0 || k == 1 || k == -1)) return false;
      if ((n->op == AG_CODE_DIV || n->op == AG_CODE_MOD) && right && (k == 1 || k == -1 || k == 0))
        return false;
    }
    break;
  case AG_CODE_IF:
    if (same_tree(p, b, n->kid[2])) return false;
    break;
  default: break;
  }
  for (int i = 0; i < 3; i++)
    if (n->kid[i] >= 0 && !natural(p, n->kid[i])) return false;
  return true;
}

/* Whether the program has a shape ag_code_search enumerates (a small
 * term; t1 + t2, t1 - t2, t1 * t2 of small terms; if c then t1 else t2):
 * the search may find an equivalent of another shape, but rarely does,
 * and ruling those out first saves searching for nothing. */
static bool searchable(const ag_code_program *p) {
  ag_code_search_limits lim = ag_code_search_default_limits();
  int size = ag_code_size(p);
  if (size <= lim.term_size) return true;
  if (size > lim.max_size) return false;
  const ag_code_node *n = &p->nodes[p->root];
  ag_code_program sub = *p;
  int sizes[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) {
    sub.root = n->kid[i];
    sizes[i] = n->kid[i] >= 0 ? ag_code_size(&sub) : 0;
  }
  switch ((ag_code_op)n->op) {
  case AG_CODE_ADD:
  case AG_CODE_SUB:
  case AG_CODE_MUL: return sizes[0] <= lim.term_size && sizes[1] <= lim.term_size;
  case AG_CODE_IF:
    return sizes[0] <= lim.condition_size && sizes[1] <= lim.term_size && sizes[2] <= lim.term_size;
  default: return false;
  }
}

/* Distinct values among v[0, n). */
static int distinct_values(const int64_t *v, int n) {
  int distinct = 0;
  for (int i = 0; i < n; i++) {
    bool seen = false;
    for (int j = 0; j < i && !seen; j++) seen = v[j] == v[i];
    distinct += !seen;
  }
  return distinct;
}

/* The program's outputs on the whole domain; false on a runtime error or
 * an output out of bounds, or when the function is nearly constant: fewer
 * than 3 values, or one value on more than half the domain (max(x, 8)). */
static bool domain_outputs(const ag_code_program *p, int64_t *y) {
  for (int i = 0; i < DOMAIN_SIZE; i++) {
    if (ag_code_eval(p, DOMAIN_LO + i, &y[i]) != AG_CODE_EVAL_OK) return false;
    if (y[i] < -OUTPUT_BOUND || y[i] > OUTPUT_BOUND) return false;
  }
  for (int i = 0; i < DOMAIN_SIZE; i++) {
    int same = 0;
    for (int j = 0; j < DOMAIN_SIZE; j++) same += y[j] == y[i];
    if (same > DOMAIN_SIZE / 2) return false;
  }
  return distinct_values(y, DOMAIN_SIZE) >= 3;
}

/* Inputs of the domain where q differs from the outputs y (or fails). */
static int disagreements(const ag_code_program *q, const int64_t *y, int64_t *where) {
  int count = 0;
  for (int i = 0; i < DOMAIN_SIZE; i++) {
    int64_t v;
    if (ag_code_eval(q, DOMAIN_LO + i, &v) != AG_CODE_EVAL_OK || v != y[i])
      where[count++] = DOMAIN_LO + i;
  }
  return count;
}

/* Chooses the examples: inputs around the kinks (below), filled up to three
 * with random ones; then, while the smallest program the search finds for
 * them differs from the reference somewhere on the domain, one input where
 * it differs, at a random place (up to MAX_VISIBLE). The examples are then
 * informative: their simplest explanation computes the reference's
 * function. The last search is exactly the first step of
 * code_solve on the finished task, which therefore solves it. *status is
 * set on a search failure (out of memory). */
static bool choose_examples(const int64_t *y, ag_rng *rng, int64_t *vx, int *nv, int *found_size,
                            ag_status *status) {
  /* Kinks: inputs where the outputs stop following a straight line (the
   * threshold of an if, the corner of min, max or abs). Without examples
   * around them no set of examples pins a threshold down, so the first
   * examples are the inputs of each run of neighbouring kinks (a lone kink
   * with its neighbours, a long run: two neighbouring inputs in it) when
   * that takes at most 4 examples, else those of one run. */
  int run_lo[DOMAIN_SIZE] = {0}, run_hi[DOMAIN_SIZE] = {0}, runs = 0;
  for (int i = 1; i + 1 < DOMAIN_SIZE; i++) {
    if (y[i + 1] - y[i] == y[i] - y[i - 1]) continue;
    if (runs > 0 && run_hi[runs - 1] == i - 1)
      run_hi[runs - 1] = i;
    else
      run_lo[runs] = run_hi[runs] = i, runs++;
  }
  int seed_lo[DOMAIN_SIZE] = {0}, seed_hi[DOMAIN_SIZE] = {0}, seeds = 0;
  for (int r = 0; r < runs; r++) {
    int lo = run_lo[r], hi = run_hi[r];
    if (lo == hi) {
      lo--, hi++;
    } else if (hi - lo > 2) {
      lo = pick(rng, lo, hi - 1);
      hi = lo + 1;
    }
    seed_lo[r] = lo, seed_hi[r] = hi;
    seeds += hi - lo + 1;
  }
  bool taken[DOMAIN_SIZE] = {false};
  int from = 0, to = runs;
  if (seeds > MAX_VISIBLE - 1 && runs > 0) { /* too many: one run */
    from = (int)ag_rng_below(rng, (uint64_t)runs);
    to = from + 1;
    if (runs > 3) to = from; /* periodic (x % 3): no run stands out */
  }
  int64_t order[DOMAIN_SIZE];
  int first = 0;
  for (int r = from; r < to; r++)
    for (int i = seed_lo[r]; i <= seed_hi[r]; i++)
      if (!taken[i]) taken[i] = true, order[first++] = DOMAIN_LO + i;
  int n = first;
  for (int i = 0; i < DOMAIN_SIZE; i++)
    if (!taken[i]) order[n++] = DOMAIN_LO + i;
  ag_rng_shuffle_i64(rng, order + first, DOMAIN_SIZE - first);
  /* the examples in random order, so that the kinks are not always first */
  *nv = first > MIN_VISIBLE ? first : MIN_VISIBLE;
  ag_rng_shuffle_i64(rng, order, *nv);
  memcpy(vx, order, (size_t)*nv * sizeof *vx);
  ag_code_search_limits lim = ag_code_search_default_limits();
  for (;;) {
    int64_t vy[MAX_VISIBLE];
    for (int i = 0; i < *nv; i++) vy[i] = y[vx[i] - DOMAIN_LO];
    ag_code_program q;
    bool found;
    if ((*status = ag_code_search(vx, vy, *nv, &lim, &q, &found)) || !found) return false;
    int64_t where[DOMAIN_SIZE];
    int count = disagreements(&q, y, where);
    if (count == 0) {
      *found_size = ag_code_size(&q);
      return true;
    }
    if (*nv == MAX_VISIBLE) return false;
    int at = (int)ag_rng_below(rng, (uint64_t)*nv + 1);
    memmove(vx + at + 1, vx + at, (size_t)(*nv - at) * sizeof *vx);
    vx[at] = where[ag_rng_below(rng, (uint64_t)count)];
    (*nv)++;
  }
}

/* The program text with x replaced by v: "5 * (x + 4)" at -9 is
 * "5 * (-9 + 4)"; a negative v is parenthesised unless it opens the
 * expression, a parenthesis or an argument ("3 - (-2)", "abs(-2)"). */
static void append_substituted(ag_strbuf *b, const char *program, int64_t v) {
  for (const char *p = program; *p; p++) {
    bool word = (p > program && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) ||
                isalnum((unsigned char)p[1]) || p[1] == '_';
    if (*p != 'x' || word) {
      ag_strbuf_append(b, p, 1);
      continue;
    }
    const char *q = p;
    while (q > program && q[-1] == ' ') q--;
    bool bare = v >= 0 || q == program || q[-1] == '(' || q[-1] == ',';
    ag_strbuf_printf(b, bare ? "%lld" : "(%lld)", (long long)v);
  }
}

static void append_examples(ag_strbuf *b, const int64_t *x, const int64_t *y, int n,
                            const char *sep) {
  for (int i = 0; i < n; i++)
    ag_strbuf_printf(b, "%sf(%lld) = %lld", i ? sep : "", (long long)x[i], (long long)y[i]);
}

static ag_status code_generate(int level, uint64_t seed, int64_t index, ag_task *out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "code generate: no output task");
  memset(out, 0, sizeof *out);
  if (level < 1 || level > MAX_LEVEL)
    return ag_error_set(AG_ERR_INVALID, "code: level %d out of range 1..%d", level, MAX_LEVEL);
  ag_rng rng;
  ag_task_rng(&rng, "code", level, seed, index);
  int kind = (int)ag_rng_below(&rng, (uint64_t)kinds_of(level));
  for (int draw = 0; draw < MAX_DRAWS; draw++) {
    ag_code_program ref;
    gen_program(&ref, &rng, level, kind);
    int64_t y[DOMAIN_SIZE];
    if (ref.root < 0 || !ag_code_uses_x(&ref, ref.root) || !natural(&ref, ref.root) ||
        !searchable(&ref) || !domain_outputs(&ref, y) || needlessly_linear(&ref, y))
      continue;
    int64_t tx[MAX_TESTS], ty[MAX_TESTS];
    int nv = 0, found_size = 0;
    ag_status st = AG_OK;
    if (!choose_examples(y, &rng, tx, &nv, &found_size, &st)) {
      if (st) return st;
      continue;
    }
    /* a smaller program computes the same function: the reference is a
     * needlessly long way of writing it (x * 1, abs(abs(x)), ...) */
    if (found_size < ag_code_size(&ref)) continue;
    /* hidden tests: other inputs of the domain */
    int hidden = 4 + level + (int)ag_rng_below(&rng, 2);
    int64_t rest[DOMAIN_SIZE];
    int nrest = 0;
    for (int64_t v = DOMAIN_LO; v <= DOMAIN_HI; v++) {
      bool shown = false;
      for (int i = 0; i < nv; i++) shown = shown || tx[i] == v;
      if (!shown) rest[nrest++] = v;
    }
    ag_rng_shuffle_i64(&rng, rest, nrest);
    int total = nv + hidden;
    for (int i = nv; i < total; i++) tx[i] = rest[i - nv];
    for (int i = 0; i < total; i++) ty[i] = y[tx[i] - DOMAIN_LO];
    if (distinct_values(ty, total) < 3) continue; /* the tests would look constant */

    char answer[512];
    if (!ag_code_print(&ref, answer, sizeof answer))
      return ag_error_set(AG_ERR_INTERNAL, "code generate: program does not print");
    ag_strbuf problem = {0}, solution = {0};
    ag_strbuf_printf(&problem, "%s\n", goal_text(level));
    append_examples(&problem, tx, ty, nv, "\n");
    ag_strbuf_printf(&problem, "\n%s", FORMAT_LINE);
    /* the reasoning a student can learn: a guess, checked on each example */
    ag_strbuf_printf(&solution, "Try f(x) = %s.\n", answer);
    for (int i = 0; i < nv; i++) {
      ag_strbuf_printf(&solution, "f(%lld) = ", (long long)tx[i]);
      append_substituted(&solution, answer, tx[i]);
      ag_strbuf_printf(&solution, " = %lld\n", (long long)ty[i]);
    }
    ag_strbuf_printf(&solution, "It fits every example.\nAnswer: %s", answer);
    json_t *data = json_object();
    if (data) {
      json_object_set_new(data, "visible", pairs_json(tx, ty, 0, nv));
      json_object_set_new(data, "hidden", pairs_json(tx, ty, nv, total));
    }
    char *ptext = ag_strbuf_take(&problem), *stext = ag_strbuf_take(&solution);
    if (!ptext || !stext || !data || json_object_size(data) != 2) {
      free(ptext);
      free(stext);
      json_decref(data);
      return ag_error_set(AG_ERR_NOMEM, "code generate: out of memory");
    }
    st = ag_task_fill(out, "code", level, seed, index, ptext, answer, stext, data);
    free(ptext);
    free(stext);
    return st;
  }
  return ag_error_set(AG_ERR_INTERNAL, "code generate: no task after %d draws (level %d)",
                      MAX_DRAWS, level);
}

/* ---- verifier ----------------------------------------------------------------------- */

/* The program in an attempt line: tolerates "f(x) =" before it, backticks
 * around it and a full stop after it. [*start, *end) within line. */
static void program_span(const char *line, size_t *start, size_t *end) {
  size_t s = 0, e = strlen(line);
  const char *p = line;
  while (*p == ' ' || *p == '`') p++;
  if (p[0] == 'f') {
    const char *q = p + 1;
    while (*q == ' ') q++;
    if (*q == '(') {
      q++;
      while (*q == ' ') q++;
      if (*q == 'x') {
        q++;
        while (*q == ' ') q++;
        if (*q == ')') {
          q++;
          while (*q == ' ') q++;
          if (q[0] == '=' && q[1] != '=') p = q + 1;
        }
      }
    }
  }
  s = (size_t)(p - line);
  while (line[s] == ' ' || line[s] == '`') s++;
  while (e > s && (line[e - 1] == ' ' || line[e - 1] == '`' || line[e - 1] == '.')) e--;
  *start = s;
  *end = e;
}

typedef struct run_stats {
  int failed, too_large, too_small;
  const char *region;
  bool same_offset, gap_grows;
} run_stats;

static int64_t magnitude(int64_t v) { return v < 0 ? -v : v; }

/* Where and which way the outputs miss (got[i] valid for every test). */
static run_stats miss_stats(const code_tests *t, const int64_t *got) {
  run_stats s = {0};
  bool all_negative = true, all_positive = true;
  int64_t max_pass = -1, min_pass = INT64_MAX, min_fail = INT64_MAX, max_fail = -1;
  int64_t offset = 0;
  s.same_offset = true;
  /* failing tests by |x| for the growth check (at most MAX_TESTS) */
  int64_t fx[MAX_TESTS], gap[MAX_TESTS];
  int nf = 0;
  for (int i = 0; i < t->total; i++) {
    int64_t m = magnitude(t->x[i]);
    if (got[i] == t->y[i]) {
      if (m > max_pass) max_pass = m;
      if (m < min_pass) min_pass = m;
      continue;
    }
    /* outputs of a passing program are within int64 of each other only
     * when both are moderate; compare without subtracting */
    if (got[i] > t->y[i])
      s.too_large++;
    else
      s.too_small++;
    int64_t d;
    if (__builtin_sub_overflow(got[i], t->y[i], &d)) d = got[i] > t->y[i] ? INT64_MAX : INT64_MIN;
    if (s.failed == 0)
      offset = d;
    else if (d != offset)
      s.same_offset = false;
    s.failed++;
    all_negative = all_negative && t->x[i] < 0;
    all_positive = all_positive && t->x[i] > 0;
    if (m < min_fail) min_fail = m;
    if (m > max_fail) max_fail = m;
    fx[nf] = m;
    gap[nf++] = d == INT64_MIN ? INT64_MAX : magnitude(d);
  }
  if (s.failed < t->total) s.same_offset = false;
  if (s.failed == t->total)
    s.region = "every input";
  else if (all_negative)
    s.region = "negative inputs";
  else if (all_positive)
    s.region = "positive inputs";
  else if (min_fail > max_pass)
    s.region = "inputs far from zero";
  else if (max_fail < min_pass)
    s.region = "inputs close to zero";
  else
    s.region = "some inputs";
  /* insertion sort by |x|, then: does the gap grow with |x|? */
  for (int i = 1; i < nf; i++)
    for (int j = i; j > 0 && fx[j - 1] > fx[j]; j--) {
      int64_t a = fx[j], b = gap[j];
      fx[j] = fx[j - 1], gap[j] = gap[j - 1];
      fx[j - 1] = a, gap[j - 1] = b;
    }
  if (nf >= 3 && !s.same_offset) {
    bool grows = gap[nf - 1] > gap[0] && fx[nf - 1] > fx[0];
    for (int i = 1; grows && i < nf; i++) grows = gap[i] >= gap[i - 1];
    s.gap_grows = grows;
  }
  return s;
}

#define SET(obj, key, value) ok = ok && json_object_set_new((obj), (key), (value)) == 0

static ag_status code_verify(const ag_task *task, const char *attempt, ag_verdict *out) {
  memset(out, 0, sizeof *out);
  code_tests t;
  ag_status st = read_tests(task, &t);
  if (st) return st;
  char *line = ag_first_line(attempt ? attempt : "");
  if (!line) return ag_error_set(AG_ERR_NOMEM, "code verify: out of memory");
  size_t s, e;
  program_span(line, &s, &e);
  ag_code_program prog;
  ag_code_error err;
  bool ok = true;
  if (!ag_code_parse(line + s, e - s, &prog, &err)) {
    free(line);
    if ((st = ag_verdict_init(out, false, false, "syntax_error"))) return st;
    SET(out->diagnostics, "position", json_integer((json_int_t)s + err.position + 1));
    SET(out->diagnostics, "message", json_string(err.message));
    if (!ok) ag_verdict_clear(out);
    return ok ? AG_OK : ag_error_set(AG_ERR_NOMEM, "code verify: out of memory");
  }
  free(line);
  int64_t got[MAX_TESTS] = {0};
  int crash = -1;
  ag_code_eval_status crash_status = AG_CODE_EVAL_OK;
  for (int i = 0; i < t.total && crash < 0; i++) {
    ag_code_eval_status r = ag_code_eval(&prog, t.x[i], &got[i]);
    if (r != AG_CODE_EVAL_OK) crash = i, crash_status = r;
  }
  if (crash >= 0) {
    if ((st = ag_verdict_init(out, false, true, "runtime_error"))) return st;
    SET(out->diagnostics, "error", json_string(ag_code_eval_status_name(crash_status)));
    SET(out->diagnostics, "input", json_integer((json_int_t)t.x[crash]));
    SET(out->diagnostics, "visible", json_boolean(crash < t.visible));
  } else {
    int first = -1, failed = 0;
    for (int i = 0; i < t.total; i++)
      if (got[i] != t.y[i]) {
        failed++;
        if (first < 0) first = i; /* visible tests come first */
      }
    if (failed == 0) {
      if ((st = ag_verdict_init(out, true, true, "correct"))) return st;
      SET(out->diagnostics, "total", json_integer(t.total));
    } else {
      run_stats rs = miss_stats(&t, got);
      if ((st = ag_verdict_init(out, false, true, "failing_test"))) return st;
      SET(out->diagnostics, "input", json_integer((json_int_t)t.x[first]));
      SET(out->diagnostics, "expected", json_integer((json_int_t)t.y[first]));
      SET(out->diagnostics, "got", json_integer((json_int_t)got[first]));
      SET(out->diagnostics, "visible", json_boolean(first < t.visible));
      SET(out->diagnostics, "failed", json_integer(failed));
      SET(out->diagnostics, "total", json_integer(t.total));
      SET(out->diagnostics, "too_large", json_integer(rs.too_large));
      SET(out->diagnostics, "too_small", json_integer(rs.too_small));
      SET(out->diagnostics, "region", json_string(rs.region));
      SET(out->diagnostics, "same_offset", json_boolean(rs.same_offset));
      SET(out->diagnostics, "gap_grows", json_boolean(rs.gap_grows));
    }
  }
  if (!ok) {
    ag_verdict_clear(out);
    return ag_error_set(AG_ERR_NOMEM, "code verify: out of memory");
  }
  return AG_OK;
}

/* ---- feedback ----------------------------------------------------------------------- */

/* Each list: four training phrasings, then four held-out ones. Slots:
 * {D} direction, {R} region, {X} input, {G} got, {E} expected, {W} what
 * went wrong at run time, {M} the parser's message. */
static const char *const REGION_PHRASES[] = {
    "Your program's outputs are {D} for {R}.",
    "For {R}, your program gives values that are {D}.",
    "You fail on {R}: the results come out {D}.",
    "Check {R} again; your outputs there are {D}.",
    "On {R} your function returns numbers that are {D}.",
    "Your answer goes wrong for {R}, where it is {D}.",
    "Test {R}: what your program returns is {D}.",
    "The values your program computes for {R} are {D}.",
};
static const char *const OFFSET_PHRASES[] = {
    "Every output of yours is {D} by the same amount.",
    "Your program is off by a constant: all its outputs are {D}.",
    "All your results are {D}, each by the same difference.",
    "Your outputs are shifted: every one is {D} by one fixed amount.",
    "Each value your program returns is {D}, always by the same margin.",
    "Your function is off by a fixed amount everywhere; its outputs are {D}.",
    "The whole output of your program is {D} by a constant shift.",
    "Your answers are uniformly {D}: the same gap on every input.",
};
static const char *const GROWTH_PHRASES[] = {
    "The gap grows as x moves away from zero.",
    "The further x is from zero, the bigger the error.",
    "Your error gets bigger as x gets further from zero.",
    "The mistake widens as x grows in size.",
    "The difference increases with the size of x.",
    "Your program drifts further off as x moves away from zero.",
    "The larger x is in size, the more your result misses.",
    "The error is not constant: it grows with the size of x.",
};
static const char *const TEST_PHRASES[] = {
    "For x = {X} your program gives {G}, but it should give {E}.",
    "Your program returns {G} for x = {X}; the expected output is {E}.",
    "Try x = {X}: you get {G}, but f({X}) = {E}.",
    "On input {X} the result should be {E}, not {G}.",
    "With x = {X} your function outputs {G} instead of {E}.",
    "f({X}) must be {E}, yet your program computes {G}.",
    "Check x = {X}: expected {E}, got {G}.",
    "Your answer fails at x = {X}, giving {G} where {E} is needed.",
};
static const char *const SHOWN_PHRASES[] = {
    "That is one of the examples you were given.",
    "This example is in the problem.",
    "You can see this case in the examples.",
    "That case is one of the given examples.",
    "It is among the examples in the problem statement.",
    "This one appears in the examples above.",
    "You were shown this case.",
    "The problem lists this example.",
};
static const char *const HIDDEN_PHRASES[] = {
    "That input is not among the examples.",
    "This is a hidden test, not one of the examples.",
    "The examples do not show this case.",
    "This case is not in the problem, but your program must handle it.",
    "It is one of the hidden tests.",
    "You were not shown this input.",
    "This test is not among the given examples.",
    "No example covers this input.",
};
static const char *const CRASH_PHRASES[] = {
    "Your program crashes on some inputs: it {W}.",
    "For some inputs your program {W}.",
    "Your program does not run on every input; it {W}.",
    "On at least one input your program {W}.",
    "Some inputs make your function fail: it {W}.",
    "Your program breaks for certain values of x, because it {W}.",
    "There are inputs where your program {W}.",
    "Not every x works: your program {W}.",
};
static const char *const CRASH_AT_PHRASES[] = {
    "For x = {X} your program {W}.",
    "Your program {W} when x = {X}.",
    "Try x = {X}: your program {W}.",
    "At x = {X} your program {W}.",
    "With input {X} your function {W}.",
    "Your program fails at x = {X}: it {W}.",
    "Running your program on x = {X}, it {W}.",
    "Input {X} makes your program fail: it {W}.",
};
static const char *const SYNTAX_PHRASES[] = {
    "Your answer is not a valid program: {M}.",
    "That does not parse as an expression: {M}.",
    "I cannot read your program: {M}.",
    "Your expression has a syntax error: {M}.",
    "The program you wrote is not well-formed: {M}.",
    "Your answer cannot be run: {M}.",
    "This is not an expression of the language: {M}.",
    "There is a mistake in how your program is written: {M}.",
};
static const char *const WRONG_PHRASES[] = {
    "That is not correct.", "Not quite.", "That program is wrong.", "No, that is not it.",
    "That is incorrect.",   "Not right.", "That program fails.",    "No, that does not work.",
};
#define PHRASES(list) (list), (int)(sizeof(list) / sizeof *(list))

/* Appends tpl with {K} replaced by the value of key K. */
static void render(ag_strbuf *b, const char *tpl, const char *keys, const char *const *values) {
  for (const char *p = tpl; *p; p++) {
    const char *k = p[0] == '{' && p[1] && p[2] == '}' ? strchr(keys, p[1]) : NULL;
    if (k) {
      ag_strbuf_printf(b, "%s", values[k - keys]);
      p += 2;
    } else {
      ag_strbuf_append(b, p, 1);
    }
  }
}

static const char *crash_words(const char *error) {
  if (strcmp(error, "division_by_zero") == 0) return "divides by zero";
  if (strcmp(error, "overflow") == 0) return "overflows (its numbers get too big)";
  return "runs for too long";
}

static ag_status code_feedback(const ag_task *task, const ag_verdict *verdict,
                               ag_feedback_level level, ag_phrasing_set set, ag_rng *rng,
                               char **out) {
  *out = NULL;
  if (!verdict || !verdict->diagnostics)
    return ag_error_set(AG_ERR_INVALID, "code feedback: no verdict diagnostics");
  const json_t *d = verdict->diagnostics;
  const char *kind = json_string_value(json_object_get(d, "kind"));
  if (!kind) return ag_error_set(AG_ERR_FORMAT, "code feedback: diagnostics without kind");
  ag_strbuf b = {0};
  bool localised = level >= AG_FEEDBACK_LOCALISED;
  char x[24], g[24], e[24], pos[24];
  snprintf(x, sizeof x, "%lld", (long long)json_integer_value(json_object_get(d, "input")));
  snprintf(g, sizeof g, "%lld", (long long)json_integer_value(json_object_get(d, "got")));
  snprintf(e, sizeof e, "%lld", (long long)json_integer_value(json_object_get(d, "expected")));
  if (strcmp(kind, "correct") == 0) {
    ag_strbuf_printf(&b, "Your program is correct.");
  } else if (level == AG_FEEDBACK_BINARY) {
    render(&b, ag_pick_phrasing(PHRASES(WRONG_PHRASES), set, rng), "", NULL);
  } else if (strcmp(kind, "syntax_error") == 0) {
    const char *msg = json_string_value(json_object_get(d, "message"));
    char text[256];
    snprintf(pos, sizeof pos, "%lld",
             (long long)json_integer_value(json_object_get(d, "position")));
    snprintf(text, sizeof text, "%s%s%s", msg ? msg : "it does not parse",
             localised ? " (at character " : "", localised ? pos : "");
    if (localised) strncat(text, ")", sizeof text - strlen(text) - 1);
    const char *values[] = {text};
    render(&b, ag_pick_phrasing(PHRASES(SYNTAX_PHRASES), set, rng), "M", values);
  } else if (strcmp(kind, "runtime_error") == 0) {
    const char *error = json_string_value(json_object_get(d, "error"));
    const char *values[] = {crash_words(error ? error : ""), x};
    if (localised)
      render(&b, ag_pick_phrasing(PHRASES(CRASH_AT_PHRASES), set, rng), "WX", values);
    else
      render(&b, ag_pick_phrasing(PHRASES(CRASH_PHRASES), set, rng), "WX", values);
  } else if (strcmp(kind, "failing_test") == 0) {
    if (localised) {
      const char *values[] = {x, g, e};
      render(&b, ag_pick_phrasing(PHRASES(TEST_PHRASES), set, rng), "XGE", values);
      ag_strbuf_printf(&b, " ");
      bool shown = json_is_true(json_object_get(d, "visible"));
      render(&b,
             shown ? ag_pick_phrasing(PHRASES(SHOWN_PHRASES), set, rng)
                   : ag_pick_phrasing(PHRASES(HIDDEN_PHRASES), set, rng),
             "", NULL);
    } else {
      json_int_t large = json_integer_value(json_object_get(d, "too_large"));
      json_int_t small = json_integer_value(json_object_get(d, "too_small"));
      const char *region = json_string_value(json_object_get(d, "region"));
      const char *dir = small == 0   ? "too large"
                        : large == 0 ? "too small"
                                     : "sometimes too large and sometimes too small";
      const char *values[] = {dir, region ? region : "some inputs"};
      if (json_is_true(json_object_get(d, "same_offset")))
        render(&b, ag_pick_phrasing(PHRASES(OFFSET_PHRASES), set, rng), "DR", values);
      else
        render(&b, ag_pick_phrasing(PHRASES(REGION_PHRASES), set, rng), "DR", values);
      if (json_is_true(json_object_get(d, "gap_grows"))) {
        ag_strbuf_printf(&b, " ");
        render(&b, ag_pick_phrasing(PHRASES(GROWTH_PHRASES), set, rng), "", NULL);
      }
    }
  } else {
    render(&b, ag_pick_phrasing(PHRASES(WRONG_PHRASES), set, rng), "", NULL);
  }
  (void)task;
  *out = ag_strbuf_take(&b);
  return *out ? AG_OK : ag_error_set(AG_ERR_NOMEM, "code feedback: out of memory");
}

/* ---- leak guard --------------------------------------------------------------------- */

/* text without whitespace, malloc'd */
static char *squeeze(const char *text) {
  char *s = malloc(strlen(text) + 1);
  if (!s) return NULL;
  size_t n = 0;
  for (const char *p = text; *p; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') s[n++] = *p;
  s[n] = '\0';
  return s;
}

static bool word_at(const char *p, const char *start, const char *word, size_t *len) {
  size_t n = strlen(word);
  if (p > start && ((p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z'))) return false;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != word[i]) return false;
  }
  char c = p[n];
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return false;
  *len = n;
  return true;
}

/* How people write programs in prose, rewritten into the language: "2x",
 * "x times 2 plus one", "x²", "×", "−", "≤". Only for the leak scan. */
static char *lenient(const char *text) {
  static const struct {
    const char *from, *to;
  } WORDS[] = {{"multiplied by", "*"}, {"divided by", "/"}, {"plus", "+"},
               {"minus", "-"},         {"times", "*"},      {"modulo", "%"},
               {"mod", "%"},           {"twice", "2 *"},    {"double", "2 *"},
               {"zero", "0"},          {"one", "1"},        {"two", "2"},
               {"three", "3"},         {"four", "4"},       {"five", "5"},
               {"six", "6"},           {"seven", "7"},      {"eight", "8"},
               {"nine", "9"},          {"ten", "10"},       {"x", "x"}};
  static const struct {
    const char *from, *to;
  } GLYPHS[] = {{"\xC3\x97", "*"},
                {"\xC2\xB7", "*"},
                {"\xE2\x88\x92", "-"},
                {"\xE2\x80\x93", "-"},
                {"\xC3\xB7", "/"},
                {"\xE2\x89\xA4", "<="},
                {"\xE2\x89\xA5", ">="},
                {"\xE2\x89\xA0", "!="},
                {"\xC2\xB2", "^2"},
                {"\xC2\xB3", "^3"},
                {"**", "^"}};
  ag_strbuf b = {0};
  const char *p = text;
  while (*p) {
    bool done = false;
    for (size_t i = 0; !done && i < sizeof GLYPHS / sizeof *GLYPHS; i++) {
      size_t n = strlen(GLYPHS[i].from);
      if (strncmp(p, GLYPHS[i].from, n) == 0) {
        ag_strbuf_printf(&b, " %s ", GLYPHS[i].to);
        p += n;
        done = true;
      }
    }
    for (size_t i = 0; !done && i < sizeof WORDS / sizeof *WORDS; i++) {
      size_t n;
      if (word_at(p, text, WORDS[i].from, &n)) {
        ag_strbuf_printf(&b, " %s ", WORDS[i].to);
        p += n;
        done = true;
      }
    }
    if (done) continue;
    /* implicit products: 2x, 2(, )(, )x */
    char c = p[0], next = p[1];
    ag_strbuf_append(&b, p, 1);
    p++;
    if (((c >= '0' && c <= '9') || c == ')') && (next == 'x' || next == '(' || next == 'X'))
      ag_strbuf_printf(&b, " * ");
  }
  char *s = ag_strbuf_take(&b);
  if (!s) return NULL;
  /* powers of x: "x ^ 2" -> "(x * x)", "x ^ 3" -> "(x * x * x)" */
  ag_strbuf out = {0};
  for (const char *q = s; *q;) {
    if (*q == 'x' || *q == 'X') {
      const char *r = q + 1;
      while (*r == ' ') r++;
      if (*r == '^') {
        r++;
        while (*r == ' ') r++;
        if (*r == '2' || *r == '3') {
          ag_strbuf_printf(&out, *r == '2' ? "(x * x)" : "(x * x * x)");
          q = r + 1;
          continue;
        }
      }
    }
    ag_strbuf_append(&out, q, 1);
    q++;
  }
  free(s);
  return ag_strbuf_take(&out);
}

static bool equivalent_on_tests(const ag_code_program *p, const code_tests *t) {
  for (int i = 0; i < t->total; i++) {
    int64_t v;
    if (ag_code_eval(p, t->x[i], &v) != AG_CODE_EVAL_OK || v != t->y[i]) return false;
  }
  return true;
}

/* Some run of language tokens in text parses as a program that passes
 * every test. */
static bool mentions_solution(const char *text, const code_tests *t) {
  size_t len = strlen(text), pos = 0;
  enum { MAX_RUN = 4096 };
  size_t *starts = malloc(MAX_RUN * sizeof *starts), *ends = malloc(MAX_RUN * sizeof *ends);
  bool *is_x = malloc(MAX_RUN * sizeof *is_x);
  bool leak = false;
  if (!starts || !ends || !is_x) {
    free(starts), free(ends), free(is_x);
    return true; /* cannot check: be safe */
  }
  for (;;) {
    int n = 0;
    size_t s, e;
    ag_code_token_kind k;
    while ((k = ag_code_next_token(text, len, &pos, &s, &e)) == AG_CODE_TOKEN_LANGUAGE) {
      starts[n] = s;
      ends[n] = e;
      is_x[n] = e - s == 1 && text[s] == 'x';
      if (++n == MAX_RUN) break; /* a very long run is scanned in pieces */
    }
    for (int i = 0; !leak && i < n; i++) {
      bool has_x = false;
      for (int j = i; !leak && j < n && j < i + LEAK_SPAN_TOKENS; j++) {
        has_x = has_x || is_x[j];
        if (!has_x) continue;
        ag_code_program p;
        if (ag_code_parse(text + starts[i], ends[j] - starts[i], &p, NULL) &&
            equivalent_on_tests(&p, t))
          leak = true;
      }
    }
    if (leak || k == AG_CODE_TOKEN_END) break;
  }
  free(starts), free(ends), free(is_x);
  return leak;
}

static bool code_leaks(const ag_task *task, const char *text) {
  if (!task || !text) return false;
  bool leak = false;
  char *hay = squeeze(text), *needle = task->answer ? squeeze(task->answer) : NULL;
  if (!hay || (task->answer && !needle))
    leak = true; /* out of memory: be safe */
  else if (needle && needle[0] && strstr(hay, needle))
    leak = true;
  free(hay);
  free(needle);
  code_tests t;
  if (leak || read_tests(task, &t)) return leak;
  if (mentions_solution(text, &t)) return true;
  char *loose = lenient(text);
  if (!loose) return true;
  leak = mentions_solution(loose, &t);
  free(loose);
  return leak;
}

/* ---- solver and shards ---------------------------------------------------------------- */

/* Counterexample-guided: search for the smallest program that fits the
 * examples; while it fails a hidden test, add that test to the ones the
 * search must fit and search again. Searching few tests keeps the search's
 * bank small. */
static ag_status code_solve(const ag_task *task, char **answer) {
  *answer = NULL;
  code_tests t;
  ag_status st = read_tests(task, &t);
  if (st) return st;
  ag_code_search_limits lim = ag_code_search_default_limits();
  int64_t x[MAX_TESTS], y[MAX_TESTS];
  int n = t.visible;
  memcpy(x, t.x, (size_t)n * sizeof *x);
  memcpy(y, t.y, (size_t)n * sizeof *y);
  ag_code_program p;
  for (;;) {
    bool found;
    if ((st = ag_code_search(x, y, n, &lim, &p, &found))) return st;
    if (!found)
      return ag_error_set(AG_ERR_NOT_FOUND, "code solve: no program of at most %d nodes fits %s",
                          lim.max_size, task->id);
    int failing = -1;
    for (int i = 0; i < t.total && failing < 0; i++) {
      int64_t v;
      if (ag_code_eval(&p, t.x[i], &v) != AG_CODE_EVAL_OK || v != t.y[i]) failing = i;
    }
    if (failing < 0) break;
    x[n] = t.x[failing]; /* not among the n already fitted, so n < t.total */
    y[n++] = t.y[failing];
  }
  char text[1024];
  if (!ag_code_print(&p, text, sizeof text) || !(*answer = strdup(text)))
    return ag_error_set(AG_ERR_NOMEM, "code solve: out of memory");
  return AG_OK;
}

static void free_shards(ag_task *task) {
  for (int i = 0; i < task->shard_count; i++) free(task->shards[i].text);
  free(task->shards);
  task->shards = NULL;
  task->shard_count = 0;
}

/* Goal, then one shard per example, then the format. An example is required
 * when without it the search no longer recovers a program that passes every
 * test; at least two are (one example alone never pins a function down). */
static ag_status code_shard(ag_task *task) {
  code_tests t;
  ag_status st = read_tests(task, &t);
  if (st) return st;
  free_shards(task);
  bool required[MAX_TESTS] = {false};
  int count = 0;
  ag_code_search_limits lim = ag_code_search_default_limits();
  for (int i = 0; i < t.visible; i++) {
    int64_t x[MAX_TESTS], y[MAX_TESTS];
    int n = 0;
    for (int j = 0; j < t.visible; j++)
      if (j != i) x[n] = t.x[j], y[n++] = t.y[j];
    ag_code_program p;
    bool found = false;
    if (n > 0 && (st = ag_code_search(x, y, n, &lim, &p, &found))) return st;
    required[i] = !found || !equivalent_on_tests(&p, &t);
    count += required[i];
  }
  for (int i = 0; i < t.visible && count < 2; i++)
    if (!required[i]) required[i] = true, count++;
  st = ag_task_add_shard(task, goal_text(task->level), true);
  for (int i = 0; !st && i < t.visible; i++) {
    char text[64];
    snprintf(text, sizeof text, "f(%lld) = %lld", (long long)t.x[i], (long long)t.y[i]);
    st = ag_task_add_shard(task, text, required[i]);
  }
  if (!st) st = ag_task_add_shard(task, FORMAT_LINE, false);
  if (st) free_shards(task);
  return st;
}

const ag_task_family ag_task_family_code = {
    .name = "code",
    .summary = "programs f(x) in a small expression language from input/output examples",
    .max_level = MAX_LEVEL,
    .default_level = DEFAULT_LEVEL,
    .generate = code_generate,
    .verify = code_verify,
    .feedback = code_feedback,
    .leaks = code_leaks,
    .solve = code_solve,
    .shard = code_shard,
};
