/* Task family "algebra": the verifier on hand-checked attempts (equivalent
 * fractions, any order, spaces, wrong signs), slips and feedback,
 * deterministic generation, every task solvable by exact elimination, and
 * feedback that never states a solution value (judged by a checker written
 * here that knows fractions, decimals and number words). */
#include "agora/task.h"
#include "test.h"
#include "worlds/tasks/task_util.h"

#include <ctype.h>
#include <strings.h>

static const ag_task_family *F;

/* ---- an independent leak checker ---------------------------------------------------- */

static const char *const ones[20] = {"zero",    "one",     "two",       "three",    "four",
                                     "five",    "six",     "seven",     "eight",    "nine",
                                     "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                     "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const tens[10] = {"",      "",      "twenty",  "thirty", "forty",
                                     "fifty", "sixty", "seventy", "eighty", "ninety"};
static const char *const denominators[11][2] = {{"", ""},
                                                {"", ""},
                                                {"half", "halves"},
                                                {"third", "thirds"},
                                                {"quarter", "quarters"},
                                                {"fifth", "fifths"},
                                                {"sixth", "sixths"},
                                                {"seventh", "sevenths"},
                                                {"eighth", "eighths"},
                                                {"ninth", "ninths"},
                                                {"tenth", "tenths"}};

static bool has_words(const char *text, const char *words) {
  size_t n = strlen(words);
  for (const char *p = text; *p; p++) {
    if (strncasecmp(p, words, n) != 0) continue;
    if ((p == text || !isalpha((unsigned char)p[-1])) && !isalpha((unsigned char)p[n])) return true;
  }
  return false;
}

/* A value p/q (q > 0) stated in text: digits (integers, decimals to within
 * their last digit, fractions a/b), or words. Either sign counts. */
static bool states_value(const char *text, long long p, long long q) {
  long double target = (long double)(p < 0 ? -p : p) / (long double)q;
  long long mag = p < 0 ? -p : p;
  for (const char *s = text; *s;) {
    if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1]))) {
      s++;
      continue;
    }
    char num[64];
    int n = 0, decimals = -1;
    while (n < 60 && (isdigit((unsigned char)*s) || (*s == '.' && isdigit((unsigned char)s[1])))) {
      if (decimals >= 0) decimals++;
      if (*s == '.') decimals = 0;
      num[n++] = *s++;
    }
    num[n] = '\0';
    long double v = strtold(num, NULL);
    /* a / b */
    const char *t = s;
    while (*t == ' ') t++;
    if (decimals < 0 && *t == '/') {
      t++;
      while (*t == ' ') t++;
      if (isdigit((unsigned char)*t)) {
        long double den = strtold(t, (char **)&t);
        if (den != 0 && v / den == target) return true;
        s = t;
        continue;
      }
    }
    if (v == target) return true;
    if (decimals >= 2 && q > 1) {
      long double unit = 1;
      for (int i = 0; i < decimals; i++) unit /= 10;
      if (v - target < unit && target - v < unit) return true;
    }
  }
  char w[64];
  if (q == 1 && mag < 100) {
    if (mag < 20)
      snprintf(w, sizeof w, "%s", ones[mag]);
    else if (mag % 10 == 0)
      snprintf(w, sizeof w, "%s", tens[mag / 10]);
    else
      snprintf(w, sizeof w, "%s %s", tens[mag / 10], ones[mag % 10]);
    if (has_words(text, w)) return true;
    char *space = strchr(w, ' ');
    if (space) *space = '-';
    if (has_words(text, w)) return true;
  }
  if (q > 1 && q <= 10 && mag < 20) {
    snprintf(w, sizeof w, "%s %s", ones[mag], denominators[q][mag == 1 ? 0 : 1]);
    if (has_words(text, w)) return true;
    if (mag == 1) {
      snprintf(w, sizeof w, "a %s", denominators[q][0]);
      if (has_words(text, w)) return true;
    }
  }
  return false;
}

