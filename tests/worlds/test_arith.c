/* Task family "arith": the verifier on hand-checked attempts (near-misses
 * included), diagnostics and localised feedback, deterministic generation,
 * every task solvable, and feedback that never states the answer (judged
 * by a checker written here, not by the family's own leak guard). */
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

/* Whole-word, case-insensitive search. */
static bool has_word(const char *text, const char *word) {
  size_t n = strlen(word);
  for (const char *p = text; *p; p++) {
    if (strncasecmp(p, word, n) != 0) continue;
    bool before = p == text || !isalpha((unsigned char)p[-1]);
    bool after = !isalpha((unsigned char)p[n]);
    if (before && after) return true;
  }
  return false;
}

/* Does text state |answer|: as digits (with "," or "." inside a number,
 * so "1,234" and "42.0" count) or in words (below 100)? */
static bool states_integer(const char *text, long long answer) {
  long long mag = answer < 0 ? -answer : answer;
  for (const char *s = text; *s;) {
    if (!isdigit((unsigned char)*s)) {
      s++;
      continue;
    }
    char digits[64];
    int n = 0;
    while (n < 60 && (isdigit((unsigned char)*s) ||
                      ((*s == ',' || *s == '.') && isdigit((unsigned char)s[1])))) {
      if (*s != ',') digits[n++] = *s;
      s++;
    }
    digits[n] = '\0';
    if (strtold(digits, NULL) == (long double)mag) return true;
  }
  if (mag < 100) {
    char word[32];
    if (mag < 20)
      snprintf(word, sizeof word, "%s", ones[mag]);
    else if (mag % 10 == 0)
      snprintf(word, sizeof word, "%s", tens[mag / 10]);
    else
      snprintf(word, sizeof word, "%s-%s", tens[mag / 10], ones[mag % 10]);
    if (has_word(text, word)) return true;
    char *dash = strchr(word, '-');
    if (dash) {
      *dash = ' ';
      if (has_word(text, word)) return true;
    }
  }
  return false;
}

/* ---- hand-built tasks --------------------------------------------------------------- */

/* (37 + 12) * 4 - 19 = 177 */
static void expression_task(ag_task *t, const char *stored_answer) {
  json_t *data =
      json_pack("{s:s, s:i, s:[{s:s,s:i},{s:s,s:i},{s:s,s:i}], s:s, s:i}", "form", "expression",
                "start", 37, "steps", "op", "+", "value", 12, "op", "*", "value", 4, "op", "-",
                "value", 19, "expression", "(37 + 12) * 4 - 19", "template", 0);
  CHECK_OK(
      ag_task_fill(t, "arith", 2, 0, 0, "Compute (37 + 12) * 4 - 19.", stored_answer, NULL, data));
}

/* Tom has 37 apples, buys 12 more, ends up with 4 times as many, gives away 19. */
static void word_task(ag_task *t) {
  json_t *data = json_pack(
      "{s:s, s:i, s:[{s:s,s:i,s:i},{s:s,s:i,s:i},{s:s,s:i,s:i}], s:s, s:s, s:i, s:i, s:i}", "form",
      "word", "start", 37, "steps", "op", "+", "value", 12, "template", 0, "op", "*", "value", 4,
      "template", 0, "op", "-", "value", 19, "template", 0, "name", "Tom", "item", "apples",
      "start_template", 0, "question_template", 0, "flavour", 1);
  CHECK_OK(ag_task_fill(t, "arith", 2, 0, 1, "Tom has 37 apples. ...", "177", NULL, data));
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
  return json_string_value(json_object_get(d, "kind"));
}

