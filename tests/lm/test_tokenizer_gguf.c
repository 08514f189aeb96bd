/* GGUF vocabularies: small files written here (so each expected id follows
 * from the vocabulary shown), the Llama-2 vocabulary of the tiny test model,
 * conversion of GGUF byte-level vocabularies to tokenizer.json (checked
 * against llama.cpp's vectors), and corrupt or unsupported files. */
#include "agora/tokenizer.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

#define VOCABS "../shared/data/tokenizers/"

/* ---- a minimal GGUF writer (version 3, metadata only) ------------------------------- */

typedef struct gguf_buf {
  unsigned char *p;
  size_t n, cap;
  uint64_t kv_count;
} gguf_buf;

static void put(gguf_buf *b, const void *data, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
}
static void put_u32(gguf_buf *b, uint32_t v) { put(b, &v, 4); } /* little-endian hosts */
static void put_u64(gguf_buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(gguf_buf *b, const char *s) {
  put_u64(b, strlen(s));
  put(b, s, strlen(s));
}
static void key(gguf_buf *b, const char *k, uint32_t type) {
  put_str(b, k);
  put_u32(b, type);
  b->kv_count++;
}
static void kv_string(gguf_buf *b, const char *k, const char *v) {
  key(b, k, 8);
  put_str(b, v);
}
static void kv_u32(gguf_buf *b, const char *k, uint32_t v) {
  key(b, k, 4);
  put_u32(b, v);
}
static void kv_bool(gguf_buf *b, const char *k, bool v) {
  key(b, k, 7);
  unsigned char c = v;
  put(b, &c, 1);
}
static void kv_strings(gguf_buf *b, const char *k, const char *const *v, int n) {
  key(b, k, 9);
  put_u32(b, 8);
  put_u64(b, (uint64_t)n);
  for (int i = 0; i < n; i++) put_str(b, v[i]);
}
static void kv_f32s(gguf_buf *b, const char *k, const float *v, int n) {
  key(b, k, 9);
  put_u32(b, 6);
  put_u64(b, (uint64_t)n);
  put(b, v, (size_t)n * 4);
}
static void kv_i32s(gguf_buf *b, const char *k, const int32_t *v, int n) {
  key(b, k, 9);
  put_u32(b, 5);
  put_u64(b, (uint64_t)n);
  put(b, v, (size_t)n * 4);
}

/* Writes header + metadata to a temp file; returns its path (static). */
static const char *write_gguf(gguf_buf *b, const char *name) {
  static char path[600];
  snprintf(path, sizeof path, "%s/%s.gguf", test_tmpdir(), name);
  FILE *f = fopen(path, "wb");
  if (!f) return path;
  uint32_t version = 3;
  uint64_t tensors = 0;
  fwrite("GGUF", 1, 4, f);
  fwrite(&version, 4, 1, f);
  fwrite(&tensors, 8, 1, f);
  fwrite(&b->kv_count, 8, 1, f);
  fwrite(b->p, 1, b->n, f);
  fclose(f);
  free(b->p);
  *b = (gguf_buf){0};
  return path;
}

static ag_status load_status(const char *path, ag_tokenizer **out) {
  ag_tokenizer *t = NULL;
  ag_status st = ag_tok_load(path, &t);
  if (out)
    *out = t;
  else
    ag_tok_free(t);
  return st;
}

static bool encodes_to(const ag_tokenizer *t, const char *text, unsigned flags,
                       const int32_t *expected, int n) {
  ag_tok_ids ids = {0};
  bool ok = ag_tok_encode(t, text, strlen(text), flags, &ids) == AG_OK && ids.count == n;
  for (int i = 0; ok && i < n; i++) ok = ids.ids[i] == expected[i];
  if (!ok) {
    fprintf(stderr, "  \"%s\" ->", text);
    for (int64_t i = 0; i < ids.count; i++) fprintf(stderr, " %d", ids.ids[i]);
    fprintf(stderr, "\n");
  }
  ag_tok_ids_free(&ids);
  return ok;
}

#define ENCODES(t, text, flags, ...)                                                               \
  do {                                                                                             \
    static const int32_t want_[] = {__VA_ARGS__};                                                  \
    CHECK(encodes_to(t, text, flags, want_, (int)(sizeof want_ / sizeof *want_)));                 \
  } while (0)

/* Byte-level: "Ġ" is the space byte. */
static const char *const bpe_tokens[] = {
    "a", "b", "c", "\xc4\xa0", "ab", "\304\240ab", "<|endoftext|>", "abc", "1", "2", "3", "12"};
static const char *const bpe_merges[] = {"a b", "\xc4\xa0 ab", "ab c", "1 2"};

static void gpt2_vocab(gguf_buf *b, const char *pre, int n_merges) {
  kv_string(b, "tokenizer.ggml.model", "gpt2");
  if (pre) kv_string(b, "tokenizer.ggml.pre", pre);
  kv_strings(b, "tokenizer.ggml.tokens", bpe_tokens, 12);
  int32_t types[12] = {1, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1};
  kv_i32s(b, "tokenizer.ggml.token_type", types, 12);
  kv_strings(b, "tokenizer.ggml.merges", bpe_merges, n_merges);
  kv_u32(b, "tokenizer.ggml.eos_token_id", 6);
}

TEST(byte_level_gguf_vocabulary_merges_by_rank) {
  gguf_buf b = {0};
  gpt2_vocab(&b, "gpt-2", 4);
  ag_tokenizer *t = NULL;
  CHECK_OK(load_status(write_gguf(&b, "gpt2"), &t));
  if (!t) return;
  ENCODES(t, "ab ab", 0, 4, 5);
  ENCODES(t, "abc", 0, 7);
  ENCODES(t, "abc<|endoftext|>c", 0, 7, 6, 2);
  /* as text, none of its characters is in this vocabulary (and there is no <unk>) */
  CHECK(encodes_to(t, "<|endoftext|>", AG_TOK_SPLIT_SPECIAL, NULL, 0));
  ENCODES(t, "123", 0, 11, 10); /* gpt-2 keeps digit runs together */
  CHECK(ag_tok_special_id(t, AG_TOK_EOS) == 6 && ag_tok_special_id(t, AG_TOK_BOS) == 11);
  CHECK(strcmp(ag_tok_pre_name(t), "gpt-2") == 0);
  ag_tok_free(t);
  /* the same vocabulary with llama.cpp's starcoder splitting: single digits */
  gpt2_vocab(&b, "starcoder", 4);
  CHECK_OK(load_status(write_gguf(&b, "starcoder"), &t));
  if (t) ENCODES(t, "123", 0, 8, 9, 10);
  ag_tok_free(t);
}

TEST(llama3_vocabularies_take_whole_words_before_merging) {
  /* "abc" is a token, but the only merge is b+c: llama.cpp's llama-bpe
   * (ignore_merges) takes the word whole, gpt-2 merges it to a, bc */
  static const char *const tokens[] = {"a", "b", "c", "bc", "abc"};
  static const char *const merges[] = {"b c"};
  ag_tokenizer *t[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    gguf_buf b = {0};
    kv_string(&b, "tokenizer.ggml.model", "gpt2");
    kv_string(&b, "tokenizer.ggml.pre", k ? "llama-bpe" : "gpt-2");
    kv_strings(&b, "tokenizer.ggml.tokens", tokens, 5);
    kv_strings(&b, "tokenizer.ggml.merges", merges, 1);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 0);
    CHECK_OK(load_status(write_gguf(&b, k ? "llama3" : "gpt2b"), &t[k]));
  }
  if (t[0]) ENCODES(t[0], "abc", 0, 0, 3);
  if (t[1]) {
    ENCODES(t[1], "abc", 0, 4);
    ENCODES(t[1], "abc", AG_TOK_ADD_SPECIAL, 0, 4); /* llama.cpp adds BOS for llama-bpe */
  }
  ag_tok_free(t[0]);
  ag_tok_free(t[1]);
}

