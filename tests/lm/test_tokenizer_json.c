/* Hugging Face tokenizer.json: the BPE model (both merge spellings, unknown
 * tokens, byte fallback), added and special tokens, post-processor and
 * decoder, tokenizer_config.json, saving, and bad files. Small tokenizers are
 * written inline so every expected id follows from the vocabulary shown. */
#include "agora/tokenizer.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

#define STORIES "../shared/data/models/stories260K"

static ag_tokenizer *load_text(const char *json, const char *config) {
  ag_tokenizer *t = NULL;
  if (ag_tok_load_json_text(json, strlen(json), config, config ? strlen(config) : 0, &t)) {
    fprintf(stderr, "load failed: %s\n", ag_error_message());
    return NULL;
  }
  return t;
}

/* Encodes text and compares with the expected ids (n of them). */
static bool encodes_to(const ag_tokenizer *t, const char *text, unsigned flags,
                       const int32_t *expected, int n) {
  ag_tok_ids ids = {0};
  bool ok = ag_tok_encode(t, text, strlen(text), flags, &ids) == AG_OK && ids.count == n;
  for (int i = 0; ok && i < n; i++) ok = ids.ids[i] == expected[i];
  if (!ok) {
    fprintf(stderr, "  \"%s\" ->", text);
    for (int64_t i = 0; i < ids.count; i++) fprintf(stderr, " %d", ids.ids[i]);
    fprintf(stderr, " (expected");
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", expected[i]);
    fprintf(stderr, ")\n");
  }
  ag_tok_ids_free(&ids);
  return ok;
}

#define ENCODES(t, text, flags, ...)                                                               \
  do {                                                                                             \
    static const int32_t want_[] = {__VA_ARGS__};                                                  \
    CHECK(encodes_to(t, text, flags, want_, (int)(sizeof want_ / sizeof *want_)));                 \
  } while (0)
#define ENCODES_EMPTY(t, text, flags) CHECK(encodes_to(t, text, flags, NULL, 0))

static bool round_trips(const ag_tokenizer *t, const char *text, size_t n) {
  ag_tok_ids ids = {0};
  ag_tok_text back = {0};
  bool ok = ag_tok_encode(t, text, n, 0, &ids) == AG_OK &&
            ag_tok_decode(t, ids.ids, ids.count, 0, &back) == AG_OK && back.size == n &&
            memcmp(back.data, text, n) == 0;
  ag_tok_ids_free(&ids);
  ag_tok_text_free(&back);
  return ok;
}

/* A character-level BPE: a+b -> ab, ab+c -> abc, b+c -> bc. */
#define CHAR_BPE(merges, extra_model)                                                              \
  "{\"added_tokens\": ["                                                                           \
  "{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"                                        \
  "{\"id\": 9, \"content\": \"<|x|>\", \"special\": true},"                                        \
  "{\"id\": 10, \"content\": \"<|y|>\", \"special\": false, \"lstrip\": true, \"rstrip\": true},"  \
  "{\"id\": 11, \"content\": \"bb\", \"special\": false, \"single_word\": true}],"                 \
  " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\"" extra_model ","                       \
  " \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"c\": 3, \"ab\": 4, \"abc\": 5, \"bc\": 6,"     \
  " \" \": 7, \"<0x78>\": 8, \"<|x|>\": 9, \"<|y|>\": 10, \"bb\": 11}, \"merges\": " merges "}}"

TEST(merges_apply_by_rank_in_both_spellings) {
  ag_tokenizer *s = load_text(CHAR_BPE("[\"a b\", \"ab c\", \"b c\"]", ""), NULL);
  ag_tokenizer *p =
      load_text(CHAR_BPE("[[\"a\", \"b\"], [\"ab\", \"c\"], [\"b\", \"c\"]]", ""), NULL);
  CHECK(s && p);
  for (int k = 0; k < 2; k++) {
    ag_tokenizer *t = k ? p : s;
    if (!t) continue;
    ENCODES(t, "abc", 0, 5);
    ENCODES(t, "bc", 0, 6);
    ENCODES(t, "abbc", 0, 4, 6); /* a+b (rank 0) before b+c (rank 2) */
    ENCODES(t, "ab c", 0, 4, 7, 3);
    CHECK(ag_tok_merge_count(t) == 3);
  }
  ag_tok_free(s);
  ag_tok_free(p);
}

TEST(unknown_characters_become_unk_fused_or_not) {
  ag_tokenizer *f = load_text(CHAR_BPE("[\"a b\"]", ", \"fuse_unk\": true"), NULL);
  ag_tokenizer *u = load_text(CHAR_BPE("[\"a b\"]", ""), NULL);
  CHECK(f && u);
  if (f) ENCODES(f, "azzb", 0, 1, 0, 2);
  if (u) ENCODES(u, "azzb", 0, 1, 0, 0, 2);
  ag_tok_free(f);
  ag_tok_free(u);
}