/* Any solution value of the task (parsed from its answer "x = a, y = b"). */
static bool states_answer(const ag_task *t, const char *text) {
  const char *s = t->answer;
  for (const char *eq = strchr(s, '='); eq; eq = strchr(eq + 1, '=')) {
    long long p = strtoll(eq + 1, (char **)&s, 10), q = 1;
    if (*s == '/') q = strtoll(s + 1, NULL, 10);
    if (states_value(text, p, q)) return true;
  }
  return false;
}

/* ---- hand-built tasks --------------------------------------------------------------- */

static void linear_task(ag_task *t, int a, int b, int c, int d, const char *answer) {
  json_t *data = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "kind", "linear", "a", a, "b", b, "c",
                           c, "d", d, "template", 0);
  CHECK_OK(ag_task_fill(t, "algebra", 2, 0, 0, "Solve for x.", answer, NULL, data));
}

/* 2x + 3y = 7, x - y = 1: x = 2, y = 1. */
static void system_task(ag_task *t, const char *answer) {
  json_t *data = json_pack("{s:s, s:[[i,i,i],[i,i,i]], s:i}", "kind", "system", "equations", 2, 3,
                           7, 1, -1, 1, "template", 0);
  CHECK_OK(ag_task_fill(t, "algebra", 3, 0, 0, "Solve the system.", answer, NULL, data));
}

static json_t *judge(const ag_task *t, const char *attempt, bool *correct, bool *parsed) {
  ag_verdict v;
  CHECK_OK(F->verify(t, attempt, &v));
  *correct = v.correct;
  *parsed = v.parsed;
  json_t *d = json_incref(v.diagnostics);
  ag_verdict_clear(&v);
  return d;
}

static const char *str_at(const json_t *d, const char *a, const char *b) {
  const json_t *v = json_object_get(d, a);
  if (b) v = json_object_get(v, b);
  const char *s = json_string_value(v);
  return s ? s : "";
}

static void expect_all(const ag_task *t, const char *const *attempts, int n, bool want_correct,
                       bool want_parsed) {
  for (int i = 0; i < n; i++) {
    bool c, p;
    json_t *d = judge(t, attempts[i], &c, &p);
    CHECK_MSG(c == want_correct && p == want_parsed, "\"%s\": correct %d parsed %d", attempts[i], c,
              p);
    json_decref(d);
  }
}

TEST(linear_near_misses) {
  ag_task t;
  linear_task(&t, 3, 5, 1, -7, "x = -6"); /* 3x + 5 = x - 7 */
  const char *right[] = {"x = -6", "-6",      "x=-6", "  x =  -6  ",           "-12/2",
                         "-6.0",   "x = -6.", "(-6)", "x = -6\nsince 2x = -12"};
  expect_all(&t, right, 9, true, true);
  const char *unread[] = {"y = -6", "", "x = ", "x = -6, y = 1", "z = -6", "minus six"};
  expect_all(&t, unread, 6, false, false);
  bool c, p;
  json_t *d = judge(&t, "6", &c, &p);
  CHECK(!c && p && json_is_true(json_object_get(d, "sign_error")));
  json_decref(d);
  d = judge(&t, "x = -5", &c, &p);
  CHECK(!strcmp(str_at(d, "direction", NULL), "too_high"));
  CHECK(json_is_false(
      json_object_get(json_object_get(json_object_get(d, "variables"), "x"), "correct")));
  CHECK(!strcmp(str_at(d, "residual", NULL), "2")); /* 3(-5) + 5 - (-5 - 7) */
  json_decref(d);
  struct {
    const char *attempt, *slip;
    int step;
  } slips[] = {{"-1", "constant_sign", 1},
               {"-3", "x_term_sign", 1},
               {"-1/6", "inverted_division", 2},
               {"-12", "no_division", 2},
               {"40", "", 0}};
  for (int i = 0; i < 5; i++) {
    d = judge(&t, slips[i].attempt, &c, &p);
    CHECK_MSG(!strcmp(str_at(d, "slip", NULL), slips[i].slip) &&
                  json_integer_value(json_object_get(d, "first_wrong_step")) == slips[i].step,
              "%s: %s", slips[i].attempt, str_at(d, "slip", NULL));
    json_decref(d);
  }
  ag_task_clear(&t);
}

