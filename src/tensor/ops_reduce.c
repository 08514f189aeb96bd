/* Reductions over one dim or over every element: sum, mean, max. */
#include "tensor/internal.h"

#include <math.h>
#include <string.h>

/* Below this many elements a loop runs on one thread. A contiguous add of
 * 32768 floats took about 18 us on one core of the development machine,
 * a few times what waking a thread team costs. */
#define PARALLEL_MIN_ELEMENTS 32768
/* Columns of the inner dims one task reduces at a time: enough for long
 * vector loops, few enough that the accumulators stay on the stack. */
#define INNER_BLOCK 256
/* Most pieces a whole-tensor max is split into for threads. */
#define MAX_CHUNKS 64

/* x viewed as (outer, n, inner), n being the reduced dim (or every element
 * for AG_ALL_DIMS, stored as dim -1 in iarg[0]). */
typedef struct reduce_dims {
  int64_t outer, n, inner;
} reduce_dims;

static reduce_dims reduce_dims_of(const ag_tensor *x, int64_t dim) {
  reduce_dims r = {1, x->numel, 1};
  if (dim < 0) return r;
  r.n = x->shape[dim];
  for (int64_t d = 0; d < dim; d++) r.outer *= x->shape[d];
  for (int64_t d = dim + 1; d < x->ndim; d++) r.inner *= x->shape[d];
  return r;
}

/* The input's values in row-major order: x's own memory when contiguous,
 * else a copy in the tape's arena (strided views are gathered once, so the
 * kernels below only see contiguous rows). */
static const float *row_major_data(ag_tape *t, const ag_tensor *x) {
  if (ag_tensor_is_contiguous(x)) return x->data;
  float *copy = ag_tape_alloc(t, (size_t)(x->numel ? x->numel : 1) * sizeof(float));
  if (copy) ag_tensor_copy_to(x, copy);
  return copy;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- sum and mean ------------------------------------------------------------------ */

/* y (outer, inner) = scale * sum over k of x (outer, n, inner), accumulated
 * in double. */
static void sum_rows(const float *x, reduce_dims r, double scale, float *y) {
  int64_t total = r.outer * r.n * r.inner;
  if (r.inner == 1 && r.outer == 1) {
    double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (total > PARALLEL_MIN_ELEMENTS)
    for (int64_t k = 0; k < r.n; k++) s += x[k];
    y[0] = (float)(s * scale);
    return;
  }
  if (r.inner == 1) {
#pragma omp parallel for schedule(static) if (total > PARALLEL_MIN_ELEMENTS)
    for (int64_t o = 0; o < r.outer; o++) {
      const float *row = x + o * r.n;
      double s = 0;
      for (int64_t k = 0; k < r.n; k++) s += row[k];
      y[o] = (float)(s * scale);
    }
    return;
  }
  int64_t blocks = ceil_div(r.inner, INNER_BLOCK);
#pragma omp parallel for schedule(static) if (total > PARALLEL_MIN_ELEMENTS)
  for (int64_t task = 0; task < r.outer * blocks; task++) {
    int64_t o = task / blocks, i0 = (task % blocks) * INNER_BLOCK;
    int64_t w = r.inner - i0 < INNER_BLOCK ? r.inner - i0 : INNER_BLOCK;
    const float *xo = x + o * r.n * r.inner + i0;
    double acc[INNER_BLOCK];
    for (int64_t i = 0; i < w; i++) acc[i] = 0;
    for (int64_t k = 0; k < r.n; k++)
      for (int64_t i = 0; i < w; i++) acc[i] += xo[k * r.inner + i];
    for (int64_t i = 0; i < w; i++) y[o * r.inner + i0 + i] = (float)(acc[i] * scale);
  }
}

static double mean_scale(const ag_node *n, reduce_dims r) {
  /* An empty mean is 0 * inf = NaN, as in NumPy. */
  return n->op == AG_OP_MEAN ? 1.0 / (double)r.n : 1.0;
}

static ag_status sum_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *x = n->in[0];
  reduce_dims r = reduce_dims_of(x, n->iarg[0]);
  const float *xd = row_major_data(t, x); // (outer, n, inner)
  if (!xd) return AG_ERR_NOMEM;
  sum_rows(xd, r, mean_scale(n, r), n->out->data);
  return AG_OK;
}

