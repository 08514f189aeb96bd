/* Inference speed of random-weight llama models of llama2.c's stories15M and
 * stories110M shapes, F32, through the KV cache (ag_transformer_decode):
 *   - greedy batch-1 decoding: tokens/s over `tokens` steps after the first
 *     (as llama2.c's `run` times it; argmax sampling, nothing else),
 *   - prompt processing: one call with 64 tokens into an empty cache,
 *   - batch-8 greedy decoding: 8 sequences a step, tokens/s over all eight,
 *   - weight bytes streamed per token (every weight once: the tied LM head
 *     reads the whole embedding table) and the implied GB/s, beside the GB/s
 *     of a plain read of the same weight block with the same threads,
 *   - peak RSS (getrusage; the largest model so far when several run). The
 *     model is inference-only, as the GGUF loader makes it: no gradients.
 *
 * Usage: bench_lm_decode [s15m|s110m|all] [tokens] [repeats] [fast|tape] [b1]
 * (defaults all 256 3 fast; the best of `repeats` runs is reported). Single
 * tokens go through the tape-free path (src/nn/decode_fast.c) unless `tape`
 * forces the tape's ops, as before that path existed; `b1` measures batch-1
 * decoding only (quick side-by-side rounds). */
#include "agora/ops.h"
#include "agora/transformer.h"
#include "nn/transformer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct shape {
  const char *name;
  int64_t dim, hidden, layers, heads, vocab, seq;
} shape;

static const shape SHAPES[] = {{"s15m", 288, 768, 6, 6, 32000, 256},
                               {"s110m", 768, 2048, 12, 12, 32000, 1024}};

