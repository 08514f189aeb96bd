/* The `code` family's expression language: canonical printing and the
 * parse/print round trip (hand cases and random programs), the
 * interpreter on hand cases (floor division, overflow, division by zero,
 * short-circuits, the step limit), the nesting bounds, error positions,
 * 10,000 random byte strings and token soups into the parser, the token
 * scanner, and the enumerative search. */
#include "test.h"
#include "worlds/tasks/code_lang.h"

#include <limits.h>

static bool parse_str(const char *s, ag_code_program *p, ag_code_error *err) {
  return ag_code_parse(s, strlen(s), p, err);
}

/* ---- printing and round trips ------------------------------------------------------- */

TEST(canonical_printing) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"x*2+1", "x * 2 + 1"},
      {"(x)", "x"},
      {"((x+1))*2", "(x + 1) * 2"},
      {"x - (1 - x)", "x - (1 - x)"},
      {"(x - 1) - x", "x - 1 - x"},
      {"x - (1 + x)", "x - (1 + x)"},
      {"x + (1 + x)", "x + (1 + x)"},
      {"x // 2", "x / 2"},
      {"-(3)", "-3"},
      {"- x", "-x"},
      {"-(-x)", "-(-x)"},
      {"-(x * 2)", "-(x * 2)"},
      {"-x * 2", "-x * 2"},
      {"x - -3", "x - -3"},
      {"abs( x )", "abs(x)"},
      {"min(x,3)", "min(x, 3)"},
      {"max(min(x,3),-2)", "max(min(x, 3), -2)"},
      {"x % 3 * 4", "x % 3 * 4"},
      {"x % (3 * 4)", "x % (3 * 4)"},
      {"if x>3 then x else 0", "if x > 3 then x else 0"},
      {"if not (x > 1) then 1 else 2", "if not x > 1 then 1 else 2"},
      {"if (x>1) and (x<5) then 1 else 2", "if x > 1 and x < 5 then 1 else 2"},
      {"if x > 1 and (x < 5 or x == 7) then 1 else 2",
       "if x > 1 and (x < 5 or x == 7) then 1 else 2"},
      {"if (x > 1 and x < 5) or x == 7 then 1 else 2",
       "if x > 1 and x < 5 or x == 7 then 1 else 2"},
      {"(if x > 0 then 1 else 2) + 3", "(if x > 0 then 1 else 2) + 3"},
      {"3 + (if x > 0 then 1 else 2)", "3 + (if x > 0 then 1 else 2)"},
      {"if x > 0 then if x > 5 then 1 else 2 else 3",
       "if x > 0 then if x > 5 then 1 else 2 else 3"},
      {"if (if x > 0 then x > 3 else x < -5) then 1 else 2",
       "if (if x > 0 then x > 3 else x < -5) then 1 else 2"},
      {"min(if x > 0 then 1 else 2, x)", "min(if x > 0 then 1 else 2, x)"},
      {"if (x + 1) < (x * 2) then 1 else 0", "if x + 1 < x * 2 then 1 else 0"},
      {"  \tx\n", "x"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    ag_code_program p, q;
    ag_code_error err;
    char out[256], again[256];
    bool ok = parse_str(cases[i].in, &p, &err);
    CHECK_MSG(ok, "%s: %s", cases[i].in, err.message);
    if (!ok) continue;
    CHECK(ag_code_print(&p, out, sizeof out));
    CHECK_MSG(!strcmp(out, cases[i].out), "%s printed as %s", cases[i].in, out);
    CHECK(parse_str(out, &q, NULL) && ag_code_print(&q, again, sizeof again) &&
          !strcmp(out, again));
  }
  /* Too small a buffer is reported, not overrun. */
  ag_code_program p;
  char tiny[4] = "abc";
  CHECK(parse_str("x * 2 + 1", &p, NULL));
  CHECK(!ag_code_print(&p, tiny, sizeof tiny) && tiny[0] == '\0');
  CHECK(ag_code_size(&p) == 5 && ag_code_uses_x(&p, p.root));
}

static const int64_t PROBES[] = {0, 1, -1, 2, -2, 3, 7, -7, 10, -10, 1000003, INT64_MAX, INT64_MIN};
#define NPROBES ((int)(sizeof PROBES / sizeof *PROBES))

