/* GSM8K and MATH: reference extraction on the real GSM8K training file,
 * \boxed{} extraction, MATH answer normalisation (equal forms and near
 * misses), the two families' verifiers, feedback, leak checks and shards,
 * and the loaders' errors (file:line). */
#include "agora/datasets.h"
#include "test.h"
#include "worlds/tasks/dataset_internal.h"
#include "worlds/tasks/task_util.h"

#include <zlib.h>

#define GSM8K "../shared/data/gsm8k/train.jsonl"

static int64_t count_lines(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  int64_t n = 0;
  int c, last = '\n';
  while ((c = fgetc(f)) != EOF) {
    if (c == '\n') n++;
    last = c;
  }
  if (last != '\n') n++;
  fclose(f);
  return n;
}

static const char *write_file(const char *name, const char *text) {
  static char path[8][600];
  static int next = 0;
  char *p = path[next++ % 8];
  snprintf(p, 600, "%s/%s", test_tmpdir(), name);
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL);
  if (f) {
    fputs(text, f);
    fclose(f);
  }
  return p;
}

static const char *kind_of(const ag_verdict *v) {
  json_t *k = v->diagnostics ? json_object_get(v->diagnostics, "kind") : NULL;
  return json_is_string(k) ? json_string_value(k) : "";
}

static const char *diag_string(const ag_verdict *v, const char *key) {
  json_t *k = v->diagnostics ? json_object_get(v->diagnostics, key) : NULL;
  return json_is_string(k) ? json_string_value(k) : "";
}

/* ---- GSM8K on the real file ---------------------------------------------------------- */

TEST(every_gsm8k_reference_is_a_number) {
  int64_t lines = count_lines(GSM8K);
  CHECK(lines > 7000);
  ag_task *tasks = NULL;
  int64_t n = 0;
  CHECK_OK(ag_dataset_load("gsm8k", GSM8K, 0, &tasks, &n));
  CHECK_MSG(n == lines, "%lld tasks from %lld lines", (long long)n, (long long)lines);
  int64_t numbers = 0, integers = 0;
  for (int64_t i = 0; i < n; i++) {
    ag_rational r;
    if (ag_parse_number(tasks[i].answer, &r)) {
      numbers++;
      integers += r.den == 1;
    } else {
      fprintf(stderr, "     %s: reference \"%s\"\n", tasks[i].id, tasks[i].answer);
    }
    /* The solution ends with the answer line a student writes. */
    CHECK(strstr(tasks[i].solution, "Answer: ") && !strstr(tasks[i].solution, "<<"));
  }
  CHECK(numbers == n);
  CHECK(integers > n * 9 / 10);
  CHECK(!strcmp(tasks[0].id, "gsm8k/1") && !strcmp(tasks[0].answer, "72"));
  CHECK(strstr(tasks[0].problem, "Natalia") && strstr(tasks[0].problem, "Answer:"));
  for (int64_t i = 0; i < n; i++) ag_task_clear(&tasks[i]);
  free(tasks);
}

static int64_t failures_seen;
static void note_failure(void *user, const ag_task *t, bool ok, const char *detail) {
  (void)user;
  if (!ok && failures_seen++ < 5) fprintf(stderr, "     %s: %s\n", t->id, detail);
}

TEST(gsm8k_check_verifies_every_record) {
  int64_t verified = 0, total = 0;
  failures_seen = 0;
  CHECK_OK(ag_dataset_check("gsm8k", GSM8K, 0, NULL, note_failure, NULL, &verified, &total));
  CHECK(total == count_lines(GSM8K));
  CHECK_MSG(verified == total, "verified %lld/%lld", (long long)verified, (long long)total);
  /* --limit */
  CHECK_OK(ag_dataset_check("gsm8k", GSM8K, 25, NULL, NULL, NULL, &verified, &total));
  CHECK(total == 25 && verified == 25);
}

TEST(gsm8k_reference_extraction) {
  char *ref = NULL;
  CHECK_OK(ag_gsm8k_reference("She pays 2*600 = <<2*600=1200>>1200.\n#### 1,200", &ref));
  CHECK(ref && !strcmp(ref, "1200"));
  free(ref);
  CHECK_OK(ag_gsm8k_reference("#### 3\n#### -4.5 ", &ref)); /* the last "####" */
  CHECK(ref && !strcmp(ref, "-4.5"));
  free(ref);
  CHECK(ag_gsm8k_reference("no marker here", &ref) == AG_ERR_FORMAT && !ref);
  CHECK(ag_gsm8k_reference("steps\n####   \n", &ref) == AG_ERR_FORMAT && !ref);
}

