/* GPT-2 from GGUF files: tests/lm/gpt2_gguf_reference.py writes a tiny
 * random GPT-2 as llama.cpp's converter writes GPT-2 (fused attn_qkv,
 * learned positions, LayerNorm and biases, output = a copy of token_embd,
 * the BPE vocabulary with pre "gpt-2"), the same weights as a Hugging Face
 * folder, and float64 logits computed by numpy from each file's bytes.
 * Checked: metadata -> config; logits (whole sequence and token by token
 * through the KV cache) against numpy's, for an F32 file and one of F16,
 * BF16 and Q8_0 tensors; the same logits and greedy text as the HF folder;
 * a file without output.weight; the vocabulary (ids as a plain GPT-2 BPE
 * gives them, and as tokenizer.json does); and the errors of broken files. */
#include "agora/generate.h"
#include "agora/gguf_model.h"
#include "agora/hf_model.h"
#include "test.h"

#define SCRIPT "tests/lm/gpt2_gguf_reference.py"
#define V      269 /* 256 byte symbols, 12 merges, <|endoftext|> */
#define EOT    268

static const int32_t IDS[] = {EOT, 83, 257, 261, 264, 258, 220, 68, 262, 5, 200, 267};
#define T ((int64_t)(sizeof IDS / sizeof IDS[0]))

/* The reference files' folder, written once; NULL if python could not run. */
static const char *reference(void) {
  static char dir[600];
  static int state = 0; /* 0: not yet, 1: written, -1: failed */
  if (state == 0) {
    snprintf(dir, sizeof dir, "%s/gpt2", test_tmpdir());
    char ids[256] = "", cmd[2000];
    for (int64_t i = 0; i < T; i++)
      snprintf(ids + strlen(ids), sizeof ids - strlen(ids), i ? ",%d" : "%d", (int)IDS[i]);
    snprintf(
        cmd, sizeof cmd,
        "mkdir -p '%s' && OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 %s '%s' %s",
        dir, SCRIPT, dir, ids);
    state = system(cmd) == 0 ? 1 : -1;
    if (state < 0) fprintf(stderr, "reference files failed: %s\n", cmd);
  }
  CHECK(state == 1);
  return state == 1 ? dir : NULL;
}

static const char *ref_path(const char *name) {
  static char path[4][700];
  static int next = 0;
  const char *dir = reference();
  if (!dir) return NULL;
  char *p = path[next++ % 4];
  snprintf(p, 700, "%s/%s", dir, name);
  return p;
}

/* numpy's logits (T, V) from ref-NAME.bin, malloc'd. */
static float *numpy_logits(const char *name) {
  char file[64];
  snprintf(file, sizeof file, "ref-%s.bin", name);
  const char *path = ref_path(file);
  char *data = NULL;
  size_t n = 0;
  if (!path || ag_read_file(path, &data, &n) || n != (size_t)(T * V) * sizeof(float)) {
    CHECK_MSG(false, "no reference logits %s", file);
    free(data);
    return NULL;
  }
  return (float *)data;
}

/* Logits (T, V) of IDS, malloc'd. */
static float *logits_of(ag_transformer *m) {
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *y = ag_transformer_forward(t, m, IDS, 1, T);
  float *out = NULL;
  if (y) {
    out = malloc((size_t)y->numel * sizeof(float));
    memcpy(out, y->data, (size_t)y->numel * sizeof(float));
  } else {
    fprintf(stderr, "forward: %s\n", ag_tape_error(t));
  }
  ag_tape_destroy(t);
  return out;
}

static double max_diff(const float *a, const float *b, int64_t n) {
  if (!a || !b) return INFINITY;
  double d = 0;
  for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
  return d;
}

static double largest(const float *a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; a && i < n; i++) m = fmax(m, fabs(a[i]));
  return m;
}

TEST(gpt2_config_comes_from_the_metadata) {
  const char *path = ref_path("gpt2-f32.gguf");
  if (!path) return;
  ag_gguf *f = NULL;
  CHECK_OK(ag_gguf_open(path, &f));
  if (!f) return;
  ag_transformer_config c;
  CHECK_OK(ag_gguf_model_config(f, &c));
  CHECK(c.arch == AG_ARCH_GPT2 && c.vocab_size == V && c.hidden_size == 32 &&
        c.intermediate_size == 128 && c.num_layers == 2 && c.num_heads == 4 &&
        c.num_kv_heads == 4 && c.head_dim == 8 && c.max_positions == 16);
  CHECK(c.norm_eps == 1e-5f && c.tie_embeddings);
  ag_gguf_close(f);
}

