/* Views (reshape, transpose, permute, slice), copies and concatenation. */
#include "tensor/internal.h"

#include <string.h>

/* Row-major strides of a shape. */
static void rowmajor_strides(int ndim, const int64_t *shape, int64_t *stride) {
  int64_t n = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    stride[d] = n;
    n *= shape[d];
  }
}

/* ---- views share data; backward scatters through grad strides ----------- */

static ag_status view_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0], *y = n->out;
  if (!x->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  const float *gy = y->grad;
  int64_t idx[AG_MAX_DIMS] = {0};
  int64_t off = n->grad_offset;
  for (int64_t i = 0; i < y->numel; i++) {
    gx[off] += gy[i];
    for (int d = y->ndim - 1; d >= 0; d--) {
      idx[d]++;
      off += n->grad_stride[d];
      if (idx[d] < y->shape[d]) break;
      off -= idx[d] * n->grad_stride[d];
      idx[d] = 0;
    }
  }
  return AG_OK;
}

static ag_tensor *make_view(ag_tape *t, ag_tensor *x, int ndim, const int64_t *shape, float *data,
                            const int64_t *stride, const int64_t *grad_stride,
                            int64_t grad_offset) {
  ag_op_call c = {.op = AG_OP_VIEW, .in = {x}, .n_in = 1, .out_ndim = ndim};
  memcpy(c.out_shape, shape, (size_t)ndim * sizeof *shape);
  c.view_data = data;
  c.view_stride = stride;
  c.grad_stride = grad_stride;
  c.grad_offset = grad_offset;
  return ag_op_run(t, &c);
}

ag_tensor *ag_permute(ag_tape *t, ag_tensor *x, const int *dims) {
  if (!ag_tape_ok(t, x)) return NULL;
  int64_t shape[AG_MAX_DIMS] = {0}, stride[AG_MAX_DIMS] = {0}, gstride[AG_MAX_DIMS] = {0};
  int64_t xg[AG_MAX_DIMS];
  bool seen[AG_MAX_DIMS] = {false};
  rowmajor_strides(x->ndim, x->shape, xg);
  for (int d = 0; d < x->ndim; d++) {
    int s = dims[d] < 0 ? dims[d] + x->ndim : dims[d];
    if (s < 0 || s >= x->ndim || seen[s])
      return ag_tape_fail(t, AG_ERR_INVALID, "permute: dims are not a permutation of 0..%d",
                          x->ndim - 1);
    seen[s] = true;
    shape[d] = x->shape[s];
    stride[d] = x->stride[s];
    gstride[d] = xg[s];
  }
  return make_view(t, x, x->ndim, shape, x->data, stride, gstride, 0);
}

ag_tensor *ag_transpose(ag_tape *t, ag_tensor *x, int dim0, int dim1) {
  if (!ag_tape_ok(t, x)) return NULL;
  int a = ag_tape_dim(t, "transpose", x, dim0), b = ag_tape_dim(t, "transpose", x, dim1);
  if (a < 0 || b < 0) return NULL;
  int dims[AG_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) dims[d] = d;
  dims[a] = b;
  dims[b] = a;
  return ag_permute(t, x, dims);
}

ag_tensor *ag_slice(ag_tape *t, ag_tensor *x, int dim, int64_t start, int64_t end) {
  if (!ag_tape_ok(t, x)) return NULL;
  int d = ag_tape_dim(t, "slice", x, dim);
  if (d < 0) return NULL;
  if (start < 0) start += x->shape[d];
  if (end < 0) end += x->shape[d];
  if (start < 0 || end > x->shape[d] || start > end)
    return ag_tape_fail(t, AG_ERR_INVALID,
                        "slice: [%lld, %lld) out of range for dim %d of size %lld",
                        (long long)start, (long long)end, dim, (long long)x->shape[d]);
  int64_t shape[AG_MAX_DIMS], xg[AG_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[d] = end - start;
  rowmajor_strides(x->ndim, x->shape, xg);
  return make_view(t, x, x->ndim, shape, x->data + start * x->stride[d], x->stride, xg,
                   start * xg[d]);
}

/* ---- contiguous copy ------------------------------------------------------ */

static ag_status contiguous_forward(ag_tape *t, ag_node *n) {
  ag_tensor_copy_to(n->in[0], n->out->data);
  return AG_OK;
}

static ag_status identity_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0];
  if (!x->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  const float *gy = n->out->grad;
  for (int64_t i = 0; i < x->numel; i++) gx[i] += gy[i];
  return AG_OK;
}

ag_tensor *ag_contiguous(ag_tape *t, ag_tensor *x) {
  if (!ag_tape_ok(t, x)) return NULL;
  if (ag_tensor_is_contiguous(x)) return x;
  ag_op_call c = {.op = AG_OP_CONTIGUOUS, .in = {x}, .n_in = 1, .out_ndim = x->ndim};
  memcpy(c.out_shape, x->shape, sizeof c.out_shape);
  return ag_op_run(t, &c);
}

/* ---- reshape: a view of contiguous data ------------------------------------- */