TEST(verify_near_misses) {
  ag_task t;
  expression_task(&t, "177");
  const char *right[] = {"177",        "177 ",    "  177",
                         "177.0",      "177.00",  "$177",
                         "177 apples", "+177",    "177\nbecause (37 + 12) * 4 = 196",
                         "354/2",      "x = 177", "177."};
  for (size_t i = 0; i < sizeof right / sizeof *right; i++) {
    bool c, p;
    json_t *d = verdict_of(&t, right[i], &c, &p);
    CHECK_MSG(c && p && !strcmp(kind_of(d), "correct"), "\"%s\" judged wrong", right[i]);
    json_decref(d);
  }
  bool c, p;
  json_t *d = verdict_of(&t, "-177", &c, &p);
  CHECK(!c && p && !strcmp(kind_of(d), "wrong_value"));
  CHECK(json_is_true(json_object_get(d, "sign_error")));
  json_decref(d);
  d = verdict_of(&t, "178", &c, &p);
  CHECK(!c && !strcmp(json_string_value(json_object_get(d, "direction")), "too_high"));
  CHECK(json_is_true(json_object_get(d, "close")) &&
        json_is_false(json_object_get(d, "sign_error")));
  json_decref(d);
  d = verdict_of(&t, "17", &c, &p);
  CHECK(!c && !strcmp(json_string_value(json_object_get(d, "direction")), "too_low"));
  CHECK(json_is_false(json_object_get(d, "close")));
  json_decref(d);
  const char *unread[] = {"", "one hundred", "177 or 178", "about 1 7 7", "(177)"};
  for (size_t i = 0; i < sizeof unread / sizeof *unread; i++) {
    d = verdict_of(&t, unread[i], &c, &p);
    CHECK_MSG(!c && !p && !strcmp(kind_of(d), "unparsed"), "\"%s\" was read", unread[i]);
    json_decref(d);
  }
  ag_task_clear(&t);
  /* Thousands separators. */
  json_t *data =
      json_pack("{s:s, s:i, s:[{s:s,s:i}], s:s, s:i}", "form", "expression", "start", 1000, "steps",
                "op", "+", "value", 234, "expression", "1000 + 234", "template", 0);
  CHECK_OK(ag_task_fill(&t, "arith", 1, 0, 0, "What is 1000 + 234?", "1234", NULL, data));
  const char *thousands[] = {"1,234", "1234", "$1,234", "1,234.0"};
  for (int i = 0; i < 4; i++) {
    d = verdict_of(&t, thousands[i], &c, &p);
    CHECK_MSG(c, "\"%s\" judged wrong", thousands[i]);
    json_decref(d);
  }
  d = verdict_of(&t, "12,34", &c, &p);
  CHECK(!c && !p);
  json_decref(d);
  ag_task_clear(&t);
}

static int step_of(const json_t *d) {
  return (int)json_integer_value(json_object_get(d, "first_wrong_step"));
}
static const char *slip_of(const json_t *d) {
  const char *s = json_string_value(json_object_get(d, "slip"));
  return s ? s : "";
}