TEST(byte_fallback_uses_byte_tokens_when_all_exist) {
  ag_tokenizer *t = load_text(CHAR_BPE("[]", ", \"byte_fallback\": true"), NULL);
  CHECK(t != NULL);
  if (!t) return;
  ENCODES(t, "axa", 0, 1, 8, 1); /* x is <0x78> */
  ENCODES(t, "aza", 0, 1, 0, 1); /* no <0x7A>: <unk> */
  ag_tok_free(t);
}

TEST(added_tokens_split_the_text_first) {
  ag_tokenizer *t = load_text(CHAR_BPE("[\"a b\"]", ""), NULL);
  CHECK(t != NULL);
  if (!t) return;
  ENCODES(t, "a<|x|>b", 0, 1, 9, 2);
  /* special text as plain text: unknown characters */
  ENCODES(t, "a<|x|>b", AG_TOK_SPLIT_SPECIAL, 1, 0, 0, 0, 0, 0, 2);
  /* non-special added tokens still split, and lstrip/rstrip eat spaces */
  ENCODES(t, "a <|y|> b", AG_TOK_SPLIT_SPECIAL, 1, 10, 2);
  /* single_word: only between non-word characters */
  ENCODES(t, "c bb c", 0, 3, 7, 11, 7, 3);
  ENCODES(t, "abbc", 0, 4, 2, 3);
  CHECK(ag_tok_is_special(t, 9) && !ag_tok_is_special(t, 10) && !ag_tok_is_special(t, 1));
  ag_tok_free(t);
}

/* A Llama-2-style tokenizer: U+2581 for spaces, byte fallback, BOS added by
 * the post-processor, the decoder strips the leading space. */
static const char *spm_json =
    "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
    " {\"id\": 1, \"content\": \"<s>\", \"special\": true},"
    " {\"id\": 2, \"content\": \"</s>\", \"special\": true}],"
    " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", "
    "\"prepend\": \"\xe2\x96\x81\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, "
    "\"content\": \"\xe2\x96\x81\"}]},"
    " \"pre_tokenizer\": null,"
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
    "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], "
    "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}},"
    " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": "
    "{\"String\": \"\xe2\x96\x81\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, "
    "{\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
    " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true,"
    " \"fuse_unk\": true, \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0xC3>\": 3,"
    " \"<0xA9>\": 4, \"\xe2\x96\x81\": 5, \"h\": 6, \"i\": 7, \"\xe2\x96\x81h\": 8,"
    " \"\xe2\x96\x81hi\": 9}, \"merges\": [\"\xe2\x96\x81 h\", \"\xe2\x96\x81h i\"]}}";

TEST(sentencepiece_style_json_prepends_space_and_falls_back_to_bytes) {
  ag_tokenizer *t = load_text(spm_json, NULL);
  CHECK(t != NULL);
  if (!t) return;
  ENCODES(t, "hi", 0, 9);
  ENCODES(t, "hi", AG_TOK_ADD_SPECIAL, 1, 9);
  ENCODES(t, "h\xc3\xa9", 0, 8, 3, 4);
  ENCODES(t, " hi", 0, 5, 9);
  ENCODES(t, "<s>hi", 0, 1, 9); /* each segment gets its own U+2581 */
  ENCODES_EMPTY(t, "", 0);
  CHECK(round_trips(t, "h\xc3\xa9", 3));
  CHECK(round_trips(t, " hi hi", 6));
  ag_tok_text out = {0};
  int32_t ids[] = {1, 9, 5, 8};
  CHECK_OK(ag_tok_decode(t, ids, 4, 0, &out));
  CHECK(out.size == 9 && memcmp(out.data, "<s> hi  h", 9) == 0);
  out.size = 0;
  CHECK_OK(ag_tok_decode(t, ids, 4, AG_TOK_SKIP_SPECIAL, &out));
  CHECK(out.size == 5 && memcmp(out.data, "hi  h", 5) == 0);
  int32_t bad[] = {1, 99};
  CHECK(ag_tok_decode(t, bad, 2, 0, &out) == AG_ERR_INVALID);
  ag_tok_text_free(&out);
  CHECK(ag_tok_special_id(t, AG_TOK_BOS) == 1 && ag_tok_special_id(t, AG_TOK_EOS) == 2 &&
        ag_tok_special_id(t, AG_TOK_UNK) == 0 && ag_tok_special_id(t, AG_TOK_PAD) == -1);
  ag_tok_free(t);
}