/* ---- extraction ------------------------------------------------------------------------ */

static void check_extract(const char *text, const char *want) {
  char *got = ag_math_extract_final(text);
  if (!want)
    CHECK_MSG(got == NULL, "\"%s\" -> \"%s\", expected none", text, got);
  else
    CHECK_MSG(got && !strcmp(got, want), "\"%s\" -> \"%s\", expected \"%s\"", text,
              got ? got : "(none)", want);
  free(got);
}

TEST(final_answers_are_extracted) {
  check_extract("Work...\nAnswer: 42", "42");
  check_extract("Answer: 7\nthen more\nAnswer: 8.", "8");
  check_extract("steps\n#### 72", "72");
  check_extract("So the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}");
  check_extract("Answer: $\\boxed{5}$", "5");
  check_extract("He has 17 apples, then 3 more, so 20 in all", "20");
  check_extract("The total is 1,234 dollars.", "1234");
  check_extract("The change is -3 degrees", "-3");
  check_extract("Half is 3/4 of it", "3/4");
  check_extract("no numbers at all", NULL);
  check_extract("Answer:\n  12\n", "12");
}

static void check_boxed(const char *text, const char *want) {
  char *got = ag_math_last_boxed(text);
  if (!want)
    CHECK_MSG(got == NULL, "\"%s\" -> \"%s\", expected none", text, got);
  else
    CHECK_MSG(got && !strcmp(got, want), "\"%s\" -> \"%s\", expected \"%s\"", text,
              got ? got : "(none)", want);
  free(got);
}

TEST(boxed_answers_keep_nested_braces) {
  check_boxed("$\\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt{3}}{2}");
  check_boxed("first \\boxed{1} then \\boxed{2}", "2");
  check_boxed("\\fbox{7}", "7");
  check_boxed("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}");
  check_boxed("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
              "\\left( 3, \\frac{\\pi}{2} \\right)");
  check_boxed("$\\boxed 5$", "5");
  check_boxed("\\boxed{unclosed", NULL);
  check_boxed("nothing boxed", NULL);
}

/* ---- normalisation ---------------------------------------------------------------------- */

static void check_normal(const char *answer, const char *want) {
  char *got = ag_math_normalize(answer);
  CHECK_MSG(got && !strcmp(got, want), "\"%s\" -> \"%s\", expected \"%s\"", answer,
            got ? got : "(null)", want);
  free(got);
}

TEST(math_answers_normalise) {
  check_normal("\\frac12", "\\frac{1}{2}");
  check_normal("\\dfrac{1}{2}", "\\frac{1}{2}");
  check_normal("\\tfrac{2}{4}", "\\frac{1}{2}");
  check_normal("0.5", "\\frac{1}{2}");
  check_normal("1/2", "\\frac{1}{2}");
  check_normal("-\\frac{3}{6}", "-\\frac{1}{2}");
  check_normal("10\\%", "10");
  check_normal("5 \\text{ cm}", "5");
  check_normal("5\\text{cm}^2", "5");
  check_normal("12 square feet", "12");
  check_normal("x = 3", "3");
  check_normal("1,000", "1000");
  check_normal("1{,}000{,}000", "1000000");
  check_normal("90^\\circ", "90");
  check_normal("90^{\\circ}", "90");
  check_normal("$\\$18.50$", "\\frac{37}{2}");
  check_normal("3.0", "3");
  check_normal("\\left( 1, 2 \\right)", "(1,2)");
  check_normal("\\sqrt2", "\\sqrt{2}");
  check_normal("\\frac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}");
  check_normal("\\text{(C)}", "(C)");
  check_normal("\\text{Monday}", "Monday");
  check_normal("y = 2x + 3", "2x+3");
  check_normal("42.", "42");
}

static void check_equivalent(const char *a, const char *b, bool want) {
  CHECK_MSG(ag_math_equivalent(a, b) == want, "\"%s\" vs \"%s\": expected %s", a, b,
            want ? "equal" : "different");
}

