/* The transformer: gradients of the whole model against finite differences
 * (both families), KV-cache decoding against full recomputation for a batch
 * of sequences of different lengths, layer hooks, and overfitting a tiny
 * corpus. */
#include "agora/optim.h"
#include "agora/transformer.h"
#include "gradcheck.h"
#include "test.h"

/* Tiny models: Llama with GQA, q/k/v biases (Qwen2) and an untied head;
 * GPT-2 with everything it has. Weights drawn wide enough that every
 * nonlinearity matters. */
static ag_transformer *tiny_model(ag_transformer_arch arch, uint64_t seed) {
  ag_transformer_config c = arch == AG_ARCH_GPT2 ? ag_transformer_gpt2_config(13, 8, 2, 2, 16)
                                                 : ag_transformer_llama_config(13, 8, 2, 2, 1, 16);
  c.intermediate_size = 12;
  if (arch == AG_ARCH_LLAMA) {
    c.qkv_bias = true;
    c.tie_embeddings = false;
    c.rope.theta = 100.0f; /* a short context: make the rotations turn */
  }
  ag_transformer *m = NULL;
  if (ag_transformer_create(&c, &m)) {
    fprintf(stderr, "create: %s\n", ag_error_message());
    return NULL;
  }
  ag_params *p = ag_transformer_params(m);
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int64_t i = 0; i < p->total; i++) p->data[i] = ag_rng_uniform(&rng) - 0.5f;
  for (int i = 0; i < p->count; i++)
    if (strstr(p->tensors[i]->name, "norm") || strstr(p->tensors[i]->name, "ln_"))
      if (strstr(p->tensors[i]->name, "weight"))
        for (int64_t j = 0; j < p->tensors[i]->numel; j++) p->tensors[i]->data[j] += 1.0f;
  return m;
}

typedef struct model_ctx {
  ag_transformer *model;
  const int32_t *ids;
  int64_t B, T;
} model_ctx;

static ag_tensor *f_model(ag_tape *t, ag_tensor **in, void *ctx) {
  model_ctx *c = ctx;
  return ag_transformer_forward(t, c->model, c->ids, c->B, c->T);
}

static void gradcheck_model(ag_transformer_arch arch, const char *label) {
  ag_transformer *m = tiny_model(arch, 11);
  if (!m) {
    CHECK(m != NULL);
    return;
  }
  int32_t ids[] = {1, 5, 7, 2, 12, 0, 3, 3, 9, 4};
  model_ctx ctx = {m, ids, 2, 5};
  ag_params *p = ag_transformer_params(m);
  double eps = 3e-3; /* wide weights curve the loss: a small step */
  CHECK(gradcheck(label, f_model, p->tensors, p->count, &ctx, eps, 3e-3, 3e-2) == 0);
  ag_transformer_destroy(m);
}

TEST(llama_gradients_match_finite_differences) { gradcheck_model(AG_ARCH_LLAMA, "llama"); }
TEST(gpt2_gradients_match_finite_differences) { gradcheck_model(AG_ARCH_GPT2, "gpt2"); }

/* Logits (V) of the last token of ids (n), recomputed from scratch. */
static void full_logits(ag_transformer *m, const int32_t *ids, int64_t n, float *out) {
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *y = ag_transformer_forward(t, m, ids, 1, n);
  int64_t V = ag_transformer_config_of(m)->vocab_size;
  if (y)
    memcpy(out, y->data + (n - 1) * V, (size_t)V * sizeof(float));
  else
    fprintf(stderr, "forward: %s\n", ag_tape_error(t));
  ag_tape_destroy(t);
}

static double max_diff(const float *a, const float *b, int64_t n) {
  double d = 0;
  for (int64_t i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i]));
  return d;
}