/* A random well-typed expression of type `type` (at most `depth` deep). */
static int random_node(ag_code_program *p, ag_rng *rng, int type, int depth) {
  if (type == AG_CODE_INT && (depth <= 1 || ag_rng_below(rng, 4) == 0)) {
    if (ag_rng_below(rng, 2)) return ag_code_add(p, AG_CODE_VAR, -1, -1, -1, 0);
    int64_t v = ag_rng_below(rng, 8) == 0 ? (int64_t)(ag_rng_u64(rng) >> 1)
                                          : (int64_t)ag_rng_below(rng, 12);
    return ag_code_add(p, AG_CODE_CONST, -1, -1, -1, v);
  }
  if (type == AG_CODE_BOOL && depth <= 1) {
    int a = random_node(p, rng, AG_CODE_INT, 1), b = random_node(p, rng, AG_CODE_INT, 1);
    return ag_code_add(p, AG_CODE_LT, a, b, -1, 0);
  }
  static const ag_code_op INT_OPS[] = {AG_CODE_NEG, AG_CODE_ABS, AG_CODE_ADD, AG_CODE_SUB,
                                       AG_CODE_MUL, AG_CODE_DIV, AG_CODE_MOD, AG_CODE_MIN,
                                       AG_CODE_MAX, AG_CODE_IF};
  static const ag_code_op BOOL_OPS[] = {AG_CODE_NOT, AG_CODE_LT, AG_CODE_LE, AG_CODE_GT,
                                        AG_CODE_GE,  AG_CODE_EQ, AG_CODE_NE, AG_CODE_AND,
                                        AG_CODE_OR,  AG_CODE_IF};
  ag_code_op op =
      type == AG_CODE_INT ? INT_OPS[ag_rng_below(rng, 10)] : BOOL_OPS[ag_rng_below(rng, 10)];
  int a = -1, b = -1, c = -1;
  switch (op) {
  case AG_CODE_NEG:
  case AG_CODE_ABS: a = random_node(p, rng, AG_CODE_INT, depth - 1); break;
  case AG_CODE_NOT: a = random_node(p, rng, AG_CODE_BOOL, depth - 1); break;
  case AG_CODE_AND:
  case AG_CODE_OR:
    a = random_node(p, rng, AG_CODE_BOOL, depth - 1);
    b = random_node(p, rng, AG_CODE_BOOL, depth - 1);
    break;
  case AG_CODE_IF:
    a = random_node(p, rng, AG_CODE_BOOL, depth - 1);
    b = random_node(p, rng, type, depth - 1);
    c = random_node(p, rng, type, depth - 1);
    break;
  default:
    a = random_node(p, rng, AG_CODE_INT, depth - 1);
    b = random_node(p, rng, AG_CODE_INT, depth - 1);
    break;
  }
  if (a < 0 || (b < 0 && op != AG_CODE_NEG && op != AG_CODE_ABS && op != AG_CODE_NOT)) return -1;
  return ag_code_add(p, op, a, b, c, 0);
}

/* print(parse(print(p))) == print(p), and both programs compute the same
 * (value or error) on every probe. */
TEST(round_trip_random_programs) {
  ag_rng rng;
  ag_rng_seed(&rng, 2024);
  long n = test_scaled(3000, 500);
  int checked = 0;
  for (long i = 0; i < n; i++) {
    ag_code_program p, q;
    ag_code_init(&p);
    p.root = random_node(&p, &rng, AG_CODE_INT, 1 + (int)ag_rng_below(&rng, 6));
    if (p.root < 0) continue;
    char text[4096], again[4096];
    CHECK(ag_code_print(&p, text, sizeof text));
    ag_code_error err;
    bool ok = parse_str(text, &q, &err);
    CHECK_MSG(ok, "%s: %s at %d", text, err.message, err.position);
    if (!ok) continue;
    CHECK(ag_code_print(&q, again, sizeof again));
    CHECK_MSG(!strcmp(text, again), "%s reprinted as %s", text, again);
    CHECK(ag_code_size(&p) == ag_code_size(&q));
    for (int k = 0; k < NPROBES; k++) {
      int64_t u, v;
      ag_code_eval_status s = ag_code_eval(&p, PROBES[k], &u);
      ag_code_eval_status t = ag_code_eval(&q, PROBES[k], &v);
      CHECK_MSG(s == t && (s != AG_CODE_EVAL_OK || u == v), "%s at %lld", text,
                (long long)PROBES[k]);
    }
    checked++;
  }
  CHECK(checked > n / 2);
}