TEST(fraction_answers) {
  ag_task t;
  linear_task(&t, 2, 1, 5, -3, "x = 4/3"); /* 2x + 1 = 5x - 3 */
  const char *right[] = {"4/3", "x = 8/6", "x = 1 1/3", "\\frac{4}{3}", "x = 4 / 3", "12/9"};
  expect_all(&t, right, 6, true, true);
  const char *wrong[] = {"1.33", "1.3333", "-4/3", "3/4", "4"};
  expect_all(&t, wrong, 5, false, true);
  bool c, p;
  json_t *d = judge(&t, "1.33", &c, &p);
  CHECK(!strcmp(str_at(d, "direction", NULL), "too_low"));
  json_decref(d);
  d = judge(&t, "3/4", &c, &p);
  CHECK(!strcmp(str_at(d, "slip", NULL), "inverted_division"));
  json_decref(d);
  ag_task_clear(&t);
}

TEST(system_any_order) {
  ag_task t;
  system_task(&t, "x = 2, y = 1");
  const char *right[] = {"x = 2, y = 1",    "y = 1, x = 2",   "x=2,y=1", "(2, 1)",
                         "x = 2 and y = 1", "x = 4/2; y = 1", "2, 1",    "y=1, 2"};
  expect_all(&t, right, 8, true, true);
  const char *unread[] = {"x = 2", "x = 2, x = 1", "x = 2, y = 1, z = 0", "(1, 2, 3)",
                          "x = 2 y = 1"};
  expect_all(&t, unread, 5, false, false);
  bool c, p;
  json_t *d = judge(&t, "x = 1, y = 2", &c, &p);
  json_t *vars = json_object_get(d, "variables");
  CHECK(!c && !strcmp(str_at(vars, "x", "direction"), "too_low") &&
        !strcmp(str_at(vars, "y", "direction"), "too_high"));
  json_decref(d);
  d = judge(&t, "x = 2, y = 2", &c, &p);
  vars = json_object_get(d, "variables");
  CHECK(json_is_true(json_object_get(json_object_get(vars, "x"), "correct")));
  CHECK(json_is_false(json_object_get(json_object_get(vars, "y"), "correct")));
  json_decref(d);
  d = judge(&t, "x = 5, y = -1", &c, &p); /* 10 - 3 = 7 holds; 5 + 1 = 1 does not */
  json_t *sat = json_object_get(d, "equations_satisfied");
  CHECK(json_is_true(json_array_get(sat, 0)) && json_is_false(json_array_get(sat, 1)));
  CHECK(!strcmp(json_string_value(json_array_get(json_object_get(d, "residuals"), 1)), "5"));
  json_decref(d);
  d = judge(&t, "x = -2, y = -1", &c, &p);
  CHECK(json_is_true(
      json_object_get(json_object_get(json_object_get(d, "variables"), "y"), "sign_error")));
  json_decref(d);
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
  return text;
}

TEST(feedback_points_the_way) {
  ag_task t;
  linear_task(&t, 3, 5, 1, -7, "x = -6");
  for (uint64_t seed = 0; seed < 16; seed++) {
    ag_phrasing_set set = seed % 2 ? AG_PHRASING_HELDOUT : AG_PHRASING_TRAIN;
    char *f = feedback_for(&t, "-5", AG_FEEDBACK_DIRECTIONAL, set, seed);
    CHECK_MSG(strstr(f, "high") || strstr(f, "larger") || strstr(f, "big") ||
                  strstr(f, "smaller value") || strstr(f, "lower") || strstr(f, "above"),
              "%s", f);
    free(f);
    f = feedback_for(&t, "6", AG_FEEDBACK_DIRECTIONAL, set, seed);
    CHECK_MSG(strstr(f, "sign") || strstr(f, "positive"), "%s", f);
    free(f);
    f = feedback_for(&t, "-1", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "constant") || strstr(f, "number to the other side"), "%s", f);
    free(f);
    f = feedback_for(&t, "-12", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "divi") || strstr(f, "alone"), "%s", f);
    free(f);
    f = feedback_for(&t, "40", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "left side") && (strstr(f, "large") || strstr(f, "bigger") ||
                                         strstr(f, "exceeds") || strstr(f, "greater")),
              "%s", f);
    free(f);
  }
  ag_task_clear(&t);
  system_task(&t, "x = 2, y = 1");
  for (uint64_t seed = 0; seed < 16; seed++) {
    ag_phrasing_set set = seed % 2 ? AG_PHRASING_HELDOUT : AG_PHRASING_TRAIN;
    char *f = feedback_for(&t, "x = 5, y = -1", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "second"), "%s", f);
    free(f);
    f = feedback_for(&t, "x = 2, y = 2", AG_FEEDBACK_DIRECTIONAL, set, seed);
    CHECK_MSG(strstr(f, "x") && strstr(f, "y"), "%s", f);
    free(f);
    f = feedback_for(&t, "x = 2", AG_FEEDBACK_LOCALISED, set, seed);
    CHECK_MSG(strstr(f, "x = <value>, y = <value>"), "%s", f);
    free(f);
  }
  ag_task_clear(&t);
}

