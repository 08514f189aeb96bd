/* The puzzle task family: Knights and Knaves and Countdown verifiers on
 * hand-checked answers and near misses, generators that are deterministic
 * and always solvable (knights puzzles unique by a brute force written
 * here from the problem text), sharding, and feedback that never states an
 * answer, judged by checkers written here, independent of leaks(). */
#include "agora/task.h"
#include "test.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <strings.h>

static const ag_task_family *puzzle_family(void) {
  const ag_task_family *f = NULL;
  CHECK_OK(ag_task_family_get("puzzle", &f));
  return f;
}

static void hand_task(ag_task *t, const char *data_json) {
  memset(t, 0, sizeof *t);
  snprintf(t->family, sizeof t->family, "puzzle");
  snprintf(t->id, sizeof t->id, "puzzle/hand");
  t->level = 1;
  t->problem = strdup("hand-made puzzle");
  t->answer = strdup("");
  t->solution = strdup("");
  json_error_t error;
  t->data = json_loads(data_json, 0, &error);
  CHECK_MSG(t->data != NULL, "%s", error.text);
}

/* A says B is a knave, B says C is a knave, C says A and B are both
 * knaves: only A knave, B knight, C knave fits. */
static const char knights3[] =
    "{\"kind\":\"knights\",\"people\":3,\"statements\":["
    "{\"speaker\":\"A\",\"type\":\"is\",\"a\":\"B\",\"role_a\":\"knave\",\"text\":\"B is a "
    "knave.\"},"
    "{\"speaker\":\"B\",\"type\":\"is\",\"a\":\"C\",\"role_a\":\"knave\",\"text\":\"C is a "
    "knave.\"},"
    "{\"speaker\":\"C\",\"type\":\"and\",\"a\":\"A\",\"role_a\":\"knave\",\"b\":\"B\",\"role_b\":"
    "\"knave\",\"text\":\"A is a knave and B is a knave.\"}]}";
/* A says B is a knave, B says A and B are different kinds: A knave, B knight. */
static const char knights2[] =
    "{\"kind\":\"knights\",\"people\":2,\"statements\":["
    "{\"speaker\":\"A\",\"type\":\"is\",\"a\":\"B\",\"role_a\":\"knave\",\"text\":\"B is a "
    "knave.\"},"
    "{\"speaker\":\"B\",\"type\":\"diff\",\"a\":\"A\",\"b\":\"B\",\"text\":\"A and I are "
    "different kinds.\"}]}";
/* The classic: 8 / (3 - 8 / 3) = 24 needs a fraction on the way. */
static const char countdown_3388[] = "{\"kind\":\"countdown\",\"numbers\":[3,3,8,8],\"target\":24}";

static const char *kind_of(const ag_verdict *v) {
  return json_string_value(json_object_get(v->diagnostics, "kind"));
}
static const char *diag_str(const ag_verdict *v, const char *key) {
  const char *s = json_string_value(json_object_get(v->diagnostics, key));
  return s ? s : "";
}

static char *feedback_for(const ag_task_family *f, const ag_task *t, const char *attempt,
                          ag_feedback_level level, ag_phrasing_set set, uint64_t seed) {
  ag_verdict v;
  char *text = NULL;
  CHECK_OK(f->verify(t, attempt, &v));
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  CHECK_OK(f->feedback(t, &v, level, set, &rng, &text));
  ag_verdict_clear(&v);
  return text ? text : strdup("");
}

TEST(knights_verify_accepts_any_order_case_and_spelling) {
  const ag_task_family *f = puzzle_family();
  ag_task t;
  hand_task(&t, knights3);
  const char *good[] = {
      "A: knave, B: knight, C: knave",
      "a: KNAVE, b: Knight, c: knave",
      "B: knight, C: knave, A: knave",
      "A is a knave, B is a knight and C is a knave.",
      "knaves: A, C; knight: B",
      "A knave B knight C knave",
      "A = knave, B = knight, C = knave",
      "A: liar, B: truth-teller, C: liar",
      "A is not a knight, B is a knight, C is a knave",
      "A and C are knaves, B is a knight",
  };
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    ag_verdict v;
    CHECK_OK(f->verify(&t, good[i], &v));
    CHECK_MSG(v.correct && v.parsed, "\"%s\" judged %s", good[i], kind_of(&v));
    ag_verdict_clear(&v);
  }
  char *answer = NULL;
  CHECK_OK(f->solve(&t, &answer));
  CHECK(answer && strcmp(answer, "A: knave, B: knight, C: knave") == 0);
  free(answer);
  ag_task_clear(&t);
}