/* ---- the interpreter ---------------------------------------------------------------- */

static ag_code_eval_status run(const char *src, int64_t x, int64_t *v) {
  ag_code_program p;
  ag_code_error err;
  if (!parse_str(src, &p, &err)) {
    fprintf(stderr, "does not parse: %s: %s\n", src, err.message);
    test_failures_++;
    *v = 0;
    return AG_CODE_EVAL_OK;
  }
  return ag_code_eval(&p, x, v);
}

static void check_value(const char *src, int64_t x, int64_t want) {
  int64_t v;
  ag_code_eval_status s = run(src, x, &v);
  CHECK_MSG(s == AG_CODE_EVAL_OK && v == want, "%s at x = %lld: %s %lld, want %lld", src,
            (long long)x, ag_code_eval_status_name(s), (long long)v, (long long)want);
}

static void check_error(const char *src, int64_t x, ag_code_eval_status want) {
  int64_t v;
  ag_code_eval_status s = run(src, x, &v);
  CHECK_MSG(s == want, "%s at x = %lld: %s, want %s", src, (long long)x,
            ag_code_eval_status_name(s), ag_code_eval_status_name(want));
}

TEST(interpreter_hand_cases) {
  check_value("x * 2 + 1", 7, 15);
  check_value("1 + 2 * 3 - 4", 0, 3);
  check_value("(1 + 2) * (3 - 4)", 0, -3);
  check_value("10 - 3 - 2", 0, 5); /* left-associative */
  check_value("-x", 5, -5);
  check_value("--x", 5, 5);
  check_value("-x * 3", 2, -6);
  /* Floor division and modulo, as in Python. */
  check_value("x / 2", 7, 3);
  check_value("x / 2", -7, -4);
  check_value("x / -2", 7, -4);
  check_value("x / -2", -7, 3);
  check_value("x % 3", 7, 1);
  check_value("x % 3", -7, 2);
  check_value("x % -3", 7, -2);
  check_value("x % -3", -7, -1);
  check_value("x % 3", -9, 0);
  check_value("-7 % 3", 0, 2); /* unary minus binds tighter */
  check_value("x // 4", 9, 2);
  check_value("abs(x - 10)", 3, 7);
  check_value("min(x, 4) + max(x, 4)", 9, 13);
  check_value("if x > 3 then 1 else 0", 4, 1);
  check_value("if x >= 4 then 1 else 0", 3, 0);
  check_value("if x <= 4 and x < 5 and x == 4 and not x != 4 then 1 else 0", 4, 1);
  check_value("if x > 3 and x != 7 then x - 3 else 3 - x", 5, 2);
  check_value("if x > 3 and x != 7 then x - 3 else 3 - x", 7, -4);
  check_value("if not x < 0 or x == -5 then 1 else 0", -5, 1);
  check_value("if not x < 0 or x == -5 then 1 else 0", -4, 0);
  check_value("if x > 0 then if x > 5 then 1 else 2 else 3", 3, 2);
  /* Only the chosen branch and the needed operand run. */
  check_value("if x == 0 then 1 else 10 / x", 0, 1);
  check_value("if x != 0 and 10 / x > 2 then 1 else 0", 0, 0);
  check_value("if x == 0 or 10 / x > 2 then 1 else 0", 0, 1);
  /* Division by zero. */
  check_error("x / 0", 5, AG_CODE_EVAL_DIVISION_BY_ZERO);
  check_error("x % 0", 5, AG_CODE_EVAL_DIVISION_BY_ZERO);
  check_error("10 / (x - 3)", 3, AG_CODE_EVAL_DIVISION_BY_ZERO);
  check_value("10 / (x - 3)", 5, 5);
  check_error("if x != 0 or 10 / x > 2 then 1 else 0", 0, AG_CODE_EVAL_DIVISION_BY_ZERO);
  /* Overflow of int64 in every operator that can overflow. */
  check_error("x + 1", INT64_MAX, AG_CODE_EVAL_OVERFLOW);
  check_value("x + 1", INT64_MAX - 1, INT64_MAX);
  check_error("x - 1", INT64_MIN, AG_CODE_EVAL_OVERFLOW);
  check_error("x * 2", INT64_MAX / 2 + 1, AG_CODE_EVAL_OVERFLOW);
  check_error("x * x", 3037000500, AG_CODE_EVAL_OVERFLOW);
  check_value("x * x", 3037000499, 3037000499LL * 3037000499LL);
  check_error("9223372036854775807 + 1", 0, AG_CODE_EVAL_OVERFLOW);
  check_error("-x", INT64_MIN, AG_CODE_EVAL_OVERFLOW);
  check_error("abs(x)", INT64_MIN, AG_CODE_EVAL_OVERFLOW);
  check_value("abs(x)", INT64_MIN + 1, INT64_MAX);
  check_error("x / -1", INT64_MIN, AG_CODE_EVAL_OVERFLOW);
  check_value("x % -1", INT64_MIN, 0);
  check_value("x / 1", INT64_MIN, INT64_MIN);
  check_value("9223372036854775807", 0, INT64_MAX);
  /* The step limit: each node visited counts one step. */
  ag_code_program p;
  CHECK(parse_str("x + 1 + 2 + 3", &p, NULL)); /* 7 nodes */
  int64_t v;
  CHECK(ag_code_eval_limited(&p, 0, 7, &v) == AG_CODE_EVAL_OK && v == 6);
  CHECK(ag_code_eval_limited(&p, 0, 6, &v) == AG_CODE_EVAL_STEP_LIMIT);
  CHECK(ag_code_eval_limited(&p, 0, 0, &v) == AG_CODE_EVAL_STEP_LIMIT);
  CHECK(!strcmp(ag_code_eval_status_name(AG_CODE_EVAL_STEP_LIMIT), "step_limit"));
  CHECK(!strcmp(ag_code_eval_status_name(AG_CODE_EVAL_DIVISION_BY_ZERO), "division_by_zero"));
  CHECK(!strcmp(ag_code_eval_status_name(AG_CODE_EVAL_OVERFLOW), "overflow"));
  ag_code_init(&p);
  CHECK(ag_code_eval(&p, 3, &v) == AG_CODE_EVAL_OK && v == 0); /* empty program */
}