TEST(long_words_encode_without_quadratic_rescans) {
  /* One word of n bytes: a merge loop that rescans the word for every merge
   * takes O(n^2) (~10^10 steps here) and would not finish in time. */
  ag_tokenizer *g = NULL, *s = NULL;
  CHECK_OK(load_status(VOCABS "ggml-vocab-gpt-2.gguf", &g));
  CHECK_OK(load_status(VOCABS "ggml-vocab-llama-spm.gguf", &s));
  size_t n = (size_t)test_scaled(200000, 20000);
  char *text = malloc(n + 1);
  uint64_t state = 5;
  for (size_t i = 0; text && i < n; i++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    text[i] = (char)('a' + (state >> 33) % 8);
  }
  for (int k = 0; text && k < 2; k++) {
    ag_tokenizer *t = k ? s : g;
    if (!t) continue;
    ag_tok_ids ids = {0};
    double start = ag_time_seconds();
    CHECK_OK(ag_tok_encode(t, text, n, 0, &ids));
    double seconds = ag_time_seconds() - start;
    CHECK_MSG(seconds < 5.0, "%zu bytes took %.2f s", n, seconds);
    CHECK(ids.count > 0 && ids.count < (int64_t)n);
    ag_tok_ids_free(&ids);
  }
  free(text);
  ag_tok_free(g);
  ag_tok_free(s);
}