/* Whole-sequence and KV-cache logits of a GGUF file against numpy's. */
static void check_against_numpy(const char *file, const char *ref, bool trainable) {
  float *want = numpy_logits(ref);
  const char *path = ref_path(file);
  ag_transformer *m = NULL;
  if (path) CHECK_OK(ag_gguf_model_load(path, trainable, &m));
  if (!m || !want) {
    ag_transformer_destroy(m);
    free(want);
    return;
  }
  CHECK(ag_transformer_trainable(m) == trainable);
  float *got = logits_of(m);
  double scale = largest(want, T * V), d = max_diff(got, want, T * V);
  /* float32 against float64: a few 1e-7 of the largest logit. The weights
   * (std 0.2-0.5) make every tensor matter: q, k and v in another order, a
   * transposed weight or a missing bias moves logits by 1e-2 of it or more. */
  CHECK_MSG(d <= 1e-5 * scale, "%s: logits differ from numpy's by %g (largest %g)", file, d, scale);
  ag_kv_cache *cache = NULL;
  CHECK_OK(ag_kv_cache_create(m, 1, T, &cache));
  double step = 0;
  for (int64_t i = 0; cache && i < T; i++) {
    const float *row = NULL;
    CHECK_OK(ag_transformer_decode(m, cache, &IDS[i], 1, NULL, AG_LOGITS_LAST, &row));
    step = fmax(step, max_diff(row, want + i * V, V));
  }
  CHECK_MSG(step <= 1e-5 * scale, "%s: decoded logits differ from numpy's by %g", file, step);
  ag_kv_cache_destroy(cache);
  free(got);
  free(want);
  ag_transformer_destroy(m);
}

TEST(f32_gpt2_logits_match_numpy_whole_and_through_the_kv_cache) {
  check_against_numpy("gpt2-f32.gguf", "f32", false);
  check_against_numpy("gpt2-f32.gguf", "f32", true);
}

TEST(f16_bf16_and_q8_0_tensors_match_numpy_on_the_same_bytes) {
  check_against_numpy("gpt2-mixed.gguf", "mixed", false);
  /* and the quantised file is another network: the check above can tell */
  float *a = numpy_logits("f32"), *b = numpy_logits("mixed");
  double scale = largest(a, T * V), d = max_diff(a, b, T * V);
  CHECK_MSG(d > 1e-3 * scale, "quantisation moved the logits by only %g", d);
  free(a);
  free(b);
}

TEST(gguf_and_hugging_face_folder_of_the_same_weights_agree) {
  const char *gguf = ref_path("gpt2-f32.gguf"), *tied = ref_path("gpt2-tied.gguf");
  const char *folder = ref_path("hf");
  if (!gguf || !folder || !tied) return;
  ag_lm *a = NULL, *b = NULL;
  CHECK_OK(ag_lm_open(gguf, &a));
  CHECK_OK(ag_lm_open(folder, &b));
  ag_transformer *c = NULL;
  CHECK_OK(ag_gguf_model_load(tied, false, &c));
  if (!a || !b || !c) {
    ag_lm_close(a);
    ag_lm_close(b);
    ag_transformer_destroy(c);
    return;
  }
  CHECK(a->format == AG_LM_GGUF && b->format == AG_LM_HF);
  CHECK(ag_transformer_config_of(b->model)->arch == AG_ARCH_GPT2);
  float *x = logits_of(a->model), *y = logits_of(b->model), *z = logits_of(c);
  /* the same floats in the same layout: the same logits */
  CHECK_MSG(max_diff(x, y, T * V) == 0, "GGUF and HF logits differ by %g", max_diff(x, y, T * V));
  CHECK(max_diff(x, z, T * V) == 0);
  free(x);
  free(y);
  free(z);
  /* greedy text, token for token */
  ag_generate_options o = ag_generate_defaults();
  o.sampling.temperature = 0;
  o.max_new_tokens = 10;
  o.ignore_eos = true;
  const char *prompt = "the cat";
  ag_generation ga = {0}, gb = {0};
  CHECK_OK(ag_generate(a, &prompt, 1, &o, &ga));
  CHECK_OK(ag_generate(b, &prompt, 1, &o, &gb));
  CHECK(ga.prompt_tokens == 3 && ga.prompt_tokens == gb.prompt_tokens); /* "t" "he" " cat" */
  CHECK(ga.tokens.count == 10 && ga.tokens.count == gb.tokens.count &&
        !memcmp(ga.tokens.ids, gb.tokens.ids, (size_t)ga.tokens.count * sizeof(int32_t)));
  ag_generation_free(&ga, 1);
  ag_generation_free(&gb, 1);
  ag_lm_close(a);
  ag_lm_close(b);
  ag_transformer_destroy(c);
}

/* Space-separated ids of a file (at most cap). */
static int64_t read_ids(const char *path, int32_t *ids, int64_t cap) {
  char *text = NULL;
  size_t n = 0;
  if (!path || ag_read_file(path, &text, &n)) return -1;
  int64_t count = 0;
  char *end = text;
  for (char *s = text; count < cap; s = end) {
    long v = strtol(s, &end, 10);
    if (end == s) break;
    ids[count++] = (int32_t)v;
  }
  free(text);
  return count;
}

