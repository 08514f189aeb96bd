/* Tensor helpers that need no tape, and the parameter store. */
#include "agora/tensor.h"

#include <stdlib.h>
#include <string.h>

bool ag_tensor_is_contiguous(const ag_tensor *t) {
  int64_t expected = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->shape[d] != 1 && t->stride[d] != expected) return false;
    expected *= t->shape[d];
  }
  return true;
}

void ag_tensor_set_shape(ag_tensor *t, int ndim, const int64_t *shape) {
  t->ndim = ndim;
  int64_t n = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    t->shape[d] = shape[d];
    t->stride[d] = n;
    n *= shape[d];
  }
  t->numel = n;
}

char *ag_shape_string(const ag_tensor *t, char *buf, size_t size) {
  size_t used = 0;
  used += (size_t)snprintf(buf + used, size - used, "(");
  for (int d = 0; d < t->ndim && used < size; d++)
    used +=
        (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld", (long long)t->shape[d]);
  if (used < size) snprintf(buf + used, size - used, ")");
  return buf;
}

static int64_t offset_of(const ag_tensor *t, int64_t flat) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    int64_t i = flat % t->shape[d];
    flat /= t->shape[d];
    off += i * t->stride[d];
  }
  return off;
}

float ag_tensor_get(const ag_tensor *t, int64_t flat_index) {
  return t->data[offset_of(t, flat_index)];
}

void ag_tensor_copy_to(const ag_tensor *t, float *dst) {
  if (ag_tensor_is_contiguous(t)) {
    memcpy(dst, t->data, (size_t)t->numel * sizeof(float));
    return;
  }
  /* Odometer walk over the multi-index. */
  int64_t idx[AG_MAX_DIMS] = {0};
  int64_t off = 0;
  for (int64_t i = 0; i < t->numel; i++) {
    dst[i] = t->data[off];
    for (int d = t->ndim - 1; d >= 0; d--) {
      idx[d]++;
      off += t->stride[d];
      if (idx[d] < t->shape[d]) break;
      off -= idx[d] * t->stride[d];
      idx[d] = 0;
    }
  }
}

bool ag_shapes_equal(const ag_tensor *a, const ag_tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  return true;
}

static ag_status check_shape(int ndim, const int64_t *shape, int64_t *numel) {
  if (ndim < 0 || ndim > AG_MAX_DIMS)
    return ag_error_set(AG_ERR_INVALID, "tensor: %d dims (at most %d)", ndim, AG_MAX_DIMS);
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) return ag_error_set(AG_ERR_INVALID, "tensor: negative size in dim %d", d);
    if (shape[d] && n > INT64_MAX / 4 / shape[d])
      return ag_error_set(AG_ERR_INVALID, "tensor: shape too large");
    n *= shape[d];
  }
  *numel = n;
  return AG_OK;
}

ag_status ag_tensor_create(int ndim, const int64_t *shape, ag_tensor **out) {
  *out = NULL;
  int64_t numel;
  ag_status st = check_shape(ndim, shape, &numel);
  if (st) return st;
  ag_tensor *t = calloc(1, sizeof *t);
  float *data = calloc((size_t)(numel ? numel : 1), sizeof(float));
  if (!t || !data) {
    free(t);
    free(data);
    return ag_error_set(AG_ERR_NOMEM, "tensor: cannot allocate %lld floats", (long long)numel);
  }
  ag_tensor_set_shape(t, ndim, shape);
  t->data = data;
  t->storage = AG_STORAGE_HEAP;
  *out = t;
  return AG_OK;
}

void ag_tensor_destroy(ag_tensor *t) {
  if (!t) return;
  if (t->storage == AG_STORAGE_HEAP) {
    free(t->data);
    free(t->grad);
  }
  free(t);
}

/* ---- parameter store ------------------------------------------------------ */

ag_params *ag_params_create(void) {
  ag_params *p = calloc(1, sizeof *p);
  if (!p) ag_error_set(AG_ERR_NOMEM, "params: out of memory");
  return p;
}

void ag_params_destroy(ag_params *p) {
  if (!p) return;
  for (int i = 0; i < p->count; i++) {
    free((char *)p->tensors[i]->name);
    free(p->tensors[i]);
  }
  free(p->tensors);
  free(p->data);
  free(p->grad);
  free(p);
}

ag_tensor *ag_params_add(ag_params *p, const char *name, int ndim, const int64_t *shape) {
  if (p->finalized) {
    ag_error_set(AG_ERR_INVALID, "params: cannot add '%s' after finalize", name);
    return NULL;
  }
  int64_t numel;
  if (check_shape(ndim, shape, &numel)) return NULL;
  if (ag_params_find(p, name)) {
    ag_error_set(AG_ERR_INVALID, "params: duplicate name '%s'", name);
    return NULL;
  }
  if (p->count == p->capacity) {
    int cap = p->capacity ? 2 * p->capacity : 16;
    ag_tensor **grown = realloc(p->tensors, (size_t)cap * sizeof *grown);
    if (!grown) {
      ag_error_set(AG_ERR_NOMEM, "params: out of memory");
      return NULL;
    }
    p->tensors = grown;
    p->capacity = cap;
  }
  ag_tensor *t = calloc(1, sizeof *t);
  size_t len = strlen(name);
  char *copy = malloc(len + 1);
  if (!t || !copy) {
    free(t);
    free(copy);
    ag_error_set(AG_ERR_NOMEM, "params: out of memory");
    return NULL;
  }
  memcpy(copy, name, len + 1);
  ag_tensor_set_shape(t, ndim, shape);
  t->name = copy;
  t->requires_grad = true;
  t->storage = AG_STORAGE_PARAMS;
  p->tensors[p->count++] = t;
  p->total += numel;
  return t;
}

ag_status ag_params_finalize(ag_params *p) {
  if (p->finalized) return AG_OK;
  size_t n = (size_t)(p->total ? p->total : 1);
  p->data = ag_alloc_large(n * sizeof(float));
  p->grad = ag_alloc_large(n * sizeof(float));
  if (!p->data || !p->grad)
    return ag_error_set(AG_ERR_NOMEM, "params: cannot allocate %lld floats", (long long)p->total);
  memset(p->data, 0, n * sizeof(float));
  memset(p->grad, 0, n * sizeof(float));
  int64_t off = 0;
  for (int i = 0; i < p->count; i++) {
    p->tensors[i]->data = p->data + off;
    p->tensors[i]->grad = p->grad + off;
    off += p->tensors[i]->numel;
  }
  p->finalized = true;
  return AG_OK;
}

ag_tensor *ag_params_find(const ag_params *p, const char *name) {
  for (int i = 0; i < p->count; i++)
    if (strcmp(p->tensors[i]->name, name) == 0) return p->tensors[i];
  return NULL;
}

void ag_params_zero_grad(ag_params *p) {
  if (p->grad) memset(p->grad, 0, (size_t)p->total * sizeof(float));
}

int64_t ag_params_offset(const ag_params *p, const ag_tensor *t) {
  if (!p->finalized || t->data < p->data || t->data >= p->data + p->total) return -1;
  return (int64_t)(t->data - p->data);
}