TEST(knights_verify_diagnoses_wrong_roles) {
  const ag_task_family *f = puzzle_family();
  ag_task t;
  hand_task(&t, knights3);
  ag_verdict v;
  // One role wrong: A called a knight, whose claim "B is a knave" is then false.
  CHECK_OK(f->verify(&t, "A: knight, B: knight, C: knave", &v));
  CHECK(!v.correct && v.parsed && strcmp(kind_of(&v), "wrong_roles") == 0);
  CHECK(json_integer_value(json_object_get(v.diagnostics, "wrong")) == 1);
  CHECK(strcmp(diag_str(&v, "first_wrong"), "A") == 0);
  CHECK(strcmp(diag_str(&v, "contradicted"), "A") == 0);
  CHECK(strcmp(diag_str(&v, "claimed"), "knight") == 0);
  CHECK(!json_is_true(json_object_get(v.diagnostics, "statement_true")));
  ag_verdict_clear(&v);
  // Every role flipped.
  CHECK_OK(f->verify(&t, "A: knight, B: knave, C: knight", &v));
  CHECK(json_integer_value(json_object_get(v.diagnostics, "wrong")) == 3);
  ag_verdict_clear(&v);
  // Unreadable: a missing person, two roles for one person, no roles.
  const char *unread[] = {"A: knave, B: knight", "A: knave, A: knight, B: knight, C: knave", "",
                          "I do not know", "(3+3)*4"};
  for (size_t i = 0; i < sizeof unread / sizeof *unread; i++) {
    CHECK_OK(f->verify(&t, unread[i], &v));
    CHECK_MSG(!v.correct && !v.parsed && strcmp(kind_of(&v), "unparsed") == 0, "\"%s\"", unread[i]);
    ag_verdict_clear(&v);
  }
  CHECK_OK(f->verify(&t, "A: knave, B: knight", &v));
  CHECK(strcmp(diag_str(&v, "person"), "C") == 0);
  ag_verdict_clear(&v);

  // Localised feedback names the contradicted statement, directional counts.
  for (uint64_t seed = 0; seed < 16; seed++) {
    char *loc = feedback_for(f, &t, "A: knight, B: knight, C: knave", AG_FEEDBACK_LOCALISED,
                             seed & 1, seed);
    CHECK_MSG(strstr(loc, "A") && strstr(loc, "false"), "%s", loc);
    free(loc);
    char *one = feedback_for(f, &t, "A: knight, B: knight, C: knave", AG_FEEDBACK_DIRECTIONAL,
                             seed & 1, seed);
    char *all = feedback_for(f, &t, "A: knight, B: knave, C: knight", AG_FEEDBACK_DIRECTIONAL,
                             seed & 1, seed);
    CHECK_MSG(strcmp(one, all) != 0, "%s", one);
    free(one);
    free(all);
  }
  ag_task_clear(&t);
}

/* With two people, "one role is wrong" / "both are wrong" would give the
 * answer away: directional feedback must read the same either way. */
TEST(knights_feedback_with_two_people_hides_the_count) {
  const ag_task_family *f = puzzle_family();
  ag_task t;
  hand_task(&t, knights2);
  ag_verdict v;
  CHECK_OK(f->verify(&t, "A: knave, B: knight", &v));
  CHECK(v.correct);
  ag_verdict_clear(&v);
  for (uint64_t seed = 0; seed < 32; seed++) {
    char *one =
        feedback_for(f, &t, "A: knight, B: knight", AG_FEEDBACK_DIRECTIONAL, seed & 1, seed);
    char *both =
        feedback_for(f, &t, "A: knight, B: knave", AG_FEEDBACK_DIRECTIONAL, seed & 1, seed);
    CHECK_MSG(strcmp(one, both) == 0, "%s / %s", one, both);
    free(one);
    free(both);
  }
  ag_task_clear(&t);
}

