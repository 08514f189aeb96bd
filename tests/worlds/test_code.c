/* Task family "code": the verifier on hand-checked attempts (near misses:
 * spacing, "f(x) =", an equivalent program pass; off by one fails),
 * diagnostics and feedback, deterministic generation, every generated task
 * solvable with the solver's answer verifying, shards, the family's leak
 * guard, and feedback that never gives the program away, judged by a
 * checker written here with its own parser and evaluator (not the
 * family's leaks()). */
#include "agora/task.h"
#include "test.h"
#include "worlds/tasks/task_util.h"

#include <ctype.h>

static const ag_task_family *F;

static const char FORMAT[] = "Give your final answer on a line \"Answer: <expression>\".";

/* ---- an independent checker ---------------------------------------------------------- */

/* Tokens of the language as this test reads them: numbers, words and
 * operators; anything else separates. */
typedef struct tok {
  char text[24];
  int64_t value;
  bool number;
} tok;

static int tokenize(const char *s, tok *out, int max) {
  int n = 0;
  for (const char *p = s; *p && n < max;) {
    if (isspace((unsigned char)*p)) {
      p++;
      continue;
    }
    tok *t = &out[n];
    memset(t, 0, sizeof *t);
    size_t len = 1;
    if (isdigit((unsigned char)*p)) {
      while (isdigit((unsigned char)p[len])) len++;
      t->number = true;
      t->value = len > 15 ? INT64_MAX : strtoll(p, NULL, 10);
    } else if (isalpha((unsigned char)*p)) {
      while (isalnum((unsigned char)p[len])) len++;
    } else if (strchr("<>=!/", *p) && (p[1] == '=' || (p[0] == '/' && p[1] == '/'))) {
      len = 2;
    } else if (!strchr("+-*/%(),<>", *p)) {
      /* a separator ('.', '?', ':', '=' alone): a hole no program spans */
      snprintf(t->text, sizeof t->text, "#");
      p++;
      n++;
      continue;
    }
    snprintf(t->text, sizeof t->text, "%.*s", (int)(len < 23 ? len : 23), p);
    p += len;
    n++;
  }
  return n;
}

/* Recursive descent over tokens [pos, end), evaluating at x; false on any
 * error (syntax, division by zero, overflow). Conditions are 0/1 numbers:
 * looser than the language, so it accepts at least what the language does. */
typedef struct ev {
  const tok *t;
  int pos, end, depth;
  int64_t x;
  bool bad;
} ev;

static bool is(ev *e, const char *s) { return e->pos < e->end && !strcmp(e->t[e->pos].text, s); }
static bool eat(ev *e, const char *s) {
  if (!is(e, s)) return false;
  e->pos++;
  return true;
}
static int64_t expr(ev *e);

static int64_t atom(ev *e) {
  if (e->bad || e->pos >= e->end || ++e->depth > 60) return e->bad = true, 0;
  int64_t v = 0;
  const tok *t = &e->t[e->pos];
  if (t->number) {
    e->pos++;
    v = t->value;
  } else if (eat(e, "x")) {
    v = e->x;
  } else if (eat(e, "(")) {
    v = expr(e);
    if (!eat(e, ")")) e->bad = true;
  } else if (is(e, "abs") || is(e, "min") || is(e, "max")) {
    char name[4] = {t->text[0], t->text[1], t->text[2], '\0'};
    e->pos++;
    if (!eat(e, "(")) return e->bad = true, 0;
    int64_t a = expr(e), b = 0;
    if (strcmp(name, "abs")) {
      if (!eat(e, ",")) return e->bad = true, 0;
      b = expr(e);
    }
    if (!eat(e, ")")) return e->bad = true, 0;
    if (!strcmp(name, "abs")) {
      if (a == INT64_MIN) e->bad = true;
      v = a < 0 ? -a : a;
    } else {
      v = !strcmp(name, "min") ? (a < b ? a : b) : (a > b ? a : b);
    }
  } else {
    e->bad = true;
  }
  e->depth--;
  return v;
}

static int64_t unary(ev *e) {
  if (eat(e, "-")) {
    int64_t v = unary(e);
    if (v == INT64_MIN) e->bad = true;
    return e->bad ? 0 : -v;
  }
  return atom(e);
}