TEST(tokenizer_config_sets_roles_and_what_add_special_adds) {
  ag_tokenizer *t = load_text(spm_json, "{\"add_bos_token\": false, \"add_eos_token\": true,"
                                        " \"eos_token\": {\"content\": \"</s>\"},"
                                        " \"pad_token\": \"<unk>\"}");
  CHECK(t != NULL);
  if (!t) return;
  ENCODES(t, "hi", AG_TOK_ADD_SPECIAL, 9, 2);
  CHECK(ag_tok_special_id(t, AG_TOK_PAD) == 0);
  ag_tok_free(t);
  t = NULL;
  CHECK(ag_tok_load_json_text(spm_json, strlen(spm_json), "[1,2", 4, &t) == AG_ERR_FORMAT);
  CHECK(t == NULL);
}

TEST(stories260k_loads_from_its_folder_and_round_trips) {
  ag_tokenizer *t = NULL;
  CHECK_OK(ag_tok_load(STORIES, &t));
  if (!t) return;
  CHECK(ag_tok_vocab_size(t) == 512);
  /* "▁Once" "▁upon" "▁a" "▁time" are single tokens of this vocabulary */
  int32_t once = ag_tok_find(t, "\xe2\x96\x81Once", 7),
          upon = ag_tok_find(t, "\xe2\x96\x81upon", 7);
  int32_t a = ag_tok_find(t,
                          "\xe2\x96\x81"
                          "a",
                          4),
          time = ag_tok_find(t, "\xe2\x96\x81time", 7);
  CHECK(once > 0 && upon > 0 && a > 0 && time > 0);
  int32_t want[] = {1, once, upon, a, time};
  CHECK(encodes_to(t, "Once upon a time", AG_TOK_ADD_SPECIAL, want, 5));
  static const char *const texts[] = {"Lily and Ben played in the park.\n",
                                      "  two  spaces, tabs\tand \xe2\x98\x83 snowmen",
                                      "\xff\xfe invalid \xc3 UTF-8 \xed\xa0\x80", ""};
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
    CHECK_MSG(round_trips(t, texts[i], strlen(texts[i])), "%s", texts[i]);
  ag_tok_free(t);
}

TEST(random_bytes_round_trip) {
  ag_tokenizer *t = NULL;
  CHECK_OK(ag_tok_load(STORIES, &t));
  if (!t) return;
  uint64_t state = 42;
  long rounds = test_scaled(200, 20);
  char buf[256];
  for (long r = 0; r < rounds; r++) {
    size_t n = (size_t)(r % 97);
    for (size_t i = 0; i < n; i++) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      buf[i] = (char)(state >> 56);
    }
    /* a leading space is what the decoder strips, so start with another byte */
    if (n && buf[0] == ' ') buf[0] = 'x';
    CHECK_MSG(round_trips(t, buf, n), "round %ld", r);
  }
  ag_tok_free(t);
}

TEST(save_and_reload_gives_the_same_ids) {
  ag_tokenizer *t = NULL, *back = NULL;
  CHECK_OK(ag_tok_load(STORIES, &t));
  char path[600];
  snprintf(path, sizeof path, "%s/stories.json", test_tmpdir());
  if (t) CHECK_OK(ag_tok_save_json(t, path));
  CHECK_OK(ag_tok_load(path, &back));
  if (t && back) {
    static const char *const texts[] = {"Once upon a time there was a dog.", "<s>Hi!</s>",
                                        "caf\xc3\xa9 \xe2\x98\x83\n"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
      ag_tok_ids a = {0}, b = {0};
      CHECK_OK(ag_tok_encode(t, texts[i], strlen(texts[i]), AG_TOK_ADD_SPECIAL, &a));
      CHECK_OK(ag_tok_encode(back, texts[i], strlen(texts[i]), AG_TOK_ADD_SPECIAL, &b));
      CHECK(a.count == b.count && a.count > 0 &&
            memcmp(a.ids, b.ids, (size_t)a.count * sizeof *a.ids) == 0);
      ag_tok_ids_free(&a);
      ag_tok_ids_free(&b);
    }
    CHECK(ag_tok_merge_count(back) == ag_tok_merge_count(t));
  }
  ag_tok_free(t);
  ag_tok_free(back);
  /* pair-spelled merges with a space in a token are written as pairs */
  t = load_text(CHAR_BPE("[[\"a\", \"b\"], [\"ab\", \"c\"], [\"b\", \"c\"]]", ""), NULL);
  snprintf(path, sizeof path, "%s/char.json", test_tmpdir());
  if (t) CHECK_OK(ag_tok_save_json(t, path));
  back = NULL;
  CHECK_OK(ag_tok_load(path, &back));
  if (back) ENCODES(back, "abbc<|x|>", 0, 4, 6, 9);
  ag_tok_free(t);
  ag_tok_free(back);
}