TEST(countdown_verify_evaluates_exactly) {
  const ag_task_family *f = puzzle_family();
  ag_task t;
  hand_task(&t, countdown_3388);
  const char *good[] = {
      "8/(3-8/3)",
      "8 / (3 - 8 / 3)",
      "8\xc3\xb7(3\xe2\x88\x92"
      "8\xc3\xb7"
      "3)", // ÷ and the minus sign
      "8/(3-8/3) = 24",
      "24 = 8/(3-8/3)",
      "[8/(3-8/3)]",
      "((8)/((3)-(8/3)))",
  };
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    ag_verdict v;
    CHECK_OK(f->verify(&t, good[i], &v));
    CHECK_MSG(v.correct && v.parsed, "\"%s\" judged %s", good[i], kind_of(&v));
    ag_verdict_clear(&v);
  }
  ag_verdict v;
  // 24, but with the wrong numbers.
  CHECK_OK(f->verify(&t, "8*3+8-8", &v));
  CHECK(!v.correct && strcmp(kind_of(&v), "numbers_mismatch") == 0);
  const json_t *missing = json_object_get(v.diagnostics, "missing");
  const json_t *extra = json_object_get(v.diagnostics, "extra");
  CHECK(json_array_size(missing) == 1 && json_integer_value(json_array_get(missing, 0)) == 3);
  CHECK(json_array_size(extra) == 1 && json_integer_value(json_array_get(extra, 0)) == 8);
  ag_verdict_clear(&v);
  // The right numbers, the wrong value: 25 is one too high; last step 5 * 5.
  CHECK_OK(f->verify(&t, "(8-3)*(8-3)", &v));
  CHECK(!v.correct && v.parsed && strcmp(kind_of(&v), "wrong_value") == 0);
  CHECK(strcmp(diag_str(&v, "value"), "25") == 0 && strcmp(diag_str(&v, "direction"), "high") == 0);
  CHECK(strcmp(diag_str(&v, "off_by"), "1") == 0);
  CHECK(strcmp(diag_str(&v, "last_left"), "5") == 0 && strcmp(diag_str(&v, "last_op"), "*") == 0);
  ag_verdict_clear(&v);
  // A fraction: 8 * (3 - 8/3) = 8/3.
  CHECK_OK(f->verify(&t, "8*(3-8/3)", &v));
  CHECK(strcmp(diag_str(&v, "value"), "8/3") == 0 && strcmp(diag_str(&v, "direction"), "low") == 0);
  ag_verdict_clear(&v);
  CHECK_OK(f->verify(&t, "8/(3-3)*8", &v));
  CHECK(!v.correct && strcmp(kind_of(&v), "division_by_zero") == 0);
  ag_verdict_clear(&v);
  const char *syntax[] = {"8/(3-8/3", "8 8 3 3", "-8+8+3*3",   "8/(3-8/3))",
                          "",         "eight",   "8.0/(3-8/3)"};
  for (size_t i = 0; i < sizeof syntax / sizeof *syntax; i++) {
    CHECK_OK(f->verify(&t, syntax[i], &v));
    CHECK_MSG(!v.correct && !v.parsed && strcmp(kind_of(&v), "unparsed") == 0 &&
                  strcmp(diag_str(&v, "reason"), "syntax") == 0,
              "\"%s\": %s", syntax[i], kind_of(&v));
    ag_verdict_clear(&v);
  }
  char *answer = NULL;
  CHECK_OK(f->solve(&t, &answer));
  CHECK_OK(f->verify(&t, answer, &v));
  CHECK_MSG(v.correct, "solve() gave %s", answer);
  ag_verdict_clear(&v);
  free(answer);

  for (uint64_t seed = 0; seed < 16; seed++) {
    char *dir = feedback_for(f, &t, "(8-3)*(8-3)", AG_FEEDBACK_DIRECTIONAL, seed & 1, seed);
    CHECK_MSG(strstr(dir, "25") && strstr(dir, "1") && strstr(dir, "high"), "%s", dir);
    free(dir);
    char *loc = feedback_for(f, &t, "(8-3)*(8-3)", AG_FEEDBACK_LOCALISED, seed & 1, seed);
    CHECK_MSG(strstr(loc, "5 ") && strstr(loc, "*") && strstr(loc, "25"), "%s", loc);
    free(loc);
    loc = feedback_for(f, &t, "8*3+8-8", AG_FEEDBACK_LOCALISED, seed & 1, seed);
    CHECK_MSG(strstr(loc, "3") && strstr(loc, "8"), "%s", loc);
    free(loc);
  }
  ag_task_clear(&t);
}

