/* Matrix products through OpenBLAS sgemm: matmul (batched) and linear. */
#include "tensor/internal.h"

#include <cblas.h>
#include <string.h>

/* How a (rows, cols) matrix view maps onto sgemm: row-major with leading
 * dimension ld, possibly transposed. False when neither stride is 1. */
typedef struct matrix_layout {
  bool trans;
  int ld;
} matrix_layout;

static bool layout_of(const ag_tensor *x, matrix_layout *l) {
  int64_t R = x->shape[x->ndim - 2], C = x->shape[x->ndim - 1];
  int64_t sr = x->stride[x->ndim - 2], sc = x->stride[x->ndim - 1];
  if (R == 1) sr = C > 1 ? C : 1; /* strides of size-1 dims do not matter */
  if (C == 1) sc = 1;
  if (sc == 1 && sr >= C && sr >= 1) {
    l->trans = false;
    l->ld = (int)sr;
    return true;
  }
  if (sr == 1 && sc >= R && sc >= 1) {
    l->trans = true;
    l->ld = (int)sc;
    return true;
  }
  return false;
}

/* Offset of batch entry b of x (batch dims = all but the last two). */
static int64_t batch_offset(const ag_tensor *x, int64_t b) {
  int64_t off = 0;
  for (int d = x->ndim - 3; d >= 0; d--) {
    off += (b % x->shape[d]) * x->stride[d];
    b /= x->shape[d];
  }
  return off;
}

static int64_t batch_count(const ag_tensor *x) {
  int64_t n = 1;
  for (int d = 0; d < x->ndim - 2; d++) n *= x->shape[d];
  return n;
}

/* C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, all row-major. */
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
              (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* ---- matmul ------------------------------------------------------------------- */

static ag_status matmul_forward(ag_tape *t, ag_node *n) {
  ag_tensor *a = n->in[0], *b = n->in[1], *y = n->out;
  matrix_layout la, lb;
  layout_of(a, &la);
  layout_of(b, &lb);
  int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
  int64_t batches = batch_count(a);
  bool shared_b = b->ndim == 2;
  for (int64_t i = 0; i < batches; i++)
    gemm(la.trans, lb.trans, M, N, K, 1.0f, a->data + batch_offset(a, i), la.ld,
         b->data + (shared_b ? 0 : batch_offset(b, i)), lb.ld, 0.0f, y->data + i * M * N, N);
  return AG_OK;
}

static ag_status matmul_backward(ag_tape *t, ag_node *n) {
  ag_tensor *a = n->in[0], *b = n->in[1], *y = n->out;
  matrix_layout la, lb;
  layout_of(a, &la);
  layout_of(b, &lb);
  int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
  int64_t batches = batch_count(a);
  bool shared_b = b->ndim == 2;
  float *ga = a->requires_grad ? ag_tape_grad(t, a) : NULL;
  float *gb = b->requires_grad ? ag_tape_grad(t, b) : NULL;
  if ((a->requires_grad && !ga) || (b->requires_grad && !gb)) return AG_ERR_NOMEM;
  for (int64_t i = 0; i < batches; i++) {
    const float *gy = y->grad + i * M * N;
    const float *bd = b->data + (shared_b ? 0 : batch_offset(b, i));
    const float *ad = a->data + batch_offset(a, i);
    /* dA (M, K) += dY (M, N) @ B^T (N, K) */
    if (ga) gemm(false, !lb.trans, M, K, N, 1.0f, gy, N, bd, lb.ld, 1.0f, ga + i * M * K, K);
    /* dB (K, N) += A^T (K, M) @ dY (M, N) */
    if (gb)
      gemm(!la.trans, false, K, N, M, 1.0f, ad, la.ld, gy, N, 1.0f, gb + (shared_b ? 0 : i * K * N),
           N);
  }
  return AG_OK;
}

ag_tensor *ag_matmul(ag_tape *t, ag_tensor *a, ag_tensor *b) {
  if (!ag_tape_ok(t, a) || !ag_tape_ok(t, b)) return NULL;
  char sa[96], sb[96];
  bool ok = a->ndim >= 2 && b->ndim >= 2 && a->shape[a->ndim - 1] == b->shape[b->ndim - 2];
  if (ok && b->ndim != 2) {
    ok = a->ndim == b->ndim;
    for (int d = 0; ok && d < a->ndim - 2; d++) ok = a->shape[d] == b->shape[d];
  }
  if (!ok)
    return ag_tape_fail(t, AG_ERR_SHAPE, "matmul: shapes %s and %s do not multiply",
                        ag_shape_string(a, sa, sizeof sa), ag_shape_string(b, sb, sizeof sb));
  matrix_layout l;
  if (!layout_of(a, &l)) a = ag_contiguous(t, a);
  if (!layout_of(b, &l)) b = ag_contiguous(t, b);
  if (!a || !b) return NULL;
  ag_op_call c = {.op = AG_OP_MATMUL, .in = {a, b}, .n_in = 2, .out_ndim = a->ndim};
  memcpy(c.out_shape, a->shape, sizeof c.out_shape);
  c.out_shape[a->ndim - 1] = b->shape[b->ndim - 1];
  return ag_op_run(t, &c);
}

/* ---- linear ------------------------------------------------------------------- */

/* Up to this many rows (decoding a few sequences) a linear streams each
 * weight row once and dots it with every input row: sgemm would first pack
 * (copy) the whole weight matrix, several times slower for so few rows. */
#define SMALL_ROWS 8

/* y (rows, out) = x (rows, in) @ W^T for rows <= SMALL_ROWS. */
static void linear_small_rows(int64_t rows, int64_t out, int64_t in, const float *x, const float *w,
                              float *y) {
#pragma omp parallel for schedule(static) if (out * in > 65536)
  for (int64_t o = 0; o < out; o++) {
    const float *wo = w + o * in;
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x + r * in;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < in; k++) s += wo[k] * xr[k];
      y[r * out + o] = s;
    }
  }
}

