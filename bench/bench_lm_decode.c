/* Inference speed of random-weight llama models of llama2.c's stories15M and
 * stories110M shapes, F32, through the KV cache (ag_transformer_decode):
 *   - greedy batch-1 decoding: tokens/s over `tokens` steps after the first
 *     (as llama2.c's `run` times it; argmax sampling, nothing else),
 *   - prompt processing: one call with 64 tokens into an empty cache,
 *   - batch-8 greedy decoding: 8 sequences a step, tokens/s over all eight,
 *   - weight bytes streamed per token (every weight once: the tied LM head
 *     reads the whole embedding table) and the implied GB/s,
 *   - peak RSS (getrusage; the largest model so far when several run).
 *
 * Usage: bench_lm_decode [s15m|s110m|all] [tokens] [repeats]
 * (defaults all 256 3; the best of `repeats` runs is reported). */
#include "agora/ops.h"
#include "agora/transformer.h"

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

static void bench(const shape *s, int tokens, int repeats) {
  ag_transformer_config cfg =
      ag_transformer_llama_config(s->vocab, s->dim, s->layers, s->heads, s->heads, s->seq);
  cfg.intermediate_size = s->hidden; /* llama2.c's hidden_dim */
  ag_transformer *m;
  CHECK(ag_transformer_create(&cfg, &m));
  ag_transformer_init(m, 1);
  double params = (double)ag_transformer_params(m)->total;
  int n = tokens < s->seq ? tokens : (int)s->seq;
  ag_kv_cache *kv1, *kv8;
  CHECK(ag_kv_cache_create(m, 1, s->seq, &kv1));
  CHECK(ag_kv_cache_create(m, 8, n, &kv8));
  double tg = 0, pp = 0, tg8 = 0;
  greedy(m, kv1, 1, 8 < n ? 8 : n); /* warm-up: page in weights, grow scratch */
  for (int r = 0; r < repeats; r++) {
    double x = greedy(m, kv1, 1, n);
    tg = x > tg ? x : tg;
    x = prompt(m, kv1, 64);
    pp = x > pp ? x : pp;
    x = greedy(m, kv8, 8, n);
    tg8 = x > tg8 ? x : tg8;
  }
  /* Per token every weight is read once; the KV cache adds 2 x layers x
   * position x dim floats (about position / 2 on average over a run). */
  double weight_bytes = 4.0 * params;
  double kv_bytes = 4.0 * 2 * (double)s->layers * (n / 2.0) * (double)s->dim;
  printf("%-6s dim %lld hidden %lld layers %lld heads %lld vocab %lld seq %lld  params %.1fM  "
         "threads %d\n",
         s->name, (long long)s->dim, (long long)s->hidden, (long long)s->layers,
         (long long)s->heads, (long long)s->vocab, (long long)s->seq, params / 1e6,
         ag_threads_get());
  printf("  batch 1 greedy: %7.1f tokens/s over %d tokens (best of %d)\n", tg, n - 1, repeats);
  printf("  prompt 64:      %7.1f tokens/s\n", pp);
  printf("  batch 8 greedy: %7.1f tokens/s (all sequences)\n", tg8);
  printf("  streamed/token: weights %.1f MB + KV %.1f MB (mean) -> %.1f GB/s at batch 1\n",
         weight_bytes / 1e6, kv_bytes / 1e6, (weight_bytes + kv_bytes) * tg / 1e9);
  printf("  peak RSS %.0f MB\n", peak_rss_mb());
  ag_kv_cache_destroy(kv1);
  ag_kv_cache_destroy(kv8);
  ag_transformer_destroy(m);
}

int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "all";
  int tokens = argc > 2 ? atoi(argv[2]) : 256;
  int repeats = argc > 3 ? atoi(argv[3]) : 3;
  if (tokens < 2 || repeats < 1) {
    fprintf(stderr, "usage: bench_lm_decode [s15m|s110m|all] [tokens>=2] [repeats>=1]\n");
    return 2;
  }
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