/* ---- errors and bounds ---------------------------------------------------------------- */

static void check_syntax(const char *src, int position, const char *fragment) {
  ag_code_program p;
  ag_code_error err;
  bool ok = parse_str(src, &p, &err);
  CHECK_MSG(!ok, "\"%s\" parsed", src);
  if (ok) return;
  CHECK_MSG(err.position == position && strstr(err.message, fragment),
            "\"%s\": at %d \"%s\"; want %d \"%s\"", src, err.position, err.message, position,
            fragment);
  CHECK(p.root == -1 && p.count == 0);
}

TEST(syntax_errors_have_positions) {
  check_syntax("", 0, "empty");
  check_syntax("   ", 3, "empty");
  check_syntax("x +", 3, "the end");
  check_syntax("x + * 2", 4, "'*'");
  check_syntax("2x + 1", 1, "multiply");
  check_syntax("3(x + 1)", 1, "multiply");
  check_syntax("x = 3", 2, "==");
  check_syntax("if x > 1 && x < 5 then 1 else 2", 9, "and");
  check_syntax("if x > 1 || x < 5 then 1 else 2", 9, "or");
  check_syntax("if !(x > 1) then 1 else 2", 3, "not");
  check_syntax("y + 1", 0, "unknown name 'y'");
  check_syntax("x ^ 2", 2, "unexpected character '^'");
  check_syntax("x \xc3\x97 2", 2, "unexpected character");
  check_syntax("abs(x, 2)", 5, "one argument");
  check_syntax("min(x)", 5, "two arguments");
  check_syntax("max(x, 1, 2)", 8, "two arguments");
  check_syntax("abs x", 4, "parentheses");
  check_syntax("(x + 1", 6, "')'");
  check_syntax("x + 1)", 5, "')'");
  check_syntax("1 < x < 3", 6, "chained");
  check_syntax("if x then 1 else 2", 3, "comparison");
  check_syntax("if x > 1 then 1", 15, "'else'");
  check_syntax("if x > 1 else 2", 9, "'then'");
  check_syntax("if x > 1 then x > 2 else 3", 0, "branches");
  check_syntax("x + (x > 2)", 7, "needs numbers");
  check_syntax("x > 2 and 3", 10, "needs conditions");
  check_syntax("x > 2", 0, "must compute a number");
  check_syntax("x + 99999999999999999999", 4, "too large");
  check_syntax("f(x) = x", 0, "unknown name 'f'");
}