static int64_t product(ev *e) {
  int64_t v = unary(e);
  while (!e->bad && (is(e, "*") || is(e, "/") || is(e, "//") || is(e, "%"))) {
    char op = e->t[e->pos++].text[0];
    bool mod = op == '%';
    int64_t r = unary(e);
    if (e->bad) return 0;
    if (op == '*') {
      if (__builtin_mul_overflow(v, r, &v)) e->bad = true;
      continue;
    }
    if (r == 0 || (v == INT64_MIN && r == -1)) return e->bad = true, 0;
    int64_t q = v / r, m = v % r;
    if (m != 0 && ((m < 0) != (r < 0))) q--, m += r;
    v = mod ? m : q;
  }
  return v;
}

static int64_t sum(ev *e) {
  int64_t v = product(e);
  while (!e->bad && (is(e, "+") || is(e, "-"))) {
    bool plus = e->t[e->pos++].text[0] == '+';
    int64_t r = product(e);
    if (e->bad || (plus ? __builtin_add_overflow(v, r, &v) : __builtin_sub_overflow(v, r, &v)))
      e->bad = true;
  }
  return v;
}

static int64_t comparison(ev *e) {
  int64_t v = sum(e);
  static const char *const OPS[] = {"<", "<=", ">", ">=", "==", "!="};
  for (int k = 0; k < 6 && !e->bad; k++)
    if (eat(e, OPS[k])) {
      int64_t r = sum(e);
      bool c[6] = {v<r, v <= r, v> r, v >= r, v == r, v != r};
      return c[k];
    }
  return v;
}

static int64_t negation(ev *e) {
  if (eat(e, "not")) return !negation(e);
  return comparison(e);
}

static int64_t conjunction(ev *e) {
  int64_t v = negation(e);
  while (!e->bad && eat(e, "and")) {
    int64_t r = negation(e);
    v = v && r;
  }
  return v;
}

static int64_t expr(ev *e) {
  if (e->bad || ++e->depth > 60) return e->bad = true, 0;
  int64_t v;
  if (eat(e, "if")) {
    int64_t c = expr(e);
    if (!eat(e, "then")) return e->bad = true, 0;
    int64_t a = expr(e);
    if (!eat(e, "else")) return e->bad = true, 0;
    int64_t b = expr(e);
    v = c ? a : b;
  } else {
    v = conjunction(e);
    while (!e->bad && eat(e, "or")) {
      int64_t r = conjunction(e);
      v = v || r;
    }
  }
  e->depth--;
  return v;
}

/* Whether tokens [from, to) are an expression whose value at x is *value. */
static bool eval_span(const tok *t, int from, int to, int64_t x, int64_t *value) {
  ev e = {t, from, to, 0, x, false};
  *value = expr(&e);
  return !e.bad && e.pos == to;
}

typedef struct pairs {
  int64_t x[32], y[32];
  int n, visible;
} pairs;

static pairs tests_of(const ag_task *t) {
  pairs p = {0};
  const char *keys[2] = {"visible", "hidden"};
  for (int k = 0; k < 2; k++) {
    const json_t *list = json_object_get(t->data, keys[k]);
    for (size_t i = 0; i < json_array_size(list) && p.n < 32; i++) {
      p.x[p.n] = json_integer_value(json_array_get(json_array_get(list, i), 0));
      p.y[p.n++] = json_integer_value(json_array_get(json_array_get(list, i), 1));
    }
    if (k == 0) p.visible = p.n;
  }
  return p;
}

static void squeeze(const char *s, char *out, size_t size) {
  size_t n = 0;
  for (; *s && n + 1 < size; s++)
    if (!isspace((unsigned char)*s)) out[n++] = *s;
  out[n] = '\0';
}

/* Does text give the program away: the answer written with any spacing,
 * or any run of its tokens that reads x and computes every test right? */
static bool reveals_program(const ag_task *task, const char *text) {
  char hay[4096], needle[512];
  squeeze(text, hay, sizeof hay);
  squeeze(task->answer, needle, sizeof needle);
  if (strstr(hay, needle)) return true;
  pairs p = tests_of(task);
  tok t[512];
  int n = tokenize(text, t, 512);
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j <= n && j <= i + 60; j++) {
      bool uses_x = false;
      for (int k = i; k < j; k++) uses_x = uses_x || !strcmp(t[k].text, "x");
      if (!uses_x) continue;
      bool all = true;
      for (int k = 0; all && k < p.n; k++) {
        int64_t v;
        all = eval_span(t, i, j, p.x[k], &v) && v == p.y[k];
      }
      if (all) return true;
    }
  return false;
}

/* ---- hand-built tasks ---------------------------------------------------------------- */

