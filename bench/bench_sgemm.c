/* sgemm GFLOP/s through agora's op layer (ag_matmul forward, and forward +
 * backward) against OpenBLAS called directly, same sizes, same threads. */
#include "agora/ops.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

static double now(void) { return ag_time_seconds(); }

int main(int argc, char **argv) {
  ag_threads_init();
  int sizes[][3] = {
      {256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {256, 3072, 768}, {4096, 128, 576}};
  printf("threads %d\n", ag_threads_get());
  printf("%-18s %12s %12s %12s %8s\n", "M x N x K", "direct", "ag_matmul", "fwd+bwd", "ratio");
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N),
          *C = malloc(sizeof(float) * M * N);
    ag_rng rng;
    ag_rng_seed(&rng, 1);
    for (int i = 0; i < M * K; i++) A[i] = ag_rng_uniform(&rng);
    for (int i = 0; i < K * N; i++) B[i] = ag_rng_uniform(&rng);
    double flops = 2.0 * M * N * K;
    /* warm up */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, B, N, 0, C, N);
    double direct = 0;
    {
      int reps = 0;
      double t0 = now(), el;
      do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, B, N, 0, C, N);
        reps++;
      } while ((el = now() - t0) < 1.0);
      direct = el / reps;
    }
    ag_tape *t = ag_tape_create();
    ag_tape_set_grad_enabled(t, false);
    double op = 0;
    {
      int reps = 0;
      double t0 = now(), el;
      do {
        ag_tape_reset(t);
        ag_tensor *a = ag_tape_wrap(t, A, 2, (int64_t[]){M, K});
        ag_tensor *b = ag_tape_wrap(t, B, 2, (int64_t[]){K, N});
        if (!ag_matmul(t, a, b)) {
          fprintf(stderr, "bench: %s\n", ag_tape_error(t));
          return 1;
        }
        reps++;
      } while ((el = now() - t0) < 1.0);
      op = el / reps;
    }
    /* forward + backward: 3 sgemms of the same size */
    ag_tape_set_grad_enabled(t, true);
    ag_tensor *pa, *pb;
    ag_tensor_create(2, (int64_t[]){M, K}, &pa);
    ag_tensor_create(2, (int64_t[]){K, N}, &pb);
    pa->requires_grad = pb->requires_grad = true;
    double fb = 0;
    {
      int reps = 0;
      double t0 = now(), el;
      float *seed = calloc((size_t)M * N, sizeof(float));
      do {
        ag_tape_reset(t);
        ag_tensor *y = ag_matmul(t, pa, pb);
        ag_backward_with(t, y, seed);
        reps++;
      } while ((el = now() - t0) < 1.0);
      fb = el / reps;
      free(seed);
    }
    char label[40];
    snprintf(label, sizeof label, "%dx%dx%d", M, N, K);
    printf("%-18s %9.1f GF %9.1f GF %9.1f GF %7.3f\n", label, flops / direct * 1e-9,
           flops / op * 1e-9, 3 * flops / fb * 1e-9, direct / op);
    ag_tensor_destroy(pa);
    ag_tensor_destroy(pb);
    ag_tape_destroy(t);
    free(A);
    free(B);
    free(C);
  }
  return 0;
}
