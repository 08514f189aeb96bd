/* One thread count for OpenMP and OpenBLAS. */
#include "agora/base.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

void openblas_set_num_threads(int num_threads);

static int thread_count = 0;

void ag_threads_set(int n) {
  if (n < 1) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    n = cores > 0 ? (int)cores : 1;
  }
  thread_count = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

void ag_threads_init(void) {
  const char *env = getenv("AG_THREADS");
  int n = env ? atoi(env) : 0;
  ag_threads_set(n);
}

int ag_threads_get(void) {
  if (thread_count == 0) ag_threads_init();
  return thread_count;
}