/* f(x) = x * 2 + 1; examples 1, 2, 4; hidden 0, -3, 7, 10, -10. */
static void linear_task(ag_task *t, const char *stored_answer) {
  json_t *data = json_pack("{s:[[i,i],[i,i],[i,i]], s:[[i,i],[i,i],[i,i],[i,i],[i,i]]}", "visible",
                           1, 3, 2, 5, 4, 9, "hidden", 0, 1, -3, -5, 7, 15, 10, 21, -10, -19);
  CHECK_OK(ag_task_fill(t, "code", 2, 0, 0,
                        "Write a function f ...\nf(1) = 3\nf(2) = 5\nf(4) = 9\nGive ...",
                        stored_answer, NULL, data));
}

static json_t *verdict_of(const ag_task *t, const char *attempt, bool *correct, bool *parsed) {
  ag_verdict v;
  CHECK_OK(F->verify(t, attempt, &v));
  *correct = v.correct;
  *parsed = v.parsed;
  json_t *d = json_incref(v.diagnostics);
  ag_verdict_clear(&v);
  return d;
}

static const char *kind_of(const json_t *d) {
  const char *k = json_string_value(json_object_get(d, "kind"));
  return k ? k : "";
}
static long long int_of(const json_t *d, const char *key) {
  return (long long)json_integer_value(json_object_get(d, key));
}