TEST(equivalent_forms_are_equal_and_near_misses_are_not) {
  const char *halves[] = {"\\frac12",       "\\dfrac{1}{2}",    "0.5", "1/2", "\\frac{2}{4}", ".5",
                          "$\\frac{1}{2}$", "x = \\frac{1}{2}", "0.50"};
  int n = (int)(sizeof halves / sizeof *halves);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) check_equivalent(halves[i], halves[j], true);
  check_equivalent("-1/2", "1/2", false);
  check_equivalent("-\\frac{1}{2}", "\\frac{-1}{2}", true);
  check_equivalent("0.33", "1/3", false);
  check_equivalent("0.333", "\\frac13", false);
  check_equivalent("10\\%", "10", true);
  check_equivalent("10\\%", "0.1", false);
  check_equivalent("5 \\text{ cm}", "5", true);
  check_equivalent("1,000", "1000", true);
  check_equivalent("1,000", "100", false);
  check_equivalent("(1,2)", "(2,1)", false);
  check_equivalent("\\sqrt{2}", "\\sqrt2", true);
  check_equivalent("2\\sqrt{2}", "\\sqrt{8}", false); /* no algebra: different strings */
  check_equivalent("", "", false);
  check_equivalent("12", "12.0001", false);
}

/* ---- sentences ---------------------------------------------------------------------------- */

TEST(sentences_split_where_prose_does) {
  char **s = NULL;
  int n = 0;
  CHECK_OK(ag_split_sentences("Mr. Smith paid $2.50 each. He bought 3! How much did he pay? ",
                              false, &s, &n));
  CHECK(n == 3);
  if (n == 3) {
    CHECK(!strcmp(s[0], "Mr. Smith paid $2.50 each."));
    CHECK(!strcmp(s[1], "He bought 3!"));
    CHECK(!strcmp(s[2], "How much did he pay?") && ag_sentence_is_question(s[2]));
  }
  ag_strings_free(s, n);
  CHECK_OK(ag_split_sentences("Let $x. y$ be real. Find $x$.", true, &s, &n));
  CHECK(n == 2 && !strcmp(s[0], "Let $x. y$ be real."));
  ag_strings_free(s, n);
  CHECK_OK(ag_split_sentences("A line\nwrapped.\n\nNew paragraph", false, &s, &n));
  CHECK(n == 2 && !strcmp(s[0], "A line wrapped.") && !strcmp(s[1], "New paragraph"));
  ag_strings_free(s, n);
}

/* ---- the gsm8k family -------------------------------------------------------------------- */

static ag_task load_first(const char *dataset, const char *path) {
  ag_task *tasks = NULL, t = {0};
  int64_t n = 0;
  CHECK_OK(ag_dataset_load(dataset, path, 1, &tasks, &n));
  CHECK(n == 1);
  if (n == 1) t = tasks[0];
  free(tasks);
  return t;
}

static void verify_is(const ag_task *t, const char *attempt, bool correct, const char *kind) {
  const ag_task_family *f;
  CHECK_OK(ag_task_family_get(t->family, &f));
  ag_verdict v = {0};
  CHECK_OK(f->verify(t, attempt, &v));
  CHECK_MSG(v.correct == correct && !strcmp(kind_of(&v), kind), "%s \"%s\": %s %s", t->id, attempt,
            v.correct ? "correct" : "incorrect", kind_of(&v));
  ag_verdict_clear(&v);
}