TEST(leaks_recognise_stated_answers) {
  const ag_task_family *f = puzzle_family();
  ag_task t;
  hand_task(&t, knights3);
  const char *leaky[] = {
      "A: knave, B: knight, C: knave",
      "So A is a knave, B is a knight and C is a knave.",
      "The knaves are A and C. B is a knight.",
      "knave, knight, knave",
      "A is not a knight, B tells the truth, C lies.",
  };
  for (size_t i = 0; i < sizeof leaky / sizeof *leaky; i++)
    CHECK_MSG(f->leaks(&t, leaky[i]), "missed: %s", leaky[i]);
  const char *safe[] = {
      "A is a knave and B is a knight.", // C not stated
      "Knights always tell the truth and knaves always lie.",
      ("A says: \"B is a knave.\" B says: \"C is a knave.\" C says: \"A is a knave and B is "
       "a knave.\""),
      "Check what C says against the role you gave C.",
      "knight, knave, knight",
  };
  for (size_t i = 0; i < sizeof safe / sizeof *safe; i++)
    CHECK_MSG(!f->leaks(&t, safe[i]), "false alarm: %s", safe[i]);
  ag_task_clear(&t);

  hand_task(&t, countdown_3388);
  const char *cd_leaky[] = {"8/(3-8/3)", "Try 8 / (3 - 8 / 3) = 24.",
                            ("8\xc3\xb7(3-8\xc3\xb7"
                             "3)"),
                            "24 = 8/(3-8/3)", "How about (8)/(3-(8/3))?"};
  for (size_t i = 0; i < sizeof cd_leaky / sizeof *cd_leaky; i++)
    CHECK_MSG(f->leaks(&t, cd_leaky[i]), "missed: %s", cd_leaky[i]);
  const char *cd_safe[] = {"3 - 8/3 = 1/3", "Use the numbers 3, 3, 8 and 8 to make 24.",
                           "(8-3)*(8-3) = 25", "8/(3-8/3 is unbalanced", ""};
  for (size_t i = 0; i < sizeof cd_safe / sizeof *cd_safe; i++)
    CHECK_MSG(!f->leaks(&t, cd_safe[i]), "false alarm: %s", cd_safe[i]);
  ag_task_clear(&t);
}

TEST(bad_tasks_are_errors_not_crashes) {
  const ag_task_family *f = puzzle_family();
  const char *bad[] = {
      "{}",
      "{\"kind\":\"sudoku\"}",
      "{\"kind\":\"countdown\",\"numbers\":[],\"target\":24}",
      "{\"kind\":\"countdown\",\"numbers\":[1,2],\"target\":\"x\"}",
      "{\"kind\":\"knights\",\"people\":3,\"statements\":[]}",
      "{\"kind\":\"knights\",\"people\":2,\"statements\":[{\"speaker\":\"A\",\"type\":\"is\"},"
      "{\"speaker\":\"B\",\"type\":\"is\",\"a\":\"A\",\"role_a\":\"knight\"}]}",
      // Well formed but not unique: both say the other is a knight.
      "{\"kind\":\"knights\",\"people\":2,\"statements\":[{\"speaker\":\"A\",\"type\":\"is\","
      "\"a\":\"B\",\"role_a\":\"knight\"},{\"speaker\":\"B\",\"type\":\"is\",\"a\":\"A\","
      "\"role_a\":\"knight\"}]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ag_task t;
    hand_task(&t, bad[i]);
    ag_verdict v = {0};
    char *answer = NULL;
    CHECK_MSG(f->verify(&t, "A: knight, B: knight", &v) != AG_OK, "%s", bad[i]);
    ag_verdict_clear(&v);
    CHECK(f->solve(&t, &answer) != AG_OK && answer == NULL);
    CHECK(!f->leaks(&t, "A: knight, B: knight"));
    ag_task_clear(&t);
  }
  // Unsolvable countdown: 1, 1 cannot make 100.
  ag_task t;
  hand_task(&t, "{\"kind\":\"countdown\",\"numbers\":[1,1],\"target\":100}");
  char *answer = NULL;
  CHECK(f->solve(&t, &answer) != AG_OK);
  ag_verdict empty = {0};
  char *text = NULL;
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  CHECK(f->feedback(&t, &empty, AG_FEEDBACK_LOCALISED, AG_PHRASING_TRAIN, &rng, &text) != AG_OK);
  CHECK(f->generate(0, 1, 0, &t) != AG_OK && f->generate(6, 1, 0, &t) != AG_OK);
  ag_task_clear(&t);
}

/* ---- independent readings of generated tasks ------------------------------------ */

/* A knights statement read back from the problem text. */
typedef struct said {
  char form[16];
  int a, b, count;
  bool ra, rb, role;
} said;

static int word_number(const char *w) {
  static const char *const words[] = {"zero", "one", "two",   "three", "four",
                                      "five", "six", "seven", "eight"};
  for (int i = 0; i < 9; i++)
    if (strncmp(w, words[i], strlen(words[i])) == 0) return i;
  return -1;
}