static double peak_rss_mb(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

static int32_t argmax(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return (int32_t)best;
}

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if (call) {                                                                                    \
      fprintf(stderr, "bench: %s\n", ag_error_message());                                          \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

/* Greedy decoding of `batch` sequences for `tokens` steps (the first step
 * untimed, as llama2.c does); returns tokens per second over all sequences. */
static double greedy(ag_transformer *m, ag_kv_cache *kv, int64_t batch, int tokens) {
  int64_t V = ag_transformer_config_of(m)->vocab_size;
  int32_t ids[8];
  for (int64_t b = 0; b < batch; b++) ids[b] = (int32_t)(1 + 7 * b); /* BOS and neighbours */
  ag_kv_cache_clear(kv, -1);
  const float *logits;
  double t0 = 0;
  for (int s = 0; s < tokens; s++) {
    if (s == 1) t0 = ag_time_seconds();
    CHECK(ag_transformer_decode(m, kv, ids, 1, NULL, AG_LOGITS_LAST, &logits));
    for (int64_t b = 0; b < batch; b++) ids[b] = argmax(logits + b * V, V);
  }
  return (double)batch * (tokens - 1) / (ag_time_seconds() - t0);
}

/* One call with `n` prompt tokens into an empty cache; tokens per second. */
static double prompt(ag_transformer *m, ag_kv_cache *kv, int n) {
  int32_t ids[512];
  for (int i = 0; i < n; i++) ids[i] = (int32_t)(1 + (i * 7919) % 31000);
  ag_kv_cache_clear(kv, -1);
  const float *logits;
  double t0 = ag_time_seconds();
  CHECK(ag_transformer_decode(m, kv, ids, n, NULL, AG_LOGITS_LAST, &logits));
  return n / (ag_time_seconds() - t0);
}

static volatile float sink;

/* GB/s of reading the weight block once with all threads (the ceiling for
 * batch-1 decoding, measured on the same pages the model uses): the best of
 * 5 trials of >= 0.25 s each. */
static double read_gbps(const float *w, int64_t n) {
  n -= n % 64;
  double best = 0;
  for (int trial = 0; trial < 5; trial++) {
    double t0 = ag_time_seconds(), dt;
    int passes = 0;
    do {
      float total = 0;
#pragma omp parallel
      {
        float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i += 64)
          for (int j = 0; j < 16; j++) {
            a0[j] += w[i + j];
            a1[j] += w[i + 16 + j];
            a2[j] += w[i + 32 + j];
            a3[j] += w[i + 48 + j];
          }
        float s = 0;
        for (int j = 0; j < 16; j++) s += a0[j] + a1[j] + a2[j] + a3[j];
#pragma omp atomic
        total += s;
      }
      sink = total;
      passes++;
    } while ((dt = ag_time_seconds() - t0) < 0.25);
    double g = 4.0 * (double)n * passes / dt / 1e9;
    best = g > best ? g : best;
  }
  return best;
}

/* An inference-only model as agora's GGUF loader makes one: weights in one
 * block the model owns, no gradient buffers; N(0, 0.02), norm weights 1. */
static ag_transformer *random_model(const ag_transformer_config *cfg, const float **weights,
                                    int64_t *floats_out) {
  ag_transformer *probe;
  CHECK(ag_transformer_create_external(cfg, NULL, NULL, &probe));
  int64_t floats = 0;
  ag_params *p = ag_transformer_params(probe);
  for (int i = 0; i < p->count; i++) floats += (p->tensors[i]->numel + 15) / 16 * 16;
  ag_transformer_destroy(probe);
  float *block = ag_alloc_large((size_t)floats * sizeof(float));
  if (!block) {
    fprintf(stderr, "bench: out of memory\n");
    exit(1);
  }
  ag_transformer *m;
  CHECK(ag_transformer_create_external(cfg, block, free, &m));
  p = ag_transformer_params(m);
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  int64_t offset = 0;
  for (int i = 0; i < p->count; i++) {
    ag_tensor *x = p->tensors[i];
    x->data = block + offset;
    offset += (x->numel + 15) / 16 * 16;
    for (int64_t j = 0; j < x->numel; j++)
      x->data[j] = x->ndim == 1 ? 1.0f : 0.02f * ag_rng_normal(&rng);
  }
  *weights = block;
  *floats_out = floats;
  return m;
}

static bool batch1_only; /* skip prompt processing and batch 8 */

static void bench(const shape *s, int tokens, int repeats) {
  ag_transformer_config cfg =
      ag_transformer_llama_config(s->vocab, s->dim, s->layers, s->heads, s->heads, s->seq);
  cfg.intermediate_size = s->hidden; /* llama2.c's hidden_dim */
  const float *weights;
  int64_t floats;
  ag_transformer *m = random_model(&cfg, &weights, &floats);
  double params = (double)ag_transformer_params(m)->total;
  int n = tokens < s->seq ? tokens : (int)s->seq;
  ag_kv_cache *kv1, *kv8;
  CHECK(ag_kv_cache_create(m, 1, s->seq, &kv1));
  double tg = 0, pp = 0, tg8 = 0;
  greedy(m, kv1, 1, 8 < n ? 8 : n); /* warm-up: page in weights, grow scratch */
  double bw = read_gbps(weights, floats);
  for (int r = 0; r < repeats; r++) {
    double x = greedy(m, kv1, 1, n);
    tg = x > tg ? x : tg;
    x = batch1_only ? 0 : prompt(m, kv1, 64);
    pp = x > pp ? x : pp;
  }
  double bw2 = read_gbps(weights, floats);
  bw = bw2 > bw ? bw2 : bw;
  double rss1 = peak_rss_mb(); /* batch 1: weights, one sequence's cache, scratch */
  CHECK(ag_kv_cache_create(m, 8, n, &kv8));
  for (int r = 0; r < repeats && !batch1_only; r++) {
    double x = greedy(m, kv8, 8, n);
    tg8 = x > tg8 ? x : tg8;
  }
  /* Per token every weight is read once; the KV cache adds 2 x layers x
   * position x dim floats (about position / 2 on average over a run). */
  double weight_bytes = 4.0 * params;
  double kv_bytes = 4.0 * 2 * (double)s->layers * (n / 2.0) * (double)s->dim;
  printf("%-6s dim %lld hidden %lld layers %lld heads %lld vocab %lld seq %lld  params %.1fM  "
         "threads %d  path %s\n",
         s->name, (long long)s->dim, (long long)s->hidden, (long long)s->layers,
         (long long)s->heads, (long long)s->vocab, (long long)s->seq, params / 1e6,
         ag_threads_get(), ag_decode_path_get() == DECODE_TAPE ? "tape" : "fast");
  printf("  batch 1 greedy: %7.1f tokens/s over %d tokens (best of %d)\n", tg, n - 1, repeats);
  if (!batch1_only) {
    printf("  prompt 64:      %7.1f tokens/s\n", pp);
    printf("  batch 8 greedy: %7.1f tokens/s (all sequences)\n", tg8);
  }
  double achieved = (weight_bytes + kv_bytes) * tg / 1e9;
  printf("  streamed/token: weights %.1f MB + KV %.1f MB (mean) -> %.1f GB/s at batch 1\n",
         weight_bytes / 1e6, kv_bytes / 1e6, achieved);
  printf("  reading the weights alone: %.1f GB/s -> decoding at %.0f%% of it\n", bw,
         100 * achieved / bw);
  printf("  peak RSS %.0f MB at batch 1, %.0f MB with the batch-8 cache\n", rss1, peak_rss_mb());
  ag_kv_cache_destroy(kv1);
  ag_kv_cache_destroy(kv8);
  ag_transformer_destroy(m);
}

int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "all";
  int tokens = argc > 2 ? atoi(argv[2]) : 256;
  int repeats = argc > 3 ? atoi(argv[3]) : 3;
  const char *path = argc > 4 ? argv[4] : "fast";
  batch1_only = argc > 5 && !strcmp(argv[5], "b1");
  if (tokens < 2 || repeats < 1 || (strcmp(path, "fast") && strcmp(path, "tape")) ||
      (argc > 5 && !batch1_only)) {
    fprintf(stderr, "usage: bench_lm_decode [s15m|s110m|all] [tokens>=2] [repeats>=1] "
                    "[fast|tape] [b1]\n");
    return 2;
  }
  ag_decode_path_set(strcmp(path, "tape") ? DECODE_AUTO : DECODE_TAPE);
  ag_threads_init();
  int ran = 0;
  for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++)
    if (!strcmp(which, "all") || !strcmp(which, SHAPES[i].name)) {
      bench(&SHAPES[i], tokens, repeats);
      ran++;
    }
  if (!ran) {
    fprintf(stderr, "bench_lm_decode: unknown model '%s' (s15m, s110m, all)\n", which);
    return 2;
  }
  return 0;
}
