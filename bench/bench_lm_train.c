/* Training speed of a GPT-2 124M-shaped model (vocab 50257, 1024 positions,
 * 12 layers, 12 heads, 768 wide) on random tokens, batch 4 x 64, AdamW:
 * ms per step (forward, backward, update) after warm-up, tokens/s, the
 * achieved FLOP/s by the usual 6 x parameters x tokens estimate, and that as
 * a share of the sgemm FLOP/s OpenBLAS reaches in this same process. Peak RSS
 * from getrusage. The anchor is llm.c's CPU train_gpt2 (same shape, same B, T).
 *
 * Usage: bench_lm_train [steps] [batch] [seq] [layers] [dim]
 * (defaults 10 4 64 12 768; smaller values for a quick check). */
#include "agora/ops.h"
#include "agora/optim.h"
#include "agora/transformer.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static double peak_rss_mb(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0; /* Linux: KiB */
}

/* Best GFLOP/s of a square sgemm of size n over about `seconds`. */
static double sgemm_gflops(int n, double seconds) {
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
        *c = malloc(sizeof(float) * n * n);
  for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
  double best = 0, t_end = ag_time_seconds() + seconds;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
  do {
    double t0 = ag_time_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double g = 2.0 * n * n * n / (ag_time_seconds() - t0) * 1e-9;
    best = g > best ? g : best;
  } while (ag_time_seconds() < t_end);
  free(a);
  free(b);
  free(c);
  return best;
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 10;
  int B = argc > 2 ? atoi(argv[2]) : 4;
  int T = argc > 3 ? atoi(argv[3]) : 64;
  int layers = argc > 4 ? atoi(argv[4]) : 12;
  int dim = argc > 5 ? atoi(argv[5]) : 768;
  if (steps < 1 || B < 1 || T < 1 || T > 1024 || layers < 1 || dim < 64 || dim % 64) {
    fprintf(stderr, "usage: bench_lm_train [steps] [batch] [seq<=1024] [layers] [dim%%64==0]\n");
    return 2;
  }
  ag_threads_init();
  ag_transformer_config cfg = ag_transformer_gpt2_config(50257, dim, layers, dim / 64, 1024);
  ag_transformer *m;
  if (ag_transformer_create(&cfg, &m)) {
    fprintf(stderr, "bench: %s\n", ag_error_message());
    return 1;
  }
  ag_transformer_init(m, 1);
  ag_params *p = ag_transformer_params(m);
  ag_optim_config oc = ag_optim_adamw_defaults(1e-4f);
  oc.weight_decay = 0.0f; /* as llm.c's train_gpt2 */
  ag_optim *opt;
  if (ag_optim_create(p, &oc, &opt)) {
    fprintf(stderr, "bench: %s\n", ag_error_message());
    return 1;
  }
  int32_t *tokens = malloc(sizeof(int32_t) * (size_t)(B * T + 1));
  ag_rng rng;
  ag_rng_seed(&rng, 7);
  ag_tape *t = ag_tape_create();
  int warmup = 2;
  double best = 1e30, total = 0;
  float loss_first = 0, loss_last = 0;
  for (int s = 0; s < warmup + steps; s++) {
    for (int i = 0; i < B * T + 1; i++) tokens[i] = (int32_t)ag_rng_below(&rng, 50257);
    double t0 = ag_time_seconds();
    ag_tape_reset(t);
    ag_params_zero_grad(p);
    ag_tensor *loss = ag_transformer_loss(t, m, tokens, tokens + 1, NULL, B, T);
    if (!loss || ag_backward(t, loss) || ag_optim_step(opt, 1e-4f)) {
      fprintf(stderr, "bench: %s %s\n", ag_tape_error(t), ag_error_message());
      return 1;
    }
    double dt = ag_time_seconds() - t0;
    if (s == 0) loss_first = loss->data[0];
    loss_last = loss->data[0];
    if (s >= warmup) {
      total += dt;
      best = dt < best ? dt : best;
    }
  }
  double rss = peak_rss_mb();
  double params = (double)p->total, tok = (double)B * T;
  double mean = total / steps;
  double gflops_best = 6.0 * params * tok / best * 1e-9;
  double gflops_mean = 6.0 * params * tok / mean * 1e-9;
  double peak = sgemm_gflops(2048, 3.0);
  printf("threads %d  gpt2 L%d C%d V50257  params %.0f  batch %d x %d tokens  AdamW\n",
         ag_threads_get(), layers, dim, params, B, T);
  printf("step: best %.1f ms  mean %.1f ms (%d steps after %d warm-up)  %.0f tokens/s (best)\n",
         best * 1e3, mean * 1e3, steps, warmup, tok / best);
  printf("loss %.3f -> %.3f\n", loss_first, loss_last);
  printf("achieved %.1f GFLOP/s best, %.1f mean (6 x params x tokens)\n", gflops_best, gflops_mean);
  printf("sgemm 2048^3 peak %.1f GFLOP/s  -> share %.0f%% (best step), %.0f%% (mean)\n", peak,
         100 * gflops_best / peak, 100 * gflops_mean / peak);
  printf("peak RSS %.0f MB  tape arena %.0f MB\n", rss, ag_arena_capacity(ag_tape_arena(t)) / 1e6);
  ag_tape_destroy(t);
  ag_optim_destroy(opt);
  ag_transformer_destroy(m);
  free(tokens);
  return 0;
}
