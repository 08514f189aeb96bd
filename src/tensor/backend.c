/* The op table. The CPU backend is filled by each op file's register
 * function; a CUDA backend would supply its own table with the same ids. */
#include "tensor/internal.h"

#include <pthread.h>

static ag_backend cpu_backend = {.name = "cpu"};
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_init(void) {
  const ag_op_impl **ops = cpu_backend.ops;
  ag_cpu_register_shape(ops);
  ag_cpu_register_elementwise(ops);
  ag_cpu_register_reduce(ops);
  ag_cpu_register_matmul(ops);
  ag_cpu_register_nn(ops);
  ag_cpu_register_conv(ops);
  ag_cpu_register_attention(ops);
}

const ag_backend *ag_backend_current(void) {
  pthread_once(&cpu_once, cpu_init);
  return &cpu_backend;
}