static ag_status linear_forward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2], *y = n->out;
  int64_t in = w->shape[1], out = w->shape[0], rows = x->numel / in;
  /* y (rows, out) = x (rows, in) @ W^T (in, out) */
  if (rows <= SMALL_ROWS)
    linear_small_rows(rows, out, in, x->data, w->data, y->data);
  else
    gemm(false, true, rows, out, in, 1.0f, x->data, in, w->data, in, 0.0f, y->data, out);
  if (bias) {
#pragma omp parallel for if (rows * out > 65536)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t o = 0; o < out; o++) y->data[r * out + o] += bias->data[o];
  }
  return AG_OK;
}

static ag_status linear_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2], *y = n->out;
  int64_t in = w->shape[1], out = w->shape[0], rows = x->numel / in;
  const float *gy = y->grad;
  int64_t examples = x->ndim >= 2 ? x->shape[0] : 1;
  ag_layer_event ev = {AG_LAYER_LINEAR, w, bias, x->data, gy, rows, in, out, examples,
                       rows / examples};
  ag_tape_fire_layer_hook(t, &ev);
  if (x->requires_grad) {
    float *gx = ag_tape_grad(t, x);
    if (!gx) return AG_ERR_NOMEM;
    /* dX (rows, in) += dY (rows, out) @ W (out, in) */
    gemm(false, false, rows, in, out, 1.0f, gy, out, w->data, in, 1.0f, gx, in);
  }
  if (w->requires_grad) {
    float *gw = ag_tape_grad(t, w);
    if (!gw) return AG_ERR_NOMEM;
    /* dW (out, in) += dY^T (out, rows) @ X (rows, in) */
    gemm(true, false, out, in, rows, 1.0f, gy, out, x->data, in, 1.0f, gw, in);
  }
  if (bias && bias->requires_grad) {
    float *gb = ag_tape_grad(t, bias);
    if (!gb) return AG_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t o = 0; o < out; o++) gb[o] += gy[r * out + o];
  }
  return AG_OK;
}

ag_tensor *ag_linear(ag_tape *t, ag_tensor *x, ag_tensor *weight, ag_tensor *bias) {
  if (!ag_tape_ok(t, x) || !ag_tape_ok(t, weight)) return NULL;
  char sx[96], sw[96], sb[96];
  if (weight->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != weight->shape[1])
    return ag_tape_fail(t, AG_ERR_SHAPE, "linear: input %s does not fit weight %s",
                        ag_shape_string(x, sx, sizeof sx), ag_shape_string(weight, sw, sizeof sw));
  if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))
    return ag_tape_fail(t, AG_ERR_SHAPE, "linear: bias %s does not fit weight %s",
                        ag_shape_string(bias, sb, sizeof sb),
                        ag_shape_string(weight, sw, sizeof sw));
  x = ag_contiguous(t, x);
  weight = ag_contiguous(t, weight);
  if (bias) bias = ag_contiguous(t, bias);
  if (!x || !weight || ag_tape_status(t)) return NULL;
  ag_op_call c = {.op = AG_OP_LINEAR, .in = {x, weight, bias}, .n_in = 3, .out_ndim = x->ndim};
  memcpy(c.out_shape, x->shape, sizeof c.out_shape);
  c.out_shape[x->ndim - 1] = weight->shape[0];
  return ag_op_run(t, &c);
}

static const ag_op_impl matmul_op = {"matmul", matmul_forward, matmul_backward};
static const ag_op_impl linear_op = {"linear", linear_forward, linear_backward};

void ag_cpu_register_matmul(const ag_op_impl **ops) {
  ops[AG_OP_MATMUL] = &matmul_op;
  ops[AG_OP_LINEAR] = &linear_op;
}