static void cache_matches_recomputation(ag_transformer_arch arch) {
  ag_transformer *m = tiny_model(arch, 21);
  if (!m) {
    CHECK(m != NULL);
    return;
  }
  const int64_t V = 13;
  /* Two sequences: a prompt of 5 and one of 3 (padded), then 4 tokens each;
   * sequence 1 sits out step 2 (count 0). */
  int32_t seq[2][12] = {{1, 4, 9, 2, 7}, {3, 11, 6}};
  int64_t len[2] = {5, 3};
  ag_kv_cache *cache = NULL;
  CHECK_OK(ag_kv_cache_create(m, 2, 12, &cache));
  if (!cache) return;
  int32_t prompt[2 * 5] = {1, 4, 9, 2, 7, 3, 11, 6, 0, 0};
  int32_t counts[2] = {5, 3};
  const float *logits = NULL;
  /* every row of the prefill */
  CHECK_OK(ag_transformer_decode(m, cache, prompt, 5, counts, AG_LOGITS_ALL, &logits));
  float want[13];
  for (int b = 0; logits && b < 2; b++)
    for (int64_t i = 0; i < len[b]; i++) {
      full_logits(m, seq[b], i + 1, want);
      CHECK_MSG(max_diff(logits + (b * 5 + i) * V, want, V) < 1e-5, "prefill b %d row %lld", b,
                (long long)i);
    }
  CHECK(ag_kv_cache_length(cache, 0) == 5 && ag_kv_cache_length(cache, 1) == 3);
  for (int step = 0; step < 4; step++) {
    int32_t next[2] = {(int32_t)((step * 5 + 2) % V), (int32_t)((step * 3 + 8) % V)};
    int32_t step_counts[2] = {1, step == 2 ? 0 : 1};
    CHECK_OK(ag_transformer_decode(m, cache, next, 1, step_counts, AG_LOGITS_LAST, &logits));
    if (!logits) break;
    for (int b = 0; b < 2; b++) {
      if (!step_counts[b]) {
        CHECK(logits[b * V] == 0.0f);
        continue;
      }
      seq[b][len[b]++] = next[b];
      full_logits(m, seq[b], len[b], want);
      double d = max_diff(logits + b * V, want, V);
      CHECK_MSG(d < 1e-5, "step %d sequence %d: cached and full logits differ by %g", step, b, d);
    }
  }
  CHECK(ag_kv_cache_length(cache, 0) == 9 && ag_kv_cache_length(cache, 1) == 6);
  /* clearing one sequence restarts it at position 0 */
  ag_kv_cache_clear(cache, 1);
  int32_t again[2] = {0, 3};
  int32_t only1[2] = {0, 1};
  CHECK_OK(ag_transformer_decode(m, cache, again, 1, only1, AG_LOGITS_LAST, &logits));
  full_logits(m, &again[1], 1, want);
  if (logits) CHECK(max_diff(logits + V, want, V) < 1e-5);
  /* overflowing the capacity is an error, not a write past the buffer */
  int32_t many[2 * 8] = {0};
  CHECK(ag_transformer_decode(m, cache, many, 8, NULL, AG_LOGITS_LAST, &logits) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "capacity") != NULL);
  int32_t bad[2] = {99, 1};
  CHECK(ag_transformer_decode(m, cache, bad, 1, NULL, AG_LOGITS_LAST, &logits) == AG_ERR_INVALID);
  ag_kv_cache_destroy(cache);
  ag_transformer_destroy(m);
}

TEST(llama_kv_cache_matches_full_recomputation) { cache_matches_recomputation(AG_ARCH_LLAMA); }
TEST(gpt2_kv_cache_matches_full_recomputation) { cache_matches_recomputation(AG_ARCH_GPT2); }

static void count_linear(void *user, const ag_layer_event *ev) {
  if (ev->kind == AG_LAYER_LINEAR) (*(int *)user)++;
}

TEST(every_projection_fires_the_layer_hook) {
  ag_transformer *m = tiny_model(AG_ARCH_LLAMA, 3);
  if (!m) return;
  ag_tape *t = ag_tape_create();
  int events = 0;
  ag_tape_set_layer_hook(t, count_linear, &events);
  int32_t ids[] = {1, 2, 3, 4}, targets[] = {2, 3, 4, -1};
  ag_tensor *loss = ag_transformer_loss(t, m, ids, targets, NULL, 1, 4);
  CHECK(loss != NULL);
  if (loss) CHECK_OK(ag_backward(t, loss));
  CHECK(events == 2 * 7 + 1); /* q k v o gate up down per layer, and the head */
  ag_tape_destroy(t);
  ag_transformer_destroy(m);
}

TEST(loss_masks_weight_tokens) {
  ag_transformer *m = tiny_model(AG_ARCH_GPT2, 4);
  if (!m) return;
  ag_tape *t = ag_tape_create();
  int32_t ids[] = {1, 2, 3, 4, 5, 6}, targets[] = {2, 3, 4, 5, 6, 7};
  float weights[] = {0, 1, 1, 0, 0, 1};
  ag_tensor *a = ag_transformer_loss(t, m, ids, targets, weights, 2, 3);
  int32_t masked[] = {-1, 3, 4, -1, -1, 7};
  ag_tensor *b = ag_transformer_loss(t, m, ids, masked, NULL, 2, 3);
  CHECK(a && b);
  if (a && b) CHECK_NEAR(a->data[0], b->data[0], 1e-6);
  ag_tape_destroy(t);
  ag_transformer_destroy(m);
}

