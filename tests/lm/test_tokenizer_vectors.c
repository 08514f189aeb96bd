/* llama.cpp's tokenizer test vectors: for each GGUF vocabulary in
 * ../shared/data/tokenizers, every string of NAME.gguf.inp (separated by
 * "\n__ggml_vocab_test__\n") must encode to the ids on the same line of
 * NAME.gguf.out (no BOS/EOS), and decode back to the same bytes. The
 * expected ids come from the reference Hugging Face tokenizers. */
#include "agora/tokenizer.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

#define DATA_DIR  "../shared/data/tokenizers/"
#define SEPARATOR "\n__ggml_vocab_test__\n"

static int total_vectors = 0, total_passed = 0;

static int parse_ids(const char *line, size_t n, int32_t *ids, int max) {
  int k = 0;
  char buf[32];
  for (size_t i = 0; i < n;) {
    while (i < n && line[i] == ' ') i++;
    size_t j = i;
    while (j < n && line[j] != ' ') j++;
    if (j > i && k < max && j - i < sizeof buf) {
      memcpy(buf, line + i, j - i);
      buf[j - i] = '\0';
      ids[k++] = (int32_t)strtol(buf, NULL, 10);
    }
    i = j;
  }
  return k;
}

/* Runs one vocabulary's vectors; returns the number that failed. */
static int run_vectors(const char *name) {
  char path[512], inp_path[512], out_path[512];
  snprintf(path, sizeof path, DATA_DIR "%s.gguf", name);
  snprintf(inp_path, sizeof inp_path, DATA_DIR "%s.gguf.inp", name);
  snprintf(out_path, sizeof out_path, DATA_DIR "%s.gguf.out", name);
  ag_tokenizer *t = NULL;
  char *inp = NULL, *out = NULL;
  size_t inp_n = 0, out_n = 0;
  if (ag_tok_load(path, &t) || ag_read_file(inp_path, &inp, &inp_n) ||
      ag_read_file(out_path, &out, &out_n)) {
    fprintf(stderr, "%s: %s\n", name, ag_error_message());
    ag_tok_free(t), free(inp), free(out);
    return 1;
  }
  int failed = 0, count = 0;
  const char *p = inp, *end = inp + inp_n, *line = out, *out_end = out + out_n;
  while (p < end) {
    const char *sep = strstr(p, SEPARATOR);
    size_t len = sep ? (size_t)(sep - p) : (size_t)(end - p);
    const char *eol = memchr(line, '\n', (size_t)(out_end - line));
    if (!eol) eol = out_end;
    int32_t expected[512];
    int n_expected = parse_ids(line, (size_t)(eol - line), expected, 512);
    ag_tok_ids ids = {0};
    ag_tok_text back = {0};
    bool ok = ag_tok_encode(t, p, len, 0, &ids) == AG_OK && ids.count == n_expected;
    for (int i = 0; ok && i < n_expected; i++) ok = ids.ids[i] == expected[i];
    bool round_trip = ag_tok_decode(t, ids.ids, ids.count, 0, &back) == AG_OK && back.size == len &&
                      memcmp(back.data, p, len) == 0;
    if (!ok || !round_trip) {
      failed++;
      fprintf(stderr, "%s: vector %d \"%.*s\": %s\n  expected:", name, count, (int)len, p,
              ok ? "decodes differently" : "wrong ids");
      for (int i = 0; i < n_expected; i++) fprintf(stderr, " %d", expected[i]);
      fprintf(stderr, "\n  got:     ");
      for (int64_t i = 0; i < ids.count; i++) fprintf(stderr, " %d", ids.ids[i]);
      fprintf(stderr, "\n  decoded: \"%.*s\"\n", (int)back.size, back.data ? back.data : "");
    }
    ag_tok_ids_free(&ids);
    ag_tok_text_free(&back);
    count++;
    p = sep ? sep + strlen(SEPARATOR) : end;
    line = eol < out_end ? eol + 1 : out_end;
  }
  fprintf(stderr, "%s: %d/%d vectors pass\n", name, count - failed, count);
  total_vectors += count;
  total_passed += count - failed;
  ag_tok_free(t);
  free(inp);
  free(out);
  return failed + (count == 0);
}

TEST(gpt2_vectors_match) { CHECK(run_vectors("ggml-vocab-gpt-2") == 0); }
TEST(falcon_vectors_match) { CHECK(run_vectors("ggml-vocab-falcon") == 0); }
TEST(llama_spm_vectors_match) { CHECK(run_vectors("ggml-vocab-llama-spm") == 0); }

int main(void) {
  RUN(gpt2_vectors_match);
  RUN(falcon_vectors_match);
  RUN(llama_spm_vectors_match);
  fprintf(stderr, "vectors: %d/%d pass\n", total_passed, total_vectors);
  TEST_MAIN_END();
}