TEST(sentencepiece_gguf_merges_by_score) {
  static const char *const tokens[] = {"<unk>", "<s>", "</s>",          "<0x41>", "\xe2\x96\x81",
                                       "a",     "b",   "\342\226\201a", "ab"};
  int32_t types[] = {2, 3, 3, 6, 1, 1, 1, 1, 1};
  /* two score tables: "ab" preferred, then "▁a" preferred */
  float prefer_ab[] = {0, 0, 0, 0, -1, -2, -2, -1.0f, -0.5f};
  float prefer_sa[] = {0, 0, 0, 0, -1, -2, -2, -0.5f, -1.0f};
  for (int k = 0; k < 2; k++) {
    gguf_buf b = {0};
    kv_string(&b, "tokenizer.ggml.model", "llama");
    kv_strings(&b, "tokenizer.ggml.tokens", tokens, 9);
    kv_f32s(&b, "tokenizer.ggml.scores", k ? prefer_sa : prefer_ab, 9);
    kv_i32s(&b, "tokenizer.ggml.token_type", types, 9);
    if (k) { /* BOS is added by default; this file asks for EOS instead */
      kv_bool(&b, "tokenizer.ggml.add_bos_token", false);
      kv_bool(&b, "tokenizer.ggml.add_eos_token", true);
    }
    ag_tokenizer *t = NULL;
    CHECK_OK(load_status(write_gguf(&b, "spm"), &t));
    if (!t) continue;
    if (k == 0) {
      ENCODES(t, "ab", 0, 4, 8);
      ENCODES(t, "ab", AG_TOK_ADD_SPECIAL, 1, 4, 8);
    } else {
      ENCODES(t, "ab", 0, 7, 6);
      ENCODES(t, "ab", AG_TOK_ADD_SPECIAL, 7, 6, 2);
    }
    ENCODES(t, "A", 0, 4, 3);    /* "A" is missing: its byte token <0x41> */
    ENCODES(t, "\xc3", 0, 4, 0); /* no <0xC3> either: <unk> */
    ag_tok_text out = {0};
    int32_t ids[] = {1, 7, 6, 4, 3};
    CHECK_OK(ag_tok_decode(t, ids, 5, AG_TOK_SKIP_SPECIAL, &out));
    CHECK(out.size == 4 && memcmp(out.data, "ab A", 4) == 0);
    ag_tok_text_free(&out);
    ag_tok_free(t);
  }
}

