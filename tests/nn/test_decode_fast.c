/* The tape-free decoding path (src/nn/decode_fast.c) against the tape path:
 * the same tokens decoded step by step through two caches, one with the fast
 * path and one with the tape path forced, give the same logits to rounding
 * for Llama (GQA, tied head), Qwen2 (q/k/v biases, untied head), Llama with
 * o/MLP biases and dynamic rope scaling, and GPT-2 shapes, batch 1 and 3,
 * with idle sequences; the threaded path equals the single-threaded one bit
 * for bit; and the cases the fast path leaves to the tape are named. With two
 * threads, Qwen2's single key/value head takes the split with a barrier
 * between q/k/v and attention, the others the split by key/value heads. */
#include "agora/transformer.h"
#include "nn/transformer_internal.h"
#include "test.h"

/* Sizes chosen off the kernel's widths: hidden 40 = 2 x 16 + 8 (masked
 * tail), vocabulary 101 (a last block of one row), head_dim 10. */
#define VOCAB  101
#define HIDDEN 40
#define MLP    72
#define LAYERS 2

typedef enum shape_kind { LLAMA_GQA, QWEN2, LLAMA_BIASES_DYNAMIC, GPT2 } shape_kind;

static ag_transformer *model_of(shape_kind kind, uint64_t seed) {
  ag_transformer_config c = kind == GPT2
                                ? ag_transformer_gpt2_config(VOCAB, HIDDEN, LAYERS, 4, 128)
                                : ag_transformer_llama_config(VOCAB, HIDDEN, LAYERS, 4, 2, 256);
  c.intermediate_size = MLP;
  if (kind != GPT2) c.rope.theta = 500.0f; /* short sequences: make the rotations turn */
  if (kind == QWEN2) {
    c.qkv_bias = true;
    c.tie_embeddings = false;
    c.num_kv_heads = 1;
  }
  if (kind == LLAMA_BIASES_DYNAMIC) {
    c.o_bias = c.mlp_bias = true;
    c.num_kv_heads = 4;
    c.rope.scaling = AG_ROPE_DYNAMIC;
    c.rope.factor = 2.0f;
    c.rope.original_max_positions = 16;
  }
  ag_transformer *m = NULL;
  if (ag_transformer_create(&c, &m)) {
    fprintf(stderr, "create: %s\n", ag_error_message());
    return NULL;
  }
  /* weights N(0, 1/fan-in): activations and attention scores of order 1
   * through every layer (softmax far from uniform), so rounding differences
   * stay rounding-sized while any real mismatch shows (a rotation one
   * position off gives 0.4-0.8) */
  ag_params *p = ag_transformer_params(m);
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int i = 0; i < p->count; i++) {
    ag_tensor *x = p->tensors[i];
    bool norm = strstr(x->name, "norm") || strstr(x->name, "ln_");
    float scale = x->ndim == 2 ? 1.0f / sqrtf((float)x->shape[1]) : 0.3f;
    for (int64_t j = 0; j < x->numel; j++)
      x->data[j] = (norm && strstr(x->name, "weight") ? 1.0f : 0.0f) + scale * ag_rng_normal(&rng);
  }
  return m;
}

/* max |a - b| / max(1, max |b|) over n values. */
static double rel_diff(const float *a, const float *b, int64_t n) {
  double d = 0, scale = 1;
  for (int64_t i = 0; i < n; i++) {
    d = fmax(d, fabs((double)a[i] - (double)b[i]));
    scale = fmax(scale, fabs((double)b[i]));
  }
  return d / scale;
}

/* Prompts of different lengths per sequence (prefill: the tape path for
 * both), then `steps` single-token steps through a fast-path cache and a
 * tape-path cache fed the same tokens; sequence 1 sits out every fifth step.
 * Returns the largest relative difference of the logits over all steps. */