static char *repeat(const char *unit, int times, const char *tail) {
  size_t n = strlen(unit), t = strlen(tail);
  char *s = malloc(n * (size_t)times + t + 1);
  for (int i = 0; i < times; i++) memcpy(s + n * (size_t)i, unit, n);
  memcpy(s + n * (size_t)times, tail, t + 1);
  return s;
}

static bool parses(const char *s) {
  ag_code_program p;
  ag_code_error err;
  bool ok = parse_str(s, &p, &err);
  if (!ok) CHECK(err.message[0] && err.position >= 0 && (size_t)err.position <= strlen(s));
  return ok;
}

static void check_too_deep(const char *s) {
  ag_code_program p;
  ag_code_error err;
  CHECK_MSG(!parse_str(s, &p, &err) && strstr(err.message, "too deeply"), "%.40s...: %s", s,
            err.message);
}

TEST(nesting_and_size_bounds) {
  char *s = repeat("(", 40, "x");
  char *t = malloc(strlen(s) + 41);
  strcpy(t, s);
  for (int i = 0; i < 40; i++) strcat(t, ")");
  CHECK(parses(t)); /* 40 parentheses are fine */
  free(s);
  free(t);
  /* Deeper than AG_CODE_MAX_DEPTH in every way of nesting: an error, not
   * a crash (the source limit stops the longest first). */
  const char *units[] = {"(", "-", "abs(", "min(x, ", "if x > 0 then ", "x + ("};
  for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
    s = repeat(units[u], AG_CODE_MAX_DEPTH + 2, "x");
    check_too_deep(s);
    free(s);
    s = repeat(units[u], 100000, "x"); /* far over the source limit */
    CHECK(!parses(s));
    free(s);
  }
  s = repeat("not ", AG_CODE_MAX_DEPTH + 2, "x > 1");
  char *w = malloc(strlen(s) + 32);
  sprintf(w, "if %s then 1 else 2", s);
  check_too_deep(w);
  free(w);
  free(s);
  /* Left-deep chains nest too: x + x + ... */
  s = repeat("x + ", AG_CODE_MAX_DEPTH + 2, "x");
  check_too_deep(s);
  free(s);
  s = repeat("x + ", AG_CODE_MAX_DEPTH - 2, "x");
  CHECK(parses(s));
  free(s);
  /* More nodes than AG_CODE_MAX_NODES at a small depth: a product of
   * groups of 10 terms, 19 nodes each (12 groups: 239 nodes, 14: 279). */
  ag_code_program p;
  ag_code_error err;
  s = repeat("(x+x+x+x+x+x+x+x+x+x)*", 12, "1");
  CHECK(parses(s) && strlen(s) < AG_CODE_MAX_SOURCE);
  free(s);
  s = repeat("(x+x+x+x+x+x+x+x+x+x)*", 14, "1");
  CHECK(!parse_str(s, &p, &err) && strstr(err.message, "operations"));
  free(s);
  /* A long source is refused before parsing. */
  s = repeat(" ", AG_CODE_MAX_SOURCE, "x");
  CHECK(!parse_str(s, &p, &err) && strstr(err.message, "too long"));
  free(s);
  s = repeat(" ", AG_CODE_MAX_SOURCE - 1, "x");
  CHECK(parse_str(s, &p, &err));
  free(s);
  /* The length bounds what is read: no terminating NUL needed. */
  const char buf[3] = {'x', '+', '1'};
  CHECK(ag_code_parse(buf, 1, &p, NULL) && ag_code_size(&p) == 1);
  CHECK(ag_code_parse(buf, 3, &p, NULL) && ag_code_size(&p) == 3);
}

/* ---- ag_code_add -------------------------------------------------------------------- */