TEST(verify_near_misses) {
  ag_task t;
  linear_task(&t, "x * 2 + 1");
  const char *right[] = {"x * 2 + 1",
                         "x*2+1",
                         "   x  *  2 +   1  ",
                         "f(x) = x * 2 + 1",
                         "f(x)=x*2+1",
                         "f( x ) = x * 2 + 1",
                         "`x * 2 + 1`",
                         "x * 2 + 1.",
                         "x * 2 + 1\nbecause f(1) = 3",
                         "2 * x + 1",
                         "1 + x + x",
                         "(x + x) + 1",
                         "x - -x + 1",
                         "if x > 100 then 0 else 2 * x + 1",
                         "max(2 * x + 1, -99)",
                         "x * 4 / 2 + 1",
                         "x // 1 * 2 + 1"};
  for (size_t i = 0; i < sizeof right / sizeof *right; i++) {
    bool c, p;
    json_t *d = verdict_of(&t, right[i], &c, &p);
    CHECK_MSG(c && p && !strcmp(kind_of(d), "correct"), "\"%s\" judged %s", right[i], kind_of(d));
    json_decref(d);
  }
  /* Off by one: fails the first example. */
  bool c, p;
  json_t *d = verdict_of(&t, "x * 2", &c, &p);
  CHECK(!c && p && !strcmp(kind_of(d), "failing_test"));
  CHECK(int_of(d, "input") == 1 && int_of(d, "expected") == 3 && int_of(d, "got") == 2);
  CHECK(json_is_true(json_object_get(d, "visible")));
  CHECK(int_of(d, "failed") == 8 && int_of(d, "total") == 8);
  CHECK(int_of(d, "too_small") == 8 && int_of(d, "too_large") == 0);
  CHECK(json_is_true(json_object_get(d, "same_offset")));
  json_decref(d);
  d = verdict_of(&t, "x * 2 + 2", &c, &p);
  CHECK(!c && int_of(d, "too_large") == 8 && json_is_true(json_object_get(d, "same_offset")));
  json_decref(d);
  /* The slope wrong: the gap grows with |x|. */
  d = verdict_of(&t, "x * 3 + 1", &c, &p);
  CHECK(!c && !strcmp(kind_of(d), "failing_test") && int_of(d, "input") == 1);
  CHECK(json_is_false(json_object_get(d, "same_offset")));
  CHECK(json_is_true(json_object_get(d, "gap_grows")));
  CHECK(!strcmp(json_string_value(json_object_get(d, "region")), "some inputs") ||
        !strcmp(json_string_value(json_object_get(d, "region")), "inputs far from zero"));
  json_decref(d);
  /* Right on the examples, wrong on a hidden test. */
  d = verdict_of(&t, "if x < 5 then x * 2 + 1 else 0", &c, &p);
  CHECK(!c && p && !strcmp(kind_of(d), "failing_test"));
  CHECK(int_of(d, "input") == 7 && int_of(d, "expected") == 15 && int_of(d, "got") == 0);
  CHECK(json_is_false(json_object_get(d, "visible")));
  CHECK(int_of(d, "failed") == 2);
  json_decref(d);
  /* Wrong only for negative inputs. */
  d = verdict_of(&t, "abs(x) * 2 + 1", &c, &p);
  CHECK(!c && int_of(d, "input") == -3 && json_is_false(json_object_get(d, "visible")));
  CHECK(!strcmp(json_string_value(json_object_get(d, "region")), "negative inputs"));
  CHECK(int_of(d, "too_large") == 2 && int_of(d, "too_small") == 0);
  json_decref(d);
  /* Run-time errors: division by zero on a hidden input, overflow. */
  d = verdict_of(&t, "x * 2 + 1 + 0 / (x - 7)", &c, &p);
  CHECK(!c && p && !strcmp(kind_of(d), "runtime_error"));
  CHECK(!strcmp(json_string_value(json_object_get(d, "error")), "division_by_zero"));
  CHECK(int_of(d, "input") == 7 && json_is_false(json_object_get(d, "visible")));
  json_decref(d);
  d = verdict_of(&t, "x * 9223372036854775807", &c, &p);
  CHECK(!c && !strcmp(kind_of(d), "runtime_error") &&
        !strcmp(json_string_value(json_object_get(d, "error")), "overflow"));
  CHECK(int_of(d, "input") == 2 && json_is_true(json_object_get(d, "visible")));
  json_decref(d);
  /* Syntax errors: position (1-based, in the attempt's line) and message. */
  struct {
    const char *attempt;
    int position;
    const char *fragment;
  } bad[] = {{"x * 2 +", 8, "the end"},        {"2x + 1", 2, "multiply"},
             {"f(x) = 2x + 1", 9, "multiply"}, {"x ** 2", 4, "'*'"},
             {"y * 2 + 1", 1, "unknown name"}, {"", 1, "empty"},
             {"x > 2", 1, "number"},           {"the answer is x * 2 + 1", 1, "unknown name"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    d = verdict_of(&t, bad[i].attempt, &c, &p);
    const char *msg = json_string_value(json_object_get(d, "message"));
    CHECK_MSG(!c && !p && !strcmp(kind_of(d), "syntax_error") &&
                  int_of(d, "position") == bad[i].position && msg && strstr(msg, bad[i].fragment),
              "\"%s\": %s at %lld: %s", bad[i].attempt, kind_of(d), int_of(d, "position"),
              msg ? msg : "-");
    json_decref(d);
  }
  ag_task_clear(&t);
}

static char *feedback_for(const ag_task *t, const char *attempt, ag_feedback_level level,
                          ag_phrasing_set set, uint64_t seed) {
  ag_verdict v;
  CHECK_OK(F->verify(t, attempt, &v));
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  char *text = NULL;
  CHECK_OK(F->feedback(t, &v, level, set, &rng, &text));
  ag_verdict_clear(&v);
  return text ? text : strdup("");
}

TEST(feedback_is_directional_and_localised) {
  ag_task t;
  linear_task(&t, "x * 2 + 1");
  for (uint64_t seed = 0; seed < 16; seed++) {
    ag_phrasing_set set = seed % 2 ? AG_PHRASING_HELDOUT : AG_PHRASING_TRAIN;
    char *f = feedback_for(&t, "x * 2 + 3", AG_FEEDBACK_DIRECTIONAL, set, seed);
    CHECK_MSG(strstr(f, "too large") &&
                  (strstr(f, "same") || strstr(f, "constant") || strstr(f, "fixed")),
              "%s", f);
    CHECK_MSG(!strpbrk(f, "0123456789"), "directional feedback states a number: %s", f);
    free(f);
    f = feedback_for(&t, "abs(x) * 2 + 1", AG_FEEDBACK_DIRECTIONAL, set, seed);
    CHECK_MSG(strstr(f, "too large") && strstr(f, "negative inputs"), "%s", f);
    free(f);
    f = feedback_for(&t, "x * 3 + 1", AG_FEEDBACK_DIRECTIONAL, set, seed);
    CHECK_MSG(strstr(f, "zero") || strstr(f, "size of x") || strstr(f, "x grows"), "%s", f);
    free(f);
    /* Localised: a failing test, stated as input, output and expected output. */
    f = feedback_for(&t, "x * 2", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "1") && strstr(f, "2") && strstr(f, "3") &&
                  (strstr(f, "example") || strstr(f, "shown")) && !strstr(f, "hidden") &&
                  !strstr(f, "not among") && !strstr(f, "not shown") && !strstr(f, "No example") &&
                  !strstr(f, "do not show") && !strstr(f, "not in the problem"),
              "%s", f);
    free(f);
    f = feedback_for(&t, "if x < 5 then x * 2 + 1 else 0", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "7") && strstr(f, "15") && strstr(f, "0") &&
                  (strstr(f, "hidden") || strstr(f, "not") || strstr(f, "No example")),
              "%s", f);
    free(f);
    f = feedback_for(&t, "x * 2 + 1 + 0 / (x - 7)", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "7") && strstr(f, "divides by zero"), "%s", f);
    free(f);
    f = feedback_for(&t, "x * 2 + 1 + 0 / (x - 7)", AG_FEEDBACK_DIRECTIONAL, set, seed);
    CHECK_MSG(!strstr(f, "7") && strstr(f, "divides by zero"), "%s", f);
    free(f);
    f = feedback_for(&t, "2x + 1", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "multiply with *") && strstr(f, "character 2"), "%s", f);
    free(f);
    f = feedback_for(&t, "2x + 1", AG_FEEDBACK_DIRECTIONAL, set, seed);
    CHECK_MSG(strstr(f, "multiply with *") && !strstr(f, "character"), "%s", f);
    free(f);
  }
  ag_task_clear(&t);
}