TEST(tiny_llama2_model_has_the_llama2_vocabulary) {
  ag_tokenizer *a = NULL, *b = NULL;
  CHECK_OK(load_status("../shared/data/models/llama-2-tiny-random.gguf", &a));
  CHECK_OK(load_status(VOCABS "ggml-vocab-llama-spm.gguf", &b));
  if (a && b) {
    static const char *const texts[] = {"Hello world", " leading space", "tabs\tand\nlines",
                                        "\xe2\x98\x83 1234"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
      ag_tok_ids x = {0}, y = {0};
      CHECK_OK(ag_tok_encode(a, texts[i], strlen(texts[i]), AG_TOK_ADD_SPECIAL, &x));
      CHECK_OK(ag_tok_encode(b, texts[i], strlen(texts[i]), AG_TOK_ADD_SPECIAL, &y));
      CHECK(x.count > 1 && x.count == y.count && x.ids[0] == 1 &&
            memcmp(x.ids, y.ids, (size_t)x.count * sizeof *x.ids) == 0);
      ag_tok_ids_free(&x);
      ag_tok_ids_free(&y);
    }
  }
  ag_tok_free(a);
  ag_tok_free(b);
}

/* GGUF byte-level vocabulary -> tokenizer.json -> the same ids on every
 * llama.cpp vector. */
static int converted_vectors_failing(const char *name) {
  char path[512], json[600];
  snprintf(path, sizeof path, VOCABS "%s.gguf", name);
  snprintf(json, sizeof json, "%s/%s.json", test_tmpdir(), name);
  ag_tokenizer *g = NULL, *j = NULL;
  int failed = 0;
  if (ag_tok_load(path, &g) || ag_tok_save_json(g, json) || ag_tok_load(json, &j)) {
    fprintf(stderr, "%s: %s\n", name, ag_error_message());
    ag_tok_free(g);
    ag_tok_free(j);
    return 1;
  }
  char *inp = NULL;
  size_t n = 0;
  snprintf(path, sizeof path, VOCABS "%s.gguf.inp", name);
  if (ag_read_file(path, &inp, &n)) failed++;
  const char *sep = "\n__ggml_vocab_test__\n";
  for (const char *p = inp; p && p < inp + n;) {
    const char *end = strstr(p, sep);
    size_t len = end ? (size_t)(end - p) : strlen(p);
    ag_tok_ids a = {0}, b = {0};
    ag_tok_encode(g, p, len, 0, &a);
    ag_tok_encode(j, p, len, 0, &b);
    if (a.count != b.count || (a.count && memcmp(a.ids, b.ids, (size_t)a.count * sizeof *a.ids))) {
      failed++;
      fprintf(stderr, "%s: \"%.*s\" differs after conversion\n", name, (int)len, p);
    }
    ag_tok_ids_free(&a);
    ag_tok_ids_free(&b);
    p = end ? end + strlen(sep) : inp + n;
  }
  free(inp);
  ag_tok_free(g);
  ag_tok_free(j);
  return failed;
}

TEST(gguf_vocabularies_convert_to_tokenizer_json) {
  CHECK(converted_vectors_failing("ggml-vocab-gpt-2") == 0);
  CHECK(converted_vectors_failing("ggml-vocab-falcon") == 0);
  ag_tokenizer *t = NULL;
  CHECK_OK(load_status(VOCABS "ggml-vocab-llama-spm.gguf", &t));
  char json[600];
  snprintf(json, sizeof json, "%s/spm.json", test_tmpdir());
  if (t) CHECK(ag_tok_save_json(t, json) == AG_ERR_UNSUPPORTED);
  ag_tok_free(t);
}