static double fast_vs_tape(shape_kind kind, int64_t B, int steps, decode_path fast_path) {
  ag_transformer *m = model_of(kind, 7 + (uint64_t)kind);
  if (!m) return INFINITY;
  const int64_t V = VOCAB, T0 = 4;
  ag_kv_cache *fast = NULL, *tape = NULL;
  int64_t capacity = T0 + steps;
  CHECK_OK(ag_kv_cache_create(m, B, capacity, &fast));
  CHECK_OK(ag_kv_cache_create(m, B, capacity, &tape));
  double worst = 0;
  if (!fast || !tape) {
    worst = INFINITY;
    goto done;
  }
  int32_t prompt[3 * 4], counts[3], next[3];
  for (int64_t b = 0; b < B; b++) {
    counts[b] = (int32_t)(T0 - b); /* 4, 3, 2 tokens */
    for (int64_t i = 0; i < T0; i++) prompt[b * T0 + i] = (int32_t)((1 + 17 * b + 5 * i) % V);
  }
  const float *lf = NULL, *lt = NULL;
  ag_decode_path_set(fast_path);
  CHECK_OK(ag_transformer_decode(m, fast, prompt, T0, counts, AG_LOGITS_LAST, &lf));
  ag_decode_path_set(DECODE_TAPE);
  CHECK_OK(ag_transformer_decode(m, tape, prompt, T0, counts, AG_LOGITS_LAST, &lt));
  ag_rng rng;
  ag_rng_seed(&rng, 99);
  for (int s = 0; s < steps && lf && lt; s++) {
    for (int64_t b = 0; b < B; b++) {
      next[b] = (int32_t)ag_rng_below(&rng, (uint64_t)V);
      counts[b] = b == 1 && s % 5 == 4 ? 0 : 1;
    }
    ag_decode_path_set(fast_path);
    CHECK(ag_decode_fast_refusal(m, B, 1, counts, AG_LOGITS_LAST) == NULL);
    CHECK_OK(ag_transformer_decode(m, fast, next, 1, counts, AG_LOGITS_LAST, &lf));
    ag_decode_path_set(DECODE_TAPE);
    CHECK_OK(ag_transformer_decode(m, tape, next, 1, counts, AG_LOGITS_LAST, &lt));
    if (!lf || !lt) break;
    for (int64_t b = 0; b < B; b++) {
      if (!counts[b]) {
        for (int64_t v = 0; v < V; v++) CHECK(lf[b * V + v] == 0.0f);
        continue;
      }
      worst = fmax(worst, rel_diff(lf + b * V, lt + b * V, V));
    }
  }
  for (int64_t b = 0; b < B; b++) CHECK(ag_kv_cache_length(fast, b) == ag_kv_cache_length(tape, b));
done:
  ag_decode_path_set(DECODE_AUTO);
  ag_kv_cache_destroy(fast);
  ag_kv_cache_destroy(tape);
  ag_transformer_destroy(m);
  return worst;
}

static void check_shape(shape_kind kind, const char *label) {
  /* past 64 cached keys: the tape's attention walks keys in blocks of 64 */
  int steps = (int)test_scaled(80, 20);
  double worst = 0;
  for (int64_t B = 1; B <= 3; B += 2)
    for (int threaded = 0; threaded < 2; threaded++) {
      double d = fast_vs_tape(kind, B, steps, threaded ? DECODE_FAST_THREADED : DECODE_AUTO);
      CHECK_MSG(d < 1e-5, "%s batch %lld%s: fast and tape logits differ by %g (relative)", label,
                (long long)B, threaded ? " threaded" : "", d);
      worst = fmax(worst, d);
    }
  fprintf(stderr, "  %s: %d steps, largest relative difference %.2g\n", label, steps, worst);
}

TEST(llama_gqa_fast_path_matches_tape) { check_shape(LLAMA_GQA, "llama gqa"); }
TEST(qwen2_fast_path_matches_tape) { check_shape(QWEN2, "qwen2"); }
TEST(llama_biases_dynamic_rope_fast_path_matches_tape) {
  check_shape(LLAMA_BIASES_DYNAMIC, "llama biases + dynamic rope");
}
TEST(gpt2_fast_path_matches_tape) { check_shape(GPT2, "gpt2"); }

/* The AVX-512, AVX2 and portable kernels (those this CPU runs) all agree
 * with the tape; batch 3 also exercises the kernels' blocks of inputs. */
TEST(every_kernel_matches_tape) {
  static const struct {
    decode_kernel kernel;
    const char *name;
  } kernels[] = {{DECODE_KERNEL_AVX512, "avx512"},
                 {DECODE_KERNEL_AVX2, "avx2"},
                 {DECODE_KERNEL_PORTABLE, "portable"}};
  int steps = (int)test_scaled(40, 10);
  for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
    if (!ag_decode_kernel_set(kernels[k].kernel)) {
      fprintf(stderr, "  %s: not on this CPU\n", kernels[k].name);
      continue;
    }
    for (int64_t B = 1; B <= 3; B += 2) {
      double d = fmax(fast_vs_tape(QWEN2, B, steps, DECODE_FAST_THREADED),
                      fast_vs_tape(GPT2, B, steps, DECODE_AUTO));
      CHECK_MSG(d < 1e-5, "%s kernel, batch %lld: fast and tape logits differ by %g",
                kernels[k].name, (long long)B, d);
    }
  }
  CHECK(ag_decode_kernel_set(DECODE_KERNEL_AUTO));
}

/* Each output row is computed by one thread with the same code, so the
 * thread count cannot change a bit of the logits. */
TEST(fast_path_is_the_same_on_one_and_two_threads) {
  ag_transformer *m = model_of(QWEN2, 3);
  if (!m) {
    CHECK(m != NULL);
    return;
  }
  const int64_t B = 3, V = VOCAB, steps = 12;
  static float logits[2][12][3 * VOCAB];
  int saved = ag_threads_get();
  for (int run = 0; run < 2; run++) {
    ag_threads_set(run == 0 ? 1 : 2);
    ag_decode_path_set(DECODE_FAST_THREADED);
    ag_kv_cache *kv = NULL;
    CHECK_OK(ag_kv_cache_create(m, B, steps, &kv));
    for (int s = 0; kv && s < steps; s++) {
      int32_t ids[3] = {(int32_t)(s * 7 % V), (int32_t)(s * 11 % V), (int32_t)(s * 13 % V)};
      const float *l = NULL;
      CHECK_OK(ag_transformer_decode(m, kv, ids, 1, NULL, AG_LOGITS_LAST, &l));
      if (l) memcpy(logits[run][s], l, sizeof logits[run][s]);
    }
    ag_kv_cache_destroy(kv);
  }
  ag_threads_set(saved);
  ag_decode_path_set(DECODE_AUTO);
  CHECK(memcmp(logits[0], logits[1], sizeof logits[0]) == 0);
  ag_transformer_destroy(m);
}