TEST(building_checks_types) {
  ag_code_program p;
  ag_code_init(&p);
  int x = ag_code_add(&p, AG_CODE_VAR, -1, -1, -1, 0);
  int three = ag_code_add(&p, AG_CODE_CONST, -1, -1, -1, 3);
  CHECK(x == 0 && three == 1);
  CHECK(ag_code_add(&p, AG_CODE_CONST, -1, -1, -1, -3) < 0); /* negatives are NEG(CONST) */
  int gt = ag_code_add(&p, AG_CODE_GT, x, three, -1, 0);
  CHECK(gt >= 0);
  CHECK(ag_code_add(&p, AG_CODE_ADD, x, gt, -1, 0) < 0);     /* number + condition */
  CHECK(ag_code_add(&p, AG_CODE_AND, x, gt, -1, 0) < 0);     /* and of a number */
  CHECK(ag_code_add(&p, AG_CODE_IF, x, x, three, 0) < 0);    /* number as condition */
  CHECK(ag_code_add(&p, AG_CODE_IF, gt, x, gt, 0) < 0);      /* mixed branches */
  CHECK(ag_code_add(&p, AG_CODE_ADD, x, -1, -1, 0) < 0);     /* missing operand */
  CHECK(ag_code_add(&p, AG_CODE_NEG, x, three, -1, 0) < 0);  /* extra operand */
  CHECK(ag_code_add(&p, AG_CODE_ADD, x, 99, -1, 0) < 0);     /* no such node */
  CHECK(ag_code_add(&p, AG_CODE_OP_COUNT, x, x, -1, 0) < 0); /* no such op */
  int sel = ag_code_add(&p, AG_CODE_IF, gt, x, three, 0);
  CHECK(sel >= 0);
  p.root = sel;
  char text[64];
  CHECK(ag_code_print(&p, text, sizeof text) && !strcmp(text, "if x > 3 then x else 3"));
  /* Depth: a chain of AG_CODE_MAX_DEPTH nodes, then no more. */
  ag_code_init(&p);
  int e = ag_code_add(&p, AG_CODE_VAR, -1, -1, -1, 0);
  for (int i = 1; i < AG_CODE_MAX_DEPTH; i++) e = ag_code_add(&p, AG_CODE_ABS, e, -1, -1, 0);
  CHECK(e >= 0);
  CHECK(ag_code_add(&p, AG_CODE_ABS, e, -1, -1, 0) < 0);
  /* Count. */
  ag_code_init(&p);
  int last = 0;
  for (int i = 0; i < AG_CODE_MAX_NODES + 5; i++)
    last = ag_code_add(&p, AG_CODE_VAR, -1, -1, -1, 0);
  CHECK(last < 0 && p.count == AG_CODE_MAX_NODES);
}

/* ---- fuzzing ------------------------------------------------------------------------ */

/* Whatever parses prints, reparses to the same text and runs. */
static void check_accepted(const char *s, size_t n) {
  ag_code_program p, q;
  ag_code_error err;
  if (!ag_code_parse(s, n, &p, &err)) {
    CHECK(err.message[0] != '\0' && err.position >= 0 && (size_t)err.position <= n);
    return;
  }
  char text[4096], again[4096];
  CHECK(ag_code_print(&p, text, sizeof text));
  CHECK_MSG(parse_str(text, &q, &err), "%s: %s", text, err.message);
  CHECK(ag_code_print(&q, again, sizeof again) && !strcmp(text, again));
  for (int k = 0; k < NPROBES; k++) {
    int64_t v;
    ag_code_eval_status st = ag_code_eval(&p, PROBES[k], &v);
    CHECK(st == AG_CODE_EVAL_OK || st == AG_CODE_EVAL_OVERFLOW ||
          st == AG_CODE_EVAL_DIVISION_BY_ZERO);
  }
}

TEST(fuzz_random_bytes) {
  ag_rng rng;
  ag_rng_seed(&rng, 99);
  char s[300];
  for (int i = 0; i < 10000; i++) {
    size_t n = (size_t)ag_rng_below(&rng, sizeof s);
    /* mostly printable, some arbitrary bytes (NUL, UTF-8 fragments) */
    for (size_t k = 0; k < n; k++)
      s[k] = ag_rng_below(&rng, 4) ? (char)(32 + ag_rng_below(&rng, 95))
                                   : (char)ag_rng_below(&rng, 256);
    check_accepted(s, n);
  }
}