TEST(bad_gguf_vocabularies_fail_clearly) {
  gguf_buf b = {0};
  kv_string(&b, "tokenizer.ggml.model", "bert");
  kv_strings(&b, "tokenizer.ggml.tokens", bpe_tokens, 3);
  CHECK(load_status(write_gguf(&b, "bert"), NULL) == AG_ERR_UNSUPPORTED);
  CHECK(strstr(ag_error_message(), "bert") != NULL);

  gpt2_vocab(&b, "no-such-pre", 4);
  CHECK(load_status(write_gguf(&b, "pre"), NULL) == AG_ERR_UNSUPPORTED);
  CHECK(strstr(ag_error_message(), "no-such-pre") != NULL);

  kv_string(&b, "general.name", "no tokenizer at all");
  CHECK(load_status(write_gguf(&b, "empty"), NULL) != AG_OK);
  CHECK(strstr(ag_error_message(), "tokenizer.ggml.model") != NULL);

  kv_string(&b, "tokenizer.ggml.model", "gpt2");
  kv_strings(&b, "tokenizer.ggml.tokens", bpe_tokens, 12);
  CHECK(load_status(write_gguf(&b, "nomerges"), NULL) != AG_OK); /* gpt2 needs merges */

  kv_string(&b, "tokenizer.ggml.model", "gpt2");
  kv_string(&b, "tokenizer.ggml.pre", "gpt-2");
  kv_strings(&b, "tokenizer.ggml.tokens", bpe_tokens, 12);
  int32_t types[3] = {1, 1, 1};
  kv_i32s(&b, "tokenizer.ggml.token_type", types, 3); /* not one per token */
  kv_strings(&b, "tokenizer.ggml.merges", bpe_merges, 4);
  CHECK(load_status(write_gguf(&b, "types"), NULL) != AG_OK);

  static const char *const bad_merges[] = {"ab"};
  kv_string(&b, "tokenizer.ggml.model", "gpt2");
  kv_strings(&b, "tokenizer.ggml.tokens", bpe_tokens, 12);
  kv_strings(&b, "tokenizer.ggml.merges", bad_merges, 1);
  CHECK(load_status(write_gguf(&b, "merges"), NULL) == AG_ERR_FORMAT);

  kv_string(&b, "tokenizer.ggml.model", "llama");
  kv_strings(&b, "tokenizer.ggml.tokens", bpe_tokens, 12);
  kv_strings(&b, "tokenizer.ggml.scores", bpe_tokens, 12); /* strings, not floats */
  CHECK(load_status(write_gguf(&b, "scores"), NULL) == AG_ERR_FORMAT);

  /* an out-of-range special id is ignored, as llama.cpp does */
  gpt2_vocab(&b, "gpt-2", 4);
  kv_u32(&b, "tokenizer.ggml.bos_token_id", 1000);
  ag_tokenizer *t = NULL;
  CHECK_OK(load_status(write_gguf(&b, "bos"), &t));
  if (t) CHECK(ag_tok_special_id(t, AG_TOK_BOS) == 11);
  ag_tok_free(t);
}

TEST(truncated_gguf_vocabularies_never_crash) {
  char *data = NULL;
  size_t n = 0;
  CHECK_OK(ag_read_file(VOCABS "ggml-vocab-gpt-2.gguf", &data, &n));
  if (!data) return;
  char path[600];
  snprintf(path, sizeof path, "%s/cut.gguf", test_tmpdir());
  long cuts = test_scaled(24, 8);
  for (long k = 0; k < cuts; k++) {
    /* dense near the start (header, first keys), then spread over the file */
    size_t cut = k < cuts / 2 ? (size_t)k * 37 : n * (size_t)k / (size_t)cuts;
    FILE *f = fopen(path, "wb");
    if (!f) break;
    fwrite(data, 1, cut, f);
    fclose(f);
    CHECK_MSG(load_status(path, NULL) != AG_OK, "cut at %zu loaded", cut);
  }
  free(data);
}

int main(void) {
  RUN(byte_level_gguf_vocabulary_merges_by_rank);
  RUN(llama3_vocabularies_take_whole_words_before_merging);
  RUN(long_words_encode_without_quadratic_rescans);
  RUN(sentencepiece_gguf_merges_by_score);
  RUN(tiny_llama2_model_has_the_llama2_vocabulary);
  RUN(gguf_vocabularies_convert_to_tokenizer_json);
  RUN(bad_gguf_vocabularies_fail_clearly);
  RUN(truncated_gguf_vocabularies_never_crash);
  TEST_MAIN_END();
}