TEST(the_gpt2_vocabulary_in_the_file_loads_with_its_pre_tokenizer) {
  const char *gguf = ref_path("gpt2-f32.gguf"), *folder = ref_path("hf");
  if (!gguf || !folder) return;
  ag_lm *lm = NULL, *hf = NULL;
  CHECK_OK(ag_lm_open(gguf, &lm));
  CHECK_OK(ag_lm_open(folder, &hf));
  if (!lm || !hf) {
    ag_lm_close(lm);
    ag_lm_close(hf);
    return;
  }
  CHECK(ag_tok_vocab_size(lm->tokenizer) == V && ag_tok_vocab_size(hf->tokenizer) == V);
  CHECK(lm->bos_id == EOT && !lm->add_bos && ag_lm_is_eos(lm, EOT));
  CHECK(hf->bos_id == EOT && !hf->add_bos && ag_lm_is_eos(hf, EOT));
  CHECK(lm->context_length == 16 && lm->chat_template == NULL);
  for (int k = 0; k < 3; k++) {
    char name[32];
    snprintf(name, sizeof name, "text-%d.txt", k);
    char *text = NULL;
    size_t bytes = 0;
    CHECK_OK(ag_read_file(ref_path(name), &text, &bytes));
    snprintf(name, sizeof name, "ids-%d.txt", k);
    int32_t want[64];
    int64_t n = read_ids(ref_path(name), want, 64);
    ag_tok_ids a = {0}, b = {0};
    CHECK_OK(ag_tok_encode(lm->tokenizer, text, bytes, 0, &a));
    CHECK_OK(ag_tok_encode(hf->tokenizer, text, bytes, 0, &b));
    CHECK_MSG(n > 0 && a.count == n && !memcmp(a.ids, want, (size_t)n * sizeof(int32_t)),
              "text %d: %lld ids from the GGUF vocabulary, %lld from the reference", k,
              (long long)a.count, (long long)n);
    CHECK(b.count == a.count && !memcmp(a.ids, b.ids, (size_t)a.count * sizeof(int32_t)));
    /* and back to the same bytes */
    ag_tok_text back = {0};
    CHECK_OK(ag_tok_decode(lm->tokenizer, a.ids, a.count, 0, &back));
    CHECK(back.size == bytes && !memcmp(back.data, text, bytes));
    ag_tok_text_free(&back);
    ag_tok_ids_free(&a);
    ag_tok_ids_free(&b);
    free(text);
  }
  /* " the" and " then" are merged words: one id each */
  ag_tok_ids ids = {0};
  CHECK_OK(ag_tok_encode(lm->tokenizer, " the then", 9, 0, &ids));
  CHECK(ids.count == 2 && ids.ids[0] == 258 && ids.ids[1] == 266);
  ag_tok_ids_free(&ids);
  ag_lm_close(lm);
  ag_lm_close(hf);
}

TEST(broken_gpt2_files_are_clear_errors) {
  static const struct {
    const char *file, *says[2];
  } cases[] = {
      {"bad-output.gguf", {"output.weight", "token_embd.weight"}},
      {"bad-positions.gguf", {"position_embd.weight", "context_length"}},
      {"bad-kv.gguf", {"head_count_kv", "head_count"}},
      {"bad-bias.gguf", {"blk.1.attn_qkv.bias", "bad-bias.gguf"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *path = ref_path(cases[i].file);
    if (!path) return;
    for (int trainable = 0; trainable < 2; trainable++) {
      ag_transformer *m = NULL;
      CHECK_MSG(ag_gguf_model_load(path, trainable, &m) != AG_OK && !m, "%s loaded", cases[i].file);
      const char *msg = ag_error_message();
      CHECK_MSG(strstr(msg, cases[i].says[0]) && strstr(msg, cases[i].says[1]) &&
                    !strchr(msg, '\n'),
                "%s: %s", cases[i].file, msg);
    }
    ag_lm *lm = NULL;
    CHECK(ag_lm_open(path, &lm) != AG_OK && !lm && strstr(ag_error_message(), cases[i].file));
  }
}

int main(void) {
  RUN(gpt2_config_comes_from_the_metadata);
  RUN(f32_gpt2_logits_match_numpy_whole_and_through_the_kv_cache);
  RUN(f16_bf16_and_q8_0_tensors_match_numpy_on_the_same_bytes);
  RUN(gguf_and_hugging_face_folder_of_the_same_weights_agree);
  RUN(the_gpt2_vocabulary_in_the_file_loads_with_its_pre_tokenizer);
  RUN(broken_gpt2_files_are_clear_errors);
  TEST_MAIN_END();
}
