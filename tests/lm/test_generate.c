/* Sampling and generation: each sampler stage against its definition,
 * seeded determinism, top-k 1 = greedy, stop strings and ids, streaming,
 * batched = one at a time, context overflow, the real stories260K model
 * reproducing llama2.c's greedy text byte for byte, perplexity against the
 * training loss, and ag_lm_open's errors. */
#include "agora/generate.h"
#include "agora/hf_model.h"
#include "test.h"

#include <unistd.h>

#define STORIES_DIR      "../shared/data/models/stories260K"
#define STORIES_EXPECTED STORIES_DIR "/expected-greedy-200.txt"

static ag_lm *stories(void) {
  static bool warned = false;
  char path[256];
  snprintf(path, sizeof path, "%s/model.safetensors", STORIES_DIR);
  if (!ag_file_exists(path)) {
    if (!warned) fprintf(stderr, "  note: %s not found; skipped\n", STORIES_DIR);
    warned = true;
    return NULL;
  }
  ag_lm *lm = NULL;
  CHECK_OK(ag_lm_open(STORIES_DIR, &lm));
  return lm;
}

static ag_generate_options greedy(int64_t tokens) {
  ag_generate_options o = ag_generate_defaults();
  o.sampling.temperature = 0;
  o.max_new_tokens = tokens;
  return o;
}

/* One prompt's generation; the caller frees it. */
static ag_generation run(ag_lm *lm, const char *prompt, const ag_generate_options *o) {
  ag_generation g = {0};
  CHECK_OK(ag_generate(lm, &prompt, 1, o, &g));
  return g;
}

static bool same_tokens(const ag_generation *a, const ag_generation *b) {
  return a->tokens.count == b->tokens.count &&
         (a->tokens.count == 0 ||
          !memcmp(a->tokens.ids, b->tokens.ids, (size_t)a->tokens.count * sizeof(int32_t)));
}

static bool text_is(const ag_generation *g, const char *want, size_t n) {
  return g->text.size == n && (n == 0 || !memcmp(g->text.data, want, n));
}

/* ---- the sampler, stage by stage ------------------------------------------------------ */