static bool parse_said(const char *s, int speaker, said *out) {
  char r1[8], r2[8], conj[4], a, b;
  memset(out, 0, sizeof *out);
  if (sscanf(s, "If %c is a %6[a-z], then %c is a %6[a-z].", &a, r1, &b, r2) == 4) {
    snprintf(out->form, sizeof out->form, "if");
  } else if (strncmp(s, "Exactly ", 8) == 0 || strncmp(s, "At least ", 9) == 0) {
    snprintf(out->form, sizeof out->form, s[0] == 'E' ? "exactly" : "atleast");
    out->count = word_number(s + (s[0] == 'E' ? 8 : 9));
    out->role = strstr(s, "knight") != NULL;
    return out->count >= 0;
  } else if (sscanf(s, "%c and I are %6[a-z]", &a, r1) == 2) {
    b = (char)('A' + speaker);
    snprintf(out->form, sizeof out->form, "%s", strcmp(r1, "the") == 0 ? "same" : "diff");
    out->a = a - 'A';
    out->b = b - 'A';
    return true;
  } else if (sscanf(s, "%c and %c are %6[a-z]", &a, &b, r1) == 3) {
    snprintf(out->form, sizeof out->form, "%s", strcmp(r1, "the") == 0 ? "same" : "diff");
    out->a = a - 'A';
    out->b = b - 'A';
    return true;
  } else if (sscanf(s, "%c is a %6[a-z] %3[a-z] %c is a %6[a-z].", &a, r1, conj, &b, r2) == 5) {
    snprintf(out->form, sizeof out->form, "%s", conj);
  } else if (sscanf(s, "%c is a %6[a-z].", &a, r1) == 2) {
    snprintf(out->form, sizeof out->form, "is");
    b = a;
    snprintf(r2, sizeof r2, "%s", r1);
  } else {
    return false;
  }
  out->a = a - 'A';
  out->b = b - 'A';
  out->ra = strcmp(r1, "knight") == 0;
  out->rb = strcmp(r2, "knight") == 0;
  return true;
}

static bool said_true(const said *s, const bool *knight, int n) {
  bool a = knight[s->a], b = knight[s->b];
  if (!strcmp(s->form, "is")) return a == s->ra;
  if (!strcmp(s->form, "same")) return a == b;
  if (!strcmp(s->form, "diff")) return a != b;
  if (!strcmp(s->form, "and")) return a == s->ra && b == s->rb;
  if (!strcmp(s->form, "or")) return a == s->ra || b == s->rb;
  if (!strcmp(s->form, "if")) return a != s->ra || b == s->rb;
  int k = 0;
  for (int i = 0; i < n; i++) k += knight[i] == s->role;
  return !strcmp(s->form, "exactly") ? k == s->count : k >= s->count;
}

/* Reads the puzzle from its text and counts the consistent assignments by
 * brute force; the one found goes to truth (knight[i]). -1 if unreadable. */
static int brute_force_knights_without(const char *problem, int skip, bool *truth, int *people) {
  said stmts[8];
  int n = 0;
  for (const char *p = strstr(problem, " says: \""); p && n < 8; p = strstr(p + 1, " says: \"")) {
    if (p[-1] != 'A' + n) return -1;
    char statement[128];
    snprintf(statement, sizeof statement, "%.*s", (int)strcspn(p + 8, "\""), p + 8);
    if (!parse_said(statement, n, &stmts[n])) return -1;
    n++;
  }
  *people = n;
  int found = 0;
  for (int m = 0; m < (1 << n); m++) {
    bool knight[8];
    for (int i = 0; i < n; i++) knight[i] = (m >> i) & 1;
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
      ok = i == skip || said_true(&stmts[i], knight, n) == knight[i];
    if (ok && found++ == 0) memcpy(truth, knight, sizeof knight);
  }
  return found;
}

/* A small evaluator in doubles: + - * / and parentheses over whole numbers. */
typedef struct calc {
  const char *p;
  bool ok;
  double numbers[64];
  int count;
} calc;

