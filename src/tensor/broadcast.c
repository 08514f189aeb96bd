/* NumPy broadcasting: result shapes, aligned strides, and the reduction of
 * an output-shaped gradient back down to a broadcast input's shape. */
#include "tensor/internal.h"

#include <string.h>

/* Below this many elements a loop runs on one thread. A contiguous add of
 * 32768 floats took about 18 us on one core of the development machine,
 * a few times what waking a thread team costs. */
#define PARALLEL_MIN_ELEMENTS 32768

ag_status ag_broadcast_shape(const ag_tensor *a, const ag_tensor *b, int *ndim, int64_t *shape) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int d = 0; d < n; d++) {
    /* Align from the right: dim d of the result is dim d - (n - ndim) of each input. */
    int da = d - (n - a->ndim), db = d - (n - b->ndim);
    int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      char s1[96], s2[96];
      return ag_error_set(AG_ERR_SHAPE, "shapes %s and %s do not broadcast",
                          ag_shape_string(a, s1, sizeof s1), ag_shape_string(b, s2, sizeof s2));
    }
    shape[d] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  return AG_OK;
}

void ag_broadcast_strides(const ag_tensor *x, int out_ndim, const int64_t *out_shape,
                          int64_t *stride) {
  for (int d = 0; d < out_ndim; d++) {
    int dx = d - (out_ndim - x->ndim);
    /* A size-1 dim repeats its one element: stride 0 reads it again. */
    stride[d] = dx >= 0 && x->shape[dx] == out_shape[d] && x->shape[dx] != 1 ? x->stride[dx] : 0;
  }
}

/* The index space of a reduction after dropping size-1 dims and merging
 * neighbours that are laid out together in both buffers. What is left
 * alternates between kept dims (dst stride > 0) and reduced ones (0). */
typedef struct reduce_space {
  int ndim;
  int64_t shape[AG_MAX_DIMS];
  int64_t src_stride[AG_MAX_DIMS]; /* the contiguous, output-shaped gradient */
  int64_t dst_stride[AG_MAX_DIMS]; /* the input-shaped destination; 0 where reduced */
} reduce_space;

static void reduce_space_build(int out_ndim, const int64_t *out_shape, const ag_tensor *x,
                               reduce_space *r) {
  int64_t src[AG_MAX_DIMS] = {0}, dst[AG_MAX_DIMS] = {0}, xrow[AG_MAX_DIMS] = {0};
  int64_t n = 1;
  for (int d = x->ndim - 1; d >= 0; d--) {
    xrow[d] = n;
    n *= x->shape[d];
  }
  n = 1;
  for (int d = out_ndim - 1; d >= 0; d--) {
    src[d] = n;
    n *= out_shape[d];
    int dx = d - (out_ndim - x->ndim);
    dst[d] = dx >= 0 && x->shape[dx] == out_shape[d] ? xrow[dx] : 0;
  }
  r->ndim = 0;
  for (int d = 0; d < out_ndim; d++) {
    if (out_shape[d] == 1) continue;
    int k = r->ndim - 1;
    if (k >= 0 && r->src_stride[k] == src[d] * out_shape[d] &&
        r->dst_stride[k] == dst[d] * out_shape[d]) {
      r->shape[k] *= out_shape[d];
      r->src_stride[k] = src[d];
      r->dst_stride[k] = dst[d];
      continue;
    }
    r->shape[r->ndim] = out_shape[d];
    r->src_stride[r->ndim] = src[d];
    r->dst_stride[r->ndim] = dst[d];
    r->ndim++;
  }
}

/* Accumulates the block of the space whose dim k runs over [lo, hi) and
 * whose later dims run in full; src and dst point at the block's origin
 * with dim k at 0. */
static void reduce_block(const reduce_space *r, const float *src, float *dst, int k, int64_t lo,
                         int64_t hi) {
  int last = r->ndim - 1;
  int64_t shape[AG_MAX_DIMS], idx[AG_MAX_DIMS] = {0};
  memcpy(shape, r->shape, sizeof shape);
  src += lo * r->src_stride[k];
  dst += lo * r->dst_stride[k];
  shape[k] = hi - lo;
  int64_t inner = shape[last], ss = r->src_stride[last], ds = r->dst_stride[last];
  int64_t rows = 1;
  for (int d = k; d < last; d++) rows *= shape[d];
  int64_t so = 0, dof = 0;
  for (int64_t row = 0; row < rows; row++) {
    if (ds == 0) {
      /* Summing along the innermost dim: a double accumulator keeps long
       * rows accurate. */
      double s = 0;
      for (int64_t j = 0; j < inner; j++) s += src[so + j * ss];
      dst[dof] += (float)s;
    } else {
      for (int64_t j = 0; j < inner; j++) dst[dof + j * ds] += src[so + j * ss];
    }
    for (int d = last - 1; d >= k; d--) {
      idx[d]++;
      so += r->src_stride[d];
      dof += r->dst_stride[d];
      if (idx[d] < shape[d]) break;
      so -= idx[d] * r->src_stride[d];
      dof -= idx[d] * r->dst_stride[d];
      idx[d] = 0;
    }
  }
}

void ag_reduce_broadcast_grad(const float *grad, int out_ndim, const int64_t *out_shape,
                              const ag_tensor *x, float *dst) {
  int64_t total = 1;
  for (int d = 0; d < out_ndim; d++) total *= out_shape[d];
  if (total == 0) return;
  if (total == x->numel) {
    /* Nothing is broadcast: the shapes differ at most by size-1 dims. */
#pragma omp parallel for schedule(static) if (total > PARALLEL_MIN_ELEMENTS)
    for (int64_t i = 0; i < total; i++) dst[i] += grad[i];
    return;
  }
  if (x->numel == 1) {
    double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (total > PARALLEL_MIN_ELEMENTS)
    for (int64_t i = 0; i < total; i++) s += grad[i];
    dst[0] += (float)s;
    return;
  }
  reduce_space r;
  reduce_space_build(out_ndim, out_shape, x, &r);
  /* Threads split the first kept dim: kept dims map to distinct dst
   * elements, so no two threads write the same float. If dim 0 is
   * reduced, dim 1 is kept (reduced neighbours were merged). */
  int p = r.dst_stride[0] != 0 ? 0 : 1;
  int64_t range = r.shape[p];
  int64_t chunks = total / PARALLEL_MIN_ELEMENTS;
  if (chunks > range) chunks = range;
  if (chunks < 1) chunks = 1;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t lo = range * c / chunks, hi = range * (c + 1) / chunks;
    if (p == 0) {
      reduce_block(&r, grad, dst, 0, lo, hi);
    } else {
      for (int64_t i0 = 0; i0 < r.shape[0]; i0++)
        reduce_block(&r, grad + i0 * r.src_stride[0], dst, 1, lo, hi);
    }
  }
}