TEST(gsm8k_verifier_feedback_and_leaks) {
  ag_task t = load_first("gsm8k", GSM8K); /* Natalia's clips: 48 + 24 = 72 */
  if (!t.answer) return;
  const ag_task_family *f = &ag_task_family_gsm8k;
  verify_is(&t, "72", true, "correct");
  verify_is(&t, " 72 clips", true, "correct");
  verify_is(&t, "72.0", true, "correct");
  verify_is(&t, "$72", true, "correct");
  verify_is(&t, "She sold 72 in all.", true, "correct");
  verify_is(&t, "\\boxed{72}", true, "correct");
  verify_is(&t, "70", false, "wrong_value");
  verify_is(&t, "-72", false, "wrong_value");
  verify_is(&t, "seventy", false, "unparsed");
  verify_is(&t, "48 or 72", false, "unparsed");

  ag_verdict high = {0}, low = {0}, sign = {0}, mid = {0};
  CHECK_OK(f->verify(&t, "100", &high));
  CHECK_OK(f->verify(&t, "50", &low));
  CHECK_OK(f->verify(&t, "-72", &sign));
  CHECK_OK(f->verify(&t, "24", &mid)); /* May's clips: an intermediate result */
  CHECK(!strcmp(diag_string(&high, "direction"), "too_high"));
  CHECK(!strcmp(diag_string(&low, "direction"), "too_low"));
  CHECK(json_is_true(json_object_get(sign.diagnostics, "sign_error")));
  ag_rng rng;
  ag_rng_seed(&rng, 7);
  char *fb = NULL;
  CHECK_OK(f->feedback(&t, &high, AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_TRAIN, &rng, &fb));
  CHECK(fb && (strstr(fb, "high") || strstr(fb, "larger") || strstr(fb, "smaller")));
  CHECK(fb && !f->leaks(&t, fb));
  free(fb);
  CHECK_OK(f->feedback(&t, &low, AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_HELDOUT, &rng, &fb));
  CHECK(fb && (strstr(fb, "small") || strstr(fb, "below") || strstr(fb, "short")));
  free(fb);
  CHECK_OK(f->feedback(&t, &sign, AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_TRAIN, &rng, &fb));
  CHECK(fb && strstr(fb, "sign"));
  free(fb);
  CHECK_OK(f->feedback(&t, &mid, AG_FEEDBACK_LOCALISED, AG_PHRASING_TRAIN, &rng, &fb));
  CHECK_MSG(fb && (strstr(fb, "intermediate") || strstr(fb, "partway")), "%s", fb);
  CHECK(fb && !f->leaks(&t, fb));
  free(fb);
  /* Many draws from both sets: never the answer. */
  for (int i = 0; i < 200; i++) {
    ag_verdict *v = i % 4 == 0 ? &high : i % 4 == 1 ? &low : i % 4 == 2 ? &sign : &mid;
    CHECK_OK(f->feedback(&t, v, (ag_feedback_level)(1 + i % 2), (ag_phrasing_set)(i / 2 % 2), &rng,
                         &fb));
    CHECK(fb && *fb && !f->leaks(&t, fb) && !strstr(fb, "72"));
    free(fb);
  }
  ag_verdict_clear(&high);
  ag_verdict_clear(&low);
  ag_verdict_clear(&sign);
  ag_verdict_clear(&mid);

  CHECK(f->leaks(&t, "She sold 72 clips."));
  CHECK(f->leaks(&t, "The total is seventy two."));
  CHECK(f->leaks(&t, "It comes to 72.0 in all"));
  CHECK(!f->leaks(&t, "Add April's clips to May's."));
  CHECK(!f->leaks(&t, "That is 720 clips, too many."));
  char *answer = NULL;
  CHECK_OK(f->solve(&t, &answer));
  verify_is(&t, answer, true, "correct");
  free(answer);

  CHECK_OK(f->shard(&t));
  CHECK(t.shard_count == 2);
  if (t.shard_count == 2) {
    CHECK(!strncmp(t.shards[0].text, "How many clips did Natalia sell", 31));
    CHECK(strstr(t.shards[0].text, "Answer:") != NULL);
    CHECK(!strncmp(t.shards[1].text, "Natalia sold clips to 48", 24) && t.shards[1].required);
  }
  ag_task_clear(&t);
}

/* Feedback on wrong attempts at thousands of real problems: never a digit
 * (the phrasings state no numbers at all), never a leak by the family's
 * own check. */