TEST(phrasing_sets_are_disjoint) {
  ag_task t;
  linear_task(&t, "x * 2 + 1");
  const char *attempts[] = {"x * 2",
                            "x * 2 + 3",
                            "x * 3 + 1",
                            "abs(x) * 2 + 1",
                            "2x + 1",
                            "x / (x - 7)",
                            "if x < 5 then x * 2 + 1 else 0"};
  for (int level = AG_FEEDBACK_DIRECTIONAL; level <= AG_FEEDBACK_LOCALISED; level++) {
    for (size_t a = 0; a < sizeof attempts / sizeof *attempts; a++) {
      enum { DRAWS = 40 };
      char *train[DRAWS];
      int distinct = 0;
      for (int s = 0; s < DRAWS; s++)
        train[s] = feedback_for(&t, attempts[a], level, AG_PHRASING_TRAIN, (uint64_t)s);
      for (int s = 0; s < DRAWS; s++) {
        char *h = feedback_for(&t, attempts[a], level, AG_PHRASING_HELDOUT, (uint64_t)s);
        for (int k = 0; k < DRAWS; k++) CHECK_MSG(strcmp(h, train[k]), "shared: %s", h);
        free(h);
      }
      for (int s = 0; s < DRAWS; s++) {
        bool seen = false;
        for (int k = 0; k < s; k++) seen = seen || !strcmp(train[s], train[k]);
        distinct += !seen;
      }
      CHECK_MSG(distinct >= 4, "%s: only %d phrasings", attempts[a], distinct);
      for (int s = 0; s < DRAWS; s++) free(train[s]);
    }
  }
  ag_task_clear(&t);
}

TEST(solve_reads_the_tests_not_the_answer) {
  ag_task t;
  linear_task(&t, "x - 999");
  char *answer = NULL;
  CHECK_OK(F->solve(&t, &answer));
  bool c, p;
  json_t *d = verdict_of(&t, answer ? answer : "", &c, &p);
  CHECK_MSG(c, "solved as %s", answer ? answer : "-");
  json_decref(d);
  free(answer);
  ag_task_clear(&t);
  /* Malformed tasks are errors, not crashes. */
  const char *broken[] = {"{}",
                          "{\"visible\": [[1, 2]]}",
                          "{\"visible\": [], \"hidden\": []}",
                          "{\"visible\": [[1]], \"hidden\": []}",
                          "{\"visible\": [[1, \"2\"]], \"hidden\": []}",
                          "{\"visible\": 5, \"hidden\": []}"};
  for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
    CHECK_OK(ag_task_fill(&t, "code", 2, 0, 0, "p", "x", NULL, json_loads(broken[i], 0, NULL)));
    ag_verdict v;
    CHECK_MSG(F->solve(&t, &answer) == AG_ERR_FORMAT, "%s", broken[i]);
    CHECK(F->verify(&t, "x", &v) == AG_ERR_FORMAT);
    CHECK(F->shard(&t) == AG_ERR_FORMAT);
    ag_task_clear(&t);
  }
  /* Tests no program fits (one input, two outputs; an output beyond the
   * search's range): an error, not a crash. */
  CHECK_OK(ag_task_fill(
      &t, "code", 2, 0, 0, "p", "x", NULL,
      json_pack("{s:[[i,i],[i,i]], s:[[i,i]]}", "visible", 1, 5, 2, 1, "hidden", 1, 6)));
  CHECK(F->solve(&t, &answer) == AG_ERR_NOT_FOUND && answer == NULL);
  ag_task_clear(&t);
  CHECK_OK(ag_task_fill(&t, "code", 2, 0, 0, "p", "x", NULL,
                        json_pack("{s:[[i,I],[i,i]], s:[]}", "visible", 1,
                                  (json_int_t)1000000000000LL, 2, 1, "hidden")));
  CHECK(F->solve(&t, &answer) == AG_ERR_NOT_FOUND && answer == NULL);
  ag_task_clear(&t);
}