/* gx (outer, n, inner) += scale * gy (outer, 1, inner) */
static ag_status sum_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0];
  if (!x->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  reduce_dims r = reduce_dims_of(x, n->iarg[0]);
  const float *gy = n->out->grad;
  float scale = (float)mean_scale(n, r);
  int64_t rows = r.outer * r.n;
#pragma omp parallel for schedule(static) if (x->numel > PARALLEL_MIN_ELEMENTS)
  for (int64_t row = 0; row < rows; row++) {
    const float *g = gy + (row / r.n) * r.inner;
    float *dst = gx + row * r.inner;
    for (int64_t i = 0; i < r.inner; i++) dst[i] += scale * g[i];
  }
  return AG_OK;
}

/* ---- max ---------------------------------------------------------------------------- */

/* NaN wins (it propagates, as in NumPy); among equal values the first does. */
static inline bool beats(float v, float best) { return v > best || (isnan(v) && !isnan(best)); }

/* The first argmax of x[0..n) and its value. */
static int64_t argmax_of(const float *x, int64_t n, int64_t stride, float *value) {
  int64_t arg = 0;
  float best = x[0];
  for (int64_t k = 1; k < n; k++)
    if (beats(x[k * stride], best)) {
      best = x[k * stride];
      arg = k;
    }
  *value = best;
  return arg;
}

/* y (outer, inner) = max over k of x (outer, n, inner); arg holds each k. */
static void max_rows(const float *x, reduce_dims r, float *y, int64_t *arg) {
  int64_t total = r.outer * r.n * r.inner;
  if (r.outer == 1 && r.inner == 1) {
    /* One long row: pieces in parallel, then the first best piece wins. */
    int64_t chunks = total / PARALLEL_MIN_ELEMENTS;
    chunks = chunks < 1 ? 1 : chunks > MAX_CHUNKS ? MAX_CHUNKS : chunks;
    float value[MAX_CHUNKS] = {0};
    int64_t where[MAX_CHUNKS] = {0};
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; c++) {
      int64_t lo = r.n * c / chunks, hi = r.n * (c + 1) / chunks;
      where[c] = lo + argmax_of(x + lo, hi - lo, 1, &value[c]);
    }
    int64_t best = 0;
    for (int64_t c = 1; c < chunks; c++)
      if (beats(value[c], value[best])) best = c;
    y[0] = value[best];
    arg[0] = where[best];
    return;
  }
  if (r.inner == 1) {
#pragma omp parallel for schedule(static) if (total > PARALLEL_MIN_ELEMENTS)
    for (int64_t o = 0; o < r.outer; o++) arg[o] = argmax_of(x + o * r.n, r.n, 1, &y[o]);
    return;
  }
  int64_t blocks = ceil_div(r.inner, INNER_BLOCK);
#pragma omp parallel for schedule(static) if (total > PARALLEL_MIN_ELEMENTS)
  for (int64_t task = 0; task < r.outer * blocks; task++) {
    int64_t o = task / blocks, i0 = (task % blocks) * INNER_BLOCK;
    int64_t w = r.inner - i0 < INNER_BLOCK ? r.inner - i0 : INNER_BLOCK;
    const float *xo = x + o * r.n * r.inner + i0;
    float *yo = y + o * r.inner + i0;
    int64_t *ao = arg + o * r.inner + i0;
    for (int64_t i = 0; i < w; i++) {
      yo[i] = xo[i];
      ao[i] = 0;
    }
    for (int64_t k = 1; k < r.n; k++)
      for (int64_t i = 0; i < w; i++)
        if (beats(xo[k * r.inner + i], yo[i])) {
          yo[i] = xo[k * r.inner + i];
          ao[i] = k;
        }
  }
}

