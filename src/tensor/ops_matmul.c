/* Matrix products through OpenBLAS sgemm: matmul (batched) and linear. */
#include "tensor/internal.h"

#include <cblas.h>
#include <string.h>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

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

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
/* Explicit FMA vectors: `omp simd` compiled to one add chain per dot product
 * and a scalar horizontal sum (half of a decoding step's time). Here each
 * weight row is dotted with every input row at once, several accumulators
 * per row, so the chains overlap and each weight load serves all rows. */
#if defined(__AVX512F__)
typedef __m512 vec;
#define VEC_WIDTH 16
#define vec_zero  _mm512_setzero_ps
#define vec_load  _mm512_loadu_ps
#define vec_fma   _mm512_fmadd_ps
#define vec_add   _mm512_add_ps
#define vec_sum   _mm512_reduce_add_ps
#else
typedef __m256 vec;
#define VEC_WIDTH 8
#define vec_zero  _mm256_setzero_ps
#define vec_load  _mm256_loadu_ps
#define vec_fma   _mm256_fmadd_ps
#define vec_add   _mm256_add_ps
static inline float vec_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif
#define SIMD_SMALL_ROWS 1

/* y[r, o] = x[r] . w[o] for r < R, U accumulators per row over k; R and U
 * are constants after inlining, so the accumulators live in registers. One
 * weight row at a time: a single sequential stream, which the prefetcher
 * follows best when the weights come from memory (decoding a large model). */
static inline __attribute__((always_inline)) void dot_row(const int R, const int U, int64_t out,
                                                          int64_t in, const float *x,
                                                          const float *w, float *y) {
  vec acc[4][SMALL_ROWS];
#pragma GCC unroll 4
  for (int u = 0; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[u][r] = vec_zero();
  int64_t k = 0;
  for (; k + U * VEC_WIDTH <= in; k += U * VEC_WIDTH)
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) {
      vec wv = vec_load(w + k + u * VEC_WIDTH);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++)
        acc[u][r] = vec_fma(wv, vec_load(x + r * in + k + u * VEC_WIDTH), acc[u][r]);
    }
  for (; k + VEC_WIDTH <= in; k += VEC_WIDTH) {
    vec wv = vec_load(w + k);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[0][r] = vec_fma(wv, vec_load(x + r * in + k), acc[0][r]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
    for (int u = 1; u < U; u++) acc[0][r] = vec_add(acc[0][r], acc[u][r]);
    float s = vec_sum(acc[0][r]);
    for (int64_t i = k; i < in; i++) s += w[i] * x[r * in + i];
    y[r * out] = s;
  }
}

/* y[:rows, j] for the n weight rows w[j] (j < n). */
static void dot_rows(int64_t rows, int64_t n, int64_t out, int64_t in, const float *x,
                     const float *w, float *y) {
#define DOT_CASE(R, U)                                                                             \
  case R:                                                                                          \
    for (int64_t j = 0; j < n; j++) dot_row(R, U, out, in, x, w + j * in, y + j);                  \
    break;
  switch (rows) {
    DOT_CASE(1, 4)
    DOT_CASE(2, 2)
    DOT_CASE(3, 2)
    DOT_CASE(4, 1)
    DOT_CASE(5, 1)
    DOT_CASE(6, 1)
    DOT_CASE(7, 1)
    DOT_CASE(8, 1)
  default: break;
  }
#undef DOT_CASE
}
#endif

/* y (rows, out) = x (rows, in) @ W^T for rows <= SMALL_ROWS. */
static void linear_small_rows(int64_t rows, int64_t out, int64_t in, const float *x, const float *w,
                              float *y) {
#ifdef SIMD_SMALL_ROWS
  int64_t per = 16, blocks = (out + per - 1) / per; /* weight rows per loop iteration */
#pragma omp parallel for schedule(static) if (out * in > 65536)
  for (int64_t b = 0; b < blocks; b++) {
    int64_t o = b * per, n = out - o < per ? out - o : per;
    dot_rows(rows, n, out, in, x, w + o * in, y + o);
  }
#else
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
#endif
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