TEST(phrasing_sets_are_disjoint) {
  ag_task lin, sys;
  linear_task(&lin, 3, 5, 1, -7, "x = -6");
  system_task(&sys, "x = 2, y = 1");
  struct {
    const ag_task *t;
    const char *attempt;
  } cases[] = {{&lin, "-5"},           {&lin, "-7"},          {&lin, "6"},
               {&lin, "-1"},           {&lin, "-3"},          {&lin, "-12"},
               {&lin, "40"},           {&lin, "y"},           {&sys, "x = 5, y = -1"},
               {&sys, "x = 2, y = 2"}, {&sys, "x = 0, y = 0"}};
  for (int level = AG_FEEDBACK_DIRECTIONAL; level <= AG_FEEDBACK_LOCALISED; level++)
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
      char *train[24];
      for (int s = 0; s < 24; s++)
        train[s] = feedback_for(cases[c].t, cases[c].attempt, level, AG_PHRASING_TRAIN, s);
      int distinct = 0;
      for (int s = 0; s < 24; s++) {
        bool seen = false;
        for (int k = 0; k < s; k++) seen = seen || !strcmp(train[s], train[k]);
        distinct += !seen;
        char *h = feedback_for(cases[c].t, cases[c].attempt, level, AG_PHRASING_HELDOUT, s);
        for (int k = 0; k < 24; k++) CHECK_MSG(strcmp(h, train[k]), "shared: %s", h);
        free(h);
      }
      CHECK_MSG(distinct >= 3, "%s: %d phrasings", cases[c].attempt, distinct);
      for (int s = 0; s < 24; s++) free(train[s]);
    }
  ag_task_clear(&lin);
  ag_task_clear(&sys);
}

TEST(solve_eliminates_from_the_data) {
  ag_task t;
  char *answer = NULL;
  linear_task(&t, 2, 1, 5, -3, "x = 99");
  CHECK_OK(F->solve(&t, &answer));
  CHECK(answer && !strcmp(answer, "x = 4/3"));
  free(answer);
  ag_task_clear(&t);
  system_task(&t, "x = 0, y = 0");
  CHECK_OK(F->solve(&t, &answer));
  CHECK(answer && !strcmp(answer, "x = 2, y = 1"));
  free(answer);
  ag_task_clear(&t);
  /* x only in the second equation's first place: pivoting. */
  json_t *data = json_pack("{s:s, s:[[i,i,i],[i,i,i]], s:i}", "kind", "system", "equations", 0, 2,
                           3, 4, 1, 5, "template", 0);
  CHECK_OK(ag_task_fill(&t, "algebra", 4, 0, 0, "p", "x = 0, y = 0", NULL, data));
  CHECK_OK(F->solve(&t, &answer));
  CHECK(answer && !strcmp(answer, "x = 7/8, y = 3/2"));
  free(answer);
  ag_task_clear(&t);
  /* Malformed or singular: an error. */
  linear_task(&t, 2, 1, 2, 3, "x = 1");
  CHECK(F->solve(&t, &answer) == AG_ERR_FORMAT);
  ag_task_clear(&t);
  data = json_pack("{s:s, s:[[i,i,i],[i,i,i]]}", "kind", "system", "equations", 1, 2, 3, 2, 4, 6);
  CHECK_OK(ag_task_fill(&t, "algebra", 4, 0, 0, "p", "x = 0, y = 0", NULL, data));
  CHECK(F->solve(&t, &answer) == AG_ERR_FORMAT);
  ag_task_clear(&t);
}

