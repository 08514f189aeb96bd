/* The byte-level BPE trainer: merge order (count, then smaller ids),
 * vocabulary size and min_frequency limits, special tokens, JSONL input,
 * determinism, and that what it writes loads back to the same tokenizer. */
#include "agora/tokenizer.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static ag_tokenizer *train(const char *text, int vocab_size, int64_t min_frequency) {
  ag_tok_train_config c = ag_tok_train_defaults();
  c.vocab_size = vocab_size;
  c.min_frequency = min_frequency;
  ag_tok_trainer *tr = NULL;
  ag_tokenizer *t = NULL;
  if (ag_tok_trainer_create(&c, &tr) || ag_tok_trainer_feed(tr, text, strlen(text)) ||
      ag_tok_trainer_finish(tr, &t))
    fprintf(stderr, "training failed: %s\n", ag_error_message());
  ag_tok_trainer_free(tr);
  return t;
}

static bool token_is(const ag_tokenizer *t, int32_t id, const char *text) {
  size_t n;
  const char *s = ag_tok_token_text(t, id, &n);
  return s && n == strlen(text) && memcmp(s, text, n) == 0;
}

TEST(most_frequent_pair_merges_first_ties_go_to_smaller_ids) {
  /* words "aaaa" x2 (with and without a leading space) and " bbb":
   * (a,a) is seen 6 times; then (aa,aa) and (b,b) twice each, and the pair
   * of bytes has the smaller ids; then aa+aa. */
  ag_tokenizer *t = train("aaaa bbb aaaa", 1 + 256 + 3, 1);
  CHECK(t != NULL);
  if (!t) return;
  CHECK(ag_tok_vocab_size(t) == 260);
  CHECK(ag_tok_merge_count(t) == 3);
  CHECK(token_is(t, 0, "<|endoftext|>") && ag_tok_is_special(t, 0));
  CHECK(token_is(t, 1, "!")); /* bytes in GPT-2's order: printable ASCII first */
  CHECK(token_is(t, 257, "aa"));
  CHECK(token_is(t, 258, "bb"));
  CHECK(token_is(t, 259, "aaaa"));
  CHECK(ag_tok_special_id(t, AG_TOK_EOS) == 0);
  ag_tok_ids ids = {0};
  CHECK_OK(ag_tok_encode(t, "aaaa bbb", 8, 0, &ids));
  /* "aaaa" | " bbb" -> aaaa, Ġ, bb, b */
  int32_t space = ag_tok_find(t, "\xc4\xa0", 2), b = ag_tok_find(t, "b", 1);
  CHECK(ids.count == 4 && ids.ids[0] == 259 && ids.ids[1] == space && ids.ids[2] == 258 &&
        ids.ids[3] == b);
  ag_tok_ids_free(&ids);
  ag_tok_free(t);
}

TEST(min_frequency_stops_merging) {
  ag_tokenizer *t = train("aaaa bbb aaaa", 1000, 3);
  CHECK(t != NULL);
  if (t) CHECK(ag_tok_merge_count(t) == 1 && ag_tok_vocab_size(t) == 258);
  ag_tok_free(t);
}

static char *corpus(long words) {
  static const char *const vocab[] = {"the",
                                      "cat",
                                      "sat",
                                      "on",
                                      "mat",
                                      "dog",
                                      "ran",
                                      "far",
                                      "12345",
                                      "caf\xc3\xa9",
                                      "\xe6\x97\xa5\xe6\x9c\xac",
                                      "!",
                                      "\n"};
  size_t cap = (size_t)words * 12 + 1, n = 0;
  char *s = malloc(cap);
  uint64_t state = 3;
  for (long i = 0; s && i < words; i++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const char *w = vocab[(state >> 33) % 13];
    n += (size_t)snprintf(s + n, cap - n, "%s%s", i ? " " : "", w);
  }
  return s;
}

TEST(training_is_deterministic_and_saves_what_it_encodes) {
  char *text = corpus(test_scaled(4000, 500));
  ag_tokenizer *a = train(text, 400, 2), *b = train(text, 400, 2), *back = NULL;
  CHECK(a && b);
  char pa[600], pb[600];
  snprintf(pa, sizeof pa, "%s/a.json", test_tmpdir());
  snprintf(pb, sizeof pb, "%s/b.json", test_tmpdir());
  if (a && b) {
    CHECK_OK(ag_tok_save_json(a, pa));
    CHECK_OK(ag_tok_save_json(b, pb));
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    CHECK_OK(ag_read_file(pa, &x, &nx));
    CHECK_OK(ag_read_file(pb, &y, &ny));
    CHECK(x && y && nx == ny && memcmp(x, y, nx) == 0);
    free(x);
    free(y);
    CHECK_OK(ag_tok_load(pa, &back));
  }
  if (a && back) {
    ag_tok_ids i1 = {0}, i2 = {0};
    ag_tok_text out = {0};
    CHECK_OK(ag_tok_encode(a, text, strlen(text), 0, &i1));
    CHECK_OK(ag_tok_encode(back, text, strlen(text), 0, &i2));
    CHECK(i1.count == i2.count && memcmp(i1.ids, i2.ids, (size_t)i1.count * sizeof *i1.ids) == 0);
    CHECK(i1.count < (int64_t)strlen(text) / 2); /* it learned something */
    CHECK_OK(ag_tok_decode(back, i2.ids, i2.count, 0, &out));
    CHECK(out.size == strlen(text) && memcmp(out.data, text, out.size) == 0);
    ag_tok_ids_free(&i1);
    ag_tok_ids_free(&i2);
    ag_tok_text_free(&out);
  }
  ag_tok_free(a);
  ag_tok_free(b);
  ag_tok_free(back);
  free(text);
}