static ag_tensor *scale_adapter(ag_tape *t, void *ctx, const ag_tensor *weight, int64_t row_begin,
                                int64_t row_end, ag_tensor *x, ag_tensor *y) {
  return ag_scale(t, y, 1.5f);
}

/* What the fast path leaves to the tape, and that the tape then runs it. */
TEST(fast_path_refuses_what_it_does_not_cover) {
  ag_transformer *m = model_of(LLAMA_GQA, 5);
  if (!m) {
    CHECK(m != NULL);
    return;
  }
  int32_t one[2] = {1, 1}, idle[2] = {1, 0};
  CHECK(ag_decode_fast_refusal(m, 2, 1, one, AG_LOGITS_LAST) == NULL);
  CHECK(ag_decode_fast_refusal(m, 2, 1, one, AG_LOGITS_ALL) == NULL);
  CHECK(ag_decode_fast_refusal(m, 2, 1, idle, AG_LOGITS_LAST) == NULL);
  CHECK(ag_decode_fast_refusal(m, 2, 2, one, AG_LOGITS_LAST) != NULL); /* prompts */
  CHECK(ag_decode_fast_refusal(m, 2, 1, idle, AG_LOGITS_ALL) != NULL); /* padding rows */
  ag_decode_path_set(DECODE_TAPE);
  CHECK(ag_decode_fast_refusal(m, 2, 1, one, AG_LOGITS_LAST) != NULL);
  ag_decode_path_set(DECODE_AUTO);
  /* an adapter acts on the tape: with one installed the step must see it */
  const float *l = NULL;
  float plain[VOCAB];
  ag_kv_cache *kv = NULL;
  CHECK_OK(ag_kv_cache_create(m, 1, 4, &kv));
  if (!kv) return;
  int32_t id = 3;
  CHECK_OK(ag_transformer_decode(m, kv, &id, 1, NULL, AG_LOGITS_LAST, &l));
  if (l) memcpy(plain, l, sizeof plain);
  ag_transformer_set_adapter(m, scale_adapter, NULL);
  CHECK(ag_decode_fast_refusal(m, 1, 1, NULL, AG_LOGITS_LAST) != NULL);
  ag_kv_cache_clear(kv, -1);
  CHECK_OK(ag_transformer_decode(m, kv, &id, 1, NULL, AG_LOGITS_LAST, &l));
  if (l) CHECK(rel_diff(l, plain, VOCAB) > 1e-3);
  ag_transformer_set_adapter(m, NULL, NULL);
  ag_kv_cache_destroy(kv);
  ag_transformer_destroy(m);
}

/* Bad steps fail the same way on the fast path: nothing written, the
 * lengths unchanged. */
TEST(fast_path_rejects_bad_steps) {
  ag_transformer *m = model_of(GPT2, 9);
  if (!m) {
    CHECK(m != NULL);
    return;
  }
  ag_kv_cache *kv = NULL;
  CHECK_OK(ag_kv_cache_create(m, 2, 2, &kv));
  if (!kv) return;
  const float *l = NULL;
  int32_t bad[2] = {1, VOCAB};
  CHECK(ag_transformer_decode(m, kv, bad, 1, NULL, AG_LOGITS_LAST, &l) == AG_ERR_INVALID);
  CHECK(ag_kv_cache_length(kv, 0) == 0 && ag_kv_cache_length(kv, 1) == 0);
  int32_t ok[2] = {1, 2};
  CHECK_OK(ag_transformer_decode(m, kv, ok, 1, NULL, AG_LOGITS_LAST, &l));
  CHECK_OK(ag_transformer_decode(m, kv, ok, 1, NULL, AG_LOGITS_LAST, &l));
  CHECK(ag_transformer_decode(m, kv, ok, 1, NULL, AG_LOGITS_LAST, &l) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "capacity") != NULL);
  CHECK(ag_kv_cache_length(kv, 0) == 2);
  ag_kv_cache_destroy(kv);
  ag_transformer_destroy(m);
}

int main(void) {
  RUN(llama_gqa_fast_path_matches_tape);
  RUN(qwen2_fast_path_matches_tape);
  RUN(llama_biases_dynamic_rope_fast_path_matches_tape);
  RUN(gpt2_fast_path_matches_tape);
  RUN(every_kernel_matches_tape);
  RUN(fast_path_is_the_same_on_one_and_two_threads);
  RUN(fast_path_refuses_what_it_does_not_cover);
  RUN(fast_path_rejects_bad_steps);
  TEST_MAIN_END();
}