static bool same_task(const ag_task *a, const ag_task *b) {
  return !strcmp(a->problem, b->problem) && !strcmp(a->answer, b->answer) &&
         !strcmp(a->solution, b->solution) && json_equal(a->data, b->data);
}

TEST(generation_is_deterministic_per_seed) {
  for (int level = 1; level <= F->max_level; level++) {
    int differ_seed = 0, differ_index = 0;
    for (int i = 0; i < 50; i++) {
      ag_task a, b, c, d;
      CHECK_OK(F->generate(level, 21, i, &a));
      CHECK_OK(F->generate(level, 21, i, &b));
      CHECK_OK(F->generate(level, 22, i, &c));
      CHECK_OK(F->generate(level, 21, i + 500, &d));
      CHECK(same_task(&a, &b));
      differ_seed += strcmp(a.problem, c.problem) != 0;
      differ_index += strcmp(a.problem, d.problem) != 0;
      ag_task_clear(&a);
      ag_task_clear(&b);
      ag_task_clear(&c);
      ag_task_clear(&d);
    }
    CHECK_MSG(differ_seed >= 45 && differ_index >= 45, "level %d: %d %d", level, differ_seed,
              differ_index);
  }
}

TEST(every_task_is_solvable) {
  long n = test_scaled(2000, 200);
  for (int level = 1; level <= F->max_level; level++) {
    size_t longest = 0;
    int systems = 0, fractions = 0;
    for (long i = 0; i < n; i++) {
      ag_task t;
      CHECK_OK(F->generate(level, 8, i, &t));
      char *solved = NULL;
      CHECK_OK(F->solve(&t, &solved));
      CHECK_MSG(solved && !strcmp(solved, t.answer), "%s: %s vs %s", t.id, solved, t.answer);
      ag_verdict v;
      CHECK_OK(F->verify(&t, solved, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      char *attempt = NULL;
      CHECK(ag_task_extract_attempt(t.solution, &attempt));
      CHECK_OK(F->verify(&t, attempt, &v));
      CHECK_MSG(v.correct, "%s", t.solution);
      ag_verdict_clear(&v);
      free(attempt);
      free(solved);
      bool system = json_object_get(t.data, "equations") != NULL;
      systems += system;
      fractions += strchr(t.answer, '/') != NULL;
      const char *fmt =
          system ? "\"Answer: x = <value>, y = <value>\"." : "\"Answer: x = <value>\".";
      size_t len = strlen(t.problem);
      CHECK(len > strlen(fmt) && !strcmp(t.problem + len - strlen(fmt), fmt));
      CHECK_MSG(!states_answer(&t, t.problem), "%s states %s", t.problem, t.answer);
      if (len > longest) longest = len;
      ag_task_clear(&t);
    }
    if (level == F->default_level) CHECK_MSG(longest < 300, "longest %zu", longest);
    if (level <= 2) CHECK(systems == 0 && fractions == 0);
    if (level >= 3) CHECK(systems > n / 5 && fractions > n / 10);
  }
}

TEST(leak_checker_sees_the_forms) {
  CHECK(states_value("it is 3/4", 3, 4) && states_value("it is 6 / 8", 3, 4));
  CHECK(states_value("0.75", 3, 4) && states_value("about 0.33", 1, 3));
  CHECK(states_value("three quarters", 3, 4) && states_value("a half", 1, 2));
  CHECK(states_value("minus seven", -7, 1) && states_value("-7", 7, 1));
  CHECK(!states_value("3/40", 3, 4) && !states_value("seventeen", 7, 1));
}

TEST(feedback_never_states_the_answer) {
  long n = test_scaled(10000, 1000);
  long checked = 0;
  for (long i = 0; i < n; i++) {
    int level = 1 + (int)(i % F->max_level);
    ag_task t;
    CHECK_OK(F->generate(level, 99, i, &t));
    char *solution_values = strdup(t.answer); /* "x = a, y = b" */
    char xs[48] = "", ys[48] = "";
    sscanf(solution_values, "x = %47[^,], y = %47s", xs, ys);
    free(solution_values);
    bool system = ys[0] != '\0';
    char attempts[7][128];
    int count = 0;
    if (!system) {
      snprintf(attempts[count++], 128, "x = %s + 1", xs); /* unparsed */
      snprintf(attempts[count++], 128, "x = -(%s)", xs);  /* unparsed */
      snprintf(attempts[count++], 128, "%s%s", xs[0] == '-' ? "" : "-", xs[0] == '-' ? xs + 1 : xs);
      snprintf(attempts[count++], 128, "x = 0");
      snprintf(attempts[count++], 128, "x = 1");
      snprintf(attempts[count++], 128, "x = 100");
      snprintf(attempts[count++], 128, "x = -7/3");
    } else {
      snprintf(attempts[count++], 128, "x = %s, y = 0", xs);
      snprintf(attempts[count++], 128, "x = 0, y = %s", ys);
      snprintf(attempts[count++], 128, "y = %s, x = %s", xs, ys);
      snprintf(attempts[count++], 128, "x = 1, y = 1");
      snprintf(attempts[count++], 128, "x = -3/2, y = 5");
      snprintf(attempts[count++], 128, "x = %s", xs);
    }
    for (int a = 0; a < count; a++) {
      ag_verdict v;
      CHECK_OK(F->verify(&t, attempts[a], &v));
      if (v.correct) {
        ag_verdict_clear(&v);
        continue;
      }
      for (int lv = AG_FEEDBACK_DIRECTIONAL; lv <= AG_FEEDBACK_LOCALISED; lv++)
        for (int set = AG_PHRASING_TRAIN; set <= AG_PHRASING_HELDOUT; set++) {
          ag_rng rng;
          ag_rng_seed2(&rng, (uint64_t)i, (uint64_t)(a * 4 + lv * 2 + set));
          char *text = NULL;
          CHECK_OK(F->feedback(&t, &v, lv, set, &rng, &text));
          CHECK(text && text[0]);
          if (text && states_answer(&t, text))
            CHECK_MSG(false, "%s (answer %s, attempt %s): %s", t.id, t.answer, attempts[a], text);
          CHECK(!text || !F->leaks(&t, text));
          free(text);
          checked++;
        }
      ag_verdict_clear(&v);
    }
    ag_task_clear(&t);
  }
  CHECK(checked > n * 16);
  ag_task t;
  linear_task(&t, 2, 1, 5, -3, "x = 4/3");
  CHECK(F->leaks(&t, "x is 8/6") && F->leaks(&t, "one and a third") && F->leaks(&t, "1.333"));
  CHECK(!F->leaks(&t, "divide by the coefficient of x"));
  ag_task_clear(&t);
}

TEST(shards_goal_first_then_facts) {
  long n = test_scaled(500, 100);
  for (long i = 0; i < n; i++) {
    int level = 1 + (int)(i % F->max_level);
    ag_task t;
    CHECK_OK(ag_task_generate("algebra", level, 4, i, true, &t));
    CHECK(t.shard_count == 4);
    CHECK(!t.shards[0].required && strstr(t.shards[0].text, "Answer: x = <value>"));
    CHECK(t.shards[1].required && t.shards[2].required && !t.shards[3].required);
    for (int s = 0; s < t.shard_count; s++)
      CHECK_MSG(!states_answer(&t, t.shards[s].text), "%s", t.shards[s].text);
    ag_task_clear(&t);
  }
}

int main(void) {
  CHECK_OK(ag_task_family_get("algebra", &F));
  if (!F || !F->generate) return 1;
  RUN(linear_near_misses);
  RUN(fraction_answers);
  RUN(system_any_order);
  RUN(feedback_points_the_way);
  RUN(phrasing_sets_are_disjoint);
  RUN(solve_eliminates_from_the_data);
  RUN(generation_is_deterministic_per_seed);
  RUN(every_task_is_solvable);
  RUN(leak_checker_sees_the_forms);
  RUN(feedback_never_states_the_answer);
  RUN(shards_goal_first_then_facts);
  TEST_MAIN_END();
}