/* ---- bad files -------------------------------------------------------------------------- */

static ag_status load_status(const char *json) {
  ag_tokenizer *t = NULL;
  ag_status st = ag_tok_load_json_text(json, strlen(json), NULL, 0, &t);
  ag_tok_free(t);
  if (st == AG_OK) fprintf(stderr, "  unexpectedly loaded: %s\n", json);
  return st;
}

TEST(malformed_files_fail_with_clear_errors) {
  CHECK(load_status("not json") == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "not valid JSON") != NULL);
  CHECK(load_status("[]") == AG_ERR_FORMAT);
  CHECK(load_status("{}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": \"x\"}}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": -1}}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 2000000000}}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0, \"b\": 100000}}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0, \"b\": 0}}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {}}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a z\"]}}") ==
        AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "merge 0") != NULL);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [7]}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": {}}}") == AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 1}]}") ==
        AG_ERR_FORMAT);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": "
                    "\"Split\", \"pattern\": {\"Regex\": \"(\"}}}") == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "regex") != NULL);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}}, \"decoder\": {\"type\": \"Strip\"}}") ==
        AG_ERR_FORMAT);
  CHECK(load_status(
            "{\"model\": {\"vocab\": {\"a\": 0}}, \"post_processor\": {\"type\": "
            "\"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<q>\"}}]}}") ==
        AG_ERR_FORMAT);
  /* valid but not supported: a clear "unsupported", not a wrong tokenizer */
  CHECK(load_status("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}") ==
        AG_ERR_UNSUPPORTED);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": "
                    "\"BertPreTokenizer\"}}") == AG_ERR_UNSUPPORTED);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}}, \"decoder\": {\"type\": "
                    "\"WordPiece\"}}") == AG_ERR_UNSUPPORTED);
  CHECK(load_status("{\"model\": {\"vocab\": {\"a\": 0}, \"continuing_subword_prefix\": "
                    "\"##\"}}") == AG_ERR_UNSUPPORTED);
  ag_tokenizer *t = NULL;
  CHECK(ag_tok_load("/nonexistent/tokenizer.json", &t) == AG_ERR_NOT_FOUND && t == NULL);
  CHECK(ag_tok_load(test_tmpdir(), &t) == AG_ERR_NOT_FOUND && t == NULL);
}

TEST(truncated_and_mutated_files_never_crash) {
  char *text = NULL;
  size_t n = 0;
  CHECK_OK(ag_read_file(STORIES "/tokenizer.json", &text, &n));
  if (!text) return;
  long cuts = test_scaled(120, 30);
  for (long k = 1; k <= cuts; k++) {
    size_t cut = n * (size_t)k / (size_t)(cuts + 1);
    ag_tokenizer *t = NULL;
    CHECK_MSG(ag_tok_load_json_text(text, cut, NULL, 0, &t) != AG_OK, "cut at %zu loaded", cut);
    ag_tok_free(t);
  }
  /* single-byte mutations: any status is fine, a crash or leak is not */
  char *copy = malloc(n);
  uint64_t state = 7;
  long mutations = test_scaled(300, 60);
  for (long k = 0; copy && k < mutations; k++) {
    memcpy(copy, text, n);
    for (int j = 0; j < 3; j++) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      size_t at = (size_t)(state >> 33) % n;
      copy[at] = "0\"{}[]:,-9 \\x"[(state >> 20) % 13];
    }
    ag_tokenizer *t = NULL;
    if (ag_tok_load_json_text(copy, n, NULL, 0, &t) == AG_OK) {
      ag_tok_ids ids = {0};
      ag_tok_text back = {0};
      ag_tok_encode(t, "Once upon a time", 16, AG_TOK_ADD_SPECIAL, &ids);
      ag_tok_decode(t, ids.ids, ids.count, 0, &back);
      ag_tok_ids_free(&ids);
      ag_tok_text_free(&back);
    }
    ag_tok_free(t);
  }
  free(copy);
  free(text);
}

int main(void) {
  RUN(merges_apply_by_rank_in_both_spellings);
  RUN(unknown_characters_become_unk_fused_or_not);
  RUN(byte_fallback_uses_byte_tokens_when_all_exist);
  RUN(added_tokens_split_the_text_first);
  RUN(sentencepiece_style_json_prepends_space_and_falls_back_to_bytes);
  RUN(tokenizer_config_sets_roles_and_what_add_special_adds);
  RUN(stories260k_loads_from_its_folder_and_round_trips);
  RUN(random_bytes_round_trip);
  RUN(save_and_reload_gives_the_same_ids);
  RUN(malformed_files_fail_with_clear_errors);
  RUN(truncated_and_mutated_files_never_crash);
  TEST_MAIN_END();
}
