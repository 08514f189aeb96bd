/* Pre-tokenization: how text is split into words before BPE. The expected
 * splits follow from the regexes (llama.cpp's pre-tokenizer lists, the
 * models' tokenizer.json patterns) and from Hugging Face's documented split
 * behaviours ("the-final--countdown"). Words are shown joined by '|'. */
#include "lm/tokenizer_internal.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* The words of text under t's normalizers and pre-tokenizer, '|'-joined. */
static char *words_of(const ag_tokenizer *t, const char *text) {
  tok_scratch s = {0};
  ag_tok_text out = {0};
  ag_status st = tok_normalize(t, &s, text, strlen(text));
  if (!st) st = tok_pretokenize(t, &s, true);
  for (size_t i = 0; !st && i < s.n_spans; i++) {
    if (i) tok_text_append(&out, "|", 1);
    tok_text_append(&out, s.pre.data + s.spans[i].off, s.spans[i].len);
  }
  tok_scratch_free(&s);
  if (st) {
    fprintf(stderr, "pretokenize failed: %s\n", ag_error_message());
    ag_tok_text_free(&out);
    return strdup("<error>");
  }
  if (!out.data) return strdup("");
  return out.data;
}

static ag_tokenizer *named(const char *name) {
  ag_tokenizer *t = tok_new();
  const tok_pre_type *p = tok_pre_type_find(name);
  if (!t || !p || tok_add_pre_type_steps(t, p)) {
    ag_tok_free(t);
    return NULL;
  }
  return t;
}

#define CHECK_WORDS(t, text, expected)                                                             \
  do {                                                                                             \
    char *got_ = words_of(t, text);                                                                \
    CHECK_MSG(strcmp(got_, expected) == 0, "\"%s\" -> \"%s\", expected \"%s\"", text, got_,        \
              expected);                                                                           \
    free(got_);                                                                                    \
  } while (0)

TEST(gpt2_splits_words_with_their_leading_space) {
  ag_tokenizer *t = named("gpt-2");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_WORDS(t, "Hello world", "Hello| world");
  CHECK_WORDS(t, "  Hello", " | Hello");
  CHECK_WORDS(t, "I've 123 apples!!", "I|'ve| 123| apples|!!");
  CHECK_WORDS(t, "a\n\nb", "a|\n|\n|b");
  CHECK_WORDS(t, "end   ", "end|   ");
  ag_tok_free(t);
}

TEST(llama3_groups_digits_by_three_and_ignores_case_of_contractions) {
  ag_tokenizer *t = named("llama-bpe");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_WORDS(t, "1234567", "123|456|7");
  CHECK_WORDS(t, "Hello, y'all!", "Hello|,| y|'all|!");
  CHECK_WORDS(t, "HE'S here", "HE|'S| here");
  CHECK_WORDS(t, "x\n\n  y", "x|\n\n| | y");
  CHECK(t->ignore_merges == false); /* set by the loader, not the steps */
  CHECK(tok_pre_type_find("llama3")->ignore_merges);
  ag_tok_free(t);
}

TEST(qwen2_and_starcoder_split_single_digits) {
  ag_tokenizer *q = named("qwen2"), *s = named("starcoder"), *r = named("refact");
  CHECK(q && s && r);
  if (q) CHECK_WORDS(q, "x1234", "x|1|2|3|4");
  if (s) CHECK_WORDS(s, "x=12 y", "x|=|1|2| y");
  if (r) CHECK_WORDS(r, "v2", "v|2");
  ag_tok_free(q), ag_tok_free(s), ag_tok_free(r);
}

TEST(falcon_isolates_punctuation_then_groups_of_three_digits) {
  ag_tokenizer *t = named("falcon");
  CHECK(t != NULL);
  if (!t) return;
  CHECK_WORDS(t, "a+b 1234", "a|+|b| |123|4");
  ag_tok_free(t);
}

TEST(deepseek_pre_tokenizers_split_newlines_letters_and_digits) {
  ag_tokenizer *c = named("deepseek-coder"), *l = named("deepseek-llm");
  CHECK(c && l);
  if (c) CHECK_WORDS(c, "ab12\ncd", "ab|1|2|\n|cd");
  if (l) CHECK_WORDS(l, "Hi 2024!", "Hi| |2024|!");
  ag_tok_free(c), ag_tok_free(l);
}

TEST(every_named_pre_tokenizer_compiles) {
  const char *const *names = ag_tok_pre_names();
  int n = 0;
  static const char *const required[] = {"gpt-2",        "llama3",         "llama-bpe", "qwen2",
                                         "falcon",       "starcoder",      "refact",    "mpt",
                                         "deepseek-llm", "deepseek-coder", "default"};
  for (; names[n]; n++) {
    ag_tokenizer *t = named(names[n]);
    CHECK_MSG(t != NULL, "%s: %s", names[n], ag_error_message());
    if (t) {
      char *w = words_of(t, "Hello, World 12345 \xe4\xbd\xa0\xe5\xa5\xbd!\n");
      CHECK_MSG(strcmp(w, "<error>") != 0, "%s", names[n]);
      free(w);
    }
    ag_tok_free(t);
  }
  for (size_t i = 0; i < sizeof required / sizeof *required; i++) {
    bool found = false;
    for (int k = 0; k < n; k++) found |= !strcmp(names[k], required[i]);
    CHECK_MSG(found, "%s is not a known pre-tokenizer", required[i]);
  }
  CHECK(tok_pre_type_find("no-such-pre") == NULL);
}

/* ---- Hugging Face split behaviours ----------------------------------------------------- */

static ag_tokenizer *from_json(const char *json) {
  ag_tokenizer *t = NULL;
  if (ag_tok_load_json_text(json, strlen(json), NULL, 0, &t)) {
    fprintf(stderr, "load failed: %s\n", ag_error_message());
    return NULL;
  }
  return t;
}