TEST(fuzz_token_soup) {
  static const char *const TOKENS[] = {"x",
                                       "x",
                                       "1",
                                       "2",
                                       "10",
                                       "0",
                                       "-",
                                       "+",
                                       "*",
                                       "/",
                                       "%",
                                       "//",
                                       "(",
                                       ")",
                                       "(",
                                       ")",
                                       ",",
                                       "<",
                                       "<=",
                                       ">",
                                       ">=",
                                       "==",
                                       "!=",
                                       "=",
                                       "if",
                                       "then",
                                       "else",
                                       "and",
                                       "or",
                                       "not",
                                       "abs",
                                       "min",
                                       "max",
                                       "(",
                                       "x",
                                       "!",
                                       "&&",
                                       "y",
                                       "9223372036854775807",
                                       "99999999999999999999",
                                       "\xc3\x97",
                                       " ",
                                       "\n"};
  int ntok = (int)(sizeof TOKENS / sizeof *TOKENS);
  ag_rng rng;
  ag_rng_seed(&rng, 7);
  char s[AG_CODE_MAX_SOURCE + 64];
  int accepted = 0;
  for (int i = 0; i < 10000; i++) {
    int count = 1 + (int)ag_rng_below(&rng, i % 10 == 0 ? 200 : 12);
    size_t n = 0;
    for (int k = 0; k < count; k++) {
      const char *t = TOKENS[ag_rng_below(&rng, (uint64_t)ntok)];
      size_t m = strlen(t);
      if (n + m + 1 >= sizeof s) break;
      memcpy(s + n, t, m);
      n += m;
      if (ag_rng_below(&rng, 2)) s[n++] = ' ';
    }
    ag_code_program p;
    accepted += ag_code_parse(s, n, &p, NULL);
    check_accepted(s, n);
  }
  CHECK(accepted > 100); /* the soup does make programs too */
}

/* ---- tokens ------------------------------------------------------------------------- */

TEST(token_scanner) {
  const char *text = "Is it x*2 + 1? Try max(x, 3) \xc3\x97 y.";
  ag_code_token_kind want[] = {AG_CODE_TOKEN_OTHER,    AG_CODE_TOKEN_OTHER,    /* Is it */
                               AG_CODE_TOKEN_LANGUAGE, AG_CODE_TOKEN_LANGUAGE, /* x * */
                               AG_CODE_TOKEN_LANGUAGE, AG_CODE_TOKEN_LANGUAGE, /* 2 + */
                               AG_CODE_TOKEN_LANGUAGE, AG_CODE_TOKEN_OTHER,    /* 1 ? */
                               AG_CODE_TOKEN_OTHER,    AG_CODE_TOKEN_LANGUAGE, /* Try max */
                               AG_CODE_TOKEN_LANGUAGE, AG_CODE_TOKEN_LANGUAGE, /* ( x */
                               AG_CODE_TOKEN_LANGUAGE, AG_CODE_TOKEN_LANGUAGE, /* , 3 */
                               AG_CODE_TOKEN_LANGUAGE, AG_CODE_TOKEN_OTHER,    /* ) × */
                               AG_CODE_TOKEN_OTHER,    AG_CODE_TOKEN_OTHER,    /* y . */
                               AG_CODE_TOKEN_END};
  size_t pos = 0, start, end, len = strlen(text);
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    ag_code_token_kind k = ag_code_next_token(text, len, &pos, &start, &end);
    CHECK_MSG(k == want[i], "token %zu '%.*s': kind %d, want %d", i, (int)(end - start),
              text + start, (int)k, (int)want[i]);
  }
  pos = 0;
  ag_code_next_token(text, len, &pos, &start, &end);
  CHECK(start == 0 && end == 2 && pos == 2);
  /* "×" is one token of two bytes */
  const char *times = "\xc3\x97";
  pos = 0;
  CHECK(ag_code_next_token(times, 2, &pos, &start, &end) == AG_CODE_TOKEN_OTHER && end == 2);
}

/* ---- search ------------------------------------------------------------------------- */

typedef int64_t (*fn)(int64_t);
static int64_t f_linear(int64_t x) { return x * 2 + 1; }
static int64_t f_abs(int64_t x) { return x > 3 ? x - 3 : 3 - x; }
static int64_t f_mod(int64_t x) { return ((x % 3) + 3) % 3 * 4; }
static int64_t f_if(int64_t x) { return x < 3 ? x + 3 : x; }
static int64_t f_square(int64_t x) { return x * x - 2; }