TEST(gsm8k_feedback_never_states_a_number) {
  ag_task *tasks = NULL;
  int64_t n = 0;
  CHECK_OK(ag_dataset_load("gsm8k", GSM8K, test_scaled(2000, 200), &tasks, &n));
  const ag_task_family *f = &ag_task_family_gsm8k;
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  int64_t messages = 0, digits = 0, leaks = 0, intermediates = 0;
  for (int64_t i = 0; i < n; i++) {
    ag_rational r;
    if (!ag_parse_number(tasks[i].answer, &r)) continue;
    json_t *mids = json_object_get(tasks[i].data, "intermediates");
    char attempts[4][64];
    ag_rational_format(ag_rational_make(r.num + r.den, r.den), attempts[0], 64);
    ag_rational_format(ag_rational_make(r.num - 2 * r.den, r.den), attempts[1], 64);
    ag_rational_format(ag_rational_make(-r.num, r.den), attempts[2], 64);
    snprintf(attempts[3], 64, "%s",
             json_array_size(mids) ? json_string_value(json_array_get(mids, 0)) : "banana");
    for (int a = 0; a < 4; a++) {
      ag_verdict v = {0};
      CHECK_OK(f->verify(&tasks[i], attempts[a], &v));
      if (v.correct) { /* the negation of zero, an intermediate equal to the answer */
        ag_verdict_clear(&v);
        continue;
      }
      for (int level = AG_FEEDBACK_DIRECTIONAL; level <= AG_FEEDBACK_LOCALISED; level++) {
        char *fb = NULL;
        CHECK_OK(f->feedback(&tasks[i], &v, (ag_feedback_level)level,
                             (ag_phrasing_set)(messages % 2), &rng, &fb));
        messages++;
        if (fb && strpbrk(fb, "0123456789")) digits++;
        if (!fb || f->leaks(&tasks[i], fb)) leaks++;
        if (fb && a == 3 && level == AG_FEEDBACK_LOCALISED && json_array_size(mids))
          intermediates += strstr(fb, "intermediate") || strstr(fb, "partway") ||
                           strstr(fb, "stepping") || strstr(fb, "partial") ||
                           strstr(fb, "along the way") || strstr(fb, "on the way") ||
                           strstr(fb, "beyond") || strstr(fb, "early");
        free(fb);
      }
      ag_verdict_clear(&v);
    }
  }
  CHECK(messages > n * 6);
  CHECK_MSG(digits == 0 && leaks == 0, "%lld with digits, %lld leaks in %lld messages",
            (long long)digits, (long long)leaks, (long long)messages);
  CHECK(intermediates > n / 2); /* most problems have an intermediate the hint recognises */
  for (int64_t i = 0; i < n; i++) ag_task_clear(&tasks[i]);
  free(tasks);
}

TEST(a_value_the_problem_states_is_not_a_leak) {
  const char *path = write_file(
      "same.jsonl", "{\"question\": \"Tom has 5 apples and eats none of them. How many apples "
                    "does Tom have now?\", \"answer\": \"He still has 5.\\n#### 5\"}\n");
  ag_task t = load_first("gsm8k", path);
  if (!t.answer) return;
  CHECK(!ag_task_family_gsm8k.leaks(&t, "Reread it: Tom has 5 apples and eats none of them."));
  CHECK(ag_task_family_gsm8k.leaks(&t, "He has 5 now."));
  CHECK(ag_task_family_gsm8k.leaks(&t, "The answer is five."));
  ag_task_clear(&t);
}

/* ---- the math family ------------------------------------------------------------------------ */

static const char math_file[] =
    "{\"problem\": \"What is $\\\\frac{3}{6}$ written in lowest terms? Give a fraction.\", "
    "\"solution\": \"Divide by 3: $\\\\boxed{\\\\dfrac12}$.\", \"level\": \"Level 1\", "
    "\"type\": \"Prealgebra\"}\n"
    "{\"problem\": \"Find the positive $x$ with $x^2 = 2$.\", \"solution\": \"So $x = "
    "\\\\boxed{\\\\sqrt{2}}$.\"}\n"
    "{\"problem\": \"Convert 25 to percent of 50.\", \"solution\": \"It is "
    "$\\\\boxed{50\\\\%}$.\"}\n"
    "{\"problem\": \"How long is the side?\", \"answer\": \"5 \\\\text{ cm}\"}\n"
    "{\"problem\": \"Solve $2x = 6$.\", \"solution\": \"Then \\\\boxed{x = 3}\"}\n";