TEST(config_errors_name_the_field) {
  ag_transformer_config c = ag_transformer_llama_config(100, 64, 2, 6, 4, 128);
  ag_transformer *m = NULL;
  CHECK(ag_transformer_create(&c, &m) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "num_kv_heads") != NULL);
  c = ag_transformer_llama_config(0, 64, 2, 4, 4, 128);
  CHECK(ag_transformer_create(&c, &m) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "vocab_size") != NULL);
  c = ag_transformer_llama_config(100, 64, 2, 4, 4, 128);
  CHECK_OK(ag_transformer_create(&c, &m));
  if (m) {
    CHECK(ag_transformer_trainable(m));
    CHECK_OK(ag_transformer_check_vocab(m, 100));
    CHECK(ag_transformer_check_vocab(m, 101) == AG_ERR_INVALID);
    CHECK(strstr(ag_error_message(), "101") != NULL);
  }
  ag_transformer_destroy(m);
}

/* A repeated sentence, character-level: the model must memorise it. */
static void overfit(ag_transformer_arch arch) {
  const char *text = "a small model learns this sentence by heart. ";
  int64_t n = (int64_t)strlen(text);
  int32_t V = 0;
  int32_t ids_of[256];
  for (int i = 0; i < 256; i++) ids_of[i] = -1;
  for (int64_t i = 0; i < n; i++)
    if (ids_of[(unsigned char)text[i]] < 0) {
      ids_of[(unsigned char)text[i]] = V++;
    }
  ag_transformer_config c = arch == AG_ARCH_GPT2 ? ag_transformer_gpt2_config(V, 32, 2, 2, 64)
                                                 : ag_transformer_llama_config(V, 32, 2, 4, 2, 64);
  ag_transformer *m = NULL;
  CHECK_OK(ag_transformer_create(&c, &m));
  if (!m) return;
  ag_transformer_init(m, 1);
  ag_optim *opt = NULL;
  ag_optim_config oc = ag_optim_adamw_defaults(1e-2f);
  oc.weight_decay = 0.0f;
  CHECK_OK(ag_optim_create(ag_transformer_params(m), &oc, &opt));
  const int64_t B = 4, T = 32;
  int32_t ids[4 * 32], targets[4 * 32];
  /* The first characters of a window starting mid-sentence are ambiguous
   * ("s" begins "small" and "sentence"): only later ones are scored. */
  float weights[4 * 32];
  for (int64_t i = 0; i < B * T; i++) weights[i] = i % T < 8 ? 0.0f : 1.0f;
  ag_tape *t = ag_tape_create();
  float loss_value = 1e9f;
  int steps = (int)test_scaled(300, 100);
  /* A model this small runs faster on one thread than on a busy machine's several. */
  int threads = ag_threads_get();
  ag_threads_set(1);
  for (int step = 0; step < steps && opt; step++) {
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < T; i++) {
        int64_t at = (step * 7 + b * 11 + i) % n;
        ids[b * T + i] = ids_of[(unsigned char)text[at]];
        targets[b * T + i] = ids_of[(unsigned char)text[(at + 1) % n]];
      }
    ag_tape_reset(t);
    ag_params_zero_grad(ag_transformer_params(m));
    ag_tensor *loss = ag_transformer_loss(t, m, ids, targets, weights, B, T);
    if (!loss) {
      fprintf(stderr, "loss: %s\n", ag_tape_error(t));
      break;
    }
    loss_value = loss->data[0];
    if (ag_backward(t, loss)) break;
    ag_clip_grad_norm(ag_transformer_params(m), 1.0f);
    if (ag_optim_step(opt, 1e-2f * (1.0f - (float)step / (float)steps))) break; /* linear decay */
  }
  ag_threads_set(threads);
  fprintf(stderr, "  %d steps, final loss %.4f\n", steps, loss_value);
  CHECK_MSG(loss_value < (test_scale() < 1.0 ? 0.5f : 0.02f), "final loss %g", loss_value);
  ag_tape_destroy(t);
  ag_optim_destroy(opt);
  ag_transformer_destroy(m);
}

TEST(llama_overfits_a_tiny_corpus) { overfit(AG_ARCH_LLAMA); }
TEST(gpt2_overfits_a_tiny_corpus) { overfit(AG_ARCH_GPT2); }

int main(void) {
  (void)gradcheck_random; /* a gradcheck.h helper this file does not need */
  RUN(llama_gradients_match_finite_differences);
  RUN(gpt2_gradients_match_finite_differences);
  RUN(llama_kv_cache_matches_full_recomputation);
  RUN(gpt2_kv_cache_matches_full_recomputation);
  RUN(every_projection_fires_the_layer_hook);
  RUN(loss_masks_weight_tokens);
  RUN(config_errors_name_the_field);
  RUN(llama_overfits_a_tiny_corpus);
  RUN(gpt2_overfits_a_tiny_corpus);
  TEST_MAIN_END();
}