TEST(greedy_takes_the_highest_logit_and_the_lower_id_on_ties) {
  ag_sampling s = ag_sampling_defaults();
  s.temperature = 0;
  ag_sampler *sm = NULL;
  CHECK_OK(ag_sampler_create(&s, 5, &sm));
  if (!sm) return;
  float a[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
  CHECK(ag_sampler_next(sm, a, NULL, 0, NULL) == 1);
  float b[5] = {NAN, -5.0f, -4.0f, -4.5f, -9.0f};
  CHECK(ag_sampler_next(sm, b, NULL, 0, NULL) == 2);
  ag_sampler_destroy(sm);
}

TEST(repetition_penalty_divides_positive_and_multiplies_negative_logits_once) {
  ag_sampling s = ag_sampling_defaults();
  s.temperature = 0;
  s.repetition_penalty = 2.0f;
  ag_sampler *sm = NULL;
  CHECK_OK(ag_sampler_create(&s, 4, &sm));
  if (!sm) return;
  float x[4] = {3.0f, -1.0f, 2.0f, 0.5f};
  int32_t seen[] = {0, 1, 0, 0}; /* id 0 seen three times: penalised once */
  CHECK(ag_sampler_next(sm, x, seen, 4, NULL) == 2);
  CHECK(x[0] == 1.5f && x[1] == -2.0f && x[2] == 2.0f && x[3] == 0.5f);
  ag_sampler_destroy(sm);
}

/* Draws n tokens from fixed logits; counts[V]. */
static void draw(const ag_sampling *s, const float *logits, int64_t V, int n, uint64_t seed,
                 int *counts) {
  ag_sampler *sm = NULL;
  CHECK_OK(ag_sampler_create(s, V, &sm));
  if (!sm) return;
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  float *x = malloc((size_t)V * sizeof(float));
  memset(counts, 0, (size_t)V * sizeof(int));
  for (int i = 0; i < n; i++) {
    memcpy(x, logits, (size_t)V * sizeof(float));
    int32_t id = ag_sampler_next(sm, x, NULL, 0, &rng);
    CHECK(id >= 0 && id < V);
    if (id >= 0 && id < V) counts[id]++;
  }
  free(x);
  ag_sampler_destroy(sm);
}

TEST(sampling_follows_the_softmax_and_each_filter_keeps_what_it_should) {
  /* probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1 */
  const float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
  int n = (int)test_scaled(20000, 4000), counts[4];
  ag_sampling s = ag_sampling_defaults();
  draw(&s, logits, 4, n, 1, counts);
  const double p[4] = {0.5, 0.3, 0.15, 0.05};
  for (int i = 0; i < 4; i++)
    CHECK_MSG(fabs(counts[i] / (double)n - p[i]) < 0.02, "id %d drawn %d / %d", i, counts[i], n);
  /* top-p 0.7: 0.5 < 0.7 so the second is kept, 0.8 >= 0.7 so no more */
  s.top_p = 0.7f;
  draw(&s, logits, 4, n, 2, counts);
  CHECK(counts[2] == 0 && counts[3] == 0);
  CHECK(fabs(counts[0] / (double)n - 0.5 / 0.8) < 0.02);
  /* top-k 3 */
  s = ag_sampling_defaults();
  s.top_k = 3;
  draw(&s, logits, 4, n, 3, counts);
  CHECK(counts[3] == 0 && counts[2] > 0);
  CHECK(fabs(counts[2] / (double)n - 0.15 / 0.95) < 0.02);
  /* min-p 0.35: keeps p >= 0.175 */
  s = ag_sampling_defaults();
  s.min_p = 0.35f;
  draw(&s, logits, 4, n, 4, counts);
  CHECK(counts[2] == 0 && counts[3] == 0 && counts[1] > 0);
  /* temperature 0.5 squares the odds: 0.25 : 0.09 : 0.0225 : 0.0025 */
  s = ag_sampling_defaults();
  s.temperature = 0.5f;
  draw(&s, logits, 4, n, 5, counts);
  CHECK(fabs(counts[1] / (double)n - 0.09 / 0.365) < 0.02);
}

TEST(top_k_1_is_greedy_and_ties_go_to_the_lower_id) {
  ag_sampling s = ag_sampling_defaults();
  s.top_k = 1;
  s.temperature = 1.5f;
  int64_t V = 1000;
  ag_sampler *sm = NULL;
  CHECK_OK(ag_sampler_create(&s, V, &sm));
  if (!sm) return;
  ag_rng data, rng;
  ag_rng_seed(&data, 11);
  ag_rng_seed(&rng, 12);
  float *x = malloc((size_t)V * sizeof(float));
  for (int trial = 0; trial < 50; trial++) {
    for (int64_t i = 0; i < V; i++) x[i] = (float)(ag_rng_below(&data, 64)); /* many ties */
    int32_t want = 0;
    for (int64_t i = 1; i < V; i++)
      if (x[i] > x[want]) want = (int32_t)i;
    CHECK(ag_sampler_next(sm, x, NULL, 0, &rng) == want);
  }
  free(x);
  ag_sampler_destroy(sm);
}

TEST(sampling_settings_out_of_range_are_refused_naming_the_field) {
  ag_sampling s = ag_sampling_defaults();
  CHECK_OK(ag_sampling_check(&s));
  s.top_p = 0;
  CHECK(ag_sampling_check(&s) == AG_ERR_INVALID && strstr(ag_error_message(), "top_p"));
  s = ag_sampling_defaults();
  s.temperature = -1;
  CHECK(ag_sampling_check(&s) == AG_ERR_INVALID && strstr(ag_error_message(), "temperature"));
  s = ag_sampling_defaults();
  s.repetition_penalty = 0;
  CHECK(ag_sampling_check(&s) == AG_ERR_INVALID && strstr(ag_error_message(), "repetition"));
  s = ag_sampling_defaults();
  s.min_p = 2;
  CHECK(ag_sampling_check(&s) == AG_ERR_INVALID && strstr(ag_error_message(), "min_p"));
}

/* ---- generation with stories260K -------------------------------------------------------- */

TEST(stories260k_greedy_200_tokens_is_llama2c_text_byte_for_byte) {
  ag_lm *lm = stories();
  if (!lm) return;
  CHECK(lm->add_bos && lm->bos_id == 1 && ag_lm_is_eos(lm, 2) && lm->context_length == 512);
  char *want = NULL;
  size_t want_bytes = 0;
  CHECK_OK(ag_read_file(STORIES_EXPECTED, &want, &want_bytes));
  ag_generate_options o = greedy(200);
  double start = ag_time_seconds();
  ag_generation g = run(lm, "", &o);
  double seconds = ag_time_seconds() - start;
  CHECK(g.tokens.count == 200 && g.finish == AG_FINISH_LENGTH && g.prompt_tokens == 1);
  CHECK_MSG(want && text_is(&g, want, want_bytes), "got %zu bytes: %.80s...", g.text.size,
            g.text.data ? g.text.data : "");
  fprintf(stderr, "  stories260K greedy: %lld tokens in %.3f s (%.0f tokens/s)\n",
          (long long)g.tokens.count, seconds, (double)g.tokens.count / seconds);
  /* the text is what the tokenizer decodes the tokens to */
  ag_tok_text decoded = {0};
  CHECK_OK(
      ag_tok_decode(lm->tokenizer, g.tokens.ids, g.tokens.count, AG_TOK_SKIP_SPECIAL, &decoded));
  CHECK(decoded.size == g.text.size && !memcmp(decoded.data, g.text.data, g.text.size));
  ag_tok_text_free(&decoded);
  ag_generation_free(&g, 1);
  free(want);
  ag_lm_close(lm);
}

TEST(greedy_is_exactly_reproducible_and_a_prompt_continues_with_its_space) {
  ag_lm *lm = stories();
  if (!lm) return;
  ag_generate_options o = greedy(60);
  ag_generation a = run(lm, "Once upon a time", &o), b = run(lm, "Once upon a time", &o);
  CHECK(a.tokens.count == 60 && same_tokens(&a, &b) && text_is(&a, b.text.data, b.text.size));
  /* The continuation of "Once upon a time" in the expected text starts ", there". */
  CHECK(a.text.size > 7 && !memcmp(a.text.data, ", there", 7));
  ag_generation_free(&a, 1);
  ag_generation_free(&b, 1);
  o.max_new_tokens = 10;
  a = run(lm, "Lily went", &o);
  CHECK_MSG(a.text.size > 0 && a.text.data[0] == ' ', "'%s' should start with a space",
            a.text.data ? a.text.data : "");
  ag_generation_free(&a, 1);
  ag_lm_close(lm);
}

TEST(sampling_with_a_seed_is_deterministic_and_seeds_differ) {
  ag_lm *lm = stories();
  if (!lm) return;
  ag_generate_options o = ag_generate_defaults();
  o.max_new_tokens = 60;
  o.sampling.temperature = 1.0f;
  o.sampling.top_p = 0.95f;
  o.sampling.repetition_penalty = 1.1f;
  o.seed = 7;
  ag_generation a = run(lm, "The dog", &o), b = run(lm, "The dog", &o);
  o.seed = 8;
  ag_generation c = run(lm, "The dog", &o);
  CHECK(a.tokens.count == 60 && same_tokens(&a, &b));
  CHECK(!same_tokens(&a, &c));
  ag_generation_free(&a, 1);
  ag_generation_free(&b, 1);
  ag_generation_free(&c, 1);
  ag_lm_close(lm);
}

TEST(top_k_1_generation_equals_greedy) {
  ag_lm *lm = stories();
  if (!lm) return;
  ag_generate_options g = greedy(80), k = ag_generate_defaults();
  k.max_new_tokens = 80;
  k.sampling.top_k = 1;
  k.sampling.temperature = 2.0f;
  k.seed = 99;
  ag_generation a = run(lm, "A big", &g), b = run(lm, "A big", &k);
  CHECK(same_tokens(&a, &b) && text_is(&a, b.text.data, b.text.size));
  ag_generation_free(&a, 1);
  ag_generation_free(&b, 1);
  ag_lm_close(lm);
}

typedef struct stream_log {
  ag_tok_text text;
  int pieces;
} stream_log;

static void collect(void *user, int64_t index, const char *bytes, size_t n) {
  stream_log *log = user;
  CHECK(index == 0 && n > 0);
  size_t need = log->text.size + n + 1;
  if (need > log->text.capacity) {
    log->text.capacity = need * 2;
    log->text.data = realloc(log->text.data, log->text.capacity);
  }
  memcpy(log->text.data + log->text.size, bytes, n);
  log->text.size += n;
  log->text.data[log->text.size] = '\0';
  log->pieces++;
}

TEST(stop_strings_end_generation_and_are_not_in_the_text_or_the_stream) {
  ag_lm *lm = stories();
  if (!lm) return;
  char *want = NULL;
  size_t want_bytes = 0;
  CHECK_OK(ag_read_file(STORIES_EXPECTED, &want, &want_bytes));
  if (!want) return;
  /* "Lily" first appears in "named Lily."; "y. Sh" spans three tokens. */
  const char *stops[] = {"Lily", "y. Sh", "\n"};
  for (int i = 0; i < 3; i++) {
    ag_generate_options o = greedy(200);
    stream_log log = {0};
    o.stop[0] = stops[i];
    o.stop[1] = "never appears";
    o.stop_count = 2;
    o.on_text = collect;
    o.user = &log;
    ag_generation g = run(lm, "", &o);
    size_t at = (size_t)(strstr(want, stops[i]) - want);
    CHECK_MSG(g.finish == AG_FINISH_STOP && text_is(&g, want, at), "stop '%s': got '%s'", stops[i],
              g.text.data ? g.text.data : "");
    CHECK(log.text.size == g.text.size &&
          (!g.text.size || !memcmp(log.text.data, g.text.data, g.text.size)));
    CHECK(log.pieces > 1);
    ag_tok_text_free(&log.text);
    ag_generation_free(&g, 1);
  }
  free(want);
  ag_lm_close(lm);
}

TEST(eos_and_stop_ids_end_generation_without_text) {
  ag_lm *lm = stories();
  if (!lm) return;
  ag_generate_options o = greedy(200);
  ag_generation full = run(lm, "", &o);
  if (full.tokens.count < 30) return;
  int32_t id = full.tokens.ids[20]; /* stop when this id is drawn */
  int64_t first = 0;
  while (full.tokens.ids[first] != id) first++;
  o.stop_ids[0] = id;
  o.stop_id_count = 1;
  ag_generation g = run(lm, "", &o);
  CHECK(g.finish == AG_FINISH_EOS && g.tokens.count == first + 1);
  ag_tok_text head = {0};
  CHECK_OK(ag_tok_decode(lm->tokenizer, full.tokens.ids, first, AG_TOK_SKIP_SPECIAL, &head));
  CHECK(text_is(&g, head.data, head.size));
  ag_generation_free(&g, 1);
  /* the same id as the model's EOS, then with ignore_eos */
  lm->eos_ids[lm->eos_count++] = id;
  o.stop_id_count = 0;
  g = run(lm, "", &o);
  CHECK(g.finish == AG_FINISH_EOS && g.tokens.count == first + 1 &&
        text_is(&g, head.data, head.size));
  ag_generation_free(&g, 1);
  o.ignore_eos = true;
  g = run(lm, "", &o);
  CHECK(g.finish == AG_FINISH_LENGTH && same_tokens(&g, &full));
  ag_generation_free(&g, 1);
  ag_tok_text_free(&head);
  ag_generation_free(&full, 1);
  ag_lm_close(lm);
}

TEST(batched_prompts_of_different_lengths_equal_one_at_a_time) {
  ag_lm *lm = stories();
  if (!lm) return;
  const char *prompts[] = {"Once upon a time, in a small town, there lived a boy", "Tom",
                           "The sun was shining and the birds"};
  for (int sampled = 0; sampled < 2; sampled++) {
    ag_generate_options o = greedy(50);
    if (sampled) {
      o.sampling = ag_sampling_defaults();
      o.sampling.top_k = 40;
      o.seed = 5;
    }
    ag_generation batch[3] = {0}, split[3] = {0};
    CHECK_OK(ag_generate(lm, prompts, 3, &o, batch));
    /* one at a time: prompt i is index i of the job */
    for (int i = 0; i < 3; i++) {
      ag_generate_options one = o;
      one.index_base = i;
      CHECK_OK(ag_generate(lm, &prompts[i], 1, &one, &split[i]));
    }
    for (int i = 0; i < 3; i++) {
      CHECK_MSG(same_tokens(&batch[i], &split[i]) &&
                    text_is(&batch[i], split[i].text.data, split[i].text.size),
                "sampled %d prompt %d:\n  batch '%s'\n  alone '%s'", sampled, i, batch[i].text.data,
                split[i].text.data);
      CHECK(batch[i].tokens.count == 50);
    }
    /* batches of two give the same again */
    ag_generation pairs[3] = {0};
    o.max_batch = 2;
    CHECK_OK(ag_generate(lm, prompts, 3, &o, pairs));
    for (int i = 0; i < 3; i++) CHECK(same_tokens(&pairs[i], &batch[i]));
    ag_generation_free(batch, 3);
    ag_generation_free(split, 3);
    ag_generation_free(pairs, 3);
  }
  ag_lm_close(lm);
}

/* A prompt of about 2 x words tokens (stories260K spells " dog" in two). */
static char *long_prompt(int words) {
  char *s = malloc((size_t)words * 6 + 1);
  s[0] = '\0';
  for (int i = 0; i < words; i++) strcat(s, i % 2 ? " cat" : " dog");
  return s;
}

TEST(a_prompt_longer_than_the_context_is_an_error_or_truncated) {
  ag_lm *lm = stories();
  if (!lm) return;
  char *text = long_prompt(300);
  ag_generate_options o = greedy(20);
  ag_generation g = {0};
  const char *p = text;
  ag_status st = ag_generate(lm, &p, 1, &o, &g);
  CHECK(st == AG_ERR_INVALID && strstr(ag_error_message(), "context") &&
        strstr(ag_error_message(), "512"));
  ag_generation_free(&g, 1);
  o.truncate = true;
  CHECK_OK(ag_generate(lm, &p, 1, &o, &g));
  CHECK(g.prompt_tokens == 512 - 20 && g.dropped_tokens > 0 && g.tokens.count == 20);
  ag_generation_free(&g, 1);
  /* a prompt that fits, with more new tokens than room: ends with the context */
  free(text);
  text = long_prompt(240);
  p = text;
  o = greedy(100);
  CHECK_OK(ag_generate(lm, &p, 1, &o, &g));
  CHECK(g.prompt_tokens > 412 && g.prompt_tokens < 512);
  CHECK(g.finish == AG_FINISH_CONTEXT && g.prompt_tokens + g.tokens.count == 513);
  ag_generation_free(&g, 1);
  free(text);
  ag_lm_close(lm);
}

/* ---- scoring ------------------------------------------------------------------------- */

TEST(score_equals_the_training_loss_and_windows_predict_every_token_once) {
  ag_lm *lm = stories();
  if (!lm) return;
  const char *text = "Once upon a time, there was a little girl named Lily. She loved to play.";
  ag_lm_score s = {0};
  CHECK_OK(ag_lm_score_text(lm, text, strlen(text), 0, &s));
  ag_tok_ids ids = {0};
  CHECK_OK(ag_lm_encode_prompt(lm, text, strlen(text), &ids));
  CHECK(s.tokens == ids.count - 1 && s.windows == 1 && s.bytes == (int64_t)strlen(text));
  /* the loss through a tape, as training computes it */
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  int64_t T = ids.count - 1;
  ag_tensor *loss = ag_transformer_loss(t, lm->model, ids.ids, ids.ids + 1, NULL, 1, T);
  CHECK(loss != NULL);
  if (loss) CHECK_NEAR(s.nll_sum / (double)s.tokens, loss->data[0], 1e-4);
  ag_tape_destroy(t);
  /* windows of 8 tokens overlapping by one */
  ag_lm_score w = {0};
  CHECK_OK(ag_lm_score_text(lm, text, strlen(text), 8, &w));
  CHECK(w.tokens == s.tokens && w.windows == (s.tokens + 6) / 7);
  CHECK(w.nll_sum > s.nll_sum); /* less context, worse predictions */
  ag_tok_ids_free(&ids);
  ag_lm_close(lm);
}

/* ---- opening models ----------------------------------------------------------------------- */

static void copy_file(const char *from, const char *to) {
  char *data = NULL;
  size_t n = 0;
  CHECK_OK(ag_read_file(from, &data, &n));
  if (data) CHECK_OK(ag_atomic_write(to, data, n));
  free(data);
}

TEST(opening_a_missing_or_broken_model_is_one_clear_error) {
  ag_lm *lm = NULL;
  CHECK(ag_lm_open("/no/such/model", &lm) == AG_ERR_NOT_FOUND && !lm);
  CHECK(strstr(ag_error_message(), "/no/such/model") && !strchr(ag_error_message(), '\n'));
  char path[600];
  snprintf(path, sizeof path, "%s/notes.txt", test_tmpdir());
  CHECK_OK(ag_atomic_write(path, "hello", 5));
  CHECK(ag_lm_open(path, &lm) == AG_ERR_FORMAT && strstr(ag_error_message(), "notes.txt"));
  /* an empty folder */
  snprintf(path, sizeof path, "%s/empty", test_tmpdir());
  CHECK_OK(ag_mkdir_p(path));
  CHECK(ag_lm_open(path, &lm) != AG_OK && !lm && strstr(ag_error_message(), "config.json"));
}

TEST(a_tokenizer_with_more_ids_than_embedding_rows_is_refused) {
  if (!ag_file_exists(STORIES_DIR "/tokenizer.json")) return;
  /* a 300-row model beside stories260K's 512-id tokenizer */
  ag_transformer_config c = ag_transformer_llama_config(300, 16, 1, 2, 2, 64);
  ag_transformer *m = NULL;
  CHECK_OK(ag_transformer_create(&c, &m));
  if (!m) return;
  char dir[600], path[700];
  snprintf(dir, sizeof dir, "%s/small", test_tmpdir());
  CHECK_OK(ag_hf_save(dir, m, NULL, AG_DTYPE_F32));
  ag_transformer_destroy(m);
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  copy_file(STORIES_DIR "/tokenizer.json", path);
  ag_lm *lm = NULL;
  CHECK(ag_lm_open(dir, &lm) == AG_ERR_INVALID && !lm);
  CHECK(strstr(ag_error_message(), "512") && strstr(ag_error_message(), "300"));
}

int main(void) {
  RUN(greedy_takes_the_highest_logit_and_the_lower_id_on_ties);
  RUN(repetition_penalty_divides_positive_and_multiplies_negative_logits_once);
  RUN(sampling_follows_the_softmax_and_each_filter_keeps_what_it_should);
  RUN(top_k_1_is_greedy_and_ties_go_to_the_lower_id);
  RUN(sampling_settings_out_of_range_are_refused_naming_the_field);
  RUN(stories260k_greedy_200_tokens_is_llama2c_text_byte_for_byte);
  RUN(greedy_is_exactly_reproducible_and_a_prompt_continues_with_its_space);
  RUN(sampling_with_a_seed_is_deterministic_and_seeds_differ);
  RUN(top_k_1_generation_equals_greedy);
  RUN(stop_strings_end_generation_and_are_not_in_the_text_or_the_stream);
  RUN(eos_and_stop_ids_end_generation_without_text);
  RUN(batched_prompts_of_different_lengths_equal_one_at_a_time);
  RUN(a_prompt_longer_than_the_context_is_an_error_or_truncated);
  RUN(score_equals_the_training_loss_and_windows_predict_every_token_once);
  RUN(opening_a_missing_or_broken_model_is_one_clear_error);
  RUN(a_tokenizer_with_more_ids_than_embedding_rows_is_refused);
  TEST_MAIN_END();
}
