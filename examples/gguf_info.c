/* docs/gguf.md: list a GGUF file's metadata and tensors, and convert one
 * tensor to float32. Usage: example_gguf_info [FILE.gguf] (default: the tiny
 * Llama in ../shared/data/models, when it is there). */
#include "agora/gguf.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_MODEL "../shared/data/models/llama-2-tiny-random.gguf"

/* One value, by type. Arrays show their length and first string. */
static void print_value(const ag_gguf *f, const ag_gguf_kv *kv) {
  ag_gguf_string s;
  int64_t i;
  uint64_t u;
  float x;
  bool b;
  switch (kv->type) {
  case AG_GGUF_ARRAY:
    printf("[%" PRIu64 " x %s]", kv->count, ag_gguf_type_name(kv->element_type));
    if (kv->element_type == AG_GGUF_STRING && kv->count &&
        !ag_gguf_get_array_string(f, kv->key, 0, &s))
      printf(" first \"%.*s\"", (int)s.length, s.data);
    break;
  case AG_GGUF_STRING:
    if (!ag_gguf_get_string(f, kv->key, &s))
      printf("\"%.*s\"", s.length > 60 ? 60 : (int)s.length, s.data);
    break;
  case AG_GGUF_FLOAT32:
  case AG_GGUF_FLOAT64:
    if (!ag_gguf_get_f32(f, kv->key, &x)) printf("%g", x);
    break;
  case AG_GGUF_BOOL:
    if (!ag_gguf_get_bool(f, kv->key, &b)) printf("%s", b ? "true" : "false");
    break;
  case AG_GGUF_UINT64:
    if (!ag_gguf_get_u64(f, kv->key, &u)) printf("%" PRIu64, u);
    break;
  default: /* the smaller integers all fit in int64 */
    if (!ag_gguf_get_i64(f, kv->key, &i)) printf("%" PRId64, i);
    break;
  }
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : DEFAULT_MODEL;
  if (argc < 2 && !ag_file_exists(path)) {
    printf("note: %s is not here; pass a GGUF file to list it\n", path);
    return 0;
  }
  ag_gguf *f;
  if (ag_gguf_open(path, &f)) {
    fprintf(stderr, "error: %s\n", ag_error_message());
    return 1;
  }
  printf("%s: GGUF v%" PRIu32 ", %" PRId64 " metadata pairs, %" PRId64 " tensors\n", path,
         f->version, f->kv_count, f->tensor_count);
  for (int64_t k = 0; k < f->kv_count; k++) {
    printf("  %-40s ", f->kvs[k].key);
    print_value(f, &f->kvs[k]);
    printf("\n");
  }
  /* Tensors: shapes in row-major order, as agora's tensors have them. */
  const ag_gguf_tensor *largest = NULL;
  for (int64_t k = 0; k < f->tensor_count; k++) {
    const ag_gguf_tensor *t = &f->tensors[k];
    printf("  %-28s %-5s (", t->name, ag_ggml_type_name(t->type));
    for (int d = 0; d < t->ndim; d++) printf(d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
    printf(")\n");
    if (!largest || t->numel > largest->numel) largest = t;
  }
  int status = 0;
  if (largest) {
    float *values = malloc((size_t)largest->numel * sizeof *values);
    if (!values || ag_gguf_read_f32(f, largest, values)) {
      fprintf(stderr, "error: %s\n", values ? ag_error_message() : "out of memory");
      status = 1;
    } else {
      double sum = 0;
      for (int64_t i = 0; i < largest->numel; i++) sum += values[i] * (double)values[i];
      printf("%s: %" PRId64 " values, rms %.4g\n", largest->name, largest->numel,
             largest->numel ? sqrt(sum / (double)largest->numel) : 0.0);
    }
    free(values);
  }
  ag_gguf_close(f);
  return status;
}