TEST(leak_guard_and_checker) {
  ag_task t;
  linear_task(&t, "x * 2 + 1");
  const char *leaky[] = {"The answer is x * 2 + 1.", "try x*2+1", "Maybe f(x) = 2 * x + 1?",
                         "It is 1 + x + x, I think.", "if x > 100 then 0 else 2 * x + 1"};
  for (size_t i = 0; i < sizeof leaky / sizeof *leaky; i++) {
    CHECK_MSG(F->leaks(&t, leaky[i]), "family misses: %s", leaky[i]);
    CHECK_MSG(reveals_program(&t, leaky[i]), "checker misses: %s", leaky[i]);
  }
  /* Prose the family's guard also catches. */
  const char *prose[] = {"It is 2x + 1.", "twice x plus one", "x times 2 plus 1", "2\xc3\x97x + 1"};
  for (size_t i = 0; i < sizeof prose / sizeof *prose; i++)
    CHECK_MSG(F->leaks(&t, prose[i]), "family misses: %s", prose[i]);
  const char *safe[] = {"For x = 7 your program gives 15, but it should give 13.",
                        "Your outputs are too large for negative inputs.",
                        "Try x * 2 instead?",
                        "f(1) = 3, f(2) = 5, f(4) = 9",
                        "Think about how f grows when x grows by one.",
                        "x + 1 is too small."};
  for (size_t i = 0; i < sizeof safe / sizeof *safe; i++) {
    CHECK_MSG(!F->leaks(&t, safe[i]), "family flags: %s", safe[i]);
    CHECK_MSG(!reveals_program(&t, safe[i]), "checker flags: %s", safe[i]);
  }
  ag_task_clear(&t);
}

static bool same_task(const ag_task *a, const ag_task *b) {
  return !strcmp(a->problem, b->problem) && !strcmp(a->answer, b->answer) &&
         !strcmp(a->solution, b->solution) && json_equal(a->data, b->data) && !strcmp(a->id, b->id);
}

TEST(generation_is_deterministic_per_seed) {
  CHECK(F->max_level == 4 && F->default_level == 2);
  for (int level = 1; level <= F->max_level; level++) {
    int differ_seed = 0, differ_index = 0, n = level <= 2 ? 30 : 12;
    for (int i = 0; i < n; i++) {
      ag_task a, b, c, d;
      CHECK_OK(F->generate(level, 11, i, &a));
      CHECK_OK(F->generate(level, 11, i, &b));
      CHECK_OK(F->generate(level, 12, i, &c));
      CHECK_OK(F->generate(level, 11, i + 1000, &d));
      CHECK(same_task(&a, &b));
      differ_seed += strcmp(a.problem, c.problem) != 0;
      differ_index += strcmp(a.problem, d.problem) != 0;
      ag_task_clear(&a);
      ag_task_clear(&b);
      ag_task_clear(&c);
      ag_task_clear(&d);
    }
    CHECK_MSG(differ_seed >= n - 2 && differ_index >= n - 2, "level %d: %d %d", level, differ_seed,
              differ_index);
  }
  ag_task t;
  CHECK(F->generate(0, 1, 0, &t) == AG_ERR_INVALID);
  CHECK(F->generate(5, 1, 0, &t) == AG_ERR_INVALID);
}

static const char *last_line(const char *s) {
  const char *nl = strrchr(s, '\n');
  return nl ? nl + 1 : s;
}

static int count_lines_starting(const char *s, const char *prefix) {
  int n = 0;
  for (const char *p = s; p; p = strchr(p, '\n')) {
    if (*p == '\n') p++;
    n += !strncmp(p, prefix, strlen(prefix));
  }
  return n;
}