static ag_tokenizer *split_tokenizer(const char *behavior, bool invert) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
           " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"-\"},"
           " \"behavior\": \"%s\", \"invert\": %s}}",
           behavior, invert ? "true" : "false");
  return from_json(json);
}

TEST(split_behaviours_follow_hugging_face) {
  static const struct {
    const char *behavior, *expected;
  } cases[] = {
      {"Removed", "the|final|countdown"},
      {"Isolated", "the|-|final|-|-|countdown"},
      {"MergedWithPrevious", "the-|final-|-|countdown"},
      {"MergedWithNext", "the|-final|-|-countdown"},
      {"Contiguous", "the|-|final|--|countdown"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    ag_tokenizer *t = split_tokenizer(cases[i].behavior, false);
    CHECK(t != NULL);
    if (t) CHECK_WORDS(t, "the-final--countdown", cases[i].expected);
    ag_tok_free(t);
  }
  /* invert: the pattern matches the words, so the rest is the delimiter */
  ag_tokenizer *t = split_tokenizer("Removed", true);
  if (t) CHECK_WORDS(t, "a-b", "-");
  ag_tok_free(t);
}

TEST(byte_level_add_prefix_space_and_metaspace_prepend) {
  ag_tokenizer *b = from_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []},"
                              " \"pre_tokenizer\": {\"type\": \"ByteLevel\","
                              " \"add_prefix_space\": true, \"use_regex\": true}}");
  CHECK(b != NULL);
  if (b) CHECK_WORDS(b, "Hello world", " Hello| world");
  ag_tok_free(b);
  static const struct {
    const char *scheme, *split, *expected;
  } cases[] = {{"always", "true",
                "\xe2\x96\x81"
                "a|\xe2\x96\x81"
                "b"},
               {"never", "true",
                "a|\xe2\x96\x81"
                "b"},
               {"first", "false",
                "\xe2\x96\x81"
                "a\xe2\x96\x81"
                "b"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
             "\"Metaspace\", \"replacement\": \"\xe2\x96\x81\", \"prepend_scheme\": \"%s\", "
             "\"split\": %s}}",
             cases[i].scheme, cases[i].split);
    ag_tokenizer *t = from_json(json);
    CHECK(t != NULL);
    if (t) CHECK_WORDS(t, "a b", cases[i].expected);
    ag_tok_free(t);
  }
}

TEST(digits_and_punctuation_pre_tokenizers) {
  ag_tokenizer *t = from_json(
      "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
      "\"Sequence\", \"pretokenizers\": [{\"type\": \"Punctuation\"}, {\"type\": \"Digits\", "
      "\"individual_digits\": true}, {\"type\": \"WhitespaceSplit\"}]}}");
  CHECK(t != NULL);
  if (t) CHECK_WORDS(t, "ab12, c!", "ab|1|2|,|c|!");
  ag_tok_free(t);
}

TEST(normalizers_prepend_replace_and_strip) {
  ag_tokenizer *t =
      from_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": "
                "\"Sequence\", \"normalizers\": [{\"type\": \"Strip\", \"strip_left\": true, "
                "\"strip_right\": true}, {\"type\": \"Prepend\", \"prepend\": \"_\"}, {\"type\": "
                "\"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"_\"}, {\"type\": "
                "\"Replace\", \"pattern\": {\"Regex\": \"[0-9]+\"}, \"content\": \"#\"}]}}");
  CHECK(t != NULL);
  if (t) {
    CHECK_WORDS(t, "  a b 123 ", "_a_b_#");
    CHECK_WORDS(t, "", "");
  }
  ag_tok_free(t);
}

TEST(nfc_normalizer_composes_when_icu_is_available) {
  ag_tokenizer *t = from_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []},"
                              " \"normalizer\": {\"type\": \"NFC\"}}");
  CHECK(t != NULL);
  if (!t) return;
  /* e + combining acute -> é; invalid bytes pass through */
  if (tok_have_icu())
    CHECK_WORDS(t, "Cafe\xcc\x81 \xff", "Caf\xc3\xa9 \xff");
  else
    CHECK_WORDS(t, "Cafe\xcc\x81 \xff", "Cafe\xcc\x81 \xff");
  CHECK_WORDS(t, "plain ASCII", "plain ASCII");
  ag_tok_free(t);
}

TEST(invalid_utf8_is_kept_not_dropped) {
  ag_tokenizer *t = named("llama3");
  CHECK(t != NULL);
  if (!t) return;
  /* invalid bytes never match a regex, so they become words of their own */
  CHECK_WORDS(t, "ab\xff\xfe cd", "ab|\xff\xfe| cd");
  CHECK_WORDS(t, "\xc3", "\xc3");
  ag_tok_free(t);
}

int main(void) {
  RUN(gpt2_splits_words_with_their_leading_space);
  RUN(llama3_groups_digits_by_three_and_ignores_case_of_contractions);
  RUN(qwen2_and_starcoder_split_single_digits);
  RUN(falcon_isolates_punctuation_then_groups_of_three_digits);
  RUN(deepseek_pre_tokenizers_split_newlines_letters_and_digits);
  RUN(every_named_pre_tokenizer_compiles);
  RUN(split_behaviours_follow_hugging_face);
  RUN(byte_level_add_prefix_space_and_metaspace_prepend);
  RUN(digits_and_punctuation_pre_tokenizers);
  RUN(normalizers_prepend_replace_and_strip);
  RUN(nfc_normalizer_composes_when_icu_is_available);
  RUN(invalid_utf8_is_kept_not_dropped);
  TEST_MAIN_END();
}
