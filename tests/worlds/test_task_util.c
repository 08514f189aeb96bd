/* Shared task helpers: exact rationals, number parsing, finding a value in
 * text, strings, phrasings, task plumbing. */
#include "test.h"
#include "worlds/tasks/task_util.h"

static ag_rational R(int64_t n, int64_t d) { return ag_rational_make(n, d); }

static bool parses_to(const char *text, int64_t num, int64_t den) {
  ag_rational r;
  return ag_parse_number(text, &r) && ag_rational_equal(r, R(num, den));
}

TEST(rational_normalises) {
  ag_rational r = R(6, -8);
  CHECK(r.num == -3 && r.den == 4);
  r = R(0, -5);
  CHECK(r.num == 0 && r.den == 1);
  r = R(INT64_MIN, INT64_MIN);
  CHECK(r.num == 1 && r.den == 1);
  char buf[48];
  CHECK(!strcmp(ag_rational_format(R(-3, 4), buf, sizeof buf), "-3/4"));
  CHECK(!strcmp(ag_rational_format(R(14, 2), buf, sizeof buf), "7"));
}

TEST(rational_arithmetic) {
  ag_rational r;
  CHECK(ag_rational_add(R(1, 2), R(1, 3), &r) && ag_rational_equal(r, R(5, 6)));
  CHECK(ag_rational_sub(R(1, 2), R(3, 4), &r) && ag_rational_equal(r, R(-1, 4)));
  CHECK(ag_rational_mul(R(2, 3), R(9, 4), &r) && ag_rational_equal(r, R(3, 2)));
  CHECK(ag_rational_div(R(2, 3), R(-4, 9), &r) && ag_rational_equal(r, R(-3, 2)));
  CHECK(!ag_rational_div(R(2, 3), R(0, 1), &r));
}

TEST(rational_overflow_is_reported) {
  ag_rational r, big = R(INT64_MAX, 1);
  CHECK(!ag_rational_add(big, R(1, 1), &r));
  CHECK(!ag_rational_mul(big, R(2, 1), &r));
  CHECK(!ag_rational_sub(R(INT64_MIN + 1, 1), R(2, 1), &r));
  CHECK(!ag_rational_add(R(1, INT64_MAX), R(1, INT64_MAX - 1), &r));
  CHECK(ag_rational_div(R(1, 1), R(1, INT64_MAX), &r) && r.num == INT64_MAX);
  /* Cross-reduction keeps products that fit after reducing. */
  CHECK(ag_rational_mul(R(INT64_MAX, 3), R(3, INT64_MAX), &r) && ag_rational_equal(r, R(1, 1)));
  CHECK(!ag_rational_sub(R(1, 1), (ag_rational){INT64_MIN, 1}, &r));
}

TEST(parse_number_forms) {
  CHECK(parses_to("42", 42, 1));
  CHECK(parses_to("  42  ", 42, 1));
  CHECK(parses_to("-12", -12, 1));
  CHECK(parses_to("+7", 7, 1));
  CHECK(parses_to("1,234", 1234, 1));
  CHECK(parses_to("1,234,567", 1234567, 1));
  CHECK(parses_to("42.0", 42, 1));
  CHECK(parses_to("0.5", 1, 2));
  CHECK(parses_to(".5", 1, 2));
  CHECK(parses_to("-2.50", -5, 2));
  CHECK(parses_to("3/4", 3, 4));
  CHECK(parses_to("6/8", 3, 4));
  CHECK(parses_to("-3/4", -3, 4));
  CHECK(parses_to("3 / 4", 3, 4));
  CHECK(parses_to("1 1/2", 3, 2));
  CHECK(parses_to("-1 1/2", -3, 2));
  CHECK(parses_to("$42", 42, 1));
  CHECK(parses_to("$1,234.50", 2469, 2));
  CHECK(parses_to("-$5", -5, 1));
  CHECK(parses_to("x = 3/4", 3, 4));
  CHECK(parses_to("x=-2", -2, 1));
  CHECK(parses_to("50%", 50, 1));
  CHECK(parses_to("42 apples", 42, 1));
  CHECK(parses_to("12 square meters", 12, 1));
  CHECK(parses_to("42.", 42, 1));
  CHECK(parses_to("\\frac{3}{4}", 3, 4));
  CHECK(parses_to("\\dfrac{3}{4}", 3, 4));
  CHECK(parses_to("-\\frac34", -3, 4));
  CHECK(parses_to("\\frac{-3}{4}", -3, 4));
  CHECK(parses_to("\xe2\x88\x92"
                  "5",
                  -5, 1)); /* U+2212 minus */
}