ag_tensor *ag_reshape(ag_tape *t, ag_tensor *x, int ndim, const int64_t *shape) {
  if (!ag_tape_ok(t, x)) return NULL;
  if (ndim < 0 || ndim > AG_MAX_DIMS)
    return ag_tape_fail(t, AG_ERR_INVALID, "reshape: %d dims (at most %d)", ndim, AG_MAX_DIMS);
  int64_t out[AG_MAX_DIMS];
  int64_t known = 1;
  int infer = -1;
  for (int d = 0; d < ndim; d++) {
    out[d] = shape[d];
    if (shape[d] == -1) {
      if (infer >= 0) return ag_tape_fail(t, AG_ERR_INVALID, "reshape: more than one -1");
      infer = d;
    } else if (shape[d] < 0) {
      return ag_tape_fail(t, AG_ERR_INVALID, "reshape: negative size %lld", (long long)shape[d]);
    } else {
      known *= shape[d];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x->numel % known) goto mismatch;
    out[infer] = x->numel / known;
    known *= out[infer];
  }
  if (known != x->numel) goto mismatch;
  ag_tensor *src = ag_contiguous(t, x);
  if (!src) return NULL;
  int64_t stride[AG_MAX_DIMS];
  rowmajor_strides(ndim, out, stride);
  return make_view(t, src, ndim, out, src->data, stride, stride, 0);
mismatch : {
  char s[96];
  return ag_tape_fail(t, AG_ERR_SHAPE, "reshape: cannot view %s (%lld elements) with %lld elements",
                      ag_shape_string(x, s, sizeof s), (long long)x->numel, (long long)known);
}
}

/* ---- stop-gradient ----------------------------------------------------------- */

ag_tensor *ag_stop_gradient(ag_tape *t, ag_tensor *x) {
  if (!ag_tape_ok(t, x)) return NULL;
  /* A wrapped alias of the same data: no node, so nothing flows back. */
  ag_tensor *y = ag_tape_wrap(t, x->data, x->ndim, x->shape);
  if (y) memcpy(y->stride, x->stride, sizeof y->stride);
  return y;
}

/* ---- concat ------------------------------------------------------------------ */

static ag_status concat_forward(ag_tape *t, ag_node *n) {
  ag_tensor *y = n->out;
  int d = (int)n->iarg[0];
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; i++) outer *= y->shape[i];
  for (int i = d + 1; i < y->ndim; i++) inner *= y->shape[i];
  int64_t col = 0;
  for (int k = 0; k < n->n_many; k++) {
    ag_tensor *x = n->many[k];
    int64_t w = x->shape[d] * inner;
    float *tmp = NULL;
    const float *src = x->data;
    if (!ag_tensor_is_contiguous(x)) {
      tmp = ag_tape_alloc(t, (size_t)x->numel * sizeof(float));
      if (!tmp) return AG_ERR_NOMEM;
      ag_tensor_copy_to(x, tmp);
      src = tmp;
    }
    for (int64_t o = 0; o < outer; o++)
      memcpy(y->data + o * y->shape[d] * inner + col, src + o * w, (size_t)w * sizeof(float));
    col += w;
  }
  return AG_OK;
}

static ag_status concat_backward(ag_tape *t, ag_node *n) {
  ag_tensor *y = n->out;
  int d = (int)n->iarg[0];
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; i++) outer *= y->shape[i];
  for (int i = d + 1; i < y->ndim; i++) inner *= y->shape[i];
  int64_t col = 0;
  for (int k = 0; k < n->n_many; k++) {
    ag_tensor *x = n->many[k];
    int64_t w = x->shape[d] * inner;
    if (x->requires_grad) {
      float *gx = ag_tape_grad(t, x);
      if (!gx) return AG_ERR_NOMEM;
      for (int64_t o = 0; o < outer; o++) {
        const float *gy = y->grad + o * y->shape[d] * inner + col;
        for (int64_t i = 0; i < w; i++) gx[o * w + i] += gy[i];
      }
    }
    col += w;
  }
  return AG_OK;
}

ag_tensor *ag_concat(ag_tape *t, ag_tensor *const *xs, int count, int dim) {
  if (ag_tape_status(t)) return NULL;
  if (count < 1) return ag_tape_fail(t, AG_ERR_INVALID, "concat: no tensors");
  for (int k = 0; k < count; k++)
    if (!ag_tape_ok(t, xs[k])) return NULL;
  int d = ag_tape_dim(t, "concat", xs[0], dim);
  if (d < 0) return NULL;
  ag_op_call c = {.op = AG_OP_CONCAT, .out_ndim = xs[0]->ndim, .iarg = {d}};
  memcpy(c.out_shape, xs[0]->shape, sizeof c.out_shape);
  c.out_shape[d] = 0;
  for (int k = 0; k < count; k++) {
    const ag_tensor *x = xs[k];
    bool fits = x->ndim == xs[0]->ndim;
    for (int i = 0; fits && i < x->ndim; i++)
      if (i != d && x->shape[i] != xs[0]->shape[i]) fits = false;
    if (!fits) {
      char s0[96], s1[96];
      return ag_tape_fail(t, AG_ERR_SHAPE, "concat: shapes %s and %s differ outside dim %d",
                          ag_shape_string(xs[0], s0, sizeof s0), ag_shape_string(x, s1, sizeof s1),
                          dim);
    }
    c.out_shape[d] += x->shape[d];
  }
  ag_tensor **many = ag_tape_alloc(t, (size_t)count * sizeof *many);
  if (!many) return NULL;
  memcpy(many, xs, (size_t)count * sizeof *many);
  c.many = many;
  c.n_many = count;
  return ag_op_run(t, &c);
}

static const ag_op_impl view_op = {"view", NULL, view_backward};
static const ag_op_impl contiguous_op = {"contiguous", contiguous_forward, identity_backward};
static const ag_op_impl concat_op = {"concat", concat_forward, concat_backward};

void ag_cpu_register_shape(const ag_op_impl **ops) {
  ops[AG_OP_VIEW] = &view_op;
  ops[AG_OP_RESHAPE] = &view_op;
  ops[AG_OP_CONTIGUOUS] = &contiguous_op;
  ops[AG_OP_CONCAT] = &concat_op;
}