TEST(diagnostics_locate_the_step) {
  ag_task t;
  expression_task(&t, "177");
  struct {
    const char *attempt;
    int step;
    const char *slip;
  } cases[] = {
      {"49", 2, "stopped_early"},       /* stopped after 37 + 12 */
      {"196", 3, "stopped_early"},      /* stopped before - 19 */
      {"34", 2, "wrong_operation"},     /* (37 + 12) + 4 - 19 */
      {"81", 1, "wrong_operation"},     /* (37 - 12) * 4 - 19 */
      {"181", 1, "arithmetic"},         /* (37 + 12 + 1) * 4 - 19 */
      {"66", 2, "ignored_parentheses"}, /* 37 + 12 * 4 - 19 */
      {"500", 0, ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    bool c, p;
    json_t *d = verdict_of(&t, cases[i].attempt, &c, &p);
    CHECK_MSG(step_of(d) == cases[i].step && !strcmp(slip_of(d), cases[i].slip),
              "%s: step %d slip %s", cases[i].attempt, step_of(d), slip_of(d));
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
  return text;
}

TEST(feedback_is_directional_and_localised) {
  ag_task t;
  expression_task(&t, "177");
  for (uint64_t seed = 0; seed < 20; seed++) {
    char *f = feedback_for(&t, "300", AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_TRAIN, seed);
    CHECK_MSG(strstr(f, "high") || strstr(f, "more") || strstr(f, "big") || strstr(f, "smaller"),
              "%s", f);
    free(f);
    f = feedback_for(&t, "-177", AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_HELDOUT, seed);
    CHECK_MSG(strstr(f, "sign") || strstr(f, "positive or negative"), "%s", f);
    free(f);
    /* The second step is the multiplication by 4; the text names it, not its result. */
    f = feedback_for(&t, "34", AG_FEEDBACK_LOCALISED, AG_PHRASING_TRAIN, seed);
    CHECK_MSG(strstr(f, "second step") && strstr(f, "multiply") && strstr(f, "4") &&
                  !strstr(f, "196") && !strstr(f, "177"),
              "%s", f);
    free(f);
    f = feedback_for(&t, "66", AG_FEEDBACK_LOCALISED, AG_PHRASING_HELDOUT, seed);
    CHECK_MSG(strstr(f, "parenthes") || strstr(f, "bracket") || strstr(f, "order"), "%s", f);
    free(f);
    f = feedback_for(&t, "x", AG_FEEDBACK_LOCALISED, AG_PHRASING_TRAIN, seed);
    CHECK_MSG(strstr(f, "number") || strstr(f, "Number"), "%s", f);
    free(f);
  }
  ag_task_clear(&t);
  word_task(&t);
  char *f = feedback_for(&t, "49", AG_FEEDBACK_LOCALISED, AG_PHRASING_TRAIN, 3);
  CHECK_MSG(strstr(f, "second step") && strstr(f, "Tom") && strstr(f, "4 times"), "%s", f);
  free(f);
  ag_task_clear(&t);
}

TEST(phrasing_sets_are_disjoint) {
  ag_task t;
  expression_task(&t, "177");
  const char *attempts[] = {"300", "100", "-177", "34", "49", "66", "500", "x"};
  for (int level = AG_FEEDBACK_DIRECTIONAL; level <= AG_FEEDBACK_LOCALISED; level++) {
    for (size_t a = 0; a < sizeof attempts / sizeof *attempts; a++) {
      char *train[24];
      int distinct = 0;
      for (int s = 0; s < 24; s++)
        train[s] = feedback_for(&t, attempts[a], level, AG_PHRASING_TRAIN, (uint64_t)s);
      for (int s = 0; s < 24; s++) {
        char *h = feedback_for(&t, attempts[a], level, AG_PHRASING_HELDOUT, (uint64_t)s);
        for (int k = 0; k < 24; k++) CHECK_MSG(strcmp(h, train[k]), "shared: %s", h);
        free(h);
      }
      for (int s = 0; s < 24; s++) {
        bool seen = false;
        for (int k = 0; k < s; k++) seen = seen || !strcmp(train[s], train[k]);
        distinct += !seen;
      }
      CHECK_MSG(distinct >= 3, "%s: only %d phrasings", attempts[a], distinct);
      for (int s = 0; s < 24; s++) free(train[s]);
    }
  }
  ag_task_clear(&t);
}

TEST(solve_reads_the_problem_not_the_answer) {
  ag_task t;
  expression_task(&t, "999");
  char *answer = NULL;
  CHECK_OK(F->solve(&t, &answer));
  CHECK(answer && !strcmp(answer, "177"));
  free(answer);
  ag_task_clear(&t);
  word_task(&t);
  CHECK_OK(F->solve(&t, &answer));
  CHECK(answer && !strcmp(answer, "177"));
  free(answer);
  ag_task_clear(&t);
  /* A malformed task is an error, not a crash. */
  CHECK_OK(ag_task_fill(&t, "arith", 2, 0, 0, "p", "1", NULL, json_pack("{s:s}", "form", "word")));
  CHECK(F->solve(&t, &answer) == AG_ERR_FORMAT);
  ag_verdict v;
  CHECK(F->verify(&t, "1", &v) == AG_ERR_FORMAT);
  ag_task_clear(&t);
}

static bool same_task(const ag_task *a, const ag_task *b) {
  return !strcmp(a->problem, b->problem) && !strcmp(a->answer, b->answer) &&
         !strcmp(a->solution, b->solution) && json_equal(a->data, b->data) && !strcmp(a->id, b->id);
}

TEST(generation_is_deterministic_per_seed) {
  for (int level = 1; level <= F->max_level; level++) {
    int differ_seed = 0, differ_index = 0;
    for (int i = 0; i < 50; i++) {
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
    CHECK_MSG(differ_seed >= 45 && differ_index >= 45, "level %d: %d %d", level, differ_seed,
              differ_index);
  }
}

static const char *last_line(const char *s) {
  const char *nl = strrchr(s, '\n');
  return nl ? nl + 1 : s;
}

TEST(every_task_is_solvable) {
  long n = test_scaled(2000, 200);
  for (int level = 1; level <= F->max_level; level++) {
    size_t longest = 0;
    int words = 0;
    for (long i = 0; i < n; i++) {
      ag_task t;
      CHECK_OK(F->generate(level, 5, i, &t));
      char *solved = NULL;
      CHECK_OK(F->solve(&t, &solved));
      CHECK_MSG(solved && !strcmp(solved, t.answer), "%s: solve %s, answer %s", t.id,
                solved ? solved : "-", t.answer);
      ag_verdict v;
      CHECK_OK(F->verify(&t, solved, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      /* The worked solution ends with the answer line, which verifies. */
      char line[64], *attempt = NULL;
      snprintf(line, sizeof line, "Answer: %s", t.answer);
      CHECK(!strcmp(last_line(t.solution), line));
      CHECK(ag_task_extract_attempt(t.solution, &attempt));
      CHECK_OK(F->verify(&t, attempt, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      free(attempt);
      free(solved);
      /* The problem states the format last, and not the answer. */
      const char *fmt = "Give your final answer on a line \"Answer: <number>\".";
      size_t len = strlen(t.problem);
      CHECK(len > strlen(fmt) && !strcmp(t.problem + len - strlen(fmt), fmt));
      CHECK_MSG(!states_integer(t.problem, atoll(t.answer)), "%s states %s", t.problem, t.answer);
      if (len > longest) longest = len;
      words += !strcmp(json_string_value(json_object_get(t.data, "form")), "word");
      ag_task_clear(&t);
    }
    if (level == F->default_level) CHECK_MSG(longest < 300, "longest problem %zu", longest);
    CHECK(words > n / 4 && words < 3 * n / 4); /* both forms */
  }
}

/* Intermediate value after the first step, from the worked solution. */
static long long first_intermediate(const char *solution) {
  const char *eq = strstr(solution, " = ");
  return eq ? atoll(eq + 3) : 0;
}

TEST(leak_checker_sees_the_forms) {
  CHECK(states_integer("the result is 1,234.", 1234) && states_integer("it is 42.0", 42));
  CHECK(states_integer("Forty-two", 42) && states_integer("forty two", -42));
  CHECK(states_integer("seven", 7) && states_integer("-7", 7));
  CHECK(!states_integer("170 and 1.7", 17) && !states_integer("seventeen", 7));
}

TEST(feedback_never_states_the_answer) {
  long n = test_scaled(10000, 1000);
  long checked = 0;
  for (long i = 0; i < n; i++) {
    int level = 1 + (int)(i % F->max_level);
    ag_task t;
    CHECK_OK(F->generate(level, 77, i, &t));
    long long answer = atoll(t.answer);
    char attempts[6][32];
    snprintf(attempts[0], 32, "%lld", answer + 1);
    snprintf(attempts[1], 32, "%lld", answer - 1);
    snprintf(attempts[2], 32, "%lld", -answer);
    snprintf(attempts[3], 32, "%lld", first_intermediate(t.solution));
    snprintf(attempts[4], 32, "%lld", answer * 2 + 7);
    snprintf(attempts[5], 32, "no idea");
    for (int a = 0; a < 6; a++) {
      ag_verdict v;
      CHECK_OK(F->verify(&t, attempts[a], &v));
      if (v.correct) {
        ag_verdict_clear(&v);
        continue;
      }
      for (int level_fb = AG_FEEDBACK_DIRECTIONAL; level_fb <= AG_FEEDBACK_LOCALISED; level_fb++)
        for (int set = AG_PHRASING_TRAIN; set <= AG_PHRASING_HELDOUT; set++) {
          ag_rng rng;
          ag_rng_seed2(&rng, (uint64_t)i, (uint64_t)(a * 4 + level_fb * 2 + set));
          char *text = NULL;
          CHECK_OK(F->feedback(&t, &v, level_fb, set, &rng, &text));
          CHECK(text && text[0]);
          if (text && states_integer(text, answer))
            CHECK_MSG(false, "%s (answer %s, attempt %s): %s", t.id, t.answer, attempts[a], text);
          /* The family's own guard agrees. */
          CHECK(!text || !F->leaks(&t, text));
          free(text);
          checked++;
        }
      ag_verdict_clear(&v);
    }
    ag_task_clear(&t);
  }
  CHECK(checked > n * 16);
  /* The guard itself catches the forms of an answer. */
  ag_task t;
  expression_task(&t, "177");
  CHECK(F->leaks(&t, "it is 177") && F->leaks(&t, "177.0 maybe") && F->leaks(&t, "-177?"));
  CHECK(!F->leaks(&t, "1770 is not it") && !F->leaks(&t, "multiply by 4"));
  ag_task_clear(&t);
}

TEST(shards_goal_first_then_facts) {
  long n = test_scaled(500, 100);
  for (long i = 0; i < n; i++) {
    int level = 1 + (int)(i % F->max_level);
    ag_task t;
    CHECK_OK(ag_task_generate("arith", level, 3, i, true, &t));
    CHECK(t.shard_count >= 3);
    CHECK(!t.shards[0].required);
    CHECK(strstr(t.shards[0].text, "Answer: <number>") != NULL);
    int required = 0;
    for (int s = 0; s < t.shard_count; s++) {
      required += t.shards[s].required;
      CHECK_MSG(!states_integer(t.shards[s].text, atoll(t.answer)), "%s", t.shards[s].text);
    }
    /* The start and every step are required facts. */
    int steps = (int)json_array_size(json_object_get(t.data, "steps"));
    CHECK(required == steps + 1);
    /* Sharding again replaces the shards. */
    CHECK_OK(F->shard(&t));
    CHECK(t.shard_count >= steps + 2);
    ag_task_clear(&t);
  }
}

int main(void) {
  CHECK_OK(ag_task_family_get("arith", &F));
  if (!F || !F->generate) return 1;
  RUN(verify_near_misses);
  RUN(diagnostics_locate_the_step);
  RUN(feedback_is_directional_and_localised);
  RUN(phrasing_sets_are_disjoint);
  RUN(solve_reads_the_problem_not_the_answer);
  RUN(generation_is_deterministic_per_seed);
  RUN(every_task_is_solvable);
  RUN(leak_checker_sees_the_forms);
  RUN(feedback_never_states_the_answer);
  RUN(shards_goal_first_then_facts);
  TEST_MAIN_END();
}