TEST(math_family_on_a_small_file) {
  const char *path = write_file("math.jsonl", math_file);
  ag_task *tasks = NULL;
  int64_t n = 0;
  CHECK_OK(ag_dataset_load("math", path, 0, &tasks, &n));
  CHECK(n == 5);
  if (n != 5) return;
  CHECK(!strcmp(tasks[0].answer, "\\dfrac12") && !strcmp(tasks[0].id, "math/1"));
  CHECK(!strcmp(tasks[3].answer, "5 \\text{ cm}"));
  verify_is(&tasks[0], "1/2", true, "correct");
  verify_is(&tasks[0], "0.5", true, "correct");
  verify_is(&tasks[0], "$\\frac{1}{2}$", true, "correct");
  verify_is(&tasks[0], "The answer is \\boxed{\\frac{2}{4}}", true, "correct");
  verify_is(&tasks[0], "-1/2", false, "wrong_value");
  verify_is(&tasks[0], "", false, "unparsed");
  verify_is(&tasks[1], "\\sqrt2", true, "correct");
  verify_is(&tasks[1], "-\\sqrt{2}", false, "wrong_value");
  verify_is(&tasks[2], "50", true, "correct");
  verify_is(&tasks[2], "50\\%", true, "correct");
  verify_is(&tasks[3], "5", true, "correct");
  verify_is(&tasks[3], "5 centimeters", true, "correct");
  verify_is(&tasks[3], "6 cm", false, "wrong_value");
  verify_is(&tasks[4], "3", true, "correct");

  const ag_task_family *f = &ag_task_family_math;
  ag_verdict v = {0};
  CHECK_OK(f->verify(&tasks[1], "1.414", &v));
  CHECK(!v.correct && json_is_true(json_object_get(v.diagnostics, "approximate")));
  ag_rng rng;
  ag_rng_seed(&rng, 3);
  char *fb = NULL;
  CHECK_OK(f->feedback(&tasks[1], &v, AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_TRAIN, &rng, &fb));
  CHECK(fb && strstr(fb, "xact") && !f->leaks(&tasks[1], fb));
  free(fb);
  ag_verdict_clear(&v);
  CHECK_OK(f->verify(&tasks[0], "0.6", &v));
  CHECK(!strcmp(diag_string(&v, "direction"), "too_high"));
  ag_verdict_clear(&v);

  CHECK(f->leaks(&tasks[0], "It is one half."));
  CHECK(f->leaks(&tasks[0], "It is 0.5."));
  CHECK(f->leaks(&tasks[0], "It is $\\frac{1}{2}$."));
  CHECK(!f->leaks(&tasks[0], "Divide top and bottom by their common factor."));
  CHECK(f->leaks(&tasks[1], "so x = \\sqrt{2}"));
  CHECK(f->leaks(&tasks[1], "so \\boxed{\\sqrt2}"));
  CHECK(!f->leaks(&tasks[1], "take a square root of both sides"));

  CHECK_OK(f->shard(&tasks[0]));
  CHECK(tasks[0].shard_count == 2);
  if (tasks[0].shard_count == 2) {
    CHECK(!strncmp(tasks[0].shards[0].text, "What is $\\frac{3}{6}$", 21));
    CHECK(!strcmp(tasks[0].shards[1].text, "Give a fraction."));
  }
  for (int64_t i = 0; i < n; i++) ag_task_clear(&tasks[i]);
  free(tasks);

  int64_t verified = 0, total = 0;
  CHECK_OK(ag_dataset_check("math", path, 0, NULL, note_failure, NULL, &verified, &total));
  CHECK(total == 5 && verified == 5);
}

/* ---- files ------------------------------------------------------------------------------------
 */

TEST(tasks_round_trip_through_task_jsonl) {
  ag_task t = load_first("gsm8k", GSM8K);
  if (!t.answer) return;
  CHECK_OK(ag_task_family_gsm8k.shard(&t));
  json_t *j = ag_task_to_json(&t);
  ag_task back = {0};
  CHECK_OK(ag_task_from_json(j, &back));
  CHECK(!strcmp(back.id, t.id) && !strcmp(back.answer, t.answer));
  CHECK(back.shard_count == t.shard_count);
  verify_is(&back, "72", true, "correct");
  ag_verdict v = {0};
  CHECK_OK(ag_task_family_gsm8k.verify(&back, "24", &v));
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  char *fb = NULL;
  CHECK_OK(ag_task_family_gsm8k.feedback(&back, &v, AG_FEEDBACK_LOCALISED, AG_PHRASING_TRAIN, &rng,
                                         &fb));
  CHECK(fb && (strstr(fb, "intermediate") || strstr(fb, "partway")));
  free(fb);
  ag_verdict_clear(&v);
  json_decref(j);
  ag_task_clear(&back);
  ag_task_clear(&t);
}

