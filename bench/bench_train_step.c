/* Milliseconds per training step (forward, backward, SGD update) of the
 * vision models on Fashion-MNIST-shaped batches, and heap allocations per
 * step once warm. Usage: bench_train_step [mlp|cnn|resnet|all] [batch] [steps] */
#include "agora/ops.h"
#include "agora/optim.h"
#include "agora/vision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counting allocator: this executable's malloc family interposes on every
 * library's, and forwards to glibc's. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static long allocations = 0;
void *malloc(size_t n) {
  __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
  return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
  __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
  return __libc_memalign(align, n);
}
int posix_memalign(void **out, size_t align, size_t n) {
  __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
  *out = __libc_memalign(align, n);
  return *out ? 0 : 12;
}
void free(void *p) { __libc_free(p); }

static int bench(ag_vision_model_kind kind, int batch, int steps) {
  ag_vision_model *m;
  if (ag_vision_model_create(kind, 1, 28, 28, 10, &m)) {
    fprintf(stderr, "bench: %s\n", ag_error_message());
    return 1;
  }
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  ag_vision_model_init(m, &rng);
  ag_params *p = ag_vision_model_params(m);
  ag_optim_config cfg = ag_optim_sgd_defaults(0.05f);
  cfg.momentum = 0.9f;
  ag_optim *opt;
  if (ag_optim_create(p, &cfg, &opt)) return 1;
  float *x = malloc(sizeof(float) * (size_t)batch * 784);
  int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
  for (int i = 0; i < batch * 784; i++) x[i] = ag_rng_uniform(&rng);
  for (int i = 0; i < batch; i++) y[i] = (int32_t)ag_rng_below(&rng, 10);
  ag_tape *t = ag_tape_create();
  double total = 0;
  long allocs = 0;
  int warmup = 2;
  for (int s = 0; s < warmup + steps; s++) {
    long before = allocations;
    double t0 = ag_time_seconds();
    ag_tape_reset(t);
    ag_params_zero_grad(p);
    ag_tensor *xt = ag_tape_wrap(t, x, 4, (int64_t[]){batch, 1, 28, 28});
    ag_tensor *logits = ag_vision_model_forward(t, m, xt);
    ag_tensor *loss = ag_cross_entropy(t, logits, y, NULL, -100, false);
    if (!loss || ag_backward(t, loss) || ag_optim_step(opt, 0.05f)) {
      fprintf(stderr, "bench: %s\n", ag_error_message());
      return 1;
    }
    double dt = ag_time_seconds() - t0;
    if (s >= warmup) {
      total += dt;
      allocs += allocations - before;
    }
  }
  printf(
      "%-7s batch %3d  %8.2f ms/step  %7.0f examples/s  params %lld  heap allocations/step %.1f  "
      "tape arena %.1f MB\n",
      ag_vision_model_name(kind), batch, 1e3 * total / steps, batch * steps / total,
      (long long)p->total, (double)allocs / steps, ag_arena_capacity(ag_tape_arena(t)) / 1e6);
  ag_tape_destroy(t);
  ag_optim_destroy(opt);
  ag_vision_model_destroy(m);
  free(x);
  free(y);
  return 0;
}

int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "all";
  int batch = argc > 2 ? atoi(argv[2]) : 64;
  int steps = argc > 3 ? atoi(argv[3]) : 20;
  ag_threads_init();
  printf("threads %d\n", ag_threads_get());
  int rc = 0;
  for (int k = AG_VISION_MLP; k <= AG_VISION_RESNET; k++)
    if (!strcmp(which, "all") || !strcmp(which, ag_vision_model_name((ag_vision_model_kind)k)))
      rc |= bench((ag_vision_model_kind)k, batch, steps);
  return rc;
}