TEST(every_task_is_solvable) {
  for (int level = 1; level <= F->max_level; level++) {
    long n = test_scaled(300, 30);
    size_t longest = 0;
    int ifs = 0;
    for (long i = 0; i < n; i++) {
      ag_task t;
      CHECK_OK(F->generate(level, 5, i, &t));
      pairs p = tests_of(&t);
      CHECK_MSG(p.visible >= 3 && p.visible <= 5 && p.n - p.visible >= 5 && p.n - p.visible <= 10,
                "%s: %d visible, %d hidden", t.id, p.visible, p.n - p.visible);
      /* The answer passes every test, by this test's own evaluator. */
      tok toks[256];
      int nt = tokenize(t.answer, toks, 256);
      int distinct = 0;
      for (int k = 0; k < p.n; k++) {
        int64_t v;
        CHECK_MSG(eval_span(toks, 0, nt, p.x[k], &v) && v == p.y[k], "%s: %s at %lld", t.id,
                  t.answer, (long long)p.x[k]);
        bool seen = false;
        for (int j = 0; j < k; j++) seen = seen || p.y[j] == p.y[k];
        distinct += !seen;
        for (int j = 0; j < k; j++) CHECK(p.x[j] != p.x[k]); /* distinct inputs */
      }
      CHECK_MSG(distinct >= 3, "%s: %s is nearly constant", t.id, t.answer); /* non-trivial */
      CHECK(strcmp(t.answer, "x") != 0);
      ifs += !strncmp(t.answer, "if ", 3);
      /* The solver's answer verifies. */
      char *solved = NULL;
      CHECK_OK(F->solve(&t, &solved));
      ag_verdict v;
      CHECK_OK(F->verify(&t, solved ? solved : "", &v));
      CHECK_MSG(v.correct, "%s: solver's %s fails", t.id, solved ? solved : "-");
      ag_verdict_clear(&v);
      free(solved);
      /* The worked solution ends with the answer line, which verifies. */
      char line[600], *attempt = NULL;
      snprintf(line, sizeof line, "Answer: %s", t.answer);
      CHECK(!strcmp(last_line(t.solution), line));
      CHECK(count_lines_starting(t.solution, "f(") == p.visible); /* checks each example */
      CHECK(ag_task_extract_attempt(t.solution, &attempt));
      CHECK_OK(F->verify(&t, attempt, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      free(attempt);
      /* The problem lists the examples (and no hidden test) and ends with
       * the format; it does not reveal the program. */
      CHECK(count_lines_starting(t.problem, "f(") == p.visible);
      for (int k = 0; k < p.n; k++) {
        char ex[64];
        snprintf(ex, sizeof ex, "f(%lld) = %lld", (long long)p.x[k], (long long)p.y[k]);
        CHECK((strstr(t.problem, ex) != NULL) == (k < p.visible));
      }
      size_t len = strlen(t.problem);
      CHECK(len > strlen(FORMAT) && !strcmp(t.problem + len - strlen(FORMAT), FORMAT));
      CHECK_MSG(!reveals_program(&t, t.problem), "%s: problem reveals %s", t.id, t.answer);
      CHECK(reveals_program(&t, t.solution)); /* the checker sees a program in text */
      CHECK(!F->leaks(&t, t.problem));
      CHECK(F->leaks(&t, t.answer) && F->leaks(&t, t.solution));
      if (len > longest) longest = len;
      ag_task_clear(&t);
    }
    if (level == F->default_level) CHECK_MSG(longest < 300, "longest problem %zu", longest);
    if (level <= 2) CHECK(ifs == 0);
    if (level >= 3) CHECK_MSG(ifs > n / 4 && ifs < n, "level %d: %d of %ld with if", level, ifs, n);
  }
}

TEST(shards) {
  for (int level = 1; level <= F->max_level; level++) {
    long n = test_scaled(level <= 2 ? 30 : 10, 4);
    for (long i = 0; i < n; i++) {
      ag_task t;
      CHECK_OK(ag_task_generate("code", level, 8, i, true, &t));
      pairs p = tests_of(&t);
      CHECK(t.shard_count == p.visible + 2);
      if (t.shard_count != p.visible + 2) {
        ag_task_clear(&t);
        continue;
      }
      CHECK(strstr(t.problem, t.shards[0].text) == t.problem); /* the goal, first */
      int required = 0;
      for (int k = 0; k < p.visible; k++) {
        char ex[64];
        snprintf(ex, sizeof ex, "f(%lld) = %lld", (long long)p.x[k], (long long)p.y[k]);
        CHECK(!strcmp(t.shards[1 + k].text, ex));
        required += t.shards[1 + k].required;
      }
      CHECK(required >= 2);
      CHECK(!strcmp(t.shards[t.shard_count - 1].text, FORMAT) &&
            !t.shards[t.shard_count - 1].required);
      /* Sharding again replaces the shards. */
      CHECK_OK(F->shard(&t));
      CHECK(t.shard_count == p.visible + 2);
      ag_task_clear(&t);
    }
  }
}

TEST(json_round_trip) {
  ag_task t, u;
  CHECK_OK(ag_task_generate("code", 3, 4, 2, true, &t));
  json_t *j = ag_task_to_json(&t);
  CHECK_OK(ag_task_from_json(j, &u));
  CHECK(same_task(&t, &u) && u.shard_count == t.shard_count);
  ag_verdict v;
  CHECK_OK(F->verify(&u, t.answer, &v));
  CHECK(v.correct);
  ag_verdict_clear(&v);
  json_decref(j);
  ag_task_clear(&t);
  ag_task_clear(&u);
}

/* Wrong attempts of several kinds for a generated task. */
static int wrong_attempts(const ag_task *t, char attempts[][512]) {
  pairs p = tests_of(t);
  int n = 0;
  /* the answer with its first number one larger (off by one) */
  const char *a = t->answer;
  const char *d = strpbrk(a, "0123456789");
  if (d) {
    char *end;
    long long v = strtoll(d, &end, 10);
    snprintf(attempts[n++], 512, "%.*s%lld%s", (int)(d - a), a, v + 1, end);
  }
  snprintf(attempts[n++], 512, "x");
  snprintf(attempts[n++], 512, "%s +", t->answer); /* syntax */
  snprintf(attempts[n++], 512, "%s + 0 / (x - %lld)", t->answer,
           (long long)p.x[p.n - 1]); /* crash */
  /* a table of the examples: right on them, wrong on the hidden tests */
  int len = 0;
  for (int k = 0; k < p.visible; k++)
    len += snprintf(attempts[n] + len, (size_t)(512 - len), "if x == %lld then %lld else ",
                    (long long)p.x[k], (long long)p.y[k]);
  snprintf(attempts[n] + len, (size_t)(512 - len), "0");
  n++;
  snprintf(attempts[n++], 512, "-(%s)", t->answer);
  return n;
}

TEST(feedback_never_reveals_the_program) {
  long n = test_scaled(10000, 1000);
  long texts = 0, hidden_reported = 0;
  int kinds[4] = {0};
  for (long i = 0; i < n; i++) {
    /* mostly levels 1-2 (fast to generate), every 20th level 3 or 4 */
    int level = i % 20 == 19 ? 3 + (int)(i / 20 % 2) : 1 + (int)(i % 2);
    ag_task t;
    CHECK_OK(F->generate(level, 77, i, &t));
    char attempts[8][512];
    int na = wrong_attempts(&t, attempts);
    /* two attempts per task, in turn */
    for (int r = 0; r < 2; r++) {
      const char *attempt = attempts[(i * 2 + r) % na];
      ag_verdict v;
      CHECK_OK(F->verify(&t, attempt, &v));
      if (v.correct) {
        ag_verdict_clear(&v);
        continue;
      }
      const char *kind = kind_of(v.diagnostics);
      kinds[!strcmp(kind, "failing_test")    ? 0
            : !strcmp(kind, "syntax_error")  ? 1
            : !strcmp(kind, "runtime_error") ? 2
                                             : 3]++;
      hidden_reported += json_is_false(json_object_get(v.diagnostics, "visible"));
      for (int lf = AG_FEEDBACK_DIRECTIONAL; lf <= AG_FEEDBACK_LOCALISED; lf++)
        for (int set = AG_PHRASING_TRAIN; set <= AG_PHRASING_HELDOUT; set++) {
          ag_rng rng;
          ag_rng_seed2(&rng, (uint64_t)i, (uint64_t)(r * 4 + lf * 2 + set));
          char *text = NULL;
          CHECK_OK(F->feedback(&t, &v, lf, set, &rng, &text));
          CHECK(text && text[0]);
          if (text && reveals_program(&t, text))
            CHECK_MSG(false, "%s (answer %s, attempt %s): %s", t.id, t.answer, attempt, text);
          texts++;
          free(text);
        }
      ag_verdict_clear(&v);
    }
    ag_task_clear(&t);
  }
  CHECK(texts > n * 6);
  CHECK(kinds[0] > 0 && kinds[1] > 0 && kinds[2] > 0 && kinds[3] == 0);
  CHECK(hidden_reported > n / 10);
}

int main(void) {
  CHECK_OK(ag_task_family_get("code", &F));
  RUN(verify_near_misses);
  RUN(feedback_is_directional_and_localised);
  RUN(phrasing_sets_are_disjoint);
  RUN(solve_reads_the_tests_not_the_answer);
  RUN(leak_guard_and_checker);
  RUN(generation_is_deterministic_per_seed);
  RUN(every_task_is_solvable);
  RUN(shards);
  RUN(json_round_trip);
  RUN(feedback_never_reveals_the_program);
  TEST_MAIN_END();
}