static void check_search(fn f, const int64_t *xs, int n, int max_size, const char *what) {
  int64_t ys[AG_CODE_SEARCH_MAX_TESTS];
  for (int i = 0; i < n; i++) ys[i] = f(xs[i]);
  ag_code_program p, q;
  bool found = false, again = false;
  CHECK_OK(ag_code_search(xs, ys, n, NULL, &p, &found));
  CHECK_MSG(found, "%s: nothing found", what);
  if (!found) return;
  for (int i = 0; i < n; i++) {
    int64_t v;
    CHECK(ag_code_eval(&p, xs[i], &v) == AG_CODE_EVAL_OK && v == ys[i]);
  }
  char text[256], text2[256];
  CHECK(ag_code_print(&p, text, sizeof text));
  CHECK_MSG(ag_code_size(&p) <= max_size, "%s: %s has %d nodes", what, text, ag_code_size(&p));
  /* deterministic */
  CHECK_OK(ag_code_search(xs, ys, n, NULL, &q, &again));
  CHECK(again && ag_code_print(&q, text2, sizeof text2) && !strcmp(text, text2));
}

TEST(search_finds_small_programs) {
  const int64_t xs[] = {-7, -2, 0, 3, 4, 9, 1, -10, 6, 10};
  check_search(f_linear, xs, 4, 5, "x * 2 + 1");
  check_search(f_abs, xs, 6, 4, "abs(x - 3)");
  check_search(f_mod, xs, 10, 5, "x % 3 * 4");
  check_search(f_square, xs, 5, 5, "x * x - 2");
  /* an if-then-else, with the examples around the threshold */
  const int64_t around[] = {2, 3, -5, 8, 0};
  check_search(f_if, around, 5, 8, "if x < 3 then x + 3 else x");
  /* one example: x plus a literal is enough */
  const int64_t one[] = {5};
  check_search(f_linear, one, 1, 3, "x + 6");
}

TEST(search_bounds_and_errors) {
  int64_t xs[AG_CODE_SEARCH_MAX_TESTS + 1], ys[AG_CODE_SEARCH_MAX_TESTS + 1];
  for (int i = 0; i <= AG_CODE_SEARCH_MAX_TESTS; i++) xs[i] = i, ys[i] = i;
  ag_code_program p;
  bool found = true;
  CHECK(ag_code_search(xs, ys, 0, NULL, &p, &found) == AG_ERR_INVALID && !found);
  CHECK(ag_code_search(xs, ys, AG_CODE_SEARCH_MAX_TESTS + 1, NULL, &p, &found) == AG_ERR_INVALID);
  ag_code_search_limits bad = ag_code_search_default_limits();
  bad.term_size = 0;
  CHECK(ag_code_search(xs, ys, 3, &bad, &p, &found) == AG_ERR_INVALID);
  CHECK_OK(ag_code_search(xs, ys, AG_CODE_SEARCH_MAX_TESTS, NULL, &p, &found));
  CHECK(found && ag_code_size(&p) == 1); /* x */
  /* Outputs beyond the search's value range: not found, not an error. */
  int64_t big[3] = {1, 2, 3}, out[3] = {1000000000000LL, 2, 3};
  CHECK_OK(ag_code_search(big, out, 3, NULL, &p, &found));
  CHECK(!found && p.root == -1);
  /* x^4 + 7 on seven points needs more nodes than small limits allow. */
  int64_t qx[7] = {-3, -2, -1, 0, 1, 2, 3}, qy[7];
  for (int i = 0; i < 7; i++) qy[i] = qx[i] * qx[i] * qx[i] * qx[i] + 7 * qx[i];
  ag_code_search_limits small = {
      .term_size = 3, .condition_size = 3, .max_size = 7, .max_bank = 1000};
  CHECK_OK(ag_code_search(qx, qy, 7, &small, &p, &found));
  CHECK(!found);
  /* Inconsistent examples (one input, two outputs) fit no program. */
  int64_t cx[2] = {4, 4}, cy[2] = {1, 2};
  CHECK_OK(ag_code_search(cx, cy, 2, NULL, &p, &found));
  CHECK(!found);
}

int main(void) {
  RUN(canonical_printing);
  RUN(round_trip_random_programs);
  RUN(interpreter_hand_cases);
  RUN(syntax_errors_have_positions);
  RUN(nesting_and_size_bounds);
  RUN(building_checks_types);
  RUN(fuzz_random_bytes);
  RUN(fuzz_token_soup);
  RUN(token_scanner);
  RUN(search_finds_small_programs);
  RUN(search_bounds_and_errors);
  TEST_MAIN_END();
}