static double calc_sum(calc *c);
static void calc_space(calc *c) {
  while (*c->p == ' ') c->p++;
}
static double calc_atom(calc *c) {
  calc_space(c);
  if (*c->p == '(') {
    c->p++;
    double v = calc_sum(c);
    calc_space(c);
    if (*c->p != ')')
      c->ok = false;
    else
      c->p++;
    return v;
  }
  if (!isdigit((unsigned char)*c->p)) {
    c->ok = false;
    return 0;
  }
  double v = 0;
  while (isdigit((unsigned char)*c->p)) v = v * 10 + (*c->p++ - '0');
  if (c->count < 64) c->numbers[c->count++] = v;
  return v;
}
static double calc_product(calc *c) {
  double v = calc_atom(c);
  for (calc_space(c); c->ok && (*c->p == '*' || *c->p == '/'); calc_space(c)) {
    char op = *c->p++;
    double r = calc_atom(c);
    v = op == '*' ? v * r : v / r;
  }
  return v;
}
static double calc_sum(calc *c) {
  double v = calc_product(c);
  for (calc_space(c); c->ok && (*c->p == '+' || *c->p == '-'); calc_space(c)) {
    char op = *c->p++;
    double r = calc_product(c);
    v = op == '+' ? v + r : v - r;
  }
  return v;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Whether text (a substring) is an expression over exactly the numbers
 * that makes the target. */
static bool makes_target(const char *text, size_t len, const double *numbers, int count,
                         double target) {
  char buf[512];
  if (len >= sizeof buf) return false;
  memcpy(buf, text, len);
  buf[len] = '\0';
  calc c = {.p = buf, .ok = true};
  double v = calc_sum(&c);
  calc_space(&c);
  if (!c.ok || *c.p || c.count != count) return false;
  qsort(c.numbers, (size_t)c.count, sizeof(double), compare_double);
  for (int i = 0; i < count; i++)
    if (c.numbers[i] != numbers[i]) return false;
  return fabs(v - target) < 1e-9;
}

/* Every substring made of expression characters that starts on a digit or
 * '(' and ends on a digit or ')'. */
static bool reveals_expression(const char *text, const double *numbers, int count, double target) {
  size_t n = strlen(text);
  for (size_t s = 0; s < n; s++) {
    if (!isdigit((unsigned char)text[s]) && text[s] != '(') continue;
    for (size_t f = s + 1; f <= n; f++) {
      if (!strchr("0123456789+-*/() ", text[f - 1]) || !text[f - 1]) break;
      if ((isdigit((unsigned char)text[f - 1]) || text[f - 1] == ')') &&
          makes_target(text + s, f - s, numbers, count, target))
        return true;
    }
  }
  return false;
}

/* The numbers and target as the problem text states them. */
static bool read_countdown(const char *problem, double *numbers, int *count, double *target) {
  const char *p = strstr(problem, "Use the numbers ");
  const char *end = p ? strstr(p, ", each exactly once") : NULL;
  const char *make = strstr(problem, "to make ");
  if (!p || !end || !make) return false;
  *count = 0;
  for (p += 16; p < end;) {
    if (isdigit((unsigned char)*p)) {
      numbers[(*count)++] = strtod(p, (char **)&p);
    } else {
      p++;
    }
  }
  *target = strtod(make + 8, NULL);
  qsort(numbers, (size_t)*count, sizeof(double), compare_double);
  return *count > 0;
}

/* Whether text ties every person to their true role: the person's letter
 * followed within 40 characters, before any other person's letter, by a
 * word for that role; or the roles listed in person order. */
static bool reveals_roles(const char *text, const bool *truth, int n) {
  int tied = 0;
  for (int i = 0; i < n; i++) {
    bool found = false;
    for (const char *p = text; *p && !found; p++) {
      if (*p != 'A' + i || (p > text && isalpha((unsigned char)p[-1])) ||
          isalpha((unsigned char)p[1]))
        continue;
      for (int k = 1; k < 40 && p[k] && !found; k++) {
        if (isupper((unsigned char)p[k]) && p[k] - 'A' < n && p[k] != 'A' + i &&
            !isalpha((unsigned char)p[k - 1]) && !isalpha((unsigned char)p[k + 1]))
          break;
        const char *words[] = {truth[i] ? "knight" : "knave", truth[i] ? "truth" : "liar",
                               truth[i] ? "honest" : "lie"};
        for (int w = 0; w < 3; w++)
          if (strncasecmp(p + k, words[w], strlen(words[w])) == 0) found = true;
      }
    }
    tied += found;
  }
  if (tied == n) return true;
  // Roles in person order anywhere, whatever lies between.
  int next = 0;
  for (const char *p = text; *p && next < n; p++) {
    bool knight = strncasecmp(p, "knight", 6) == 0, knave = strncasecmp(p, "knave", 5) == 0;
    if ((knight || knave) && knight == truth[next]) next++;
  }
  return next == n;
}

static int brute_force_knights(const char *problem, bool *truth, int *people) {
  return brute_force_knights_without(problem, -1, truth, people);
}

/* ---- generated tasks ------------------------------------------------------------- */

TEST(generation_is_deterministic_and_alternates_kinds) {
  const ag_task_family *f = puzzle_family();
  CHECK(f->max_level == 5 && f->default_level >= 1 && f->default_level <= 5);
  for (int level = 1; level <= f->max_level; level++)
    for (int64_t index = 0; index < 20; index++) {
      ag_task a, b, c;
      CHECK_OK(f->generate(level, 5, index, &a));
      CHECK_OK(f->generate(level, 5, index, &b));
      CHECK_OK(f->generate(level, 6, index, &c));
      CHECK(strcmp(a.problem, b.problem) == 0 && strcmp(a.answer, b.answer) == 0 &&
            strcmp(a.solution, b.solution) == 0 && json_equal(a.data, b.data));
      const char *kind = json_string_value(json_object_get(a.data, "kind"));
      CHECK(kind && strcmp(kind, index % 2 == 0 ? "knights" : "countdown") == 0);
      CHECK(strcmp(a.id, c.id) != 0);
      // A task saved as JSON and loaded back still verifies.
      json_t *record = ag_task_to_json(&a);
      ag_task back;
      CHECK_OK(ag_task_from_json(record, &back));
      ag_verdict v;
      CHECK_OK(f->verify(&back, a.answer, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      ag_task_clear(&back);
      json_decref(record);
      ag_task_clear(&a);
      ag_task_clear(&b);
      ag_task_clear(&c);
    }
}

TEST(every_generated_puzzle_is_unique_and_solvable) {
  const ag_task_family *f = puzzle_family();
  long per_level = test_scaled(2000, 100);
  for (int level = 1; level <= f->max_level; level++) {
    size_t longest = 0;
    for (long i = 0; i < per_level; i++) {
      ag_task t;
      CHECK_OK(f->generate(level, 9, i, &t));
      char *answer = NULL;
      CHECK_OK(f->solve(&t, &answer));
      ag_verdict v;
      CHECK_OK(f->verify(&t, answer ? answer : "", &v));
      CHECK_MSG(v.correct, "%s: solve() gave %s", t.id, answer);
      ag_verdict_clear(&v);
      CHECK_OK(f->verify(&t, t.answer, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      const char *last = strstr(t.solution, "Answer: ");
      CHECK(last && strcmp(last + 8, t.answer) == 0);
      CHECK(f->leaks(&t, t.answer) && f->leaks(&t, t.solution) && !f->leaks(&t, t.problem));
      CHECK_OK(f->shard(&t));
      CHECK(t.shard_count >= 3 && !t.shards[0].required);
      if (i % 2 == 0) {
        bool truth[8];
        int people = 0;
        int solutions = brute_force_knights(t.problem, truth, &people);
        CHECK_MSG(solutions == 1, "%s: %d solutions\n%s", t.id, solutions, t.problem);
        CHECK(t.shard_count == people + 1);
        // A statement is required exactly when the roles are not unique without it.
        for (int s = 0; s < people && t.shard_count == people + 1; s++) {
          bool other[8];
          int dummy;
          bool needed = brute_force_knights_without(t.problem, s, other, &dummy) != 1;
          CHECK_MSG(t.shards[1 + s].required == needed, "%s: statement %d", t.id, s + 1);
        }
        if (solutions == 1) {
          CHECK(reveals_roles(t.answer, truth, people)); // positive control
          for (int p = 0; p < people; p++) {
            char expect[32];
            snprintf(expect, sizeof expect, "%c: %s", 'A' + p, truth[p] ? "knight" : "knave");
            CHECK_MSG(strstr(t.answer, expect) != NULL, "%s: %s", t.answer, expect);
          }
        }
        CHECK(strstr(t.problem, "Answer: A: ?") != NULL);
      } else {
        double numbers[16], target;
        int count = 0;
        CHECK(read_countdown(t.problem, numbers, &count, &target));
        CHECK_MSG(makes_target(t.answer, strlen(t.answer), numbers, count, target) &&
                      makes_target(answer, strlen(answer), numbers, count, target),
                  "%s: %s / %s", t.id, t.answer, answer);
        CHECK(t.shard_count == count + 1);
        for (int s = 1; s < t.shard_count; s++) CHECK(t.shards[s].required);
        CHECK(strstr(t.problem, "Answer: <expression>") != NULL);
      }
      if (strlen(t.problem) > longest) longest = strlen(t.problem);
      free(answer);
      ag_task_clear(&t);
    }
    if (level == f->default_level)
      CHECK_MSG(longest <= 300, "default-level problems up to %zu characters", longest);
  }
}

/* Wrong attempts of every kind, feedback at both levels and from both
 * phrasing sets: none may state the answer. */
TEST(feedback_never_states_the_answer) {
  const ag_task_family *f = puzzle_family();
  long tasks = test_scaled(10000, 500);
  ag_rng rng;
  ag_rng_seed(&rng, 77);
  long judged = 0;
  for (long i = 0; i < tasks; i++) {
    int level = 1 + (int)((i / 2) % f->max_level);
    ag_task t;
    CHECK_OK(f->generate(level, 13, i, &t));
    char attempt[512];
    bool truth[8];
    int people = 0;
    double numbers[16], target = 0;
    int count = 0;
    bool knights = i % 2 == 0;
    if (knights) {
      CHECK(brute_force_knights(t.problem, truth, &people) == 1);
      // Random roles, one flip, all flipped, or unreadable.
      int mode = (int)ag_rng_below(&rng, 4);
      size_t used = 0;
      for (int p = 0; p < people; p++) {
        bool knight = mode == 0   ? ag_rng_below(&rng, 2)
                      : mode == 1 ? truth[p] != (p == (int)(i / 2) % people)
                                  : !truth[p];
        used += (size_t)snprintf(attempt + used, sizeof attempt - used, "%s%c: %s", p ? ", " : "",
                                 'A' + p, knight ? "knight" : "knave");
      }
      if (mode == 3) snprintf(attempt, sizeof attempt, "A: knight");
    } else {
      CHECK(read_countdown(t.problem, numbers, &count, &target));
      int mode = (int)ag_rng_below(&rng, 5);
      size_t used = 0;
      // The numbers joined by random operators (left to right), or with
      // one number dropped, or a syntax error, or a division by zero.
      int drop = mode == 1 ? (int)ag_rng_below(&rng, (uint64_t)count) : -1;
      for (int k = 0; k < count; k++) {
        if (k == drop) continue;
        used += (size_t)snprintf(attempt + used, sizeof attempt - used, "%s%d",
                                 used ? (const char *[]){"+", "-", "*", "/"}[ag_rng_below(&rng, 4)]
                                      : "",
                                 (int)numbers[k]);
      }
      if (mode == 2) snprintf(attempt, sizeof attempt, "(%d+", (int)numbers[0]);
      if (mode == 3)
        snprintf(attempt, sizeof attempt, "%s/(%d-%d)", t.answer, (int)numbers[0], (int)numbers[0]);
    }
    ag_verdict v;
    CHECK_OK(f->verify(&t, attempt, &v));
    if (!v.correct) {
      char compact_answer[256];
      size_t m = 0;
      for (const char *p = t.answer; *p && m < sizeof compact_answer - 1; p++)
        if (*p != ' ') compact_answer[m++] = *p;
      compact_answer[m] = '\0';
      for (int level_fb = AG_FEEDBACK_DIRECTIONAL; level_fb <= AG_FEEDBACK_LOCALISED; level_fb++)
        for (int set = 0; set < 2; set++) {
          char *text = NULL;
          CHECK_OK(f->feedback(&t, &v, level_fb, set, &rng, &text));
          char compact[1024];
          size_t k = 0;
          for (const char *p = text ? text : ""; *p && k < sizeof compact - 1; p++)
            if (*p != ' ') compact[k++] = *p;
          compact[k] = '\0';
          bool bad = !text || strstr(compact, compact_answer) != NULL ||
                     (knights ? reveals_roles(text, truth, people)
                              : reveals_expression(text, numbers, count, target));
          CHECK_MSG(!bad, "%s, attempt %s: %s", t.id, attempt, text ? text : "(null)");
          CHECK_MSG(!f->leaks(&t, text), "leaks() flags its own feedback: %s", text);
          judged++;
          free(text);
        }
    }
    ag_verdict_clear(&v);
    ag_task_clear(&t);
  }
  CHECK(judged >= tasks * 2);
}

int main(void) {
  RUN(knights_verify_accepts_any_order_case_and_spelling);
  RUN(knights_verify_diagnoses_wrong_roles);
  RUN(knights_feedback_with_two_people_hides_the_count);
  RUN(countdown_verify_evaluates_exactly);
  RUN(leaks_recognise_stated_answers);
  RUN(bad_tasks_are_errors_not_crashes);
  RUN(generation_is_deterministic_and_alternates_kinds);
  RUN(every_generated_puzzle_is_unique_and_solvable);
  RUN(feedback_never_states_the_answer);
  TEST_MAIN_END();
}
