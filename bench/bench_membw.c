/* Memory bandwidth this machine reaches, STREAM-style: read (sum), copy and
 * triad over float arrays far larger than the caches, with the configured
 * thread count (AG_THREADS) and with one thread. Bytes are counted as STREAM
 * does (no write-allocate traffic). The read figure is the ceiling for
 * batch-1 decoding, which streams every weight once per token. The arrays
 * come from ag_alloc_large (transparent huge pages), as the weights do.
 *
 * Usage: bench_membw [MiB per array] [trials]   (defaults 256 8) */
#include "agora/base.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static volatile float sink;

static double run(int kind, float *restrict a, const float *restrict b, const float *restrict c,
                  int64_t n, int threads) {
  double t0 = ag_time_seconds();
  if (kind == 0) {
    float total = 0;
#pragma omp parallel num_threads(threads)
    {
      /* 4 x 16 independent sums: vectors in registers, no reassociation */
      float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n; i += 64)
        for (int j = 0; j < 16; j++) {
          a0[j] += b[i + j];
          a1[j] += b[i + 16 + j];
          a2[j] += b[i + 32 + j];
          a3[j] += b[i + 48 + j];
        }
      float s = 0;
      for (int j = 0; j < 16; j++) s += a0[j] + a1[j] + a2[j] + a3[j];
#pragma omp atomic
      total += s;
    }
    sink = total;
  } else if (kind == 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = b[i];
  } else {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
  }
  return ag_time_seconds() - t0;
}

static int by_value(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

int main(int argc, char **argv) {
  int mib = argc > 1 ? atoi(argv[1]) : 256;
  int repeats = argc > 2 ? atoi(argv[2]) : 8;
  if (mib < 1 || repeats < 1) {
    fprintf(stderr, "usage: bench_membw [MiB per array] [trials]\n");
    return 2;
  }
  ag_threads_init();
  int threads = ag_threads_get();
  int64_t n = (int64_t)mib * 1024 * 1024 / 4;
  float *a = ag_alloc_large(sizeof(float) * (size_t)n),
        *b = ag_alloc_large(sizeof(float) * (size_t)n),
        *c = ag_alloc_large(sizeof(float) * (size_t)n);
  if (!a || !b || !c) {
    fprintf(stderr, "bench_membw: cannot allocate 3 x %d MiB\n", mib);
    return 1;
  }
  /* first touch by the threads that will read, so pages spread as they will */
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2;
  static const char *names[] = {"read", "copy", "triad"};
  static const double arrays[] = {1, 2, 3};
  printf("arrays %d MiB x 3; %d trials of >= 0.25 s each (sustained, like a decoding run): "
         "best and median\n",
         mib, repeats);
  int counts[2] = {threads, 1};
  double *rate = malloc(sizeof(double) * (size_t)repeats);
  for (int k = 0; k < (threads > 1 ? 2 : 1); k++)
    for (int kind = 0; kind < 3; kind++) {
      for (int r = 0; r < repeats; r++) {
        double dt = 0;
        int passes = 0;
        do {
          dt += run(kind, a, b, c, n, counts[k]);
          passes++;
        } while (dt < 0.25);
        rate[r] = arrays[kind] * 4.0 * (double)n * passes / dt / 1e9;
      }
      qsort(rate, (size_t)repeats, sizeof *rate, by_value);
      printf("%-6s %d thread%s %7.1f GB/s best %7.1f GB/s median\n", names[kind], counts[k],
             counts[k] > 1 ? "s" : " ", rate[repeats - 1], rate[repeats / 2]);
    }
  free(rate);
  free(a);
  free(b);
  free(c);
  return 0;
}