TEST(gzip_files_load_like_plain_ones) {
  char path[600];
  snprintf(path, sizeof path, "%s/gsm8k.jsonl.gz", test_tmpdir());
  FILE *in = fopen(GSM8K, "rb");
  gzFile out = gzopen(path, "wb");
  CHECK(in && out);
  if (!in || !out) return;
  char buf[4096];
  size_t got;
  for (int k = 0; k < 50 && (got = fread(buf, 1, sizeof buf, in)) > 0; k++)
    gzwrite(out, buf, (unsigned)got);
  fclose(in);
  gzclose(out);
  ag_task *a = NULL, *b = NULL;
  int64_t na = 0, nb = 0;
  /* 200 KB of the file ends mid-line: load only complete lines. */
  CHECK_OK(ag_dataset_load("gsm8k", path, 100, &a, &na));
  CHECK_OK(ag_dataset_load("gsm8k", GSM8K, 100, &b, &nb));
  CHECK(na == 100 && nb == 100);
  for (int64_t i = 0; i < na && i < nb; i++)
    CHECK(!strcmp(a[i].answer, b[i].answer) && !strcmp(a[i].problem, b[i].problem));
  for (int64_t i = 0; i < na; i++) ag_task_clear(&a[i]);
  for (int64_t i = 0; i < nb; i++) ag_task_clear(&b[i]);
  free(a);
  free(b);
}

TEST(bad_files_are_reported_with_file_and_line) {
  ag_task *tasks = NULL;
  int64_t n = 0;
  const char *good = "{\"question\": \"Q?\", \"answer\": \"#### 1\"}\n";
  char text[1000];
  snprintf(text, sizeof text, "%s\n%s{\"question\": \"Q?\", \"answer\": \"#### 1\"\n", good, good);
  const char *path = write_file("broken.jsonl", text);
  CHECK(ag_dataset_load("gsm8k", path, 0, &tasks, &n) == AG_ERR_FORMAT && !tasks && n == 0);
  char want[700];
  snprintf(want, sizeof want, "%s:4:", path); /* the blank line 2 is skipped, not miscounted */
  CHECK_MSG(strstr(ag_error_message(), want), "%s", ag_error_message());

  path = write_file("missing.jsonl", "{\"question\": \"Q?\"}\n");
  CHECK(ag_dataset_load("gsm8k", path, 0, &tasks, &n) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), ":1:") && strstr(ag_error_message(), "\"answer\""));
  path = write_file("nonumber.jsonl", "{\"question\": \"Q?\", \"answer\": \"#### many\"}\n");
  CHECK(ag_dataset_load("gsm8k", path, 0, &tasks, &n) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "not a number"));
  path = write_file("nobox.jsonl", "{\"problem\": \"P\", \"solution\": \"no box\"}\n");
  CHECK(ag_dataset_load("math", path, 0, &tasks, &n) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "boxed"));
  path = write_file("array.jsonl", "[1, 2]\n");
  CHECK(ag_dataset_load("humaneval", path, 0, &tasks, &n) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), ":1:"));
  CHECK(ag_dataset_load("mmlu", GSM8K, 0, &tasks, &n) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "gsm8k, math, humaneval"));
  CHECK(ag_dataset_load("gsm8k", "/nonexistent/x.jsonl", 0, &tasks, &n) == AG_ERR_NOT_FOUND);
}

int main(void) {
  RUN(every_gsm8k_reference_is_a_number);
  RUN(gsm8k_check_verifies_every_record);
  RUN(gsm8k_reference_extraction);
  RUN(final_answers_are_extracted);
  RUN(boxed_answers_keep_nested_braces);
  RUN(math_answers_normalise);
  RUN(equivalent_forms_are_equal_and_near_misses_are_not);
  RUN(sentences_split_where_prose_does);
  RUN(gsm8k_verifier_feedback_and_leaks);
  RUN(gsm8k_feedback_never_states_a_number);
  RUN(a_value_the_problem_states_is_not_a_leak);
  RUN(math_family_on_a_small_file);
  RUN(tasks_round_trip_through_task_jsonl);
  RUN(gzip_files_load_like_plain_ones);
  RUN(bad_files_are_reported_with_file_and_line);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_tmpdir());
  TEST_MAIN_END();
}