static ag_status max_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *x = n->in[0];
  reduce_dims r = reduce_dims_of(x, n->iarg[0]);
  const float *xd = row_major_data(t, x);                               // (outer, n, inner)
  int64_t *arg = ag_tape_alloc(t, (size_t)n->out->numel * sizeof *arg); // (outer, inner)
  if (!xd || !arg) return AG_ERR_NOMEM;
  max_rows(xd, r, n->out->data, arg);
  n->saved = arg;
  return AG_OK;
}

/* Each output's gradient goes to the element it was taken from. */
static ag_status max_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0];
  if (!x->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  reduce_dims r = reduce_dims_of(x, n->iarg[0]);
  const int64_t *arg = n->saved;
  const float *gy = n->out->grad;
  int64_t outputs = r.outer * r.inner;
#pragma omp parallel for schedule(static) if (outputs > PARALLEL_MIN_ELEMENTS)
  for (int64_t j = 0; j < outputs; j++) {
    int64_t o = j / r.inner, i = j % r.inner;
    gx[(o * r.n + arg[j]) * r.inner + i] += gy[j];
  }
  return AG_OK;
}

/* ---- graph functions ------------------------------------------------------------------ */

static ag_tensor *reduce(ag_tape *t, ag_op_id op, const char *name, ag_tensor *x, int dim,
                         bool keepdim) {
  if (!ag_tape_ok(t, x)) return NULL;
  int d = -1; /* every dim */
  if (dim != AG_ALL_DIMS) {
    d = ag_tape_dim(t, name, x, dim);
    if (d < 0) return NULL;
  }
  ag_op_call c = {.op = op, .in = {x}, .n_in = 1, .iarg = {d, keepdim}};
  if (keepdim) {
    c.out_ndim = x->ndim;
    for (int i = 0; i < x->ndim; i++) c.out_shape[i] = d < 0 || i == d ? 1 : x->shape[i];
  } else {
    for (int i = 0; d >= 0 && i < x->ndim; i++)
      if (i != d) c.out_shape[c.out_ndim++] = x->shape[i];
    /* Like AG_ALL_DIMS, a reduction to nothing gives shape (1), never a
     * 0-dim tensor. */
    if (c.out_ndim == 0) c.out_shape[c.out_ndim++] = 1;
  }
  if (op == AG_OP_MAX && reduce_dims_of(x, d).n == 0) {
    char s[96];
    return ag_tape_fail(t, AG_ERR_SHAPE, "max: nothing to reduce over in dim %d of shape %s", dim,
                        ag_shape_string(x, s, sizeof s));
  }
  return ag_op_run(t, &c);
}

ag_tensor *ag_sum(ag_tape *t, ag_tensor *x, int dim, bool keepdim) {
  return reduce(t, AG_OP_SUM, "sum", x, dim, keepdim);
}
ag_tensor *ag_mean(ag_tape *t, ag_tensor *x, int dim, bool keepdim) {
  return reduce(t, AG_OP_MEAN, "mean", x, dim, keepdim);
}
ag_tensor *ag_max(ag_tape *t, ag_tensor *x, int dim, bool keepdim) {
  return reduce(t, AG_OP_MAX, "max", x, dim, keepdim);
}

static const ag_op_impl sum_op = {"sum", sum_forward, sum_backward};
static const ag_op_impl mean_op = {"mean", sum_forward, sum_backward};
static const ag_op_impl max_op = {"max", max_forward, max_backward};

void ag_cpu_register_reduce(const ag_op_impl **ops) {
  ops[AG_OP_SUM] = &sum_op;
  ops[AG_OP_MEAN] = &mean_op;
  ops[AG_OP_MAX] = &max_op;
}