TEST(any_bytes_round_trip_through_a_trained_tokenizer) {
  ag_tokenizer *t = train("hello world, hello there", 300, 1);
  CHECK(t != NULL);
  if (!t) return;
  char buf[64];
  uint64_t state = 11;
  for (int r = 0; r < 100; r++) {
    size_t n = (size_t)(r % 60);
    for (size_t i = 0; i < n; i++) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      buf[i] = (char)(state >> 56);
    }
    ag_tok_ids ids = {0};
    ag_tok_text out = {0};
    CHECK_OK(ag_tok_encode(t, buf, n, AG_TOK_SPLIT_SPECIAL, &ids));
    CHECK_OK(ag_tok_decode(t, ids.ids, ids.count, 0, &out));
    CHECK(out.size == n && (n == 0 || memcmp(out.data, buf, n) == 0));
    ag_tok_ids_free(&ids);
    ag_tok_text_free(&out);
  }
  ag_tok_free(t);
}

TEST(special_tokens_in_the_text_are_not_counted_as_words) {
  ag_tok_train_config c = ag_tok_train_defaults();
  ag_tok_trainer *tr = NULL;
  CHECK_OK(ag_tok_trainer_create(&c, &tr));
  const char *text = "x<|endoftext|>x<|endoftext|><|endoftext|>x";
  CHECK_OK(ag_tok_trainer_feed(tr, text, strlen(text)));
  CHECK(ag_tok_trainer_word_count(tr) == 1);
  ag_tok_trainer_free(tr);
}

TEST(jsonl_and_text_files_are_read) {
  char path[600], bad[600], txt[600];
  snprintf(path, sizeof path, "%s/data.jsonl", test_tmpdir());
  snprintf(bad, sizeof bad, "%s/bad.jsonl", test_tmpdir());
  snprintf(txt, sizeof txt, "%s/data.txt", test_tmpdir());
  const char *jsonl = "{\"text\": \"alpha beta\"}\n"
                      "{\"messages\": [{\"role\": \"user\", \"content\": \"gamma\"}, "
                      "{\"role\": \"assistant\", \"content\": \"delta\"}]}\n";
  CHECK_OK(ag_atomic_write(path, jsonl, strlen(jsonl)));
  CHECK_OK(ag_atomic_write(bad, "{\"text\": \"a\"}\n{\"other\": 1}\n", 28));
  CHECK_OK(ag_atomic_write(txt, "one two\nthree\n", 14));
  ag_tok_train_config c = ag_tok_train_defaults();
  ag_tok_trainer *tr = NULL;
  CHECK_OK(ag_tok_trainer_create(&c, &tr));
  if (!tr) return;
  CHECK_OK(ag_tok_trainer_feed_file(tr, path, NULL));
  CHECK(ag_tok_trainer_word_count(tr) == 4); /* alpha, " beta", gamma, delta */
  CHECK_OK(ag_tok_trainer_feed_file(tr, txt, NULL));
  CHECK(ag_tok_trainer_word_count(tr) == 8); /* + one, " two", "\n", three */
  CHECK(ag_tok_trainer_feed_file(tr, bad, "text") == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "line 2") != NULL);
  CHECK(ag_tok_trainer_feed_file(tr, "/nonexistent.txt", NULL) != AG_OK);
  ag_tok_trainer_free(tr);
}

TEST(bad_configurations_are_refused) {
  ag_tok_trainer *tr = NULL;
  ag_tok_train_config c = ag_tok_train_defaults();
  c.vocab_size = 200;
  CHECK(ag_tok_trainer_create(&c, &tr) == AG_ERR_INVALID && tr == NULL);
  c = ag_tok_train_defaults();
  c.pre_tokenizer = "nonsense";
  CHECK(ag_tok_trainer_create(&c, &tr) == AG_ERR_INVALID && tr == NULL);
  static const char *const twice[] = {"<a>", "<a>"};
  c = ag_tok_train_defaults();
  c.special_tokens = twice;
  c.n_special = 2;
  CHECK(ag_tok_trainer_create(&c, &tr) == AG_ERR_INVALID && tr == NULL);
}

int main(void) {
  RUN(most_frequent_pair_merges_first_ties_go_to_smaller_ids);
  RUN(min_frequency_stops_merging);
  RUN(training_is_deterministic_and_saves_what_it_encodes);
  RUN(any_bytes_round_trip_through_a_trained_tokenizer);
  RUN(special_tokens_in_the_text_are_not_counted_as_words);
  RUN(jsonl_and_text_files_are_read);
  RUN(bad_configurations_are_refused);
  TEST_MAIN_END();
}