TEST(parse_number_rejects) {
  ag_rational r;
  const char *bad[] = {"",     "   ",  "abc",          "4 2",
                       "1,23", "3/0",  "1/2/3",        "--4",
                       "4-",   "x = ", "42 is what I", "\\frac{1}{0}",
                       "0x10", "1e5",  "3 4 5",        "99999999999999999999999",
                       "(42)", "2 + 3"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK_MSG(!ag_parse_number(bad[i], &r), "\"%s\" parsed", bad[i]);
  /* Wrong sign parses, to a different value. */
  CHECK(ag_parse_number("-42", &r) && !ag_rational_equal(r, R(42, 1)));
}

TEST(mentions_numbers) {
  CHECK(ag_text_mentions_value("The answer is 17.", R(17, 1)));
  CHECK(!ag_text_mentions_value("There are 170 of them.", R(17, 1)));
  CHECK(!ag_text_mentions_value("Take 3.17 of them.", R(17, 1)));
  CHECK(!ag_text_mentions_value("Take 1.5 of them.", R(1, 1)));
  CHECK(ag_text_mentions_value("about 1,234 people", R(1234, 1)));
  CHECK(ag_text_mentions_value("it is 42.0", R(42, 1)));
  CHECK(ag_text_mentions_value("it is -42", R(42, 1))); /* either sign gives it away */
  CHECK(ag_text_mentions_value("it is 42", R(-42, 1)));
  CHECK(ag_text_mentions_value("x is 3/4 or so", R(3, 4)));
  CHECK(ag_text_mentions_value("x is 6/8", R(3, 4)));
  CHECK(ag_text_mentions_value("x = 3 / 4", R(3, 4)));
  CHECK(!ag_text_mentions_value("x is 3/4", R(3, 1)));
  CHECK(!ag_text_mentions_value("x is 3/4", R(4, 1)));
  CHECK(ag_text_mentions_value("x is 0.75", R(3, 4)));
  CHECK(ag_text_mentions_value("x is .75", R(3, 4)));
  CHECK(ag_text_mentions_value("x is 0.5", R(1, 2)));
  CHECK(ag_text_mentions_value("roughly 0.333", R(1, 3)));
  CHECK(ag_text_mentions_value("roughly 0.67", R(2, 3)));
  CHECK(!ag_text_mentions_value("roughly 0.3", R(1, 3)));
  CHECK(ag_text_mentions_value("1 1/2 cups", R(3, 2)));
  CHECK(ag_text_mentions_value("1.5 cups", R(3, 2)));
  CHECK(ag_text_mentions_value("so \\frac{1}{2} it is", R(1, 2)));
  CHECK(ag_text_mentions_value("\xc2\xbd a cup", R(1, 2)));
  CHECK(!ag_text_mentions_value("no numbers here", R(5, 1)));
  CHECK(ag_text_mentions_value("5", R(5, 1)));
  CHECK(ag_text_mentions_value("1, 5, 9", R(5, 1)));
  CHECK(!ag_text_mentions_value("1, 15, 9", R(5, 1)));
}

TEST(mentions_words) {
  CHECK(ag_text_mentions_value("It is seven.", R(7, 1)));
  CHECK(ag_text_mentions_value("Seven apples", R(7, 1)));
  CHECK(ag_text_mentions_value("minus two", R(-2, 1)));
  CHECK(ag_text_mentions_value("negative five", R(-5, 1)));
  CHECK(ag_text_mentions_value("twenty-one", R(21, 1)));
  CHECK(ag_text_mentions_value("twenty one", R(21, 1)));
  CHECK(!ag_text_mentions_value("twenty-one", R(20, 1)));
  CHECK(!ag_text_mentions_value("twenty-one", R(1, 1)));
  CHECK(ag_text_mentions_value("one hundred and five", R(105, 1)));
  CHECK(!ag_text_mentions_value("seventeen", R(7, 1)));
  CHECK(ag_text_mentions_value("one half", R(1, 2)));
  CHECK(ag_text_mentions_value("a half", R(1, 2)));
  CHECK(ag_text_mentions_value("Three quarters of it", R(3, 4)));
  CHECK(ag_text_mentions_value("three fourths", R(3, 4)));
  CHECK(ag_text_mentions_value("two-thirds", R(2, 3)));
  CHECK(ag_text_mentions_value("one and a half", R(3, 2)));
  CHECK(ag_text_mentions_value("five halves", R(5, 2)));
  CHECK(!ag_text_mentions_value("two and a half", R(2, 1)));
  CHECK(!ag_text_mentions_value("the third step", R(1, 3)));
  CHECK(!ag_text_mentions_value("the step is wrong", R(3, 1)));
  CHECK(!ag_text_mentions_value("someone", R(1, 1)));
}

TEST(strbuf_grows) {
  ag_strbuf b = {0};
  char *s = ag_strbuf_take(&b);
  CHECK(s && !strcmp(s, ""));
  free(s);
  for (int i = 0; i < 1000; i++) ag_strbuf_printf(&b, "%d,", i % 10);
  ag_strbuf_append(&b, "end", 3);
  CHECK(b.size == 2003);
  s = ag_strbuf_take(&b);
  CHECK(s && !strncmp(s, "0,1,2,", 6) && !strcmp(s + 2000, "end"));
  CHECK(b.data == NULL && b.size == 0);
  free(s);
  ag_strbuf_printf(&b, "x");
  ag_strbuf_free(&b);
}

TEST(phrasing_sets_are_disjoint) {
  const char *const p[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  int seen[8] = {0};
  for (int i = 0; i < 400; i++) {
    const char *t = ag_pick_phrasing(p, 8, AG_PHRASING_TRAIN, &rng);
    const char *h = ag_pick_phrasing(p, 8, AG_PHRASING_HELDOUT, &rng);
    CHECK(t[0] >= 'a' && t[0] <= 'd');
    CHECK(h[0] >= 'e' && h[0] <= 'h');
    seen[t[0] - 'a']++;
    seen[h[0] - 'a']++;
  }
  for (int i = 0; i < 8; i++) CHECK(seen[i] > 0);
}

TEST(task_rng_streams) {
  ag_rng a, b, c, d;
  ag_task_rng(&a, "arith", 2, 7, 3);
  ag_task_rng(&b, "arith", 2, 7, 3);
  CHECK(ag_rng_u64(&a) == ag_rng_u64(&b));
  ag_task_rng(&a, "arith", 2, 7, 3);
  ag_task_rng(&c, "algebra", 2, 7, 3);
  ag_task_rng(&d, "arith", 3, 7, 3);
  uint64_t x = ag_rng_u64(&a);
  CHECK(x != ag_rng_u64(&c));
  CHECK(x != ag_rng_u64(&d));
  ag_task_rng(&b, "arith", 2, 7, 4);
  CHECK(x != ag_rng_u64(&b));
}

TEST(task_fill_and_shards) {
  ag_task t;
  CHECK_OK(ag_task_fill(&t, "arith", 2, 9, 5, "p", "42", NULL, NULL));
  CHECK(!strcmp(t.id, "arith/2/9/5"));
  CHECK(!strcmp(t.solution, "42") && json_is_object(t.data));
  CHECK_OK(ag_task_add_shard(&t, "goal", false));
  CHECK_OK(ag_task_add_shard(&t, "fact", true));
  CHECK(t.shard_count == 2 && t.shards[1].required && !strcmp(t.shards[1].text, "fact"));
  ag_task_clear(&t);
  CHECK(t.problem == NULL && t.shard_count == 0);
  CHECK(ag_task_fill(&t, "a-family-name-too-long", 1, 0, 0, "p", "a", NULL, json_object()) ==
        AG_ERR_INVALID);
}

TEST(verdict_init) {
  ag_verdict v;
  CHECK_OK(ag_verdict_init(&v, false, true, "wrong_value"));
  CHECK(!v.correct && v.parsed);
  CHECK(!strcmp(json_string_value(json_object_get(v.diagnostics, "kind")), "wrong_value"));
  ag_verdict_clear(&v);
  CHECK(v.diagnostics == NULL);
}

TEST(first_line) {
  char *s = ag_first_line("\n  \n  42 apples  \nmore");
  CHECK(s && !strcmp(s, "42 apples"));
  free(s);
  s = ag_first_line("");
  CHECK(s && !strcmp(s, ""));
  free(s);
}

int main(void) {
  RUN(rational_normalises);
  RUN(rational_arithmetic);
  RUN(rational_overflow_is_reported);
  RUN(parse_number_forms);
  RUN(parse_number_rejects);
  RUN(mentions_numbers);
  RUN(mentions_words);
  RUN(strbuf_grows);
  RUN(phrasing_sets_are_disjoint);
  RUN(task_rng_streams);
  RUN(task_fill_and_shards);
  RUN(verdict_init);
  RUN(first_line);
  TEST_MAIN_END();
}
